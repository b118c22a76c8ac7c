//! Interactive sessions on a real pseudo-terminal: `run -it`, `exec -it`, `attach`,
//! resize, Ctrl-D, the detach keys (docs/engine-api-trace.md §4.4, §4.9, §4.10).
//! The client runs as a session leader with the pty slave as its controlling terminal,
//! exactly as under a terminal emulator; the test types into the master.

use berth_e2e::{both, Cli, Daemon, PtySession};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// busybox ash's prompt as root.
const PROMPT: &str = "# ";

/// Types a command line and waits for a marker it prints, so the echo of the typed
/// line (which contains the unexpanded text) is never mistaken for the output.
fn run_line(p: &mut PtySession, line: &str, expect: &str) -> String {
    p.send(format!("{line}\r").as_bytes());
    p.expect(expect, T)
}

/// `stty size` inside the session until it reports `rows cols` (resizes are
/// asynchronous: the client forwards SIGWINCH as an API call).
fn wait_size(p: &mut PtySession, rows: u16, cols: u16) {
    let want = format!("sz={rows} {cols}\r\n");
    for attempt in 0..50 {
        p.send(format!("echo \"sz=$(stty size)\" # {attempt}\r").as_bytes());
        let got = p.expect("\r\nsz=", T);
        let _ = got;
        let line = p.expect("\r\n", T);
        if format!("sz={line}") == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("terminal never reported {rows}x{cols}; transcript:\n{:?}", p.transcript());
}

fn container_names(d: &Daemon) -> String {
    d.docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]).ok().stdout
}

both!(fn run_it_shell_arithmetic_resize_ctrl_d(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let mut p = d.cli_pty(cli, &["run", "-it", "--name", "tty1", "alpine", "sh"], 30, 100);
    p.expect(PROMPT, T);
    run_line(&mut p, "echo $((6*7))", "\r\n42\r\n");
    run_line(&mut p, "tty", "\r\n/dev/pts/0\r\n");
    // The initial size comes from the client's terminal (ConsoleSize + /resize).
    wait_size(&mut p, 30, 100);
    p.resize(40, 120);
    wait_size(&mut p, 40, 120);
    // The log of a TTY container is the raw terminal stream.
    // Ctrl-D at the prompt: the shell exits 0, and so does the client.
    p.send(b"\x04");
    assert_eq!(p.wait(T), 0, "transcript: {:?}", p.transcript());
    let ps = container_names(&d);
    assert!(ps.starts_with("tty1 Exited (0) "), "{ps}");
    let logs = d.cli(cli, &["logs", "tty1"]).ok();
    assert!(logs.stdout.contains("42\r\n"), "{logs:?}");
});

both!(fn run_it_exit_code_is_passed_back(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    // Ctrl-D ends `cat` (EOF on the terminal), then the shell exits 3.
    let mut p = d.cli_pty(cli, &["run", "-it", "--rm", "alpine", "sh", "-c", "cat; echo cat-done; exit 3"], 24, 80);
    std::thread::sleep(Duration::from_millis(500));
    p.send(b"hello-cat\r");
    // Once by the terminal's echo, once by cat.
    p.expect("hello-cat\r\n", T);
    p.expect("hello-cat\r\n", T);
    p.send(b"\x04");
    p.expect("cat-done", T);
    assert_eq!(p.wait(T), 3, "transcript: {:?}", p.transcript());
    assert!(d.cli(cli, &["ps", "-a", "-q"]).ok().out().is_empty(), "--rm must remove it");
});

both!(fn run_it_needs_a_terminal(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    // stdin is a pipe, not a TTY: the client refuses before creating anything.
    d.cli_input(cli, &["run", "-it", "alpine", "true"], b"")
        .code(1)
        .stderr_has("the input device is not a TTY");
});

both!(fn exec_it_shell_keeps_state_in_the_container(d, cli) {
    d.cli(cli, &["run", "-d", "--name", "box", "alpine", "sleep", "300"]).ok();
    let mut p = d.cli_pty(cli, &["exec", "-it", "box", "sh"], 30, 100);
    p.expect(PROMPT, T);
    run_line(&mut p, "touch /new-file; export hello=hi; echo \"[$hello]\"", "\r\n[hi]\r\n");
    run_line(&mut p, "tty", "\r\n/dev/pts/");
    wait_size(&mut p, 30, 100);
    p.resize(50, 132);
    wait_size(&mut p, 50, 132);
    p.send(b"\x04");
    assert_eq!(p.wait(T), 0, "transcript: {:?}", p.transcript());
    // The file is in the container; the variable died with the exec'd shell.
    d.cli(cli, &["exec", "box", "ls", "/new-file"]).ok();
    let r = d.cli(cli, &["exec", "box", "sh", "-c", "echo \"[$hello]\""]).ok();
    assert_eq!(r.stdout, "[]\n", "{r:?}");
    // The exit code of an interactive exec is passed back.
    let mut p = d.cli_pty(cli, &["exec", "-it", "box", "sh"], 24, 80);
    p.expect(PROMPT, T);
    p.send(b"exit 7\r");
    assert_eq!(p.wait(T), 7, "transcript: {:?}", p.transcript());
    // Exec output never goes to the container's log.
    assert_eq!(d.cli(cli, &["logs", "box"]).ok().stdout, "");
    d.cli(cli, &["rm", "-f", "box"]).ok();
});

