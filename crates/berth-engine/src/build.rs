//! `POST /build` in the engine: the build context received into a private directory
//! (plain or gzip tar, capped in size) — a small context (a body of at most
//! [`SMALL_BODY`] that unpacks to at most [`SMALL_CONTEXT`]) into the daemon's own
//! size-capped tmpfs at `<exec-root>/builder` (creating and deleting many small files
//! on ext4 was most of a cached rebuild's time), any other under
//! `<data-root>/builder/tmp/` — then
//! `berth-build`'s executor run on a blocking thread against [`EngineBackend`], the
//! engine's side of its `Backend` trait: containers for RUN (created, started,
//! followed through their json-file log, committed), layer tars and config-only images
//! committed into the store, and the content-keyed cache kept durably as one small
//! file per key in `<data-root>/builder/cache/`.
//!
//! The HTTP edge (`berth-daemon`'s `build.rs`) parses the query and turns the
//! [`BuildMsg`] stream into Docker's JSON messages.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use berth_api::{ContainerConfig, ContainerCreateRequest, HostConfig};
use berth_build::executor::{Backend, BuildError, BuildOptions, Executor, ImageInfo, Layer, Output};
use berth_image::Reference;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::containers::WaitCondition;
use crate::error::{Error, Result};
use crate::fsops::UploadStream;
use crate::logs::LogOptions;
use crate::Engine;

/// What a build reports, in order.
#[derive(Clone, Debug)]
pub enum BuildMsg {
    /// A `stream` item.
    Stream(String),
    /// A pull progress message, as `/images/create` sends it.
    Progress(berth_api::JsonMessage),
    /// `aux: {"ID": …}`.
    Aux(String),
    /// The failure (`errorDetail`), with a RUN's exit code.
    Error { message: String, code: Option<i64> },
}

/// `POST /build`'s own parameters beyond the executor's.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    pub opts: BuildOptions,
    /// `dockerfile`: a path inside the context.
    pub dockerfile: String,
    pub quiet: bool,
    /// Cap on the unpacked context (bytes).
    pub max_context: u64,
}

/// One cache entry as `system df` and `builder prune` see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: String,
    pub image: String,
    pub created: i64,
}

/// Messages in flight between the build thread and the HTTP body: what bounds the
/// memory a slow client can make a chatty RUN hold.
const MSG_BACKLOG: usize = 256;

struct ChanOut {
    tx: mpsc::Sender<BuildMsg>,
    quiet: bool,
}

impl Output for ChanOut {
    fn stream(&mut self, s: &str) {
        if !self.quiet {
            let _ = self.tx.blocking_send(BuildMsg::Stream(s.to_string()));
        }
    }
}

/// Counts what a reader hands out and fails past `max`.
struct Capped<'a, R> {
    inner: R,
    read: u64,
    max: u64,
    /// Set once the cap is passed: the tar reader wraps the error in its own words.
    over: &'a std::cell::Cell<bool>,
}

fn over_cap(max: u64) -> String {
    format!("Error processing tar file: the build context exceeds the daemon's limit of {max} bytes")
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.max > 0 && self.read > self.max {
            self.over.set(true);
            return Err(io::Error::other(over_cap(self.max)));
        }
        Ok(n)
    }
}

