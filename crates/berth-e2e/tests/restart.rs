//! Restart policies and the daemon going away: `--restart on-failure:N|always|
//! unless-stopped`, a daemon restart, and a daemon SIGKILL with running containers
//! (their shims outlive berthd: they stay up, keep logging, and can be used again).

use berth_e2e::{both, wait_until, Daemon};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn status_of(d: &Daemon, name: &str) -> String {
    let ps = d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]).ok();
    ps.lines()
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}|")).map(str::to_string))
        .unwrap_or_default()
}

both!(fn on_failure_restarts_n_times_then_stays_exited(d, cli) {
    d.cli(cli, &["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "alpine", "sh", "-c", "echo run; exit 3"]).ok();
    let v = d.wait_inspect("flaky", T, "done restarting", |v| {
        v["State"]["Status"] == "exited" && v["RestartCount"] == 2
    });
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["HostConfig"]["RestartPolicy"], serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2}));
    // And it stays that way.
    std::thread::sleep(Duration::from_secs(2));
    let v = d.inspect("flaky");
    assert_eq!((v["State"]["Status"].as_str(), v["RestartCount"].as_u64()), (Some("exited"), Some(2)), "{}", v["State"]);
    assert!(status_of(&d, "flaky").starts_with("Exited (3) "), "{}", status_of(&d, "flaky"));
    assert_eq!(d.cli(cli, &["logs", "flaky"]).ok().stdout, "run\nrun\nrun\n");
    let r = d.cli(cli, &["inspect", "-f", "{{.RestartCount}}", "flaky"]).ok();
    assert_eq!(r.out(), "2");

    // on-failure does not restart a success.
    d.cli(cli, &["run", "-d", "--name", "fine", "--restart", "on-failure:2", "alpine", "true"]).ok();
    let v = d.wait_inspect("fine", T, "exited", |v| v["State"]["Status"] == "exited");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.inspect("fine")["RestartCount"], 0, "{}", v["State"]);

    // Conflicting flags are refused.
    d.cli(cli, &["run", "--rm", "--restart", "always", "alpine", "true"])
        .code(125)
        .stderr_has("conflicting options: cannot specify both --restart and --rm");
    d.cli(cli, &["run", "-d", "--restart", "sometimes", "alpine", "true"])
        .code(125)
        .stderr_has("invalid restart policy");
});

both!(fn always_restarts_but_not_after_a_manual_stop(d, cli) {
    d.cli(cli, &["run", "-d", "--name", "again", "--restart", "always", "alpine", "sh", "-c", "echo run; sleep 1; exit 1"]).ok();
    d.wait_inspect("again", T, "restarted twice and running", |v| {
        v["RestartCount"].as_u64().unwrap_or(0) >= 2 && v["State"]["Running"] == true
    });
    // A manual stop (of the running container) is final.
    d.cli(cli, &["stop", "-t", "1", "again"]).ok();
    let n = d.inspect("again")["RestartCount"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let v = d.inspect("again");
    assert_eq!(v["State"]["Status"], "exited", "{}", v["State"]);
    assert_eq!(v["RestartCount"], n);
    // update --restart changes the policy of an existing container.
    d.cli(cli, &["update", "--restart", "no", "again"]).ok();
    assert_eq!(d.inspect("again")["HostConfig"]["RestartPolicy"]["Name"], "no");
});

/// `--restart always` survives a daemon restart; a container manually stopped before the
/// restart is started again by the daemon (Docker: "restarted only when the daemon
/// restarts"), `unless-stopped` and `no` are not.
#[test]
fn restart_policies_across_a_daemon_restart() {
    let mut d = Daemon::start();
    d.berth(&["pull", "alpine"]).ok();
    d.docker(&["run", "-d", "--name", "always-up", "--restart", "always", "alpine", "sleep", "300"]).ok();
    d.docker(&["run", "-d", "--name", "always-stopped", "--restart", "always", "alpine", "sleep", "300"]).ok();
    d.docker(&["run", "-d", "--name", "unless-stopped", "--restart", "unless-stopped", "alpine", "sleep", "300"]).ok();
    d.docker(&["run", "-d", "--name", "plain", "alpine", "sleep", "300"]).ok();
    d.docker(&["stop", "-t", "0", "always-stopped", "unless-stopped"]).ok();
    let pid = d.inspect("always-up")["State"]["Pid"].clone();

    d.restart();

    let v = d.wait_inspect("always-up", T, "running", |v| v["State"]["Running"] == true);
    assert_eq!(v["State"]["Pid"], pid, "a running container is kept, not restarted");
    d.wait_inspect("always-stopped", T, "started by the daemon", |v| v["State"]["Running"] == true);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.inspect("unless-stopped")["State"]["Status"], "exited");
    assert!(status_of(&d, "plain").starts_with("Up "), "{}", status_of(&d, "plain"));
    d.berth(&["rm", "-f", "always-up", "always-stopped", "unless-stopped", "plain"]).ok();
}

