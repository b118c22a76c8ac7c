//! File descriptor plumbing: pipes, dup2, non-blocking mode, SEQPACKET socket pairs and
//! fd passing (SCM_RIGHTS), used for the shim ↔ init sync channel.

use crate::check;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid, writable array of two ints as pipe2 requires.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `dup2(old, new)`; the new fd does not have CLOEXEC (meant for stdio before execve).
pub fn dup2(old: BorrowedFd<'_>, new: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the fd table; `old` is a live borrowed fd. Replacing
    // `new` is the caller's intent (it is a stdio number whose previous owner is the
    // process itself, e.g. std's stdout, which tolerates the swap).
    check(unsafe { libc::dup2(old.as_raw_fd(), new) })?;
    Ok(())
}

/// Sets or clears O_NONBLOCK.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a live fd has no memory effects.
    unsafe {
        let fl = check(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        let nfl = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
        if nfl != fl {
            check(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, nfl))?;
        }
    }
    Ok(())
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC)`: message boundaries, EOF on close,
/// fd passing.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    check(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    // SAFETY: socketpair succeeded; both fds are fresh and exclusively ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message, optionally passing one fd with SCM_RIGHTS.
pub fn send_msg(sock: BorrowedFd<'_>, data: &[u8], pass: Option<BorrowedFd<'_>>) -> io::Result<usize> {
    // Space for one cmsg carrying one int, u64-aligned.
    let mut cbuf = [0u64; 4];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain old data; zeroed is a valid "no name, no control" value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = pass {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `cbuf` (32 bytes ≥ CMSG_SPACE(4)), so
        // CMSG_FIRSTHDR returns a valid, aligned header inside it and CMSG_DATA stays in
        // bounds for one int.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, fd.as_raw_fd());
        }
    }
    // SAFETY: `msg` references `iov`/`data`/`cbuf`, all alive for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Receives one message (blocking, retried on EINTR) and at most one passed fd
/// (received CLOEXEC). Returns 0 bytes at EOF.
pub fn recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut cbuf = [0u64; 4];
    loop {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
        // SAFETY: zeroed msghdr is valid; fields are filled below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: `msg` points at live buffers `buf` and `cbuf` of the declared sizes.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut fd = None;
        // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk
        // within those bounds. An SCM_RIGHTS int is a fresh fd now owned by us.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                    fd = Some(OwnedFd::from_raw_fd(raw));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        return Ok((n as usize, fd));
    }
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: fchown on a live fd has no memory effects.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

/// SO_RCVTIMEO on a socket: a blocking receive fails with EAGAIN after `timeout`.
pub fn set_recv_timeout(sock: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval { tv_sec: timeout.as_secs() as libc::time_t, tv_usec: timeout.subsec_micros() as libc::suseconds_t };
    // SAFETY: `tv` is a valid timeval and its exact size is passed.
    check(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(())
}
/// Whether the peer of the stream socket `fd` has read everything written to it: the
/// socket's send queue (SIOCOUTQ; for Unix sockets the kernel's buffer accounting of
/// the unread data, not a byte count), zero once the peer has read it all.
/// Takes a raw fd because callers hold it through another owner (a connection that
/// an HTTP library owns); the ioctl only writes into a local integer, so a stale or
/// wrong fd number gives an error or a meaningless count, never memory unsafety.
pub fn unread_by_peer(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one int through the pointer, which is alive.
    check(unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) })?;
    Ok(usize::try_from(n).unwrap_or(0))
}


#[cfg(test)]
mod unread_tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn counts_what_the_peer_has_not_read() {
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(unread_by_peer(a.as_raw_fd()).unwrap(), 0);
        a.write_all(b"hello").unwrap();
        assert!(unread_by_peer(a.as_raw_fd()).unwrap() > 0);
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(unread_by_peer(a.as_raw_fd()).unwrap(), 0);
        assert!(unread_by_peer(-1).is_err());
    }
}
