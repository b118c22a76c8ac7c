//! berth-network: container networking below the engine. Bridge, veth pairs, IPAM, NAT
//! and port publishing, and the embedded DNS will live here (netlink and nftables through
//! berth-sys); today it owns what a container's network configuration looks like without
//! a network of its own: the generated `/etc/hosts` and `/etc/resolv.conf`, and the
//! endpoint settings that inspect and list report.
//!
//! Must not use tokio, hyper or the engine: the engine calls in, with plain values, and
//! the functions here plan what to write or configure. Wire types come from berth-api.

#![forbid(unsafe_code)]

mod endpoints;
pub mod etc;
mod files;

pub use endpoints::endpoints;
pub use files::{hosts_file, resolv_conf};