/// Extracts the context tar (plain, gzip, bzip2, xz or zstd) from `body` into `dir`.
fn receive_context(body: impl Read, dir: &Path, max: u64) -> std::result::Result<(), String> {
    let mut body = io::BufReader::new(body);
    let head = {
        use io::BufRead;
        body.fill_buf().map_err(|e| e.to_string())?.to_vec()
    };
    // Docker's DecompressStream: gzip, bzip2, xz, zstd or a plain tar.
    let kind = berth_archive::decompress::detect(&head);
    let reader = berth_archive::decompress::decoder(kind, body).map_err(|e| format!("Error processing tar file: {e}"))?;
    let over = std::cell::Cell::new(false);
    let mut ar = tar::Archive::new(Capped { inner: reader, read: 0, max, over: &over });
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let entries = ar.entries().map_err(|e| format!("Error processing tar file: {e}"))?;
    for (seen, e) in entries.enumerate() {
        let mut e = match e {
            Ok(e) => e,
            // The docker CLI ends a context whose Dockerfile or .dockerignore it
            // rewrote (`-f` outside the context, `-f -`) right after the last entry's
            // data: no padding, no end-of-archive blocks. Go's reader stops there
            // cleanly, so does this one.
            Err(err) if seen > 0 && (err.kind() == io::ErrorKind::UnexpectedEof || err.to_string().contains("unexpected EOF")) => break,
            Err(_) if over.get() => return Err(over_cap(max)),
            Err(err) => return Err(format!("Error processing tar file: {err}")),
        };
        // unpack_in refuses paths that would leave `dir` (`..`, symlinked parents).
        e.unpack_in(dir).map_err(|e| if over.get() { over_cap(max) } else { format!("Error processing tar file: {e}") })?;
    }
    Ok(())
}

/// A reader that fails once with the error the upload ended with.
struct FailedRead(Option<io::Error>);

impl Read for FailedRead {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the build context upload failed")),
        }
    }
}

/// A context body up to this size is read into memory first; if it ends there it is
/// unpacked into the tmpfs. Bounds the memory one build holds before it spills.
pub const SMALL_BODY: usize = 8 << 20;
/// The most a context unpacked into the tmpfs may hold; past it the build starts over
/// on disk from the body kept in memory.
pub const SMALL_CONTEXT: u64 = 64 << 20;
/// The size of the tmpfs small contexts share (builds that find it full use the disk).
pub const CONTEXT_TMPFS_SIZE: &str = "256m";
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The daemon's tmpfs for small build contexts, `<exec-root>/builder`: mounted on
/// first use (or found mounted by an earlier daemon and emptied), private, mode 0700,
/// capped at [`CONTEXT_TMPFS_SIZE`]. `None` where no tmpfs can be mounted (the disk
/// is used then).
pub(crate) fn context_tmpfs(exec_root: &Path) -> Option<PathBuf> {
    let dir = exec_root.join("builder");
    if fs::create_dir_all(&dir).is_err() {
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
    let mounted = dev(&dir).is_some() && dev(&dir) != dev(exec_root);
    if mounted && berth_sys::fs::statfs_type(&dir).ok() == Some(TMPFS_MAGIC) {
        // Ours, from an earlier daemon: what it holds is contexts of builds that died.
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        return Some(dir);
    }
    let flags = berth_sys::libc::MS_NOSUID | berth_sys::libc::MS_NODEV | berth_sys::libc::MS_NOEXEC;
    let data = format!("size={CONTEXT_TMPFS_SIZE},mode=0700");
    match berth_sys::mount::mount(Some(Path::new("tmpfs")), &dir, Some("tmpfs"), flags, Some(&data)) {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::info!(path = %dir.display(), error = %e, "no tmpfs for build contexts; they are unpacked on disk");
            None
        }
    }
}

/// Receives the context from `body` into a new directory: the tmpfs for a small one
/// (see [`SMALL_BODY`]), else `disk_root`. Returns the build's directory (its
/// `context/` holds the files). The body is read to its end either way.
fn receive(mut body: impl Read, tmpfs: Option<&Path>, disk_root: &Path, max: u64) -> std::result::Result<PathBuf, BuildError> {
    let new_dir = |root: &Path| -> std::result::Result<PathBuf, BuildError> {
        let dir = root.join(format!("{:016x}", rand::random::<u64>()));
        fs::create_dir_all(dir.join("context")).map_err(|e| BuildError::new(e.to_string()))?;
        Ok(dir)
    };
    let mut head = Vec::new();
    let small = match tmpfs {
        Some(_) => {
            let r = (&mut body).take(SMALL_BODY as u64 + 1).read_to_end(&mut head);
            r.is_ok() && head.len() <= SMALL_BODY
        }
        None => false,
    };
    if let (true, Some(t)) = (small, tmpfs) {
        let cap = if max > 0 { max.min(SMALL_CONTEXT) } else { SMALL_CONTEXT };
        if let Ok(dir) = new_dir(t) {
            match receive_context(head.as_slice(), &dir.join("context"), cap) {
                Ok(()) => return Ok(dir),
                Err(e) => {
                    let _ = fs::remove_dir_all(&dir);
                    // Too big for the tmpfs (or it is full): on disk, from the kept body.
                    tracing::debug!(error = %e, "build context does not fit the tmpfs; unpacking on disk");
                }
            }
        }
    }
    let dir = new_dir(disk_root)?;
    let mut reader = io::Read::chain(head.as_slice(), &mut body);
    let received = receive_context(&mut reader, &dir.join("context"), max);
    // Read the body to its end so the client reads the answer.
    let _ = io::copy(&mut body, &mut io::sink());
    if let Err(e) = received {
        let _ = fs::remove_dir_all(&dir);
        return Err(BuildError::new(e));
    }
    Ok(dir)
}