/// berthd SIGKILLed with running containers: they keep running and logging, one exits
/// while the daemon is down, an `always` one exits too; the next daemon sees it all.
#[test]
fn daemon_sigkill_with_running_containers() {
    let mut d = Daemon::start();
    d.berth(&["pull", "alpine"]).ok();
    d.docker(&["run", "-d", "--name", "ticker", "alpine", "sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done"]).ok();
    d.docker(&["run", "-d", "--name", "svc", "alpine", "sleep", "300"]).ok();
    d.docker(&["run", "-d", "--name", "tty", "-t", "alpine", "sh", "-c", "sleep 1; echo tty-late; sleep 300"]).ok();
    d.docker(&["run", "-d", "--name", "short", "alpine", "sh", "-c", "sleep 2; echo bye; exit 7"]).ok();
    d.docker(&["run", "-d", "--name", "bouncy", "--restart", "always", "alpine", "sh", "-c", "sleep 2; exit 1"]).ok();
    wait_until(T, "ticks", || d.docker(&["logs", "ticker"]).stdout.contains("tick2\n").then_some(()));
    let ticker_pid = d.inspect("ticker")["State"]["Pid"].clone();
    let before = d.docker(&["logs", "ticker"]).ok().lines().len();

    d.kill9();
    std::thread::sleep(Duration::from_secs(4));
    d.start_again();

    // Still up, same process.
    let v = d.inspect("ticker");
    assert_eq!(v["State"]["Running"], true, "{}", v["State"]);
    assert_eq!(v["State"]["Pid"], ticker_pid);
    assert!(status_of(&d, "svc").starts_with("Up "), "{}", status_of(&d, "svc"));
    // The logs kept being written while the daemon was down: ~20 ticks in 4 s, no gap.
    let logs = d.docker(&["logs", "ticker"]).ok();
    let lines = logs.lines();
    assert!(lines.len() >= before + 12, "only {} lines after the outage (had {before}): {logs:?}", lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &format!("tick{i}"), "{logs:?}");
    }
    assert!(d.docker(&["logs", "tty"]).ok().stdout.contains("tty-late\r\n"));
    // The container that exited meanwhile shows its exit code and its last words.
    let v = d.wait_inspect("short", T, "exited", |v| v["State"]["Status"] == "exited");
    assert_eq!(v["State"]["ExitCode"], 7, "{}", v["State"]);
    assert!(status_of(&d, "short").starts_with("Exited (7) "), "{}", status_of(&d, "short"));
    assert_eq!(d.docker(&["logs", "short"]).ok().stdout, "bye\n");
    assert_eq!(d.berth(&["wait", "short"]).ok().out(), "7");
    // The `always` container that died while the daemon was down is restarted.
    d.wait_inspect("bouncy", T, "restarted", |v| v["RestartCount"].as_u64().unwrap_or(0) >= 1);

    // exec, attach, stop work against the survivors.
    assert_eq!(d.docker(&["exec", "svc", "echo", "ok"]).ok().out(), "ok");
    assert_eq!(d.berth(&["exec", "svc", "sh", "-c", "exit 5"]).code(5).code, 5);
    let att = d.cli_background(berth_e2e::Cli::Docker, &["attach", "--no-stdin", "ticker"]);
    att.expect_stdout("tick", T);
    d.docker(&["stop", "-t", "1", "ticker"]).ok();
    let r = att.wait(T);
    assert_eq!(r.code, 137, "attach ends with the container's code: {r:?}");
    assert!(status_of(&d, "ticker").starts_with("Exited (137) "), "{}", status_of(&d, "ticker"));
    d.docker(&["kill", "svc"]).ok();
    d.wait_inspect("svc", T, "exited", |v| v["State"]["ExitCode"] == 137);
    d.docker(&["top", "tty"]).ok().stdout_has("sleep 300");
    d.berth(&["rm", "-f", "tty", "bouncy", "svc", "ticker", "short"]).ok();
    assert!(d.docker(&["ps", "-a", "-q"]).ok().out().is_empty());
}

