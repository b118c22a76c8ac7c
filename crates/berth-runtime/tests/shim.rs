//! Integration tests: real `berth-shim`, real namespaces, overlayfs and cgroups on a
//! throwaway busybox rootfs. They need root (as in CI).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use berth_runtime::client;
use berth_runtime::spec::{Mount, MountKind};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[test]
fn output_frames_log_and_exit_json() {
    let e = env("out", &["sh", "-c", "echo hi; echo oops >&2; printf partial"], |_| {});
    let (out, err, x) = run(&e);
    assert_eq!(out, "hi\npartial");
    assert_eq!(err, "oops\n");
    assert_eq!(x.exit_code, 0);
    assert!(!x.oom_killed);
    assert!(x.finished_at.ends_with('Z') && x.finished_at.len() > 20, "{}", x.finished_at);
    let log = std::fs::read_to_string(&e.spec.log_path).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut got: Vec<(String, String)> =
        lines.iter().map(|v| (v["log"].as_str().unwrap().to_string(), v["stream"].as_str().unwrap().to_string())).collect();
    got.sort();
    assert_eq!(
        got,
        vec![("hi\n".into(), "stdout".into()), ("oops\n".into(), "stderr".into()), ("partial".into(), "stdout".into())]
    );
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    // The cgroup is gone after exit.
    assert!(!Path::new("/sys/fs/cgroup/memory/berth-test").join(&e.spec.id).exists());
}

#[test]
fn exit_code_propagates_through_wait() {
    let e = env("exit3", &["sh", "-c", "exit 3"], |_| {});
    let mut st = client::spawn(&shim_bin(), &e.spec_path).unwrap();
    let sock = e.spec.socket_path.clone();
    let waiter = std::thread::spawn(move || client::wait(&sock));
    std::thread::sleep(Duration::from_millis(50)); // let the waiter connect first
    client::go(&e.spec.socket_path).unwrap();
    let x = waiter.join().unwrap().unwrap();
    assert_eq!(x.exit_code, 3);
    assert_eq!(client::read_exit(&e.spec.exit_path).unwrap(), x);
    st.shim.wait().unwrap();
}

#[test]
fn start_errors_use_docker_words() {
    let cases = [
        (vec!["ls-nope"], "exec: \"ls-nope\": executable file not found in $PATH", Some(127)),
        (vec!["/nope"], "exec: \"/nope\": stat /nope: no such file or directory", Some(127)),
        (vec!["/etc/passwd"], "exec: \"/etc/passwd\": permission denied", Some(126)),
    ];
    for (i, (args, want, code)) in cases.into_iter().enumerate() {
        let e = env(&format!("err{i}"), &args, |_| {});
        let err = client::spawn(&shim_bin(), &e.spec_path).unwrap_err();
        let msg = err.to_string();
        assert_eq!(msg, format!("failed to create task for container: unable to start container process: {want}: unknown"));
        assert_eq!(err.start_exit_code(), code);
        assert!(!e.spec.socket_path.exists());
        assert!(!Path::new("/sys/fs/cgroup/pids/berth-test").join(&e.spec.id).exists());
    }
}

#[test]
fn namespaces_hostname_pid_net_cgroup_mounts_user() {
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), "bound\n").unwrap();
    std::fs::set_permissions(src.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let script = "hostname; echo pid=$$; cat /proc/net/dev; cat /proc/self/cgroup; cat /etc/bound; \
                  ls -d /scratch; id -u; id -G; pwd; echo home=$HOME; ls /dev";
    let e = env("ns", &["sh", "-c", script], |s| {
        s.user = "app".into();
        s.cwd = "/work/dir".into();
        s.mounts = vec![
            Mount { source: src.path().into(), destination: "/etc/bound".into(), kind: MountKind::Bind, readonly: true, options: vec![] },
            Mount { destination: "/scratch".into(), kind: MountKind::Tmpfs, options: vec!["size=1m".into()], ..Default::default() },
        ];
    });
    let (out, err, x) = run(&e);
    assert_eq!(x.exit_code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "berthbox");
    assert_eq!(lines[1], "pid=1");
    let ifaces: Vec<&str> = lines.iter().filter(|l| l.starts_with(' ') && l.contains(':')).map(|l| l.trim()).collect();
    assert_eq!(ifaces.len(), 1, "only lo expected: {out}");
    assert!(ifaces[0].starts_with("lo:"), "{out}");
    assert!(out.contains(&format!(":/berth-test/{}", e.spec.id)), "{out}");
    assert!(out.contains("\nbound\n"), "{out}");
    assert!(out.contains("\n/scratch\n"));
    assert!(out.contains("\n1000\n1000 10\n/work/dir\nhome=/home/app\n"), "{out}");
    for d in ["null", "zero", "urandom", "pts", "ptmx", "shm", "fd", "stdout"] {
        assert!(out.lines().any(|l| l == d), "/dev/{d} missing: {out}");
    }
}

