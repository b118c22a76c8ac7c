//! mount(2), umount2(2), pivot_root(2), mknod(2). Flags are libc's `MS_*` / `MNT_*`
//! constants (re-exported as `berth_sys::libc`).

use crate::{check, cstr};
use std::ffi::CString;
use std::io;
use std::path::Path;

/// `mount(source, target, fstype, flags, data)`.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(cstr).transpose()?;
    let tgt = cstr(target)?;
    let fst = fstype.map(CString::new).transpose().map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let dat = data.map(CString::new).transpose().map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string alive for the call.
    check(unsafe { libc::mount(p(&src), tgt.as_ptr(), p(&fst), flags, p(&dat) as *const libc::c_void) })?;
    Ok(())
}

/// `umount2(target, flags)` (e.g. `MNT_DETACH`).
pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let t = cstr(target)?;
    // SAFETY: `t` is a valid C string alive for the call.
    check(unsafe { libc::umount2(t.as_ptr(), flags) })?;
    Ok(())
}

/// `pivot_root(new_root, put_old)`; `pivot_root(".", ".")` stacks the old root on top of
/// the new one so it can be detached without a directory for it.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    // SAFETY: raw syscall with two valid C strings; no memory is written.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mknod(path, mode, makedev(major, minor))`; mode includes the file type (S_IFCHR).
pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let p = cstr(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `p` is a valid C string; mknod writes no memory.
    check(unsafe { libc::mknod(p.as_ptr(), mode as libc::mode_t, dev) })?;
    Ok(())
}

/// `sethostname` (affects the caller's UTS namespace).
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe `name`'s bytes; sethostname only reads them.
    check(unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) })?;
    Ok(())
}

/// `umask(mask)`, returning the previous mask.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail and touches no memory.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}
