//! Docker Engine API wire types shared by `berthd` (server side) and `berth` (client side).
//!
//! Key names and shapes follow what the real docker CLI sends and reads (see
//! `shared/docs/engine-api-trace.md`). Every request field accepts `null` and unknown
//! fields are ignored, because clients of many API versions talk to us. This crate
//! depends on serde only: no HTTP, no engine.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub mod units;
pub mod version;

/// Labels, env maps and similar string maps keep a stable order.
pub type Map = BTreeMap<String, String>;

/// The error body of every non-2xx answer: `{"message": "..."}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}

/// Accepts a JSON string or an array of strings (older clients send `"Cmd": "ls -l"`).
fn str_or_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(s.split_whitespace().map(str::to_owned).collect()),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

/// Reads `null` as the empty value: Docker sends `"RepoTags": null`, `"Ports": null`, …
/// in list answers, and Go clients treat that as empty.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Config` of a container as created and as shown by inspect (also an image's config).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_or_vec")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: String,
    #[serde(deserialize_with = "str_or_vec")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<Map>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: Option<Map>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// `HostConfig`: what the create request carries and inspect shows back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    pub log_config: LogConfig,
    pub network_mode: String,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    pub console_size: Option<Vec<u32>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub cgroupns_mode: String,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    pub ipc_mode: String,
    pub cgroup: String,
    pub links: Option<Vec<String>>,
    pub oom_score_adj: i64,
    pub pid_mode: String,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub shm_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub isolation: String,
    pub cpu_shares: i64,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cgroup_parent: String,
    pub blkio_weight: u16,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_realtime_period: i64,
    pub cpu_realtime_runtime: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub devices: Option<Vec<Value>>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub device_requests: Option<Vec<Value>>,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Map>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Value>>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            binds: None,
            container_id_file: String::new(),
            log_config: LogConfig::default(),
            network_mode: String::new(),
            port_bindings: None,
            restart_policy: RestartPolicy { name: "no".into(), maximum_retry_count: 0 },
            auto_remove: false,
            volume_driver: String::new(),
            volumes_from: None,
            console_size: Some(vec![0, 0]),
            cap_add: None,
            cap_drop: None,
            cgroupns_mode: String::new(),
            dns: None,
            dns_options: None,
            dns_search: None,
            extra_hosts: None,
            group_add: None,
            ipc_mode: String::new(),
            cgroup: String::new(),
            links: None,
            oom_score_adj: 0,
            pid_mode: String::new(),
            privileged: false,
            publish_all_ports: false,
            readonly_rootfs: false,
            security_opt: None,
            uts_mode: String::new(),
            userns_mode: String::new(),
            shm_size: 0,
            runtime: None,
            isolation: String::new(),
            cpu_shares: 0,
            memory: 0,
            nano_cpus: 0,
            cgroup_parent: String::new(),
            blkio_weight: 0,
            cpu_period: 0,
            cpu_quota: 0,
            cpu_realtime_period: 0,
            cpu_realtime_runtime: 0,
            cpuset_cpus: String::new(),
            cpuset_mems: String::new(),
            devices: None,
            device_cgroup_rules: None,
            device_requests: None,
            memory_reservation: 0,
            memory_swap: 0,
            memory_swappiness: None,
            oom_kill_disable: None,
            pids_limit: None,
            ulimits: None,
            init: None,
            tmpfs: None,
            mounts: None,
            masked_paths: None,
            readonly_paths: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<Value>,
    pub links: Option<Vec<String>>,
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    pub mac_address: String,
    pub driver_opts: Option<Map>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<BTreeMap<String, EndpointSettings>>,
}

