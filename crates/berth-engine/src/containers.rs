//! The container lifecycle: create, start (through the shim), attach, wait, kill,
//! stop, remove, rename, list, inspect, and restoring state when the daemon starts.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_api::{
    parse_filters, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect,
    ContainerSummary, GraphDriver, MountPoint,
    SummaryHostConfig, SummaryNetworkSettings, WaitError, WaitResponse, ZERO_TIME,
};
use berth_runtime::client;
use berth_runtime::security::{SeccompMode, SecuritySpec};
use berth_runtime::spec::{CgroupSpec, LogFormat, Mount, MountKind, RunSpec, Rootfs};
use chrono::Utc;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::record::{Container, Notice, PendingAttach, Record};
use crate::state::Status;
use crate::{lock, merge, names, signal, timefmt, Engine};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An attach request that was accepted: the stream comes now (running container) or at
/// the next start (created or stopped container, as `docker run` attaches before start).
/// The guard with each stream counts it from the moment it is connected to a run, so
/// that run's exit waits for its relay (see [`crate::StreamGuard`]).
pub enum AttachTicket {
    Now((UnixStream, crate::StreamGuard)),
    Later(oneshot::Receiver<(UnixStream, crate::StreamGuard)>),
    /// A late attach (see [`crate::late_attach`]): serve the log from `since` (unix
    /// seconds), following it until the container exits, instead of a shim stream.
    Replay { since: f64 },
}

impl AttachTicket {
    /// The shim stream, or None when the container never started.
    pub async fn stream(self) -> Option<(UnixStream, crate::StreamGuard)> {
        match self {
            AttachTicket::Now(s) => Some(s),
            AttachTicket::Later(rx) => rx.await.ok(),
            AttachTicket::Replay { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Result<WaitCondition> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::invalid(format!("invalid condition: \"{other}\""))),
        }
    }
}

fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn image_config_to_api(img: &berth_image::Image) -> berth_api::ContainerConfig {
    img.config
        .config
        .as_ref()
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// How long an exit waits for the output of attached clients to be relayed.
const STREAM_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `kill` with SIGKILL waits for the exit to be recorded (Docker waits 2 s;
/// more here so a loaded host does not turn a kill that worked into an error).
const KILL_EXIT_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// `POST /containers/create`.
    pub async fn create(
        &self,
        name: Option<&str>,
        mut req: ContainerCreateRequest,
    ) -> Result<ContainerCreateResponse> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => names::validate(n).map_err(Error::invalid)?.to_string(),
            None => loop {
                let n = names::generate();
                if self.lookup(&n).is_err() {
                    break n;
                }
            },
        };
        if req.config.image.is_empty() {
            return Err(Error::invalid("config cannot be empty in order to create a container"));
        }
        crate::validate::container_config(&req.config)?;
        if let Some(hc) = &req.host_config {
            crate::validate::host_config(hc, crate::host_cpus())?;
            // Docker looks the network up before the image.
            let mode = hc.network_mode.as_str();
            if !mode.is_empty() && mode != "default" && !mode.starts_with("container:") {
                self.nets().find(mode)?;
            }
        }
        let image = self.resolve_image(&req.config.image).await?;
        let id = random_id();
        {
            // Reserve the name under the map lock so two creates cannot both take it.
            let map = lock(&self.inner.containers);
            if let Some(other) = map.values().find(|c| c.name() == name) {
                return Err(Error::conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        merge::merge(&mut req.config, &image_config_to_api(&image));
        let (path, args) = merge::command(&req.config)
            .ok_or_else(|| Error::invalid("No command specified"))?;
        if req.config.hostname.is_empty() {
            req.config.hostname = id[..12].to_string();
        }
        let mut host_config = req.host_config.unwrap_or_default();
        if host_config.network_mode.is_empty() || host_config.network_mode == "default" {
            host_config.network_mode = "bridge".into();
        }
        if host_config.log_config.kind.is_empty() {
            host_config.log_config.kind = "json-file".into();
        }
        if host_config.log_config.config.is_none() {
            host_config.log_config.config = Some(BTreeMap::new());
        }
        crate::mounts::check_sources(&crate::mounts::of(&host_config)?)?;
        crate::lifecycle::validate_restart_policy(&host_config)?;
        security_spec(&host_config)?;
        log_options(&host_config)?;
        // Docker records the runtime's name, the default one too.
        let runtime = host_config
            .runtime
            .take()
            .filter(|r| !r.is_empty())
            .or(req.runtime.take().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| crate::DEFAULT_RUNTIME.into());
        self.inner.cfg.runtime_path(&runtime)?;
        host_config.runtime = Some(runtime);
        // Docker shows the paths it masks in the inspect of unprivileged containers.
        if !host_config.privileged {
            let defaults = |d: &[&str]| Some(d.iter().map(|p| p.to_string()).collect::<Vec<_>>());
            if host_config.masked_paths.is_none() {
                host_config.masked_paths = defaults(berth_runtime::security::DEFAULT_MASKED_PATHS);
            }
            if host_config.readonly_paths.is_none() {
                host_config.readonly_paths = defaults(berth_runtime::security::DEFAULT_READONLY_PATHS);
            }
        }
        // Last before anything is written: volumes made here are removed again if the
        // create fails after this.
        let (mount_points, made_volumes) = self.resolve_mounts(&host_config, &req.config).await?;
        let mut rec = Record {
            id: id.clone(),
            name: name.clone(),
            created: timefmt::now(),
            path,
            args,
            config: req.config,
            host_config,
            image: image.id.clone(),
            mount_points: Some(mount_points),
            ..Default::default()
        };
        let endpoints_config = req.networking_config.as_ref().and_then(|n| n.endpoints_config.as_ref());
        let pinned = rec.mounts();
        let r = match self.plan_endpoints(&rec, endpoints_config) {
            Ok(endpoints) => {
                rec.endpoints = endpoints;
                self.create_record(rec, image.id.clone()).await
            }
            Err(e) => Err(e),
        };
        self.unpin_mounts(&pinned);
        if r.is_err() {
            self.forget_volumes(&made_volumes);
        }
        r
    }

    /// Writes a new container's directory and record (built aside, then renamed into
    /// place) and registers it.
    async fn create_record(&self, rec: Record, image_id: String) -> Result<ContainerCreateResponse> {
        let (id, name) = (rec.id.clone(), rec.name.clone());
        let dir = self.container_dir(&id);
        // Before any address is known: checks `--add-host` and `--link` in Docker's words.
        let (hosts, resolv) = self.container_etc_files(&rec)?;
        let hostname = rec.config.hostname.clone();
        let data = serde_json::to_vec(&rec).map_err(|e| Error::internal(e.to_string()))?;
        // Build in a temp dir, rename into place: a crash never leaves half a container.
        let tmp = dir.with_file_name(format!(".creating-{id}"));
        let tmp2 = tmp.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let tmp = tmp2;
            let _ = std::fs::remove_dir_all(&tmp);
            make_container_dirs(&tmp)?;
            let files = [
                ("hostname", format!("{hostname}\n")),
                ("hosts", hosts),
                ("resolv.conf", resolv),
            ];
            for (f, content) in files {
                let p = tmp.join(f);
                std::fs::write(&p, content).map_err(|e| Error::io("write", &p, e))?;
            }
            // The record's data is on disk before the directory appears under its name;
            // the directory entries are synced after the rename, off the request's path.
            crate::write_atomic_as(&tmp.join("config.v2.json"), &data, berth_sys::fs::Durability::Complete)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        if let Err(e) = self.copy_up(&image_id, rec.mount_points.as_deref().unwrap_or_default(), &tmp).await {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let c = Arc::new(Container::new(rec));
        {
            let mut map = lock(&self.inner.containers);
            if let Some(other) = map.values().find(|o| o.name() == name) {
                let msg = format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                );
                drop(map);
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::conflict(msg));
            }
            // The rename happens under the map lock, after the name check: were the
            // record renamed into place first, a SIGKILL before a losing create
            // removed it again would bring back two containers with one name.
            if let Err(e) = std::fs::rename(&tmp, &dir) {
                drop(map);
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::io("rename", &dir, e));
            }
            map.insert(id.clone(), c.clone());
        }
        // The new directory's entries and its name in the containers directory are
        // synced in the background: the answer does not wait for two more disk flushes
        // (a machine crash in that millisecond may lose the container, never leave half
        // of one: the record was synced before the rename).
        let (new_dir, parent) = (dir.clone(), dir.parent().map(std::path::Path::to_path_buf));
        let sync_id = id.clone();
        tokio::task::spawn_blocking(move || {
            let synced = berth_sys::fs::fsync_dir(&new_dir).and_then(|()| match &parent {
                Some(p) => berth_sys::fs::fsync_dir(p),
                None => Ok(()),
            });
            if let Err(e) = synced {
                tracing::warn!(container = %sync_id, "syncing the new container's directory: {e}");
            }
        });
        self.container_event(&c.record(), "create", &[]);
        Ok(ContainerCreateResponse { id, warnings: Vec::new() })
    }

    fn run_spec(&self, rec: &Record, lower: Vec<PathBuf>) -> Result<RunSpec> {
        let dir = self.container_dir(&rec.id);
        let mut mounts = vec![
            Mount {
                source: dir.join("hosts"),
                destination: "/etc/hosts".into(),
                kind: MountKind::Bind,
                readonly: false,
                options: Vec::new(),
            },
            Mount {
                source: dir.join("hostname"),
                destination: "/etc/hostname".into(),
                kind: MountKind::Bind,
                readonly: false,
                options: Vec::new(),
            },
            Mount {
                source: dir.join("resolv.conf"),
                destination: "/etc/resolv.conf".into(),
                kind: MountKind::Bind,
                readonly: false,
                options: Vec::new(),
            },
        ];
        mounts.extend(rec.mounts().iter().map(crate::mounts::MountSpec::to_runtime));
        for (dst, opts) in rec.host_config.tmpfs.iter().flatten() {
            // Docker's defaults (noexec,nosuid,nodev unless the options say otherwise).
            mounts.push(Mount::tmpfs(&format!("{dst}:{opts}")));
        }
        let hc = &rec.host_config;
        let log = log_options(hc)?;
        let console_size = match hc.console_size.as_deref() {
            Some([h, w]) if *h > 0 && *w > 0 => Some((*h as u16, *w as u16)),
            _ => None,
        };
        let mut argv = vec![rec.path.clone()];
        argv.extend(rec.args.iter().cloned());
        Ok(RunSpec {
            id: rec.id.clone(),
            rootfs: Rootfs {
                lower,
                upper: dir.join("fs/upper"),
                work: dir.join("fs/work"),
                merged: dir.join("fs/merged"),
            },
            args: argv,
            env: {
                // Legacy `--link` variables come first: the container's own win.
                let mut env = self.link_env(rec);
                env.extend(rec.config.env.clone().unwrap_or_default());
                env
            },
            cwd: rec.config.working_dir.clone(),
            user: rec.config.user.clone(),
            group_add: hc.group_add.clone().unwrap_or_default(),
            hostname: rec.config.hostname.clone(),
            tty: rec.config.tty,
            open_stdin: rec.config.open_stdin,
            stdin_once: rec.config.stdin_once,
            console_size,
            mounts,
            cgroup: self.cgroup_spec(rec),
            log_path: self.log_file(&rec.id, log.driver).unwrap_or_default(),
            exit_path: dir.join("exit.json"),
            socket_path: self.socket_path(&rec.id),
            shim_log_path: Some(self.inner.cfg.exec_root.join(format!("{}.shim.log", rec.id))),
            ulimits: hc
                .ulimits
                .iter()
                .flatten()
                .map(|u| berth_runtime::spec::Ulimit { name: u.name.clone(), soft: u.soft, hard: u.hard })
                .collect(),
            readonly_rootfs: hc.readonly_rootfs,
            init: if hc.init == Some(true) { Some(self.init_binary()?) } else { None },
            log_max_size: log.max_size,
            log_max_file: log.max_file,
            log_format: if log.driver == LogDriver::Local { LogFormat::Local } else { LogFormat::JsonFile },
            log_compress: log.compress,
            security: security_spec(hc)?,
            runtime: self.inner.cfg.runtime_path(hc.runtime.as_deref().unwrap_or(""))?,
            // Set by the start from what the network setup made.
            network: berth_runtime::spec::NetMode::Private,
            ports: Vec::new(),
        })
    }

    /// The container's cgroup and its limits from the HostConfig.
    pub(crate) fn cgroup_spec(&self, rec: &Record) -> CgroupSpec {
        let hc = &rec.host_config;
        let positive = |v: i64| (v > 0).then_some(v);
        let cpu_quota = if hc.nano_cpus > 0 { Some(hc.nano_cpus / 10_000) } else { positive(hc.cpu_quota) };
        let cpu_period = if hc.nano_cpus > 0 { Some(100_000) } else { positive(hc.cpu_period) };
        CgroupSpec {
            root: self.inner.cfg.cgroup_root.clone(),
            parent: self.inner.cfg.cgroup_parent.clone(),
            name: rec.id.clone(),
            memory: positive(hc.memory),
            memory_swap: (hc.memory_swap != 0).then_some(hc.memory_swap),
            cpu_shares: positive(hc.cpu_shares),
            cpu_quota,
            cpu_period,
            cpuset_cpus: (!hc.cpuset_cpus.is_empty()).then(|| hc.cpuset_cpus.clone()),
            pids_limit: hc.pids_limit.filter(|p| *p > 0),
        }
    }

    /// The json-file log's path (Docker's `LogPath`).
    pub(crate) fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    /// The live log file of a container with `driver`; None for `none`.
    pub(crate) fn log_file(&self, id: &str, driver: LogDriver) -> Option<PathBuf> {
        match driver {
            LogDriver::JsonFile => Some(self.log_path(id)),
            LogDriver::Local => Some(self.container_dir(id).join("local-logs").join("container.log")),
            LogDriver::None => None,
        }
    }

    /// Takes the container's `op` lock, then checks that the container still exists: an
    /// operation queued behind a `rm` must not run on the removed container (it would
    /// recreate its files); it gets Docker's 404 instead.
    pub(crate) async fn op_lock<'a>(
        &self,
        c: &'a Container,
        name_or_id: &str,
    ) -> Result<tokio::sync::MutexGuard<'a, ()>> {
        let guard = c.op.lock().await;
        if lock(&self.inner.containers).get(&c.id).is_none() {
            return Err(Error::not_found(format!("No such container: {name_or_id}")));
        }
        Ok(guard)
    }

    /// `POST /containers/{id}/start`. A `--rm` container whose start fails is removed,
    /// as Docker does (a client waiting for `condition=removed` would hang otherwise).
    pub async fn start(&self, name_or_id: &str) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let r = self.start_container(&c, name_or_id).await;
        if let Err(e) = &r {
            // NotFound: removed while this start waited; there is nothing to record.
            if !matches!(e.kind(), crate::ErrorKind::NotModified | crate::ErrorKind::NotFound) {
                // Docker records the failure: 127 (not found), 126 (not executable),
                // else 128, and the message, in State.
                let code = start_failure_code(e);
                let _ = c.update_state(&self.container_dir(&c.id), |r| {
                    r.state.exit_code = code;
                    r.state.error = e.message.clone();
                });
                if c.record().host_config.auto_remove {
                    let _ = self.remove_container(&c.id, true, true).await;
                }
            }
        }
        r
    }

    async fn start_container(&self, c: &Arc<Container>, name_or_id: &str) -> Result<()> {
        let _op = self.op_lock(c, name_or_id).await?;
        let rec = c.record();
        if !rec.state.status.can_start() {
            return Err(Error::new(crate::ErrorKind::NotModified, "container already started"));
        }
        let image = self.inner.images.get(&rec.image).map_err(Error::from)?;
        let lower = self
            .inner
            .images
            .layer_dirs(&image)
            .map_err(Error::from)?;
        self.prepare_mounts(&rec)?;
        let mut spec = self.run_spec(&rec, lower)?;
        // The network first (netns, veths, addresses, published ports): the spec joins it.
        let (eng, r2) = (self.clone(), rec.clone());
        let t0 = std::time::Instant::now();
        let plumbed = tokio::task::spawn_blocking(move || eng.net_setup(&r2))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        tracing::debug!(container = %rec.id, elapsed_us = t0.elapsed().as_micros() as u64, "network set up");
        spec.network = plumbed.network.clone();
        spec.ports = plumbed.host_ports.clone();
        let undo_net = |eng: &Engine| {
            let (eng, id, eps) = (eng.clone(), rec.id.clone(), plumbed.endpoints.clone());
            async move {
                let _ = tokio::task::spawn_blocking(move || eng.net_teardown(&id, &eps)).await;
            }
        };
        let spec_path = self.spec_path(&rec.id);
        let spec_json = serde_json::to_vec(&spec).map_err(|e| Error::internal(e.to_string()))?;
        // The exec root is a tmpfs: a machine crash takes it (and the container) away.
        if let Err(e) = crate::write_atomic_as(&spec_path, &spec_json, berth_sys::fs::Durability::Volatile) {
            undo_net(self).await;
            return Err(e);
        }
        let _ = std::fs::remove_file(&spec.exit_path);
        let shim_bin = self.inner.cfg.shim_bin.clone();
        let sp = spec_path.clone();
        let spawned = tokio::task::spawn_blocking(move || client::spawn(&shim_bin, &sp))
            .await
            .map_err(|e| Error::internal(e.to_string()));
        let started = match spawned {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                // The shim undid its own work (cgroup, socket) before reporting.
                let _ = std::fs::remove_file(&spec_path);
                undo_net(self).await;
                // A host port taken between the engine's check and the shim's bind.
                let text = e.to_string();
                if let Some(i) = text.find(berth_runtime::shim::PORT_ERROR_PREFIX) {
                    let what = &text[i + berth_runtime::shim::PORT_ERROR_PREFIX.len()..];
                    let ep = plumbed.endpoints.values().find(|e| e.is_attached()).map(|e| e.endpoint_id.clone()).unwrap_or_default();
                    return Err(Error::internal(format!(
                        "driver failed programming external connectivity on endpoint {} ({ep}): {}",
                        rec.name,
                        what.lines().next().unwrap_or(what)
                    )));
                }
                return Err(start_error(e));
            }
            Err(e) => {
                undo_net(self).await;
                return Err(e);
            }
        };
        let socket = spec.socket_path.clone();
        // Hand every attach that was waiting for this start its stream before the
        // process runs, so none of its output is missed.
        let pending: Vec<PendingAttach> = {
            let mut a = lock(&c.attaches);
            a.live = true;
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let (out, err) = (rec.config.attach_stdout, rec.config.attach_stderr);
            a.late = crate::late_attach::Unclaimed::at_start(!a.pending.is_empty(), out, err, since, std::time::Instant::now());
            std::mem::take(&mut a.pending)
        };
        for p in pending {
            let s = socket.clone();
            let opts = p.opts;
            if let Ok(Ok(stream)) =
                tokio::task::spawn_blocking(move || client::attach(&s, opts.stdin, opts.stdout, opts.stderr)).await
            {
                let _ = p.tx.send((stream, c.stream_guard()));
            }
        }
        // /etc/hosts and resolv.conf with the addresses the endpoints got (written in
        // place: the container's bind mounts hold the files), before its process runs.
        let mut with_addrs = c.record();
        with_addrs.endpoints = plumbed.endpoints.clone();
        if let Err(e) = self.write_etc_files(&with_addrs) {
            tracing::warn!(container = %rec.id, "writing /etc/hosts and resolv.conf: {e}");
        }
        let s = socket.clone();
        let go = tokio::task::spawn_blocking(move || client::go(&s))
            .await
            .map_err(|e| Error::internal(e.to_string()))?;
        let shim = started.shim;
        if let Err(e) = go {
            lock(&c.attaches).live = false;
            self.undo_failed_start(&rec.id, shim).await;
            undo_net(self).await;
            return Err(start_error(e));
        }
        let dir = self.container_dir(&rec.id);
        let shim_pid = shim.id() as i32;
        let (endpoints, bound) = (plumbed.endpoints, plumbed.bound);
        c.update_state(&dir, |r| {
            r.endpoints = endpoints;
            r.ports = bound;
            r.state.status = Status::Running;
            r.state.pid = started.pid as i64;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.started_at = timefmt::now();
            r.state.finished_at = ZERO_TIME.into();
            r.shim_pid = shim_pid;
            r.manually_stopped = false;
        })?;
        c.notice.send_modify(|n| n.running = true);
        self.volume_mount_events(&c.record(), "mount");
        self.container_event(&c.record(), "start", &[]);
        self.monitor(c.clone(), Some(shim));
        self.health_init(c);
        Ok(())
    }

    /// After a start that failed at `go` (execve: E2BIG, exec format error…): the init
    /// has exited or is killed now, and the shim, left to finish, removes the cgroup
    /// and its socket itself. Killing the shim instead would leak both (the cgroup in
    /// every v1 hierarchy). Bounded: a shim that does not finish is killed, and what it
    /// would have removed is removed here.
    async fn undo_failed_start(&self, id: &str, mut shim: std::process::Child) {
        let socket = self.socket_path(id);
        let spec = self.spec_path(id);
        let cg = self.cgroup_of(id);
        let undo = tokio::task::spawn_blocking(move || {
            let _ = client::kill(&socket, 9);
            let deadline = std::time::Instant::now() + SHIM_FINISH_TIMEOUT;
            loop {
                match shim.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                    Ok(None) => {
                        let _ = shim.kill();
                        let _ = shim.wait();
                        break;
                    }
                }
            }
            let _ = std::fs::remove_file(&socket);
            let _ = std::fs::remove_file(&spec);
            if let Some(cg) = cg {
                remove_cgroup(&cg);
            }
        });
        let _ = undo.await;
    }

    /// Watches a running container's shim until the container exits.
    fn monitor(&self, c: Arc<Container>, shim: Option<std::process::Child>) {
        let engine = self.clone();
        let socket = self.socket_path(&c.id);
        let exit_path = self.container_dir(&c.id).join("exit.json");
        tokio::spawn(async move {
            let info = tokio::task::spawn_blocking(move || {
                let r = client::wait(&socket);
                if let Some(mut child) = shim {
                    let _ = child.wait();
                }
                r.ok().or_else(|| client::read_exit(&exit_path))
            })
            .await
            .ok()
            .flatten();
            engine.on_exit(&c, info).await;
        });
    }

    async fn on_exit(&self, c: &Arc<Container>, info: Option<berth_runtime::ExitInfo>) {
        let (code, oom, finished) = match info {
            Some(i) => (i.exit_code as i64, i.oom_killed, i.finished_at),
            None => (255, false, timefmt::now()),
        };
        lock(&c.attaches).live = false;
        // The shim has written the last output to the attach sockets; let the daemon
        // relay it to the clients before the container counts as exited (Docker waits
        // up to 2 s for its attached streams too).
        c.streams_drained(STREAM_DRAIN_TIMEOUT).await;
        let dir = self.container_dir(&c.id);
        let health_closed = self.health_close(c);
        // Docker releases the endpoints at exit (and attaches anew at the next start).
        let (eng, id, eps) = (self.clone(), c.id.clone(), c.record().endpoints);
        let released = tokio::task::spawn_blocking(move || eng.net_teardown(&id, &eps)).await.ok();
        let rec = c.update_state(&dir, |r| {
            if health_closed {
                crate::health::mark_closed(&mut r.state.health);
            }
            if let Some(eps) = released {
                r.endpoints = eps;
            }
            r.ports.clear();
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = code;
            r.state.oom_killed = oom;
            r.state.finished_at = finished;
            r.shim_pid = 0;
        });
        let _ = std::fs::remove_file(self.spec_path(&c.id));
        // The shim removes the cgroup on exit; if the container's last processes were
        // still being reaped then (or the shim died), remove it here.
        if let Some(cg) = self.cgroup_of(&c.id) {
            tokio::task::spawn_blocking(move || remove_cgroup(&cg));
        }
        // `die` goes out before waiters wake, so a `rm -f` waiting for this exit emits
        // its `destroy` after it, as Docker orders them.
        if let Ok(rec) = &rec {
            if oom {
                self.container_event(rec, "oom", &[]);
            }
            self.container_event(rec, "die", &[("exitCode", code.to_string())]);
            self.volume_mount_events(rec, "unmount");
        }
        // A container its policy restarts is `restarting` before waiters wake, so a
        // `rm` right after `wait` is refused as Docker refuses it.
        if let Ok(rec) = &rec {
            if !rec.host_config.auto_remove && crate::lifecycle::should_restart(rec, code) {
                self.schedule_restart(c.clone(), rec);
            }
        }
        c.notice.send_modify(|n| {
            n.exits += 1;
            n.exit_code = code;
            n.running = false;
        });
        if let Ok(rec) = rec {
            if rec.host_config.auto_remove {
                let _ = self.remove_container(&c.id, true, true).await;
            }
        }
    }

    /// Restarts an exited container after the policy's back-off, as Docker's restart
    /// manager does; the container shows `Restarting (N) …` meanwhile.
    fn schedule_restart(&self, c: Arc<Container>, rec: &Record) {
        let ran = match (timefmt::parse(&rec.state.started_at), timefmt::parse(&rec.state.finished_at)) {
            (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let delay = {
            let mut b = lock(&c.backoff_ms);
            *b = crate::lifecycle::next_backoff(*b, ran);
            *b
        };
        let dir = self.container_dir(&c.id);
        let _ = c.update_state(&dir, |r| {
            r.state.status = Status::Restarting;
            r.restart_count += 1;
        });
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let r = c.record();
            if r.state.status != Status::Restarting || r.manually_stopped {
                return;
            }
            if lock(&engine.inner.containers).get(&c.id).is_none() {
                return;
            }
            if let Err(e) = engine.start(&c.id).await {
                tracing::warn!(container = %c.id, "restart failed: {e}");
                let _ = c.update_state(&engine.container_dir(&c.id), |r| {
                    r.state.status = Status::Exited;
                    r.state.error = e.message.clone();
                });
            } else {
                let rec = c.record();
                engine.container_event(&rec, "restart", &[]);
            }
        });
    }

    /// Marks a container as stopped by the user (restart policies then leave it) and
    /// thaws it if paused, so signals reach it.
    async fn manual_stop(&self, c: &Container) {
        let dir = self.container_dir(&c.id);
        let was_paused = c.record().state.status == Status::Paused;
        let _ = c.update(&dir, |r| {
            r.manually_stopped = true;
            if r.state.status == Status::Restarting {
                r.state.status = Status::Exited;
            }
        });
        if was_paused {
            if let Some(cg) = self.cgroup_of(&c.id) {
                let _ = tokio::task::spawn_blocking(move || cg.thaw()).await;
            }
            let _ = c.update_state(&dir, |r| {
                if r.state.status == Status::Paused {
                    r.state.status = Status::Running;
                }
            });
        }
    }

    /// Registers an attach: streams now if running, else at the next start.
    pub fn attach(&self, name_or_id: &str, opts: AttachOpts) -> Result<(Arc<Container>, AttachTicket)> {
        let c = self.lookup(name_or_id)?;
        let rec = c.record();
        self.container_event(&rec, "attach", &[]);
        let readable = log_options(&rec.host_config).is_ok_and(|l| self.log_file(&c.id, l.driver).is_some());
        let mut a = lock(&c.attaches);
        if readable {
            let now = std::time::Instant::now();
            if let Some(since) = a.late.as_mut().and_then(|l| l.claim(opts.stdin, opts.stdout, opts.stderr, now)) {
                drop(a);
                return Ok((c, AttachTicket::Replay { since }));
            }
        }
        if a.live {
            let socket = self.socket_path(&c.id);
            // A shim that is just exiting refuses: the attach then waits for the next start.
            if let Ok(s) = client::attach(&socket, opts.stdin, opts.stdout, opts.stderr) {
                drop(a);
                let guard = c.stream_guard();
                return Ok((c, AttachTicket::Now((s, guard))));
            }
        }
        let (tx, rx) = oneshot::channel();
        a.pending.push(PendingAttach { opts, tx });
        drop(a);
        Ok((c, AttachTicket::Later(rx)))
    }

    /// `POST /containers/{id}/wait`: resolves the container now; the returned future
    /// completes when the condition is met (the caller sends headers meanwhile).
    pub fn wait(
        &self,
        name_or_id: &str,
        cond: WaitCondition,
    ) -> Result<impl Future<Output = WaitResponse> + Send + 'static> {
        let c = self.lookup(name_or_id)?;
        let mut rx = c.subscribe();
        let start: Notice = *rx.borrow();
        Ok(async move {
            let done = |n: &Notice| match cond {
                WaitCondition::NotRunning => !n.running || n.exits > start.exits,
                WaitCondition::NextExit => n.exits > start.exits,
                WaitCondition::Removed => n.removed,
            };
            loop {
                let n = *rx.borrow_and_update();
                if done(&n) {
                    return WaitResponse { error: None, status_code: n.exit_code };
                }
                if rx.changed().await.is_err() {
                    let n = *rx.borrow();
                    return WaitResponse {
                        error: (!done(&n)).then(|| WaitError { message: "container removed".into() }),
                        status_code: n.exit_code,
                    };
                }
            }
        })
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, name_or_id: &str, sig: Option<&str>) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let signo = match sig.filter(|s| !s.is_empty()) {
            Some(s) => signal::parse(s).map_err(Error::invalid)?,
            None => 9,
        };
        if !c.is_running() {
            return Err(Error::conflict(format!(
                "Cannot kill container: {name_or_id}: Container {} is not running",
                c.id
            )));
        }
        if signo == 9 || signo == 15 {
            self.manual_stop(&c).await;
        }
        self.signal(&c, signo).await?;
        self.container_event(&c.record(), "kill", &[("signal", signo.to_string())]);
        // As Docker: a SIGKILL answers once the exit is recorded, so an inspect or a
        // remove right after sees the container stopped.
        if signo == 9 && !self.await_exit(&c, Some(KILL_EXIT_WAIT)).await {
            return Err(Error::internal("tried to kill container, but did not receive an exit event"));
        }
        Ok(())
    }

    async fn signal(&self, c: &Container, signo: i32) -> Result<()> {
        let socket = self.socket_path(&c.id);
        tokio::task::spawn_blocking(move || client::kill(&socket, signo))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)
    }

    /// Waits until the container is no longer running, at most `timeout`.
    async fn await_exit(&self, c: &Container, timeout: Option<Duration>) -> bool {
        self.await_notice(c, timeout, |n| !n.running).await
    }

    /// Waits until the run that was current when `since` was read has ended (or the
    /// container was removed), at most `timeout`.
    async fn await_exit_since(&self, c: &Container, since: Notice, timeout: Option<Duration>) -> bool {
        self.await_notice(c, timeout, |n| !n.running || n.exits > since.exits || n.removed).await
    }

    /// Waits until the container's exit notice satisfies `done`, at most `timeout`.
    async fn await_notice(&self, c: &Container, timeout: Option<Duration>, done: impl Fn(&Notice) -> bool) -> bool {
        let mut rx = c.subscribe();
        let fut = async {
            loop {
                if done(&rx.borrow_and_update()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => {
                fut.await;
                true
            }
        }
    }

    /// `POST /containers/{id}/stop`: the stop signal, `t` seconds, then SIGKILL.
    ///
    /// The `op` lock is held while the signal is sent, not while the container is
    /// given its grace period: as Docker's, a pending stop does not block `kill` or
    /// `rm -f`, which end it at once (and a stop with `t=-1` would hold it forever).
    pub async fn stop(&self, name_or_id: &str, t: Option<i64>, sig: Option<&str>) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let (rec, since, timeout) = {
            let _op = self.op_lock(&c, name_or_id).await?;
            if !c.is_running() {
                return Err(Error::new(crate::ErrorKind::NotModified, "container already stopped"));
            }
            let rec = c.record();
            let stop_sig = sig
                .filter(|s| !s.is_empty())
                .or(rec.config.stop_signal.as_deref())
                .filter(|s| !s.is_empty())
                .map(signal::parse)
                .transpose()
                .map_err(Error::invalid)?
                .unwrap_or(15);
            let timeout = t.or(rec.config.stop_timeout).unwrap_or(10);
            let since = *c.subscribe().borrow();
            self.manual_stop(&c).await;
            self.container_event(&rec, "kill", &[("signal", stop_sig.to_string())]);
            let _ = self.signal(&c, stop_sig).await;
            (rec, since, timeout)
        };
        let grace = if timeout < 0 { None } else { Some(Duration::from_secs(timeout as u64)) };
        if !self.await_exit_since(&c, since, grace).await {
            self.container_event(&rec, "kill", &[("signal", "9".into())]);
            let _ = self.signal(&c, 9).await;
            self.await_exit_since(&c, since, None).await;
        }
        self.container_event(&c.record(), "stop", &[]);
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, name_or_id: &str, force: bool) -> Result<()> {
        self.remove_container(name_or_id, force, false).await
    }

    /// `DELETE /containers/{id}?force=&v=`: `volumes` removes its anonymous volumes too
    /// (named ones stay, as Docker's).
    pub async fn remove_container(&self, name_or_id: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let _op = self.op_lock(&c, name_or_id).await?;
        if c.record().state.status == Status::Restarting {
            if !force {
                return Err(Error::conflict(format!(
                    "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            self.manual_stop(&c).await;
        }
        if c.is_running() {
            if !c.status().can_remove(force) {
                return Err(Error::conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            self.manual_stop(&c).await;
            self.container_event(&c.record(), "kill", &[("signal", "9".into())]);
            let _ = self.signal(&c, 9).await;
            self.await_exit(&c, None).await;
        }
        let dir = self.container_dir(&c.id);
        let doomed = dir.with_file_name(format!(".removing-{}", c.id));
        std::fs::rename(&dir, &doomed).map_err(|e| Error::io("rename", &dir, e))?;
        lock(&self.inner.containers).remove(&c.id);
        // The container is not running: whatever a failed start or a crashed shim
        // left (exec-root files, the cgroup) goes with it.
        let exec_files = self.exec_root_files(&c.id);
        let cg = self.cgroup_of(&c.id);
        let _ = tokio::task::spawn_blocking(move || {
            for f in exec_files {
                let _ = if f.is_dir() { std::fs::remove_dir_all(f) } else { std::fs::remove_file(f) };
            }
            if let Some(cg) = cg {
                remove_cgroup(&cg);
            }
        })
        .await;
        // The rename is the removal (a restart deletes `.removing-*` leftovers), so the
        // files are deleted in the background and `--rm` clients do not wait for it.
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::remove_dir_all(&doomed) {
                tracing::warn!(path = %doomed.display(), "remove container files: {e}");
            }
        });
        lock(&c.attaches).pending.clear();
        self.forget_execs(&c.id);
        self.container_event(&c.record(), "destroy", &[]);
        c.notice.send_modify(|n| n.removed = true);
        if volumes {
            self.remove_anonymous_volumes(&c.record()).await;
        }
        Ok(())
    }

    /// `POST /containers/{id}/restart`: stop (if running), then start.
    pub async fn restart(&self, name_or_id: &str, t: Option<i64>, sig: Option<&str>) -> Result<()> {
        if let Err(e) = self.stop(name_or_id, t, sig).await {
            if e.kind() != crate::ErrorKind::NotModified {
                return Err(e);
            }
        }
        self.start(name_or_id).await?;
        let c = self.lookup(name_or_id)?;
        self.container_event(&c.record(), "restart", &[]);
        Ok(())
    }

    /// Bytes in the container's writable layer (`SizeRw`).
    pub fn size_rw(&self, id: &str) -> u64 {
        dir_size(&self.container_dir(id).join("fs/upper"))
    }

    /// `POST /containers/prune`: removes stopped containers matching `label`/`until`
    /// filters; returns their ids and the space their writable layers took.
    pub async fn prune_containers(&self, filters: &str) -> Result<(Vec<String>, u64)> {
        let filters = parse_filters(filters).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&filters, berth_api::filter_keys::CONTAINER_PRUNE).map_err(Error::invalid)?;
        let until = filters.get("until").and_then(|v| v.first()).map(|u| parse_until(u)).transpose()?;
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for c in self.all_containers() {
            let r = c.record();
            if r.state.status.is_active() {
                continue;
            }
            if let Some(labels) = filters.get("label") {
                let mine = r.config.labels.clone().unwrap_or_default();
                let ok = labels.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => mine.get(k).is_some_and(|x| x == val),
                    None => mine.contains_key(v.as_str()),
                });
                if !ok {
                    continue;
                }
            }
            if let Some(until) = until {
                if timefmt::parse(&r.created).is_some_and(|t| t.timestamp() >= until) {
                    continue;
                }
            }
            let log_size = match log_options(&r.host_config).map(|l| l.driver) {
                Ok(LogDriver::Local) => dir_size(&self.container_dir(&r.id).join("local-logs")),
                _ => std::fs::metadata(self.log_path(&r.id)).map_or(0, |m| m.len()),
            };
            let size = self.size_rw(&r.id) + log_size;
            if self.remove(&r.id, false).await.is_ok() {
                reclaimed += size;
                deleted.push(r.id.clone());
            }
        }
        Ok((deleted, reclaimed))
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, name_or_id: &str, new_name: &str) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let new = names::validate(new_name).map_err(Error::invalid)?.to_string();
        let map = lock(&self.inner.containers);
        if let Some(other) = map.values().find(|o| o.name() == new) {
            return Err(Error::conflict(format!(
                "Conflict. The container name \"/{new}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let old = c.name();
        let rec = c.update(&self.container_dir(&c.id), |r| r.name = new)?;
        drop(map);
        self.container_event(&rec, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `GET /containers/json`.
    pub fn list(&self, all: bool, filters: &str, size: bool) -> Result<Vec<ContainerSummary>> {
        let filters = parse_filters(filters).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&filters, berth_api::filter_keys::CONTAINER_LIST).map_err(Error::invalid)?;
        if let Some(v) = filters.get("health") {
            crate::health::check_filter_values(v)?;
        }
        let now = Utc::now();
        let mut out = Vec::new();
        for c in self.all_containers() {
            let r = c.record();
            let explicit_status = filters.contains_key("status");
            if !all && !r.state.status.is_running() && !explicit_status {
                continue;
            }
            if !matches_filters(&r, &filters, &self.image_name(&r)) {
                continue;
            }
            let mut sum = self.summary(&r, now);
            if size {
                let rw = self.size_rw(&r.id) as i64;
                let image = self.inner.images.get(&r.image).map_or(0, |i| i.size as i64);
                sum.size_rw = Some(rw);
                sum.size_root_fs = Some(rw + image);
            }
            out.push(sum);
        }
        Ok(out)
    }

    fn image_name(&self, r: &Record) -> String {
        r.config.image.clone()
    }

    fn summary(&self, r: &Record, now: chrono::DateTime<Utc>) -> ContainerSummary {
        let mut command = r.path.clone();
        for a in &r.args {
            command.push(' ');
            command.push_str(a);
        }
        let created = timefmt::parse(&r.created).map(|t| t.timestamp()).unwrap_or(0);
        ContainerSummary {
            id: r.id.clone(),
            names: vec![format!("/{}", r.name)],
            image: r.config.image.clone(),
            image_id: r.image.clone(),
            command,
            created,
            ports: if r.state.status.is_running() {
                berth_network::ports::summary_ports(&berth_network::ports::settings_ports(r.config.exposed_ports.as_ref(), &r.ports))
            } else {
                Vec::new()
            },
            size_rw: None,
            size_root_fs: None,
            labels: r.config.labels.clone().unwrap_or_default(),
            state: r.state.status.as_str().to_string(),
            status: {
                let s = timefmt::status_string(r.state.status, r.state.exit_code, &r.state.started_at, &r.state.finished_at, now);
                match &r.state.health {
                    Some(h) if r.state.status == Status::Running => format!("{s} {}", crate::health::status_suffix(h)),
                    _ => s,
                }
            },
            host_config: SummaryHostConfig { network_mode: r.host_config.network_mode.clone() },
            network_settings: SummaryNetworkSettings { networks: self.endpoint_settings(r) },
            mounts: mounts(r),
        }
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, name_or_id: &str) -> Result<ContainerInspect> {
        let c = self.lookup(name_or_id)?;
        let r = c.record();
        let dir = self.container_dir(&r.id);
        let started = r.state.status != Status::Created;
        let path_if = |p: PathBuf| if started { p.to_string_lossy().into_owned() } else { String::new() };
        let mut gd = BTreeMap::new();
        gd.insert("UpperDir".to_string(), dir.join("fs/upper").to_string_lossy().into_owned());
        gd.insert("WorkDir".to_string(), dir.join("fs/work").to_string_lossy().into_owned());
        gd.insert("MergedDir".to_string(), dir.join("fs/merged").to_string_lossy().into_owned());
        if let Ok(img) = self.inner.images.get(&r.image) {
            if let Ok(l) = self.inner.images.layer_dirs(&img) {
                let lower: Vec<String> = l.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                gd.insert("LowerDir".to_string(), lower.join(":"));
            }
        }
        Ok(ContainerInspect {
            id: r.id.clone(),
            created: r.created.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            state: r.state.to_api(),
            image: r.image.clone(),
            resolv_conf_path: path_if(dir.join("resolv.conf")),
            hostname_path: path_if(dir.join("hostname")),
            hosts_path: path_if(dir.join("hosts")),
            // As Docker: set for json-file only.
            log_path: match log_options(&r.host_config).map(|l| l.driver) {
                Ok(LogDriver::JsonFile) => path_if(self.log_path(&r.id)),
                _ => String::new(),
            },
            name: format!("/{}", r.name),
            restart_count: r.restart_count,
            driver: "overlay2".into(),
            platform: "linux".into(),
            mount_label: String::new(),
            process_label: String::new(),
            app_armor_profile: String::new(),
            exec_ids: None,
            host_config: r.host_config.clone(),
            graph_driver: GraphDriver { data: Some(gd), name: "overlay2".into() },
            mounts: mounts(&r),
            config: r.config.clone(),
            network_settings: self.network_settings(&r),
        })
    }

    /// Brings back every container record after a daemon (re)start.
    pub(crate) async fn restore(&self) -> Result<()> {
        let dir = self.containers_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))?;
        let mut running = Vec::new();
        let mut to_restart = Vec::new();
        let mut unrecorded = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // Half-created or half-removed: never a container.
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            let cfg = entry.path().join("config.v2.json");
            let rec: Record = match std::fs::read(&cfg).ok().and_then(|d| serde_json::from_slice(&d).ok()) {
                Some(r) => r,
                None => {
                    tracing::warn!(path = %cfg.display(), "skipping unreadable container record");
                    continue;
                }
            };
            tighten_container_dir(&entry.path());
            let c = Arc::new(Container::new(rec));
            if c.status().is_active() {
                running.push(c.clone());
            } else if UnixStream::connect(self.socket_path(&c.id)).is_ok() {
                unrecorded.push(c.clone());
            } else {
                let r = c.record();
                let p = r.host_config.restart_policy.name.as_str();
                if (p == "always" || (p == "unless-stopped" && !r.manually_stopped)) && r.state.status == Status::Exited {
                    to_restart.push(c.clone());
                }
            }
            lock(&self.inner.containers).insert(c.id.clone(), c);
        }
        for c in running {
            let socket = self.socket_path(&c.id);
            if UnixStream::connect(&socket).is_ok() {
                self.hold_endpoints(&c.record());
                lock(&c.attaches).live = true;
                self.monitor(c.clone(), None);
                self.health_update(&c);
            } else {
                let info = client::read_exit(&self.container_dir(&c.id).join("exit.json"));
                self.on_exit(&c, info).await;
            }
        }
        // A shim alive for a container whose record is not running: the daemon was
        // killed inside `start`, after spawning the shim but before recording the
        // start. The start never happened as far as the record (and the client, which
        // got an error) knows, so undo it rather than leave an untracked process.
        for c in unrecorded {
            tracing::warn!(container = %c.id, "killing the shim of a start interrupted by a daemon crash");
            let socket = self.socket_path(&c.id);
            let undo = tokio::task::spawn_blocking(move || {
                let _ = client::kill(&socket, 9);
                let _ = client::wait(&socket);
            });
            let _ = tokio::time::timeout(Duration::from_secs(10), undo).await;
            let _ = std::fs::remove_file(self.spec_path(&c.id));
        }
        self.sweep_exec_root().await;
        let eng = self.clone();
        let _ = tokio::task::spawn_blocking(move || eng.net_reconcile()).await;
        // Docker starts `always` (and not manually stopped `unless-stopped`)
        // containers when the daemon starts.
        for c in to_restart {
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.start(&c.id).await {
                    tracing::warn!(container = %c.id, "restart on daemon start failed: {e}");
                }
            });
        }
        Ok(())
    }
}

