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
    details.insert("GitCommit".into(), berth_buildinfo::GIT_COMMIT.into());
    details.insert("BuildTime".into(), berth_buildinfo::BUILD_TIME.into());
    // Docker's clients print `GoVersion`; berth's prints this under its own label.
    details.insert("GoVersion".into(), String::new());
    details.insert("RustVersion".into(), berth_buildinfo::RUST_VERSION.into());
    details.insert("Experimental".into(), "false".into());
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
        git_commit: berth_buildinfo::GIT_COMMIT.into(),
        go_version: String::new(),
        os: "linux".into(),
        arch: arch().into(),
        kernel_version: kernel_version(),
        experimental: false,
        build_time: berth_buildinfo::BUILD_TIME.into(),
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

/// What the host's cgroups can limit, as `/info` reports it (and Docker's warnings for
/// what is missing). `root` is the cgroup file system root.
#[derive(Debug, PartialEq, Eq)]
pub struct CgroupFeatures {
    pub memory: bool,
    pub swap: bool,
    pub cfs_period: bool,
    pub cfs_quota: bool,
    pub shares: bool,
    pub cpuset: bool,
    pub pids: bool,
}

pub fn cgroup_features(root: &std::path::Path) -> CgroupFeatures {
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).ok();
    match controllers {
        Some(list) => {
            let has = |c: &str| list.split_whitespace().any(|x| x == c);
            CgroupFeatures {
                memory: has("memory"),
                swap: has("memory"),
                cfs_period: has("cpu"),
                cfs_quota: has("cpu"),
                shares: has("cpu"),
                cpuset: has("cpuset"),
                pids: has("pids"),
            }
        }
        None => CgroupFeatures {
            memory: root.join("memory/memory.limit_in_bytes").exists(),
            swap: root.join("memory/memory.memsw.limit_in_bytes").exists(),
            cfs_period: root.join("cpu/cpu.cfs_period_us").exists(),
            cfs_quota: root.join("cpu/cpu.cfs_quota_us").exists(),
            shares: root.join("cpu/cpu.shares").exists(),
            cpuset: root.join("cpuset/cpuset.cpus").exists(),
            pids: root.join("pids/pids.max").exists() || root.join("pids").is_dir(),
        },
    }
}

/// Docker's warnings for missing cgroup features (printed by `docker info`).
pub fn cgroup_warnings(f: &CgroupFeatures) -> Vec<String> {
    let mut w = Vec::new();
    for (ok, what) in [
        (f.memory, "No memory limit support"),
        (f.swap, "No swap limit support"),
        (f.cfs_period, "No cpu cfs period support"),
        (f.cfs_quota, "No cpu cfs quota support"),
        (f.shares, "No cpu shares support"),
        (f.cpuset, "No cpuset support"),
        (f.pids, "No pids limit support"),
    ] {
        if !ok {
            w.push(format!("WARNING: {what}"));
        }
    }
    w
}

/// The file system type of the mount holding `path`, from a mountinfo text, named as
/// Docker's `Backing Filesystem` line names it (ext2/3/4 are "extfs").
pub fn backing_fs(mountinfo: &str, path: &std::path::Path) -> String {
    let p = path.to_string_lossy();
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { continue };
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        let Some(fstype) = fields.get(sep + 1) else { continue };
        let inside = p == *mp || *mp == "/" || p.starts_with(&format!("{mp}/"));
        if inside && best.as_ref().is_none_or(|(len, _)| mp.len() >= *len) {
            best = Some((mp.len(), fstype.to_string()));
        }
    }
    match best.map(|(_, t)| t).as_deref() {
        Some("ext2" | "ext3" | "ext4") => "extfs".into(),
        Some(other) => other.into(),
        None => "<unknown>".into(),
    }
}