#[test]
fn stdin_is_piped_with_eof() {
    let e = env("stdin", &["cat"], |s| {
        s.open_stdin = true;
        s.stdin_once = true;
    });
    let mut st = client::spawn(&shim_bin(), &e.spec_path).unwrap();
    let mut s = client::attach(&e.spec.socket_path, true, true, true).unwrap();
    client::go(&e.spec.socket_path).unwrap();
    s.write_all(b"hello\nworld\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (out, _) = collect(s);
    assert_eq!(out, "hello\nworld\n");
    assert_eq!(client::read_exit(&e.spec.exit_path).unwrap().exit_code, 0);
    st.shim.wait().unwrap();
}

#[test]
fn tty_mode() {
    let e = env("tty", &["sh", "-c", "tty; stat -c %t,%T /dev/console; echo $TERM; stty size"], |s| {
        s.tty = true;
        s.console_size = Some((33, 101));
    });
    let (out, _, x) = run(&e);
    assert_eq!(x.exit_code, 0, "{out}");
    assert_eq!(out, "/dev/pts/0\r\n88,0\r\nxterm\r\n33 101\r\n");
    let log = std::fs::read_to_string(&e.spec.log_path).unwrap();
    assert!(log.contains(r#"{"log":"/dev/pts/0\r\n","stream":"stdout","time":""#), "{log}");
}

#[test]
fn kill_9_gives_137_and_resize_ok() {
    let e = env("kill", &["sleep", "100"], |s| s.tty = true);
    let mut st = client::spawn(&shim_bin(), &e.spec_path).unwrap();
    client::go(&e.spec.socket_path).unwrap();
    client::resize(&e.spec.socket_path, 10, 20).unwrap();
    client::kill(&e.spec.socket_path, 9).unwrap();
    let x = match client::wait(&e.spec.socket_path) {
        Ok(x) => x,
        Err(_) => client::read_exit(&e.spec.exit_path).unwrap(),
    };
    assert_eq!(x.exit_code, 137);
    st.shim.wait().unwrap();
    assert!(matches!(client::kill(&e.spec.socket_path, 9), Err(berth_runtime::RuntimeError::NotRunning)));
}

#[test]
fn shim_outlives_its_parent() {
    let e = env("orphan", &["sh", "-c", "sleep 0.3; echo done"], |_| {});
    let ready = e.dir.join("ready");
    // A parent that starts the shim in the background and exits at once.
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("\"$0\" \"$1\" > \"$2\" 2>/dev/null < /dev/null & exit 0")
        .arg(shim_bin())
        .arg(&e.spec_path)
        .arg(&ready)
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = Instant::now();
    while !std::fs::read_to_string(&ready).unwrap_or_default().starts_with("ready ") {
        assert!(t0.elapsed() < Duration::from_secs(10), "shim never became ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = client::attach(&e.spec.socket_path, false, true, true).unwrap();
    client::go(&e.spec.socket_path).unwrap();
    let (out, _) = collect(s);
    assert_eq!(out, "done\n");
    assert_eq!(client::read_exit(&e.spec.exit_path).unwrap().exit_code, 0);
}

fn latency(cgroups: bool) -> Vec<Duration> {
    let mut times = Vec::new();
    for i in 0..20 {
        let e = env(&format!("lat{}{i}", u8::from(cgroups)), &["true"], |s| {
            if !cgroups {
                s.cgroup.root = PathBuf::new();
            }
        });
        let t0 = Instant::now();
        let mut st = client::spawn(&shim_bin(), &e.spec_path).unwrap();
        let s = client::attach(&e.spec.socket_path, false, true, true).unwrap();
        client::go(&e.spec.socket_path).unwrap();
        let _ = collect(s);
        times.push(t0.elapsed());
        assert_eq!(client::read_exit(&e.spec.exit_path).unwrap().exit_code, 0);
        st.shim.wait().unwrap();
    }
    times.sort();
    times
}

/// Prints (never asserts) spawn → exit time of `true`, with and without cgroups.
#[test]
fn start_latency_of_true() {
    for cg in [true, false] {
        let t = latency(cg);
        eprintln!(
            "start latency spawn->exit of `true`, cgroups {}, {} runs ({}): min {:?} median {:?} max {:?}",
            if cg { "on" } else { "off" },
            t.len(),
            shim_bin().display(),
            t[0],
            t[t.len() / 2],
            t[t.len() - 1]
        );
    }
}

/// Prints the PSS of a running shim (target ≤ 1 MB).
#[test]
fn shim_memory() {
    let e = env("pss", &["sleep", "10"], |_| {});
    let mut st = client::spawn(&shim_bin(), &e.spec_path).unwrap();
    client::go(&e.spec.socket_path).unwrap();
    let s = client::attach(&e.spec.socket_path, false, true, true).unwrap();
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", st.shim.id())).unwrap();
    let field = |k: &str| rollup.lines().find(|l| l.starts_with(k)).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string()).unwrap_or_default();
    // Pss_File shrinks with every other shim sharing the binary's pages; Pss_Anon is
    // what each shim really costs.
    eprintln!(
        "running shim ({}): Pss {} kB (Pss_Anon {} kB, Pss_File {} kB), Rss {} kB, Private_Dirty {} kB",
        shim_bin().display(),
        field("Pss:"),
        field("Pss_Anon:"),
        field("Pss_File:"),
        field("Rss:"),
        field("Private_Dirty:")
    );
    client::kill(&e.spec.socket_path, 9).unwrap();
    let _ = collect(s);
    st.shim.wait().unwrap();
}
