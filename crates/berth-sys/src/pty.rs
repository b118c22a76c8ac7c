//! Pseudo-terminals: open a pair from a given ptmx, window size, controlling terminal.

use crate::check;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A freshly opened pseudo-terminal pair.
pub struct Pty {
    pub master: File,
    pub slave: File,
    /// Path of the slave, e.g. `/dev/pts/0`, relative to the devpts of `ptmx`.
    pub slave_path: PathBuf,
}

/// Opens `ptmx` (e.g. `/dev/ptmx` inside the container's devpts), unlocks it and opens
/// the slave (both O_CLOEXEC|O_NOCTTY). Equivalent to posix_openpt + grantpt (a no-op
/// on devpts) + unlockpt + ptsname + open.
pub fn open_pty(ptmx: &Path, pts_dir: &Path) -> io::Result<Pty> {
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(ptmx)?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which is alive.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    let slave_path = pts_dir.join(n.to_string());
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&slave_path)?;
    Ok(Pty { master, slave, slave_path })
}

/// TIOCSWINSZ: set the terminal size (rows, cols); the foreground group gets SIGWINCH.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which is alive.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

/// TIOCSCTTY: make `fd` (a tty) the controlling terminal of the calling session leader.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as libc::c_int) })?;
    Ok(())
}
