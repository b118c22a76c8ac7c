//! The daemon's network options (dockerd's `-b/--bridge`, `--bip`, `--fixed-cidr`,
//! `--mtu`, `--iptables`, `--ip-forward` and their daemon.json keys, and Berth's
//! `--resolv-conf`), and the names one
//! daemon instance uses on the host (bridge, firewall chains), derived so that several
//! daemons on one host never share them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What the daemon was told about networking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetOptions {
    /// `-b/--bridge`: the default bridge's interface name (`none` disables it).
    pub bridge: Option<String>,
    /// `--bip`: the default bridge's address and prefix (`172.20.0.1/16`).
    pub bip: Option<String>,
    /// `--fixed-cidr`: the part of the default bridge's subnet containers get.
    pub fixed_cidr: Option<String>,
    /// `--mtu` (0: 1500).
    pub mtu: u32,
    /// `--iptables=false` leaves the firewall alone.
    pub iptables: bool,
    /// `--ip-forward=false` leaves `net.ipv4.ip_forward` alone.
    pub ip_forward: bool,
    /// The host's resolv.conf (`--resolv-conf`, default `/etc/resolv.conf`): the name
    /// servers the embedded resolver forwards to for containers without `--dns`, and
    /// the servers, search domains and options containers inherit.
    pub resolv_conf: PathBuf,
}

/// The default of [`NetOptions::resolv_conf`].
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

impl Default for NetOptions {
    fn default() -> NetOptions {
        NetOptions { bridge: None, bip: None, fixed_cidr: None, mtu: 0, iptables: true, ip_forward: true, resolv_conf: PathBuf::from(HOST_RESOLV_CONF) }
    }
}

/// The host-level names of one daemon instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The default bridge's interface: `berth0` for the default exec root, else
    /// `bth` and 8 hex digits of the exec root's hash (interface names have 15 bytes).
    pub bridge: String,
    /// Suffix of this daemon's firewall chains (`BERTH` or `BERTH-<8 hex>`).
    pub chain: String,
    /// 8 hex digits naming this instance (empty for the default exec root).
    pub tag: String,
}

/// The default exec root, whose daemon gets the plain names.
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";

impl Instance {
    pub fn for_exec_root(exec_root: &Path, opts: &NetOptions) -> Instance {
        let tag = if exec_root == Path::new(DEFAULT_EXEC_ROOT) {
            String::new()
        } else {
            let h = Sha256::digest(exec_root.as_os_str().as_encoded_bytes());
            hex::encode(&h[..4])
        };
        let bridge = match &opts.bridge {
            Some(b) if !b.is_empty() => b.clone(),
            _ if tag.is_empty() => "berth0".into(),
            _ => format!("bth{tag}"),
        };
        let chain = if tag.is_empty() { "BERTH".into() } else { format!("BERTH-{tag}") };
        Instance { bridge, chain, tag }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_per_exec_root() {
        let o = NetOptions::default();
        let d = Instance::for_exec_root(Path::new("/run/berth"), &o);
        assert_eq!((d.bridge.as_str(), d.chain.as_str()), ("berth0", "BERTH"));
        let a = Instance::for_exec_root(Path::new("/tmp/a/exec"), &o);
        let b = Instance::for_exec_root(Path::new("/tmp/b/exec"), &o);
        assert_ne!(a.bridge, b.bridge);
        assert_ne!(a.chain, b.chain);
        assert!(a.bridge.len() <= 15 && a.chain.len() <= 28);
        let named = Instance::for_exec_root(Path::new("/tmp/a/exec"), &NetOptions { bridge: Some("br9".into()), ..o });
        assert_eq!(named.bridge, "br9");
    }
}
