//! The shim's side of `RunSpec::runtime`: the container is created by an OCI runtime
//! binary (runc's command line: `create`, `start`, `delete`) from a bundle, and the
//! shim keeps every other role (subreaper, stdio/pty relay, log, socket, exit.json).
//!
//! - The shim moves into a mount namespace of its own (`unshare(CLONE_NEWNS)`, `/`
//!   rslave so host unmounts still reach it) and mounts the overlay on
//!   `rootfs.merged` there: visible to the runtime it starts, never to the host.
//! - `<exec-root>/<id>.bundle/config.json` is [`crate::oci::config`] of the spec, with
//!   the user resolved in the container's /etc/passwd by the shim.
//! - `runc --root <exec-root>/runc create --bundle B --pid-file B/init.pid
//!   [--console-socket B/console.sock] <id>` with the shim's pipes as stdio (no TTY);
//!   with a TTY the runtime passes the pty master over the console socket
//!   (SCM_RIGHTS). runc exits after `create`, so the container's init is reparented
//!   to the shim (child subreaper), which reaps it and records its exit as usual.
//! - `go` = `runc start <id>`; after the exit `runc delete --force <id>` removes the
//!   runtime's state and the cgroup, then the bundle is removed.
//!
//! The runtime's errors are read from its JSON log (`--log B/<verb>.log
//! --log-format json`, last `error` entry) and worded as Docker does
//! (`OCI runtime create failed: …`). `docker exec` does not go through the runtime:
//! the shim's own setns-based exec ([`crate::exec`]) works on any running container.

use crate::init::PipeIo;
use crate::oci::{self, HostFacts};
use crate::spec::RunSpec;
use crate::{rootfs, security, user};
use berth_sys::libc;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One container's runtime invocation context.
pub(crate) struct Runc {
    bin: PathBuf,
    /// The runtime's state directory (`--root`), shared by this daemon's containers.
    root: PathBuf,
    bundle: PathBuf,
    id: String,
}

fn errno(what: &str, e: io::Error) -> String {
    format!("{what}: {}", berth_sys::errno_text(&e))
}

/// `<exec-root>`: the directory of the shim socket (`<exec-root>/<id>.sock`).
fn exec_root(spec: &RunSpec) -> PathBuf {
    spec.socket_path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/run/berth"))
}

impl Runc {
    pub(crate) fn new(spec: &RunSpec, bin: &Path) -> Runc {
        let root = exec_root(spec);
        Runc { bin: bin.to_path_buf(), root: root.join("runc"), bundle: root.join(format!("{}.bundle", spec.id)), id: spec.id.clone() }
    }

    fn command(&self, verb: &str) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c.arg("--log").arg(self.bundle.join(format!("{verb}.log"))).arg("--log-format").arg("json");
        c.arg(verb);
        c.current_dir(&self.bundle);
        c
    }

    /// The last `error` message of the runtime's JSON log for `verb`, else `fallback`.
    fn error_text(&self, verb: &str, fallback: String) -> String {
        let log = std::fs::read_to_string(self.bundle.join(format!("{verb}.log"))).unwrap_or_default();
        last_error(&log).unwrap_or(fallback)
    }

    /// Everything up to a container blocked before its process runs: returns the
    /// init's host pid and, with a TTY, the pty master. On failure the runtime's state
    /// is deleted and the message is Docker's.
    pub(crate) fn create(&self, spec: &RunSpec, io: Option<PipeIo>) -> Result<(i32, Option<File>), String> {
        let r = self.try_create(spec, io);
        if r.is_err() {
            self.delete();
        }
        r
    }

    fn try_create(&self, spec: &RunSpec, io: Option<PipeIo>) -> Result<(i32, Option<File>), String> {
        std::fs::create_dir_all(&self.root).map_err(|e| errno(&format!("mkdir {}", self.root.display()), e))?;
        let _ = std::fs::remove_dir_all(&self.bundle); // a stale bundle of an earlier start
        std::fs::create_dir_all(&self.bundle).map_err(|e| errno(&format!("mkdir {}", self.bundle.display()), e))?;
        mount_rootfs(spec)?;
        std::env::set_current_dir(&self.bundle).map_err(|e| errno("chdir bundle", e))?;
        let config = oci::config(spec, &host_facts(spec)?)?;
        let json = serde_json::to_vec(&config).map_err(|e| format!("encode config.json: {e}"))?;
        std::fs::write(self.bundle.join("config.json"), json).map_err(|e| errno("write config.json", e))?;

        let pid_file = self.bundle.join("init.pid");
        let mut cmd = self.command("create");
        cmd.arg("--bundle").arg(&self.bundle).arg("--pid-file").arg(&pid_file);
        let console = if spec.tty {
            let path = self.bundle.join("console.sock");
            let l = UnixListener::bind(&path).map_err(|e| errno("listen console socket", e))?;
            cmd.arg("--console-socket").arg(&path);
            Some(l)
        } else {
            None
        };
        cmd.arg(&self.id);
        match io {
            Some(io) => {
                cmd.stdin(File::from(io.stdin)).stdout(File::from(io.stdout)).stderr(File::from(io.stderr));
            }
            None => {
                cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let status = cmd.status().map_err(|e| create_error(&errno(&format!("exec {}", self.bin.display()), e)))?;
        drop(cmd); // the child ends of the pipes: the container holds its own copies
        if !status.success() {
            return Err(create_error(&self.error_text("create", format!("runtime create exited with {status}"))));
        }
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .ok_or_else(|| create_error("runtime wrote no pid file"))?;
        let master = match console {
            // runc has exited: its connection, with the master, is already queued.
            Some(l) => Some(receive_console(&l).map_err(|e| create_error(&e))?),
            None => None,
        };
        if let (Some(m), Some((rows, cols))) = (&master, spec.console_size) {
            let _ = berth_sys::pty::set_winsize(m.as_fd(), rows, cols);
        }
        Ok((pid, master))
    }

    /// `go`: `runc start <id>` lets the container's process run.
    pub(crate) fn start(&self) -> Result<(), String> {
        let out = self.command("start").arg(&self.id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => {
                let stderr = String::from_utf8_lossy(&o.stderr).trim().to_string();
                let fallback = if stderr.is_empty() { format!("runtime start exited with {}", o.status) } else { stderr };
                Err(format!("OCI runtime start failed: {}: unknown", self.error_text("start", fallback)))
            }
            Err(e) => Err(format!("OCI runtime start failed: {}: unknown", errno(&format!("exec {}", self.bin.display()), e))),
        }
    }

    /// `runc delete --force <id>` (state, cgroup) and the bundle; errors are logged.
    pub(crate) fn delete(&self) {
        let out = self.command("delete").arg("--force").arg(&self.id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("berth-shim: runtime delete: {}", self.error_text("delete", String::from_utf8_lossy(&o.stderr).trim().to_string())),
            Err(e) => eprintln!("berth-shim: runtime delete: {e}"),
        }
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}

fn create_error(msg: &str) -> String {
    format!("failed to create task for container: failed to create shim task: OCI runtime create failed: {msg}: unknown")
}

/// The `msg` of the last `"level":"error"` line of a runtime's JSON log.
pub(crate) fn last_error(log: &str) -> Option<String> {
    log.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v.get("level")?.as_str()? == "error").then(|| v.get("msg")?.as_str().map(str::to_string)).flatten()
    })
}

