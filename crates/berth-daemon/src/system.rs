//! `/_ping`, `/version`, `/info` and the prunes of resources Berth does not have yet.

use berth_api::version::{MAX_API_VERSION, MIN_API_VERSION};
use berth_api::{ComponentVersion, Platform, VersionResponse};
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::json;

use crate::http::{full, json, Resp};
use crate::routes::Ctx;
use crate::State;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn ping(ctx: &Ctx) -> Resp {
    let body = if ctx.req.method() == Method::HEAD { full("") } else { full("OK") };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn version(_state: &State) -> Resp {
    let mut details = berth_api::Map::new();
    details.insert("ApiVersion".into(), MAX_API_VERSION.into());
    details.insert("MinAPIVersion".into(), MIN_API_VERSION.into());
    details.insert("Os".into(), "linux".into());
    details.insert("Arch".into(), arch().into());
    details.insert("KernelVersion".into(), kernel_version());
    let v = VersionResponse {
        platform: Platform { name: "Berth Engine".into() },
        components: vec![ComponentVersion {
            name: "Engine".into(),
            version: VERSION.into(),
            details: Some(details),
        }],
        version: VERSION.into(),
        api_version: MAX_API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown").into(),
        go_version: "n/a (Rust)".into(),
        os: "linux".into(),
        arch: arch().into(),
        kernel_version: kernel_version(),
        experimental: false,
        build_time: String::new(),
    };
    json(StatusCode::OK, &v)
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        })
        .unwrap_or_else(|| "Linux".into())
}

pub fn info(state: &State) -> Resp {
    let cfg = state.engine.config();
    let (total, running, paused, stopped) = state.engine.counts();
    let images = state.engine.images().list().len();
    let cgroup_version = if cfg.cgroup_root.join("cgroup.controllers").exists() { "2" } else { "1" };
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mirrors: Vec<String> = cfg.registry.mirrors.iter().map(|m| format!("{}/", m.trim_end_matches('/'))).collect();
    let body = json!({
        "ID": state.daemon_id.as_str(),
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["null"], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": berth_engine::timefmt::now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true}},
            "Mirrors": mirrors,
        },
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "GenericResources": null,
        "DockerRootDir": cfg.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": hostname.trim(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        "Runtimes": runtimes_json(cfg),
        "DefaultRuntime": berth_engine::DEFAULT_RUNTIME,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": [],
        "Warnings": null,
    });
    json(StatusCode::OK, &body)
}

/// `Runtimes` of `/info`: the built-in one (the shim) and every `--add-runtime`.
fn runtimes_json(cfg: &berth_engine::EngineConfig) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(berth_engine::DEFAULT_RUNTIME.into(), json!({"path": cfg.shim_bin}));
    for (name, path) in &cfg.runtimes {
        m.insert(name.clone(), json!({"path": path}));
    }
    serde_json::Value::Object(m)
}

/// Berth has no user-defined networks yet, so `system prune` finds none to delete.
pub fn networks_prune() -> Resp {
    json(StatusCode::OK, &json!({"NetworksDeleted": null}))
}

/// Berth has no volumes yet, so `system prune --volumes` finds none to delete.
pub fn volumes_prune() -> Resp {
    json(StatusCode::OK, &json!({"VolumesDeleted": null, "SpaceReclaimed": 0}))
}

/// Berth has no build cache yet, so there is nothing to reclaim (`system prune` calls it).
pub fn build_prune() -> Resp {
    json(StatusCode::OK, &json!({"CachesDeleted": null, "SpaceReclaimed": 0}))
}

/// `GET /events?since=&until=&filters=`: replays the history in range, then streams
/// live events until `until` (or until the client goes).
pub fn events(state: &State, ctx: &Ctx) -> Resp {
    let filters = match berth_api::parse_filters(ctx.q("filters")) {
        Ok(f) => f,
        Err(e) => return crate::http::error(StatusCode::BAD_REQUEST, &format!("invalid filter: {e}")),
    };
    let parse = |s: &str| s.parse::<f64>().ok().map(|t| (t * 1e9) as i64);
    let since = parse(ctx.q("since"));
    let until = parse(ctx.q("until"));
    let (past, mut rx) = state.engine.events().subscribe();
    let (tx, body) = crate::http::channel_body(64);
    tokio::spawn(async move {
        let in_range = |t: i64| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u);
        if since.is_some() {
            for ev in past.iter().filter(|e| in_range(e.time_nano)) {
                if berth_engine::events::matches(ev, &filters)
                    && tx.send(crate::http::json_line(ev)).await.is_err()
                {
                    return;
                }
            }
        }
        let deadline = until.map(|u| {
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            std::time::Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
        });
        let sleep = tokio::time::sleep(deadline.unwrap_or(std::time::Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if in_range(ev.time_nano) && berth_engine::events::matches(&ev, &filters)
                            && tx.send(crate::http::json_line(&ev)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /system/df`: images (with how many containers use each), containers with their
/// writable-layer sizes, and the total unpacked layer size. No volumes or build cache
/// exist in Berth yet, so those lists are empty.
pub fn disk_usage(state: &State) -> Resp {
    let containers = state.engine.list(true, "", true).unwrap_or_default();
    let mut images = state.engine.list_images();
    for img in &mut images {
        img.containers = containers.iter().filter(|c| c.image_id == img.id).count() as i64;
    }
    let layers_size = berth_engine::dir_size(&state.engine.config().data_root.join("image").join("layers"));
    json(
        StatusCode::OK,
        &json!({
            "LayersSize": layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": [],
            "BuildCache": [],
        }),
    )
}
