//! `run`/`create` healthcheck flags (`--health-cmd`, `--health-interval`,
//! `--health-timeout`, `--health-retries`, `--health-start-period`,
//! `--health-start-interval`, `--no-healthcheck`) → `Config.Healthcheck`, as the docker
//! CLI builds it: `CMD-SHELL` for the command, zero fields omitted, `["NONE"]` for
//! `--no-healthcheck`, and its texts for conflicts and negative values.

use serde_json::{Map, Value};

use super::logs::parse_go_duration;
use crate::cli::RunArgs;
use crate::Fail;

/// A duration flag in nanoseconds (pflag's texts for a bad value).
fn duration(flag: &str, v: Option<&str>) -> Result<i64, Fail> {
    let Some(v) = v else { return Ok(0) };
    parse_go_duration(v)
        .map(|s| (s * 1e9).round() as i64)
        .ok_or_else(|| Fail::new(125, format!("invalid argument \"{v}\" for \"--{flag}\" flag: time: invalid duration \"{v}\"")))
}

/// `Config.Healthcheck` for the flags, or None when none is given.
pub fn healthcheck(o: &RunArgs) -> Result<Option<Value>, Fail> {
    let bad = |m: &str| Fail::new(125, m.to_string());
    let fields = [
        ("Interval", "health-interval", duration("health-interval", o.health_interval.as_deref())?),
        ("Timeout", "health-timeout", duration("health-timeout", o.health_timeout.as_deref())?),
        ("StartPeriod", "health-start-period", duration("health-start-period", o.health_start_period.as_deref())?),
        ("StartInterval", "health-start-interval", duration("health-start-interval", o.health_start_interval.as_deref())?),
    ];
    let retries = o.health_retries.unwrap_or(0);
    let cmd = o.health_cmd.as_deref().unwrap_or("");
    let any = !cmd.is_empty() || retries != 0 || fields.iter().any(|f| f.2 != 0);
    if o.no_healthcheck {
        if any {
            return Err(bad("--no-healthcheck conflicts with --health-* options"));
        }
        return Ok(Some(serde_json::json!({"Test": ["NONE"]})));
    }
    if !any {
        return Ok(None);
    }
    let mut m = Map::new();
    if !cmd.is_empty() {
        m.insert("Test".into(), serde_json::json!(["CMD-SHELL", cmd]));
    }
    // The docker CLI checks these in this order: interval, timeout, retries, start
    // period, start interval.
    for (_, flag, v) in &fields[..2] {
        if *v < 0 {
            return Err(bad(&format!("--{flag} cannot be negative")));
        }
    }
    if retries < 0 {
        return Err(bad("--health-retries cannot be negative"));
    }
    for (_, flag, v) in &fields[2..] {
        if *v < 0 {
            return Err(bad(&format!("--{flag} cannot be negative")));
        }
    }
    for (key, _, v) in &fields {
        if *v != 0 {
            m.insert((*key).into(), Value::from(*v));
        }
    }
    if retries != 0 {
        m.insert("Retries".into(), Value::from(retries));
    }
    Ok(Some(Value::Object(m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    fn args(argv: &[&str]) -> RunArgs {
        #[derive(Parser)]
        struct W {
            #[command(flatten)]
            a: RunArgs,
        }
        let mut v = vec!["berth"];
        v.extend_from_slice(argv);
        W::try_parse_from(v).expect("parse").a
    }

    #[test]
    fn flags_to_config() {
        let table: [(&[&str], Result<Option<Value>, &str>); 8] = [
            (&[], Ok(None)),
            (&["--no-healthcheck"], Ok(Some(json!({"Test": ["NONE"]})))),
            (&["--health-cmd", "test -f /ok"], Ok(Some(json!({"Test": ["CMD-SHELL", "test -f /ok"]})))),
            (
                &["--health-cmd", "true", "--health-interval", "1s", "--health-timeout", "500ms", "--health-retries", "2", "--health-start-period", "1m", "--health-start-interval", "1.5s"],
                Ok(Some(json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000i64, "Timeout": 500_000_000, "Retries": 2, "StartPeriod": 60_000_000_000i64, "StartInterval": 1_500_000_000i64}))),
            ),
            // Without a command: the image's test is kept, the durations override.
            (&["--health-interval", "2s"], Ok(Some(json!({"Interval": 2_000_000_000i64})))),
            (&["--no-healthcheck", "--health-cmd", "x"], Err("--no-healthcheck conflicts with --health-* options")),
            (&["--health-retries", "-1"], Err("--health-retries cannot be negative")),
            (&["--health-interval", "soon"], Err("invalid argument \"soon\" for \"--health-interval\" flag: time: invalid duration \"soon\"")),
        ];
        for (argv, want) in table {
            let got = healthcheck(&args(argv)).map_err(|f| f.msg);
            assert_eq!(got, want.map_err(str::to_string), "{argv:?}");
        }
    }

    #[test]
    fn negative_durations() {
        assert_eq!(healthcheck(&args(&["--health-timeout=-1s"])).unwrap_err().msg, "--health-timeout cannot be negative");
        assert_eq!(healthcheck(&args(&["--health-start-period=-1s"])).unwrap_err().msg, "--health-start-period cannot be negative");
    }
}