/// In a mount namespace of the shim's own: the overlay on `merged`.
fn mount_rootfs(spec: &RunSpec) -> Result<(), String> {
    berth_sys::process::unshare(libc::CLONE_NEWNS).map_err(|e| errno("unshare mount namespace", e))?;
    berth_sys::mount::mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_SLAVE, None)
        .map_err(|e| errno("make / rslave", e))?;
    rootfs::mount_overlay(&spec.rootfs)
}

/// The user (from the container's /etc/passwd and /etc/group under `merged`) and the
/// kernel facts [`oci::config`] needs.
fn host_facts(spec: &RunSpec) -> Result<HostFacts, String> {
    let read = |p: &str| {
        rootfs::secure_join(&spec.rootfs.merged, p).ok().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default()
    };
    let passwd = user::parse_passwd(&read("/etc/passwd"));
    let groups = user::parse_group(&read("/etc/group"));
    let mut user = user::resolve(&spec.user, &passwd, &groups).map_err(|e| create_error(&e))?;
    user::add_groups(&mut user, &spec.group_add, &groups).map_err(|e| create_error(&e))?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Ok(HostFacts {
        user,
        last_cap: security::last_cap(Path::new("/proc")),
        kernel: crate::seccomp::parse_kernel(&release),
    })
}

fn receive_console(l: &UnixListener) -> Result<File, String> {
    l.set_nonblocking(true).map_err(|e| errno("console socket", e))?;
    let (conn, _) = l.accept().map_err(|e| errno("runtime did not connect to the console socket", e))?;
    conn.set_nonblocking(false).map_err(|e| errno("console socket", e))?;
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    match berth_sys::fd::recv_msg(conn.as_fd(), &mut buf) {
        Ok((_, Some(fd))) => Ok(File::from(fd)),
        Ok((_, None)) => Err("runtime sent no pty master on the console socket".to_string()),
        Err(e) => Err(errno("read console socket", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_from_the_json_log() {
        let log = concat!(
            r#"{"level":"warning","msg":"something","time":"2024-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"}"#,
            "\n",
            "not json\n",
        );
        let m = last_error(log).unwrap();
        assert_eq!(m, "runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH");
        let e = crate::RuntimeError::Start(create_error(&m));
        assert_eq!(e.start_exit_code(), Some(127));
        assert!(e.to_string().starts_with("failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed"));
        assert_eq!(last_error(r#"{"level":"info","msg":"x"}"#), None);
    }

    #[test]
    fn paths_under_the_exec_root() {
        let spec = RunSpec { id: "abc".into(), socket_path: "/run/berth/abc.sock".into(), ..Default::default() };
        let r = Runc::new(&spec, Path::new("/usr/sbin/runc"));
        assert_eq!(r.root, Path::new("/run/berth/runc"));
        assert_eq!(r.bundle, Path::new("/run/berth/abc.bundle"));
    }
}
