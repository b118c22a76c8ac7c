//! A container's record (what survives restarts, in `config.v2.json`) and its live
//! state: the exit notifications waiters subscribe to and the attach streams waiting
//! for the next start.

use std::path::Path;
use std::sync::Mutex;

use berth_api::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::containers::AttachOpts;
use crate::error::{Error, Result};
use crate::lock;
use crate::state::{State, Status};

/// What is written to `containers/<id>/config.v2.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// `sha256:<hex>` of the image.
    pub image: String,
    pub state: State,
    pub restart_count: i64,
    pub shim_pid: i32,
    /// Stopped or killed by a user: restart policies (except `always` on daemon start)
    /// leave it alone.
    pub manually_stopped: bool,
    /// Every mount, resolved at create (volume names and data paths, `--volumes-from`,
    /// image `VOLUME`s); `None` in records of older versions, whose mounts are parsed
    /// from the HostConfig.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_points: Option<Vec<crate::mounts::MountSpec>>,
    /// The container's endpoints by network name: configuration always, addresses while
    /// it runs. Empty for `container:` mode (and for records older than networks).
    pub endpoints: std::collections::BTreeMap<String, berth_network::EndpointRecord>,
    /// The host ports published while it runs (empty when stopped).
    pub ports: Vec<berth_network::ports::Bound>,
}

impl Record {
    /// The container's mounts (see [`Record::mount_points`]).
    pub fn mounts(&self) -> Vec<crate::mounts::MountSpec> {
        match &self.mount_points {
            Some(m) => m.clone(),
            None => crate::mounts::of(&self.host_config).unwrap_or_default(),
        }
    }
}

/// What waiters watch: bumped on every exit and on removal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub exits: u64,
    pub exit_code: i64,
    pub running: bool,
    pub removed: bool,
}

pub(crate) struct PendingAttach {
    pub opts: AttachOpts,
    pub tx: oneshot::Sender<(std::os::unix::net::UnixStream, StreamGuard)>,
}

/// Attach bookkeeping, under one lock so an attach never falls between a start taking
/// the pending list and the shim's socket going live.
#[derive(Default)]
pub(crate) struct Attaches {
    pub pending: Vec<PendingAttach>,
    /// The shim's socket accepts attaches (between start and exit).
    pub live: bool,
    /// Set by a start that no attach was waiting for although the container was
    /// created to be attached to: see [`crate::late_attach`].
    pub late: Option<crate::late_attach::Unclaimed>,
}

pub struct Container {
    pub id: String,
    pub(crate) rec: Mutex<Record>,
    pub(crate) notice: watch::Sender<Notice>,
    pub(crate) attaches: Mutex<Attaches>,
    /// Serialises start / stop / remove of this container.
    pub(crate) op: tokio::sync::Mutex<()>,
    /// Restart back-off in ms (in memory, as Docker's restart manager).
    pub(crate) backoff_ms: Mutex<u64>,
    /// How many clients' attach streams are being relayed now (see [`StreamGuard`]).
    streams: watch::Sender<usize>,
    /// The healthcheck monitor while one runs (crate::health).
    pub(crate) health: Mutex<Option<crate::health::Monitor>>,
}

/// Held by the daemon while it relays a container's output to an attached client. The
/// exit handling waits (bounded) until every guard is gone before waiters wake, as
/// Docker drains its attached streams before the container counts as stopped: a client
/// that ends on `wait` (`docker attach`, `run`) has had all the output by then.
pub struct StreamGuard(watch::Sender<usize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Container {
    pub(crate) fn new(rec: Record) -> Container {
        let notice = Notice {
            exits: 0,
            exit_code: rec.state.exit_code,
            running: rec.state.status.is_running(),
            removed: false,
        };
        Container {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            notice: watch::channel(notice).0,
            attaches: Mutex::new(Attaches::default()),
            op: tokio::sync::Mutex::new(()),
            backoff_ms: Mutex::new(0),
            streams: watch::channel(0).0,
            health: Mutex::new(None),
        }
    }

    /// Marks an attach stream as being relayed until the guard drops.
    pub fn stream_guard(&self) -> StreamGuard {
        self.streams.send_modify(|n| *n += 1);
        StreamGuard(self.streams.clone())
    }

    /// Waits until no attach stream is being relayed, at most `timeout`.
    pub(crate) async fn streams_drained(&self, timeout: std::time::Duration) {
        let mut rx = self.streams.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
    }

    pub fn record(&self) -> Record {
        lock(&self.rec).clone()
    }

    pub fn name(&self) -> String {
        lock(&self.rec).name.clone()
    }

    pub fn status(&self) -> Status {
        lock(&self.rec).state.status
    }

    pub fn is_running(&self) -> bool {
        lock(&self.rec).state.status.is_running()
    }

    pub fn tty(&self) -> bool {
        lock(&self.rec).config.tty
    }

    pub fn image_id(&self) -> String {
        lock(&self.rec).image.clone()
    }

    pub(crate) fn created_key(&self) -> String {
        lock(&self.rec).created.clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Notice> {
        self.notice.subscribe()
    }

    /// Applies `f` to the record and writes it to `dir/config.v2.json` (tmp + rename).
    pub(crate) fn update(&self, dir: &Path, f: impl FnOnce(&mut Record)) -> Result<Record> {
        self.write(dir, f, berth_sys::fs::Durability::Durable)
    }

    /// [`Container::update`] for runtime state (running, exited, paused, restarting):
    /// complete but not directory-synced, since a machine crash ends the container
    /// anyway and the restore reconciles its state with the shim.
    pub(crate) fn update_state(&self, dir: &Path, f: impl FnOnce(&mut Record)) -> Result<Record> {
        self.write(dir, f, berth_sys::fs::Durability::Complete)
    }

    /// [`Container::update`] for a probe's result: renamed into place but not synced
    /// (a probe runs every few seconds; after a machine crash the container is gone and
    /// its next start resets the status anyway).
    pub(crate) fn update_health(&self, dir: &Path, f: impl FnOnce(&mut Record)) -> Result<Record> {
        self.write(dir, f, berth_sys::fs::Durability::Volatile)
    }

    fn write(&self, dir: &Path, f: impl FnOnce(&mut Record), d: berth_sys::fs::Durability) -> Result<Record> {
        let mut rec = lock(&self.rec);
        f(&mut rec);
        let data = serde_json::to_vec(&*rec).map_err(|e| Error::internal(e.to_string()))?;
        crate::write_atomic_as(&dir.join("config.v2.json"), &data, d)?;
        Ok(rec.clone())
    }
}