/// A container's directory and its writable layer, with Docker's modes: the directory
/// and `fs/` 0710, `fs/work` 0700, and `fs/upper` 0755 (it is the container's `/`).
/// `fs/merged` is only a mount point, inside the container's own mount namespace.
const CONTAINER_DIRS: [(&str, u32); 5] = [
    ("", crate::DIR_MODE),
    ("fs", crate::DIR_MODE),
    ("fs/upper", 0o755),
    ("fs/work", 0o700),
    ("fs/merged", 0o755),
];

fn make_container_dirs(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    for (sub, mode) in CONTAINER_DIRS {
        let p = if sub.is_empty() { dir.to_path_buf() } else { dir.join(sub) };
        std::fs::DirBuilder::new().mode(mode).create(&p).map_err(|e| Error::io("create", &p, e))?;
        // The umask may have taken bits away.
        crate::set_mode(&p, mode)?;
    }
    Ok(())
}

/// Tightens the modes of a container made by an older version (0755 directories,
/// a 0644 record); the writable layer's own contents are the container's business.
fn tighten_container_dir(dir: &std::path::Path) {
    for (sub, mode) in CONTAINER_DIRS {
        let p = if sub.is_empty() { dir.to_path_buf() } else { dir.join(sub) };
        if p.is_dir() {
            let _ = crate::set_mode(&p, mode);
        }
    }
    let _ = crate::set_mode(&dir.join("config.v2.json"), crate::STATE_FILE_MODE);
}

