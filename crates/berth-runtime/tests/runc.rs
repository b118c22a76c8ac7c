//! Containers created by an OCI runtime (`RunSpec::runtime` = runc) through the shim:
//! the same frames, log lines and exit codes as the native path, TTY, signals,
//! hostname, cgroup limits, start errors and exec. Needs root and runc
//! (`/usr/sbin/runc`, Debian package `runc`; override with `BERTH_RUNC`).
#![allow(clippy::unwrap_used)]

mod common;

use berth_runtime::client;
use berth_runtime::spec::{ExecSpec, RunSpec};
use common::*;
use std::path::{Path, PathBuf};

fn runc_bin() -> PathBuf {
    let p = std::env::var_os("BERTH_RUNC").map(PathBuf::from).unwrap_or_else(|| "/usr/sbin/runc".into());
    assert!(p.exists(), "{} is missing: install the `runc` package (or set BERTH_RUNC)", p.display());
    p
}

fn runc_env(name: &str, args: &[&str], tweak: impl FnOnce(&mut RunSpec)) -> Env {
    env(name, args, |s| {
        s.runtime = Some(runc_bin());
        tweak(s);
    })
}

/// (log, stream) of every json-file entry, in order.
fn log_entries(e: &Env) -> Vec<(String, String)> {
    let log = std::fs::read_to_string(&e.spec.log_path).unwrap_or_default();
    log.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["log"].as_str().unwrap().to_string(), v["stream"].as_str().unwrap().to_string())
        })
        .collect()
}

fn cgroup_gone(e: &Env) -> bool {
    !Path::new("/sys/fs/cgroup/memory/berth-test").join(&e.spec.id).exists()
        && !Path::new("/sys/fs/cgroup/berth-test").join(&e.spec.id).exists()
}

#[test]
fn echo_matches_the_native_path() {
    let args = ["sh", "-c", "echo hi; echo oops >&2; printf partial; exit 0"];
    let native = env("rc-native", &args, |_| {});
    let (n_out, n_err, n_x) = run(&native);
    let rt = runc_env("rc-echo", &args, |_| {});
    let (out, err, x) = run(&rt);
    assert_eq!((out.as_str(), err.as_str()), ("hi\npartial", "oops\n"), "shim log: {}", shim_log(&rt));
    assert_eq!((out, err, x.exit_code, x.oom_killed), (n_out, n_err, n_x.exit_code, n_x.oom_killed));
    let mut a = log_entries(&rt);
    let mut b = log_entries(&native);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
    // runc's state, the bundle and the cgroup are gone after exit.
    assert!(!rt.dir.join(format!("{}.bundle", rt.spec.id)).exists(), "bundle left behind");
    assert!(!rt.dir.join("runc").join(&rt.spec.id).exists(), "runc state left behind");
    assert!(cgroup_gone(&rt), "cgroup left behind");
}

#[test]
fn exit_code() {
    let e = runc_env("rc-exit3", &["sh", "-c", "exit 3"], |_| {});
    let (_, _, x) = run(&e);
    assert_eq!(x.exit_code, 3, "shim log: {}", shim_log(&e));
}

#[test]
fn tty_mode() {
    let e = runc_env("rc-tty", &["sh", "-c", "tty; stty size; echo $TERM"], |s| {
        s.tty = true;
        s.console_size = Some((33, 101));
    });
    let (out, err, x) = run(&e);
    assert_eq!(err, "");
    assert_eq!(out, "/dev/pts/0\r\n33 101\r\nxterm\r\n", "shim log: {}", shim_log(&e));
    assert_eq!(x.exit_code, 0);
    assert!(log_entries(&e).iter().all(|(_, s)| s == "stdout"));
}

#[test]
fn kill_9_is_137() {
    let e = runc_env("rc-kill", &["sleep", "100"], |_| {});
    let st = start(&e);
    // runc knows the container, under the exec root's state directory.
    let out = std::process::Command::new(runc_bin()).arg("--root").arg(e.dir.join("runc")).args(["state", &e.spec.id]).output().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!((state["status"].as_str(), state["pid"].as_i64()), (Some("running"), Some(i64::from(st.pid))));
    assert_eq!(stop(&e, st).exit_code, 137);
    assert!(cgroup_gone(&e));
}

#[test]
fn hostname_and_user() {
    let e = runc_env("rc-host", &["sh", "-c", "hostname; id -u; id -G; echo $HOME; pwd"], |s| {
        s.user = "app".into();
        s.cwd = "/work/dir".into();
    });
    let (out, err, x) = run(&e);
    assert_eq!((out.as_str(), err.as_str(), x.exit_code), ("berthbox\n1000\n1000 10\n/home/app\n/work/dir\n", "", 0), "shim log: {}", shim_log(&e));
}

#[test]
fn cgroup_limits_are_applied() {
    let e = runc_env("rc-limits", &["sleep", "100"], |s| {
        s.cgroup.memory = Some(64 << 20);
        s.cgroup.pids_limit = Some(50);
    });
    let st = start(&e);
    let v1 = Path::new("/sys/fs/cgroup/memory/berth-test").join(&e.spec.id);
    let (mem, pids) = if v1.is_dir() {
        (v1.join("memory.limit_in_bytes"), Path::new("/sys/fs/cgroup/pids/berth-test").join(&e.spec.id).join("pids.max"))
    } else {
        let d = Path::new("/sys/fs/cgroup/berth-test").join(&e.spec.id);
        (d.join("memory.max"), d.join("pids.max"))
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|err| panic!("{}: {err}", p.display())).trim().to_string();
    assert_eq!(read(&mem), (64u64 << 20).to_string());
    assert_eq!(read(&pids), "50");
    // The init is in that cgroup.
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", st.pid)).unwrap();
    assert!(cg.contains(&format!("/berth-test/{}", e.spec.id)), "{cg}");
    assert_eq!(stop(&e, st).exit_code, 137);
}

#[test]
fn missing_command_is_a_start_error_for_127() {
    let e = runc_env("rc-missing", &["nosuch-cmd"], |_| {});
    let err = match client::spawn(&shim_bin(), &e.spec_path) {
        Ok(mut st) => {
            // Some runtimes only fail at start.
            let r = client::go(&e.spec.socket_path);
            let _ = st.shim.wait();
            r.unwrap_err()
        }
        Err(err) => err,
    };
    let msg = err.to_string();
    assert!(msg.contains("OCI runtime create failed"), "{msg}");
    assert!(msg.contains("executable file not found in $PATH"), "{msg}");
    assert_eq!(err.start_exit_code(), Some(127), "{msg}");
    assert!(!e.spec.socket_path.exists());
    assert!(!e.dir.join("runc").join(&e.spec.id).exists(), "runc state left behind");
    assert!(cgroup_gone(&e));
}

#[test]
fn exec_in_a_runtime_container() {
    let e = runc_env("rc-exec", &["sleep", "100"], |_| {});
    let st = start(&e);
    let spec = ExecSpec { args: vec!["sh".into(), "-c".into(), "hostname; echo err >&2; exit 4".into()], ..Default::default() };
    let (s, pid) = client::exec(&e.spec.socket_path, &spec).unwrap();
    assert!(pid > 0);
    let (out, err, code) = collect_exec(s);
    assert_eq!((out.as_str(), err.as_str(), code), ("berthbox\n", "err\n", 4));
    assert_eq!(stop(&e, st).exit_code, 137);
}
