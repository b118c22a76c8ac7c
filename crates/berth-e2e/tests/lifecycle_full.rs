//! The container lifecycle end to end, as Docker behaves: stdin through `run -i`,
//! detached processes visible on the host, exec exit codes, stop (grace period, stop
//! signal, stop timeout), kill, pause, unpause, restart, wait (CLI and API conditions),
//! rename, --rm, attach, bulk stop/rm, prunes and their accounting, top, stats, logs,
//! events and the OOM killer. Each case runs through `berth` and the real `docker` CLI.

use berth_e2e::{both, cells, host_processes, is_hex, wait_until, Cli, Daemon};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const T: Duration = Duration::from_secs(20);

fn status_of(d: &Daemon, name: &str) -> String {
    let ps = d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]).ok();
    ps.lines()
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}|")).map(str::to_string))
        .unwrap_or_default()
}

fn id_of(d: &Daemon, name: &str) -> String {
    d.inspect(name)["Id"].as_str().unwrap_or_default().to_string()
}

/// Starts `name` running `script` under `sh -c` and waits until its log shows `ready`.
fn run_script(d: &Daemon, cli: Cli, name: &str, extra: &[&str], script: &str) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["alpine", "sh", "-c", script]);
    let id = d.cli(cli, &args).ok().out().to_string();
    assert!(is_hex(&id, 64), "{id:?}");
    if script.contains("echo ready") {
        wait_until(T, &format!("{name} to print ready"), || {
            d.docker(&["logs", name]).stdout.contains("ready").then_some(())
        });
    }
    id
}

/// A pid-1 shell that handles `sig` by printing `got-<sig>` and exiting `code`.
fn trap_script(sig: &str, code: i32) -> String {
    format!("trap 'echo got-{sig}; exit {code}' {sig}; echo ready; while true; do sleep 0.1; done")
}

both!(fn run_i_pipes_stdin_through(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let r = d.cli_input(cli, &["run", "-i", "--rm", "alpine", "cat"], b"hi\n").ok();
    assert_eq!(r.stdout, "hi\n", "{r:?}");
    let r = d.cli_input(cli, &["run", "-i", "--rm", "alpine", "sh", "-c", "cat; echo done >&2; exit 2"], b"line1\nline2\n").code(2);
    assert_eq!(r.stdout, "line1\nline2\n", "{r:?}");
    assert_eq!(r.stderr, "done\n", "{r:?}");
    // Without -i the container's stdin is empty.
    let r = d.cli_input(cli, &["run", "--rm", "alpine", "cat"], b"ignored\n").ok();
    assert_eq!(r.stdout, "", "{r:?}");
    assert!(d.cli(cli, &["ps", "-a", "-q"]).ok().out().is_empty(), "--rm removed them");
});

both!(fn run_d_ping_is_up_and_visible_on_the_host(d, cli) {
    // busybox ping opens a raw socket: NET_RAW is in Docker's default capability set.
    let id = d.cli(cli, &["run", "-d", "--name", "pinger", "alpine", "ping", "localhost"]).ok().out().to_string();
    assert!(is_hex(&id, 64));
    let logs = wait_until(T, "ping replies in the log", || {
        let l = d.docker(&["logs", "pinger"]).stdout;
        l.contains("bytes from 127.0.0.1").then_some(l)
    });
    assert!(logs.starts_with("PING localhost (127.0.0.1): 56 data bytes\n"), "{logs}");
    let status = status_of(&d, "pinger");
    assert!(status.starts_with("Up "), "{status}");
    let pid = d.inspect("pinger")["State"]["Pid"].as_u64().expect("State.Pid");
    let procs = host_processes();
    assert!(
        procs.iter().any(|(p, c)| u64::from(*p) == pid && c == "ping localhost"),
        "host `ps -e` has no `ping localhost` with pid {pid}"
    );
    // top shows the same process with its host pid.
    let top = d.cli(cli, &["top", "pinger"]).ok();
    let lines = top.lines();
    assert_eq!(cells(&lines[0]), ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "{top:?}");
    assert!(lines.iter().any(|l| l.contains(&format!(" {pid} ")) && l.ends_with("ping localhost")), "{top:?}");
    d.cli(cli, &["rm", "-f", "pinger"]).ok();
    wait_until(T, "the ping process to be gone", || {
        (!host_processes().iter().any(|(p, _)| u64::from(*p) == pid)).then_some(())
    });
});

