//! What `POST /containers/create` refuses before anything is written, with Docker's
//! texts: JSON of the wrong shape, a relative working directory, an unknown stop
//! signal, a bad healthcheck, memory and CPU limits out of range, unknown mount types
//! and networks. Pure functions over the API types; `containers.rs` calls them.

use berth_api::{ContainerConfig, HostConfig};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::signal;

/// Docker's smallest memory limit (`linuxMinMemory`, 6 MiB).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Go's `time.Millisecond` in nanoseconds: the shortest healthcheck interval, timeout
/// and start period Docker takes (`container.MinimumDuration`).
const MIN_HEALTH_DURATION_NS: i64 = 1_000_000;

/// Network modes that need no user-defined network.
const BUILTIN_NETWORKS: &[&str] = &["bridge", "default", "none", "host"];

/// The Go type each object-valued field of the create body decodes into, named as Go's
/// `encoding/json` names it in a type error.
const OBJECT_FIELDS: &[(&str, &str)] = &[
    ("HostConfig", "container.HostConfig"),
    ("NetworkingConfig", "network.NetworkingConfig"),
    ("Healthcheck", "container.HealthConfig"),
    ("Labels", "map[string]string"),
    ("ExposedPorts", "nat.PortSet"),
    ("Volumes", "map[string]struct {}"),
];

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Refuses a create body whose object-valued fields hold another JSON type (serde would
/// take an array for a struct; Go's decoder does not).
pub fn create_body_shape(body: &Value) -> Result<()> {
    let Some(obj) = body.as_object() else {
        return Err(Error::invalid(format!(
            "json: cannot unmarshal {} into Go value of type container.ContainerConfigWrapper",
            json_kind(body)
        )));
    };
    for (field, go_type) in OBJECT_FIELDS {
        if let Some(v) = obj.get(*field) {
            if !matches!(v, Value::Null | Value::Object(_)) {
                return Err(Error::invalid(format!(
                    "json: cannot unmarshal {} into Go struct field ContainerConfigWrapper.{field} of type {go_type}",
                    json_kind(v)
                )));
            }
        }
    }
    if let Some(Value::Object(hc)) = obj.get("HostConfig") {
        for (field, go_type) in [("RestartPolicy", "container.RestartPolicy"), ("LogConfig", "container.LogConfig")] {
            if let Some(v) = hc.get(field) {
                if !matches!(v, Value::Null | Value::Object(_)) {
                    return Err(Error::invalid(format!(
                        "json: cannot unmarshal {} into Go struct field HostConfig.HostConfig.{field} of type {go_type}",
                        json_kind(v)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Go's `time.Duration` string of a nanosecond count as Docker prints the minimum.
fn go_duration(ns: i64) -> String {
    if ns % 1_000_000 == 0 {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{ns}ns")
    }
}

fn check_healthcheck(h: &Value) -> Result<()> {
    let Value::Object(h) = h else { return Ok(()) };
    let int = |k: &str| -> Result<i64> {
        match h.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v.as_i64().ok_or_else(|| {
                Error::invalid(format!(
                    "json: cannot unmarshal {} into Go struct field HealthConfig.Healthcheck.{k} of type time.Duration",
                    json_kind(v)
                ))
            }),
        }
    };
    for key in ["Interval", "Timeout", "StartPeriod", "StartInterval"] {
        let v = int(key)?;
        if v != 0 && v < MIN_HEALTH_DURATION_NS {
            return Err(Error::invalid(format!(
                "{key} in Healthcheck cannot be less than {}",
                go_duration(MIN_HEALTH_DURATION_NS)
            )));
        }
    }
    if int("Retries")? < 0 {
        return Err(Error::invalid("Retries in Healthcheck cannot be negative"));
    }
    Ok(())
}

/// The container's own configuration (`Config`), as Docker's `verifyContainerSettings`.
pub fn container_config(cfg: &ContainerConfig) -> Result<()> {
    if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
        return Err(Error::invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            cfg.working_dir
        )));
    }
    if let Some(s) = cfg.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        signal::parse(s).map_err(Error::invalid)?;
    }
    if let Some(h) = &cfg.healthcheck {
        check_healthcheck(h)?;
    }
    Ok(())
}

/// `HostConfig`, as Docker's `verifyPlatformContainerSettings` and mount validation;
/// `ncpu` is the number of CPUs the host has.
pub fn host_config(hc: &HostConfig, ncpu: usize) -> Result<()> {
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
    }
    if hc.memory_reservation > 0 && hc.memory_reservation < MIN_MEMORY {
        return Err(Error::invalid("Minimum memory reservation allowed is 6MB"));
    }
    if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(Error::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if hc.memory_swap > 0 && hc.memory == 0 {
        return Err(Error::invalid("You should always set the Memory limit when using Memoryswap limit, see usage"));
    }
    if hc.nano_cpus > 0 && hc.cpu_period > 0 {
        return Err(Error::invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set"));
    }
    if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
        return Err(Error::invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set"));
    }
    let max_nano = i64::try_from(ncpu).unwrap_or(i64::MAX).saturating_mul(1_000_000_000);
    if hc.nano_cpus < 0 || hc.nano_cpus > max_nano {
        return Err(Error::invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
        return Err(Error::invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(Error::invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
    }
    if hc.oom_score_adj < -1000 || hc.oom_score_adj > 1000 {
        return Err(Error::invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        )));
    }
    for m in hc.mounts.iter().flatten() {
        crate::mounts::parse_mount(m)?;
    }
    network_mode(&hc.network_mode)
}

/// Built-in modes and `container:<id>` pass; any other name must be a user network,
/// which create resolves (Docker's 404 `network X not found` when it is not).
fn network_mode(mode: &str) -> Result<()> {
    if mode.is_empty() || BUILTIN_NETWORKS.contains(&mode) {
        return Ok(());
    }
    if let Some(c) = mode.strip_prefix("container:") {
        if c.is_empty() {
            return Err(Error::invalid("Invalid network mode: invalid container format container:<name|id>"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    fn err_of(r: Result<()>) -> (ErrorKind, String) {
        let e = r.expect_err("must be refused");
        (e.kind(), e.message.clone())
    }

    #[test]
    fn body_shapes_like_go() {
        assert!(create_body_shape(&json!({"Image": "busybox", "HostConfig": {"Memory": 0}})).is_ok());
        assert!(create_body_shape(&json!({"Image": "busybox", "HostConfig": null})).is_ok());
        let cases = [
            (json!({"HostConfig": []}), "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig"),
            (json!({"Healthcheck": "x"}), "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Healthcheck of type container.HealthConfig"),
            (json!({"Labels": [1]}), "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Labels of type map[string]string"),
            (json!([]), "json: cannot unmarshal array into Go value of type container.ContainerConfigWrapper"),
            (json!({"HostConfig": {"RestartPolicy": "always"}}), "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.RestartPolicy of type container.RestartPolicy"),
        ];
        for (body, want) in cases {
            assert_eq!(err_of(create_body_shape(&body)), (ErrorKind::InvalidArgument, want.to_string()), "{body}");
        }
    }

    #[test]
    fn container_configs_like_docker() {
        let ok = ContainerConfig { working_dir: "/srv".into(), stop_signal: Some("SIGUSR1".into()), ..Default::default() };
        assert!(container_config(&ok).is_ok());
        let cases: Vec<(ContainerConfig, &str)> = vec![
            (
                ContainerConfig { working_dir: "srv".into(), ..Default::default() },
                "the working directory 'srv' is invalid, it needs to be an absolute path",
            ),
            (ContainerConfig { stop_signal: Some("SIGFOO".into()), ..Default::default() }, "Invalid signal: SIGFOO"),
            (
                ContainerConfig { healthcheck: Some(json!({"Interval": 10})), ..Default::default() },
                "Interval in Healthcheck cannot be less than 1ms",
            ),
            (
                ContainerConfig { healthcheck: Some(json!({"Timeout": 999_999})), ..Default::default() },
                "Timeout in Healthcheck cannot be less than 1ms",
            ),
            (
                ContainerConfig { healthcheck: Some(json!({"Retries": -1})), ..Default::default() },
                "Retries in Healthcheck cannot be negative",
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(err_of(container_config(&cfg)), (ErrorKind::InvalidArgument, want.to_string()));
        }
        let hc = ContainerConfig { healthcheck: Some(json!({"Interval": 1_000_000_000, "Retries": 3})), ..Default::default() };
        assert!(container_config(&hc).is_ok());
    }

    #[test]
    fn host_configs_like_docker() {
        let base = HostConfig::default;
        assert!(host_config(&base(), 2).is_ok());
        assert!(host_config(&HostConfig { memory: MIN_MEMORY, nano_cpus: 2_000_000_000, ..base() }, 2).is_ok());
        let cases: Vec<(HostConfig, ErrorKind, &str)> = vec![
            (HostConfig { memory: 1024 * 1024, ..base() }, ErrorKind::InvalidArgument, "Minimum memory limit allowed is 6MB"),
            (
                HostConfig { nano_cpus: 1_000_000_000_000_000_000, ..base() },
                ErrorKind::InvalidArgument,
                "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
            ),
            (
                HostConfig { nano_cpus: -1, ..base() },
                ErrorKind::InvalidArgument,
                "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
            ),
            (
                HostConfig { nano_cpus: 1, cpu_period: 100_000, ..base() },
                ErrorKind::InvalidArgument,
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ),
            (
                HostConfig { mounts: Some(vec![json!({"Type": "nope", "Target": "/x"})]), ..base() },
                ErrorKind::InvalidArgument,
                "invalid mount config for type \"nope\": mount type unknown",
            ),
            (
                HostConfig { mounts: Some(vec![json!({"Type": "bind", "Target": "/x"})]), ..base() },
                ErrorKind::InvalidArgument,
                "invalid mount config for type \"bind\": field Source must not be empty",
            ),
            (
                HostConfig { mounts: Some(vec![json!({"Type": "tmpfs", "Target": "rel"})]), ..base() },
                ErrorKind::InvalidArgument,
                "invalid mount config for type \"tmpfs\": invalid mount path: 'rel' mount path must be absolute",
            ),
            (
                HostConfig { oom_score_adj: 1001, ..base() },
                ErrorKind::InvalidArgument,
                "Invalid value 1001, range for oom score adj is [-1000, 1000]",
            ),
        ];
        for (hc, kind, want) in cases {
            assert_eq!(err_of(host_config(&hc, 2)), (kind, want.to_string()));
        }
        for mode in ["bridge", "none", "host", "default", "container:abc", ""] {
            assert!(host_config(&HostConfig { network_mode: mode.into(), ..base() }, 2).is_ok(), "{mode}");
        }
    }

    /// Fuzz: any create body (shaped like the real ones, with arbitrary values) goes
    /// through the whole pure create path — shape check, decode, validation, merge
    /// with an image config, binds, security and log options — without a panic.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const CONFIG_KEYS: &[&str] = &[
            "Image", "WorkingDir", "StopSignal", "Env", "Cmd", "Entrypoint", "User", "Healthcheck",
            "Labels", "ExposedPorts", "Volumes", "Tty", "OpenStdin", "StopTimeout", "Shell", "HostConfig",
            "NetworkingConfig",
        ];
        const HOST_KEYS: &[&str] = &[
            "Binds", "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuPeriod", "CpuQuota",
            "Mounts", "NetworkMode", "CapAdd", "CapDrop", "SecurityOpt", "Ulimits", "LogConfig", "Tmpfs",
            "ConsoleSize", "RestartPolicy", "Privileged", "ReadonlyRootfs", "OomScoreAdj", "Init",
        ];

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
                ".{0,12}".prop_map(Value::String),
                prop::sample::select(vec!["/", "rel", "SIGTERM", "SIGFOO", "bind", "tmpfs", "a:b:ro", "/x:/y:rw,z", "seccomp=unconfined", "max-size=1k", "nofile=1:2"]).prop_map(|s| Value::String(s.into())),
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[A-Za-z]{1,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn object(keys: &'static [&'static str], v: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
            prop::collection::vec((prop::sample::select(keys), v), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
        }

        fn body() -> impl Strategy<Value = Value> {
            let host = object(HOST_KEYS, value().boxed()).boxed();
            let inner = prop_oneof![3 => host, 1 => value()].boxed();
            (object(CONFIG_KEYS, value().boxed()), inner).prop_map(|(mut b, hc)| {
                if let Value::Object(m) = &mut b {
                    m.insert("HostConfig".into(), hc);
                }
                b
            })
        }

        fn create_path(raw: Value) {
            if create_body_shape(&raw).is_err() {
                return;
            }
            let Ok(req) = serde_json::from_value::<berth_api::ContainerCreateRequest>(raw) else { return };
            let mut cfg = req.config;
            if container_config(&cfg).is_err() {
                return;
            }
            let hc = req.host_config.unwrap_or_default();
            if host_config(&hc, 2).is_err() {
                return;
            }
            let image = ContainerConfig {
                cmd: Some(vec!["sh".into()]),
                env: Some(vec!["PATH=/bin".into()]),
                working_dir: "/".into(),
                ..Default::default()
            };
            crate::merge::merge(&mut cfg, &image);
            let _ = crate::merge::command(&cfg);
            let _ = crate::mounts::of(&hc);
            let _ = crate::containers::security_spec(&hc);
            let _ = crate::containers::log_options(&hc);
            let _ = crate::lifecycle::validate_restart_policy(&hc);
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
            #[test]
            fn create_bodies_never_panic(raw in body()) {
                create_path(raw);
            }

            #[test]
            fn arbitrary_json_never_panics(raw in value()) {
                create_path(raw);
            }
        }
    }
}