impl crate::Engine {
    /// Removes what the exec root holds for containers that no longer exist (a daemon
    /// killed inside `rm`, after the record went) and the stale sockets and specs of
    /// containers that are not running. A shim still alive for a removed container is
    /// killed first, and its container's cgroup removed.
    async fn sweep_exec_root(&self) {
        let root = self.inner.cfg.exec_root.clone();
        // Temp files of record and spec writes a crash interrupted.
        let _ = berth_sys::fs::remove_stale_temps(&root);
        for c in self.all_containers() {
            let _ = berth_sys::fs::remove_stale_temps(&self.container_dir(&c.id));
        }
        let Ok(entries) = std::fs::read_dir(&root) else { return };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.split('.').next()?.to_string();
                (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
            })
            .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let known = lock(&self.inner.containers).get(&id).cloned();
            let socket = self.socket_path(&id);
            match known {
                Some(c) => {
                    if !c.status().is_active() && UnixStream::connect(&socket).is_err() {
                        let _ = std::fs::remove_file(&socket);
                        let _ = std::fs::remove_file(self.spec_path(&id));
                    }
                }
                None => {
                    tracing::warn!(container = %id, "removing exec-root leftovers of a removed container");
                    let files = self.exec_root_files(&id);
                    let cg = self.cgroup_of(&id);
                    let undo = tokio::task::spawn_blocking(move || {
                        if UnixStream::connect(&socket).is_ok() {
                            let _ = client::kill(&socket, 9);
                            let _ = client::wait(&socket);
                        }
                        for f in files {
                            let _ = if f.is_dir() { std::fs::remove_dir_all(f) } else { std::fs::remove_file(f) };
                        }
                        if let Some(cg) = cg {
                            remove_cgroup(&cg);
                        }
                    });
                    let _ = tokio::time::timeout(SHIM_FINISH_TIMEOUT, undo).await;
                }
            }
        }
    }
}