both!(fn exec_passes_exit_codes_back(d, cli) {
    d.cli(cli, &["run", "-d", "--name", "ex", "alpine", "sleep", "300"]).ok();
    d.cli(cli, &["exec", "ex", "ls"]).ok().stdout_has("etc\n");
    let r = d.cli(cli, &["exec", "ex", "sh", "-c", "echo hi; echo e >&2; exit 4"]).code(4);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("hi\n", "e\n"), "{r:?}");
    d.cli(cli, &["exec", "ex", "ls", "/nonexistent"]).code(1).stderr_has("No such file or directory");
    // Docker writes the runtime's error into the exec's output stream (stdout), with
    // "\r\n" (moby api/server/router/container/exec.go).
    let r = d.cli(cli, &["exec", "ex", "nosuch"]).code(127);
    assert_eq!(
        r.stdout,
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown\r\n",
        "{r:?}"
    );
    d.cli(cli, &["exec", "-w", "/etc", "-e", "A=b", "ex", "sh", "-c", "echo $PWD $A"]).ok().stdout_has("/etc b\n");
    d.cli(cli, &["kill", "ex"]).ok();
    d.wait_inspect("ex", T, "exited", |v| v["State"]["Status"] == "exited");
    let id = id_of(&d, "ex");
    d.cli(cli, &["exec", "ex", "true"]).code(1).stderr_has_ci(&format!("container {id} is not running"));
});

both!(fn stop_sends_sigterm_then_waits(d, cli) {
    run_script(&d, cli, "term", &[], &trap_script("TERM", 0));
    // SIGTERM handled: the container exits with its own code, long before the grace period.
    assert_eq!(d.cli(cli, &["stop", "-t", "30", "term"]).ok().out(), "term");
    assert!(status_of(&d, "term").starts_with("Exited (0) "), "{}", status_of(&d, "term"));
    assert_eq!(d.cli(cli, &["logs", "term"]).ok().stdout, "ready\ngot-TERM\n");

    // SIGTERM ignored: SIGKILL after -t seconds → 137.
    run_script(&d, cli, "deaf", &[], "trap '' TERM; echo ready; while true; do sleep 0.1; done");
    let t0 = Instant::now();
    d.cli(cli, &["stop", "-t", "1", "deaf"]).ok();
    assert!(t0.elapsed() >= Duration::from_millis(900), "stop must wait the grace period first");
    assert!(status_of(&d, "deaf").starts_with("Exited (137) "), "{}", status_of(&d, "deaf"));
    assert_eq!(d.inspect("deaf")["State"]["OOMKilled"], false);

    // --stop-timeout is the default grace period of `stop` without -t.
    run_script(&d, cli, "st", &["--stop-timeout", "2"], "trap '' TERM; echo ready; while true; do sleep 0.1; done");
    assert_eq!(d.inspect("st")["Config"]["StopTimeout"], 2);
    let t0 = Instant::now();
    d.cli(cli, &["stop", "st"]).ok();
    assert!(t0.elapsed() >= Duration::from_millis(1900), "--stop-timeout 2 waits 2 s");
    assert!(status_of(&d, "st").starts_with("Exited (137) "));

    // Stopping a stopped container is fine and prints its name again.
    assert_eq!(d.cli(cli, &["stop", "st"]).ok().out(), "st");
});

both!(fn stop_signal_is_used_by_stop(d, cli) {
    // The busybox fixture has no STOPSIGNAL; --stop-signal sets one.
    run_script(&d, cli, "usr", &["--stop-signal", "SIGUSR1"], &trap_script("USR1", 5));
    assert_eq!(d.inspect("usr")["Config"]["StopSignal"], "SIGUSR1");
    d.cli(cli, &["stop", "-t", "30", "usr"]).ok();
    assert!(status_of(&d, "usr").starts_with("Exited (5) "), "{}", status_of(&d, "usr"));
    assert_eq!(d.cli(cli, &["logs", "usr"]).ok().stdout, "ready\ngot-USR1\n");
    // `stop -s` overrides it for one call.
    run_script(&d, cli, "usr2", &["--stop-signal", "SIGUSR1"], "trap 'echo got-USR2; exit 6' USR2; echo ready; while true; do sleep 0.1; done");
    d.cli(cli, &["stop", "-s", "USR2", "-t", "30", "usr2"]).ok();
    assert!(status_of(&d, "usr2").starts_with("Exited (6) "), "{}", status_of(&d, "usr2"));
});

