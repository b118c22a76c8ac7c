//! `logs`, and docker's `--since`/`--until` timestamp and Go duration parsing.

use std::io;

use berth_client::{stream, Body};

use super::*;
use crate::cli::LogsArgs;
use crate::{CmdResult, Ctx, Fail};

/// docker's `GetTimestamp`: durations become `now - d` (unix seconds), RFC 3339 times
/// become `secs.nanos`, numbers pass through.
pub fn api_timestamp(v: &str, now: i64) -> String {
    if let Some(d) = parse_go_duration(v) {
        if v != "0" {
            return (now - d as i64).to_string();
        }
    }
    if v.parse::<f64>().is_ok() {
        return v.to_string();
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(&v.replace('Z', "+00:00"), fmt) {
            return format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos());
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"] {
        let parsed = chrono::NaiveDateTime::parse_from_str(v, fmt)
            .or_else(|_| chrono::NaiveDate::parse_from_str(v, fmt).map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()));
        if let Ok(t) = parsed {
            let t = t.and_utc();
            return format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos());
        }
    }
    v.to_string()
}

/// Go's `time.ParseDuration` (seconds as f64).
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Some(if neg { -total } else { total })
}

pub fn logs(ctx: &mut Ctx, o: LogsArgs) -> CmdResult {
    ctx.require("logs", o.containers.len(), 1, Some(1))?;
    let c = inspect_container(&mut ctx.client, &o.containers[0])?;
    let now = crate::format::now_secs_f64() as i64;
    let mut params = vec![("stdout", "1".to_string()), ("stderr", "1".into()), ("tail", o.tail.clone())];
    if o.follow {
        params.push(("follow", "1".into()));
    }
    if o.timestamps {
        params.push(("timestamps", "1".into()));
    }
    if o.details {
        params.push(("details", "1".into()));
    }
    if let Some(s) = &o.since {
        params.push(("since", api_timestamp(s, now)));
    }
    if let Some(u) = &o.until {
        params.push(("until", api_timestamp(u, now)));
    }
    let resp = ctx.client.send("GET", &query(&format!("/containers/{}/logs", c.id), &params), &[], Body::None)?;
    let mut out = io::stdout().lock();
    let r = if c.config.tty {
        stream::copy_raw(resp, &mut out)
    } else {
        let mut err = io::stderr();
        stream::demux(resp, &mut out, &mut err)
    };
    r.map_err(|e| Fail::new(1, e.to_string()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("42m"), Some(2520.0));
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(api_timestamp("30s", 1000), "970");
        assert_eq!(api_timestamp("1700000000", 1000), "1700000000");
        assert_eq!(api_timestamp("2026-11-23T11:29:54Z", 0), "1795433394.000000000");
    }
}
