//! berth-dns: the embedded DNS resolver of user networks, as its own process (bin
//! `berth-dns`, one per daemon), so containers keep resolving each other while berthd
//! is down or restarting. It answers A/AAAA/PTR for container names, aliases, compose
//! service names and short ids of the networks the asking container is on, and forwards
//! everything else to that container's own `--dns` servers, or to the host's name
//! servers when it has none (docs/networking.md, "Embedded DNS").
//!
//! [`wire`] reads and writes the few DNS messages it needs (pure); [`table`] is the
//! records file format and the scoped lookup (pure); [`server`] is the process;
//! [`control`] is berthd's side: writing records files atomically, starting the process
//! when it is not running (pid file) and telling it to reload (SIGHUP).
//!
//! Must not use tokio, hyper or the engine: plain std threads, bounded counts.

#![forbid(unsafe_code)]

pub mod control;
pub mod server;
pub mod table;
pub mod wire;

pub use table::{Endpoint, NetworkRecords};
