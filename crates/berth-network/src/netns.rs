//! Network namespaces as files: `<exec-root>/netns/<container id>`, a bind mount of a
//! namespace that a short-lived thread created with `unshare(CLONE_NEWNET)`. The file
//! keeps the namespace alive without any process in it, so berthd can configure it
//! before the container starts, and the runtime joins it by path (`setns`). Threads
//! that change namespace are always our own and end right after, never a pool thread.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::netlink::Netlink;

/// The netns file of container `id` under `exec_root`.
pub fn path(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("netns").join(id)
}

fn in_thread<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(f)?
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?
}

/// Creates a new network namespace bound at `path`, with `lo` up, and returns a netlink
/// socket inside it. An existing file at `path` is replaced.
pub fn create(path: &Path) -> io::Result<Netlink> {
    let _ = remove(path);
    // The directory goes away with its last file (the exec root is left as it was);
    // a removal racing this creation is retried.
    let mut tries = 0;
    loop {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => tries += 1,
            Err(e) => return Err(e),
        }
    }
    let p = path.to_path_buf();
    let r = in_thread(move || {
        berth_sys::process::unshare(libc::CLONE_NEWNET)?;
        berth_sys::mount::mount(Some(Path::new("/proc/thread-self/ns/net")), &p, None, libc::MS_BIND, None)?;
        let mut nl = Netlink::open()?;
        nl.set_up("lo", true)?;
        Ok(nl)
    });
    if r.is_err() {
        let _ = remove(path);
    }
    r
}

/// A netlink socket inside the namespace at `path` (a netns file or `/proc/<pid>/ns/net`).
pub fn open_in(path: &Path) -> io::Result<Netlink> {
    let f = std::fs::File::open(path)?;
    in_thread(move || {
        berth_sys::process::setns(f.as_fd(), libc::CLONE_NEWNET)?;
        Netlink::open()
    })
}

/// Unmounts and removes the netns file; the namespace ends with its last user (its
/// veth peers with it, which takes their host ends along). Missing is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match berth_sys::mount::umount2(path, libc::MNT_DETACH) {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // Fails while other containers' files are there, which is fine.
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// The container ids with a netns file under `exec_root` (for the startup sweep).
pub fn list(exec_root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(exec_root.join("netns")) else { return Vec::new() };
    rd.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).filter(|n| !n.starts_with('.')).collect()
}