both!(fn kill_is_sigkill_and_kill_s_delivers(d, cli) {
    run_script(&d, cli, "kk", &[], "trap 'echo got-HUP' HUP; echo ready; while true; do sleep 0.1; done");
    // Name with and without SIG, and the number; one at a time (signals coalesce).
    for (n, sig) in ["HUP", "SIGHUP", "1"].into_iter().enumerate() {
        assert_eq!(d.cli(cli, &["kill", "-s", sig, "kk"]).ok().out(), "kk");
        wait_until(T, &format!("{} HUPs in the log", n + 1), || {
            (d.docker(&["logs", "kk"]).stdout.matches("got-HUP").count() == n + 1).then_some(())
        });
    }
    assert!(status_of(&d, "kk").starts_with("Up "), "HUP is handled: still up");
    assert_eq!(d.cli(cli, &["kill", "kk"]).ok().out(), "kk");
    let st = d.wait_inspect("kk", T, "exited", |v| v["State"]["Status"] == "exited");
    assert_eq!(st["State"]["ExitCode"], 137);
    assert!(status_of(&d, "kk").starts_with("Exited (137) "), "{}", status_of(&d, "kk"));
    let id = id_of(&d, "kk");
    d.cli(cli, &["kill", "kk"]).code(1).stderr_has_ci(&format!("Cannot kill container: kk: container {id} is not running"));
    run_script(&d, cli, "k2", &[], "echo ready; sleep 300");
    d.cli(cli, &["kill", "-s", "NOSUCHSIG", "k2"]).code(1).stderr_has_ci("Invalid signal: NOSUCHSIG");
    d.cli(cli, &["kill", "nosuch"]).code(1).stderr_has("No such container: nosuch");
    d.cli(cli, &["rm", "-f", "k2"]).ok();
});

both!(fn pause_unpause_and_exec_refused_while_paused(d, cli) {
    let id = run_script(&d, cli, "pp", &[], "echo ready; i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done");
    assert_eq!(d.cli(cli, &["pause", "pp"]).ok().out(), "pp");
    let status = status_of(&d, "pp");
    assert!(status.starts_with("Up ") && status.ends_with(" (Paused)"), "{status}");
    let st = &d.inspect("pp")["State"];
    assert_eq!((st["Status"].as_str(), st["Paused"].as_bool(), st["Running"].as_bool()), (Some("paused"), Some(true), Some(true)), "{st}");
    d.cli(cli, &["exec", "pp", "true"])
        .code(1)
        .stderr_has_ci(&format!("Container {id} is paused, unpause the container before exec"));
    d.cli(cli, &["pause", "pp"]).code(1).stderr_has_ci(&format!("Container {id} is already paused"));
    assert_eq!(d.cli(cli, &["ps", "--filter", "status=paused", "-q"]).ok().out(), &id[..12]);
    assert_eq!(d.cli(cli, &["unpause", "pp"]).ok().out(), "pp");
    let status = status_of(&d, "pp");
    assert!(status.starts_with("Up ") && !status.contains("Paused"), "{status}");
    // It runs again: the counter moves.
    let a = d.cli(cli, &["exec", "pp", "cat", "/tmp/n"]).ok().out().to_string();
    wait_until(T, "the counter to move after unpause", || {
        (d.docker(&["exec", "pp", "cat", "/tmp/n"]).ok().out() != a).then_some(())
    });
    d.cli(cli, &["unpause", "pp"]).code(1).stderr_has_ci(&format!("Container {id} is not paused"));
    // A paused container can be killed and removed.
    d.cli(cli, &["pause", "pp"]).ok();
    d.cli(cli, &["rm", "-f", "pp"]).ok();
    assert!(d.cli(cli, &["ps", "-a", "-q"]).ok().out().is_empty());
});

