//! Healthchecks (Docker's `daemon/health.go`): the typed `Config.Healthcheck`, its merge
//! with the image's, and one monitor task per running container that runs the probe
//! through the container's shim (the `docker exec` path: no shell for `CMD`, the
//! container's shell or `/bin/sh -c` for `CMD-SHELL`), kills it at its timeout, keeps
//! 4096 bytes of its output and records `State.Health` (status, failing streak, the last
//! five results) in the container record. A status change emits `health_status: …`.
//!
//! The monitor runs while the container runs unpaused; pause, stop, kill and exit close
//! it (the status then reads `unhealthy`, as Docker's); unpause and a daemon restart
//! (containers outlive berthd) open it again. The pure parts (config, the interval
//! rule, a result's effect on the state, Go's duration text, the output cap) are
//! unit-tested below; the monitor itself is exercised by the e2e tests.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::{Health, HealthcheckResult};
use berth_runtime::client;
use berth_runtime::spec::ExecSpec;
use serde_json::{Map, Value};

use crate::record::Container;
use crate::state::Status;
use crate::{lock, timefmt, Engine};

/// Longest probe output kept; more is dropped and `...` appended (Docker's).
pub const MAX_OUTPUT_LEN: usize = 4096;
/// Results kept in `State.Health.Log`.
pub const MAX_LOG_ENTRIES: usize = 5;
const DEFAULT_INTERVAL_NS: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT_NS: i64 = 30_000_000_000;
const DEFAULT_START_INTERVAL_NS: i64 = 5_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// How long a probe may take to start before it counts as failed (Docker's 30 s).
const PROBE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a killed probe is given to report its exit.
const PROBE_KILL_WAIT: Duration = Duration::from_secs(10);
/// Granularity of the probe reader's checks of its deadline and of a stop.
const PROBE_POLL: Duration = Duration::from_millis(100);

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// `Config.Healthcheck`, typed. Durations in nanoseconds; 0 = the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthConfig {
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

const KEYS: [&str; 5] = ["Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"];

impl HealthConfig {
    /// Reads the JSON object create validated (`validate::check_healthcheck`); anything
    /// else reads as no healthcheck.
    pub fn from_value(v: &Value) -> Option<HealthConfig> {
        let o = v.as_object()?;
        let int = |k: &str| o.get(k).and_then(Value::as_i64).unwrap_or(0);
        let test = match o.get("Test") {
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        Some(HealthConfig {
            test,
            interval: int("Interval"),
            timeout: int("Timeout"),
            start_period: int("StartPeriod"),
            start_interval: int("StartInterval"),
            retries: int("Retries"),
        })
    }

    /// Docker's JSON: every field `omitempty`.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        if !self.test.is_empty() {
            m.insert("Test".into(), Value::from(self.test.clone()));
        }
        for (k, v) in KEYS.iter().zip([self.interval, self.timeout, self.start_period, self.start_interval, self.retries]) {
            if v != 0 {
                m.insert((*k).into(), Value::from(v));
            }
        }
        Value::Object(m)
    }

    /// The probe's argv, or None for no probe (no test, `NONE`, an unknown kind).
    /// `shell` is the container's `Shell` (empty: `/bin/sh -c`).
    pub fn probe_argv(&self, shell: &[String]) -> Option<Vec<String>> {
        let (kind, rest) = self.test.split_first()?;
        match kind.as_str() {
            "CMD" => Some(rest.to_vec()),
            "CMD-SHELL" => {
                let mut argv = if shell.is_empty() { vec!["/bin/sh".to_string(), "-c".to_string()] } else { shell.to_vec() };
                argv.extend(rest.iter().cloned());
                Some(argv)
            }
            _ => None,
        }
    }

    fn or(v: i64, default: i64) -> i64 {
        if v == 0 {
            default
        } else {
            v
        }
    }

    pub fn timeout_ns(&self) -> i64 {
        Self::or(self.timeout, DEFAULT_TIMEOUT_NS)
    }

    pub fn retries(&self) -> i64 {
        if self.retries <= 0 {
            DEFAULT_RETRIES
        } else {
            self.retries
        }
    }

    /// The wait before the next probe: the start interval while the container is
    /// `starting` inside its start period, the interval otherwise (Docker ≥ 25).
    pub fn next_interval_ns(&self, since_start_ns: i64, status: &str) -> i64 {
        if since_start_ns < self.start_period && status == STARTING {
            Self::or(self.start_interval, DEFAULT_START_INTERVAL_NS)
        } else {
            Self::or(self.interval, DEFAULT_INTERVAL_NS)
        }
    }
}

