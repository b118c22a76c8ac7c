//! Signal mask, signalfd and dispositions.

use crate::check;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset with valid numbers only sets bits.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `sigs` for the calling thread (the whole process when single-threaded).
pub fn block(sigs: &[i32]) -> io::Result<()> {
    let set = sigset(sigs);
    // SAFETY: `set` is initialised; old set pointer may be null.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    Ok(())
}

/// Creates a non-blocking, close-on-exec signalfd for `sigs` (which must be blocked).
pub fn signalfd(sigs: &[i32]) -> io::Result<OwnedFd> {
    let set = sigset(sigs);
    // SAFETY: `set` is initialised; -1 asks for a new fd.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: fresh fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Drains a non-blocking signalfd; returns how many signals were read.
pub fn drain_signalfd(fd: BorrowedFd<'_>) -> usize {
    let mut n = 0;
    let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>() * 8];
    loop {
        // SAFETY: reads into a live buffer of the given length.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if r <= 0 {
            return n;
        }
        n += r as usize / std::mem::size_of::<libc::signalfd_siginfo>();
    }
}

/// Before execve: empty signal mask and default dispositions for the signals Rust's
/// runtime or the shim changed (SIGPIPE is ignored by std; ignored dispositions and the
/// mask would otherwise be inherited by the container's process).
pub fn reset_for_exec() -> io::Result<()> {
    let empty = sigset(&[]);
    // SAFETY: `empty` is initialised.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) })?;
    for s in [libc::SIGPIPE, libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: setting SIG_DFL installs no Rust handler; valid signal numbers.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
    Ok(())
}

/// Ignores `sig` (SIG_IGN).
pub fn ignore(sig: i32) {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}