both!(fn redis_cli_at_the_prompt(d, cli) {
    d.cli(cli, &["run", "-d", "--name", "red", "redis"]).ok();
    berth_e2e::wait_until(T, "redis to accept connections", || {
        d.docker(&["logs", "red"]).stdout.contains("Ready to accept connections").then_some(())
    });
    let mut p = d.cli_pty(cli, &["exec", "-it", "red", "redis-cli"], 24, 80);
    p.expect("127.0.0.1:6379> ", T);
    p.send(b"set greeting hello-berth\r");
    p.expect("OK", T);
    p.send(b"get greeting\r");
    p.expect("\"hello-berth\"", T);
    p.send(b"quit\r");
    assert_eq!(p.wait(T), 0, "transcript: {:?}", p.transcript());
    // The value lives in the server, not in the exec.
    d.cli(cli, &["exec", "red", "redis-cli", "get", "greeting"]).ok().stdout_has("hello-berth");
    d.cli(cli, &["rm", "-f", "red"]).ok();
});

both!(fn detach_keys_leave_the_container_running(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let mut p = d.cli_pty(cli, &["run", "-it", "--name", "det", "alpine", "sh"], 24, 80);
    p.expect(PROMPT, T);
    run_line(&mut p, "echo first-$((1+1))", "first-2");
    // ctrl-p ctrl-q
    p.send(b"\x10\x11");
    assert_eq!(p.wait(T), 0, "detaching exits 0; transcript: {:?}", p.transcript());
    let ps = container_names(&d);
    assert!(ps.starts_with("det Up "), "the container must keep running: {ps}");

    // Attach again, use the shell, detach again. Unlike `run -it`, the docker CLI's
    // `attach` reports the detach as the error "read escape sequence" and exits 1.
    let mut p = d.cli_pty(cli, &["attach", "det"], 24, 80);
    std::thread::sleep(Duration::from_millis(500));
    run_line(&mut p, "echo again-$((2+3))", "again-5");
    p.send(b"\x10\x11");
    p.expect("read escape sequence", T);
    assert_eq!(p.wait(T), 1, "transcript: {:?}", p.transcript());
    assert!(container_names(&d).starts_with("det Up "));

    // Custom detach keys.
    let mut p = d.cli_pty(cli, &["attach", "--detach-keys", "ctrl-x,x", "det"], 24, 80);
    std::thread::sleep(Duration::from_millis(500));
    run_line(&mut p, "echo third-$((3+4))", "third-7");
    p.send(b"\x18x");
    p.expect("read escape sequence", T);
    assert_eq!(p.wait(T), 1, "transcript: {:?}", p.transcript());
    assert!(container_names(&d).starts_with("det Up "));

    // Attached, `exit` ends the container and the client gets its code.
    let mut p = d.cli_pty(cli, &["attach", "det"], 24, 80);
    std::thread::sleep(Duration::from_millis(500));
    p.send(b"exit 4\r");
    assert_eq!(p.wait(T), 4, "transcript: {:?}", p.transcript());
    let ps = container_names(&d);
    assert!(ps.starts_with("det Exited (4) "), "{ps}");
});

#[test]
fn berth_and_docker_type_the_same_session() {
    // The same typed session through both clients produces the same output lines.
    let d = Daemon::start();
    d.berth(&["pull", "alpine"]).ok();
    let mut outs = Vec::new();
    for cli in [Cli::Docker, Cli::Berth] {
        let mut p = d.cli_pty(cli, &["run", "-it", "--rm", "alpine", "sh"], 24, 80);
        p.expect(PROMPT, T);
        let out = run_line(&mut p, "printf 'a\\tb\\n'; echo end-$((1+1))", "end-2\r\n");
        outs.push(out.lines().skip(1).map(str::to_string).collect::<Vec<_>>());
        p.send(b"\x04");
        assert_eq!(p.wait(T), 0);
    }
    assert_eq!(outs[0], outs[1]);
}
