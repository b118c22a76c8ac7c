//! Docker Engine API wire types shared by `berthd` (server side) and `berth` (client side).
//!
//! Key names and shapes follow what the real docker CLI sends and reads (see
//! `shared/docs/engine-api-trace.md`). Every request field accepts `null` and unknown
//! fields are ignored, because clients of many API versions talk to us. This crate
//! depends on serde only: no HTTP, no engine.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

mod containers;
mod exec;
mod filters;
mod images;
mod networks;
pub mod reference;
mod system;
pub mod time;
pub mod units;
pub mod version;
mod volumes;

pub use containers::*;
pub use exec::*;
pub use filters::*;
pub use images::*;
pub use networks::*;
pub use system::*;
pub use volumes::*;

/// Labels, env maps and similar string maps keep a stable order.
pub type Map = BTreeMap<String, String>;

/// The error body of every non-2xx answer: `{"message": "..."}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}

/// Accepts a JSON string or an array of strings (older clients send `"Cmd": "ls -l"`).
pub(crate) fn str_or_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
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
pub(crate) fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {

    #[test]
    fn summaries_accept_null_lists() {
        let c: ContainerSummary = serde_json::from_str(r#"{"Id":"a","Names":null,"Ports":null,"Labels":null,"Mounts":null,"HostConfig":null,"NetworkSettings":null}"#).expect("container");
        assert!(
            c.names.is_empty() && c.ports.is_empty() && c.labels.is_empty() && c.mounts.is_empty()
        );
        let i: ImageSummary =
            serde_json::from_str(r#"{"Id":"sha256:x","RepoTags":null,"RepoDigests":null}"#)
                .expect("image");
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
        assert_eq!(
            req.config.cmd,
            Some(vec!["echo".to_string(), "hi".to_string()])
        );
        assert_eq!(req.config.image, "busybox");
        assert!(req.config.attach_stdout);
        let hc = req.host_config.expect("host config");
        assert_eq!(hc.network_mode, "default");
        assert_eq!(hc.memory_swappiness, Some(-1));
        assert!(req
            .networking_config
            .expect("nc")
            .endpoints_config
            .expect("ec")
            .contains_key("default"));
    }

    #[test]
    fn cmd_accepts_a_string() {
        let c: ContainerConfig =
            serde_json::from_str(r#"{"Cmd":"ls -l","Image":"x"}"#).expect("parse");
        assert_eq!(c.cmd, Some(vec!["ls".to_string(), "-l".to_string()]));
    }


    #[test]
    fn delete_items_serialize_like_docker() {
        let item = ImageDeleteItem {
            untagged: Some("a:latest".into()),
            deleted: None,
        };
        assert_eq!(
            serde_json::to_string(&item).expect("json"),
            r#"{"Untagged":"a:latest"}"#
        );
    }
}
