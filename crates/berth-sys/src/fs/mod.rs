//! File-system calls std lacks: times on a symlink itself (`utimensat` with
//! `AT_SYMLINK_NOFOLLOW`), the file-system type of a path (`statfs`), a chroot-like
//! path join that keeps symlinks inside a root, and (`atomic`) the one durable
//! `write_atomic` every crate uses for state files.

mod atomic;

pub use atomic::{fsync_dir, remove_stale_temps, write_atomic, write_atomic_with, Durability, WriteError};

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::{check, cstr};

/// Sets the access and modification times of `path` (not following a symlink at
/// its end) to `secs` seconds since the epoch.
pub fn set_mtime_nofollow(path: &Path, secs: i64) -> io::Result<()> {
    let p = cstr(path)?;
    let t = libc::timespec { tv_sec: secs as libc::time_t, tv_nsec: 0 };
    let times = [t, t];
    // SAFETY: `p` is a valid C string and `times` two initialised timespecs, both live
    // for the call; utimensat only reads them.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(())
}

/// The `f_type` magic number of the file system holding `path` (linux/magic.h).
pub fn statfs_type(path: &Path) -> io::Result<i64> {
    let p = cstr(path)?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `p` is a valid C string; `st` is writable memory of the struct's size,
    // which statfs fills on success.
    check(unsafe { libc::statfs(p.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statfs returned 0, so it initialised the struct (it was zeroed anyway).
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the word size differs between targets
    Ok(st.f_type as i64)
}

/// Resolves the container path `unsafe_path` under `root` like a chroot would:
/// `..` cannot climb above `root`, symlinks are followed relative to `root`. Missing
/// components are kept as given (for the caller to create).
pub fn secure_join(root: &Path, unsafe_path: &str) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = Path::new(unsafe_path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut cand = root.to_path_buf();
        cand.extend(&done);
        cand.push(&c);
        match std::fs::symlink_metadata(&cand) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&cand)?;
                if target.is_absolute() {
                    done.clear();
                }
                let mut comps: Vec<OsString> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s.to_os_string()),
                        Component::ParentDir => Some(OsString::from("..")),
                        _ => None,
                    })
                    .collect();
                while let Some(x) = comps.pop() {
                    pending.push_front(x);
                }
            }
            _ => done.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    #[test]
    fn secure_join_stays_inside() {
        let t = std::env::temp_dir().join(format!("berth-sys-sj-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let root = t.as_path();
        std::fs::create_dir_all(root.join("etc/real")).unwrap();
        symlink("/etc/real", root.join("abs")).unwrap();
        symlink("../../../../../..", root.join("etc/up")).unwrap();
        symlink("real", root.join("etc/rel")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let j = |p: &str| secure_join(root, p).unwrap();
        assert_eq!(j("/etc/hosts"), root.join("etc/hosts"));
        assert_eq!(j("/../../etc/hosts"), root.join("etc/hosts"));
        assert_eq!(j("/abs/x"), root.join("etc/real/x"));
        assert_eq!(j("/etc/up/tmp"), root.join("tmp"));
        assert_eq!(j("/etc/rel/f"), root.join("etc/real/f"));
        assert_eq!(j("/missing/a/../b"), root.join("missing/b"));
        assert!(secure_join(root, "/loop1/x").is_err());
        // Times are set on the link itself.
        set_mtime_nofollow(&root.join("abs"), 1_000_000).unwrap();
        assert_eq!(std::fs::symlink_metadata(root.join("abs")).unwrap().mtime(), 1_000_000);
        assert_eq!(statfs_type(Path::new("/proc")).unwrap(), 0x9fa0);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