/// Body of `POST /containers/create`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    pub host_config: Option<HostConfig>,
    pub networking_config: Option<NetworkingConfig>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub private_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryHostConfig {
    pub network_mode: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryNetworkSettings {
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// One entry of `GET /containers/json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    pub labels: Map,
    pub state: String,
    pub status: String,
    #[serde(deserialize_with = "null_default")]
    pub host_config: SummaryHostConfig,
    #[serde(deserialize_with = "null_default")]
    pub network_settings: SummaryNetworkSettings,
    #[serde(deserialize_with = "null_default")]
    pub mounts: Vec<MountPoint>,
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState {
            status: "created".into(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct GraphDriver {
    pub data: Option<Map>,
    pub name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    pub sandbox_key: String,
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<Value>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<Value>>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    pub mac_address: String,
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// `GET /containers/{id}/json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    pub name: String,
    pub restart_count: i64,
    pub driver: String,
    pub platform: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriver,
    pub mounts: Vec<MountPoint>,
    pub config: ContainerConfig,
    pub network_settings: NetworkSettings,
}

/// Body of `POST /containers/{id}/wait`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitResponse {
    pub error: Option<WaitError>,
    pub status_code: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitError {
    pub message: String,
}

/// One entry of `GET /images/json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageSummary {
    pub containers: i64,
    pub created: i64,
    pub id: String,
    pub labels: Option<Map>,
    pub parent_id: String,
    #[serde(deserialize_with = "null_default")]
    pub repo_digests: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub repo_tags: Vec<String>,
    pub shared_size: i64,
    pub size: i64,
    pub virtual_size: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// `GET /images/{name}/json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    pub size: i64,
    pub virtual_size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: Option<Value>,
}

/// One item of `DELETE /images/{name}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageDeleteItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

/// One line of a pull/push/build/load JSON stream.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ComponentVersion {
    pub name: String,
    pub version: String,
    pub details: Option<Map>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Platform {
    pub name: String,
}

/// `GET /version`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VersionResponse {
    pub platform: Platform,
    pub components: Vec<ComponentVersion>,
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub experimental: bool,
    pub build_time: String,
}

/// `POST /containers/{id}/exec` body.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub user: String,
    pub privileged: bool,
    pub tty: bool,
    pub console_size: Option<Vec<u32>>,
    pub attach_stdin: bool,
    pub attach_stderr: bool,
    pub attach_stdout: bool,
    pub detach: bool,
    pub detach_keys: String,
    pub env: Option<Vec<String>>,
    pub working_dir: String,
    #[serde(deserialize_with = "str_or_vec")]
    pub cmd: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartConfig {
    pub detach: bool,
    pub tty: bool,
    pub console_size: Option<Vec<u32>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExecProcessConfig {
    pub tty: bool,
    pub entrypoint: String,
    pub arguments: Vec<String>,
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `GET /exec/{id}/json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub process_config: ExecProcessConfig,
    pub open_stdin: bool,
    pub open_stderr: bool,
    pub open_stdout: bool,
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub detach_keys: String,
    pub pid: i64,
}

/// `{"Id": "..."}` answers (exec create, network create).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IdResponse {
    pub id: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    pub attributes: Map,
}

/// One object of the `/events` stream.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EventMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// `POST /containers/prune`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainersPruneResponse {
    pub containers_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

/// `POST /images/prune`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImagesPruneResponse {
    pub images_deleted: Option<Vec<ImageDeleteItem>>,
    pub space_reclaimed: u64,
}

/// `GET /containers/{id}/top`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct TopResponse {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// The filter keys each endpoint accepts, as Docker's daemon lists them; any other key
/// is refused with [`check_filter_keys`].
pub mod filter_keys {
    pub const CONTAINER_LIST: &[&str] = &[
        "ancestor", "before", "expose", "exited", "health", "id", "is-task", "isolation", "label",
        "name", "network", "publish", "since", "status", "volume",
    ];
    pub const CONTAINER_PRUNE: &[&str] = &["label", "label!", "until"];
    pub const IMAGE_PRUNE: &[&str] = &["dangling", "label", "label!", "until"];
    pub const EVENTS: &[&str] = &[
        "config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
        "scope", "secret", "service", "type", "volume",
    ];
}

/// Refuses a filter key the endpoint does not know: Docker's `invalid filter 'foo'`.
pub fn check_filter_keys(filters: &BTreeMap<String, Vec<String>>, accepted: &[&str]) -> Result<(), String> {
    match filters.keys().find(|k| !accepted.contains(&k.as_str())) {
        Some(k) => Err(format!("invalid filter '{k}'")),
        None => Ok(()),
    }
}

/// Filters travel as JSON in the query: `{"name":{"web":true}}` (map form) or
/// `{"name":["web"]}` (list form, older clients). Both decode to name → values.
pub fn parse_filters(raw: &str) -> Result<BTreeMap<String, Vec<String>>, serde_json::Error> {
    let mut out = BTreeMap::new();
    if raw.trim().is_empty() {
        return Ok(out);
    }
    let v: BTreeMap<String, Value> = serde_json::from_str(raw)?;
    for (k, v) in v {
        let vals: Vec<String> = match v {
            Value::Object(m) => m
                .into_iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(true))
                .map(|(s, _)| s)
                .collect(),
            Value::Array(a) => a.into_iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            Value::String(s) => vec![s],
            _ => Vec::new(),
        };
        out.insert(k, vals);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn summaries_accept_null_lists() {
        let c: ContainerSummary = serde_json::from_str(r#"{"Id":"a","Names":null,"Ports":null,"Labels":null,"Mounts":null,"HostConfig":null,"NetworkSettings":null}"#).expect("container");
        assert!(c.names.is_empty() && c.ports.is_empty() && c.labels.is_empty() && c.mounts.is_empty());
        let i: ImageSummary = serde_json::from_str(r#"{"Id":"sha256:x","RepoTags":null,"RepoDigests":null}"#).expect("image");
        assert!(i.repo_tags.is_empty() && i.repo_digests.is_empty());
    }

    use super::*;

    #[test]
    fn create_body_from_the_trace_parses() {
        let body = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,
 "AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,
 "Cmd":["echo","hi"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,
 "OnBuild":null,"Labels":{},
 "HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},
  "NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},
  "AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,
  "CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,
  "MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,
  "MaskedPaths":null, "ReadonlyPaths":null},
 "NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,
  "Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"",
  "EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"",
  "GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;
        let req: ContainerCreateRequest = serde_json::from_str(body).expect("parse");
        assert_eq!(req.config.cmd, Some(vec!["echo".to_string(), "hi".to_string()]));
        assert_eq!(req.config.image, "busybox");
        assert!(req.config.attach_stdout);
        let hc = req.host_config.expect("host config");
        assert_eq!(hc.network_mode, "default");
        assert_eq!(hc.memory_swappiness, Some(-1));
        assert!(req.networking_config.expect("nc").endpoints_config.expect("ec").contains_key("default"));
    }

    #[test]
    fn cmd_accepts_a_string() {
        let c: ContainerConfig = serde_json::from_str(r#"{"Cmd":"ls -l","Image":"x"}"#).expect("parse");
        assert_eq!(c.cmd, Some(vec!["ls".to_string(), "-l".to_string()]));
    }

    #[test]
    fn filters_in_both_forms() {
        let f = parse_filters(r#"{"name":{"web":true},"status":["exited"]}"#).expect("parse");
        assert_eq!(f["name"], vec!["web"]);
        assert_eq!(f["status"], vec!["exited"]);
        assert!(parse_filters("").expect("empty").is_empty());
        assert_eq!(check_filter_keys(&f, filter_keys::CONTAINER_LIST), Ok(()));
        assert_eq!(
            check_filter_keys(&f, filter_keys::CONTAINER_PRUNE),
            Err("invalid filter 'name'".to_string())
        );
    }

    #[test]
    fn delete_items_serialize_like_docker() {
        let item = ImageDeleteItem { untagged: Some("a:latest".into()), deleted: None };
        assert_eq!(serde_json::to_string(&item).expect("json"), r#"{"Untagged":"a:latest"}"#);
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
            /// Any query text: parsed or refused, never a panic; a parsed one has only
            /// string values and key checks answer in Docker's words.
            #[test]
            fn filters_never_panic(raw in "\\PC{0,64}") {
                if let Ok(f) = parse_filters(&raw) {
                    if let Err(m) = check_filter_keys(&f, filter_keys::CONTAINER_PRUNE) {
                        prop_assert!(m.starts_with("invalid filter '"));
                    }
                }
            }

            /// Filters shaped like the real ones, in both the map and the list forms.
            #[test]
            fn filter_forms_agree(key in "[a-z!]{1,8}", vals in prop::collection::btree_set("[ -~]{0,10}", 0..4)) {
                let vals: Vec<String> = vals.into_iter().collect();
                let map: serde_json::Map<String, Value> = vals.iter().map(|v| (v.clone(), Value::Bool(true))).collect();
                let as_map = serde_json::json!({ key.clone(): map }).to_string();
                let as_list = serde_json::json!({ key.clone(): vals.clone() }).to_string();
                let a = parse_filters(&as_map).expect("map form");
                let b = parse_filters(&as_list).expect("list form");
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(a.get(&key).cloned().unwrap_or_default(), vals);
            }
        }
    }
}

