//! `berthd`: serves the Docker Engine API on a Unix socket. It owns the HTTP edge —
//! flags and daemon.json, routing, streaming, hijacking, and the mapping of engine error
//! kinds to status codes — and hands everything else to `berth-engine`.

#![forbid(unsafe_code)]
// Handlers' helpers return `Result<T, Resp>`: the error is the finished HTTP answer,
// built once per request and returned straight away; boxing it would buy nothing.
#![allow(clippy::result_large_err)]
#![recursion_limit = "256"]

mod archive;
mod build;
mod conn;
mod containers;
mod exec;
mod hijack;
mod http;
mod images;
mod limits;
mod networks;
mod swarm;
mod registry;
mod routes;
mod system;
mod volumes;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_engine::{Engine, EngineConfig};
use berth_image::RegistryConfig;
use clap::Parser;
use serde::Deserialize;
use tokio::net::UnixListener;

#[derive(Parser, Debug)]
#[command(name = "berthd", version, about = "Berth: a Docker-compatible container engine daemon")]
struct Flags {
    /// Daemon socket(s) to connect to
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    /// Root directory of persistent Berth state
    #[arg(long = "data-root")]
    data_root: Option<PathBuf>,
    /// Root directory for execution state files
    #[arg(long = "exec-root")]
    exec_root: Option<PathBuf>,
    /// Preferred registry mirror (repeatable)
    #[arg(long = "registry-mirror")]
    registry_mirrors: Vec<String>,
    /// Enable insecure registry communication (repeatable)
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Directory of per-registry TLS files, `<dir>/<host:port>/{*.crt,*.cert,*.key}`
    /// (repeatable; default /etc/docker/certs.d and /etc/berth/certs.d)
    #[arg(long = "registry-certs-dir")]
    registry_certs_dirs: Vec<PathBuf>,
    /// Set the max download attempts for each pull (default 5)
    #[arg(long = "max-download-attempts")]
    max_download_attempts: Option<i64>,
    /// Daemon configuration file
    #[arg(long = "config-file")]
    config_file: Option<PathBuf>,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long = "log-level")]
    log_level: Option<String>,
    /// Parent cgroup for all containers
    #[arg(long = "cgroup-parent")]
    cgroup_parent: Option<String>,
    /// Path to the static init binary used by `run --init`
    #[arg(long = "init-path", default_value = "/usr/bin/tini-static")]
    init_path: PathBuf,
    /// The berth-shim binary (default: next to berthd)
    #[arg(long = "shim-path")]
    shim_path: Option<PathBuf>,
    /// Register an additional OCI compatible runtime, NAME=PATH (repeatable)
    #[arg(long = "add-runtime")]
    add_runtimes: Vec<String>,
    /// Connections served at once; more clients wait until one ends
    #[arg(long = "max-connections")]
    max_connections: Option<String>,
    /// Largest JSON request body accepted (bytes, or with a unit: 512k, 16MiB); larger is 413
    #[arg(long = "max-request-body")]
    max_request_body: Option<String>,
    /// Largest unpacked build context (`POST /build`), e.g. 4GiB.
    #[arg(long = "max-build-context")]
    max_build_context: Option<String>,
    /// Time a connection has to send a complete request head, from its opening or its previous response (30s, 500ms; 0 = none)
    #[arg(long = "header-read-timeout")]
    header_read_timeout: Option<String>,
    /// Time a client has to send a whole JSON request body (0 = none)
    #[arg(long = "body-read-timeout")]
    body_read_timeout: Option<String>,
    /// Attach containers to a network bridge (the default bridge's interface name)
    #[arg(short = 'b', long = "bridge")]
    bridge: Option<String>,
    /// Specify network bridge IP (address/prefix)
    #[arg(long = "bip")]
    bip: Option<String>,
    /// IPv4 subnet for fixed IPs
    #[arg(long = "fixed-cidr")]
    fixed_cidr: Option<String>,
    /// Set the containers network MTU
    #[arg(long = "mtu")]
    mtu: Option<u32>,
    /// Enable addition of iptables rules
    #[arg(long = "iptables", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    iptables: Option<bool>,
    /// Enable net.ipv4.ip_forward
    #[arg(long = "ip-forward", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    ip_forward: Option<bool>,
    /// The host's resolv.conf: name servers the embedded DNS forwards to (for
    /// containers without --dns) and the servers, search and options containers inherit
    #[arg(long = "resolv-conf", default_value = berth_network::config::HOST_RESOLV_CONF)]
    resolv_conf: PathBuf,
    /// Remove what this daemon instance made on the host (bridges, firewall chains,
    /// network namespaces) and exit; for test harnesses, with the daemon stopped
    #[arg(long = "network-cleanup")]
    network_cleanup: bool,
}

