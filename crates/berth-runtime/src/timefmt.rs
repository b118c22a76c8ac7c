//! RFC 3339 timestamps with nanoseconds in UTC, formatted like Go's `time.RFC3339Nano`
//! (trailing zeros of the fraction trimmed), without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, e.g. `2026-11-23T11:29:54.177021719Z`.
pub fn now_rfc3339_nano() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_unix(d.as_secs() as i64, d.subsec_nanos())
}

/// Formats seconds + nanoseconds since the epoch.
pub fn format_unix(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        y,
        m,
        d,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

// Howard Hinnant's days → civil date algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(format_unix(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(1_795_433_394, 177_021_719), "2026-11-23T11:29:54.177021719Z");
        assert_eq!(format_unix(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
        assert_eq!(format_unix(1_709_164_800 + 86_399, 10), "2024-02-29T23:59:59.00000001Z");
    }
}
