//! berth-engine is the domain of Berth: containers (records on disk, lifecycle, attach,
//! wait, logs), images (through `berth-image`), and the state that must survive a daemon
//! restart. It speaks in API types (`berth-api`) but knows nothing of HTTP: `berth-daemon`
//! maps its errors to status codes and its streams to response bodies. Container
//! processes are created by `berth-runtime`'s shim, never in this process.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

pub mod api {
    pub use berth_api::*;
}
pub mod build;
mod containers;
pub mod error;
pub mod events;
pub mod fsops;
mod exec;
pub mod health;
pub mod history;
pub mod saveload;
mod lifecycle;
mod networks;
mod dns;
pub mod netplumb;
mod images;
pub mod late_attach;
mod image_list;
pub mod logs;
mod logs_local;
pub mod merge;
pub mod mounts;
pub mod names;
mod record;
pub mod signal;
pub mod state;
pub mod timefmt;
pub mod validate;
mod volume_mounts;
pub mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_image::{ImageStore, RegistryConfig};
use state::Status;

pub use containers::{dir_size, AttachOpts, AttachTicket, WaitCondition};
pub use images::ImportOptions;
pub use exec::{Exec, ExecStream};
pub use error::{Error, ErrorKind, Result};
pub use logs::{LogEntry, LogOptions};
pub use record::{Container, StreamGuard};
/// For the daemon: give freed heap memory back after a large request.
pub use berth_sys::mem::trim_heap;
/// For the daemon's hijacked connections (it links no system crate of its own).
pub use berth_sys::fd::unread_by_peer;

/// Where the engine keeps things and which helpers it runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// The `berth-shim` binary.
    pub shim_bin: PathBuf,
    /// The cgroup file system root (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The parent cgroup of every container.
    pub cgroup_parent: String,
    pub registry: RegistryConfig,
    /// The static init binary for `--init` (Docker's docker-init; tini-static here).
    pub init_path: PathBuf,
    /// OCI runtimes by name (`--add-runtime NAME=PATH`, daemon.json `runtimes`) for
    /// `HostConfig.Runtime`; the built-in [`DEFAULT_RUNTIME`] (the shim's own path) is
    /// not listed.
    pub runtimes: std::collections::BTreeMap<String, PathBuf>,
    /// The daemon's network options (`--bip`, `-b`, `--mtu`, `--iptables`…).
    pub network: berth_network::NetOptions,
}

/// The name of the built-in runtime: the shim creates the container itself.
pub const DEFAULT_RUNTIME: &str = "berth";

impl EngineConfig {
    /// The OCI runtime binary for `HostConfig.Runtime` `name`: `None` for the built-in
    /// one (`""` or [`DEFAULT_RUNTIME`]); unknown names are Docker's 400.
    pub fn runtime_path(&self, name: &str) -> Result<Option<PathBuf>> {
        if name.is_empty() || name == DEFAULT_RUNTIME {
            return Ok(None);
        }
        match self.runtimes.get(name) {
            Some(p) => Ok(Some(p.clone())),
            None => Err(Error::invalid(format!("unknown or invalid runtime name: {name}"))),
        }
    }
}