/// daemon.json, with dockerd's key names.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
struct FileConfig {
    hosts: Vec<String>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    registry_mirrors: Vec<String>,
    insecure_registries: Vec<String>,
    max_download_attempts: Option<i64>,
    log_level: Option<String>,
    cgroup_parent: Option<String>,
    runtimes: std::collections::BTreeMap<String, RuntimeEntry>,
    max_connections: Option<limits::NumOrStr>,
    max_request_body: Option<limits::NumOrStr>,
    header_read_timeout: Option<limits::NumOrStr>,
    body_read_timeout: Option<limits::NumOrStr>,
    bridge: Option<String>,
    bip: Option<String>,
    fixed_cidr: Option<String>,
    mtu: Option<u32>,
    iptables: Option<bool>,
    ip_forward: Option<bool>,
    max_build_context: Option<limits::NumOrStr>,
}

/// `--max-download-attempts` / `max-download-attempts` (the flag wins): layer
/// requests per pull before it fails, dockerd's default 5 and its check.
fn download_retry(file: &FileConfig, flags: &Flags) -> Result<berth_image::DownloadRetry> {
    let mut r = berth_image::DownloadRetry::default();
    if let Some(n) = flags.max_download_attempts.or(file.max_download_attempts) {
        match u32::try_from(n) {
            Ok(n) if n > 0 => r.attempts = n,
            _ => bail!("invalid max download attempts: {n}"),
        }
    }
    Ok(r)
}

/// dockerd's network options: each flag wins over its daemon.json key.
fn net_options(file: &FileConfig, flags: &Flags) -> berth_network::NetOptions {
    berth_network::NetOptions {
        bridge: flags.bridge.clone().or(file.bridge.clone()),
        bip: flags.bip.clone().or(file.bip.clone()),
        fixed_cidr: flags.fixed_cidr.clone().or(file.fixed_cidr.clone()),
        mtu: flags.mtu.or(file.mtu).unwrap_or(0),
        iptables: flags.iptables.or(file.iptables).unwrap_or(true),
        ip_forward: flags.ip_forward.or(file.ip_forward).unwrap_or(true),
        resolv_conf: flags.resolv_conf.clone(),
    }
}

/// The HTTP edge's limits: each flag wins over its daemon.json key.
fn limits(file: &FileConfig, flags: &Flags) -> Result<limits::Limits> {
    let pick = |flag: &Option<String>, key: &Option<limits::NumOrStr>| {
        flag.clone().map(limits::NumOrStr::Str).or_else(|| key.clone())
    };
    limits::LimitSettings {
        max_connections: pick(&flags.max_connections, &file.max_connections),
        max_request_body: pick(&flags.max_request_body, &file.max_request_body),
        header_read_timeout: pick(&flags.header_read_timeout, &file.header_read_timeout),
        body_read_timeout: pick(&flags.body_read_timeout, &file.body_read_timeout),
        max_build_context: pick(&flags.max_build_context, &file.max_build_context),
    }
    .resolve()
    .map_err(anyhow::Error::msg)
}

/// One daemon.json `runtimes` entry (`runtimeArgs` is not supported).
#[derive(Debug, Default, Deserialize)]
struct RuntimeEntry {
    path: PathBuf,
}

/// daemon.json `runtimes` plus `--add-runtime NAME=PATH` (the flag wins). A bare
/// command name is looked up in PATH, as dockerd does; `berth` is the built-in one.
/// `runc` is registered by itself when a `runc` binary is on PATH and no entry names
/// it, as dockerd ships runc as a stock runtime (clients such as docker-py ask for
/// `runtime=runc` by name); Berth's own default stays the built-in one.
fn runtimes(file: &FileConfig, flags: &Flags) -> Result<std::collections::BTreeMap<String, PathBuf>> {
    let mut out: std::collections::BTreeMap<String, PathBuf> =
        file.runtimes.iter().map(|(n, r)| (n.clone(), r.path.clone())).collect();
    for a in &flags.add_runtimes {
        match a.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => {
                out.insert(n.to_string(), PathBuf::from(p));
            }
            _ => bail!("invalid runtime {a:?}: expected NAME=PATH"),
        }
    }
    if !out.contains_key("runc") && find_in_path(Path::new("runc")).is_some() {
        out.insert("runc".into(), PathBuf::from("runc"));
    }
    for (name, path) in out.iter_mut() {
        if name == berth_engine::DEFAULT_RUNTIME {
            bail!("runtime name '{name}' is reserved");
        }
        if path.as_os_str().is_empty() {
            bail!("runtime {name}: no path given");
        }
        if path.components().count() == 1 && !path.is_absolute() {
            if let Some(f) = find_in_path(path) {
                *path = f;
            }
        }
    }
    Ok(out)
}

/// `name` in one of PATH's directories.
fn find_in_path(name: &Path) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|v| std::env::split_paths(&v).map(|d| d.join(name)).find(|c| c.is_file()))
}