/// A cache entry's image id: `sha256:` and 64 hex digits, then a newline; anything
/// else (a file a machine crash left empty or cut short) is a miss.
fn valid_cache_entry(s: &str) -> Option<String> {
    let id = s.strip_suffix('\n')?;
    let hex = id.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The engine's side of the builder.
pub struct EngineBackend {
    engine: Engine,
    rt: Handle,
    tx: mpsc::Sender<BuildMsg>,
}

/// Reads a tar the engine writes (`docker cp`'s stream) on the build thread, chunk by
/// chunk: nothing of it is held whole.
struct StreamRead<'a> {
    rx: &'a mut crate::fsops::ByteStream,
    rt: &'a Handle,
    cur: bytes::Bytes,
}

impl Read for StreamRead<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rt.block_on(self.rx.recv()) {
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

fn be(e: Error) -> BuildError {
    BuildError::new(e.to_string())
}

/// Reads `path` of an image from its layer dirs (top first); whiteouts end the search.
fn find_in_layers(dirs: &[PathBuf], path: &str) -> Option<(PathBuf, fs::Metadata)> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return dirs.first().and_then(|d| fs::symlink_metadata(d).ok().map(|m| (d.clone(), m)));
    }
    let (parent, base) = match rel.rsplit_once('/') {
        Some((p, b)) => (p.to_string(), b.to_string()),
        None => (String::new(), rel.to_string()),
    };
    for d in dirs {
        let p = d.join(rel);
        if let Ok(m) = fs::symlink_metadata(&p) {
            return Some((p, m));
        }
        if fs::symlink_metadata(d.join(&parent).join(format!(".wh.{base}"))).is_ok()
            || fs::symlink_metadata(d.join(&parent).join(".wh..wh..opq")).is_ok()
        {
            return None;
        }
    }
    None
}

impl EngineBackend {
    fn image_info(&self, img: &berth_image::Image) -> ImageInfo {
        ImageInfo { id: img.id.clone(), raw: img.config_raw.clone(), parent: img.parent.clone() }
    }

    fn cache_dir(&self) -> PathBuf {
        self.engine.config().data_root.join("builder/cache")
    }

    fn layer_dirs(&self, image: &str) -> Option<Vec<PathBuf>> {
        let img = self.engine.images().get(image).ok()?;
        self.engine.images().layer_dirs(&img).ok()
    }
}

impl Backend for EngineBackend {
    fn resolve(&mut self, name: &str, pull: bool, _out: &mut dyn Output) -> std::result::Result<ImageInfo, BuildError> {
        if !pull {
            if let Ok(img) = self.rt.block_on(self.engine.resolve_image(name)) {
                return Ok(self.image_info(&img));
            }
        }
        let r = Reference::parse(name).map_err(|e| BuildError::new(e.to_string()))?;
        let mut rx = self.engine.pull(name, "", "", &berth_image::AuthConfig::default()).map_err(be)?;
        let _ = r;
        while let Some(m) = self.rt.block_on(rx.recv()) {
            match m {
                Ok(msg) => {
                    let _ = self.tx.blocking_send(BuildMsg::Progress(msg));
                }
                Err(e) => return Err(be(e)),
            }
        }
        let img = self.rt.block_on(self.engine.resolve_image(name)).map_err(be)?;
        Ok(self.image_info(&img))
    }

