//! A container's filesystem seen from the host: `docker cp` (stat, archive, extract),
//! `docker diff`, `docker export` and `docker commit`.
//!
//! Nothing here resolves a container path on the host. Every operation runs on a
//! dedicated thread that first enters a *jail*: it unshares its filesystem attributes
//! (and, where it mounts, its mount namespace) and chroots, so that the kernel resolves
//! `..` and absolute symlinks inside the container and nothing the container controls
//! can point us at a host file, even if it races us (Docker's `chrootarchive`):
//!
//! * a running container: chroot into `/proc/<pid>/root` (its own mounts included);
//! * a stopped one, read: a read-only overlay of `upper:lowers…` mounted on `fs/merged`
//!   in a private mount namespace (whiteouts and opaque dirs honoured by the kernel);
//! * a stopped one, `cp` into it: the container's own overlay (upper + work) mounted the
//!   same way, under the container's operation lock so it cannot start meanwhile —
//!   overlayfs does the copy-up;
//! * `diff` / `commit`: the upper dir and the image layers bind-mounted side by side
//!   on a private tmpfs (`/u`, `/l0`, `/l1`, …), read with `lstat` only.
//!
//! The mount namespace dies with the thread, which unmounts everything it mounted.
//! Pure parts (Go `FileMode` bits, change kinds, `--change` instructions, whiteout
//! conversion) are plain functions with unit tests. `berth-image` stores what `commit`
//! produces (`ImageStore::commit`); `berth-daemon`'s `archive.rs` is the HTTP edge.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use berth_api::ContainerConfig;
use berth_image::Reference;
use berth_sys::libc;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::error::{from_image, Error, Result};
use crate::{merge, timefmt, Engine};

/// A stream of bytes between the engine and the HTTP edge (a tar, either way).
pub type ByteStream = mpsc::Receiver<Bytes>;

/// An upload as the daemon receives it: chunks, or the error that cut the body short
/// (the client went away mid-archive), which must fail the extraction rather than read
/// as a clean end.
pub type UploadStream = mpsc::Receiver<io::Result<Bytes>>;

/// A tar being written by a worker: its bytes, then how the writing ended. A stream
/// cut short by an error must reach the client as an error (an aborted body), never
/// as a clean end of a partial archive.
pub struct TarStream {
    pub data: ByteStream,
    pub done: oneshot::Receiver<std::result::Result<(), String>>,
}

const CHUNK: usize = 64 * 1024;
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

// ----- Go's os.FileMode -----

pub const MODE_DIR: u32 = 1 << 31;
pub const MODE_SYMLINK: u32 = 1 << 27;
pub const MODE_DEVICE: u32 = 1 << 26;
pub const MODE_NAMED_PIPE: u32 = 1 << 25;
pub const MODE_SOCKET: u32 = 1 << 24;
pub const MODE_SETUID: u32 = 1 << 23;
pub const MODE_SETGID: u32 = 1 << 22;
pub const MODE_CHAR_DEVICE: u32 = 1 << 21;
pub const MODE_STICKY: u32 = 1 << 20;

/// `st_mode` → Go's `os.FileMode` (what `X-Docker-Container-Path-Stat` carries).
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => MODE_DIR,
        libc::S_IFLNK => MODE_SYMLINK,
        libc::S_IFBLK => MODE_DEVICE,
        libc::S_IFCHR => MODE_DEVICE | MODE_CHAR_DEVICE,
        libc::S_IFIFO => MODE_NAMED_PIPE,
        libc::S_IFSOCK => MODE_SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= MODE_SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= MODE_SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= MODE_STICKY;
    }
    m
}

/// Go's `time.Time` JSON form (RFC 3339 with the nanoseconds, trailing zeros trimmed).
fn go_time(secs: i64, nanos: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .unwrap_or_default();
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// `X-Docker-Container-Path-Stat` (base64 of this, as JSON).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// One line of `docker diff`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: u8,
}

pub const CHANGE_MODIFY: u8 = 0;
pub const CHANGE_ADD: u8 = 1;
pub const CHANGE_DELETE: u8 = 2;

/// `PUT /containers/{id}/archive` options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtractOptions {
    pub no_overwrite_dir_non_dir: bool,
    pub copy_uid_gid: bool,
}

/// `POST /commit`.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    pub container: String,
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    pub pause: bool,
    /// Dockerfile instructions (`CMD ["x"]`, `ENV A=B`, …), one or more per item.
    pub changes: Vec<String>,
    /// The request body: a container config whose empty fields the container's fill.
    pub config: Option<ContainerConfig>,
}

// ----- jails -----

/// Where a worker thread is confined before it touches a container's files.
#[derive(Clone, Debug)]
enum Jail {
    /// chroot into an existing directory.
    Chroot(PathBuf),
    /// A private mount namespace with an overlay on `at`, then chroot into it.
    /// Without `upper` (upper, work) the overlay is read-only.
    Overlay {
        lower: Vec<PathBuf>,
        upper: Option<(PathBuf, PathBuf)>,
        at: PathBuf,
    },
    /// A private mount namespace with a tmpfs on `at` holding bind mounts of `dirs`
    /// (name → host directory), then chroot into it.
    Binds {
        dirs: Vec<(String, PathBuf)>,
        at: PathBuf,
    },
}

fn sys_err(what: &str, e: nix::Error) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{what}: {}", berth_sys::errno_text(&e)))
}

fn ctx_err(what: String, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {}", berth_sys::errno_text(&e)))
}

/// The overlay mount data; paths relative to `base` when given (the caller chdirs
/// there) so that many layers fit in one page.
fn overlay_data(
    lower: &[PathBuf],
    upper: Option<&(PathBuf, PathBuf)>,
    base: Option<&Path>,
) -> String {
    let rel = |p: &Path| match base.and_then(|b| p.strip_prefix(b).ok()) {
        Some(r) => r.to_string_lossy().into_owned(),
        None => p.to_string_lossy().into_owned(),
    };
    let lowers: Vec<String> = lower.iter().map(|p| rel(p)).collect();
    let mut data = format!("lowerdir={}", lowers.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(",upperdir={},workdir={}", rel(u), rel(w)));
    }
    data
}

fn private_mount_ns() -> io::Result<()> {
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| sys_err("unshare mount namespace", e))?;
    berth_sys::mount::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|e| ctx_err("make / private".into(), e))
}

fn chroot_into(dir: &Path) -> io::Result<()> {
    nix::unistd::chroot(dir).map_err(|e| sys_err(&format!("chroot {}", dir.display()), e))?;
    nix::unistd::chdir("/").map_err(|e| sys_err("chdir /", e))
}

/// Confines the calling thread (never a pooled one: the thread must exit afterwards).
fn enter(jail: &Jail) -> io::Result<()> {
    match jail {
        Jail::Chroot(dir) => {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)
                .map_err(|e| sys_err("unshare fs", e))?;
            chroot_into(dir)
        }
        Jail::Overlay { lower, upper, at } => {
            private_mount_ns()?;
            let mut data = overlay_data(lower, upper.as_ref(), None);
            if data.len() > 3900 {
                let mut all: Vec<&Path> = lower.iter().map(PathBuf::as_path).collect();
                if let Some((u, w)) = upper {
                    all.push(u);
                    all.push(w);
                }
                let base = berth_runtime::rootfs::common_dir(&all).ok_or_else(|| {
                    io::Error::other("overlay: layer paths share no parent directory")
                })?;
                nix::unistd::chdir(&base).map_err(|e| sys_err("chdir", e))?;
                data = overlay_data(lower, upper.as_ref(), Some(&base));
            }
            let flags = if upper.is_none() { libc::MS_RDONLY } else { 0 };
            berth_sys::mount::mount(
                Some(Path::new("overlay")),
                at,
                Some("overlay"),
                flags,
                Some(&data),
            )
            .map_err(|e| ctx_err(format!("mount overlay on {}", at.display()), e))?;
            chroot_into(at)
        }
        Jail::Binds { dirs, at } => {
            private_mount_ns()?;
            berth_sys::mount::mount(
                Some(Path::new("tmpfs")),
                at,
                Some("tmpfs"),
                0,
                Some("mode=0700"),
            )
            .map_err(|e| ctx_err(format!("mount tmpfs on {}", at.display()), e))?;
            for (name, src) in dirs {
                let dst = at.join(name);
                fs::create_dir(&dst).map_err(|e| ctx_err(format!("mkdir {}", dst.display()), e))?;
                berth_sys::mount::mount(Some(src), &dst, None, libc::MS_BIND, None)
                    .map_err(|e| ctx_err(format!("bind {}", src.display()), e))?;
            }
            chroot_into(at)
        }
    }
}

/// Runs `f` on a fresh thread confined in `jail`.
async fn jailed<T, F>(jail: Jail, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("berth-fsops".into())
        .spawn(move || {
            let r = match enter(&jail) {
                Ok(()) => f(),
                Err(e) => Err(Error::internal(format!(
                    "entering the container filesystem: {e}"
                ))),
            };
            let _ = tx.send(r);
        })
        .map_err(|e| Error::internal(format!("spawning a filesystem worker: {e}")))?;
    rx.await
        .map_err(|_| Error::internal("the filesystem worker failed"))?
}

