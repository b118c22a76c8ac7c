//! berth-network: container networking below the engine. It owns the network model
//! (`model`: network and endpoint records; `store`: records on disk and the predefined
//! networks), IPAM (`ipam`, pure), and what a container's network configuration looks
//! like inside it: the generated `/etc/hosts` and `/etc/resolv.conf`, and the endpoint
//! settings that inspect and list report. The kernel side (network namespaces, bridges,
//! veth pairs through netlink, the firewall) lives here too, behind plain functions the
//! engine calls with plain values.
//!
//! Must not use tokio, hyper or the engine. Wire types come from berth-api; `unsafe`
//! stays in berth-sys (netlink sockets go through nix's safe wrappers).

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bridge;
pub mod config;
mod endpoints;
pub mod etc;
mod files;
pub mod firewall;
pub mod ipam;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod ports;
pub mod stats;
pub mod store;

pub use endpoints::endpoints;
pub use files::{hosts_file, resolv_conf};
pub use config::{Instance, NetOptions};
pub use ipam::Cidr4;
pub use model::{EndpointRecord, IpamConfig, NetworkRecord};
