//! poll(2) over a slice of descriptors.

use std::io;
use std::os::fd::RawFd;

pub use libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

/// One `struct pollfd`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    pub fn new(fd: RawFd, events: i16) -> Self {
        PollFd(libc::pollfd { fd, events, revents: 0 })
    }
    pub fn revents(&self) -> i16 {
        self.0.revents
    }
    pub fn fd(&self) -> RawFd {
        self.0.fd
    }
}

/// `poll(fds, timeout_ms)`; -1 waits forever. EINTR is returned as an error of kind
/// `Interrupted` for the caller to retry.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: PollFd is repr(transparent) over pollfd, so the slice is a valid pollfd
    // array of `fds.len()` entries that poll may write revents into.
    let n = unsafe { libc::poll(fds.as_mut_ptr() as *mut libc::pollfd, fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