    fn image(&mut self, id: &str) -> Option<ImageInfo> {
        self.engine.images().get(id).ok().map(|i| self.image_info(&i))
    }

    fn create(&mut self, config: &ContainerConfig, host: &HostConfig) -> std::result::Result<String, BuildError> {
        let req = ContainerCreateRequest {
            config: config.clone(),
            host_config: Some(host.clone()),
            networking_config: None,
            runtime: None,
        };
        let r = self.rt.block_on(self.engine.create(None, req)).map_err(be)?;
        Ok(r.id)
    }

    fn run(&mut self, id: &str, out: &mut dyn FnMut(bool, &[u8])) -> std::result::Result<i64, BuildError> {
        let wait = self.engine.wait(id, WaitCondition::NextExit).map_err(be)?;
        self.rt.block_on(self.engine.start(id)).map_err(be)?;
        let opts = LogOptions { stdout: true, stderr: true, follow: true, ..Default::default() };
        if let Ok((_, mut rx)) = self.engine.logs(id, opts) {
            while let Some(e) = self.rt.block_on(rx.recv()) {
                out(e.stream == 2, &e.data);
            }
        }
        let r = self.rt.block_on(wait);
        Ok(r.status_code)
    }

    fn remove(&mut self, id: &str) -> std::result::Result<(), BuildError> {
        self.rt.block_on(self.engine.remove(id, true)).map_err(be)
    }

    fn commit(&mut self, parent: Option<&str>, layer: Layer<'_>, config: serde_json::Value) -> std::result::Result<String, BuildError> {
        let parent = match parent {
            Some(p) => Some(self.engine.images().get(p).map_err(|e| BuildError::new(e.to_string()))?),
            None => None,
        };
        let store = self.engine.images().clone();
        let img = match layer {
            Layer::None => store.commit_config(parent.as_ref(), config, None).map_err(|e| BuildError::new(e.to_string()))?,
            Layer::Layers(diff_ids) => store
                .commit_layers(parent.as_ref(), diff_ids.to_vec(), config, None)
                .map_err(|e| BuildError::new(e.to_string()))?,
            Layer::Tar(path) => {
                let f = fs::File::open(path).map_err(|e| BuildError::new(format!("{}: {e}", path.display())))?;
                store
                    .commit(parent.as_ref(), io::BufReader::new(f), config, None)
                    .map_err(|e| BuildError::new(e.to_string()))?
            }
            Layer::Container(id) => {
                let parent = parent.ok_or_else(|| BuildError::new("a container commit needs a parent image"))?;
                self.rt.block_on(self.engine.commit_container_layer(id, parent, config)).map_err(be)?
            }
        };
        Ok(img.id)
    }

    fn read_file(&mut self, image: &str, path: &str) -> Option<Vec<u8>> {
        let dirs = self.layer_dirs(image)?;
        let (p, m) = find_in_layers(&dirs, path)?;
        if !m.is_file() || m.len() > 4 << 20 {
            return None;
        }
        fs::read(p).ok()
    }

    fn stat(&mut self, image: &str, path: &str) -> Option<bool> {
        let dirs = self.layer_dirs(image)?;
        find_in_layers(&dirs, path).map(|(_, m)| m.is_dir())
    }

