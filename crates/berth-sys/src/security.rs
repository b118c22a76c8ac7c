//! Process hardening calls: capability sets (capget/capset, the bounding set, ambient
//! capabilities, keep-caps), no_new_privs, seccomp filter loading, and statvfs mount
//! flags. Capability sets are passed as `u64` bit masks (bit N = capability N). Which
//! capabilities and which filter is policy, decided in `berth-runtime::security`.

use crate::{check, cstr};
use std::io;
use std::path::Path;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's (effective, permitted, inheritable) sets.
pub fn capget() -> io::Result<(u64, u64, u64)> {
    let mut hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 capget writes exactly two CapData structs, which `data` holds;
    // `hdr` is a valid header for the calling thread (pid 0).
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut CapHeader, data.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok((join(|d| d.effective), join(|d| d.permitted), join(|d| d.inheritable)))
}

/// `capset` for the calling thread. Each set must be a subset of the current permitted
/// set (inheritable: of permitted ∪ bounding), else EPERM.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let mut hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        CapData { effective: lo(effective), permitted: lo(permitted), inheritable: lo(inheritable) },
        CapData { effective: hi(effective), permitted: hi(permitted), inheritable: hi(inheritable) },
    ];
    // SAFETY: version 3 capset reads two CapData structs from `data`, and the kernel may
    // write the preferred version into `hdr`, which is a live, writable local.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: every prctl used here takes integer arguments only; unused ones are 0.
    check(unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

/// Whether `cap` is in the calling thread's bounding set (`Ok(false)` also for caps the
/// kernel does not know, which report EINVAL).
pub fn cap_bounding_has(cap: u32) -> io::Result<bool> {
    match prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0) {
        Ok(v) => Ok(v == 1),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `PR_CAPBSET_DROP`: removes `cap` from the bounding set (needs CAP_SETPCAP).
pub fn cap_bounding_drop(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0).map(drop)
}

/// `PR_SET_KEEPCAPS`: with `true`, a setuid away from 0 keeps the permitted set.
pub fn set_keep_caps(keep: bool) -> io::Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep), 0).map(drop)
}

/// `PR_CAP_AMBIENT_CLEAR_ALL`. EINVAL (kernel < 4.3, no ambient sets) is not an error.
pub fn ambient_clear_all() -> io::Result<()> {
    match prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.map(drop),
    }
}

/// `PR_CAP_AMBIENT_RAISE` for `cap` (must be permitted and inheritable).
pub fn ambient_raise(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, libc::c_ulong::from(cap)).map(drop)
}

/// `PR_SET_NO_NEW_PRIVS`: execve can no longer grant privileges (setuid bits, file caps).
pub fn set_no_new_privs() -> io::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop)
}

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const BpfInsn,
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`: installs `prog` for the calling thread
/// (inherited over fork/execve). Needs no_new_privs or CAP_SYS_ADMIN.
pub fn seccomp_set_filter(prog: &[BpfInsn]) -> io::Result<()> {
    let len = libc::c_ushort::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = SockFprog { len, filter: prog.as_ptr() };
    // SAFETY: `fprog` points at `prog`, alive and unmodified for the call; `BpfInsn` has
    // the layout of the kernel's `struct sock_filter`; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            0 as libc::c_ulong,
            &fprog as *const SockFprog,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The mount flags of the filesystem at `path` as `MS_*` bits (only the ones a
/// remount must repeat: ro, nosuid, nodev, noexec, noatime, nodiratime, relatime).
pub fn mount_flags(path: &Path) -> io::Result<libc::c_ulong> {
    let p = cstr(path)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `p` is a valid C string and `st` is writable memory for one statvfs.
    check(unsafe { libc::statvfs(p.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statvfs succeeded and filled the struct (it was zeroed before anyway).
    let f = unsafe { st.assume_init() }.f_flag;
    let map = [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(map.iter().filter(|(st, _)| f & *st != 0).fold(0, |acc, (_, ms)| acc | ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capget_reads_own_sets() {
        let (eff, perm, _inh) = capget().unwrap();
        assert_eq!(eff & !perm, 0, "effective is a subset of permitted");
    }

    #[test]
    fn mount_flags_of_proc() {
        let f = mount_flags(Path::new("/proc")).unwrap();
        assert_eq!(f & libc::MS_RDONLY, 0);
    }
}
