//! Late attaches: a client that starts a container first and attaches to its output
//! only afterwards. docker-compose 1.29's `run` with `COMPOSE_INTERACTIVE_NO_CLI=1`
//! does this (dockerpty builds its attach sockets lazily, after compose's `start`), so
//! a short-lived container has printed, or even exited, before the attach arrives: a
//! live-only attach then misses the output, or waits for a next start that never comes.
//! Docker has the same window and gets away with its slower start.
//!
//! Berth closes it: a start that found no attach waiting, for a container created to be
//! attached to (`AttachStdout`/`AttachStderr`), leaves its output streams "unclaimed".
//! The first attach for those streams within [`WINDOW`] of the start is served from the
//! container's log, from the start of this run and following it until the container
//! exits (exactly this run's output, no gap or duplicate between replay and live). Any
//! later attach, one with stdin, or one after the window is the ordinary live attach.
//! Containers (`containers.rs`) keep the state under their attach lock; the daemon's
//! attach route (`berth-daemon/src/containers.rs`) turns the answer into a log stream.

use std::time::{Duration, Instant};

/// How long after a start its output can still be claimed by a late attach.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The output streams of the current run that no client has attached to yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Unclaimed {
    /// Unix seconds taken before the process ran: the log is read from here.
    pub since: f64,
    pub at: Instant,
    pub stdout: bool,
    pub stderr: bool,
}

impl Unclaimed {
    /// What a start leaves behind: None when an attach was waiting for it or the
    /// container was not created to be attached to (`run -d`).
    pub fn at_start(waiting: bool, attach_stdout: bool, attach_stderr: bool, since: f64, at: Instant) -> Option<Unclaimed> {
        (!waiting && (attach_stdout || attach_stderr)).then_some(Unclaimed { since, at, stdout: attach_stdout, stderr: attach_stderr })
    }

    /// Claims the streams an attach asks for: Some(since) when it is to be served from
    /// the log since that time, None for an ordinary live attach.
    pub fn claim(&mut self, stdin: bool, stdout: bool, stderr: bool, now: Instant) -> Option<f64> {
        if stdin || !(stdout || stderr) || now.saturating_duration_since(self.at) > WINDOW {
            return None;
        }
        if (stdout && !self.stdout) || (stderr && !self.stderr) {
            return None;
        }
        self.stdout &= !stdout;
        self.stderr &= !stderr;
        Some(self.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_start_only_when_nobody_waits_and_output_is_attached() {
        let t = Instant::now();
        // (waiting, attach_stdout, attach_stderr, expected)
        let cases = [
            (false, true, true, true),
            (false, true, false, true),
            (false, false, false, false),
            (true, true, true, false),
        ];
        for (waiting, out, err, want) in cases {
            assert_eq!(Unclaimed::at_start(waiting, out, err, 1.5, t).is_some(), want, "{waiting} {out} {err}");
        }
    }

    #[test]
    fn claims_each_stream_once_within_the_window() {
        let t = Instant::now();
        let fresh = || Unclaimed { since: 7.0, at: t, stdout: true, stderr: true };
        // dockerpty's order: stdin alone (live), then stdout, then stderr, each once.
        let mut u = fresh();
        assert_eq!(u.claim(true, false, false, t), None);
        assert_eq!(u.claim(false, true, false, t), Some(7.0));
        assert_eq!(u.claim(false, true, false, t), None, "stdout claimed already");
        assert_eq!(u.claim(false, false, true, t), Some(7.0));
        assert_eq!(u.claim(false, true, true, t), None);
        // Both in one attach.
        let mut u = fresh();
        assert_eq!(u.claim(false, true, true, t), Some(7.0));
        assert_eq!(u.claim(false, false, true, t), None);
        // stdin with output, nothing asked, or after the window: live.
        let mut u = fresh();
        assert_eq!(u.claim(true, true, true, t), None);
        assert_eq!(u.claim(false, false, false, t), None);
        assert_eq!(u.claim(false, true, false, t + WINDOW + Duration::from_millis(1)), None);
        assert_eq!(u.claim(false, true, false, t + WINDOW), Some(7.0));
        // A stream the container was not created to attach.
        let mut u = Unclaimed { stderr: false, ..fresh() };
        assert_eq!(u.claim(false, false, true, t), None);
    }
}
