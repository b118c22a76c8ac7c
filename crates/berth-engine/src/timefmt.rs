//! Time stamps as Docker writes them, and the human durations in `ps` STATUS.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 with nanoseconds in UTC: `2026-11-23T11:29:54.177021719Z`.
pub fn rfc3339_nano(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub fn now() -> String {
    rfc3339_nano(Utc::now())
}

pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Docker's `units.HumanDuration` of a chrono duration.
pub fn human_duration(d: chrono::Duration) -> String {
    berth_api::units::human_duration(d.num_milliseconds() as f64 / 1000.0)
}

/// The `Status` column of `ps`, which the CLI prints verbatim.
pub fn status_string(
    status: &str,
    exit_code: i64,
    started_at: &str,
    finished_at: &str,
    now: DateTime<Utc>,
) -> String {
    let since = |t: &str| parse(t).map(|t| human_duration(now - t)).unwrap_or_default();
    match status {
        "running" => format!("Up {}", since(started_at)),
        "paused" => format!("Up {} (Paused)", since(started_at)),
        "restarting" => format!("Restarting ({exit_code}) {} ago", since(finished_at)),
        "exited" => format!("Exited ({exit_code}) {} ago", since(finished_at)),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ => "Created".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn human_durations() {
        for (secs, want) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (38, "38 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * 60, "59 minutes"),
            (3600, "About an hour"),
            (2 * 3600, "2 hours"),
            (47 * 3600, "47 hours"),
            (3 * 86400, "3 days"),
            (15 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (3 * 365 * 86400, "3 years"),
        ] {
            assert_eq!(human_duration(Duration::seconds(secs)), want, "{secs}s");
        }
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
    }
}