/// The hardening of a container from its HostConfig (`--privileged`, `--cap-add/drop`,
/// `--security-opt`). Docker's CLI reads a seccomp profile file and sends its content.
pub fn security_spec(hc: &berth_api::HostConfig) -> Result<SecuritySpec> {
    let mut spec = SecuritySpec {
        privileged: hc.privileged,
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        masked_paths: hc.masked_paths.clone(),
        readonly_paths: hc.readonly_paths.clone(),
        ..Default::default()
    };
    for opt in hc.security_opt.iter().flatten() {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match key {
            "no-new-privileges" => {
                spec.no_new_privileges = match value {
                    "" | "true" => true,
                    "false" => false,
                    _ => return Err(Error::invalid(format!("invalid --security-opt 2: {opt:?}"))),
                }
            }
            "seccomp" => {
                spec.seccomp = match value {
                    "unconfined" => SeccompMode::Unconfined,
                    "" | "builtin" => SeccompMode::Default,
                    json if json.trim_start().starts_with('{') => SeccompMode::Profile(json.to_string()),
                    path => {
                        let content = std::fs::read_to_string(path).map_err(|e| {
                            Error::invalid(format!("opening seccomp profile ({path}) failed: {e}"))
                        })?;
                        SeccompMode::Profile(content)
                    }
                }
            }
            "systempaths" if value == "unconfined" => {
                spec.masked_paths = Some(Vec::new());
                spec.readonly_paths = Some(Vec::new());
            }
            // AppArmor and SELinux are not available on the hosts Berth targets yet;
            // accepted as Docker accepts them where they are disabled.
            "apparmor" | "label" => {}
            _ => return Err(Error::invalid(format!("invalid --security-opt 1: {opt:?}"))),
        }
    }
    berth_runtime::security::validate(&spec).map_err(|e| Error::invalid(e.to_string()))?;
    Ok(spec)
}