pub fn info(state: &State) -> Resp {
    let cfg = state.engine.config();
    let (total, running, paused, stopped) = state.engine.counts();
    let images = state.engine.images().list().len();
    let cgroup_version = if cfg.cgroup_root.join("cgroup.controllers").exists() { "2" } else { "1" };
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mirrors: Vec<String> = cfg.registry.mirrors.iter().map(|m| format!("{}/", m.trim_end_matches('/'))).collect();
    let features = cgroup_features(&cfg.cgroup_root);
    let warnings = cgroup_warnings(&features);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1");
    let body = json!({
        "ID": state.daemon_id.as_str(),
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", backing_fs(&mountinfo, &cfg.data_root)], ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["null"], "Authorization": null, "Log": ["json-file", "local"]},
        "MemoryLimit": features.memory,
        "SwapLimit": features.swap,
        "CpuCfsPeriod": features.cfs_period,
        "CpuCfsQuota": features.cfs_quota,
        "CPUShares": features.shares,
        "CPUSet": features.cpuset,
        "PidsLimit": features.pids,
        "IPv4Forwarding": ip_forward,
        "Debug": false,
        "NFd": std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        "OomKillDisable": false,
        "SystemTime": berth_engine::timefmt::now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": state.engine.events().listeners(),
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
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": if warnings.is_empty() { serde_json::Value::Null } else { json!(warnings) },
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

/// `GET /events?since=&until=&filters=`: replays the history in range, then streams
/// live events until `until` (or until the client goes).
pub fn events(state: &State, ctx: &Ctx) -> Resp {
    let filters = match berth_api::parse_filters(ctx.q("filters")) {
        Ok(f) => f,
        Err(e) => return crate::http::error(StatusCode::BAD_REQUEST, &format!("invalid filter: {e}")),
    };
    if let Err(m) = berth_api::check_filter_keys(&filters, berth_api::filter_keys::EVENTS) {
        return crate::http::error(StatusCode::BAD_REQUEST, &m);
    }
    let (since, until) = match (ctx.timestamp_q("since"), ctx.timestamp_q("until")) {
        (Ok(s), Ok(u)) => (s.map(|t| (t * 1e9) as i64), u.map(|t| (t * 1e9) as i64)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
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

/// `GET /system/df`: images (with how many containers use each and their shared
/// size), containers with their
/// writable-layer sizes, the total unpacked layer size, and volumes with their sizes
/// and reference counts. No build cache exists in Berth yet.
pub fn disk_usage(state: &State) -> Resp {
    let containers = state.engine.list(true, "", true).unwrap_or_default();
    let mut images = state.engine.list_images();
    let shared = state.engine.image_shared_sizes();
    for img in &mut images {
        img.containers = containers.iter().filter(|c| c.image_id == img.id).count() as i64;
        img.shared_size = shared.get(&img.id).map_or(-1, |s| *s as i64);
    }
    let layers_size = berth_engine::dir_size(&state.engine.config().data_root.join("image").join("layers"));
    json(
        StatusCode::OK,
        &json!({
            "LayersSize": layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": state.engine.volumes_usage(),
            "BuildCache": crate::build::disk_usage(state),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn backing_fs_is_the_longest_mount_prefix() {
        let mi = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                  30 22 0:26 / /var/lib/berth rw - xfs /dev/vdb rw\n\
                  31 22 0:27 / /run rw - tmpfs tmpfs rw\n";
        assert_eq!(backing_fs(mi, Path::new("/var/lib/berth")), "xfs");
        assert_eq!(backing_fs(mi, Path::new("/var/lib/berth/x")), "xfs");
        assert_eq!(backing_fs(mi, Path::new("/var/lib/berthx")), "extfs");
        assert_eq!(backing_fs(mi, Path::new("/run/b")), "tmpfs");
    }

    #[test]
    fn cgroup_features_on_temp_roots() {
        let t = std::env::temp_dir().join(format!("berth-info-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("memory")).expect("mkdir");
        std::fs::write(t.join("memory/memory.limit_in_bytes"), "").expect("write");
        let f = cgroup_features(&t);
        assert!(f.memory && !f.swap && !f.pids);
        let w = cgroup_warnings(&f);
        assert!(w.contains(&"WARNING: No swap limit support".to_string()), "{w:?}");
        std::fs::write(t.join("cgroup.controllers"), "cpu memory pids").expect("write");
        let f = cgroup_features(&t);
        assert!(f.memory && f.swap && f.shares && f.pids && !f.cpuset);
        let _ = std::fs::remove_dir_all(&t);
    }
}
