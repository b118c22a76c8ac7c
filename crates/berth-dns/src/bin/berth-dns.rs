//! `berth-dns --state-dir DIR [--resolv-conf FILE] [--port N]`: the embedded DNS
//! resolver of user networks (see the berth-dns crate and docs/networking.md). Started
//! by berthd; exits at once when another resolver already serves DIR.

use std::path::PathBuf;

fn main() {
    let mut cfg = berth_dns::server::Config {
        state_dir: PathBuf::new(),
        resolv_conf: PathBuf::from("/etc/resolv.conf"),
        port: 53,
        upstream_port: 53,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next();
        let ok = match (a.as_str(), v) {
            ("--state-dir", Some(v)) => {
                cfg.state_dir = PathBuf::from(v);
                true
            }
            ("--resolv-conf", Some(v)) => {
                cfg.resolv_conf = PathBuf::from(v);
                true
            }
            ("--port", Some(v)) => v.parse().map(|p| cfg.port = p).is_ok(),
            ("--upstream-port", Some(v)) => v.parse().map(|p| cfg.upstream_port = p).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!("usage: berth-dns --state-dir DIR [--resolv-conf FILE] [--port N] [--upstream-port N]");
            std::process::exit(2);
        }
    }
    if cfg.state_dir.as_os_str().is_empty() {
        eprintln!("berth-dns: --state-dir is required");
        std::process::exit(2);
    }
    if let Some(pid) = berth_dns::control::running_pid(&cfg.state_dir) {
        if pid != std::process::id() as i32 {
            eprintln!("berth-dns: already running as pid {pid}");
            return;
        }
    }
    // Its own session: a signal to berthd's process group does not reach it.
    let _ = berth_sys::process::setsid();
    if let Err(e) = berth_dns::server::run(cfg) {
        eprintln!("berth-dns: {e}");
        std::process::exit(1);
    }
}