/// Parses Docker's size strings: `10m`, `1g`, `512k`, `100` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

/// go-units' `FromHumanSize` (what Docker's `local` driver takes for max-size): decimal
/// units, `10k` = 10000, an optional `i` and `b` after the unit.
fn parse_size_decimal(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, exp) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1),
        'm' => (&t[..t.len() - 1], 2),
        'g' => (&t[..t.len() - 1], 3),
        't' => (&t[..t.len() - 1], 4),
        'p' => (&t[..t.len() - 1], 5),
        _ => (t, 0),
    };
    let v: f64 = num.trim_end().parse().ok()?;
    (v >= 0.0 && v.is_finite()).then(|| (v * 1000f64.powi(exp)) as u64)
}

/// Default json-file rotation: Docker never rotates by default and fills disks; Berth
/// keeps at most 5 files of 20 MB unless `--log-opt` says otherwise. The same numbers
/// are Docker's own defaults for the `local` driver.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 20 << 20;
pub const DEFAULT_LOG_MAX_FILE: u32 = 5;

/// The log drivers Berth has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogDriver {
    JsonFile,
    Local,
    None,
}

/// A container's log driver and its options, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogSettings {
    pub driver: LogDriver,
    pub max_size: Option<u64>,
    pub max_file: u32,
    pub compress: bool,
}