const DEFAULT_CONFIG: &str = "/etc/berth/daemon.json";

fn load_file_config(flags: &Flags) -> Result<FileConfig> {
    let (path, explicit) = match &flags.config_file {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data)
            .with_context(|| format!("unable to configure the Berth daemon with file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("unable to configure the Berth daemon with file {}", path.display())),
    }
}

fn socket_path(host: &str) -> Result<PathBuf> {
    match host.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        Some(_) => Ok(PathBuf::from("/run/berth.sock")),
        None if host.starts_with('/') => Ok(PathBuf::from(host)),
        None => bail!("invalid host {host:?}: only unix:// sockets are supported"),
    }
}

#[derive(Clone)]
pub struct State {
    pub engine: Engine,
    pub daemon_id: Arc<String>,
    pub limits: limits::Limits,
}

fn daemon_id(data_root: &Path) -> String {
    let p = data_root.join("engine-id");
    if let Ok(s) = std::fs::read_to_string(&p) {
        return s.trim().to_string();
    }
    let bytes: [u8; 16] = rand_bytes();
    let id = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let _ = std::fs::write(&p, &id);
    id
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Ok(data) = std::fs::read("/proc/sys/kernel/random/uuid") {
        let hex: Vec<u8> = data.iter().copied().filter(u8::is_ascii_hexdigit).collect();
        for (i, chunk) in hex.chunks(2).take(16).enumerate() {
            b[i] = u8::from_str_radix(std::str::from_utf8(chunk).unwrap_or("0"), 16).unwrap_or(0);
        }
    }
    b
}

fn main() -> Result<()> {
    let flags = Flags::parse();
    let file = load_file_config(&flags)?;
    let level = flags.log_level.clone().or(file.log_level.clone()).unwrap_or_else(|| "info".into());
    let level = if level == "fatal" { "error".to_string() } else { level };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .init();

    let hosts = if !flags.hosts.is_empty() {
        flags.hosts.clone()
    } else if !file.hosts.is_empty() {
        file.hosts.clone()
    } else {
        vec!["unix:///run/berth.sock".to_string()]
    };
    let data_root = flags.data_root.clone().or(file.data_root.clone()).unwrap_or_else(|| "/var/lib/berth".into());
    let exec_root = flags.exec_root.clone().or(file.exec_root.clone()).unwrap_or_else(|| "/run/berth".into());
    let mut mirrors = file.registry_mirrors.clone();
    mirrors.extend(flags.registry_mirrors.iter().cloned());
    let mut insecure = file.insecure_registries.clone();
    insecure.extend(flags.insecure_registries.iter().cloned());
    let download_retry = download_retry(&file, &flags)?;
    let network = net_options(&file, &flags);
    if flags.network_cleanup {
        let errors = berth_engine::netplumb::cleanup_instance(&data_root, &exec_root, &network);
        for e in &errors {
            eprintln!("berthd: network cleanup: {e}");
        }
        if !errors.is_empty() {
            bail!("network cleanup left {} error(s)", errors.len());
        }
        return Ok(());
    }
    let shim_bin = match &flags.shim_path {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating berthd")?
            .with_file_name("berth-shim"),
    };
    if !shim_bin.exists() {
        bail!("berth-shim not found at {} (use --shim-path)", shim_bin.display());
    }
    let cfg = EngineConfig {
        data_root: data_root.clone(),
        exec_root,
        shim_bin,
        cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        cgroup_parent: flags.cgroup_parent.clone().or(file.cgroup_parent.clone()).unwrap_or_else(|| "berth".into()),
        registry: RegistryConfig {
            mirrors,
            insecure,
            certs_dirs: if flags.registry_certs_dirs.is_empty() {
                vec!["/etc/docker/certs.d".into(), "/etc/berth/certs.d".into()]
            } else {
                flags.registry_certs_dirs.clone()
            },
            download_retry,
        },
        init_path: flags.init_path.clone(),
        runtimes: runtimes(&file, &flags)?,
        network,
    };
    let limits = limits(&file, &flags)?;

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let engine = Engine::open(cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let state = State { engine, daemon_id: Arc::new(daemon_id(&data_root)), limits };
        let mut sockets = Vec::new();
        for h in &hosts {
            let path = socket_path(h)?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).ok();
            }
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).with_context(|| format!("listen on {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
                .with_context(|| format!("chmod {}", path.display()))?;
            tracing::info!("API listen on {}", path.display());
            tokio::spawn(conn::serve(listener, state.clone()));
            sockets.push(path);
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down; running containers keep running");
        for s in sockets {
            let _ = std::fs::remove_file(s);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Connections still streaming (attach, logs -f) must not hold the exit.
    rt.shutdown_background();
    Ok(())
}