// ----- byte pipes between worker threads and async code -----

/// Buffers writes and sends them as chunks; fails once the receiver is gone.
struct ChanWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn new(tx: mpsc::Sender<Bytes>) -> ChanWriter {
        ChanWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader went away"))
    }
}

impl Drop for ChanWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Reads chunks until the sender is dropped (end of stream).
struct ChanReader {
    rx: ByteStream,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Reads an [`UploadStream`]; a cut body is an error, not end of file.
struct UploadReader {
    rx: UploadStream,
    cur: Bytes,
}

impl Read for UploadReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

// ----- paths -----

/// Lexically cleans an absolute container path (`..` stops at `/`).
fn clean_abs(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Docker's ResolvePath, inside a jail: symlinks in the parent are followed (within the
/// jail), the last element only when the path ends in `/` or `/.`.
fn resolve_for_stat(path: &str) -> io::Result<PathBuf> {
    let clean = clean_abs(path);
    let follow_last = path.ends_with('/') || path.ends_with("/.") || path == ".";
    if follow_last || clean == Path::new("/") {
        return berth_runtime::rootfs::secure_join(Path::new("/"), &clean.to_string_lossy());
    }
    let parent = clean.parent().unwrap_or(Path::new("/"));
    let base = clean.file_name().unwrap_or_default();
    Ok(berth_runtime::rootfs::secure_join(Path::new("/"), &parent.to_string_lossy())?.join(base))
}

/// The name `docker cp` gives the copied resource: Go's `filepath.Base` of the path
/// with a trailing `/.` kept.
fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    let clean = clean_abs(path);
    match clean.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => "/".into(),
    }
}

fn not_found(path: &str, container: &str) -> Error {
    Error::not_found(format!(
        "Could not find the file {path} in container {container}"
    ))
}

/// stat of `path` in the current jail.
fn stat_here(path: &str, container: &str) -> Result<(PathBuf, PathStat)> {
    let p = resolve_for_stat(path).map_err(|e| io_error(path, container, e))?;
    let md = fs::symlink_metadata(&p).map_err(|e| io_error(path, container, e))?;
    let link_target = if md.file_type().is_symlink() {
        berth_runtime::rootfs::secure_join(Path::new("/"), &p.to_string_lossy())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let stat = PathStat {
        name: base_name(path),
        size: md.size() as i64,
        mode: go_file_mode(md.mode()),
        mtime: go_time(md.mtime(), md.mtime_nsec()),
        link_target,
    };
    Ok((p, stat))
}

fn io_error(path: &str, container: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => not_found(path, container),
        _ => Error::internal(format!("{path}: {}", berth_sys::errno_text(&e))),
    }
}

// ----- tar writing -----

/// Names the tar crate would rewrite: `./…` and `/…` are written byte for byte.
fn is_raw_name(name: &str) -> bool {
    name.starts_with("./") || name.starts_with('/')
}

/// A GNU long-name (`L`) or long-link (`K`) entry carrying `value` for the header
/// that follows.
fn gnu_long(kind: tar::EntryType, value: &[u8]) -> (tar::Header, Vec<u8>) {
    let mut long = tar::Header::new_gnu();
    long.set_entry_type(kind);
    long.set_mode(0o644);
    long.set_size(value.len() as u64 + 1);
    let tag = b"././@LongLink";
    long.as_old_mut().name[..tag.len()].copy_from_slice(tag);
    long.set_cksum();
    let mut payload = value.to_vec();
    payload.push(0);
    (long, payload)
}

/// Writes file trees as tar entries without ever following a symlink.
struct TarOut<W: Write> {
    b: tar::Builder<W>,
    /// (dev, ino) of regular files with several links → the first name written.
    links: HashMap<(u64, u64), String>,
    /// Overlay whiteouts → AUFS/OCI form (a layer diff), else as they are.
    whiteouts: bool,
    /// Tar names of mount-point stubs to leave out (see [`is_stub`]).
    skip: HashSet<String>,
    /// In a running container's view: the `st_dev` of its root. The directories where
    /// kernel file systems (proc, sysfs, devpts, mqueue, cgroup…) and the runtime's
    /// `/dev` are mounted are archived empty, as Docker (which archives the rootfs
    /// without those mounts) does.
    pseudo_root_dev: Option<u64>,
}

/// `statfs` magic numbers of the kernel's pseudo file systems (linux/magic.h).
const PSEUDO_FS: &[i64] = &[
    0x9fa0,     // proc
    0x6265_6572, // sysfs
    0x1cd1,     // devpts
    0x1980_0202, // mqueue
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x7363_6673, // securityfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0xcafe_4a11, // bpf
    0x6165_676c, // pstore
    0x6265_6570, // configfs
    0x6573_5543, // fusectl
    0x4249_4e4d, // binfmt_misc
];

/// Whether the directory `p` (in a running container, whose root is on `root_dev`)
/// is a mount of a pseudo file system or the runtime's `/dev`.
fn is_pseudo_mount(p: &Path, md: &fs::Metadata, root_dev: u64) -> bool {
    if p == Path::new("/dev") && md.dev() != root_dev {
        return true;
    }
    match nix::sys::statfs::statfs(p) {
        #[allow(clippy::unnecessary_cast)] // the word size differs between targets
        Ok(st) => PSEUDO_FS.contains(&(st.filesystem_type().0 as i64)),
        Err(_) => false,
    }
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// An empty file or directory: what the shim leaves in the upper dir where it mounts
/// something (/etc/hosts, bind destinations) that the image lacks. Docker keeps those
/// in a separate init layer, so they are neither changes nor part of a commit.
fn is_stub(p: &Path, md: &fs::Metadata) -> bool {
    (md.is_file() && md.len() == 0)
        || (md.is_dir()
            && fs::read_dir(p)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false))
}

/// Container paths the runtime mounts over (absolute, clean).
fn mount_points(rec: &crate::record::Record) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = [
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/proc",
        "/sys",
        "/dev",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for b in rec.host_config.binds.iter().flatten() {
        if let Some(dst) = b.split(':').nth(1) {
            v.push(clean_abs(dst));
        }
    }
    v
}

/// Pads or truncates a file being read to the size its header announced (a running
/// container may change it meanwhile).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// One PAX record: `"<len> <key>=<value>\n"`, `len` counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// File capabilities and user xattrs travel in the tar (SCHILY.xattr); overlay's own
/// and SELinux labels do not.
fn wanted_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(names) = xattr::list(p) {
        for n in names {
            let name = n.to_string_lossy().into_owned();
            if name == "security.capability" || name.starts_with("user.") {
                if let Ok(Some(v)) = xattr::get(p, &name) {
                    out.push((name, v));
                }
            }
        }
    }
    out.sort();
    out
}

impl<W: Write> TarOut<W> {
    fn new(w: W, whiteouts: bool) -> TarOut<W> {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        TarOut {
            b,
            links: HashMap::new(),
            whiteouts,
            skip: HashSet::new(),
            pseudo_root_dev: None,
        }
    }

    fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }

    /// `host` and everything below it, named `name` (`""`: the root itself is not
    /// written, its children are named without a prefix; `"/"`: the root is `/` and
    /// its children `/bin`…, Docker's names for an archive of a container's `/`).
    fn add_tree(&mut self, host: &Path, name: &str) -> io::Result<()> {
        let md = fs::symlink_metadata(host)?;
        if self.skip.contains(name) && is_stub(host, &md) {
            return Ok(());
        }
        if !name.is_empty() {
            self.add_entry(host, name, &md)?;
        }
        if let Some(root_dev) = self.pseudo_root_dev {
            if md.is_dir() && is_pseudo_mount(host, &md, root_dev) {
                return Ok(());
            }
        }
        if md.is_dir() && !(self.whiteouts && is_whiteout(&md)) {
            let mut kids: Vec<std::ffi::OsString> = fs::read_dir(host)?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            kids.sort();
            for k in kids {
                let kname = k.to_string_lossy();
                let child = if name.is_empty() {
                    kname.to_string()
                } else {
                    format!("{}/{kname}", name.trim_end_matches('/'))
                };
                match self.add_tree(&host.join(&k), &child) {
                    Ok(()) => {}
                    // Gone meanwhile (a running container): skip it, as tar does.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn header(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(u64::from(md.uid()));
        h.set_gid(u64::from(md.gid()));
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        h
    }

    fn pax(&mut self, host: &Path) -> io::Result<()> {
        let xattrs = wanted_xattrs(host);
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (k, v) in &xattrs {
            data.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_path("PaxHeaders/x")?;
        h.set_cksum();
        self.b.append(&h, &data[..])
    }

    /// Appends an entry under `name` exactly as given. The tar crate normalises paths
    /// and would drop a leading `./` (and refuses a leading `/`), but Docker's archive
    /// of `dir/.` names its entries `./…`, its archive of `/` names them `/…`, and the
    /// CLI rebases on that prefix (`docker cp c:/d/. dst`, `docker cp c:/ dst`).
    fn append_named<P: AsRef<str>, R: io::Read>(&mut self, h: &mut tar::Header, name: P, data: R) -> io::Result<()> {
        self.append_raw(h, name.as_ref(), None, data)
    }

    /// Appends an entry; `link` (a symlink's or hard link's target) is written byte
    /// for byte: the tar crate rebuilds link names from their path components, which
    /// is lossy (a target is an arbitrary string).
    fn append_raw<R: io::Read>(&mut self, h: &mut tar::Header, name: &str, link: Option<&[u8]>, data: R) -> io::Result<()> {
        if let Some(link) = link {
            let field = &mut h.as_old_mut().linkname;
            field.fill(0);
            if link.len() > field.len() {
                let (long, payload) = gnu_long(tar::EntryType::GNULongLink, link);
                self.b.append(&long, &payload[..])?;
            }
            let n = link.len().min(field.len());
            field[..n].copy_from_slice(&link[..n]);
        }
        if !is_raw_name(name) {
            return self.b.append_data(h, name, data);
        }
        let bytes = name.as_bytes();
        if bytes.len() > h.as_old().name.len() {
            let (long, payload) = gnu_long(tar::EntryType::GNULongName, bytes);
            self.b.append(&long, &payload[..])?;
        }
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        let n = bytes.len().min(field.len());
        field[..n].copy_from_slice(&bytes[..n]);
        h.set_cksum();
        self.b.append(h, data)
    }

    fn add_entry(&mut self, host: &Path, name: &str, md: &fs::Metadata) -> io::Result<()> {
        let ft = md.file_type();
        if self.whiteouts && is_whiteout(md) {
            let (dir, base) = match name.rsplit_once('/') {
                Some((d, b)) => (format!("{d}/"), b),
                None => (String::new(), name),
            };
            let mut h = Self::header(md, tar::EntryType::Regular);
            h.set_mode(0o600);
            return self.append_named(
                &mut h,
                format!("{dir}{WHITEOUT_PREFIX}{base}"),
                io::empty(),
            );
        }
        if ft.is_dir() {
            self.pax(host)?;
            let mut h = Self::header(md, tar::EntryType::Directory);
            self.append_named(
                &mut h,
                format!("{}/", name.trim_end_matches('/')),
                io::empty(),
            )?;
            if self.whiteouts && is_opaque(host) {
                let mut h = Self::header(md, tar::EntryType::Regular);
                h.set_mode(md.mode() & 0o777);
                self.append_named(
                    &mut h,
                    format!("{}/{WHITEOUT_OPAQUE}", name.trim_end_matches('/')),
                    io::empty(),
                )?;
            }
            return Ok(());
        }
        if ft.is_symlink() {
            let target = fs::read_link(host)?;
            let mut h = Self::header(md, tar::EntryType::Symlink);
            return self.append_raw(&mut h, name, Some(target.as_os_str().as_bytes()), io::empty());
        }
        if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    let mut h = Self::header(md, tar::EntryType::Link);
                    let first = first.clone();
                    return self.append_raw(&mut h, name, Some(first.as_bytes()), io::empty());
                }
                self.links.insert((md.dev(), md.ino()), name.to_string());
            }
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(host)?;
            let size = f.metadata()?.len();
            self.pax(host)?;
            let mut h = Self::header(md, tar::EntryType::Regular);
            h.set_size(size);
            return self.append_named(
                &mut h,
                name,
                Exact {
                    inner: f,
                    left: size,
                },
            );
        }
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            return Ok(()); // sockets are not archived
        };
        let mut h = Self::header(md, kind);
        if kind != tar::EntryType::Fifo {
            h.set_device_major(nix::sys::stat::major(md.rdev()) as u32)?;
            h.set_device_minor(nix::sys::stat::minor(md.rdev()) as u32)?;
        }
        self.append_named(&mut h, name, io::empty())
    }
}

// ----- tar extraction (docker cp into a container) -----

/// Clean relative components of a tar entry name; `..` is refused.
fn tar_components(raw: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::CurDir | Component::RootDir => {}
            _ => {
                return Err(Error::invalid(format!(
                    "invalid archive entry {:?}: it leaves the destination",
                    raw
                )))
            }
        }
    }
    Ok(out)
}

fn extract_here<R: Read>(
    dir: &str,
    container: &str,
    r: R,
    opts: ExtractOptions,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let dest =
        berth_runtime::rootfs::secure_join(Path::new("/"), &clean_abs(dir).to_string_lossy())
            .map_err(|e| io_error(dir, container, e))?;
    let md = fs::metadata(&dest).map_err(|e| io_error(dir, container, e))?;
    if !md.is_dir() {
        return Err(Error::invalid("extraction point is not a directory"));
    }
    extract_into(&dest, r, opts, owner)
}

/// Where an entry's parent directory is: its components resolved under `dest` with
/// every symlink (one an earlier entry made, or one already there) kept inside `dest`
/// (an absolute target starts again at `dest`, `..` stops there), so no entry is
/// written outside it. Missing directories are created.
fn entry_parent(dest: &Path, comps: &[std::ffi::OsString], raw: &Path) -> Result<PathBuf> {
    let rel: PathBuf = comps.iter().collect();
    let parent = berth_runtime::rootfs::secure_join(dest, &rel.to_string_lossy())
        .map_err(|e| Error::invalid(format!("invalid archive entry {raw:?}: {}", berth_sys::errno_text(&e))))?;
    match fs::symlink_metadata(&parent) {
        Ok(m) if m.is_dir() => Ok(parent),
        Ok(_) => Err(Error::invalid(format!(
            "invalid archive entry {raw:?}: {} is not a directory",
            parent.display()
        ))),
        Err(_) => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&parent)
                .map_err(|e| {
                    let msg = format!("mkdir {}: {}", parent.display(), berth_sys::errno_text(&e));
                    match e.raw_os_error() {
                        // A file of the archive (or of the destination) in the way.
                        Some(libc::ENOTDIR) | Some(libc::EEXIST) => {
                            Error::invalid(format!("invalid archive entry {raw:?}: {msg}"))
                        }
                        _ => Error::internal(msg),
                    }
                })?;
            Ok(parent)
        }
    }
}

/// Docker's symlink breakout check: a relative target that climbs out of `dest` from
/// the link's directory (`rel_dir`, relative to `dest`) is refused.
fn symlink_escapes(rel_dir: &[std::ffi::OsString], target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = rel_dir.len();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if depth == 0 {
                    return true;
                }
                depth -= 1;
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Extracts the tar `r` into the directory `dest`. Nothing is created outside
/// `dest`, whatever the archive holds: names are relative (`..` refused), parents are
/// resolved inside `dest` ([`entry_parent`]), the last component is never followed.
fn extract_into<R: Read>(
    dest: &Path,
    r: R,
    opts: ExtractOptions,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let dest = dest.to_path_buf();
    let mut ar = tar::Archive::new(r);
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    let entries = ar
        .entries()
        .map_err(|e| Error::invalid(format!("reading the archive: {e}")))?;
    for entry in entries {
        let mut e = entry.map_err(|e| Error::invalid(format!("reading the archive: {e}")))?;
        let raw = e
            .path()
            .map_err(|e| Error::invalid(format!("reading the archive: {e}")))?
            .into_owned();
        let comps = tar_components(&raw)?;
        let Some((last, parent_comps)) = comps.split_last() else {
            continue;
        };
        let h = e.header().clone();
        let kind = h.entry_type();
        if !matches!(
            kind,
            tar::EntryType::Directory
                | tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse
                | tar::EntryType::Symlink
                | tar::EntryType::Link
                | tar::EntryType::Char
                | tar::EntryType::Block
                | tar::EntryType::Fifo
        ) {
            continue;
        }
        let target = entry_parent(&dest, parent_comps, &raw)?.join(last);
        let werr = |what: &str, err: io::Error| {
            Error::internal(format!(
                "{what} {}: {}",
                target.display(),
                berth_sys::errno_text(&err)
            ))
        };
        let is_dir = kind == tar::EntryType::Directory;
        if let Ok(fi) = fs::symlink_metadata(&target) {
            if opts.no_overwrite_dir_non_dir && fi.is_dir() && !is_dir {
                return Err(Error::invalid(format!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    target.display().to_string(),
                    raw.display().to_string()
                )));
            }
            if opts.no_overwrite_dir_non_dir && !fi.is_dir() && is_dir {
                return Err(Error::invalid(format!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    target.display().to_string(),
                    raw.display().to_string()
                )));
            }
            if fi.is_dir() && !is_dir {
                fs::remove_dir_all(&target).map_err(|e| werr("remove", e))?;
            } else if !fi.is_dir() {
                fs::remove_file(&target).map_err(|e| werr("remove", e))?;
            }
        }
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = owner.unwrap_or((
            h.uid()
                .ok()
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(0),
            h.gid()
                .ok()
                .and_then(|g| u32::try_from(g).ok())
                .unwrap_or(0),
        ));
        let mtime = h.mtime().unwrap_or(0) as i64;
        match kind {
            tar::EntryType::Directory => {
                if fs::symlink_metadata(&target).is_err() {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&target)
                        .map_err(|e| werr("mkdir", e))?;
                }
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid))
                    .map_err(|e| werr("chown", e))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| werr("chmod", e))?;
                dir_times.push((target, mtime));
            }
            tar::EntryType::Symlink => {
                let link = e
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        Error::invalid(format!("symlink {} without a target", raw.display()))
                    })?
                    .into_owned();
                if symlink_escapes(parent_comps, &link) {
                    return Err(Error::invalid(format!(
                        "invalid symlink {:?} -> {:?}",
                        raw.display().to_string(),
                        link.display().to_string()
                    )));
                }
                std::os::unix::fs::symlink(&link, &target).map_err(|e| werr("symlink", e))?;
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid))
                    .map_err(|e| werr("chown", e))?;
                set_mtime(&target, mtime);
            }
            tar::EntryType::Link => {
                let link = e
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        Error::invalid(format!("hardlink {} without a target", raw.display()))
                    })?
                    .into_owned();
                let link_comps = tar_components(&link)?;
                let Some((link_last, link_parent)) = link_comps.split_last() else {
                    return Err(Error::invalid(format!(
                        "invalid hardlink {:?} -> {:?}",
                        raw.display().to_string(),
                        link.display().to_string()
                    )));
                };
                let link_rel: PathBuf = link_parent.iter().collect();
                // Like link(2), the last component is not followed.
                let src = berth_runtime::rootfs::secure_join(&dest, &link_rel.to_string_lossy())
                    .map(|p| p.join(link_last));
                // A target missing from the archive and the destination is the
                // archive's fault: 400, not 500.
                src.and_then(|src| fs::hard_link(&src, &target)).map_err(|err| {
                    Error::invalid(format!(
                        "invalid hardlink {:?} -> {:?}: {}",
                        raw.display().to_string(),
                        link.display().to_string(),
                        berth_sys::errno_text(&err)
                    ))
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                use nix::sys::stat::{makedev, mknod, Mode, SFlag};
                let sflag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = u64::from(h.device_major().ok().flatten().unwrap_or(0));
                let minor = u64::from(h.device_minor().ok().flatten().unwrap_or(0));
                mknod(
                    &target,
                    sflag,
                    Mode::from_bits_truncate(mode),
                    makedev(major, minor),
                )
                .map_err(|e| werr("mknod", io::Error::from(e)))?;
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid))
                    .map_err(|e| werr("chown", e))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| werr("chmod", e))?;
                set_mtime(&target, mtime);
            }
            _ => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&target)
                    .map_err(|e| werr("create", e))?;
                io::copy(&mut e, &mut f).map_err(|err| {
                    if err.kind() == io::ErrorKind::UnexpectedEof {
                        Error::invalid(format!("reading the archive: {err}"))
                    } else {
                        werr("write", err)
                    }
                })?;
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                    .map_err(|e| werr("chown", e))?;
                // After chown, which clears set-id bits.
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| werr("chmod", e))?;
                drop(f);
                set_mtime(&target, mtime);
            }
        }
    }
    dir_times.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (p, t) in dir_times {
        set_mtime(&p, t);
    }
    Ok(())
}