/// `--log-opt max-size=1k --log-opt max-file=2`: the json-file log rotates; `logs`
/// returns what rotation kept, complete and in order, ending with the last line.
#[test]
fn log_rotation_keeps_the_tail_complete() {
    let d = Daemon::start();
    d.berth(&["pull", "alpine"]).ok();
    for cli in [berth_e2e::Cli::Docker, berth_e2e::Cli::Berth] {
        let name = format!("rot-{cli:?}").to_lowercase();
        d.cli(cli, &[
            "run", "--name", &name, "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
            "alpine", "sh", "-c", "for i in $(seq 1 200); do echo line-$i-xxxxxxxxxxxxxxxxxxxx; done",
        ]).ok();
        let v = d.inspect(&name);
        assert_eq!(v["HostConfig"]["LogConfig"], serde_json::json!({"Type": "json-file", "Config": {"max-file": "2", "max-size": "1k"}}));
        let log_path = v["LogPath"].as_str().unwrap_or_default().to_string();
        assert!(log_path.ends_with("-json.log"), "{v}");
        let cur = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let rotated = std::fs::metadata(format!("{log_path}.1")).map(|m| m.len()).unwrap_or(0);
        assert!(cur <= 1024 && rotated > 0 && rotated <= 1024, "sizes {cur} / {rotated}");
        assert!(!std::path::Path::new(&format!("{log_path}.2")).exists(), "max-file=2 keeps two files");

        let logs = d.cli(cli, &["logs", &name]).ok();
        let lines = logs.lines();
        let nums: Vec<u32> = lines
            .iter()
            .map(|l| l.strip_prefix("line-").and_then(|r| r.split('-').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("bad line {l:?}: {logs:?}")))
            .collect();
        assert_eq!(nums.last(), Some(&200), "{logs:?}");
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "gap in the rotated log: {logs:?}");
        // One json line is ~100 bytes: two 1k files hold about 10..20 lines.
        assert!((8..=25).contains(&nums.len()), "{} lines kept: {logs:?}", nums.len());
        let tail = d.cli(cli, &["logs", "--tail", "3", &name]).ok();
        assert_eq!(tail.lines(), ["line-198-xxxxxxxxxxxxxxxxxxxx", "line-199-xxxxxxxxxxxxxxxxxxxx", "line-200-xxxxxxxxxxxxxxxxxxxx"]);
    }
    // A bad option is refused at create time: nothing is left behind.
    d.docker(&["run", "-d", "--log-opt", "max-size=bogus", "alpine", "true"]).code(125);
    let left = d.docker(&["ps", "-a", "--format", "{{.Names}}"]).ok();
    assert_eq!(left.lines(), ["rot-berth", "rot-docker"], "{left:?}");
}
