//! The container init before execve, running in the process the shim cloned into new
//! namespaces. It prepares the rootfs, hostname, loopback, user, cwd and executable,
//! reports `R` (with the pty master when there is a TTY) or `E<message>` on the sync
//! socket, blocks until the shim sends `G`, then drops privileges and execs. A failed
//! execve is reported as another `E<message>`; a successful one closes the (CLOEXEC)
//! socket, which the shim reads as EOF.

use crate::spec::{Rlimit, RunSpec};
use crate::{lookup, rootfs, security, user};
use berth_sys::libc;
use berth_sys::process::exit_now;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Non-TTY stdio the shim prepared (child ends).
pub(crate) struct PipeIo {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

struct Ready {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    user: user::ExecUser,
    master: Option<std::fs::File>,
}

pub(crate) fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("invalid NUL byte in {s:?}"))
}

pub(crate) fn err_text(what: &str, e: std::io::Error) -> String {
    format!("{what}: {}", berth_sys::errno_text(&e))
}

/// `replace-or-append` of Docker's daemon environment: defaults first, the container's
/// env overrides by key, HOME from the user entry when absent.
pub(crate) fn build_env(spec: &RunSpec, home: &str) -> Vec<String> {
    build_env_from(&spec.hostname, spec.tty, &[&spec.env], home)
}