/// Validates `HostConfig.LogConfig` with Docker's texts (moby `logger.ValidateLogOpts`
/// and the drivers' own option checks).
pub(crate) fn log_options(hc: &berth_api::HostConfig) -> Result<LogSettings> {
    let kind = hc.log_config.kind.as_str();
    let driver = match kind {
        "" | "json-file" => LogDriver::JsonFile,
        "local" => LogDriver::Local,
        "none" => LogDriver::None,
        _ => return Err(Error::invalid(format!("logger: no log driver named '{kind}' is registered"))),
    };
    let mut opts = hc.log_config.config.clone().unwrap_or_default();
    // Options every driver takes (Docker's `builtInLogOpts`).
    opts.remove("mode");
    opts.remove("max-buffer-size");
    match driver {
        LogDriver::None => Ok(LogSettings { driver, max_size: None, max_file: 0, compress: false }),
        LogDriver::Local => {
            if let Some(k) = opts.keys().find(|k| !matches!(k.as_str(), "max-size" | "max-file" | "compress")) {
                return Err(Error::invalid(format!("unknown log opt '{k}' for log driver local")));
            }
            let max_size = match opts.get("max-size") {
                Some(v) => {
                    parse_size_decimal(v).ok_or_else(|| Error::invalid(format!("invalid value for max-size: {v}")))?
                }
                None => DEFAULT_LOG_MAX_SIZE,
            };
            let max_file = match opts.get("max-file") {
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if n < 0 => return Err(Error::invalid("max-file must not be negative")),
                    Ok(n) => u32::try_from(n).map_err(|_| Error::invalid(format!("invalid value for max-file: {v}")))?,
                    Err(_) => return Err(Error::invalid(format!("invalid value for max-file: {v}"))),
                },
                None => DEFAULT_LOG_MAX_FILE,
            };
            let compress = match opts.get("compress").map(String::as_str) {
                None => true,
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                Some(v) => {
                    return Err(Error::invalid(format!(
                        "invalid boolean value for compress: strconv.ParseBool: parsing \"{v}\": invalid syntax"
                    )))
                }
            };
            if compress && max_file <= 1 {
                return Err(Error::invalid("compression cannot be enabled when max file count is 1"));
            }
            Ok(LogSettings { driver, max_size: Some(max_size), max_file, compress })
        }
        LogDriver::JsonFile => {
            let max_size = match opts.get("max-size") {
                Some(v) if v == "-1" => None,
                Some(v) => Some(parse_size(v).ok_or_else(|| Error::invalid(format!("invalid max-size: {v}")))?),
                None => Some(DEFAULT_LOG_MAX_SIZE),
            };
            let max_file = match opts.get("max-file") {
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::invalid(format!("invalid max-file: {v}")))?,
                None if opts.contains_key("max-size") => 1,
                None => DEFAULT_LOG_MAX_FILE,
            };
            Ok(LogSettings { driver, max_size, max_file, compress: false })
        }
    }
}

/// Sum of regular-file sizes under `dir` (never following symlinks).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    total
}

/// `until` filters: unix seconds, RFC 3339, or a Go duration like `10m` / `24h` ago.
pub(crate) fn parse_until(v: &str) -> Result<i64> {
    if let Ok(n) = v.parse::<f64>() {
        return Ok(n as i64);
    }
    if let Some(t) = timefmt::parse(v) {
        return Ok(t.timestamp());
    }
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().map_err(|_| Error::invalid(format!("invalid filter 'until={v}'")))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(Error::invalid(format!("invalid filter 'until={v}'"))),
    };
    Ok(Utc::now().timestamp() - secs as i64)
}