/// Docker's merge of the request's healthcheck with the image's: the image's fills the
/// request's missing fields (Test when empty, each duration and Retries when 0), or
/// stands for the request's when it has none. The result is Docker's JSON shape.
pub fn merge(user: &mut Option<Value>, image: Option<&Value>) {
    let img = image.and_then(HealthConfig::from_value);
    let merged = match (user.as_ref().and_then(HealthConfig::from_value), img) {
        (None, None) => return,
        (None, Some(i)) => i,
        (Some(u), None) => u,
        (Some(mut u), Some(i)) => {
            if u.test.is_empty() {
                u.test = i.test;
            }
            for (mine, theirs) in [
                (&mut u.interval, i.interval),
                (&mut u.timeout, i.timeout),
                (&mut u.start_period, i.start_period),
                (&mut u.start_interval, i.start_interval),
                (&mut u.retries, i.retries),
            ] {
                if *mine == 0 {
                    *mine = theirs;
                }
            }
            u
        }
    };
    *user = Some(merged.to_value());
}

/// A create request of API < 1.44: `StartInterval` did not exist yet and is ignored
/// (Docker clears it before validating).
pub fn drop_start_interval(h: &mut Option<Value>) {
    if let Some(Value::Object(m)) = h {
        m.remove("StartInterval");
    }
}

/// What one probe gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    Exited { code: i64, output: String },
    TimedOut,
    /// The probe could not run (Docker records exit code -1 and the error's text).
    Failed(String),
    /// The monitor was closed while the probe ran: nothing is recorded.
    Stopped,
}

/// Turns an outcome into the log entry Docker records.
pub fn result_of(outcome: ProbeOutcome, cfg: &HealthConfig, start: String, end: String) -> Option<HealthcheckResult> {
    let (exit_code, output) = match outcome {
        ProbeOutcome::Exited { code, output } => (code, output),
        ProbeOutcome::TimedOut => (-1, format!("Health check exceeded timeout ({})", go_duration(cfg.timeout_ns()))),
        ProbeOutcome::Failed(m) => (-1, m),
        ProbeOutcome::Stopped => return None,
    };
    Some(HealthcheckResult { start, end, exit_code, output })
}

/// Applies one result to the health state (Docker's `handleProbeResult`): appended to
/// the log (the last five kept); exit 0 resets the streak and makes it healthy; a
/// failure counts unless the container is still `starting` inside its start period,
/// and `retries` failures in a row make it unhealthy. `since_start_ns` is the probe's
/// start relative to the container's. Returns the new status when it changed.
pub fn apply(h: &mut Health, r: HealthcheckResult, cfg: &HealthConfig, since_start_ns: i64) -> Option<String> {
    let old = h.status.clone();
    let ok = r.exit_code == 0;
    h.log.push(r);
    if h.log.len() > MAX_LOG_ENTRIES {
        let drop = h.log.len() - MAX_LOG_ENTRIES;
        h.log.drain(..drop);
    }
    if ok {
        h.failing_streak = 0;
        h.status = HEALTHY.into();
    } else if !(h.status == STARTING && since_start_ns < cfg.start_period) {
        h.failing_streak += 1;
        if h.failing_streak >= cfg.retries() {
            h.status = UNHEALTHY.into();
        }
    }
    (h.status != old).then(|| h.status.clone())
}

