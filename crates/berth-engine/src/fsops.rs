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
//! Inside the jail, `berth-archive` does the file work: its tar writer (cp, export,
//! commit), its extractor in copy mode (cp into a container) and its diff walker. What
//! stays here is engine-specific: the jails, the byte pipes between worker threads and
//! async code, the `--change` parser and commit orchestration. `berth-image` stores
//! what `commit` produces (`ImageStore::commit`); `berth-daemon`'s `archive.rs` is the
//! HTTP edge.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_api::ContainerConfig;
use berth_archive::path::clean_abs;
use berth_archive::{self as archive, go_file_mode, go_time, TarOut};
pub use berth_archive::{compute_changes, Change, CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY};
use berth_image::Reference;
use berth_sys::libc;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
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
pub(crate) enum Jail {
    /// chroot into an existing directory.
    Chroot(PathBuf),
    /// A private mount namespace with an overlay on `at`, then chroot into it.
    /// Without `upper` (upper, work) the overlay is read-only.
    Overlay {
        lower: Vec<PathBuf>,
        upper: Option<(PathBuf, PathBuf)>,
        at: PathBuf,
        /// The container's volume and bind mounts (destination, host source, read-only),
        /// mounted over the overlay so `cp` reads and writes them, not the layer beneath.
        binds: Vec<(String, PathBuf, bool)>,
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
        Jail::Overlay { lower, upper, at, binds } => {
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
            for (dst, src, ro) in binds {
                bind_into(at, dst, src, *ro, upper.is_some())?;
            }
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

/// Bind-mounts `src` on `dst` inside the overlay at `at` (resolved there, so nothing
/// the image holds leads outside); a missing target is made when the overlay is
/// writable and the mount skipped otherwise (the path then reads as the image has it).
fn bind_into(at: &Path, dst: &str, src: &Path, ro: bool, writable: bool) -> io::Result<()> {
    let target = berth_sys::fs::secure_join(at, dst).map_err(|e| ctx_err(format!("resolve {dst}"), e))?;
    let is_dir = fs::metadata(src).map(|m| m.is_dir()).unwrap_or(true);
    if fs::symlink_metadata(&target).is_err() {
        if !writable {
            return Ok(());
        }
        if is_dir {
            fs::create_dir_all(&target).map_err(|e| ctx_err(format!("mkdir {dst}"), e))?;
        } else {
            if let Some(p) = target.parent() {
                fs::create_dir_all(p).map_err(|e| ctx_err(format!("mkdir {dst}"), e))?;
            }
            fs::write(&target, b"").map_err(|e| ctx_err(format!("create {dst}"), e))?;
        }
    }
    berth_sys::mount::mount(Some(src), &target, None, libc::MS_BIND | libc::MS_REC, None)
        .map_err(|e| ctx_err(format!("bind {}", src.display()), e))?;
    if ro {
        berth_sys::mount::mount(None, &target, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY, None)
            .map_err(|e| ctx_err(format!("remount {dst} read-only"), e))?;
    }
    Ok(())
}

/// Runs `f` on a fresh thread confined in `jail`.
pub(crate) async fn jailed<T, F>(jail: Jail, f: F) -> Result<T>
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
pub(crate) struct ChanWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChanWriter {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> ChanWriter {
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

/// A writer whose chunks go to `tx` (for pipes between jailed workers).
pub(crate) fn chan_writer(tx: mpsc::Sender<Bytes>) -> impl Write {
    ChanWriter::new(tx)
}

/// A reader of the chunks sent to `rx` until its sender is dropped.
pub(crate) fn chan_reader(rx: ByteStream) -> impl Read {
    ChanReader { rx, cur: Bytes::new() }
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
pub(crate) struct UploadReader {
    rx: UploadStream,
    cur: Bytes,
}

impl UploadReader {
    pub(crate) fn new(rx: UploadStream) -> UploadReader {
        UploadReader { rx, cur: Bytes::new() }
    }
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
    for m in rec.mounts() {
        v.push(clean_abs(&m.destination));
    }
    v
}

/// Whether the container path `path` lies in one of `mounts` (its destination or
/// below): `Some(read_only)` of the deepest such mount, `None` outside every mount.
fn mount_holding(mounts: &[crate::mounts::MountSpec], path: &str) -> Option<bool> {
    let p = clean_abs(path);
    mounts
        .iter()
        .filter(|m| p.starts_with(clean_abs(&m.destination)))
        .max_by_key(|m| clean_abs(&m.destination).components().count())
        .map(|m| m.read_only)
}

// ----- tar extraction (docker cp into a container) -----


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

/// Extracts the tar `r` into the directory `dest` with the archive crate's extractor
/// in copy mode, its errors in the engine's kinds (the archive's fault: 400).
fn extract_into<R: Read>(
    dest: &Path,
    r: R,
    opts: ExtractOptions,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let aopts = archive::ExtractOptions {
        layer: false,
        no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
        owner,
    };
    archive::extract(r, dest, &aopts).map(|_| ()).map_err(|e| {
        if e.is_invalid() {
            Error::invalid(e.to_string())
        } else {
            Error::internal(e.to_string())
        }
    })
}

// ----- commit: --change instructions -----

/// `docker commit --change` / `docker import --change`: the builder's one Dockerfile
/// parser and config applier (`berth_build::changes`).
pub use berth_build::changes::apply_changes;

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

    pub(crate) fn lower_dirs(&self, image_id: &str) -> Result<Vec<PathBuf>> {
        let img = self
            .images()
            .get(image_id)?;
        self.images()
            .layer_dirs(&img)
            .map_err(Error::from)
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
        // Shallow first, so a mount inside another lands on top of it.
        let mut binds: Vec<(String, PathBuf, bool)> = rec
            .mounts()
            .iter()
            .filter(|m| m.kind != crate::mounts::MountType::Tmpfs)
            .map(|m| (m.destination.clone(), m.to_runtime().source, m.read_only))
            .filter(|(_, src, _)| src.exists())
            .collect();
        binds.sort_by_key(|(d, _, _)| clean_abs(d).components().count());
        if write {
            Ok(Jail::Overlay {
                lower: lowers,
                upper: Some((dir.join("fs/upper"), dir.join("fs/work"))),
                at,
                binds,
            })
        } else {
            let mut lower = vec![dir.join("fs/upper")];
            lower.extend(lowers);
            Ok(Jail::Overlay {
                lower,
                upper: None,
                at,
                binds,
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
        // Docker's `checkIfPathIsInAVolume`: a path in a mount is writable when the
        // mount is, whatever the rootfs; outside mounts a read-only rootfs refuses.
        match mount_holding(&rec.mounts(), path) {
            Some(true) => return Err(Error::invalid("mounted volume is marked read-only")),
            Some(false) => {}
            None if rec.host_config.readonly_rootfs => {
                return Err(Error::invalid("container rootfs is marked read-only"));
            }
            None => {}
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
            binds: Vec::new(),
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
            let r = Reference::parse_repo_tag(&opts.repo, &opts.tag)?;
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
            .get(&rec.image)?;
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

    /// A new image from a stopped container's changes with `config` as its whole
    /// image config (the builder's RUN steps).
    pub(crate) async fn commit_container_layer(
        &self,
        id: &str,
        parent: berth_image::Image,
        config: serde_json::Value,
    ) -> Result<berth_image::Image> {
        let c = self.lookup(id)?;
        let rec = c.record();
        let stubs: HashSet<String> = mount_points(&rec)
            .iter()
            .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
            .collect();
        self.commit_layer(&rec.id, parent, config, None, stubs).await
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
            .map_err(Error::from)
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
    fn paths_in_mounts() {
        let m = |dst: &str, ro: bool| {
            let mut m = crate::mounts::MountSpec::anonymous(dst);
            m.read_only = ro;
            m
        };
        let mounts = [m("/data", false), m("/data/ro", true), m("/cfg", true)];
        let cases: &[(&str, Option<bool>)] = &[
            ("/data", Some(false)),
            ("/data/x/", Some(false)),
            ("/data/ro/y", Some(true)),
            ("/data/rox", Some(false)),
            ("/cfg", Some(true)),
            ("/etc", None),
            ("/", None),
            ("data/../cfg/z", Some(true)),
        ];
        for (p, want) in cases {
            assert_eq!(mount_holding(&mounts, p), *want, "{p}");
        }
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

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            working_dir: "/srv".into(),
            ..Default::default()
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

    #[test]
    fn numeric_users() {
        assert_eq!(numeric_user("1000:50"), (1000, 50));
        assert_eq!(numeric_user("7"), (7, 7));
        assert_eq!(numeric_user("nobody"), (0, 0));
    }

    /// An upload cut at an entry boundary reads as an error, never as a clean end of the
    /// archive (which would apply half of it and answer 200).
    #[test]
    fn a_cut_upload_fails_the_extraction() {
        let t = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        b.append_data(&mut h, "f", &b"data"[..]).unwrap();
        let first = b.get_ref().clone(); // the entry, without the archive's end
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        tx.try_send(Ok(Bytes::from(first))).expect("send");
        tx.try_send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client went away"))).expect("send");
        drop(tx);
        let reader = UploadReader { rx, cur: Bytes::new() };
        let e = extract_into(t.path(), reader, ExtractOptions::default(), None).expect_err("cut upload");
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("client went away"), "{e}");
    }
}