/// How long a shim whose start failed gets to remove its cgroup and socket and exit.
const SHIM_FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Removes a stopped container's cgroup (every v1 hierarchy, or v2), retrying a
/// little while its last processes are being reaped.
fn remove_cgroup(cg: &berth_runtime::cgroup::Cgroup) {
    for _ in 0..50 {
        if cg.dirs().iter().all(|d| !d.exists()) || cg.remove().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(cgroup = %cg.rel_path().display(), "cgroup could not be removed");
}

/// A failed start or exec: the runtime's typed start error is the client's fault
/// (400, as Docker's `startInvalidConfigError`), kept as the source so its exit code
/// ([`Error::start_exit_code`]) reaches the container's state.
pub(crate) fn start_error(e: berth_runtime::RuntimeError) -> Error {
    match e {
        e @ berth_runtime::RuntimeError::Start(_) => Error::caused_by(crate::ErrorKind::InvalidArgument, e),
        other => Error::from(other),
    }
}

/// The exit code Docker records for a start that failed with `e`: the runtime's
/// 127/126 for a missing or non-executable command, else 128.
fn start_failure_code(e: &Error) -> i64 {
    e.start_exit_code().map_or(128, i64::from)
}

/// The inspect `Mounts`, from the one mount parser (validated at create).
fn mounts(r: &Record) -> Vec<MountPoint> {
    r.mounts().iter().map(crate::mounts::MountSpec::mount_point).collect()
}

fn matches_filters(r: &Record, filters: &BTreeMap<String, Vec<String>>, image: &str) -> bool {
    for (key, values) in filters {
        if values.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            // Docker matches a regular expression against the name, with and without
            // its leading `/`.
            "name" => values.iter().any(|v| {
                let full = format!("/{}", r.name);
                match regex::Regex::new(v) {
                    Ok(re) => re.is_match(&full) || re.is_match(&r.name),
                    Err(_) => full.contains(v.as_str()),
                }
            }),
            "id" => values.iter().any(|v| r.id.starts_with(v.as_str())),
            "status" => values.iter().any(|v| *v == r.state.status.as_str()),
            "label" => values.iter().all(|v| {
                let labels = r.config.labels.clone().unwrap_or_default();
                match v.split_once('=') {
                    Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                    None => labels.contains_key(v.as_str()),
                }
            }),
            "ancestor" => values.iter().any(|v| v == image || r.image.contains(v.as_str())),
            "health" => values.iter().any(|v| v == crate::health::filter_value(r.state.health.as_ref())),
            "exited" => values
                .iter()
                .any(|v| r.state.status == Status::Exited && v.parse::<i64>().ok() == Some(r.state.exit_code)),
            // A volume's name or a mount's destination, as Docker's `volume` filter.
            "volume" => r.mounts().iter().any(|m| values.iter().any(|v| *v == m.name || *v == m.destination)),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_dirs_have_dockers_modes_and_older_ones_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("test setup");
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("test setup").permissions().mode() & 0o7777;
        let dir = tmp.path().join("c");
        make_container_dirs(&dir).expect("test setup");
        crate::write_atomic_as(&dir.join("config.v2.json"), b"{}", berth_sys::fs::Durability::Durable).expect("test setup");
        let want = [("", 0o710), ("fs", 0o710), ("fs/upper", 0o755), ("fs/work", 0o700), ("fs/merged", 0o755), ("config.v2.json", 0o600)];
        for (sub, m) in want {
            assert_eq!(mode(&dir.join(sub)), m, "{sub}");
        }
        // As an older version left them: everything world-readable.
        for (sub, _) in want {
            let m = if sub.ends_with(".json") { 0o644 } else { 0o755 };
            std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(m)).expect("test setup");
        }
        // A temp file of an interrupted write keeps no world-readable mode either.
        std::fs::write(dir.join("config.v2.tmp"), b"x").expect("test setup");
        std::fs::set_permissions(dir.join("config.v2.tmp"), std::fs::Permissions::from_mode(0o644)).expect("test setup");
        tighten_container_dir(&dir);
        for (sub, m) in want {
            assert_eq!(mode(&dir.join(sub)), m, "tightened {sub}");
        }
        crate::write_atomic_as(&dir.join("config.v2.json"), b"{}", berth_sys::fs::Durability::Durable).expect("test setup");
        assert_eq!(mode(&dir.join("config.v2.json")), 0o600);
    }

    #[test]
    fn start_failure_codes_follow_the_runtime() {
        let start = |m: &str| start_error(berth_runtime::RuntimeError::Start(m.into()));
        // (error, recorded exit code, kind)
        for (e, code, kind) in [
            (start("exec: \"nosuchcmd\": executable file not found in $PATH: unknown"), 127, crate::ErrorKind::InvalidArgument),
            (start("exec: \"/etc\": permission denied: unknown"), 126, crate::ErrorKind::InvalidArgument),
            // Regression: both texts; Docker (and the runtime) say 126, the engine's own
            // substring match said 127.
            (start("exec: \"/x/y\": permission denied (no such file or directory): unknown"), 126, crate::ErrorKind::InvalidArgument),
            (start("mount overlay: invalid argument: unknown"), 128, crate::ErrorKind::InvalidArgument),
            // Not a start error of the runtime: 128 whatever its text.
            (Error::internal("open /x: no such file or directory"), 128, crate::ErrorKind::Internal),
        ] {
            assert_eq!((start_failure_code(&e), e.kind), (code, kind), "{e}");
        }
    }

    #[test]
    fn sizes_and_log_options() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn log_drivers_and_options() {
        use LogDriver::*;
        let settings = |driver, max_size, max_file, compress| Ok(LogSettings { driver, max_size, max_file, compress });
        let cases: &[(&str, &[(&str, &str)], Result<LogSettings>)] = &[
            ("", &[], settings(JsonFile, Some(DEFAULT_LOG_MAX_SIZE), DEFAULT_LOG_MAX_FILE, false)),
            ("json-file", &[("max-size", "1k"), ("max-file", "3")], settings(JsonFile, Some(1024), 3, false)),
            ("json-file", &[("max-size", "1k")], settings(JsonFile, Some(1024), 1, false)),
            ("json-file", &[("max-size", "-1")], settings(JsonFile, Option::None, 1, false)),
            ("none", &[], settings(None, Option::None, 0, false)),
            ("local", &[], settings(Local, Some(DEFAULT_LOG_MAX_SIZE), DEFAULT_LOG_MAX_FILE, true)),
            ("local", &[("mode", "non-blocking")], settings(Local, Some(DEFAULT_LOG_MAX_SIZE), DEFAULT_LOG_MAX_FILE, true)),
            (
                "local",
                &[("max-size", "1k"), ("max-file", "2"), ("compress", "false")],
                settings(Local, Some(1000), 2, false),
            ),
            ("local", &[("max-size", "2.5MB")], settings(Local, Some(2_500_000), DEFAULT_LOG_MAX_FILE, true)),
            ("local", &[("max-size", "100")], settings(Local, Some(100), DEFAULT_LOG_MAX_FILE, true)),
            ("local", &[("max-file", "1"), ("compress", "false")], settings(Local, Some(DEFAULT_LOG_MAX_SIZE), 1, false)),
            ("local", &[("max-file", "1")], Err(Error::invalid("compression cannot be enabled when max file count is 1"))),
            ("local", &[("max-file", "-1")], Err(Error::invalid("max-file must not be negative"))),
            ("local", &[("max-file", "x")], Err(Error::invalid("invalid value for max-file: x"))),
            ("local", &[("max-size", "x")], Err(Error::invalid("invalid value for max-size: x"))),
            ("local", &[("x", "1")], Err(Error::invalid("unknown log opt 'x' for log driver local"))),
            ("asdf", &[], Err(Error::invalid("logger: no log driver named 'asdf' is registered"))),
            ("syslog", &[], Err(Error::invalid("logger: no log driver named 'syslog' is registered"))),
        ];
        for (kind, opts, want) in cases {
            let mut hc = berth_api::HostConfig::default();
            hc.log_config.kind = kind.to_string();
            hc.log_config.config = Some(opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
            assert_eq!(&log_options(&hc), want, "{kind} {opts:?}");
        }
    }

    #[test]
    fn filters_match() {
        let mut r = Record { name: "web".into(), id: "abcdef".into(), ..Default::default() };
        r.state.status = "running".into();
        let f = |s: &str| parse_filters(s).expect("filters");
        assert!(matches_filters(&r, &f(r#"{"name":{"web":true}}"#), "alpine"));
        assert!(!matches_filters(&r, &f(r#"{"name":{"db":true}}"#), "alpine"));
        assert!(matches_filters(&r, &f(r#"{"name":{"^/web$":true}}"#), "alpine"));
        assert!(matches_filters(&r, &f(r#"{"name":{"^web$":true}}"#), "alpine"));
        assert!(!matches_filters(&r, &f(r#"{"name":{"^eb$":true}}"#), "alpine"));
        assert!(matches_filters(&r, &f(r#"{"name":{"w.b":true}}"#), "alpine"));
        assert!(matches_filters(&r, &f(r#"{"id":{"abc":true}}"#), "alpine"));
        assert!(matches_filters(&r, &f(r#"{"status":{"running":true}}"#), "alpine"));
        assert!(!matches_filters(&r, &f(r#"{"status":{"exited":true}}"#), "alpine"));
        assert!(!matches_filters(&r, &f(r#"{"label":{"a=b":true}}"#), "alpine"));
    }
}