/// Go's `time.Duration.String()`: `1s`, `1.5s`, `500ms`, `1m30s`, `2h0m0s`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let secs_ns = u % 60_000_000_000;
        let mins = u / 60_000_000_000;
        let (h, m) = (mins / 60, mins % 60);
        let sec = format!("{}s", frac(secs_ns, 1_000_000_000));
        if h > 0 {
            format!("{h}h{m}m{sec}")
        } else if m > 0 {
            format!("{m}m{sec}")
        } else {
            sec
        }
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

/// Docker's `limitedBuffer`: keeps the first [`MAX_OUTPUT_LEN`] bytes, remembers that
/// more came, and shows that as a trailing `...`.
#[derive(Default)]
pub struct LimitedBuffer {
    buf: Vec<u8>,
    truncated: bool,
}

impl LimitedBuffer {
    pub fn write(&mut self, data: &[u8]) {
        let keep = MAX_OUTPUT_LEN.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
        }
    }

    pub fn into_string(self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

/// Reads a shim exec stream (8-byte frame headers; stream 3 carries the exit code)
/// with bounded memory: output goes to a [`LimitedBuffer`], the rest is dropped.
#[derive(Default)]
struct FrameReader {
    header: Vec<u8>,
    left: usize,
    kind: u8,
    code: Vec<u8>,
    out: LimitedBuffer,
    exit: Option<i64>,
}

impl FrameReader {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left == 0 && self.header.len() < 8 {
                let n = (8 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.header.len() == 8 {
                    self.kind = self.header[0];
                    self.left = u32::from_be_bytes([self.header[4], self.header[5], self.header[6], self.header[7]]) as usize;
                    self.header.clear();
                    if self.left == 0 {
                        self.end_frame();
                    }
                }
                continue;
            }
            let n = self.left.min(data.len());
            if self.kind == client::EXEC_EXIT_STREAM {
                if self.code.len() < 32 {
                    self.code.extend_from_slice(&data[..n.min(32 - self.code.len())]);
                }
            } else {
                self.out.write(&data[..n]);
            }
            self.left -= n;
            data = &data[n..];
            if self.left == 0 {
                self.end_frame();
            }
        }
    }

    fn end_frame(&mut self) {
        if self.kind == client::EXEC_EXIT_STREAM {
            self.exit = client::exec_exit_code(&self.code).map(i64::from);
            self.code.clear();
        }
    }
}

/// Runs one probe to its end, its timeout or a stop (blocking; a thread of its own).
fn run_probe(socket: PathBuf, spec: ExecSpec, timeout: Duration, stop: Arc<AtomicBool>) -> ProbeOutcome {
    let (mut stream, pid) = match client::exec(&socket, &spec) {
        Ok(x) => x,
        Err(e) => return ProbeOutcome::Failed(crate::containers::start_error(e).message),
    };
    let deadline = Instant::now() + timeout;
    let mut r = FrameReader::default();
    let mut buf = [0u8; 8192];
    let mut killed: Option<(Instant, bool)> = None;
    loop {
        let now = Instant::now();
        if killed.is_none() && (now >= deadline || stop.load(Ordering::SeqCst)) {
            let _ = berth_sys::process::kill(pid, libc::SIGKILL);
            killed = Some((now + PROBE_KILL_WAIT, now >= deadline));
        }
        if let Some((until, _)) = killed {
            if now >= until {
                break;
            }
        }
        let _ = stream.set_read_timeout(Some(PROBE_POLL));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => r.feed(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted) => {}
            Err(_) => break,
        }
    }
    close(&stream);
    match killed {
        Some((_, true)) => ProbeOutcome::TimedOut,
        Some((_, false)) => ProbeOutcome::Stopped,
        None => match r.exit {
            Some(code) => ProbeOutcome::Exited { code, output: r.out.into_string() },
            None => ProbeOutcome::Failed(format!("healthcheck for container {} has no exit code", spec_container(&socket))),
        },
    }
}

fn close(s: &UnixStream) {
    let _ = s.shutdown(std::net::Shutdown::Both);
}