both!(fn restart_wait_and_rename(d, cli) {
    run_script(&d, cli, "aa", &[], &trap_script("TERM", 0));
    let before = d.inspect("aa");
    assert_eq!(d.cli(cli, &["restart", "-t", "5", "aa"]).ok().out(), "aa");
    let after = d.wait_inspect("aa", T, "running", |v| v["State"]["Running"] == true);
    assert_ne!(before["State"]["Pid"], after["State"]["Pid"]);
    assert_ne!(before["State"]["StartedAt"], after["State"]["StartedAt"]);
    assert_eq!(after["RestartCount"], 0, "a manual restart is not counted");
    wait_until(T, "two runs in the log", || {
        (d.docker(&["logs", "aa"]).stdout == "ready\ngot-TERM\nready\n").then_some(())
    });

    // wait blocks until the container exits and prints its code.
    let waiter = d.cli_background(cli, &["wait", "aa"]);
    std::thread::sleep(Duration::from_millis(500));
    d.cli(cli, &["kill", "-s", "TERM", "aa"]).ok();
    let r = waiter.wait(T).ok();
    assert_eq!(r.out(), "0", "{r:?}");
    d.cli(cli, &["run", "-d", "--name", "bb", "alpine", "sh", "-c", "exit 9"]).ok();
    let r = d.cli(cli, &["wait", "aa", "bb"]).ok();
    assert_eq!(r.lines(), ["0", "9"], "{r:?}");
    d.cli(cli, &["wait", "nosuch"]).code(1).stderr_has("No such container: nosuch");

    // rename keeps the id; the old name is free, names still conflict.
    let id = id_of(&d, "aa");
    let r = d.cli(cli, &["rename", "aa", "renamed"]).ok();
    assert_eq!(r.stdout, "", "{r:?}");
    assert_eq!(id_of(&d, "renamed"), id);
    assert_eq!(d.inspect("renamed")["Name"], "/renamed");
    d.cli(cli, &["inspect", "aa"]).code(1).stderr_has("No such object: a");
    let bid = id_of(&d, "bb");
    d.cli(cli, &["rename", "renamed", "bb"])
        .code(1)
        .stderr_has(&format!("Conflict. The container name \"/bb\" is already in use by container \"{bid}\""));
    d.cli(cli, &["rename", "nosuch", "x2"]).code(1).stderr_has("No such container: nosuch");
    d.cli(cli, &["start", "renamed"]).ok();
    assert!(status_of(&d, "renamed").starts_with("Up "));
    d.cli(cli, &["rm", "-f", "renamed", "bb"]).ok();
});

both!(fn rm_flag_and_attach(d, cli) {
    // --rm: gone after exit, whether foreground or detached and stopped.
    d.cli(cli, &["run", "--rm", "--name", "gone", "alpine", "true"]).ok();
    d.cli(cli, &["run", "-d", "--rm", "--name", "gone2", "alpine", "sleep", "300"]).ok();
    d.cli(cli, &["stop", "-t", "0", "gone2"]).ok();
    wait_until(T, "the --rm container to be removed", || {
        d.docker(&["ps", "-a", "-q"]).ok().out().is_empty().then_some(())
    });

    // attach streams new output; SIGINT to the client is proxied to the container.
    run_script(&d, cli, "tick", &[], "trap 'echo got-INT; exit 130' INT; echo ready; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done");
    let att = d.cli_background(cli, &["attach", "tick"]);
    att.expect_stdout("tick", T);
    assert!(!att.stdout().contains("ready"), "attach must not replay earlier output: {}", att.stdout());
    att.signal("INT");
    let r = att.wait(T);
    assert_eq!(r.code, 130, "{r:?}");
    assert!(r.stdout.ends_with("got-INT\n"), "{r:?}");
    assert!(status_of(&d, "tick").starts_with("Exited (130) "));
    d.cli(cli, &["attach", "tick"]).code(1).stderr_has("You cannot attach to a stopped container, start it first");

});

both!(fn stop_and_rm_everything_by_id(d, cli) {
    for n in ["s1", "s2", "s3"] {
        d.cli(cli, &["run", "-d", "--name", n, "alpine", "sleep", "300"]).ok();
    }
    d.cli(cli, &["create", "--name", "s4", "alpine", "true"]).ok();
    let ids = d.cli(cli, &["ps", "-a", "-q"]).ok().lines();
    assert_eq!(ids.len(), 4);
    let mut args = vec!["stop", "-t", "0"];
    args.extend(ids.iter().map(String::as_str));
    let r = d.cli(cli, &args).ok();
    assert_eq!(r.lines(), ids, "stop echoes each argument: {r:?}");
    assert!(d.cli(cli, &["ps", "-q"]).ok().out().is_empty());
    let mut args = vec!["rm"];
    args.extend(ids.iter().map(String::as_str));
    let r = d.cli(cli, &args).ok();
    assert_eq!(r.lines(), ids, "{r:?}");
    assert!(d.cli(cli, &["ps", "-a", "-q"]).ok().out().is_empty());
    // A partial failure: the others are still removed, the exit code is 1.
    d.cli(cli, &["create", "--name", "s5", "alpine", "true"]).ok();
    let r = d.cli(cli, &["rm", "nosuch", "s5"]).code(1).stderr_has("No such container: nosuch");
    assert_eq!(r.out(), "s5");
});