fn set_mtime(p: &Path, secs: i64) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(secs, 0);
    let _ = utimensat(None, p, &t, &t, UtimensatFlags::NoFollowSymlink);
}

// ----- diff -----

/// What the lower layers (top first, overlay semantics: whiteouts hide, opaque dirs
/// stop the merge, a non-directory hides everything below it) hold at `rel`.
fn lower_lookup(lowers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    let comps: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut active: Vec<&PathBuf> = lowers.iter().collect();
    let mut sub = PathBuf::new();
    for (depth, c) in comps.iter().enumerate() {
        sub.push(c);
        let mut first: Option<fs::Metadata> = None;
        let mut next = Vec::new();
        for l in &active {
            let p = l.join(&sub);
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&m) {
                break;
            }
            let dir = m.is_dir();
            if first.is_none() {
                first = Some(m);
            } else if !dir {
                break;
            }
            if !dir {
                break;
            }
            next.push(*l);
            if is_opaque(&p) {
                break;
            }
        }
        let found = first?;
        if depth + 1 == comps.len() {
            return Some(found);
        }
        if !found.is_dir() {
            return None;
        }
        active = next;
    }
    None
}

fn same_dir_meta(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    let same_time = a.mtime() == b.mtime()
        && (a.mtime_nsec() == b.mtime_nsec() || a.mtime_nsec() == 0 || b.mtime_nsec() == 0);
    a.size() == b.size() && a.mode() == b.mode() && same_time
}

/// Docker's overlay `changes`: every path of `upper` (walked in lexical order) against
/// what `lowers` hold; parents of added and deleted paths show as modified.
/// Mount-point stubs (`stubs`, absolute container paths) are left out.
pub fn compute_changes(
    upper: &Path,
    lowers: &[PathBuf],
    stubs: &[PathBuf],
) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut changed_dirs: HashSet<PathBuf> = HashSet::new();
    let w = Walk {
        upper,
        lowers,
        stubs,
    };
    w.walk(Path::new("/"), &mut out, &mut changed_dirs)?;
    Ok(out)
}

struct Walk<'a> {
    upper: &'a Path,
    lowers: &'a [PathBuf],
    stubs: &'a [PathBuf],
}

impl Walk<'_> {
    fn walk(
        &self,
        rel_dir: &Path,
        out: &mut Vec<Change>,
        changed_dirs: &mut HashSet<PathBuf>,
    ) -> io::Result<()> {
        let (upper, lowers) = (self.upper, self.lowers);
        let host_dir = upper.join(rel_dir.strip_prefix("/").unwrap_or(rel_dir));
        let mut kids: Vec<std::ffi::OsString> = fs::read_dir(&host_dir)?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        kids.sort();
        for k in kids {
            let rel = rel_dir.join(&k);
            let host = host_dir.join(&k);
            let Ok(md) = fs::symlink_metadata(&host) else {
                continue;
            };
            let is_mount_point = self.stubs.contains(&rel);
            if is_mount_point && is_stub(&host, &md) && lower_lookup(lowers, &rel).is_none() {
                continue;
            }
            let holds_stub = self.stubs.iter().any(|s| s.parent() == Some(rel.as_path()));
            let deleted = is_whiteout(&md);
            let mut record = true;
            let kind = if deleted {
                CHANGE_DELETE
            } else {
                match lower_lookup(lowers, &rel) {
                    Some(lmd) => {
                        // A directory only touched by the runtime's stub in it is unchanged.
                        let same =
                            same_dir_meta(&md, &lmd) || (holds_stub && md.mode() == lmd.mode());
                        if md.is_dir() && lmd.is_dir() && same && !is_opaque(&host) {
                            record = false;
                        }
                        CHANGE_MODIFY
                    }
                    None => CHANGE_ADD,
                }
            };
            if record {
                if md.is_dir() {
                    changed_dirs.insert(rel.clone());
                }
                if kind != CHANGE_MODIFY {
                    if let Some(parent) = rel.parent().filter(|p| *p != Path::new("/")) {
                        if changed_dirs.insert(parent.to_path_buf()) {
                            out.push(Change {
                                path: parent.to_string_lossy().into_owned(),
                                kind: CHANGE_MODIFY,
                            });
                        }
                    }
                }
                out.push(Change {
                    path: rel.to_string_lossy().into_owned(),
                    kind,
                });
            }
            if md.is_dir() {
                self.walk(&rel, out, changed_dirs)?;
            }
        }
        Ok(())
    }
}

// ----- commit: --change instructions -----

/// Splits on unquoted whitespace; quotes group and are removed, `\` escapes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') if quote != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `["a","b"]` (exec form) or a shell command run by `/bin/sh -c`.
fn exec_or_shell(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_string()]
}

