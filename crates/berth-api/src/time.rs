//! RFC 3339 time stamps as Docker prints them, without a date-time dependency: the one
//! formatter and parser that the engine, the runtime (shim) and the CLI share.
//!
//! Two forms, as Go's `time` package and Docker's `jsonmessage` define them:
//! - [`rfc3339_nano`]: Go's `time.RFC3339Nano`, trailing zeros of the fraction trimmed
//!   (`2026-11-23T11:29:54.5Z`) — `Created`, `State.StartedAt`, `State.FinishedAt`, the
//!   json-file log's `time`, `SystemTime`.
//! - [`rfc3339_nano_fixed`]: `jsonmessage.RFC3339NanoFixed`, always nine digits
//!   (`2026-11-23T11:29:54.500000000Z`) — `logs -t` and `events` lines.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now as seconds and nanoseconds since the epoch.
pub fn now_unix() -> (i64, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos())
}

/// Now in Go's RFC3339Nano, e.g. `2026-11-23T11:29:54.177021719Z`.
pub fn now_rfc3339_nano() -> String {
    let (s, n) = now_unix();
    rfc3339_nano(s, n)
}

/// Go's `time.RFC3339Nano` in UTC: the fraction with its trailing zeros trimmed, none
/// at all on a whole second.
pub fn rfc3339_nano(secs: i64, nanos: u32) -> String {
    let mut s = date_time(secs);
    if nanos != 0 {
        let frac = format!("{:09}", nanos % 1_000_000_000);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Docker's `jsonmessage.RFC3339NanoFixed` (`2006-01-02T15:04:05.000000000Z07:00`):
/// always nine fractional digits, in the zone `offset_secs` east of UTC (`Z` for 0).
pub fn rfc3339_nano_fixed(secs: i64, nanos: u32, offset_secs: i32) -> String {
    let mut s = date_time(secs.saturating_add(i64::from(offset_secs)));
    s.push_str(&format!(".{:09}", nanos % 1_000_000_000));
    if offset_secs == 0 {
        s.push('Z');
    } else {
        let sign = if offset_secs < 0 { '-' } else { '+' };
        let m = offset_secs.unsigned_abs() / 60;
        s.push_str(&format!("{sign}{:02}:{:02}", m / 60, m % 60));
    }
    s
}

/// Parses an RFC 3339 time stamp (any fraction length, `Z` or a `±hh:mm` offset) into
/// seconds and nanoseconds since the epoch (UTC). `None` if it is not one.
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        d.iter().try_fold(0i64, |acc, c| acc.checked_mul(10)?.checked_add(i64::from(c - b'0')))
    };
    let sep = |i: usize, want: &[u8]| b.get(i).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return None;
        }
        for k in 0..9 {
            let digit = if start + k < end { u32::from(b[start + k] - b'0') } else { 0 };
            nanos = nanos * 10 + digit;
        }
        i = end;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *c == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some((secs, nanos))
}

fn date_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, (sod / 60) % 60, sod % 60)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days ↔ civil date algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        // (secs, nanos, RFC3339Nano, RFC3339NanoFixed in UTC)
        for (secs, nanos, trimmed, fixed) in [
            (0, 0, "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000000Z"),
            (1_795_433_394, 177_021_719, "2026-11-23T11:29:54.177021719Z", "2026-11-23T11:29:54.177021719Z"),
            (951_782_400, 500_000_000, "2000-02-29T00:00:00.5Z", "2000-02-29T00:00:00.500000000Z"),
            (1_709_164_800 + 86_399, 10, "2024-02-29T23:59:59.00000001Z", "2024-02-29T23:59:59.000000010Z"),
            (1_795_433_394, 177_000_000, "2026-11-23T11:29:54.177Z", "2026-11-23T11:29:54.177000000Z"),
            (-1, 0, "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.000000000Z"),
        ] {
            assert_eq!(rfc3339_nano(secs, nanos), trimmed);
            assert_eq!(rfc3339_nano_fixed(secs, nanos, 0), fixed);
            assert_eq!(parse_rfc3339(trimmed), Some((secs, nanos)), "{trimmed}");
            assert_eq!(parse_rfc3339(fixed), Some((secs, nanos)), "{fixed}");
        }
    }

    #[test]
    fn fixed_form_in_a_zone() {
        // (offset, want): the local wall time and its offset, as Go prints it.
        for (off, want) in [
            (3600, "2026-11-23T12:29:54.000000005+01:00"),
            (-(5 * 3600 + 30 * 60), "2026-11-23T05:59:54.000000005-05:30"),
            (0, "2026-11-23T11:29:54.000000005Z"),
        ] {
            assert_eq!(rfc3339_nano_fixed(1_795_433_394, 5, off), want);
            assert_eq!(parse_rfc3339(want), Some((1_795_433_394, 5)), "{want}");
        }
    }

    #[test]
    fn parses_rfc3339_and_rejects_the_rest() {
        for (s, want) in [
            ("2026-11-23T12:00:05.5Z", Some((1_795_435_205, 500_000_000))),
            ("2026-11-23t12:00:05z", Some((1_795_435_205, 0))),
            ("2026-11-23T12:00:05.1234567891Z", Some((1_795_435_205, 123_456_789))),
            ("0001-01-01T00:00:00Z", Some((-62_135_596_800, 0))),
            ("2026-11-23T12:00:05", None),
            ("2026-11-23T12:00:05.Z", None),
            ("2026-02-29T12:00:05Z", None),
            ("2026-13-01T12:00:05Z", None),
            ("2026-11-23T12:00:05+0100", None),
            ("2026-11-23T12:00:05Zx", None),
            ("1700000000", None),
            ("", None),
        ] {
            assert_eq!(parse_rfc3339(s), want, "{s}");
        }
    }
}
