//! The container's root filesystem, set up by the init inside its new mount namespace:
//! overlayfs on `merged`, the standard kernel filesystems and /dev, the spec's extra
//! mounts (destinations resolved under `merged` without following symlinks out of it),
//! then pivot_root. The fixed mounts are planned as data ([`standard_mounts`]) so the
//! plan is unit-testable; [`prepare`] applies it.

use crate::spec::{Mount, MountKind, Rootfs, RunSpec};
use berth_sys::libc;
use berth_sys::mount::{mknod, mount, pivot_root, umount2};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// One planned kernel mount; `target` is absolute inside the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOp {
    pub fstype: &'static str,
    pub target: &'static str,
    pub flags: libc::c_ulong,
    pub data: &'static str,
    /// Failure is ignored (e.g. mqueue without kernel support).
    pub optional: bool,
}

/// Docker's default mounts, in order.
pub fn standard_mounts() -> Vec<MountOp> {
    let (nosuid, nodev, noexec) = (libc::MS_NOSUID, libc::MS_NODEV, libc::MS_NOEXEC);
    let m = |fstype, target, flags, data, optional| MountOp { fstype, target, flags, data, optional };
    vec![
        m("proc", "/proc", nosuid | nodev | noexec, "", false),
        m("sysfs", "/sys", nosuid | nodev | noexec | libc::MS_RDONLY, "", false),
        m("tmpfs", "/dev", nosuid | libc::MS_STRICTATIME, "mode=755,size=65536k", false),
        m("devpts", "/dev/pts", nosuid | noexec, "newinstance,ptmxmode=0666,mode=0620,gid=5", false),
        m("tmpfs", "/dev/shm", nosuid | nodev | noexec, "mode=1777,size=65536k", false),
        m("mqueue", "/dev/mqueue", nosuid | nodev | noexec, "", true),
    ]
}

/// Character devices created in /dev: (name, major, minor), mode 0666.
pub const DEVICES: &[(&str, u32, u32)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// Symlinks created in /dev: (name, target).
pub const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// overlayfs mount data. With `base`, lower/upper/work paths under `base` are made
/// relative (the caller chdirs to `base`) so many layers fit in one page.
pub fn overlay_data(r: &Rootfs, base: Option<&Path>) -> String {
    let rel = |p: &Path| -> String {
        match base.and_then(|b| p.strip_prefix(b).ok()) {
            Some(x) => x.to_string_lossy().into_owned(),
            None => p.to_string_lossy().into_owned(),
        }
    };
    let lower: Vec<String> = r.lower.iter().map(|p| rel(p)).collect();
    format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), rel(&r.upper), rel(&r.work))
}

/// Longest common ancestor directory of `paths`.
pub fn common_dir(paths: &[&Path]) -> Option<PathBuf> {
    let first = paths.first()?.parent()?;
    let mut common: Vec<Component> = first.components().collect();
    for p in &paths[1..] {
        let n = common.iter().zip(p.components()).take_while(|(a, b)| *a == b).count();
        common.truncate(n);
    }
    (common.len() > 1).then(|| common.iter().collect())
}

pub use berth_sys::fs::secure_join;

fn ctx(what: impl std::fmt::Display, e: io::Error) -> String {
    format!("{what}: {}", berth_sys::errno_text(&e))
}

fn ensure_dir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| ctx(format_args!("mkdir {}", p.display()), e))
}