/// `k=v k2="v 2"` pairs, or the legacy `k v w` (one key, the rest is the value).
fn key_values(rest: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let ws = words(rest);
    if ws.is_empty() {
        return Err(format!("{what} requires at least one argument"));
    }
    if !ws[0].contains('=') {
        let t = rest.trim();
        let (k, v) = t
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{what} must have two arguments"))?;
        return Ok(vec![(k.to_string(), words(v.trim()).join(" "))]);
    }
    ws.iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

/// Applies `docker commit --change` instructions to `cfg`, as Docker's
/// `BuildFromConfig` does (an ENTRYPOINT without a CMD in the same batch clears Cmd).
pub fn apply_changes(cfg: &mut ContainerConfig, changes: &[String]) -> Result<(), String> {
    let mut cmd_set = false;
    for line in changes.iter().flat_map(|c| c.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instr, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i.to_ascii_uppercase(), r.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        match instr.as_str() {
            "CMD" => {
                cfg.cmd = Some(exec_or_shell(rest));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                cfg.entrypoint = Some(exec_or_shell(rest));
                if !cmd_set {
                    cfg.cmd = None;
                }
            }
            "ENV" => {
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(rest, "ENV")? {
                    let item = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |x| x.0) == k)
                    {
                        Some(e) => *e = item,
                        None => env.push(item),
                    }
                }
            }
            "LABEL" => {
                let labels = cfg.labels.get_or_insert_with(Default::default);
                for (k, v) in key_values(rest, "LABEL")? {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in words(rest) {
                    let p = if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let num = p.split('/').next().unwrap_or("");
                    if num.is_empty() || !num.split('-').all(|n| n.parse::<u16>().is_ok()) {
                        return Err(format!("invalid containerPort: {num}"));
                    }
                    ports.insert(p, serde_json::json!({}));
                }
            }
            "WORKDIR" => {
                let w = words(rest).join(" ");
                if w.is_empty() {
                    return Err("WORKDIR requires exactly one argument".into());
                }
                let base = if cfg.working_dir.is_empty() {
                    "/".to_string()
                } else {
                    cfg.working_dir.clone()
                };
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{w}", base.trim_end_matches('/'))
                };
                cfg.working_dir = clean_abs(&joined).to_string_lossy().into_owned();
            }
            "USER" => {
                let u = words(rest).join(" ");
                if u.is_empty() {
                    return Err("USER requires exactly one argument".into());
                }
                cfg.user = u;
            }
            "VOLUME" => {
                let vols = cfg.volumes.get_or_insert_with(BTreeMap::new);
                let list = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest).map_err(|e| format!("VOLUME: {e}"))?
                } else {
                    words(rest)
                };
                for v in list {
                    vols.insert(v, serde_json::json!({}));
                }
            }
            "STOPSIGNAL" => cfg.stop_signal = Some(rest.to_string()),
            "ONBUILD" => cfg
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_string()),
            "ADD" | "ARG" | "COPY" | "FROM" | "HEALTHCHECK" | "MAINTAINER" | "RUN" | "SHELL" => {
                return Err(format!("{instr} is not a valid change command"))
            }
            other => {
                return Err(format!(
                    "dockerfile parse error on line 1: unknown instruction: {other}"
                ))
            }
        }
    }
    Ok(())
}

/// The image config of a commit: the parent's (history kept), with the new container
/// config, author, comment and one more history entry. `rootfs` is the store's job.
fn commit_config(
    parent: &serde_json::Value,
    cfg: &ContainerConfig,
    container_id: &str,
    container_cfg: &ContainerConfig,
    author: &str,
    comment: &str,
    created: &str,
) -> serde_json::Value {
    let mut v = match parent {
        serde_json::Value::Object(m) => serde_json::Value::Object(m.clone()),
        _ => serde_json::json!({}),
    };
    let created_by = container_cfg.cmd.clone().unwrap_or_default().join(" ");
    let mut history = v
        .get("history")
        .and_then(|h| h.as_array().cloned())
        .unwrap_or_default();
    let mut entry = serde_json::json!({ "created": created, "created_by": created_by });
    if !author.is_empty() {
        entry["author"] = author.into();
    }
    if !comment.is_empty() {
        entry["comment"] = comment.into();
    }
    history.push(entry);
    if let Some(m) = v.as_object_mut() {
        m.remove("parent");
        m.remove("id");
        m.insert(
            "config".into(),
            serde_json::to_value(cfg).unwrap_or_default(),
        );
        m.insert("container".into(), container_id.into());
        m.insert(
            "container_config".into(),
            serde_json::to_value(container_cfg).unwrap_or_default(),
        );
        m.insert("created".into(), created.into());
        m.insert(
            "docker_version".into(),
            concat!("berth-", env!("CARGO_PKG_VERSION")).into(),
        );
        m.insert("history".into(), serde_json::Value::Array(history));
        if author.is_empty() {
            m.remove("author");
        } else {
            m.insert("author".into(), author.into());
        }
        if comment.is_empty() {
            m.remove("comment");
        } else {
            m.insert("comment".into(), comment.into());
        }
        m.entry("os").or_insert_with(|| "linux".into());
    }
    v
}

// ----- the engine's operations -----

