//! The daemon's own lifecycle: state surviving a restart, a SIGKILL right after a pull,
//! and independent daemons side by side.

use berth_e2e::{is_hex, Daemon};

#[test]
fn state_survives_restart() {
    let mut d = Daemon::start();
    let r = d.berth(&["run", "--name", "done", "alpine", "sh", "-c", "echo bye; echo oops >&2; exit 3"]).code(3);
    assert_eq!(r.stdout, "bye\n");
    let running = d.berth(&["run", "-d", "--name", "runner", "alpine", "sleep", "300"]).ok().out().to_string();

    d.restart();

    // Images are still listed.
    d.berth(&["images"]).ok().stdout_has("alpine ");
    // The stopped container keeps its exit code and logs.
    let ps = d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]).ok();
    assert!(ps.lines().iter().any(|l| l.starts_with("done|Exited (3) ")), "{ps:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "done"]).ok().out(), "3");
    let logs = d.docker(&["logs", "done"]).ok();
    assert_eq!(logs.stdout, "bye\n");
    assert_eq!(logs.stderr, "oops\n");
    // A container that kept running through the restart (its shim outlives berthd) is
    // still known, and can be removed.
    d.docker(&["ps", "-q", "--no-trunc"]).ok().stdout_has(&running);
    d.berth(&["rm", "-f", "runner"]).ok();
    // New containers still work.
    d.berth(&["run", "--rm", "alpine", "true"]).ok();
}

#[test]
fn sigkill_after_pull_leaves_a_consistent_store() {
    let mut d = Daemon::start();
    d.berth(&["pull", "redis"]).ok();
    d.kill9();
    d.start_again();
    let images = d.berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok();
    assert_eq!(images.lines(), vec!["redis:latest".to_string()]);
    d.berth(&["pull", "redis"]).ok().stdout_has("Status: Image is up to date for redis:latest");
    d.berth(&["run", "--rm", "redis", "redis-cli", "--version"]).ok().stdout_has("redis-cli ");

    // Killed in the middle of a pull: the next start must still be consistent.
    let mut pull = std::process::Command::new(&berth_e2e::bins().berth)
        .args(["-H", &d.host(), "pull", "alpine"])
        .env("DOCKER_CONFIG", d.dir().join("dcfg"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth pull");
    std::thread::sleep(std::time::Duration::from_millis(30));
    d.kill9();
    let _ = pull.wait();
    d.start_again();
    d.berth(&["pull", "alpine"]).ok();
    d.berth(&["run", "--rm", "alpine", "true"]).ok();
    d.berth(&["run", "--rm", "redis", "redis-cli", "--version"]).ok();
}

#[test]
fn two_daemons_side_by_side() {
    let a = Daemon::start();
    let b = Daemon::start();
    assert_ne!(a.sock, b.sock);
    a.berth(&["pull", "busybox"]).ok();
    assert!(b.berth(&["images", "-q"]).ok().out().is_empty(), "b must not see a's images");
    let ida = a.berth(&["run", "-d", "--name", "same", "busybox", "sleep", "300"]).ok().out().to_string();
    let idb = b.docker(&["run", "-d", "--name", "same", "busybox", "sleep", "300"]).ok().out().to_string();
    assert!(is_hex(&ida, 64) && is_hex(&idb, 64));
    assert_ne!(ida, idb);
    assert_eq!(a.docker(&["ps", "-q", "--no-trunc"]).ok().out(), ida);
    assert_eq!(b.berth(&["ps", "-q", "--no-trunc"]).ok().out(), idb);
    a.berth(&["rm", "-f", "same"]).ok();
    assert_eq!(b.berth(&["ps", "-q", "--no-trunc"]).ok().out(), idb, "removing on a must not touch b");
    b.berth(&["rm", "-f", "same"]).ok();
}
