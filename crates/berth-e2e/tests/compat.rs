//! Engine API details that clients depend on (issue 8), each found by docker-py's
//! integration suite or a new user, checked over the raw API and through both CLIs.

use berth_e2e::{Cli, Daemon};

/// `POST /containers/{id}/kill` with SIGKILL answers once the exit is recorded: an
/// inspect right after shows the container stopped with 137, a remove right after works.
#[test]
fn kill_answers_after_the_exit_is_recorded() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    for round in 0..5 {
        let name = format!("k{round}");
        d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]).ok();
        let r = d.request("POST", &format!("/v1.47/containers/{name}/kill"), None);
        assert_eq!(r.status, 204, "{}", r.text());
        let state = d.inspect(&name)["State"].clone();
        assert_eq!(state["Running"], false, "round {round}: {state}");
        assert_eq!(state["Status"], "exited", "round {round}: {state}");
        assert_eq!(state["ExitCode"], 137, "round {round}: {state}");
        let rm = d.request("DELETE", &format!("/v1.47/containers/{name}"), None);
        assert_eq!(rm.status, 204, "round {round}: {}", rm.text());
    }
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "-d", "--name", "kc", "busybox", "sleep", "300"]).ok();
        d.cli(cli, &["kill", "kc"]).ok();
        d.cli(cli, &["rm", "kc"]).ok();
    }
}

/// Runs a docker-py script against the daemon (`CLIENT` is a low-level APIClient).
fn docker_py(d: &Daemon, body: &str) -> berth_e2e::Run {
    let script = format!(
        "import docker\nCLIENT = docker.APIClient(base_url=\"{}\")\n{body}",
        d.host()
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script);
    berth_e2e::run_with_timeout(cmd, "python3 -c <docker-py script>".into(), std::time::Duration::from_secs(120))
}

/// Exec output is multiplexed according to `Tty` of the *start* request, not of the
/// create request: docker-py creates with a TTY, starts without one and reads frames.
/// And none of it is lost: the process starts only once the client holds the upgraded
/// stream (docker-py reads the 101 through a buffered reader and then the raw socket,
/// so output sent along with the 101 used to vanish, about one exec in ten).
#[test]
fn exec_framing_follows_the_start_request() {
    let d = Daemon::start();
    d.berth(&["run", "-d", "--name", "ex", "busybox", "sleep", "300"]).ok();
    let r = docker_py(
        &d,
        r#"
lost = 0
for i in range(40):
    e = CLIENT.exec_create("ex", "echo x", tty=(i % 2 == 0))
    if CLIENT.exec_start(e["Id"], tty=False) not in (b"x\n", b"x\r\n"):
        lost += 1
print("lost", lost)
e = CLIENT.exec_create("ex", "echo hello-tty", tty=True)
print(repr(CLIENT.exec_start(e["Id"], tty=False)))
e = CLIENT.exec_create("ex", ["sh", "-c", "echo out; echo err >&2"], tty=False)
print(repr(CLIENT.exec_start(e["Id"], tty=False, demux=True)))
e = CLIENT.exec_create("ex", ["sh", "-c", "echo raw"], tty=False)
print(repr(CLIENT.exec_start(e["Id"], tty=True)))
"#,
    )
    .ok();
    let lines = r.lines();
    assert_eq!(lines[0], "lost 0", "{r:?}");
    assert_eq!(lines[1], "b'hello-tty\\r\\n'", "{r:?}");
    assert_eq!(lines[2], "(b'out\\n', b'err\\n')", "{r:?}");
    assert_eq!(lines[3], "b'raw\\n'", "{r:?}");
}

/// `attach` with `logs=1&stream=0` on an exited container answers the log at once
/// (docker-py's `attach(stream=False, logs=True)`), and with `stream=0` alone nothing.
#[test]
fn attach_replays_logs_without_streaming() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let r = docker_py(
        &d,
        r#"
c = CLIENT.create_container("busybox", "sh -c 'echo hello; echo oops >&2'")
CLIENT.start(c)
CLIENT.wait(c, condition="not-running")
print(repr(CLIENT.attach(c, stream=False, logs=True)))
print(repr(CLIENT.attach(c, stream=False, logs=True, stderr=False)))
print(repr(CLIENT.attach(c, stream=False, logs=False)))
t = CLIENT.create_container("busybox", "echo tty-line", tty=True)
CLIENT.start(t)
CLIENT.wait(t, condition="not-running")
print(repr(CLIENT.attach(t, stream=False, logs=True)))
"#,
    )
    .ok();
    let lines = r.lines();
    assert_eq!(lines[0], "b'hello\\noops\\n'", "{r:?}");
    assert_eq!(lines[1], "b'hello\\n'", "{r:?}");
    assert_eq!(lines[2], "b''", "{r:?}");
    assert_eq!(lines[3], "b'tty-line\\r\\n'", "{r:?}");
}

/// `GET /version` fills what Docker fills: the git commit and build time at the top and
/// in the engine component's details (where the docker CLI reads them), and the Rust
/// toolchain under its own key rather than in `GoVersion`.
#[test]
fn version_reports_the_build() {
    let d = Daemon::start();
    let v = d.request("GET", "/v1.47/version", None).json();
    let details = &v["Components"][0]["Details"];
    for key in ["GitCommit", "BuildTime"] {
        assert!(!v[key].as_str().unwrap_or("").is_empty(), "{key} empty: {v}");
        assert_eq!(v[key], details[key], "{key}: {v}");
    }
    assert!(details["RustVersion"].as_str().unwrap_or("").starts_with("1."), "{v}");
    assert_eq!(v["GoVersion"], "", "{v}");
    d.berth(&["version"]).ok().stdout_has("  Rust version:").stdout_lacks("Go version");
    d.docker(&["version"]).ok().stdout_has("  Git commit:");
}

/// `events`, `logs -f` and `wait` whose daemon dies say so as the docker CLI does
/// (`unexpected EOF`, exit 1) rather than ending quietly; the container (which outlives
/// berthd) is still there for the same commands once berthd is back.
#[test]
fn streams_report_a_lost_daemon_and_work_again_after_it() {
    let mut d = Daemon::start();
    d.berth(&["run", "-d", "--name", "tick", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done"]).ok();
    for cli in [Cli::Berth, Cli::Docker] {
        let events = d.cli_background(cli, &["events"]);
        let logs = d.cli_background(cli, &["logs", "-f", "tick"]);
        let wait = d.cli_background(cli, &["wait", "tick"]);
        logs.expect_stdout("tick", std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(300));
        d.kill9();
        for (what, bg) in [("events", events), ("logs -f", logs), ("wait", wait)] {
            let r = bg.wait(std::time::Duration::from_secs(30));
            assert_eq!(r.code, 1, "{cli:?} {what}: {r:?}");
            assert!(r.stderr.contains("unexpected EOF"), "{cli:?} {what}: {r:?}");
        }
        d.start_again();
        d.cli(cli, &["logs", "--tail", "1", "tick"]).ok().stdout_has("tick");
    }
}