/// "1.049MB" → bytes, the way Docker's units.HumanSize writes them (powers of 1000).
fn parse_human(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("not a size: {s:?}"));
    let mult = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other:?} in {s:?}"),
    };
    n * mult
}

fn reclaimed(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("no total in {out:?}"));
    parse_human(&line["Total reclaimed space: ".len()..])
}

both!(fn container_prune_prompt_and_accounting(d, cli) {
    let big = d.cli(cli, &["run", "--name", "big", "alpine", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=1"]).ok();
    let _ = big;
    let small = d.cli(cli, &["create", "--name", "small", "alpine", "true"]).ok().out().to_string();
    let running = d.cli(cli, &["run", "-d", "--name", "up", "alpine", "sleep", "300"]).ok().out().to_string();
    let big_id = id_of(&d, "big");

    // Answering no (or nothing) removes nothing.
    for answer in [&b"n\n"[..], b"\n"] {
        let r = d.cli_input(cli, &["container", "prune"], answer).ok();
        assert_eq!(r.stdout, "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ", "{r:?}");
        assert_eq!(d.cli(cli, &["ps", "-a", "-q"]).ok().lines().len(), 3);
    }
    let r = d.cli_input(cli, &["container", "prune"], b"y\n").ok();
    let out = r.stdout.strip_prefix("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")
        .unwrap_or_else(|| panic!("{r:?}"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Deleted Containers:", "{r:?}");
    let mut deleted: Vec<&str> = lines[1..3].to_vec();
    deleted.sort();
    let mut want = vec![big_id.as_str(), small.as_str()];
    want.sort();
    assert_eq!(deleted, want, "{r:?}");
    assert_eq!(lines[3], "", "{r:?}");
    // The 1 MiB written by `big` is counted.
    assert!(reclaimed(out) >= 1_048_576.0, "{r:?}");
    assert_eq!(d.cli(cli, &["ps", "-a", "-q", "--no-trunc"]).ok().out(), running);

    // -f: no prompt; nothing left to prune.
    let r = d.cli(cli, &["container", "prune", "-f"]).ok();
    assert_eq!(r.stdout, "Total reclaimed space: 0B\n", "{r:?}");
    d.cli(cli, &["rm", "-f", "up"]).ok();
});

both!(fn system_prune_prompt_and_all(d, cli) {
    d.cli(cli, &["pull", "busybox"]).ok();
    d.cli(cli, &["run", "-d", "--name", "keep", "alpine", "sleep", "300"]).ok();
    let dead = d.cli(cli, &["run", "--name", "dead", "alpine", "true"]).ok();
    let _ = dead;
    let dead_id = id_of(&d, "dead");
    let warn = "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue? [y/N] ";
    let r = d.cli_input(cli, &["system", "prune"], b"n\n").ok();
    assert_eq!(r.stdout, warn, "{r:?}");
    assert_eq!(d.cli(cli, &["ps", "-a", "-q"]).ok().lines().len(), 2);
    let r = d.cli_input(cli, &["system", "prune"], b"y\n").ok();
    let out = r.stdout.strip_prefix(warn).unwrap_or_else(|| panic!("{r:?}"));
    assert!(out.starts_with(&format!("Deleted Containers:\n{dead_id}\n\n")), "{r:?}");
    assert!(out.ends_with("\n") && out.contains("Total reclaimed space: "), "{r:?}");
    // No dangling images: busybox survives a plain prune.
    d.cli(cli, &["image", "inspect", "busybox"]).ok();

    let warn_all = "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all images without at least one container associated to them\n  - all build cache\n\nAre you sure you want to continue? [y/N] ";
    let r = d.cli_input(cli, &["system", "prune", "-a"], b"N\n").ok();
    assert_eq!(r.stdout, warn_all, "{r:?}");
    let r = d.cli(cli, &["system", "prune", "-a", "-f"]).ok();
    assert!(r.stdout.contains("Deleted Images:\nuntagged: busybox:latest\n"), "{r:?}");
    assert!(r.stdout.contains("deleted: sha256:"), "{r:?}");
    assert!(reclaimed(&r.stdout) > 0.0, "{r:?}");
    // alpine is used by the running container and stays.
    let images = d.cli(cli, &["images", "--format", "{{.Repository}}"]).ok();
    assert_eq!(images.lines(), ["alpine"], "{images:?}");
    d.cli(cli, &["rm", "-f", "keep"]).ok();
});

both!(fn stats_no_stream_and_top(d, cli) {
    let id = d.cli(cli, &["run", "-d", "--name", "st", "alpine", "sh", "-c", "sleep 300 & sleep 300 & wait"]).ok().out().to_string();
    let r = d.cli(cli, &["stats", "--no-stream", "st"]).ok();
    let lines = r.lines();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert_eq!(
        cells(&lines[0]),
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"],
        "{r:?}"
    );
    let row = cells(&lines[1]);
    assert_eq!(row[0], &id[..12], "{r:?}");
    assert_eq!(row[1], "st", "{r:?}");
    assert!(row[2].ends_with('%') && row[4].ends_with('%'), "{r:?}");
    assert!(row[3].contains(" / "), "{r:?}");
    assert_eq!(row[7], "3", "sh + two sleeps: {r:?}");
    // All running containers, with a format.
    let r = d.cli(cli, &["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"]).ok();
    assert_eq!(r.out(), "st 3", "{r:?}");
    // Streaming: the client keeps printing until killed.
    let s = d.cli_background(cli, &["stats", "--format", "{{.Name}}", "st"]);
    wait_until(T, "two stats samples", || (s.stdout().matches("st").count() >= 2).then_some(()));
    drop(s);
    let top = d.cli(cli, &["top", "st"]).ok();
    assert_eq!(top.lines().iter().filter(|l| l.ends_with("   sleep 300")).count(), 2, "{top:?}");
    assert!(top.stdout.contains("sh -c sleep 300 & sleep 300 & wait"), "{top:?}");
    let topx = d.cli(cli, &["top", "st", "-o", "pid,comm"]).ok();
    assert_eq!(cells(&topx.lines()[0]), ["PID", "COMMAND"], "{topx:?}");
    d.cli(cli, &["stop", "-t", "0", "st"]).ok();
    d.cli(cli, &["top", "st"]).code(1).stderr_has_ci(&format!("container {id} is not running"));
    d.cli(cli, &["rm", "st"]).ok();
});

both!(fn logs_follow_tail_since_timestamps(d, cli) {
    run_script(&d, cli, "lg", &[], "for i in $(seq 1 20); do echo line$i; done; echo ready; sleep 2; echo late1; echo late2 >&2; sleep 1; echo last");
    let r = d.cli(cli, &["logs", "--tail", "10", "-t", "lg"]).ok();
    let lines = r.lines();
    assert_eq!(lines.len(), 10, "{r:?}");
    for (i, l) in lines.iter().enumerate().take(9) {
        let (ts, text) = l.split_once(' ').unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(text, format!("line{}", i + 12), "{r:?}");
        // RFC 3339 with nanoseconds, UTC: 2026-11-23T11:29:54.177021719Z
        assert!(ts.len() == 30 && ts.ends_with('Z') && &ts[10..11] == "T" && &ts[19..20] == ".", "{ts:?}");
    }
    assert!(lines[9].ends_with(" ready"), "{r:?}");
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
    // -f --since 1m: everything so far, then new lines until the container exits.
    let f = d.cli_background(cli, &["logs", "-f", "--tail", "10", "--since", "1m", "lg"]);
    f.expect_stdout("line20\nready\n", T);
    let r = f.wait(T);
    assert_eq!(r.code, 0, "{r:?}");
    let mut want: Vec<String> = (12..=20).map(|i| format!("line{i}")).collect();
    want.extend(["ready".to_string(), "late1".to_string(), "last".to_string()]);
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), want, "{r:?}");
    assert_eq!(r.stderr, "late2\n", "{r:?}");
    // --since a moment before "late1": only the late lines.
    let r = d.cli(cli, &["logs", "--since", &format!("{since:.3}"), "lg"]).ok();
    assert_eq!(r.stdout, "late1\nlast\n", "{r:?}");
    assert_eq!(r.stderr, "late2\n", "{r:?}");
    let r = d.cli(cli, &["logs", "--until", &format!("{since:.3}"), "--tail", "1", "lg"]).ok();
    assert_eq!(r.stdout, "ready\n", "{r:?}");
});

both!(fn events_stream_the_lifecycle(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let ev = d.cli_background(cli, &["events", "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}"]);
    // Wait until the stream is live: the client subscribes some time after it starts,
    // so create probe containers until one of them is reported.
    wait_until(T, "the events stream to report a probe container", || {
        let n = d.docker(&["ps", "-a", "-q"]).ok().lines().len();
        d.cli(cli, &["create", "--name", &format!("warm{n}"), "alpine", "true"]).ok();
        std::thread::sleep(Duration::from_millis(300));
        ev.stdout().contains("create warm").then_some(())
    });
    d.cli(cli, &["run", "--rm", "--name", "ev", "alpine", "sh", "-c", "exit 3"]).code(3);
    ev.expect_stdout("destroy ev\n", T);
    d.cli(cli, &["run", "-d", "--name", "ev2", "alpine", "sleep", "300"]).ok();
    d.cli(cli, &["pause", "ev2"]).ok();
    d.cli(cli, &["unpause", "ev2"]).ok();
    d.cli(cli, &["kill", "-s", "HUP", "ev2"]).ok();
    d.cli(cli, &["rename", "ev2", "ev3"]).ok();
    d.cli(cli, &["rm", "-f", "ev3"]).ok();
    let out = ev.expect_stdout("destroy ev3\n", T);
    let got: Vec<&str> = out.lines().filter(|l| !l.contains(" warm")).collect();
    let want = [
        "create ev", "attach ev", "start ev", "die ev", "destroy ev",
        "create ev2", "start ev2", "pause ev2", "unpause ev2", "kill ev2", "rename ev3", "kill ev3", "die ev3", "destroy ev3",
    ];
    assert_eq!(got, want, "{out}");
    // --since/--until replay: the die event carries the exit code. The CLI sends `until`
    // in whole seconds (`--until 0s` = now, truncated) and events later in that second
    // are excluded, by Docker too: let the second pass first.
    std::thread::sleep(Duration::from_millis(1100));
    let r = d.cli(cli, &["events", "--since", "1m", "--until", "0s", "--filter", "event=die", "--format", "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}"]).ok();
    assert_eq!(r.lines(), ["ev 3", "ev3 137"], "{r:?}");
});

both!(fn oom_kill_is_137_and_recorded(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    // `tail` of an endless line with no newline buffers it all.
    d.cli(cli, &["run", "--name", "oom", "--memory", "64m", "alpine", "sh", "-c", "tail /dev/zero"]).code(137);
    let st = d.inspect("oom");
    assert_eq!(st["State"]["OOMKilled"], true, "{}", st["State"]);
    assert_eq!(st["State"]["ExitCode"], 137);
    assert_eq!(st["HostConfig"]["Memory"], 64 * 1024 * 1024);
    assert!(status_of(&d, "oom").starts_with("Exited (137) "));
    // An ordinary kill is not an OOM kill.
    d.cli(cli, &["run", "-d", "--name", "nooom", "--memory", "64m", "alpine", "sleep", "300"]).ok();
    d.cli(cli, &["kill", "nooom"]).ok();
    let st = d.wait_inspect("nooom", T, "exited", |v| v["State"]["Status"] == "exited");
    assert_eq!(st["State"]["OOMKilled"], false);
});

/// `POST /containers/<id>/wait?condition=…` over the raw API (the CLI has no flag).
#[test]
fn wait_conditions_over_the_api() {
    let d = Daemon::start();
    d.berth(&["pull", "alpine"]).ok();
    let created = d.docker(&["create", "--name", "cr", "alpine", "sh", "-c", "exit 4"]).ok().out().to_string();
    // not-running (the default): a created container is not running → answers at once.
    for path in ["/containers/cr/wait", "/containers/cr/wait?condition=not-running"] {
        let r = d.request("POST", path, None);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["StatusCode"], 0, "{path}: {r:?}");
    }
    // next-exit waits for the next run to end.
    let next = d.request_in_background("POST", "/containers/cr/wait?condition=next-exit");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!next.is_finished(), "next-exit must not answer before the container runs");
    d.docker(&["start", "cr"]).ok();
    let r = next.join().expect("thread").expect("wait response");
    assert_eq!(r.json(), serde_json::json!({"Error": null, "StatusCode": 4}), "{r:?}");
    // removed: blocks on an exited container until it is deleted.
    let removed = d.request_in_background("POST", &format!("/containers/{created}/wait?condition=removed"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!removed.is_finished(), "removed must wait for the removal");
    d.docker(&["rm", "cr"]).ok();
    let r = removed.join().expect("thread").expect("wait response");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["StatusCode"], 4, "{r:?}");
    // not-running on a running container waits for the exit.
    d.docker(&["run", "-d", "--name", "rn", "alpine", "sleep", "300"]).ok();
    let w = d.request_in_background("POST", "/containers/rn/wait?condition=not-running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!w.is_finished());
    d.docker(&["kill", "rn"]).ok();
    let r = w.join().expect("thread").expect("wait response");
    assert_eq!(r.json()["StatusCode"], 137, "{r:?}");
    // A bad condition is a 400.
    let r = d.request("POST", "/containers/rn/wait?condition=bogus", None);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["message"], "invalid condition: \"bogus\"", "{r:?}");
    let r = d.request("POST", "/containers/nosuch/wait", None);
    assert_eq!(r.status, 404, "{r:?}");
}

