//! Networks on the wire: the endpoint settings containers carry (`NetworkingConfig`,
//! `NetworkSettings.Networks`), Docker's `NetworkResource` (inspect and list), the create
//! request and answer, connect/disconnect bodies and the prune answer.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{null_default, Map};

/// `EndpointSettings.IPAMConfig`: the static addresses asked for with `--ip`, `--ip6`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointIpamConfig {
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Option::is_none")]
    pub link_local_ips: Option<Vec<String>>,
}

impl EndpointIpamConfig {
    pub fn is_empty(&self) -> bool {
        self.ipv4_address.is_empty()
            && self.ipv6_address.is_empty()
            && self.link_local_ips.as_ref().is_none_or(|v| v.is_empty())
    }
}

/// One container's endpoint on one network, as create sends it and inspect shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
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
    /// API 1.44+: the names this endpoint answers to in the network's DNS.
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<BTreeMap<String, EndpointSettings>>,
}

/// One entry of `IPAM.Config`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamPool {
    // docker-py sends every key, unset ones as null.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub gateway: String,
    #[serde(rename = "AuxiliaryAddresses", skip_serializing_if = "Option::is_none")]
    pub aux_addresses: Option<Map>,
}

/// A network's `IPAM`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    #[serde(deserialize_with = "null_default")]
    pub driver: String,
    pub options: Option<Map>,
    pub config: Option<Vec<IpamPool>>,
}

impl Default for Ipam {
    fn default() -> Ipam {
        Ipam { driver: "default".into(), options: None, config: None }
    }
}

/// `Containers[<id>]` of a network's inspect.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `ConfigFrom` of a network.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    pub network: String,
}

/// Docker's `NetworkResource`: `GET /networks` entries and `GET /networks/{id}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    pub name: String,
    pub id: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    #[serde(deserialize_with = "null_default")]
    pub containers: BTreeMap<String, NetworkContainer>,
    #[serde(deserialize_with = "null_default")]
    pub options: Map,
    #[serde(deserialize_with = "null_default")]
    pub labels: Map,
}

/// Body of `POST /networks/create`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Deprecated since API 1.44 (always on); still sent by older clients.
    pub check_duplicate: Option<bool>,
    /// docker-py sends `"Driver": null` for the default.
    #[serde(deserialize_with = "null_default")]
    pub driver: String,
    #[serde(deserialize_with = "null_default")]
    pub scope: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    #[serde(deserialize_with = "null_default")]
    pub internal: bool,
    #[serde(deserialize_with = "null_default")]
    pub attachable: bool,
    #[serde(deserialize_with = "null_default")]
    pub ingress: bool,
    #[serde(deserialize_with = "null_default")]
    pub config_only: bool,
    pub config_from: Option<ConfigReference>,
    pub options: Option<Map>,
    pub labels: Option<Map>,
}

/// Answer of `POST /networks/create` (201).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// Body of `POST /networks/{id}/connect`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnectRequest {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
}

/// Body of `POST /networks/{id}/disconnect`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkDisconnectRequest {
    pub container: String,
    pub force: bool,
}

/// Answer of `POST /networks/prune`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPruneResponse {
    pub networks_deleted: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_cli_create_body_parses() {
        let body = r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"trnet","CheckDuplicate":true}"#;
        let r: NetworkCreateRequest = serde_json::from_str(body).expect("parse");
        assert_eq!(r.name, "trnet");
        assert_eq!(r.check_duplicate, Some(true));
        assert_eq!(r.ipam.expect("ipam").config, Some(vec![]));
    }

    #[test]
    fn endpoint_settings_parse_create_shape() {
        let body = r#"{"IPAMConfig":{"IPv4Address":"10.1.0.5"},"Links":null,"Aliases":["db"],"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}"#;
        let e: EndpointSettings = serde_json::from_str(body).expect("parse");
        assert_eq!(e.ipam_config.expect("ipam").ipv4_address, "10.1.0.5");
        assert_eq!(e.aliases, Some(vec!["db".to_string()]));
        let back = serde_json::to_value(EndpointSettings::default()).expect("ser");
        assert!(back["IPAMConfig"].is_null());
        assert!(back["DNSNames"].is_null());
    }

    #[test]
    fn network_serialises_dockers_keys() {
        let v = serde_json::to_value(Network::default()).expect("ser");
        for k in ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["IPAM"]["Driver"], "default");
    }
}