fn ensure_file(p: &Path) -> Result<(), String> {
    if p.exists() {
        return Ok(());
    }
    if let Some(d) = p.parent() {
        ensure_dir(d)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
        .map(drop)
        .map_err(|e| ctx(format_args!("create {}", p.display()), e))
}

fn do_mount(src: Option<&Path>, target: &Path, fstype: Option<&str>, flags: libc::c_ulong, data: Option<&str>) -> Result<(), String> {
    mount(src, target, fstype, flags, data)
        .map_err(|e| ctx(format_args!("mount {} on {}", fstype.unwrap_or("bind"), target.display()), e))
}

/// Mounts the overlay on `merged` (long option strings via relative paths).
pub(crate) fn mount_overlay(r: &Rootfs) -> Result<(), String> {
    let data = overlay_data(r, None);
    if data.len() < 4000 {
        return do_mount(Some(Path::new("overlay")), &r.merged, Some("overlay"), 0, Some(&data));
    }
    let mut all: Vec<&Path> = r.lower.iter().map(PathBuf::as_path).collect();
    all.push(&r.upper);
    all.push(&r.work);
    let base = common_dir(&all).ok_or("overlay: layer paths share no parent directory")?;
    std::env::set_current_dir(&base).map_err(|e| ctx(format_args!("chdir {}", base.display()), e))?;
    let data = overlay_data(r, Some(&base));
    do_mount(Some(Path::new("overlay")), &r.merged, Some("overlay"), 0, Some(&data))
}

/// A mount flag word: (flags it sets, flags it clears).
fn flag_word(w: &str) -> Option<(libc::c_ulong, libc::c_ulong)> {
    Some(match w {
        "ro" => (libc::MS_RDONLY, 0),
        "nosuid" => (libc::MS_NOSUID, 0),
        "nodev" => (libc::MS_NODEV, 0),
        "noexec" => (libc::MS_NOEXEC, 0),
        "rw" => (0, libc::MS_RDONLY),
        "suid" => (0, libc::MS_NOSUID),
        "dev" => (0, libc::MS_NODEV),
        "exec" => (0, libc::MS_NOEXEC),
        "bind" | "rbind" => (0, 0),
        _ => return None,
    })
}

fn propagation(w: &str) -> Option<libc::c_ulong> {
    Some(match w {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        _ => return None,
    })
}

fn apply_user_mount(merged: &Path, m: &Mount) -> Result<(), String> {
    let target = secure_join(merged, &m.destination).map_err(|e| ctx(format_args!("resolve {}", m.destination), e))?;
    let mut flags: libc::c_ulong = if m.readonly { libc::MS_RDONLY } else { 0 };
    let mut data = Vec::new();
    let mut prop = 0;
    let mut recursive = libc::MS_REC;
    for o in &m.options {
        if o == "bind" {
            // Docker's `bind-nonrecursive`: the source's submounts stay behind.
            recursive = 0;
        } else if let Some((set, clear)) = flag_word(o) {
            flags = (flags | set) & !clear;
        } else if let Some(p) = propagation(o) {
            prop = p;
        } else {
            data.push(o.as_str());
        }
    }
    match m.kind {
        MountKind::Tmpfs => {
            ensure_dir(&target)?;
            let d = data.join(",");
            do_mount(Some(Path::new("tmpfs")), &target, Some("tmpfs"), flags, (!d.is_empty()).then_some(d.as_str()))?;
        }
        MountKind::Bind => {
            let meta = std::fs::metadata(&m.source)
                .map_err(|e| ctx(format_args!("bind source path {}", m.source.display()), e))?;
            if meta.is_dir() {
                ensure_dir(&target)?;
            } else {
                ensure_file(&target)?;
            }
            do_mount(Some(&m.source), &target, None, libc::MS_BIND | recursive, None)?;
            if flags != 0 {
                do_mount(None, &target, None, libc::MS_BIND | libc::MS_REMOUNT | flags, None)?;
            }
        }
    }
    if prop != 0 {
        do_mount(None, &target, None, prop, None)?;
    }
    Ok(())
}

/// The propagation of the new mount namespace's copy of the host's mounts: rprivate,
/// unless a mount asks for shared or slave propagation; then rslave, so that mounts made
/// on the host under a bind source reach the container while nothing the container
/// mounts (its overlay, /proc, ...) reaches the host (what Docker gets from runc's
/// rslave rootfs propagation).
fn root_propagation(mounts: &[Mount]) -> libc::c_ulong {
    let wants = mounts.iter().flat_map(|m| &m.options).filter_map(|o| propagation(o));
    let shared_or_slave = wants.into_iter().any(|p| p & (libc::MS_SHARED | libc::MS_SLAVE) != 0);
    libc::MS_REC | if shared_or_slave { libc::MS_SLAVE } else { libc::MS_PRIVATE }
}

/// Everything before the init can run inside its rootfs: in the init's new mount
/// namespace, makes mounts private, mounts the overlay, the standard filesystems, /dev,
/// the spec's mounts, and pivots into `merged`. On return the cwd is "/".
pub fn prepare(spec: &RunSpec) -> Result<(), String> {
    let merged = &spec.rootfs.merged;
    do_mount(None, Path::new("/"), None, root_propagation(&spec.mounts), None)?;
    mount_overlay(&spec.rootfs)?;
    for op in standard_mounts() {
        let target = merged.join(op.target.trim_start_matches('/'));
        let r = ensure_dir(&target).and_then(|_| {
            let data = (!op.data.is_empty()).then_some(op.data);
            do_mount(Some(Path::new(op.fstype)), &target, Some(op.fstype), op.flags, data)
        });
        match r {
            Err(e) if !op.optional => return Err(e),
            _ => {}
        }
    }
    let dev = merged.join("dev");
    for (name, major, minor) in DEVICES {
        let p = dev.join(name);
        if mknod(&p, libc::S_IFCHR | 0o666, *major, *minor).is_err() {
            // No mknod (e.g. a user namespace): bind the host's node instead.
            ensure_file(&p)?;
            do_mount(Some(&Path::new("/dev").join(name)), &p, None, libc::MS_BIND, None)?;
        }
    }
    for (name, target) in DEV_LINKS {
        symlink(target, dev.join(name)).map_err(|e| ctx(format_args!("symlink /dev/{name}"), e))?;
    }
    for m in &spec.mounts {
        apply_user_mount(merged, m)?;
    }
    if let Some(init) = &spec.init {
        let m = Mount {
            source: init.clone(),
            destination: crate::spec::DOCKER_INIT.to_string(),
            kind: MountKind::Bind,
            readonly: true,
            options: vec![],
        };
        apply_user_mount(merged, &m)?;
    }
    crate::security::prepare_rootfs(&spec.security, merged)?;
    pivot(merged)
}

/// `--read-only`, after pivot_root and the init's own writes to `/` (cwd creation):
/// remounts the root mount read-only. Only that one mount changes, so /proc, /dev,
/// /dev/shm, tmpfs and bind mounts keep their flags (runc's `setReadonly`).
pub fn make_root_readonly() -> Result<(), String> {
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    do_mount(None, Path::new("/"), None, flags, None).map_err(|e| format!("remount / read-only: {e}"))
}

// runc's pivot_root(".", ".") trick: no directory for the old root is needed, and the
// old root, stacked on top, is detached right away.
fn pivot(new_root: &Path) -> Result<(), String> {
    let old = std::fs::File::open("/").map_err(|e| ctx("open /", e))?;
    let new = std::fs::File::open(new_root).map_err(|e| ctx(format_args!("open {}", new_root.display()), e))?;
    berth_sys::process::fchdir(new.as_fd()).map_err(|e| ctx("fchdir rootfs", e))?;
    pivot_root(Path::new("."), Path::new(".")).map_err(|e| ctx("pivot_root", e))?;
    berth_sys::process::fchdir(old.as_fd()).map_err(|e| ctx("fchdir old root", e))?;
    umount2(Path::new("."), libc::MNT_DETACH).map_err(|e| ctx("unmount old root", e))?;
    std::env::set_current_dir("/").map_err(|e| ctx("chdir /", e))
}

/// After pivot_root: binds the pty slave onto /dev/console.
pub fn bind_console(slave: &Path) -> Result<(), String> {
    let c = Path::new("/dev/console");
    ensure_file(c)?;
    do_mount(Some(slave), c, None, libc::MS_BIND, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options() {
        let r = Rootfs {
            lower: vec!["/l/top".into(), "/l/bottom".into()],
            upper: "/c/u".into(),
            work: "/c/w".into(),
            merged: "/c/m".into(),
        };
        assert_eq!(overlay_data(&r, None), "lowerdir=/l/top:/l/bottom,upperdir=/c/u,workdir=/c/w");
        let r = Rootfs {
            lower: vec!["/var/lib/berth/image/layers/aa/diff".into(), "/var/lib/berth/image/layers/bb/diff".into()],
            upper: "/var/lib/berth/containers/x/fs/upper".into(),
            work: "/var/lib/berth/containers/x/fs/work".into(),
            merged: "/var/lib/berth/containers/x/fs/merged".into(),
        };
        let all: Vec<&Path> = r.lower.iter().chain([&r.upper, &r.work]).map(PathBuf::as_path).collect();
        let base = common_dir(&all).unwrap();
        assert_eq!(base, Path::new("/var/lib/berth"));
        assert_eq!(
            overlay_data(&r, Some(&base)),
            "lowerdir=image/layers/aa/diff:image/layers/bb/diff,upperdir=containers/x/fs/upper,workdir=containers/x/fs/work"
        );
    }

    #[test]
    fn root_propagation_is_slave_only_when_a_mount_shares() {
        let bind = |o: &[&str]| Mount { options: o.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let cases: &[(&[&[&str]], libc::c_ulong)] = &[
            (&[], libc::MS_REC | libc::MS_PRIVATE),
            (&[&["rprivate"], &["private", "bind"]], libc::MS_REC | libc::MS_PRIVATE),
            (&[&["rprivate"], &["rshared"]], libc::MS_REC | libc::MS_SLAVE),
            (&[&["slave"]], libc::MS_REC | libc::MS_SLAVE),
        ];
        for (opts, want) in cases {
            let mounts: Vec<Mount> = opts.iter().map(|o| bind(o)).collect();
            assert_eq!(root_propagation(&mounts), *want, "{opts:?}");
        }
    }

    #[test]
    fn standard_plan() {
        let targets: Vec<&str> = standard_mounts().iter().map(|m| m.target).collect();
        assert_eq!(targets, ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"]);
        let sys = &standard_mounts()[1];
        assert!(sys.flags & libc::MS_RDONLY != 0);
        assert!(standard_mounts()[3].data.contains("newinstance"));
    }
}
