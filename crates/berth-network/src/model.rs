//! The persisted network model: a network's record (`<data-root>/network/<id>.json`)
//! and a container's endpoint on it (kept in the container's record by the engine).
//! Plain data; IPAM decisions are in `ipam.rs`, kernel work in `bridge.rs`/`netns.rs`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use berth_api::{EndpointIpamConfig, Ipam, IpamPool, Network, NetworkContainer};
use serde::{Deserialize, Serialize};

use crate::ipam::Cidr4;

/// The network drivers Berth has: Docker's `bridge`, `host` and `null`.
pub const DRIVERS: &[&str] = &["bridge", "host", "null"];

/// The names of the predefined networks, which can be neither created nor removed.
pub const PREDEFINED: &[&str] = &["bridge", "host", "none"];

/// One `IPAM.Config` entry of a network, parsed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IpamConfig {
    pub subnet: Cidr4,
    pub gateway: Ipv4Addr,
    /// The part of the subnet containers' addresses are taken from (`--ip-range`).
    #[serde(default)]
    pub ip_range: Option<Cidr4>,
    /// `--aux-address name=ip`: reserved, never handed out.
    #[serde(default)]
    pub aux: BTreeMap<String, Ipv4Addr>,
}

/// The IPv6 part of a network (`--ipv6 --subnet <v6>`), addresses given by the user only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ipam6Config {
    pub subnet: Ipv6Addr,
    pub prefix: u8,
    pub gateway: Ipv6Addr,
}

/// What `<data-root>/network/<id>.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkRecord {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub ipam: Vec<IpamConfig>,
    #[serde(default)]
    pub ipam6: Vec<Ipam6Config>,
    /// IPAM driver options as given (`--ipam-opt`); `None` when the request had none
    /// (inspect then shows `null`, as Docker's does; the docker CLI always sends `{}`).
    #[serde(default)]
    pub ipam_options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The bridge interface (`berth0`-like for the default one, `br-<12 hex>` else);
    /// empty for `host` and `null`.
    #[serde(default)]
    pub bridge: String,
    /// MTU of the bridge and its veths (0: the kernel's default, 1500).
    #[serde(default)]
    pub mtu: u32,
}

