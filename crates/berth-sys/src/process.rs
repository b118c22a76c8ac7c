//! Process creation and control: fork-style clone into new namespaces, execve, waitpid,
//! kill, setsid, prctl bits, credentials and setns.

use crate::check;
use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub use libc::{CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS};

/// Which side of a [`clone_process`] we are on.
#[derive(Debug, PartialEq, Eq)]
pub enum CloneResult {
    /// In the new process.
    Child,
    /// In the caller; the new process's pid (as seen from the caller's pid namespace).
    Parent(i32),
}

/// Number of threads of the calling process (from /proc/self/stat).
pub fn thread_count() -> io::Result<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // Fields after ")": state(3) ppid(4) ... num_threads is field 20 → index 17.
    rest.split_whitespace()
        .nth(17)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/self/stat"))
}

/// Proof that the process was single-threaded when it was made: get it with
/// [`single_threaded`] and use it with [`clone_with`] where /proc can no longer be read
/// (e.g. after joining a container's mount namespace). Not `Send`: it stays on the
/// thread that checked. Whoever holds it must not have started threads since.
pub struct SingleThreaded(std::marker::PhantomData<*const ()>);

/// Checks (via /proc/self/stat) that the caller is single-threaded.
pub fn single_threaded() -> io::Result<SingleThreaded> {
    if thread_count()? != 1 {
        return Err(io::Error::other("clone_process needs a single-threaded caller"));
    }
    Ok(SingleThreaded(std::marker::PhantomData))
}

/// Fork-style `clone(flags | SIGCHLD)` with no new stack: the child continues from this
/// call on a copy of the caller's memory, in the namespaces selected by `flags`
/// (`CLONE_NEW*`). Refuses (EBUSY-like error) unless the caller is single-threaded: only
/// then may the child keep running ordinary Rust code (locks held by other threads
/// would otherwise be copied locked).
pub fn clone_process(flags: libc::c_int) -> io::Result<CloneResult> {
    let proof = single_threaded()?;
    clone_with(flags, &proof)
}

/// [`clone_process`] with the single-threadedness already checked.
pub fn clone_with(flags: libc::c_int, _proof: &SingleThreaded) -> io::Result<CloneResult> {
    // SAFETY: with a null stack pointer the raw clone behaves like fork(2): the child
    // gets a copy-on-write copy of our address space and returns here with 0. The caller
    // is single-threaded (`_proof`), so no lock can be held by a thread that does
    // not exist in the child. No parent/child tid or tls pointers are passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match r {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(CloneResult::Child),
        pid => Ok(CloneResult::Parent(pid as i32)),
    }
}

/// `_exit(code)`: leave immediately without running atexit handlers or flushing stdio
/// (used in a cloned child that must not touch the parent's buffered state).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// `execve(path, argv, envp)`; only returns on failure.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: `a` and `e` are NULL-terminated arrays of pointers into CStrings that stay
    // alive (borrowed) for the duration of the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// Docker's convention: the exit status, or 128 + signal number.
    pub fn docker_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// `waitpid(pid, WNOHANG)` (pid -1 = any child). `Ok(None)` when nothing (more) to reap
/// right now or there are no children at all.
pub fn waitpid_nohang(pid: i32) -> io::Result<Option<(i32, ExitStatus)>> {
    wait_inner(pid, libc::WNOHANG)
}

/// Blocking `waitpid(pid, 0)`.
pub fn waitpid_blocking(pid: i32) -> io::Result<Option<(i32, ExitStatus)>> {
    wait_inner(pid, 0)
}

fn wait_inner(pid: i32, opts: libc::c_int) -> io::Result<Option<(i32, ExitStatus)>> {
    loop {
        let mut st: libc::c_int = 0;
        // SAFETY: `st` is a valid int for waitpid to write.
        let r = unsafe { libc::waitpid(pid, &mut st, opts) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(e),
            }
        }
        if r == 0 {
            return Ok(None);
        }
        let status = if libc::WIFSIGNALED(st) {
            ExitStatus::Signal(libc::WTERMSIG(st))
        } else if libc::WIFEXITED(st) {
            ExitStatus::Code(libc::WEXITSTATUS(st))
        } else {
            continue; // stopped/continued: not requested, but be safe
        };
        return Ok(Some((r, status)));
    }
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory effects.
    check(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// `setsid()`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: no memory effects.
    check(unsafe { libc::setsid() })?;
    Ok(())
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are reparented to us.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: get `sig` when the parent dies.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// `getppid()`.
pub fn parent_pid() -> i32 {
    // SAFETY: cannot fail.
    unsafe { libc::getppid() }
}

/// Sets supplementary groups, then gid, then uid (real, effective and saved).
/// Order matters: after setuid to non-root the others would be refused.
pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: pointer/length describe `groups`; setgroups only reads it.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresuid(uid, uid, uid) })?;
    Ok(())
}

/// `setns(fd, nstype)` (nstype 0 = any) — joins the namespace `fd` refers to.
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: no memory effects; `fd` is live.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) })?;
    Ok(())
}

/// `unshare(flags)` (`CLONE_NEW*`): moves the caller into new namespaces. The shim
/// uses `CLONE_NEWNS` to mount a runtime container's rootfs where only it (and the OCI
/// runtime it starts) can see it.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: integer argument only; no memory effects.
    check(unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// Never returns normally; helper for `Result<Infallible, _>` flows.
pub fn unreachable_ok(x: Infallible) -> ! {
    match x {}
}

/// `fchdir(fd)`: change the working directory to the directory `fd` refers to.
pub fn fchdir(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no memory effects; `fd` is live.
    check(unsafe { libc::fchdir(fd.as_raw_fd()) })?;
    Ok(())
}

/// `getpid()` (in the caller's own pid namespace).
pub fn pid() -> i32 {
    // SAFETY: cannot fail.
    unsafe { libc::getpid() }
}

/// Resource limits by Docker's `--ulimit` names (`nofile`, `nproc`, `core`, ...), as
/// the `RLIMIT_*` numbers `setrlimit` takes.
pub fn rlimit_resource(name: &str) -> Option<i32> {
    Some(match name {
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        "as" => libc::RLIMIT_AS,
        _ => return None,
    } as i32)
}

/// `RLIM_INFINITY` as a u64.
pub const RLIM_INFINITY: u64 = libc::RLIM_INFINITY;

/// `getrlimit(resource)`: (soft, hard); `RLIM_INFINITY` for unlimited.
pub fn getrlimit(resource: i32) -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid rlimit for the kernel to fill.
    check(unsafe { libc::getrlimit(resource as _, &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

/// `setrlimit(resource, soft, hard)`. Raising the hard limit needs CAP_SYS_RESOURCE.
pub fn setrlimit(resource: i32, soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `r` is a valid, initialised rlimit read by the kernel.
    check(unsafe { libc::setrlimit(resource as _, &r) })?;
    Ok(())
}
