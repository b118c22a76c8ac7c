//! Container lifecycle on the real kernel: pause/unpause, cgroup limits and OOM,
//! ulimits, read-only rootfs, tmpfs, --init, log rotation, signals and stats.
#![allow(clippy::unwrap_used)]

mod common;

use berth_runtime::cgroup::Cgroup;
use berth_runtime::client;
use berth_runtime::spec::{ExecSpec, Mount, Ulimit};
use common::*;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

fn cgroup_of(e: &Env) -> Cgroup {
    Cgroup::from_spec(&e.spec.cgroup).unwrap()
}

fn v1_file(e: &Env, controller: &str, file: &str) -> String {
    let p = Path::new("/sys/fs/cgroup").join(controller).join("berth-test").join(&e.spec.id).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|err| panic!("{}: {err}", p.display())).trim().to_string()
}

fn proc_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')').unwrap().1.trim_start().chars().next().unwrap()
}

/// Bytes readable from `s` within `d`.
fn read_for(s: &mut std::os::unix::net::UnixStream, d: Duration) -> usize {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let t0 = Instant::now();
    let mut total = 0;
    let mut buf = [0u8; 4096];
    while t0.elapsed() < d {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(_) => {}
        }
    }
    total
}

#[test]
fn pause_freezes_and_thaw_resumes() {
    let e = env("pause", &["sh", "-c", "while :; do echo x; sleep 0.02; done"], |_| {});
    let st = client::spawn(&shim_bin(), &e.spec_path).unwrap();
    let mut s = client::attach(&e.spec.socket_path, false, true, true).unwrap();
    client::go(&e.spec.socket_path).unwrap();
    assert!(read_for(&mut s, Duration::from_millis(200)) > 0);
    let cg = cgroup_of(&e);
    assert!(!cg.is_frozen());
    cg.freeze().unwrap();
    assert_eq!(v1_file(&e, "freezer", "freezer.state"), "FROZEN");
    assert!(cg.is_frozen());
    let state = proc_state(st.pid);
    assert!(matches!(state, 'D' | 'T'), "frozen task state {state}");
    read_for(&mut s, Duration::from_millis(100)); // what was in flight before the freeze
    assert_eq!(read_for(&mut s, Duration::from_millis(400)), 0, "output while frozen");
    // No exec into a paused container (Docker's words).
    let err = client::exec(&e.spec.socket_path, &ExecSpec { args: vec!["true".into()], ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("is paused, unpause the container before exec"), "{err}");
    cg.thaw().unwrap();
    assert_eq!(v1_file(&e, "freezer", "freezer.state"), "THAWED");
    assert!(read_for(&mut s, Duration::from_millis(300)) > 0, "no output after thaw");
    assert_eq!(stop(&e, st).exit_code, 137);
}

#[test]
fn cgroup_limits_are_written_and_stats_read_back() {
    let e = env("limits", &["sh", "-c", "dd if=/dev/zero of=/tmp/f bs=1M count=8 2>/dev/null; sleep 100"], |s| {
        s.cgroup.memory = Some(64 << 20);
        s.cgroup.memory_swap = Some(128 << 20);
        s.cgroup.cpu_shares = Some(512);
        s.cgroup.cpu_quota = Some(50_000);
        s.cgroup.cpu_period = Some(100_000);
        s.cgroup.cpuset_cpus = Some("0".into());
        s.cgroup.pids_limit = Some(50);
    });
    let st = start(&e);
    assert_eq!(v1_file(&e, "memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(v1_file(&e, "memory", "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(v1_file(&e, "cpu", "cpu.shares"), "512");
    assert_eq!(v1_file(&e, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(v1_file(&e, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(v1_file(&e, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(v1_file(&e, "pids", "pids.max"), "50");
    assert!(v1_file(&e, "pids", "cgroup.procs").lines().any(|l| l == st.pid.to_string()));
    std::thread::sleep(Duration::from_millis(300)); // let dd run
    let s = cgroup_of(&e).stats();
    eprintln!("v1 stats: {s:?}");
    assert!(s.cpu.total_ns > 0);
    let ncpu = std::fs::read_to_string("/proc/stat").unwrap().lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count();
    assert_eq!(s.cpu.percpu_ns.len(), ncpu);
    assert_eq!(s.cpu.percpu_ns.iter().sum::<u64>(), s.cpu.total_ns);
    assert!(s.memory.usage > 8 << 20, "the 8 MiB file in /tmp is charged");
    assert_eq!(s.memory.limit, 64 << 20);
    for k in ["cache", "rss", "total_inactive_file", "total_rss"] {
        assert!(s.memory.stats.contains_key(k), "memory.stat {k}");
    }
    assert!((1..=2).contains(&s.pids.current), "{:?}", s.pids); // sleep (and sh)
    assert_eq!(s.pids.limit, 50);
    for b in &s.blkio.io_service_bytes_recursive {
        assert!(["Read", "Write", "Sync", "Async", "Discard", "Total"].contains(&b.op.as_str()), "{b:?}");
    }
    let host = berth_runtime::cgroup::system_cpu_usage(Path::new("/proc")).unwrap();
    assert!(host.system_usage_ns > s.cpu.total_ns && host.online_cpus as usize == ncpu);
    stop(&e, st);
}

#[test]
fn memory_limit_oom_kills_with_137() {
    let e = env("oom", &["sh", "-c", "head -c 200m /dev/zero | tail"], |s| {
        s.cgroup.memory = Some(64 << 20);
        s.cgroup.memory_swap = Some(64 << 20);
    });
    let (_, _, x) = run(&e);
    assert_eq!(x.exit_code, 137);
    assert!(x.oom_killed);
}

#[test]
fn ulimits_apply_to_init_and_exec_and_clamp() {
    let (_, hard_nofile) = berth_sys::process::getrlimit(berth_sys::libc::RLIMIT_NOFILE as i32).unwrap();
    let e = env("ulimit", &["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c; ulimit -Hu; sleep 100"], |s| {
        s.ulimits = vec![
            Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 },
            Ulimit { name: "core".into(), soft: 0, hard: 0 },
            // Above our hard limit: clamped, not an error (no CAP_SYS_RESOURCE here).
            Ulimit { name: "nproc".into(), soft: -1, hard: -1 },
        ];
    });
    let st = client::spawn(&shim_bin(), &e.spec_path).unwrap();
    let mut s = client::attach(&e.spec.socket_path, false, true, true).unwrap();
    client::go(&e.spec.socket_path).unwrap();
    let (_, hard_nproc) = berth_sys::process::getrlimit(berth_sys::libc::RLIMIT_NPROC as i32).unwrap();
    let want = format!("1024\n2048\n0\n{}\n", if hard_nproc == berth_sys::process::RLIM_INFINITY { "unlimited".to_string() } else { hard_nproc.to_string() });
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want.len() + 32 && !String::from_utf8_lossy(&got).contains(&format!("{}\n", want.lines().last().unwrap())) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let mut out = Vec::new();
    let mut rest = &got[..];
    while let Some((_, p, n)) = berth_runtime::frame::decode(rest) {
        out.extend_from_slice(p);
        rest = &rest[n..];
    }
    assert_eq!(String::from_utf8_lossy(&out), want);
    let (x, _) = client::exec(&e.spec.socket_path, &ExecSpec { args: vec!["sh".into(), "-c".into(), "ulimit -n; ulimit -Hn".into()], ..Default::default() }).unwrap();
    assert_eq!(collect_exec(x).0, "1024\n2048\n");
    if hard_nproc != berth_sys::process::RLIM_INFINITY {
        assert!(shim_log(&e).contains("warning: ulimit nproc: hard limit -1 clamped"), "{}", shim_log(&e));
    }
    stop(&e, st);
    // A nofile hard limit above ours is clamped to ours.
    let e = env("ulimit2", &["sh", "-c", "ulimit -n; ulimit -Hn"], |s| {
        s.ulimits = vec![Ulimit { name: "nofile".into(), soft: 1 << 30, hard: 1 << 30 }];
    });
    let (out, _, x) = run(&e);
    assert_eq!(x.exit_code, 0);
    assert_eq!(out, format!("{hard_nofile}\n{hard_nofile}\n"));
    assert!(shim_log(&e).contains("ulimit nofile: hard limit 1073741824 clamped"), "{}", shim_log(&e));
    // Unknown names fail the start.
    let e = env("ulimit3", &["true"], |s| s.ulimits = vec![Ulimit { name: "bogus".into(), soft: 1, hard: 1 }]);
    let err = client::spawn(&shim_bin(), &e.spec_path).unwrap_err();
    assert_eq!(err.to_string(), "invalid ulimit type: bogus");
}

#[test]
fn readonly_rootfs_with_writable_tmpfs() {
    let script = "touch /x 2>&1; touch /etc/x 2>/dev/null || echo etc-ro; touch /run/y && echo run-ok; \
                  touch /dev/shm/z && echo shm-ok; echo $$ > /proc/self/comm && echo proc-ok; \
                  grep ' /run ' /proc/mounts; grep -c ' / overlay ro,' /proc/mounts; pwd";
    let e = env("ro", &["sh", "-c", script], |s| {
        s.readonly_rootfs = true;
        s.cwd = "/made/by/init".into();
        s.mounts = vec![Mount::tmpfs("/run:rw,size=64m")];
    });
    let (out, err, x) = run(&e);
    assert_eq!(x.exit_code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "touch: /x: Read-only file system");
    assert_eq!(&lines[1..5], ["etc-ro", "run-ok", "shm-ok", "proc-ok"]);
    assert!(lines[5].starts_with("tmpfs /run tmpfs rw,nosuid,nodev,noexec,"), "{out}");
    assert!(lines[5].contains("size=65536k"), "{out}");
    assert_eq!(lines[6], "1", "{out}");
    assert_eq!(lines[7], "/made/by/init");
}

#[test]
fn init_runs_as_pid_1_and_forwards_signals() {
    let tini = Path::new("/usr/bin/tini-static");
    assert!(tini.exists(), "Debian's tini package provides {}", tini.display());
    let e = env("init", &["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; ls -l /sbin/docker-init; exit 5"], |s| {
        s.init = Some(tini.into());
    });
    let (out, err, x) = run(&e);
    assert_eq!(x.exit_code, 5, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("/sbin/docker-init -- sh -c "), "{out}");
    assert_ne!(lines[1], "1", "the command is not pid 1");
    assert!(lines[2].starts_with("-r"), "{out}");
    // SIGTERM reaches `sleep` through tini: 143.
    let e = env("initterm", &["sleep", "100"], |s| s.init = Some(tini.into()));
    let mut st = start(&e);
    std::thread::sleep(Duration::from_millis(100));
    client::kill(&e.spec.socket_path, 15).unwrap();
    st.shim.wait().unwrap();
    assert_eq!(client::read_exit(&e.spec.exit_path).unwrap().exit_code, 143);
}

#[test]
fn sigterm_to_a_handlerless_pid_1_is_ignored_sigkill_is_not() {
    let e = env("term", &["sleep", "100"], |_| {});
    let mut st = start(&e);
    client::kill(&e.spec.socket_path, 15).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(st.shim.try_wait().unwrap().is_none(), "pid 1 without a SIGTERM handler must survive SIGTERM");
    assert!(client::read_exit(&e.spec.exit_path).is_none());
    client::kill(&e.spec.socket_path, 9).unwrap();
    st.shim.wait().unwrap();
    assert_eq!(client::read_exit(&e.spec.exit_path).unwrap().exit_code, 137);
    // A shell that traps TERM does get it.
    let e = env("trap", &["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done"], |_| {});
    let mut st = start(&e);
    std::thread::sleep(Duration::from_millis(200));
    client::kill(&e.spec.socket_path, 15).unwrap();
    st.shim.wait().unwrap();
    assert_eq!(client::read_exit(&e.spec.exit_path).unwrap().exit_code, 7);
}

#[test]
fn json_log_rotates() {
    let script = "i=0; while [ $i -lt 300 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done";
    let e = env("rotate", &["sh", "-c", script], |s| {
        s.log_max_size = Some(4000);
        s.log_max_file = 3;
    });
    let (out, _, x) = run(&e);
    assert_eq!(x.exit_code, 0);
    assert_eq!(out.lines().count(), 300, "attach gets everything");
    let log = |suffix: &str| {
        let mut p = e.spec.log_path.as_os_str().to_owned();
        p.push(suffix);
        std::fs::read_to_string(p).ok()
    };
    let (cur, one, two) = (log("").unwrap(), log(".1").unwrap(), log(".2").unwrap());
    assert!(log(".3").is_none());
    let lines = |t: &str| -> Vec<String> {
        t.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["log"].as_str().unwrap().to_string()).collect()
    };
    for f in [&cur, &one, &two] {
        assert!(f.len() <= 4000, "{}", f.len());
        assert!(!f.is_empty());
    }
    // Consecutive across files, newest last.
    let all: Vec<String> = [two, one, cur].iter().flat_map(|t| lines(t)).collect();
    assert_eq!(all.last().unwrap(), "line-299-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
    let first: usize = all[0].split('-').nth(1).unwrap().parse().unwrap();
    for (k, l) in all.iter().enumerate() {
        assert_eq!(l, &format!("line-{}-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", first + k));
    }
}