    fn export_path(&mut self, image: &str, path: &str, dest: &Path) -> std::result::Result<(), BuildError> {
        let req = ContainerCreateRequest {
            config: ContainerConfig {
                image: image.to_string(),
                cmd: Some(vec!["/bin/true".into()]),
                entrypoint: Some(Vec::new()),
                ..Default::default()
            },
            host_config: Some(HostConfig::default()),
            networking_config: None,
            runtime: None,
        };
        let id = self.rt.block_on(self.engine.create(None, req)).map_err(be)?.id;
        let root = path == "/" || path.is_empty();
        let src = if root { "/.".to_string() } else { path.to_string() };
        let r = (|| -> std::result::Result<(), BuildError> {
            let (_, mut tar) = self
                .rt
                .block_on(self.engine.archive_path(&id, &src))
                .map_err(|e| BuildError::new(format!("COPY failed: {}", e.to_string().replace(&format!(" in container {id}"), ""))))?;
            let into = if root { dest.to_path_buf() } else { dest.parent().map(Path::to_path_buf).unwrap_or_else(|| dest.to_path_buf()) };
            fs::create_dir_all(&into).map_err(|e| BuildError::new(e.to_string()))?;
            let reader = StreamRead { rx: &mut tar.data, rt: &self.rt, cur: bytes::Bytes::new() };
            let mut ar = tar::Archive::new(reader);
            ar.set_preserve_permissions(true);
            for e in ar.entries().map_err(|e| BuildError::new(e.to_string()))? {
                let mut e = e.map_err(|e| BuildError::new(e.to_string()))?;
                e.unpack_in(&into).map_err(|e| BuildError::new(e.to_string()))?;
            }
            drop(ar);
            // How the writer ended: a tar cut short must not pass for a whole one.
            match self.rt.block_on(tar.done) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(BuildError::new(format!("COPY failed: {e}"))),
                Err(_) => Err(BuildError::new("COPY failed: the archive ended early")),
            }
        })();
        let _ = self.rt.block_on(self.engine.remove(&id, true));
        r
    }

    fn fetch(&mut self, url: &str, dest: &Path) -> std::result::Result<(), BuildError> {
        let (mut rx, _) = self
            .rt
            .block_on(berth_image::fetch::fetch(url))
            .map_err(|e| BuildError::new(format!("failed to fetch {url}: {}", e.message)))?;
        let mut f = fs::File::create(dest).map_err(|e| BuildError::new(e.to_string()))?;
        while let Some(chunk) = self.rt.block_on(rx.recv()) {
            let chunk = chunk.map_err(|e| BuildError::new(format!("failed to fetch {url}: {e}")))?;
            io::Write::write_all(&mut f, &chunk).map_err(|e| BuildError::new(e.to_string()))?;
        }
        Ok(())
    }

    fn cache_get(&mut self, key: &str) -> Option<String> {
        let s = fs::read_to_string(self.cache_dir().join(key)).ok()?;
        valid_cache_entry(&s)
    }

    /// Written without syncs (`Volatile`): an entry is a hint, re-derivable by running
    /// the step again. A daemon restart keeps it (the page cache survives); a machine
    /// crash may leave it old, empty or cut short, which [`valid_cache_entry`] reads
    /// as a miss, and an entry naming an image that did not survive is a miss too.
    /// Ten steps were twenty disk flushes before.
    fn cache_put(&mut self, key: &str, image: &str) {
        let dir = self.cache_dir();
        if fs::create_dir_all(&dir).is_ok() {
            let data = format!("{image}\n");
            if let Err(e) = berth_sys::fs::write_atomic_with(&dir.join(key), data.as_bytes(), 0o600, berth_sys::fs::Durability::Volatile) {
                tracing::warn!(error = %e, "build cache entry not written");
            }
        }
    }

    fn tag(&mut self, image: &str, reference: &str) -> std::result::Result<(), BuildError> {
        let r = Reference::parse(reference).map_err(|e| BuildError::new(e.to_string()))?.with_default_tag();
        // A rebuild that changed nothing leaves repositories.json (and its sync) alone.
        if self.engine.images().resolve(&r.familiar()).is_ok_and(|i| i.id == image) {
            return Ok(());
        }
        self.engine.images().tag(image, &r).map_err(|e| BuildError::new(e.to_string()))
    }

    fn now(&mut self) -> String {
        crate::timefmt::now()
    }
}

/// Removes what builds of a previous daemon left under `builder/tmp` (none runs yet).
pub(crate) fn clean_tmp(data_root: &Path) {
    let tmp = data_root.join("builder/tmp");
    if let Err(e) = fs::remove_dir_all(&tmp) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %tmp.display(), error = %e, "leftover build contexts not removed");
        }
    }
}