impl NetworkRecord {
    pub fn is_predefined(&self) -> bool {
        PREDEFINED.contains(&self.name.as_str())
    }

    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// Docker's `NetworkResource` with the given attached containers.
    pub fn to_api(&self, containers: BTreeMap<String, NetworkContainer>) -> Network {
        let mut pools: Vec<IpamPool> = self
            .ipam
            .iter()
            .map(|p| IpamPool {
                subnet: p.subnet.to_string(),
                ip_range: p.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                gateway: p.gateway.to_string(),
                aux_addresses: if p.aux.is_empty() {
                    None
                } else {
                    Some(p.aux.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
                },
            })
            .collect();
        pools.extend(self.ipam6.iter().map(|p| IpamPool {
            subnet: format!("{}/{}", p.subnet, p.prefix),
            gateway: p.gateway.to_string(),
            ..Default::default()
        }));
        let config = if self.driver == "bridge" || !pools.is_empty() { Some(pools) } else { Some(Vec::new()) };
        Network {
            name: self.name.clone(),
            id: self.id.clone(),
            created: self.created.clone(),
            scope: "local".into(),
            driver: self.driver.clone(),
            enable_ipv6: self.enable_ipv6,
            ipam: Ipam {
                driver: "default".into(),
                options: self.ipam_options.clone(),
                config,
            },
            internal: self.internal,
            attachable: self.attachable,
            ingress: false,
            config_from: Default::default(),
            config_only: false,
            containers,
            options: self.options.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// Options Docker shows on its default bridge (`com.docker.network.bridge.*`).
pub const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";

/// A container's endpoint on one network: its configuration (kept while the container
/// is stopped) and, while it runs, the addresses it was given.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EndpointRecord {
    pub container_id: String,
    pub network_id: String,
    /// 64 hex, new at every attach; empty while detached (container not running).
    pub endpoint_id: String,
    /// Address and prefix while attached.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub ipv6: Option<(Ipv6Addr, u8)>,
    pub gateway6: Option<Ipv6Addr>,
    /// `02:42:<ipv4 bytes>` unless the user asked for one (`mac_config`).
    pub mac: String,
    /// `--mac-address` as given.
    pub mac_config: String,
    pub aliases: Vec<String>,
    pub links: Vec<String>,
    pub dns_names: Vec<String>,
    pub driver_opts: BTreeMap<String, String>,
    /// `--ip`, `--ip6`: the addresses asked for.
    pub static_ipam: EndpointIpamConfig,
    /// The interface inside the container (`eth0`, `eth1`…) while attached.
    pub ifname: String,
    /// The host end of the veth pair while attached.
    pub host_ifname: String,
}

impl EndpointRecord {
    pub fn is_attached(&self) -> bool {
        !self.endpoint_id.is_empty()
    }

    /// Forgets what an attach gave (at stop); keeps the configuration.
    pub fn detach(&mut self) {
        self.endpoint_id.clear();
        self.ipv4 = None;
        self.gateway = None;
        self.ipv6 = None;
        self.gateway6 = None;
        self.mac.clear();
        self.ifname.clear();
        self.host_ifname.clear();
    }

    /// What inspect shows under `NetworkSettings.Networks[<name>]`.
    pub fn to_api(&self) -> berth_api::EndpointSettings {
        let (ip, len) = self.ipv4.map(|(a, l)| (a.to_string(), i64::from(l))).unwrap_or_default();
        let (ip6, len6) = self.ipv6.map(|(a, l)| (a.to_string(), i64::from(l))).unwrap_or_default();
        berth_api::EndpointSettings {
            ipam_config: if self.static_ipam.is_empty() { None } else { Some(self.static_ipam.clone()) },
            links: if self.links.is_empty() { None } else { Some(self.links.clone()) },
            aliases: if self.aliases.is_empty() { None } else { Some(self.aliases.clone()) },
            network_id: self.network_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            gateway: self.gateway.map(|g| g.to_string()).unwrap_or_default(),
            ip_address: ip,
            ip_prefix_len: len,
            ipv6_gateway: self.gateway6.map(|g| g.to_string()).unwrap_or_default(),
            global_ipv6_address: ip6,
            global_ipv6_prefix_len: len6,
            mac_address: if self.is_attached() { self.mac.clone() } else { self.mac_config.clone() },
            driver_opts: if self.driver_opts.is_empty() { None } else { Some(self.driver_opts.clone()) },
            dns_names: if self.dns_names.is_empty() { None } else { Some(self.dns_names.clone()) },
        }
    }
}

/// Docker's MAC for an IPv4 address: `02:42` and the address's four bytes.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_follow_the_address() {
        assert_eq!(mac_for(Ipv4Addr::new(172, 17, 0, 4)), "02:42:ac:11:00:04");
    }

    #[test]
    fn detached_endpoint_keeps_config_only() {
        let mut e = EndpointRecord {
            endpoint_id: "e".repeat(64),
            ipv4: Some((Ipv4Addr::new(10, 0, 0, 2), 24)),
            mac: "02:42:0a:00:00:02".into(),
            aliases: vec!["db".into()],
            ..Default::default()
        };
        assert_eq!(e.to_api().ip_address, "10.0.0.2");
        assert_eq!(e.to_api().ip_prefix_len, 24);
        e.detach();
        let api = e.to_api();
        assert_eq!((api.ip_address.as_str(), api.endpoint_id.as_str(), api.mac_address.as_str()), ("", "", ""));
        assert_eq!(api.aliases, Some(vec!["db".to_string()]));
    }
}