/// [`build_env`] for an exec: `layers` are applied in order (the container's env, then
/// the exec's), each overriding earlier keys.
pub(crate) fn build_env_from(hostname: &str, tty: bool, layers: &[&[String]], home: &str) -> Vec<String> {
    let mut env = vec![format!("PATH={}", lookup::DEFAULT_PATH)];
    if !hostname.is_empty() {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if tty {
        env.push("TERM=xterm".to_string());
    }
    // Slot of each key in `env`, so a merge is linear in the number of entries
    // (100k entries used to take half a minute with a scan per entry).
    let key = |e: &str| e.split('=').next().unwrap_or(e).to_string();
    let mut slots: std::collections::HashMap<String, usize> =
        env.iter().enumerate().map(|(i, e)| (key(e), i)).collect();
    for e in layers.iter().flat_map(|l| l.iter()) {
        match slots.get(e.split('=').next().unwrap_or(e)) {
            Some(&i) => env[i] = e.clone(),
            None => {
                slots.insert(key(e), env.len());
                env.push(e.clone());
            }
        }
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

fn setup(spec: &RunSpec, io: Option<PipeIo>) -> Result<Ready, String> {
    berth_sys::process::set_parent_death_signal(libc::SIGKILL).map_err(|e| err_text("prctl", e))?;
    berth_sys::process::setsid().map_err(|e| err_text("setsid", e))?;
    berth_sys::mount::umask(0);
    if let Some(io) = &io {
        for (fd, n) in [(&io.stdin, 0), (&io.stdout, 1), (&io.stderr, 2)] {
            berth_sys::fd::dup2(fd.as_fd(), n).map_err(|e| err_text("dup2", e))?;
        }
    }
    drop(io);
    // Joined before the rootfs is prepared: /sys is mounted for the namespace it shows.
    if let crate::spec::NetMode::Join(path) = &spec.network {
        let ns = std::fs::File::open(path).map_err(|e| err_text(&format!("open {}", path.display()), e))?;
        berth_sys::process::setns(std::os::fd::AsFd::as_fd(&ns), libc::CLONE_NEWNET)
            .map_err(|e| err_text("join network namespace", e))?;
    }
    rootfs::prepare(spec)?;
    if !spec.hostname.is_empty() {
        berth_sys::mount::sethostname(&spec.hostname).map_err(|e| err_text("sethostname", e))?;
    }
    if spec.network == crate::spec::NetMode::Private {
        berth_sys::net::loopback_up().map_err(|e| err_text("set loopback up", e))?;
    }

    let passwd = user::parse_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
    let groups = user::parse_group(&std::fs::read_to_string("/etc/group").unwrap_or_default());
    let mut exec_user = user::resolve(&spec.user, &passwd, &groups)?;
    user::add_groups(&mut exec_user, &spec.group_add, &groups)?;
    let env = build_env(spec, &exec_user.home);

    let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    std::fs::create_dir_all(cwd).map_err(|e| err_text(&format!("mkdir {cwd}"), e))?;
    std::env::set_current_dir(cwd).map_err(|e| err_text(&format!("chdir to cwd (\"{cwd}\") set in config.json failed"), e))?;

    let args = spec.process_args();
    let arg0 = args.first().ok_or("no command specified")?;
    let path = lookup::lookup(arg0, lookup::path_from_env(&env), Path::new(cwd), lookup::stat_probe)?;
    if spec.readonly_rootfs {
        rootfs::make_root_readonly()?;
    }

    let mut master = None;
    if spec.tty {
        let pty = stdio_pty(spec.console_size, exec_user.uid)?;
        rootfs::bind_console(&pty.slave_path)?;
        master = Some(pty.master);
    }
    security::prepare(spec)?;

    let argv = args.iter().map(|a| cstring(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| cstring(a)).collect::<Result<Vec<_>, _>>()?;
    Ok(Ready { path: cstring(&path.to_string_lossy())?, argv, envp, user: exec_user, master })
}

/// Opens a pty in the container's own devpts (so `tty` names `/dev/pts/N` inside),
/// sizes it, hands the slave to `uid` (group tty = 5), makes it the controlling
/// terminal and the process's stdio. The master goes back to the shim.
pub(crate) fn stdio_pty(console: Option<(u16, u16)>, uid: u32) -> Result<berth_sys::pty::Pty, String> {
    let pty = berth_sys::pty::open_pty(Path::new("/dev/pts/ptmx"), Path::new("/dev/pts"))
        .map_err(|e| err_text("open pty", e))?;
    if let Some((rows, cols)) = console {
        berth_sys::pty::set_winsize(pty.slave.as_fd(), rows, cols).map_err(|e| err_text("set console size", e))?;
    }
    if uid != 0 {
        berth_sys::fd::fchown(pty.slave.as_fd(), uid, 5).map_err(|e| err_text("chown pty", e))?;
    }
    berth_sys::pty::set_controlling_tty(pty.slave.as_fd()).map_err(|e| err_text("set controlling tty", e))?;
    for n in 0..3 {
        berth_sys::fd::dup2(pty.slave.as_fd(), n).map_err(|e| err_text("dup2 pty", e))?;
    }
    Ok(pty)
}

pub(crate) fn fail(sync: &OwnedFd, msg: &str, code: i32) -> ! {
    let mut m = Vec::with_capacity(msg.len() + 1);
    m.push(b'E');
    m.extend_from_slice(msg.as_bytes());
    m.truncate(8192);
    let _ = berth_sys::fd::send_msg(sync.as_fd(), &m, None);
    exit_now(code)
}

/// `--ulimit`s, planned by the shim ([`crate::spec::plan_ulimits`]).
pub(crate) fn set_rlimits(rlimits: &[Rlimit]) -> Result<(), String> {
    for r in rlimits {
        berth_sys::process::setrlimit(r.resource, r.soft, r.hard)
            .map_err(|e| err_text(&format!("setrlimit {} soft {} hard {}", r.resource, r.soft, r.hard), e))?;
    }
    Ok(())
}

/// Runs in the cloned child; never returns.
pub(crate) fn run(spec: &RunSpec, rlimits: &[Rlimit], sync: OwnedFd, io: Option<PipeIo>) -> ! {
    let ready = match setup(spec, io) {
        Ok(r) => r,
        Err(msg) => fail(&sync, &msg, 1),
    };
    // Capabilities and the seccomp filter are computed now, while the shim is still
    // busy joining us to the cgroup, not after the release.
    let prepared = match security::prepare_apply(&spec.security, false) {
        Ok(p) => p,
        Err(msg) => fail(&sync, &msg, 1),
    };
    let pass = ready.master.as_ref().map(|m| m.as_fd());
    if berth_sys::fd::send_msg(sync.as_fd(), b"R", pass).is_err() {
        exit_now(1);
    }
    drop(ready.master);
    let mut buf = [0u8; 16];
    match berth_sys::fd::recv_msg(sync.as_fd(), &mut buf) {
        Ok((n, _)) if n > 0 && buf[0] == b'G' => {}
        _ => exit_now(1), // the shim went away before releasing us
    }
    if let Err(e) = berth_sys::signal::reset_for_exec() {
        fail(&sync, &err_text("reset signals", e), 1);
    }
    berth_sys::mount::umask(0o022);
    if let Err(msg) = set_rlimits(rlimits) {
        fail(&sync, &msg, 1);
    }
    // Switches user and drops capabilities/loads seccomp in the required order.
    if let Err(msg) = security::apply_prepared(&prepared, &ready.user) {
        fail(&sync, &msg, 1);
    }
    let e = berth_sys::process::execve(&ready.path, &ready.argv, &ready.envp);
    let args = spec.process_args();
    let arg0 = args.first().map(String::as_str).unwrap_or("");
    let code = if e.raw_os_error() == Some(libc::ENOENT) { 127 } else { 126 };
    fail(&sync, &format!("exec: \"{arg0}\": {}", berth_sys::errno_text(&e)), code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_defaults_and_overrides() {
        let spec = RunSpec {
            hostname: "h1".into(),
            tty: true,
            env: vec!["PATH=/x".into(), "A=1".into(), "HOSTNAME=mine".into()],
            ..Default::default()
        };
        assert_eq!(build_env(&spec, "/root"), ["PATH=/x", "HOSTNAME=mine", "TERM=xterm", "A=1", "HOME=/root"]);
        let spec = RunSpec { env: vec!["HOME=/h".into()], ..Default::default() };
        assert_eq!(build_env(&spec, "/root"), [format!("PATH={}", lookup::DEFAULT_PATH), "HOME=/h".to_string()]);
    }

    #[test]
    fn env_merge_of_100k_entries_keeps_order_and_later_wins() {
        // Quadratic before: 100k entries made start take 34 s. The result is what counts.
        let n = 100_000;
        let mut layer: Vec<String> = (0..n).map(|i| format!("K{i}=a{i}")).collect();
        // Every other key overridden later in the same layer, plus a default overridden.
        layer.extend((0..n).step_by(2).map(|i| format!("K{i}=b{i}")));
        layer.push("PATH=/p".into());
        let exec: Vec<String> = vec!["K1=exec".into(), "NEW=1".into()];
        let env = build_env_from("", false, &[&layer, &exec], "/root");
        assert_eq!(env.len(), 1 + n + 2);
        assert_eq!(env[0], "PATH=/p");
        for (i, e) in env[1..=n].iter().enumerate() {
            let want = match i {
                1 => "K1=exec".to_string(),
                i if i % 2 == 0 => format!("K{i}=b{i}"),
                i => format!("K{i}=a{i}"),
            };
            assert_eq!(e, &want);
        }
        assert_eq!(&env[n + 1..], ["NEW=1", "HOME=/root"]);
    }
}