impl Engine {
    fn builder_root(&self) -> PathBuf {
        self.config().data_root.join("builder")
    }

    /// Checks `t` references before anything is read (Docker's "invalid reference
    /// format" answers before the build starts).
    pub fn check_build_tags(tags: &[String]) -> Result<()> {
        for t in tags {
            Reference::parse(t).map_err(Error::from)?;
        }
        Ok(())
    }

    /// Runs a build: receives the context from `body`, then builds; the returned
    /// channel carries the progress and ends with `Aux` + success lines or an `Error`.
    pub fn build(&self, req: BuildRequest, body: UploadStream) -> mpsc::Receiver<BuildMsg> {
        let (tx, rx) = mpsc::channel(MSG_BACKLOG);
        let engine = self.clone();
        let rt = Handle::current();
        let mut body = body;
        tokio::spawn(async move {
            // The first SMALL_BODY bytes are gathered here, on the connection's side:
            // the docker CLI writes a context in many small chunks (a write per tar
            // header, per file, per padding), and handing each to the build thread
            // was a thread wake-up each.
            let mut head: Vec<u8> = Vec::new();
            let mut failed: Option<io::Error> = None;
            while head.len() <= SMALL_BODY {
                match body.recv().await {
                    Some(Ok(b)) => head.extend_from_slice(&b),
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let _ = tokio::task::spawn_blocking(move || engine.build_blocking(req, head, failed, body, tx, rt)).await;
        });
        rx
    }

    fn build_blocking(&self, req: BuildRequest, head: Vec<u8>, failed: Option<io::Error>, body: UploadStream, tx: mpsc::Sender<BuildMsg>, rt: Handle) {
        let engine = self.clone();
        {
            let tmpfs = engine.inner.build_tmpfs.get_or_init(|| context_tmpfs(&engine.config().exec_root)).clone();
            let disk_root = engine.builder_root().join("tmp");
            let mut dir = None;
            let mut scratch: Option<PathBuf> = None;
            // A bug in the builder must still end the stream with an error the client
            // prints (and the cleanup below must still run), not a silent end.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> std::result::Result<String, BuildError> {
                let rest: Box<dyn Read> = match failed {
                    Some(e) => Box::new(FailedRead(Some(e))),
                    None => Box::new(crate::fsops::UploadReader::new(body)),
                };
                let mut reader = io::Read::chain(io::Cursor::new(head), rest);
                let d = receive(&mut reader, tmpfs.as_deref(), &disk_root, req.max_context)?;
                let ctx = d.join("context");
                // Layer tars and stage exports can be big: always on disk (made on
                // first use).
                scratch = Some(disk_root.join(format!("{:016x}-scratch", rand::random::<u64>())));
                let scratch = scratch.clone().unwrap_or_default();
                dir = Some(d);
                let name = if req.dockerfile.is_empty() { "Dockerfile".to_string() } else { req.dockerfile.clone() };
                let rel = berth_build::context::clean_rel(&name);
                let mut path = ctx.join(&rel);
                if !path.is_file() && req.dockerfile.is_empty() {
                    path = ctx.join("dockerfile");
                }
                let text = fs::read_to_string(&path)
                    .map_err(|_| BuildError::new(format!("Cannot locate specified Dockerfile: {name}")))?;
                let ignore = fs::read_to_string(ctx.join(".dockerignore")).ok();
                let mut backend = EngineBackend { engine: engine.clone(), rt: rt.clone(), tx: tx.clone() };
                let mut out = ChanOut { tx: tx.clone(), quiet: req.quiet };
                let tags = req.opts.tags.clone();
                let id = {
                    let mut ex = Executor::new(&mut backend, &mut out, req.opts.clone(), ctx.clone(), scratch.clone());
                    ex.build(&text, ignore.as_deref())?
                };
                let _ = tx.blocking_send(BuildMsg::Aux(id.clone()));
                let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
                out.stream(&format!("Successfully built {short}\n"));
                for t in &tags {
                    backend.tag(&id, t)?;
                    let familiar = Reference::parse(t).map(|r| r.with_default_tag().familiar()).unwrap_or_else(|_| t.clone());
                    out.stream(&format!("Successfully tagged {familiar}\n"));
                }
                Ok(id)
            }))
            .unwrap_or_else(|p| {
                let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
                tracing::error!(panic = %what, "the build thread panicked");
                Err(BuildError::new(format!("internal error: the build stopped unexpectedly: {what}")))
            });
            match r {
                Ok(id) => {
                    if req.quiet {
                        let _ = tx.blocking_send(BuildMsg::Stream(format!("{id}\n")));
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(BuildMsg::Error { message: e.message, code: e.code });
                }
            }
            // The answer ends before the context is removed: the client does not wait
            // for the cleanup.
            drop(tx);
            for d in [dir, scratch].into_iter().flatten() {
                if let Err(e) = fs::remove_dir_all(&d) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(path = %d.display(), error = %e, "build directory not removed");
                    }
                }
            }
        }
    }

    /// The build cache's entries (`system df`, `builder prune`).
    pub fn build_cache(&self) -> Vec<CacheEntry> {
        let dir = self.builder_root().join("cache");
        let Ok(rd) = fs::read_dir(&dir) else { return Vec::new() };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let key = e.file_name().to_string_lossy().into_owned();
            if key.starts_with('.') {
                continue;
            }
            let image = fs::read_to_string(e.path()).map(|s| s.trim().to_string()).unwrap_or_default();
            let created = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            out.push(CacheEntry { key, image, created });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// `POST /build/prune`: forgets every cache entry (the images stay, as Docker's
    /// classic builder leaves its intermediate images to `image prune`).
    pub fn prune_build_cache(&self) -> Vec<String> {
        let dir = self.builder_root().join("cache");
        let mut removed = Vec::new();
        for e in self.build_cache() {
            if fs::remove_file(dir.join(&e.key)).is_ok() {
                removed.push(e.key);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    fn compress(tool: &str, data: &[u8]) -> Vec<u8> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(tool).arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect(tool);
        let mut stdin = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        let w = std::thread::spawn(move || io::Write::write_all(&mut stdin, &data));
        let out = child.wait_with_output().expect(tool);
        w.join().expect("writer").expect("write");
        assert!(out.status.success(), "{tool}");
        out.stdout
    }

    #[test]
    fn context_plain_gzip_capped_and_refused() {
        let t = tar_of(&[("Dockerfile", b"FROM a\n"), ("d/f", b"x")]);
        let dir = tempfile::tempdir().expect("tempdir");
        receive_context(t.as_slice(), dir.path(), 0).expect("plain");
        assert_eq!(fs::read_to_string(dir.path().join("Dockerfile")).expect("read"), "FROM a\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &t).expect("gz");
        let gz = gz.finish().expect("gz");
        let dir = tempfile::tempdir().expect("tempdir");
        receive_context(gz.as_slice(), dir.path(), 0).expect("gzip");
        assert!(dir.path().join("d/f").is_file());
        let dir = tempfile::tempdir().expect("tempdir");
        let e = receive_context(t.as_slice(), dir.path(), 1024).expect_err("cap");
        assert!(e.contains("exceeds"), "{e}");
        // The docker CLI's rewritten context: the last entry's data, then nothing.
        let mut cut = tar_of(&[("a", b"x"), (".dockerignore", b"Dockerfile")]);
        cut.truncate(512 * 3 + 10);
        let dir = tempfile::tempdir().expect("tempdir");
        receive_context(cut.as_slice(), dir.path(), 0).expect("truncated after the last entry");
        assert_eq!(fs::read_to_string(dir.path().join(".dockerignore")).expect("read"), "Dockerfile");
        // bzip2, xz and zstd as Docker takes them (`docker build - < ctx.tar.xz`).
        for tool in ["bzip2", "xz", "zstd"] {
            let packed = compress(tool, &t);
            let dir = tempfile::tempdir().expect("tempdir");
            receive_context(packed.as_slice(), dir.path(), 0).expect(tool);
            assert_eq!(fs::read_to_string(dir.path().join("d/f")).expect(tool), "x");
        }
        let e = receive_context(&b"BZh91AY"[..], dir.path(), 0).expect_err("broken bzip2");
        assert!(e.contains("Error processing tar file"), "{e}");
    }

    #[test]
    fn small_contexts_go_to_the_tmpfs_others_to_disk() {
        let tmpfs = tempfile::tempdir().expect("tempdir");
        let disk = tempfile::tempdir().expect("tempdir");
        let small = tar_of(&[("Dockerfile", b"FROM a\n")]);
        let d = receive(small.as_slice(), Some(tmpfs.path()), disk.path(), 0).expect("small");
        assert!(d.starts_with(tmpfs.path()), "{}", d.display());
        assert!(d.join("context/Dockerfile").is_file());
        // Without a tmpfs: disk.
        let d = receive(small.as_slice(), None, disk.path(), 0).expect("no tmpfs");
        assert!(d.starts_with(disk.path()));
        // A body larger than SMALL_BODY: disk, and nothing of it lost.
        let big = vec![7u8; SMALL_BODY + 4096];
        let t = tar_of(&[("Dockerfile", b"FROM a\n"), ("big", &big)]);
        let d = receive(t.as_slice(), Some(tmpfs.path()), disk.path(), 0).expect("big body");
        assert!(d.starts_with(disk.path()));
        assert_eq!(fs::read(d.join("context/big")).expect("read"), big);
        // A small body that unpacks past SMALL_CONTEXT (gzip of zeros): starts over on
        // disk from the kept body, and the tmpfs keeps nothing of it.
        let zeros = vec![0u8; SMALL_CONTEXT as usize + 1];
        let t = tar_of(&[("Dockerfile", b"FROM a\n"), ("zeros", &zeros)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &t).expect("gz");
        let gz = gz.finish().expect("gz");
        assert!(gz.len() <= SMALL_BODY);
        let d = receive(gz.as_slice(), Some(tmpfs.path()), disk.path(), 0).expect("expands");
        assert!(d.starts_with(disk.path()));
        assert_eq!(fs::metadata(d.join("context/zeros")).expect("stat").len(), zeros.len() as u64);
        let left: Vec<_> = fs::read_dir(tmpfs.path()).expect("ls").flatten().map(|e| e.path()).collect();
        assert_eq!(left.len(), 1, "only the first small context: {left:?}");
        // The daemon's cap still applies on disk.
        let e = receive(gz.as_slice(), Some(tmpfs.path()), disk.path(), 1 << 20).expect_err("capped");
        assert!(e.message.contains("exceeds"), "{}", e.message);
    }

    #[test]
    fn cache_entries_cut_short_are_misses() {
        let id = format!("sha256:{}", "a".repeat(64));
        let cases: Vec<(String, Option<String>)> = vec![
            (format!("{id}\n"), Some(id.clone())),
            (id.clone(), None),
            (String::new(), None),
            (format!("{}\n", &id[..40]), None),
            (format!("sha256:{}\n", "g".repeat(64)), None),
            (format!("sha512:{}\n", "a".repeat(64)), None),
        ];
        for (text, want) in cases {
            assert_eq!(valid_cache_entry(&text), want, "{text:?}");
        }
    }

    #[test]
    fn layers_lookup_honours_whiteouts() {
        let top = tempfile::tempdir().expect("tempdir");
        let low = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(low.path().join("etc")).expect("mkdir");
        fs::write(low.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("write");
        fs::write(low.path().join("etc/gone"), "x").expect("write");
        fs::create_dir_all(top.path().join("etc")).expect("mkdir");
        fs::write(top.path().join("etc/.wh.gone"), "").expect("write");
        let dirs = vec![top.path().to_path_buf(), low.path().to_path_buf()];
        assert!(find_in_layers(&dirs, "/etc/passwd").is_some_and(|(_, m)| m.is_file()));
        assert!(find_in_layers(&dirs, "/etc").is_some_and(|(_, m)| m.is_dir()));
        assert!(find_in_layers(&dirs, "/etc/gone").is_none());
        assert!(find_in_layers(&dirs, "/nope").is_none());
    }
}
