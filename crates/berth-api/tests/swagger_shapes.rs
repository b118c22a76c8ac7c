//! berth-api's hand-written types against Docker's own swagger, through the models
//! `bollard-stubs` generates from it (current to API 1.53): everything Berth sends must
//! decode into Docker's model with the same JSON types, and every key Berth sends must be
//! one Docker's model knows (a misspelt `rename` would show up as a key the model drops).
//!
//! Why the models are a test oracle and not the wire types: every field of the generated
//! models is an `Option` skipped when `None`, so answers built from them would leave out
//! the keys Docker always sends (`"Cmd": null`, `"Labels": {}`), which clients index
//! directly (docker-py's `container['Config']['Cmd']`). See docs/architecture.md.

use std::collections::BTreeSet;

use berth_api::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The paths of every key in `v` whose value is not null (objects only; array elements
/// are walked with `[]`). Maps keyed by data (labels, ports, env-like maps) are skipped.
fn keys(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    const DATA_MAPS: &[&str] = &[
        "Labels", "ExposedPorts", "Volumes", "Ports", "PortBindings", "Tmpfs", "Networks", "Config",
        "Options", "Data", "Sysctls", "StorageOpt", "EndpointsConfig", "Attributes", "LogConfig.Config",
    ];
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if x.is_null() {
                    continue;
                }
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(path.clone());
                let data_map = DATA_MAPS.iter().any(|d| path == *d || path.ends_with(&format!(".{d}")))
                    && !matches!(k.as_str(), "Config" if x.get("Image").is_some() || x.get("Cmd").is_some());
                if !data_map {
                    keys(x, &path, out);
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                keys(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Keys that API versions Berth serves (up to 1.47) still carry but the 1.53 model has
/// dropped: `VirtualSize` (removed in 1.44 for clients that ask for ≥ 1.44, still sent
/// to older ones) and the container-level copies of the default network's settings in
/// `NetworkSettings` (deprecated since 1.21 and removed from the model in 1.52); an
/// image's `Parent`, `DockerVersion` and the container-only keys of its `Config`, which
/// the model dropped when image inspect's `Config` became an image config (API 1.50).
const LEGACY_KEYS: &[&str] = &[
    "Parent",
    "DockerVersion",
    "Config.AttachStderr",
    "Config.AttachStdin",
    "Config.AttachStdout",
    "Config.Domainname",
    "Config.Hostname",
    "Config.Image",
    "Config.OpenStdin",
    "Config.StdinOnce",
    "Config.Tty",
    "VirtualSize",
    "NetworkSettings.Bridge",
    "NetworkSettings.EndpointID",
    "NetworkSettings.Gateway",
    "NetworkSettings.GlobalIPv6Address",
    "NetworkSettings.GlobalIPv6PrefixLen",
    "NetworkSettings.HairpinMode",
    "NetworkSettings.IPAddress",
    "NetworkSettings.IPPrefixLen",
    "NetworkSettings.IPv6Gateway",
    "NetworkSettings.LinkLocalIPv6Address",
    "NetworkSettings.LinkLocalIPv6PrefixLen",
    "NetworkSettings.MacAddress",
];

/// `ours` decodes into Docker's model `M`, and no non-null key of ours is unknown to it.
#[track_caller]
fn conforms<T: Serialize, M: DeserializeOwned + Serialize>(what: &str, ours: &T) {
    let json = serde_json::to_value(ours).expect("serialize ours");
    let model: M = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("{what}: Docker's model refuses our JSON: {e}\n{json:#}"));
    let back = serde_json::to_value(&model).expect("serialize model");
    let (mut mine, mut theirs) = (BTreeSet::new(), BTreeSet::new());
    keys(&json, "", &mut mine);
    keys(&back, "", &mut theirs);
    let unknown: Vec<_> = mine.difference(&theirs).filter(|k| !LEGACY_KEYS.contains(&k.as_str())).collect();
    assert!(unknown.is_empty(), "{what}: keys Docker's model does not know: {unknown:?}");
}

fn sample_config() -> ContainerConfig {
    ContainerConfig {
        hostname: "abc".into(),
        image: "busybox".into(),
        cmd: Some(vec!["sh".into()]),
        env: Some(vec!["A=1".into()]),
        working_dir: "/".into(),
        labels: Some([("a".to_string(), "b".to_string())].into()),
        stop_signal: Some("SIGTERM".into()),
        ..Default::default()
    }
}

#[test]
fn container_answers_conform() {
    let inspect = ContainerInspect {
        id: "a".repeat(64),
        name: "/x".into(),
        config: sample_config(),
        host_config: HostConfig { memory: 64 << 20, binds: Some(vec!["/a:/b:ro".into()]), ..Default::default() },
        ..Default::default()
    };
    conforms::<_, bollard_stubs::models::ContainerInspectResponse>("inspect", &inspect);
    // With a healthcheck: Config.Healthcheck and State.Health.
    let mut healthy = inspect.clone();
    healthy.config.healthcheck = Some(serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000, "Retries": 1}));
    healthy.state.health = Some(Health {
        status: "healthy".into(),
        failing_streak: 0,
        log: vec![HealthcheckResult {
            start: "2026-12-01T07:00:00.1Z".into(),
            end: "2026-12-01T07:00:00.2Z".into(),
            exit_code: 0,
            output: "ok\n".into(),
        }],
    });
    conforms::<_, bollard_stubs::models::ContainerInspectResponse>("inspect with health", &healthy);
    let summary = ContainerSummary { id: "a".repeat(64), names: vec!["/x".into()], ..Default::default() };
    conforms::<_, bollard_stubs::models::ContainerSummary>("ps", &summary);
    conforms::<_, bollard_stubs::models::ContainerConfig>("config", &sample_config());
    conforms::<_, bollard_stubs::models::HostConfig>("host config", &HostConfig::default());
    conforms::<_, bollard_stubs::models::ContainerWaitResponse>("wait", &WaitResponse::default());
    conforms::<_, bollard_stubs::models::ContainerCreateResponse>(
        "create",
        &ContainerCreateResponse { id: "a".repeat(64), warnings: vec![] },
    );
}

#[test]
fn image_and_system_answers_conform() {
    let image = ImageSummary { id: "sha256:x".into(), repo_tags: vec!["busybox:latest".into()], ..Default::default() };
    conforms::<_, bollard_stubs::models::ImageSummary>("images", &image);
    let inspect = ImageInspect { id: "sha256:x".into(), config: sample_config(), ..Default::default() };
    conforms::<_, bollard_stubs::models::ImageInspect>("image inspect", &inspect);
    conforms::<_, bollard_stubs::models::SystemVersion>("version", &VersionResponse::default());
    conforms::<_, bollard_stubs::models::ExecInspectResponse>("exec inspect", &ExecInspect::default());
    conforms::<_, bollard_stubs::models::EventMessage>("event", &EventMessage::default());
}
