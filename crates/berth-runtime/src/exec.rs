//! `docker exec`, the child side. The shim forks an intermediate process that joins the
//! container's cgroup (while it can still see the host's /sys/fs/cgroup) and then the
//! init's ipc, uts, net, pid and mount namespaces (`/proc/<init>/ns/*`). Joining a pid
//! namespace only affects children, so it forks once more: that grandchild is inside
//! the container's pid namespace; the intermediate reports its pid (`P<pid>`) and exits,
//! and the grandchild is reparented to the shim (child subreaper), which reaps it.
//!
//! The grandchild resolves user, environment, cwd and `args[0]` inside the container
//! exactly like [`crate::init`] does, opens its pty inside the container's devpts
//! (with a TTY), reports `R` (+ the pty master) on the sync socket, applies the
//! container's rlimits and security ([`crate::security::apply_exec`]) and execs. A failed step or execve is reported as
//! `E<message>` (exit 127/126/1); a successful execve closes the CLOEXEC socket.

use crate::cgroup::Cgroup;
use crate::init::{build_env_from, cstring, err_text, fail, set_rlimits, PipeIo};
use crate::spec::{ExecSpec, Rlimit, RunSpec};
use crate::{lookup, user};
use berth_sys::libc;
use berth_sys::process::{clone_with, exit_now, CloneResult};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The namespaces an exec joins, in runc's order (mount last: after it the host's
/// /proc is out of sight, so all of them are opened first).
const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// What an exec runs with, fixed by the container: inherited from the shim.
pub(crate) struct Container<'a> {
    pub init_pid: i32,
    pub spec: &'a RunSpec,
    pub cgroup: Option<&'a Cgroup>,
    pub rlimits: &'a [Rlimit],
}

/// The intermediate process (forked from the shim); never returns.
pub(crate) fn run(c: &Container<'_>, exec: &ExecSpec, sync: OwnedFd, io: Option<PipeIo>) -> ! {
    // /proc/self is out of sight after the mount namespace switch: check now.
    let proof = match berth_sys::process::single_threaded() {
        Ok(p) => p,
        Err(e) => fail(&sync, &err_text("exec", e), 1),
    };
    if let Some(cg) = c.cgroup {
        if let Err(e) = cg.add_pid(berth_sys::process::pid()) {
            fail(&sync, &format!("join cgroup: {e}"), 1);
        }
    }
    let mut fds = Vec::with_capacity(NAMESPACES.len());
    for (name, kind) in NAMESPACES {
        let path = format!("/proc/{}/ns/{name}", c.init_pid);
        match File::open(&path) {
            Ok(f) => fds.push((f, *kind, name)),
            Err(e) => fail(&sync, &err_text(&format!("open {path}"), e), 1),
        }
    }
    for (f, kind, name) in &fds {
        if let Err(e) = berth_sys::process::setns(f.as_fd(), *kind) {
            fail(&sync, &err_text(&format!("setns {name}"), e), 1);
        }
    }
    drop(fds);
    match clone_with(0, &proof) {
        Err(e) => fail(&sync, &err_text("fork into the pid namespace", e), 1),
        Ok(CloneResult::Child) => process(c, exec, sync, io),
        Ok(CloneResult::Parent(pid)) => {
            let _ = berth_sys::fd::send_msg(sync.as_fd(), format!("P{pid}").as_bytes(), None);
            exit_now(0)
        }
    }
}

struct Ready {
    path: std::ffi::CString,
    argv: Vec<std::ffi::CString>,
    envp: Vec<std::ffi::CString>,
    user: user::ExecUser,
    master: Option<File>,
}

fn setup(c: &Container<'_>, exec: &ExecSpec, io: Option<PipeIo>) -> Result<Ready, String> {
    berth_sys::process::setsid().map_err(|e| err_text("setsid", e))?;
    if let Some(io) = &io {
        for (fd, n) in [(&io.stdin, 0), (&io.stdout, 1), (&io.stderr, 2)] {
            berth_sys::fd::dup2(fd.as_fd(), n).map_err(|e| err_text("dup2", e))?;
        }
    }
    drop(io);
    let spec = c.spec;
    let passwd = user::parse_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
    let groups = user::parse_group(&std::fs::read_to_string("/etc/group").unwrap_or_default());
    let who = if exec.user.is_empty() { &spec.user } else { &exec.user };
    let mut exec_user = user::resolve(who, &passwd, &groups)?;
    user::add_groups(&mut exec_user, &spec.group_add, &groups)?;
    let env = build_env_from(&spec.hostname, exec.tty, &[&spec.env, &exec.env], &exec_user.home);

    let cwd = [exec.cwd.as_str(), spec.cwd.as_str(), "/"].into_iter().find(|s| !s.is_empty()).unwrap_or("/");
    std::env::set_current_dir(cwd).map_err(|e| err_text(&format!("chdir to cwd (\"{cwd}\") set in config.json failed"), e))?;
    let arg0 = exec.args.first().ok_or("no command specified")?;
    let path = lookup::lookup(arg0, lookup::path_from_env(&env), Path::new(cwd), lookup::stat_probe)?;

    let mut master = None;
    if exec.tty {
        let pty = crate::init::stdio_pty(exec.console_size, exec_user.uid)?;
        master = Some(pty.master);
    }
    let argv = exec.args.iter().map(|a| cstring(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| cstring(a)).collect::<Result<Vec<_>, _>>()?;
    Ok(Ready { path: cstring(&path.to_string_lossy())?, argv, envp, user: exec_user, master })
}

/// The process inside the container's pid namespace; never returns.
fn process(c: &Container<'_>, exec: &ExecSpec, sync: OwnedFd, io: Option<PipeIo>) -> ! {
    let ready = match setup(c, exec, io) {
        Ok(r) => r,
        Err(msg) => fail(&sync, &msg, 1),
    };
    let pass = ready.master.as_ref().map(|m| m.as_fd());
    if berth_sys::fd::send_msg(sync.as_fd(), b"R", pass).is_err() {
        exit_now(1);
    }
    drop(ready.master);
    if let Err(e) = berth_sys::signal::reset_for_exec() {
        fail(&sync, &err_text("reset signals", e), 1);
    }
    berth_sys::mount::umask(0o022);
    if let Err(msg) = set_rlimits(c.rlimits) {
        fail(&sync, &msg, 1);
    }
    // The init's security hook (user switch, capabilities, no_new_privs, seccomp), with
    // all capabilities for `docker exec --privileged`. Masked paths need nothing here:
    // they are mounts in the namespace the exec joined.
    if let Err(msg) = crate::security::apply_exec(&c.spec.security, exec.privileged, &ready.user) {
        fail(&sync, &msg, 1);
    }
    let e = berth_sys::process::execve(&ready.path, &ready.argv, &ready.envp);
    let arg0 = exec.args.first().map(String::as_str).unwrap_or("");
    let code = if e.raw_os_error() == Some(libc::ENOENT) { 127 } else { 126 };
    fail(&sync, &format!("exec: \"{arg0}\": {}", berth_sys::errno_text(&e)), code)
}

/// Docker's wrapping of an exec start failure.
pub(crate) fn exec_error_message(inner: &str) -> String {
    format!("OCI runtime exec failed: exec failed: unable to start container process: {inner}: unknown")
}