/// The container id from its shim socket's name (`<id>.sock`).
fn spec_container(socket: &std::path::Path) -> String {
    socket.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The handle of a container's running monitor.
pub(crate) struct Monitor {
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
}

impl Monitor {
    fn close(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

fn config_of(c: &Container) -> Option<(HealthConfig, Vec<String>)> {
    let r = c.record();
    let cfg = HealthConfig::from_value(r.config.healthcheck.as_ref()?)?;
    let argv = cfg.probe_argv(r.config.shell.as_deref().unwrap_or(&[]))?;
    Some((cfg, argv))
}

fn nanos_since(started_at: &str, t: chrono::DateTime<chrono::Utc>) -> i64 {
    timefmt::parse(started_at).and_then(|s| (t - s).num_nanoseconds()).unwrap_or(i64::MAX)
}

impl Engine {
    /// A container (re)started: `State.Health` becomes `starting` with a zero streak
    /// (its log kept) and a monitor opens, if it has a probe (Docker's
    /// `initHealthMonitor`). Call after the record says `running`.
    pub(crate) fn health_init(&self, c: &Arc<Container>) {
        if config_of(c).is_none() {
            return;
        }
        if let Some(m) = lock(&c.health).take() {
            m.close();
        }
        let _ = c.update_state(&self.container_dir(&c.id), |r| {
            let h = r.state.health.get_or_insert_with(Health::default);
            h.status = STARTING.into();
            h.failing_streak = 0;
        });
        self.health_update(c);
    }

    /// Opens the monitor when the container runs unpaused with a probe and has health
    /// state, closes it otherwise (Docker's `updateHealthMonitor`). Used at unpause and
    /// when berthd restarts; a container started before its health state existed (a
    /// record of an older version) is initialised instead.
    pub(crate) fn health_update(&self, c: &Arc<Container>) {
        let r = c.record();
        let probe = config_of(c);
        if r.state.health.is_none() {
            if probe.is_some() && r.state.status == Status::Running {
                self.health_init(c);
            }
            return;
        }
        let want = r.state.status == Status::Running && probe.is_some();
        let mut slot = lock(&c.health);
        if !want {
            if let Some(m) = slot.take() {
                m.close();
            }
            return;
        }
        if slot.is_some() {
            return;
        }
        let m = Monitor { stop: Arc::new(AtomicBool::new(false)), wake: Arc::new(tokio::sync::Notify::new()) };
        let (stop, wake) = (m.stop.clone(), m.wake.clone());
        *slot = Some(m);
        drop(slot);
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move { engine.health_loop(c, stop, wake).await });
    }

    /// Closes the monitor, if one runs; true if it did. The caller then marks the health
    /// `unhealthy` ([`mark_closed`]) in the same record update that records the pause or
    /// the exit.
    pub(crate) fn health_close(&self, c: &Container) -> bool {
        match lock(&c.health).take() {
            Some(m) => {
                m.close();
                true
            }
            None => false,
        }
    }

    async fn health_loop(&self, c: Arc<Container>, stop: Arc<AtomicBool>, wake: Arc<tokio::sync::Notify>) {
        loop {
            let Some((cfg, argv)) = config_of(&c) else { return };
            let r = c.record();
            let status = r.state.health.as_ref().map(|h| h.status.clone()).unwrap_or_default();
            let wait = cfg.next_interval_ns(nanos_since(&r.state.started_at, chrono::Utc::now()), &status);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_nanos(wait.max(0) as u64)) => {}
                _ = wake.notified() => {}
            }
            if stop.load(Ordering::SeqCst) {
                return;
            }
            // A container that stopped running or was removed without closing the
            // monitor (it should not happen) ends it here, and frees the slot for a
            // monitor opened later.
            let gone = !lock(&self.inner.containers).contains_key(&c.id);
            if gone || c.status() != Status::Running {
                let mut slot = lock(&c.health);
                if slot.as_ref().is_some_and(|m| Arc::ptr_eq(&m.stop, &stop)) {
                    *slot = None;
                }
                return;
            }
            let start = chrono::Utc::now();
            let exec_id = hex::encode(rand::random::<[u8; 32]>());
            let cmd = argv.join(" ");
            self.container_event(&r, &format!("exec_create: {cmd}"), &[("execID", exec_id.clone())]);
            let spec = ExecSpec { args: argv, ..Default::default() };
            let timeout = Duration::from_nanos(cfg.timeout_ns().max(0) as u64);
            let (socket, st) = (self.socket_path(&c.id), stop.clone());
            self.container_event(&r, &format!("exec_start: {cmd}"), &[("execID", exec_id.clone())]);
            let outcome = tokio::time::timeout(
                timeout + PROBE_START_TIMEOUT + PROBE_KILL_WAIT,
                tokio::task::spawn_blocking(move || run_probe(socket, spec, timeout, st)),
            )
            .await;
            let outcome = match outcome {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => ProbeOutcome::Failed(e.to_string()),
                Err(_) => ProbeOutcome::Failed(format!("timed out starting health check for container {}", c.id)),
            };
            if let ProbeOutcome::Exited { code, .. } = &outcome {
                self.container_event(&r, "exec_die", &[("execID", exec_id), ("exitCode", code.to_string())]);
            }
            let end = chrono::Utc::now();
            let Some(result) = result_of(outcome, &cfg, timefmt::rfc3339_nano(start), timefmt::rfc3339_nano(end)) else {
                return;
            };
            let mut changed = None;
            let rec = c.update_health(&self.container_dir(&c.id), |rec| {
                // Checked under the record's lock: a close that came first has marked
                // the health unhealthy, and this result must not overwrite that.
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let since = nanos_since(&rec.state.started_at, start);
                if let Some(h) = rec.state.health.as_mut() {
                    changed = apply(h, result, &cfg, since);
                }
            });
            if let (Some(status), Ok(rec)) = (changed, rec) {
                self.container_event(&rec, &format!("health_status: {status}"), &[]);
            }
            if stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

/// A closed monitor leaves the status `unhealthy` (Docker's `CloseMonitorChannel`).
pub(crate) fn mark_closed(h: &mut Option<Health>) {
    if let Some(h) = h.as_mut() {
        h.status = UNHEALTHY.into();
    }
}

/// The `ps` STATUS suffix: `(healthy)`, `(unhealthy)`, `(health: starting)`.
pub fn status_suffix(h: &Health) -> String {
    if h.status == STARTING {
        "(health: starting)".into()
    } else {
        format!("({})", h.status)
    }
}

/// `ps --filter health=…`: Docker's values, checked before listing.
pub fn check_filter_values(values: &[String]) -> crate::Result<()> {
    for v in values {
        if ![STARTING, HEALTHY, UNHEALTHY, "none"].contains(&v.as_str()) {
            return Err(crate::Error::invalid(format!("Unrecognised filter value for health: {v}")));
        }
    }
    Ok(())
}

/// The health a `health=` filter compares: the status, or `none` without health state.
pub fn filter_value(h: Option<&Health>) -> &str {
    h.map_or("none", |h| h.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_parse_and_docker_json() {
        let v = json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000, "Timeout": 0, "Retries": 1});
        let c = HealthConfig::from_value(&v).unwrap();
        assert_eq!(c.test, ["CMD-SHELL", "true"]);
        assert_eq!((c.interval, c.timeout, c.retries), (1_000_000_000, 0, 1));
        // Zero fields are omitted, as Docker's omitempty.
        assert_eq!(c.to_value(), json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000, "Retries": 1}));
        assert_eq!(HealthConfig::from_value(&json!("x")), None);
    }

    #[test]
    fn probe_argv_per_kind() {
        let sh: Vec<String> = vec!["/bin/bash".into(), "-e".into(), "-c".into()];
        let table: [(&[&str], &[String], Option<&[&str]>); 6] = [
            (&["CMD", "cat", "/f"], &[], Some(&["cat", "/f"])),
            (&["CMD-SHELL", "test -f /f"], &[], Some(&["/bin/sh", "-c", "test -f /f"])),
            (&["CMD-SHELL", "x"], &sh, Some(&["/bin/bash", "-e", "-c", "x"])),
            (&["NONE"], &[], None),
            (&["BOGUS", "x"], &[], None),
            (&[], &[], None),
        ];
        for (test, shell, want) in table {
            let c = HealthConfig { test: test.iter().map(|s| s.to_string()).collect(), ..Default::default() };
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(c.probe_argv(shell), want, "{test:?}");
        }
    }

    #[test]
    fn merge_as_docker() {
        let img = json!({"Test": ["CMD", "img"], "Interval": 5, "Timeout": 6, "StartPeriod": 7, "StartInterval": 8, "Retries": 9});
        let table = [
            (None, None, None),
            (None, Some(img.clone()), Some(img.clone())),
            (Some(json!({"Test": ["NONE"]})), None, Some(json!({"Test": ["NONE"]}))),
            // The request's fields win; its zero and missing ones come from the image.
            (
                Some(json!({"Test": ["CMD-SHELL", "me"], "Interval": 1, "Retries": 0})),
                Some(img.clone()),
                Some(json!({"Test": ["CMD-SHELL", "me"], "Interval": 1, "Timeout": 6, "StartPeriod": 7, "StartInterval": 8, "Retries": 9})),
            ),
            (
                Some(json!({"Timeout": 2})),
                Some(img.clone()),
                Some(json!({"Test": ["CMD", "img"], "Interval": 5, "Timeout": 2, "StartPeriod": 7, "StartInterval": 8, "Retries": 9})),
            ),
            (Some(json!({"Test": ["NONE"]})), Some(img), Some(json!({"Test": ["NONE"], "Interval": 5, "Timeout": 6, "StartPeriod": 7, "StartInterval": 8, "Retries": 9}))),
        ];
        for (user, image, want) in table {
            let mut u = user.clone();
            merge(&mut u, image.as_ref());
            assert_eq!(u, want, "{user:?} + {image:?}");
        }
    }

    #[test]
    fn start_interval_is_dropped_for_old_clients() {
        let mut h = Some(json!({"Test": ["CMD", "x"], "StartInterval": 5}));
        drop_start_interval(&mut h);
        assert_eq!(h, Some(json!({"Test": ["CMD", "x"]})));
        let mut none = None;
        drop_start_interval(&mut none);
        assert_eq!(none, None);
    }

    #[test]
    fn intervals() {
        let c = HealthConfig { interval: 1_000, start_period: 10_000, ..Default::default() };
        // (since start, status, wait)
        let table = [
            (0, STARTING, DEFAULT_START_INTERVAL_NS),
            (9_999, STARTING, DEFAULT_START_INTERVAL_NS),
            (10_000, STARTING, 1_000),
            (0, HEALTHY, 1_000),
        ];
        for (since, status, want) in table {
            assert_eq!(c.next_interval_ns(since, status), want, "{since} {status}");
        }
        assert_eq!(HealthConfig::default().next_interval_ns(0, STARTING), DEFAULT_INTERVAL_NS);
        let c = HealthConfig { start_period: 10, start_interval: 3, ..Default::default() };
        assert_eq!(c.next_interval_ns(0, STARTING), 3);
    }

    fn res(code: i64) -> HealthcheckResult {
        HealthcheckResult { exit_code: code, ..Default::default() }
    }

    #[test]
    fn results_move_the_state() {
        let cfg = HealthConfig { retries: 2, start_period: 100, ..Default::default() };
        // (start status, streak, exit code, since start, want status, want streak, changed)
        let table = [
            (STARTING, 0, 0, 0, HEALTHY, 0, true),
            (STARTING, 0, 1, 50, STARTING, 0, false), // inside the start period: not counted
            (STARTING, 0, 1, 100, STARTING, 1, false),
            (STARTING, 1, 1, 100, UNHEALTHY, 2, true),
            (HEALTHY, 0, 1, 50, HEALTHY, 1, false), // the start period only spares `starting`
            (HEALTHY, 1, -1, 500, UNHEALTHY, 2, true),
            (UNHEALTHY, 5, 0, 500, HEALTHY, 0, true),
            (UNHEALTHY, 5, 2, 500, UNHEALTHY, 6, false),
        ];
        for (st, streak, code, since, want, want_streak, changed) in table {
            let mut h = Health { status: st.into(), failing_streak: streak, log: Vec::new() };
            let got = apply(&mut h, res(code), &cfg, since);
            assert_eq!((h.status.as_str(), h.failing_streak), (want, want_streak), "{st} {streak} {code} {since}");
            assert_eq!(got.is_some(), changed);
        }
    }

    #[test]
    fn log_keeps_the_last_five() {
        let cfg = HealthConfig::default();
        let mut h = Health { status: STARTING.into(), ..Default::default() };
        for code in 0..8 {
            apply(&mut h, res(code), &cfg, i64::MAX);
        }
        assert_eq!(h.log.iter().map(|r| r.exit_code).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
    }

    #[test]
    fn outcomes_to_results() {
        let cfg = HealthConfig { timeout: 1_500_000_000, ..Default::default() };
        let r = |o| result_of(o, &cfg, "s".into(), "e".into()).map(|r| (r.exit_code, r.output));
        assert_eq!(r(ProbeOutcome::Exited { code: 3, output: "x".into() }), Some((3, "x".into())));
        assert_eq!(r(ProbeOutcome::TimedOut), Some((-1, "Health check exceeded timeout (1.5s)".into())));
        assert_eq!(r(ProbeOutcome::Failed("no".into())), Some((-1, "no".into())));
        assert_eq!(r(ProbeOutcome::Stopped), None);
        assert_eq!(result_of(ProbeOutcome::TimedOut, &HealthConfig::default(), String::new(), String::new()).unwrap().output, "Health check exceeded timeout (30s)");
    }

    #[test]
    fn go_durations() {
        let table = [
            (0, "0s"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (500_000_000, "500ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (7_200_000_000_000, "2h0m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (-2_000_000_000, "-2s"),
        ];
        for (ns, want) in table {
            assert_eq!(go_duration(ns), want, "{ns}");
        }
    }

    #[test]
    fn output_is_capped_with_dots() {
        let mut b = LimitedBuffer::default();
        b.write(b"abc");
        assert_eq!(b.into_string(), "abc");
        let mut b = LimitedBuffer::default();
        b.write(&[b'x'; 4000]);
        b.write(&[b'y'; 200]);
        b.write(b"z");
        let s = b.into_string();
        assert_eq!(s.len(), MAX_OUTPUT_LEN + 3);
        assert!(s.ends_with("yyy..."));
    }

    #[test]
    fn frames_in_pieces() {
        let mut data = Vec::new();
        for (kind, payload) in [(1u8, b"hello ".to_vec()), (2, b"world".to_vec()), (3, b"7".to_vec())] {
            data.extend_from_slice(&[kind, 0, 0, 0]);
            data.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            data.extend_from_slice(&payload);
        }
        for chunk in [1, 3, 8, 64] {
            let mut r = FrameReader::default();
            for c in data.chunks(chunk) {
                r.feed(c);
            }
            assert_eq!(r.exit, Some(7), "chunk {chunk}");
            assert_eq!(r.out.into_string(), "hello world");
        }
    }

    #[test]
    fn filter_values_and_suffixes() {
        assert!(check_filter_values(&["healthy".into(), "none".into(), "starting".into(), "unhealthy".into()]).is_ok());
        assert_eq!(check_filter_values(&["ok".into()]).unwrap_err().message, "Unrecognised filter value for health: ok");
        assert_eq!(filter_value(None), "none");
        let h = |s: &str| Health { status: s.into(), ..Default::default() };
        assert_eq!(status_suffix(&h(STARTING)), "(health: starting)");
        assert_eq!(status_suffix(&h(HEALTHY)), "(healthy)");
        assert_eq!(status_suffix(&h(UNHEALTHY)), "(unhealthy)");
        let mut o = Some(h(HEALTHY));
        mark_closed(&mut o);
        assert_eq!(o.unwrap().status, UNHEALTHY);
    }
}
