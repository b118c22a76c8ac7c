//! Helpers shared by the integration tests: a throwaway busybox rootfs, a run spec
//! around it, and attach-stream decoding.
#![allow(dead_code, clippy::unwrap_used)]

use berth_runtime::client::{self, Started};
use berth_runtime::frame;
use berth_runtime::spec::{CgroupSpec, Rootfs, RunSpec};
use berth_runtime::ExitInfo;
use std::io::Read;
use std::path::{Path, PathBuf};

const APPLETS: &[&str] = &[
    "sh", "ls", "echo", "cat", "sleep", "true", "tty", "hostname", "id", "stat", "ps", "env", "pwd", "head", "tail", "dd",
    "touch", "grep", "stty", "kill", "wc", "printf", "mount", "df", "tr", "seq",
];

pub fn shim_bin() -> PathBuf {
    std::env::var_os("BERTH_SHIM_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_berth-shim").into())
}

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub dir: PathBuf,
    pub spec: RunSpec,
    pub spec_path: PathBuf,
}

pub fn build_rootfs(lower: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(lower.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", lower.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", lower.join("bin").join(a)).unwrap();
    }
    std::fs::write(lower.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n").unwrap();
    std::fs::write(lower.join("etc/group"), "root:x:0:\nwheel:x:10:app\napp:x:1000:\n").unwrap();
}

pub fn env(name: &str, args: &[&str], tweak: impl FnOnce(&mut RunSpec)) -> Env {
    let td = tempfile::tempdir().unwrap();
    let dir = td.path().to_path_buf();
    let lower = dir.join("lower");
    build_rootfs(&lower);
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir(dir.join(d)).unwrap();
    }
    let id = format!("{name}-{}", std::process::id());
    let mut spec = RunSpec {
        id: id.clone(),
        rootfs: Rootfs { lower: vec![lower], upper: dir.join("upper"), work: dir.join("work"), merged: dir.join("merged") },
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        hostname: "berthbox".into(),
        cgroup: CgroupSpec { root: "/sys/fs/cgroup".into(), parent: "berth-test".into(), name: id, ..Default::default() },
        log_path: dir.join("ctr-json.log"),
        exit_path: dir.join("exit.json"),
        socket_path: dir.join("shim.sock"),
        shim_log_path: Some(dir.join("shim.log")),
        ..Default::default()
    };
    tweak(&mut spec);
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    Env { _dir: td, dir, spec, spec_path }
}

/// Reads frames until EOF: (stdout, stderr).
pub fn collect(mut s: impl Read) -> (String, String) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut rest = &raw[..];
    while let Some((stream, payload, n)) = frame::decode(rest) {
        if stream == frame::STDOUT { out.extend_from_slice(payload) } else { err.extend_from_slice(payload) }
        rest = &rest[n..];
    }
    assert!(rest.is_empty(), "trailing bytes in attach stream");
    (String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

/// spawn + attach(out, err) + go; returns output and exit info.
pub fn run(e: &Env) -> (String, String, ExitInfo) {
    let mut st: Started = client::spawn(&shim_bin(), &e.spec_path).unwrap_or_else(|err| panic!("spawn: {err} ; shim log: {}", shim_log(e)));
    let s = client::attach(&e.spec.socket_path, false, true, true).unwrap();
    client::go(&e.spec.socket_path).unwrap();
    let (out, err) = collect(s);
    let x = client::read_exit(&e.spec.exit_path).expect("exit.json");
    st.shim.wait().unwrap();
    assert!(!e.spec.socket_path.exists(), "socket removed");
    (out, err, x)
}

pub fn shim_log(e: &Env) -> String {
    std::fs::read_to_string(e.dir.join("shim.log")).unwrap_or_default()
}

/// spawn + go for a long-running container.
pub fn start(e: &Env) -> Started {
    let st = client::spawn(&shim_bin(), &e.spec_path).unwrap_or_else(|err| panic!("spawn: {err} ; shim log: {}", shim_log(e)));
    client::go(&e.spec.socket_path).unwrap();
    st
}

/// SIGKILLs the container and reaps the shim.
pub fn stop(e: &Env, mut st: Started) -> ExitInfo {
    let _ = client::kill(&e.spec.socket_path, 9);
    st.shim.wait().unwrap();
    client::read_exit(&e.spec.exit_path).expect("exit.json")
}

/// Reads an exec stream to EOF: (stdout, stderr, exit code from the stream-3 frame).
pub fn collect_exec(mut s: impl Read) -> (String, String, i32) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
    let mut rest = &raw[..];
    while let Some((stream, payload, n)) = frame::decode(rest) {
        assert!(code.is_none(), "frame after the exit frame");
        match stream {
            frame::STDOUT => out.extend_from_slice(payload),
            frame::STDERR => err.extend_from_slice(payload),
            client::EXEC_EXIT_STREAM => code = client::exec_exit_code(payload),
            s => panic!("unexpected stream {s}"),
        }
        rest = &rest[n..];
    }
    assert!(rest.is_empty(), "trailing bytes in exec stream");
    (String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned(), code.expect("exit frame"))
}
