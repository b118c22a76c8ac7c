//! Time stamps as Docker writes them, and the human durations in `ps` STATUS.
//! Formatting and parsing go through [`berth_api::time`] (shared with the shim and the
//! CLI); chrono stays here for the arithmetic (`ps` durations, `--since`/`--until`).

use chrono::{DateTime, Utc};

use crate::state::Status;

/// Go's RFC3339Nano in UTC, trailing zeros trimmed (`Created`, `StartedAt`,
/// `FinishedAt`): `2026-11-23T11:29:54.177021719Z`, `2026-11-23T11:29:54.5Z`.
pub fn rfc3339_nano(t: DateTime<Utc>) -> String {
    berth_api::time::rfc3339_nano(t.timestamp(), t.timestamp_subsec_nanos())
}

/// Docker's `jsonmessage.RFC3339NanoFixed` in UTC, always nine digits (`logs -t`).
pub fn rfc3339_nano_fixed(t: DateTime<Utc>) -> String {
    berth_api::time::rfc3339_nano_fixed(t.timestamp(), t.timestamp_subsec_nanos(), 0)
}

/// Now in Go's RFC3339Nano.
pub fn now() -> String {
    berth_api::time::now_rfc3339_nano()
}

pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    berth_api::time::parse_rfc3339(s).and_then(|(secs, nanos)| DateTime::from_timestamp(secs, nanos))
}

/// Docker's `units.HumanDuration` of a chrono duration.
pub fn human_duration(d: chrono::Duration) -> String {
    berth_api::units::human_duration(d.num_milliseconds() as f64 / 1000.0)
}

/// The `Status` column of `ps`, which the CLI prints verbatim.
pub fn status_string(
    status: impl Into<Status>,
    exit_code: i64,
    started_at: &str,
    finished_at: &str,
    now: DateTime<Utc>,
) -> String {
    let since = |t: &str| parse(t).map(|t| human_duration(now - t)).unwrap_or_default();
    match status.into() {
        Status::Running => format!("Up {}", since(started_at)),
        Status::Paused => format!("Up {} (Paused)", since(started_at)),
        Status::Restarting => format!("Restarting ({exit_code}) {} ago", since(finished_at)),
        Status::Exited => format!("Exited ({exit_code}) {} ago", since(finished_at)),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Created => "Created".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    /// The table of Docker's durations is `berth_api::units`'; this checks the chrono
    /// side of the wrapper (whole and fractional seconds reach it).
    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::milliseconds(500)), "Less than a second");
        assert_eq!(human_duration(Duration::seconds(38)), "38 seconds");
        assert_eq!(human_duration(Duration::seconds(15 * 86400)), "2 weeks");
    }

    #[test]
    fn status_strings() {
        let now = parse("2026-11-23T12:00:10Z").expect("time");
        let t = "2026-11-23T12:00:05.5Z";
        assert_eq!(status_string("running", 0, t, crate::api::ZERO_TIME, now), "Up 4 seconds");
        assert_eq!(status_string("paused", 0, t, crate::api::ZERO_TIME, now), "Up 4 seconds (Paused)");
        assert_eq!(status_string("exited", 5, t, t, now), "Exited (5) 4 seconds ago");
        assert_eq!(status_string("created", 0, "", "", now), "Created");
    }

    #[test]
    fn nanosecond_stamps() {
        let t = parse("2026-11-23T11:29:54.177021719Z").expect("parse");
        assert_eq!(rfc3339_nano(t), "2026-11-23T11:29:54.177021719Z");
        assert_eq!(rfc3339_nano_fixed(t), "2026-11-23T11:29:54.177021719Z");
    }

    #[test]
    fn stamps_trim_like_go_and_the_fixed_form_keeps_nine_digits() {
        // Regression: `StartedAt` (engine) had nine digits while `FinishedAt` (shim)
        // trimmed them; both are Go's RFC3339Nano now.
        for (input, trimmed, fixed) in [
            ("2026-11-23T11:29:54.500000000Z", "2026-11-23T11:29:54.5Z", "2026-11-23T11:29:54.500000000Z"),
            ("2026-11-23T11:29:54Z", "2026-11-23T11:29:54Z", "2026-11-23T11:29:54.000000000Z"),
            ("2026-11-23T12:29:54.12+01:00", "2026-11-23T11:29:54.12Z", "2026-11-23T11:29:54.120000000Z"),
        ] {
            let t = parse(input).expect("parse");
            assert_eq!(rfc3339_nano(t), trimmed, "{input}");
            assert_eq!(rfc3339_nano_fixed(t), fixed, "{input}");
        }
        // `now()` (StartedAt, Created) is that same trimmed form.
        let n = now();
        assert_eq!(parse(&n).map(rfc3339_nano), Some(n));
    }
}
