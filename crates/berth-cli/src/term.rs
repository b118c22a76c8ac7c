//! The local terminal: isatty, window size, raw mode (restored on exit) and a self-pipe
//! that turns asynchronous signals into bytes a forwarding thread can read.
//!
//! This is the CLI's only `unsafe`: thin libc calls on file descriptors we own.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

pub fn isatty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// (rows, cols) of the terminal on `fd`.
pub fn winsize(fd: i32) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && (ws.ws_row > 0 || ws.ws_col > 0) {
        Some((ws.ws_row, ws.ws_col))
    } else {
        None
    }
}

/// Size of the user's terminal: stdout first (as docker), then stdin.
pub fn tty_size() -> Option<(u16, u16)> {
    winsize(1).or_else(|| winsize(0))
}

static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Puts the terminal on stdin into raw mode; `restore()` undoes it.
pub fn set_raw() -> std::io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it for fd 0.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 and a valid termios pointer.
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if let Ok(mut saved) = SAVED.lock() {
        if saved.is_none() {
            *saved = Some(t);
        }
    }
    let mut raw = t;
    // SAFETY: cfmakeraw edits the struct in place.
    unsafe { libc::cfmakeraw(&mut raw) };
    // SAFETY: fd 0 and a valid termios pointer.
    if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Restores the terminal saved by `set_raw` (idempotent).
pub fn restore() {
    if let Ok(mut saved) = SAVED.lock() {
        if let Some(t) = saved.take() {
            // SAFETY: fd 0 and the termios captured earlier.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

static SIG_PIPE_W: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIG_PIPE_W.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; one byte from a valid buffer.
        unsafe { libc::write(fd, &b as *const u8 as *const libc::c_void, 1) };
    }
}

/// Catches `signals` and returns the read end of a pipe delivering one byte (the signal
/// number) per received signal.
pub fn catch_signals(signals: &[i32]) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    SIG_PIPE_W.store(fds[1], Ordering::Relaxed);
    for &s in signals {
        // SAFETY: installing a handler that only calls write(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
    // SAFETY: fds[0] is a fresh descriptor we own from here on.
    Ok(unsafe { std::fs::File::from_raw_fd(fds[0]) })
}

/// The signals `docker run` proxies to the container (all catchable ones that make sense).
pub const PROXY_SIGNALS: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGWINCH,
];

/// Name without `SIG`, as the docker CLI sends in `kill?signal=`.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        libc::SIGALRM => "ALRM",
        libc::SIGTERM => "TERM",
        libc::SIGCONT => "CONT",
        libc::SIGWINCH => "WINCH",
        libc::SIGKILL => "KILL",
        _ => return sig.to_string(),
    }
    .to_string()
}