both!(fn ps_name_filter_is_a_regular_expression(d, cli) {
    // Docker matches `name=` as a regular expression against the name with and without
    // its leading "/": `^/web$` and `^web$` are the usual exact-match idioms.
    d.cli(cli, &["run", "-d", "--name", "web", "alpine", "sleep", "300"]).ok();
    d.cli(cli, &["run", "-d", "--name", "web2", "alpine", "sleep", "300"]).ok();
    for filter in ["name=^/web$", "name=^web$"] {
        let r = d.cli(cli, &["ps", "--filter", filter, "--format", "{{.Names}}"]).ok();
        assert_eq!(r.lines(), ["web"], "{filter}: {r:?}");
    }
    let r = d.cli(cli, &["ps", "--filter", "name=web", "--format", "{{.Names}}"]).ok();
    let mut names = r.lines();
    names.sort();
    assert_eq!(names, ["web", "web2"], "{r:?}");
    let r = d.cli(cli, &["ps", "--filter", "name=eb.$", "--format", "{{.Names}}"]).ok();
    assert_eq!(r.lines(), ["web2"], "{r:?}");
    d.cli(cli, &["rm", "-f", "web", "web2"]).ok();
});

both!(fn run_rm_whose_start_fails_is_removed(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    // Docker removes an AutoRemove container whose start failed, and the CLI (which
    // waits for `wait?condition=removed`) exits with the start error's code.
    let r = d.cli_background(cli, &["run", "--rm", "alpine", "nosuchcmd"]).wait(T);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains(r#"exec: "nosuchcmd": executable file not found in $PATH"#), "{r:?}");
    let left = d.cli(cli, &["ps", "-a", "-q"]).ok();
    assert!(left.out().is_empty(), "the failed --rm container must be removed: {left:?}");
    // Without --rm the failed container stays, Created, with the error recorded.
    d.cli(cli, &["run", "--name", "failed", "alpine", "nosuchcmd"]).code(127);
    let v = d.inspect("failed");
    assert_eq!(v["State"]["ExitCode"], 127, "{}", v["State"]);
    assert!(v["State"]["Error"].as_str().unwrap_or_default().contains("executable file not found"), "{}", v["State"]);
});

both!(fn bad_log_opts_are_refused_at_create(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let r = d.cli_background(cli, &["run", "--rm", "--log-opt", "max-size=bogus", "alpine", "true"]).wait(T);
    assert_eq!(r.code, 125, "{r:?}");
    let r = d.cli(cli, &["run", "-d", "--log-opt", "max-file=x", "alpine", "true"]).code(125);
    let _ = r;
    let left = d.cli(cli, &["ps", "-a", "-q"]).ok();
    assert!(left.out().is_empty(), "no container may be created: {left:?}");
});