impl Engine {
    fn upper_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("fs/upper")
    }

    fn lower_dirs(&self, image_id: &str) -> Result<Vec<PathBuf>> {
        let img = self
            .images()
            .get(image_id)
            .map_err(|e| from_image(e.kind(), e))?;
        self.images()
            .layer_dirs(&img)
            .map_err(|e| from_image(e.kind(), e))
    }

    /// The jail in which a container's filesystem is seen as the container sees it.
    fn view_jail(&self, rec: &crate::record::Record, write: bool) -> Result<Jail> {
        if rec.state.status.is_running() && rec.state.pid > 0 {
            return Ok(Jail::Chroot(PathBuf::from(format!(
                "/proc/{}/root",
                rec.state.pid
            ))));
        }
        let dir = self.container_dir(&rec.id);
        let lowers = self.lower_dirs(&rec.image)?;
        let at = dir.join("fs/merged");
        if write {
            Ok(Jail::Overlay {
                lower: lowers,
                upper: Some((dir.join("fs/upper"), dir.join("fs/work"))),
                at,
            })
        } else {
            let mut lower = vec![dir.join("fs/upper")];
            lower.extend(lowers);
            Ok(Jail::Overlay {
                lower,
                upper: None,
                at,
            })
        }
    }

    /// `HEAD /containers/{id}/archive?path=`.
    pub async fn stat_path(&self, name: &str, path: &str) -> Result<PathStat> {
        let c = self.lookup(name)?;
        let jail = self.view_jail(&c.record(), false)?;
        let (path, name) = (path.to_string(), name.to_string());
        jailed(jail, move || stat_here(&path, &name).map(|(_, s)| s)).await
    }

    /// `GET /containers/{id}/archive?path=`: the stat, then the tar as it is written.
    pub async fn archive_path(&self, name: &str, path: &str) -> Result<(PathStat, TarStream)> {
        let c = self.lookup(name)?;
        let jail = self.view_jail(&c.record(), false)?;
        let running = matches!(jail, Jail::Chroot(_));
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, done_rx) = oneshot::channel();
        let (path, name) = (path.to_string(), name.to_string());
        let (stat_tx, stat_rx) = oneshot::channel();
        let worker = jailed(jail, move || {
            let (host, stat) = match stat_here(&path, &name) {
                Ok(x) => x,
                Err(e) => {
                    let _ = stat_tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = stat_tx.send(Ok(stat));
            let mut out = TarOut::new(ChanWriter::new(tx), false);
            if running {
                out.pseudo_root_dev = fs::symlink_metadata("/").ok().map(|m| m.dev());
            }
            let r = out
                .add_tree(&host, &base_name(&path))
                .and_then(|()| out.finish())
                .and_then(|mut w| w.flush());
            if let Err(e) = &r {
                tracing::warn!(path = %path, error = %e, "docker cp: archive cut short");
            }
            let _ = done_tx.send(r.map_err(|e| e.to_string()));
            Ok(())
        });
        let handle = tokio::spawn(worker);
        match stat_rx.await {
            Ok(Ok(stat)) => Ok((
                stat,
                TarStream {
                    data: rx,
                    done: done_rx,
                },
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(handle
                .await
                .map_err(|e| Error::internal(e.to_string()))?
                .err()
                .unwrap_or_else(|| Error::internal("archive failed"))),
        }
    }

    /// `PUT /containers/{id}/archive?path=`: extracts the tar `body` into the directory
    /// `path` of the container.
    pub async fn extract_to_dir(
        &self,
        name: &str,
        path: &str,
        opts: ExtractOptions,
        body: UploadStream,
    ) -> Result<()> {
        let c = self.lookup(name)?;
        // A stopped container's overlay is mounted here: keep it from starting meanwhile.
        let _op = if c.is_running() {
            None
        } else {
            Some(c.op.lock().await)
        };
        let rec = c.record();
        if rec.host_config.readonly_rootfs {
            return Err(Error::invalid("container rootfs is marked read-only"));
        }
        let jail = self.view_jail(&rec, true)?;
        let owner = opts.copy_uid_gid.then(|| numeric_user(&rec.config.user));
        let (path, name) = (path.to_string(), name.to_string());
        jailed(jail, move || {
            let mut reader = UploadReader {
                rx: body,
                cur: Bytes::new(),
            };
            let r = extract_here(&path, &name, &mut reader, opts, owner);
            // Drain what is left so the client sees an answer, not a reset; a body cut
            // short after the archive's last entry still fails the upload.
            match io::copy(&mut reader, &mut io::sink()) {
                Err(e) if r.is_ok() => Err(Error::invalid(format!("reading the archive: {e}"))),
                _ => r,
            }
        })
        .await
    }

    /// `GET /containers/{id}/changes`.
    pub async fn changes(&self, name: &str) -> Result<Vec<Change>> {
        let c = self.lookup(name)?;
        let rec = c.record();
        let lowers = self.lower_dirs(&rec.image)?;
        let mut dirs = vec![("u".to_string(), self.upper_dir(&rec.id))];
        let names: Vec<PathBuf> = (0..lowers.len())
            .map(|i| PathBuf::from(format!("/l{i}")))
            .collect();
        for (i, l) in lowers.into_iter().enumerate() {
            dirs.push((format!("l{i}"), l));
        }
        let jail = Jail::Binds {
            dirs,
            at: self.container_dir(&rec.id).join("fs/merged"),
        };
        let stubs = mount_points(&rec);
        jailed(jail, move || {
            compute_changes(Path::new("/u"), &names, &stubs)
                .map_err(|e| Error::internal(format!("computing changes: {e}")))
        })
        .await
    }

    /// `GET /containers/{id}/export`: the container's root filesystem (without its
    /// mounts) as a tar.
    pub async fn export(&self, name: &str) -> Result<TarStream> {
        let c = self.lookup(name)?;
        let rec = c.record();
        let dir = self.container_dir(&rec.id);
        let mut lower = vec![dir.join("fs/upper")];
        lower.extend(self.lower_dirs(&rec.image)?);
        let jail = Jail::Overlay {
            lower,
            upper: None,
            at: dir.join("fs/merged"),
        };
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, done_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let worker = jailed(jail, move || {
            let _ = ready_tx.send(());
            let mut out = TarOut::new(ChanWriter::new(tx), false);
            let r = out
                .add_tree(Path::new("/"), "")
                .and_then(|()| out.finish())
                .and_then(|mut w| w.flush());
            if let Err(e) = &r {
                tracing::warn!(error = %e, "export cut short");
            }
            let _ = done_tx.send(r.map_err(|e| e.to_string()));
            Ok(())
        });
        let handle = tokio::spawn(worker);
        if ready_rx.await.is_err() {
            return Err(handle
                .await
                .map_err(|e| Error::internal(e.to_string()))?
                .err()
                .unwrap_or_else(|| Error::internal("export failed")));
        }
        Ok(TarStream {
            data: rx,
            done: done_rx,
        })
    }

    /// `POST /commit`: a new image from the container's changes; returns its id.
    pub async fn commit(&self, opts: CommitOptions) -> Result<String> {
        let c = self.lookup(&opts.container)?;
        let reference = if opts.repo.is_empty() {
            None
        } else {
            let r = Reference::parse_repo_tag(&opts.repo, &opts.tag).map_err(|e| from_image(e.kind(), e))?;
            Some(r.with_default_tag())
        };
        let rec = c.record();
        let mut cfg = match opts.config.clone() {
            Some(cfg) if cfg != ContainerConfig::default() => cfg,
            _ => rec.config.clone(),
        };
        apply_changes(&mut cfg, &opts.changes).map_err(Error::invalid)?;
        merge::merge(&mut cfg, &rec.config);
        let parent = self
            .images()
            .get(&rec.image)
            .map_err(|e| from_image(e.kind(), e))?;
        let config = commit_config(
            &parent.config_raw,
            &cfg,
            &rec.id,
            &rec.config,
            &opts.author,
            &opts.comment,
            &timefmt::now(),
        );
        let paused_here =
            opts.pause && rec.state.status.can_pause() && self.pause(&c.id).await.is_ok();
        let stubs: HashSet<String> = mount_points(&rec)
            .iter()
            .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
            .collect();
        let result = self
            .commit_layer(&rec.id, parent, config, reference, stubs)
            .await;
        if paused_here {
            if let Err(e) = self.unpause(&c.id).await {
                tracing::warn!(container = %c.id, error = %e, "unpause after commit failed");
            }
        }
        let image = result?;
        let rec = c.record();
        self.container_event(&rec, "commit", &[("comment", opts.comment.clone())]);
        Ok(image.id)
    }

    async fn commit_layer(
        &self,
        id: &str,
        parent: berth_image::Image,
        config: serde_json::Value,
        reference: Option<Reference>,
        stubs: HashSet<String>,
    ) -> Result<berth_image::Image> {
        let (tx, rx) = mpsc::channel(8);
        let writer = jailed(Jail::Chroot(self.upper_dir(id)), move || {
            let mut out = TarOut::new(ChanWriter::new(tx), true);
            out.skip = stubs;
            out.add_tree(Path::new("/"), "")
                .and_then(|()| out.finish())
                .and_then(|mut w| w.flush())
                .map_err(|e| Error::internal(format!("reading the container's changes: {e}")))
        });
        let store = self.images().clone();
        let reader = tokio::task::spawn_blocking(move || {
            let r = ChanReader {
                rx,
                cur: Bytes::new(),
            };
            store.commit(Some(&parent), r, config, reference.as_ref())
        });
        let (w, r) = tokio::join!(writer, reader);
        w?;
        r.map_err(|e| Error::internal(e.to_string()))?
            .map_err(|e| from_image(e.kind(), e))
    }
}

/// `uid[:gid]` when numeric; anything else is root (names would need the container's
/// /etc/passwd).
fn numeric_user(user: &str) -> (u32, u32) {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u.parse().unwrap_or(0);
    (uid, g.parse().unwrap_or(uid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_modes_are_go_file_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), 2147484141); // from the trace
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 420);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), MODE_SYMLINK | 0o777);
        assert_eq!(
            go_file_mode(libc::S_IFCHR | 0o666),
            MODE_DEVICE | MODE_CHAR_DEVICE | 0o666
        );
        assert_eq!(go_file_mode(libc::S_IFBLK | 0o660), MODE_DEVICE | 0o660);
        assert_eq!(go_file_mode(libc::S_IFIFO | 0o600), MODE_NAMED_PIPE | 0o600);
        assert_eq!(go_file_mode(libc::S_IFSOCK | 0o755), MODE_SOCKET | 0o755);
        assert_eq!(
            go_file_mode(libc::S_IFDIR | 0o1777),
            MODE_DIR | MODE_STICKY | 0o777
        );
        assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), MODE_SETUID | 0o755);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o2755), MODE_SETGID | 0o755);
    }

    #[test]
    fn times_and_names_like_go() {
        assert_eq!(go_time(1_795_433_610, 0), "2026-11-23T11:33:30Z");
        assert_eq!(
            go_time(1_795_433_610, 120_000_000),
            "2026-11-23T11:33:30.12Z"
        );
        for (p, want) in [
            ("/tmp/cpfile", "cpfile"),
            ("/tmp/", "tmp"),
            ("/tmp/.", "."),
            ("/", "/"),
            ("/a/../b", "b"),
        ] {
            assert_eq!(base_name(p), want, "{p}");
        }
        assert_eq!(clean_abs("/a/../../etc//x/."), PathBuf::from("/etc/x"));
        let stat = PathStat {
            name: "cpfile".into(),
            size: 9,
            mode: 420,
            mtime: go_time(1_795_433_610, 0),
            link_target: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&stat).unwrap(),
            r#"{"name":"cpfile","size":9,"mode":420,"mtime":"2026-11-23T11:33:30Z","linkTarget":""}"#
        );
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let r = pax_record("SCHILY.xattr.user.a", b"b");
        let s = String::from_utf8(r.clone()).unwrap();
        let (len, _) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
        let long = pax_record("k", &[b'x'; 95]);
        assert_eq!(
            String::from_utf8_lossy(&long)
                .split_once(' ')
                .unwrap()
                .0
                .parse::<usize>()
                .unwrap(),
            long.len()
        );
    }

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            working_dir: "/srv".into(),
            ..Default::default()
        }
    }

    #[test]
    fn change_instructions() {
        let mut c = cfg();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["cat", "/newfile"]"#.into(),
                "ENV A=2 B=\"two words\"".into(),
                "env LEGACY some value".into(),
                "WORKDIR app".into(),
                "EXPOSE 80 53/UDP".into(),
                "LABEL k=v \"x y\"=z".into(),
                "USER nobody".into(),
                "VOLUME /data".into(),
                "STOPSIGNAL SIGINT".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.cmd, Some(vec!["cat".to_string(), "/newfile".to_string()]));
        assert_eq!(
            c.env,
            Some(vec![
                "PATH=/bin".into(),
                "A=2".into(),
                "B=two words".into(),
                "LEGACY=some value".into()
            ])
        );
        assert_eq!(c.working_dir, "/srv/app");
        let ports: Vec<&String> = c.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        let labels = c.labels.clone().unwrap();
        assert_eq!(labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(labels.get("x y").map(String::as_str), Some("z"));
        assert_eq!(c.user, "nobody");
        assert!(c.volumes.as_ref().unwrap().contains_key("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));

        // Shell form; ENTRYPOINT alone clears Cmd; with a CMD in the batch it does not.
        let mut c = cfg();
        apply_changes(&mut c, &["ENTRYPOINT echo hi".into()]).unwrap();
        assert_eq!(
            c.entrypoint,
            Some(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "echo hi".to_string()
            ])
        );
        assert_eq!(c.cmd, None);
        let mut c = cfg();
        apply_changes(&mut c, &["CMD [\"x\"]\nENTRYPOINT [\"/e\"]".into()]).unwrap();
        assert_eq!(c.cmd, Some(vec!["x".to_string()]));
        assert_eq!(c.entrypoint, Some(vec!["/e".to_string()]));

        for (bad, msg) in [
            ("RUN echo", "RUN is not a valid change command"),
            ("FOO bar", "unknown instruction: FOO"),
            ("EXPOSE abc", "invalid containerPort: abc"),
            ("ENV =x", "can't find ="),
        ] {
            let e = apply_changes(&mut cfg(), &[bad.into()]).unwrap_err();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn commit_config_appends_history() {
        let parent = serde_json::json!({
            "architecture": "amd64", "os": "linux", "author": "old",
            "history": [{"created_by": "/bin/sh -c #(nop) ADD file"}],
            "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
        });
        let mut c = cfg();
        c.cmd = Some(vec!["cat".into(), "/x".into()]);
        let v = commit_config(
            &parent,
            &c,
            "abc",
            &cfg(),
            "me",
            "why",
            "2025-01-01T00:00:00Z",
        );
        assert_eq!(v["author"], "me");
        assert_eq!(v["comment"], "why");
        assert_eq!(v["container"], "abc");
        assert_eq!(v["config"]["Cmd"], serde_json::json!(["cat", "/x"]));
        assert_eq!(v["container_config"]["Cmd"], serde_json::json!(["sh"]));
        let h = v["history"].as_array().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1]["created_by"], "sh");
        assert_eq!(h[1]["author"], "me");
        assert_eq!(v["architecture"], "amd64");
        let v = commit_config(&parent, &c, "abc", &cfg(), "", "", "2025-01-01T00:00:00Z");
        assert!(v.get("author").is_none());
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn whiteout(p: &Path) -> bool {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        mknod(p, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).is_ok()
    }

    #[test]
    fn changes_against_lower_layers() {
        if !is_root() {
            eprintln!("skipping: whiteouts need CAP_MKNOD");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "tmp", "var/lib", "usr/bin"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/motd"), "hi").unwrap();
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::os::unix::fs::symlink("usr/bin", lower.join("bin")).unwrap();
        // A second, higher lower layer deleting /etc/passwd.
        let lower2 = t.path().join("lower2");
        fs::create_dir_all(lower2.join("etc")).unwrap();
        assert!(whiteout(&lower2.join("etc/passwd")));

        for d in ["etc", "tmp", "var/lib"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("tmp/x"), "new").unwrap();
        assert!(whiteout(&upper.join("etc/motd")));
        fs::write(upper.join("etc/passwd"), "again").unwrap(); // gone in lower2: added
        fs::write(upper.join("var/lib/db"), "d").unwrap();
        // var and var/lib: the same metadata as below, so only their parent record.
        for d in ["var", "var/lib"] {
            let m = fs::metadata(lower.join(d)).unwrap();
            fs::set_permissions(upper.join(d), m.permissions()).unwrap();
        }
        let lowers = vec![lower2.clone(), lower.clone()];
        // Make directory times equal where we want "unchanged".
        for d in ["var/lib", "var"] {
            let m = fs::metadata(upper.join(d)).unwrap();
            let tsp = nix::sys::time::TimeSpec::new(m.mtime(), 0);
            for root in [&upper, &lower] {
                nix::sys::stat::utimensat(
                    None,
                    &root.join(d),
                    &tsp,
                    &tsp,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .unwrap();
            }
        }
        fs::write(upper.join("etc/hosts"), "").unwrap(); // a mount-point stub
        let ch = compute_changes(&upper, &lowers, &[PathBuf::from("/etc/hosts")]).unwrap();
        let got: Vec<String> = ch
            .iter()
            .map(|c| format!("{} {}", ["C", "A", "D"][c.kind as usize], c.path))
            .collect();
        assert!(got.contains(&"D /etc/motd".to_string()), "{got:?}");
        assert!(got.contains(&"A /etc/passwd".to_string()), "{got:?}");
        assert!(got.contains(&"A /tmp/x".to_string()), "{got:?}");
        assert!(!got.iter().any(|g| g.contains("hosts")), "{got:?}");
        assert!(got.contains(&"A /var/lib/db".to_string()), "{got:?}");
        assert!(got.contains(&"C /var/lib".to_string()), "{got:?}");
        assert!(!got.contains(&"C /var".to_string()), "{got:?}");
        // Parents come before their children, once.
        let pos = |s: &str| got.iter().position(|g| g == s).unwrap();
        assert!(pos("C /var/lib") < pos("A /var/lib/db"));
        assert_eq!(
            got.iter().filter(|g| g.ends_with(" /etc")).count(),
            1,
            "{got:?}"
        );

        assert!(lower_lookup(&lowers, Path::new("/etc/motd")).is_some());
        assert!(
            lower_lookup(&lowers, Path::new("/etc/passwd")).is_none(),
            "whited out by lower2"
        );
        assert!(
            lower_lookup(&lowers, Path::new("/bin/sh")).is_none(),
            "through a symlink"
        );
        assert!(lower_lookup(&lowers, Path::new("/bin"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn layer_tar_uses_oci_whiteouts() {
        if !is_root() {
            eprintln!("skipping: whiteouts need CAP_MKNOD");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let up = t.path();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("opq")).unwrap();
        fs::write(up.join("opq/keep"), "k").unwrap();
        fs::write(up.join("new"), "n").unwrap();
        fs::hard_link(up.join("new"), up.join("new2")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", up.join("etc/link")).unwrap();
        assert!(whiteout(&up.join("etc/gone")));
        let opaque_ok = xattr::set(up.join("opq"), OPAQUE_XATTR, b"y").is_ok();
        let mut out = TarOut::new(Vec::new(), true);
        out.add_tree(up, "").unwrap();
        let bytes = out.finish().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let kind = e.header().entry_type();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            names.push((name, kind, link));
        }
        let find = |n: &str| {
            names
                .iter()
                .find(|x| x.0 == n)
                .unwrap_or_else(|| panic!("{n} in {names:?}"))
        };
        assert_eq!(find("etc/").1, tar::EntryType::Directory);
        assert_eq!(find("etc/.wh.gone").1, tar::EntryType::Regular);
        assert_eq!(find("etc/link").2.as_deref(), Some("/etc/passwd"));
        assert_eq!(find("new").1, tar::EntryType::Regular);
        assert_eq!(find("new2").1, tar::EntryType::Link);
        assert_eq!(find("new2").2.as_deref(), Some("new"));
        if opaque_ok {
            assert_eq!(find("opq/.wh..wh..opq").1, tar::EntryType::Regular);
        }
        assert!(!names.iter().any(|n| n.0 == "etc/gone"), "{names:?}");
        // The same tar unpacked by the image store gives the whiteouts back.
        let dest = t.path().join("unpacked");
        berth_image::unpack::unpack(&bytes[..], &dest).unwrap();
        let md = fs::symlink_metadata(dest.join("etc/gone")).unwrap();
        assert!(is_whiteout(&md));
    }

    #[test]
    fn words_and_key_values() {
        assert_eq!(
            words(r#"a "b c" 'd e' f\ g"#),
            vec!["a", "b c", "d e", "f g"]
        );
        assert_eq!(
            key_values("A=1 B=\"x y\"", "ENV").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "x y".into())]
        );
        assert_eq!(
            key_values("A hello world", "ENV").unwrap(),
            vec![("A".into(), "hello world".into())]
        );
        assert_eq!(numeric_user("1000:50"), (1000, 50));
        assert_eq!(numeric_user("7"), (7, 7));
        assert_eq!(numeric_user("nobody"), (0, 0));
    }

    // ----- archive names (docker cp c:/, D14) -----

    fn tar_entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, Option<String>)> {
        let mut ar = tar::Archive::new(bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                (name, e.header().entry_type(), link)
            })
            .collect()
    }

    #[test]
    fn archive_names_and_link_targets_like_docker() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "x").unwrap();
        fs::hard_link(root.join("d/f"), root.join("d/g")).unwrap();
        let long = format!("/{}", "t".repeat(150));
        // (link name, target): `/` was archived as `//` (D14).
        let links = [("root", "/"), ("dots", "../.."), ("trail", "/etc/"), ("long", long.as_str()), ("dbl", "a//b")];
        for (n, target) in links {
            std::os::unix::fs::symlink(target, root.join(n)).unwrap();
        }
        // (top name, expected names of the root, of d/f, of the hard link d/g)
        let cases = [
            ("/", "/", "/d/f", "/d/g"),
            (".", "./", "./d/f", "./d/g"),
            ("c", "c/", "c/d/f", "c/d/g"),
        ];
        for (top, want_root, want_f, want_g) in cases {
            let mut out = TarOut::new(Vec::new(), false);
            out.add_tree(root, top).unwrap();
            let names = tar_entries(&out.finish().unwrap());
            let find = |n: &str| names.iter().find(|x| x.0 == n).unwrap_or_else(|| panic!("{n} in {names:?}")).clone();
            assert_eq!(find(want_root).1, tar::EntryType::Directory, "{top}");
            assert_eq!(find(want_f).1, tar::EntryType::Regular, "{top}");
            assert_eq!(find(want_g), (want_g.to_string(), tar::EntryType::Link, Some(want_f.to_string())), "{top}");
            let base = want_root.trim_end_matches('/');
            for (n, target) in links {
                let e = find(&format!("{base}/{n}"));
                assert_eq!((e.1, e.2.as_deref()), (tar::EntryType::Symlink, Some(target)), "{top} {n}");
            }
        }
    }

    #[test]
    fn pseudo_file_systems_are_archived_empty() {
        let root_dev = fs::symlink_metadata("/").unwrap().dev();
        let t = tempfile::tempdir().unwrap();
        let cases = [(Path::new("/proc"), true), (Path::new("/sys"), true), (t.path(), false)];
        for (p, want) in cases {
            let md = fs::symlink_metadata(p).unwrap();
            assert_eq!(is_pseudo_mount(p, &md, root_dev), want, "{}", p.display());
        }
        // The directory entry stays, its contents do not.
        let mut out = TarOut::new(Vec::new(), false);
        out.pseudo_root_dev = Some(root_dev);
        out.add_tree(Path::new("/proc"), "proc").unwrap();
        let names = tar_entries(&out.finish().unwrap());
        assert_eq!(names, vec![("proc/".to_string(), tar::EntryType::Directory, None)]);
    }

    // ----- extraction (PUT archive) -----

    /// Appends an entry with `name` and `link` byte for byte (the tar crate's
    /// builder refuses `..` and absolute names, which is what these tests send).
    fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        for (kind, value) in [(tar::EntryType::GNULongLink, link), (tar::EntryType::GNULongName, name)] {
            if value.len() > 100 {
                let (long, payload) = gnu_long(kind, value.as_bytes());
                out.extend_from_slice(long.as_bytes());
                out.extend_from_slice(&payload);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let n = link.len().min(100);
        h.as_old_mut().linkname[..n].copy_from_slice(&link.as_bytes()[..n]);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn finish_tar(mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(&[0; 1024]);
        out
    }

    /// Every file under `root` (not following symlinks) except below `skip`, with
    /// what would show a change: kind, size, link count, content of small files.
    fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, (u32, u64, u64, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(p) = todo.pop() {
            if p == skip {
                continue;
            }
            let md = fs::symlink_metadata(&p).unwrap();
            let data = if md.is_file() { fs::read(&p).unwrap() } else { Vec::new() };
            out.insert(p.clone(), (md.mode(), md.len(), md.nlink(), data));
            if md.is_dir() {
                todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        out
    }

    /// A temp tree `T/outside/sentinel` + `T/a/b/dest`: `..` three times from dest
    /// reaches T, so any escape shows in T's snapshot.
    struct Arena {
        t: tempfile::TempDir,
    }

    impl Arena {
        fn new() -> Arena {
            let t = tempfile::tempdir().unwrap();
            fs::create_dir_all(t.path().join("outside")).unwrap();
            fs::write(t.path().join("outside/sentinel"), "PRECIOUS").unwrap();
            fs::create_dir_all(t.path().join("a/b/dest")).unwrap();
            Arena { t }
        }
        fn dest(&self) -> PathBuf {
            self.t.path().join("a/b/dest")
        }
        fn out(&self) -> String {
            self.t.path().join("outside").to_string_lossy().into_owned()
        }
        fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u64, u64, Vec<u8>)> {
            snapshot(self.t.path(), &self.dest())
        }
    }

    #[test]
    fn extraction_stays_in_its_directory() {
        use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as L};
        let owner = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        // (entries, Ok(paths that must exist under dest) | Err(text in the 400 message))
        type Case = (Vec<(&'static str, tar::EntryType, &'static str)>, std::result::Result<Vec<&'static str>, &'static str>);
        let cases: Vec<Case> = vec![
            (vec![("x/", D, ""), ("x/f", F, "")], Ok(vec!["x/f"])),
            (vec![("/abs/f", F, "")], Ok(vec!["abs/f"])),
            (vec![("../f", F, "")], Err("leaves the destination")),
            (vec![("x/../../f", F, "")], Err("leaves the destination")),
            // The hard link that answered 500.
            (vec![("h", H, "missing")], Err("invalid hardlink \"h\" -> \"missing\": no such file or directory")),
            (vec![("h", H, "../outside/sentinel")], Err("leaves the destination")),
            (vec![("h", H, "@OUT@/sentinel")], Err("invalid hardlink")),
            (vec![("l", L, "../../x")], Err("invalid symlink \"l\" -> \"../../x\"")),
            // Through a symlink that points out: the write lands inside dest.
            (vec![("l", L, "@OUT@"), ("l/sentinel", F, "")], Ok(vec!["@OUT@/sentinel"])),
            (vec![("l", L, "/"), ("l/etc/passwd", F, "")], Ok(vec!["etc/passwd"])),
            (vec![("d/", D, ""), ("d/up", L, ".."), ("d/up/up2", L, ".."), ("d/up/up2/f", F, "")], Ok(vec!["f"])),
            // A hard link to a symlink links the symlink, not what it points at.
            (vec![("l", L, "@OUT@/sentinel"), ("h", H, "l")], Ok(vec!["h"])),
            (vec![("f", F, ""), ("f/x", F, "")], Err("is not a directory")),
        ];
        for (entries, want) in cases {
            let a = Arena::new();
            let before = a.snapshot();
            let mut tar = Vec::new();
            for (name, kind, link) in &entries {
                let fix = |s: &str| s.replace("@OUT@", &a.out());
                raw_entry(&mut tar, &fix(name), *kind, &fix(link), b"");
            }
            let r = extract_into(&a.dest(), &finish_tar(tar)[..], ExtractOptions::default(), Some(owner));
            match want {
                Ok(paths) => {
                    r.unwrap_or_else(|e| panic!("{entries:?}: {e}"));
                    for p in paths {
                        let p = p.replace("@OUT@", &a.out()[1..]);
                        assert!(fs::symlink_metadata(a.dest().join(&p)).is_ok(), "{entries:?}: {p}");
                    }
                }
                Err(text) => {
                    let e = r.expect_err(&format!("{entries:?}"));
                    assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{entries:?}: {e}");
                    assert!(e.to_string().contains(text), "{entries:?}: {e}");
                }
            }
            assert_eq!(a.snapshot(), before, "{entries:?} changed something outside");
        }
    }

    #[test]
    fn bad_archives_are_400() {
        let a = Arena::new();
        let mut truncated = Vec::new();
        raw_entry(&mut truncated, "f", tar::EntryType::Regular, "", b"");
        // Announce 4096 bytes, send 10.
        let mut h = tar::Header::new_gnu();
        h.set_path("big").unwrap();
        h.set_size(4096);
        h.set_cksum();
        truncated.extend_from_slice(h.as_bytes());
        truncated.extend_from_slice(b"0123456789");
        let garbage = vec![0x5au8; 2048];
        for (what, bytes) in [("truncated", truncated), ("garbage", garbage)] {
            let e = extract_into(&a.dest(), &bytes[..], ExtractOptions::default(), None).expect_err(what);
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{what}: {e}");
        }
    }

    /// An upload cut at an entry boundary reads as an error, never as a clean end of the
    /// archive (which would apply half of it and answer 200).
    #[test]
    fn a_cut_upload_fails_the_extraction() {
        let a = Arena::new();
        let mut first = Vec::new();
        raw_entry(&mut first, "f", tar::EntryType::Regular, "", b"data");
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        tx.try_send(Ok(Bytes::from(first))).expect("send");
        tx.try_send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client went away"))).expect("send");
        drop(tx);
        let reader = UploadReader { rx, cur: Bytes::new() };
        let e = extract_into(&a.dest(), reader, ExtractOptions::default(), None).expect_err("cut upload");
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("client went away"), "{e}");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const SEGS: &[&str] = &["a", "b", "l", "..", ".", "", "etc", "passwd", "@OUT@", "sentinel", "LONG"];
        const LINKS: &[&str] = &["/", "..", "../..", "../../..", "@OUT@", "@OUT@/sentinel", "a", "l", "a/l", "../outside/sentinel", "/etc", "LONG", ""];
        const KINDS: &[tar::EntryType] = &[
            tar::EntryType::Regular,
            tar::EntryType::Directory,
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Char,
            tar::EntryType::Fifo,
        ];

        fn entry() -> impl Strategy<Value = (bool, Vec<usize>, usize, usize, usize)> {
            (
                any::<bool>(),
                proptest::collection::vec(0..SEGS.len(), 1..5),
                0..KINDS.len(),
                0..LINKS.len(),
                0usize..3,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Whatever the archive holds (`..`, absolute names, links out and files
            /// written through them, hard links out, devices, long names), nothing
            /// outside the destination changes, and nothing panics.
            #[test]
            fn extractor_never_writes_outside(entries in proptest::collection::vec(entry(), 1..12)) {
                let a = Arena::new();
                let before = a.snapshot();
                let long = "n".repeat(140);
                let fix = |s: &str| s.replace("@OUT@", &a.out()).replace("LONG", &long);
                let mut tar = Vec::new();
                for (abs, segs, kind, link, size) in &entries {
                    let name: Vec<&str> = segs.iter().map(|i| SEGS[*i]).collect();
                    let name = format!("{}{}", if *abs { "/" } else { "" }, name.join("/"));
                    let data = vec![b'z'; *size * 300];
                    let kind = KINDS[*kind];
                    let data: &[u8] = if kind == tar::EntryType::Regular { &data } else { b"" };
                    raw_entry(&mut tar, &fix(&name), kind, &fix(LINKS[*link]), data);
                }
                let opts = ExtractOptions { no_overwrite_dir_non_dir: entries.len() % 2 == 0, copy_uid_gid: false };
                let _ = extract_into(&a.dest(), &finish_tar(tar)[..], opts, None);
                prop_assert_eq!(a.snapshot(), before);
            }
        }
    }
}
