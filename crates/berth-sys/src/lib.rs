//! berth-sys: the only crate in Berth with `unsafe`. Thin, safe wrappers over the Linux
//! syscalls the container runtime needs — namespaces (clone/setns), mounts and
//! pivot_root, ptys, signals, poll, fd plumbing and credentials, and the one durable
//! `fs::write_atomic` for state files. Every `unsafe` block
//! carries a `// SAFETY:` note. Policy (what to mount, which namespaces) lives in
//! `berth-runtime`; this crate only makes the calls. Errors are `std::io::Error`
//! carrying the errno.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod fd;
pub mod fs;
pub mod mem;
pub mod mount;
pub mod net;
pub mod poll;
pub mod process;
pub mod pty;
pub mod security;
pub mod signal;

pub use libc;

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Converts a path into a C string, rejecting interior NULs with `EINVAL`.
pub fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub(crate) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Lower-case error text without Rust's " (os error N)" suffix, the way Go (and hence
/// Docker) prints errno values: "no such file or directory", "permission denied".
pub fn errno_text(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let s = io::Error::from_raw_os_error(code).to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s[..],
    };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_lowercase());
    }
    out.push_str(chars.as_str());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_go_like() {
        assert_eq!(errno_text(&io::Error::from_raw_os_error(libc::ENOENT)), "no such file or directory");
        assert_eq!(errno_text(&io::Error::from_raw_os_error(libc::EACCES)), "permission denied");
        assert_eq!(errno_text(&io::Error::from_raw_os_error(libc::ENOEXEC)), "exec format error");
    }
}