/// The engine: one per daemon; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: EngineConfig,
    images: ImageStore,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    execs: Mutex<HashMap<String, Arc<exec::Exec>>>,
    events: events::Events,
    volumes: volumes::VolumeStore,
    net: networks::NetState,
    /// The tmpfs small build contexts are unpacked into (`build::context_tmpfs`).
    build_tmpfs: std::sync::OnceLock<Option<PathBuf>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Opens (or creates) the stores under the configured roots and brings every
    /// container record back: running containers whose shim is still alive are
    /// watched again, those that ended while no daemon ran get their exit code.
    pub async fn open(cfg: EngineConfig) -> Result<Engine> {
        // Roots made by older versions (0755) are tightened too.
        let roots = [
            (cfg.data_root.clone(), DATA_ROOT_MODE),
            (cfg.exec_root.clone(), EXEC_ROOT_MODE),
            (cfg.data_root.join("containers"), DIR_MODE),
        ];
        for (dir, mode) in &roots {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            set_mode(dir, *mode)?;
        }
        let image_root = cfg.data_root.join("image");
        let images = tokio::task::spawn_blocking(move || ImageStore::open(&image_root))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)?;
        let volumes = volumes::VolumeStore::open(&cfg.data_root.join("volumes"))?;
        let net_cfg = cfg.clone();
        let net = tokio::task::spawn_blocking(move || networks::NetState::open(&net_cfg))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        let engine = Engine {
            inner: Arc::new(Inner {
                volumes,
                net,
                cfg,
                images,
                containers: Mutex::new(HashMap::new()),
                execs: Mutex::new(HashMap::new()),
                events: events::Events::default(),
                build_tmpfs: std::sync::OnceLock::new(),
            }),
        };
        engine.restore().await?;
        engine.dns_start().await;
        // Contexts of builds a previous daemon did not finish.
        build::clean_tmp(&engine.config().data_root);
        Ok(engine)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    pub fn events(&self) -> &events::Events {
        &self.inner.events
    }

    /// Emits a container event with Docker's attributes: image, name, the labels, and
    /// `extra` (exitCode, signal, …).
    pub(crate) fn container_event(&self, rec: &record::Record, action: &str, extra: &[(&str, String)]) {
        let mut attrs: std::collections::BTreeMap<String, String> =
            rec.config.labels.clone().unwrap_or_default().into_iter().collect();
        attrs.insert("image".into(), rec.config.image.clone());
        attrs.insert("name".into(), rec.name.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        self.inner.events.emit("container", action, &rec.id, attrs);
    }

    fn init_binary(&self) -> Result<PathBuf> {
        let p = &self.inner.cfg.init_path;
        if p.is_file() {
            Ok(p.clone())
        } else {
            Err(Error::invalid(format!(
                "failed to find docker-init binary for --init: {} not found (install tini-static or set --init-path)",
                p.display()
            )))
        }
    }

    fn containers_dir(&self) -> PathBuf {
        self.inner.cfg.data_root.join("containers")
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    fn socket_path(&self, id: &str) -> PathBuf {
        self.inner.cfg.exec_root.join(format!("{id}.sock"))
    }

    fn spec_path(&self, id: &str) -> PathBuf {
        self.inner.cfg.exec_root.join(format!("{id}.spec.json"))
    }

    /// What the exec root holds for container `id` (the spec, the shim's socket and
    /// log, the OCI bundle of `--runtime`), whether or not it exists.
    fn exec_root_files(&self, id: &str) -> Vec<PathBuf> {
        let root = &self.inner.cfg.exec_root;
        ["spec.json", "sock", "shim.log", "bundle"]
            .iter()
            .map(|ext| root.join(format!("{id}.{ext}")))
            .collect()
    }

    /// All containers, newest first.
    pub fn all_containers(&self) -> Vec<Arc<Container>> {
        let mut v: Vec<Arc<Container>> = lock(&self.inner.containers).values().cloned().collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.created_key()));
        v
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn lookup(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let map = lock(&self.inner.containers);
        if let Some(c) = map.get(name_or_id) {
            return Ok(c.clone());
        }
        let bare = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if let Some(c) = map.values().find(|c| c.name() == bare) {
            return Ok(c.clone());
        }
        if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut hits = map.values().filter(|c| c.id.starts_with(bare));
            if let Some(first) = hits.next() {
                if hits.next().is_some() {
                    return Err(Error::invalid(format!(
                        "Multiple IDs found with provided prefix: {bare}"
                    )));
                }
                return Ok(first.clone());
            }
        }
        Err(Error::not_found(format!("No such container: {name_or_id}")))
    }

    fn image_users(&self, image_id: &str) -> Option<String> {
        lock(&self.inner.containers)
            .values()
            .find(|c| c.image_id() == image_id)
            .map(|c| c.id[..12].to_string())
    }

    /// Daemon-wide counts for `/info`: (total, running, paused, stopped).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let all = self.all_containers();
        let mut running = 0;
        let mut paused = 0;
        for c in &all {
            match c.status() {
                Status::Running | Status::Restarting => running += 1,
                Status::Paused => paused += 1,
                _ => {}
            }
        }
        (all.len(), running, paused, all.len() - running - paused)
    }
}

/// The data root: 0711 as Docker's, so nothing in it can be listed; what lies below
/// is closed by the 0710/0700 directories under it.
pub const DATA_ROOT_MODE: u32 = 0o711;
/// `containers/`, `containers/<id>` and the writable layer's parent: Docker's 0710
/// (root and its group only; the container's processes never see these paths, they
/// run in their own mount namespace after pivot_root).
pub const DIR_MODE: u32 = 0o710;
/// The exec root holds the run specs (with the containers' Env) and the shims'
/// sockets: Docker's 0700.
pub const EXEC_ROOT_MODE: u32 = 0o700;
/// State files that carry the container's configuration (Env, secrets in it): 0600.
pub const STATE_FILE_MODE: u32 = 0o600;

/// Sets `path`'s permission bits (an existing directory of an older version too).
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| Error::io("chmod", path, e))
}

/// Writes `data` to `path` atomically at a chosen sync level ([`berth_sys::fs::
/// write_atomic_with`]: user intent `Durable`, runtime state `Complete`, the exec root's
/// files `Volatile`; docs/architecture.md, "Durable writes"), readable by root only
/// ([`STATE_FILE_MODE`]): the records and run specs hold the containers' Env.
pub(crate) fn write_atomic_as(path: &Path, data: &[u8], d: berth_sys::fs::Durability) -> Result<()> {
    berth_sys::fs::write_atomic_with(path, data, STATE_FILE_MODE, d).map_err(|e| Error::io(e.op, &e.path, e.source))
}

/// The CPUs this daemon may use, read once (as Go's `runtime.NumCPU`, which dockerd's
/// limits and stats use): reading it means reading cgroup files, and it does not change.
pub(crate) fn host_cpus() -> usize {
    static NCPU: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *NCPU.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}
