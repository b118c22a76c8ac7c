//! Network records on disk: one `<dir>/<id>.json` per network (written atomically), and
//! the predefined `bridge`, `host` and `none` networks with IDs stable across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ipam::Cidr4;
use crate::model::{self, IpamConfig, NetworkRecord};

/// Where network records live: `<data-root>/network`.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let _ = berth_sys::fs::remove_stale_temps(dir);
        Ok(Store { dir: dir.to_path_buf() })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every record that parses; a damaged file is skipped (and reported).
    pub fn load_all(&self) -> Vec<NetworkRecord> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return out };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&p).map_err(|e| e.to_string()).and_then(|d| serde_json::from_slice(&d).map_err(|e| e.to_string())) {
                Ok(r) => out.push(r),
                Err(e) => tracing_warn(&p, &e),
            }
        }
        out
    }

    pub fn save(&self, rec: &NetworkRecord) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?;
        berth_sys::fs::write_atomic(&self.path(&rec.id), &data, 0o600).map_err(|e| std::io::Error::other(e.to_string()))
    }

    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn tracing_warn(p: &Path, e: &str) {
    tracing::warn!("skipping damaged network record {}: {e}", p.display());
}

/// The ID of predefined network `name` for the daemon whose default bridge is `bridge`:
/// stable across restarts, different between daemons on one host.
pub fn predefined_id(name: &str, bridge: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"berth predefined network\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(bridge.as_bytes());
    hex::encode(h.finalize())
}

/// The default bridge network's record (Docker's options on `bridge`).
pub fn default_bridge(bridge: &str, subnet: Cidr4, gateway: std::net::Ipv4Addr, ip_range: Option<Cidr4>, mtu: u32, created: &str) -> NetworkRecord {
    let mut options = BTreeMap::new();
    options.insert(model::OPT_DEFAULT_BRIDGE.to_string(), "true".to_string());
    options.insert(model::OPT_ICC.to_string(), "true".to_string());
    options.insert(model::OPT_MASQUERADE.to_string(), "true".to_string());
    options.insert(model::OPT_HOST_BINDING.to_string(), "0.0.0.0".to_string());
    options.insert(model::OPT_BRIDGE_NAME.to_string(), bridge.to_string());
    options.insert(model::OPT_MTU.to_string(), (if mtu == 0 { 1500 } else { mtu }).to_string());
    NetworkRecord {
        id: predefined_id("bridge", bridge),
        name: "bridge".into(),
        driver: "bridge".into(),
        created: created.into(),
        internal: false,
        attachable: false,
        enable_ipv6: false,
        ipam: vec![IpamConfig { subnet, gateway, ip_range, aux: BTreeMap::new() }],
        ipam6: Vec::new(),
        ipam_options: None,
        options,
        labels: BTreeMap::new(),
        bridge: bridge.into(),
        mtu,
    }
}

/// `host` (driver `host`) or `none` (driver `null`).
pub fn special(name: &str, bridge: &str, created: &str) -> NetworkRecord {
    NetworkRecord {
        id: predefined_id(name, bridge),
        name: name.into(),
        driver: if name == "none" { "null".into() } else { name.into() },
        created: created.into(),
        internal: false,
        attachable: false,
        enable_ipv6: false,
        ipam: Vec::new(),
        ipam6: Vec::new(),
        ipam_options: None,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        bridge: String::new(),
        mtu: 0,
    }
}

/// The bridge interface of a user network: `br-` and 12 hex digits of its ID.
pub fn bridge_name(id: &str) -> String {
    format!("br-{}", &id[..12.min(id.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_ids_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = predefined_id("bridge", "berth0");
        assert_eq!(a, predefined_id("bridge", "berth0"));
        assert_ne!(a, predefined_id("bridge", "berth1"));
        assert_eq!(a.len(), 64);
        let r = default_bridge("berth0", "10.9.0.0/16".parse().unwrap(), "10.9.0.1".parse().unwrap(), None, 0, "t");
        s.save(&r).unwrap();
        s.save(&special("none", "berth0", "t")).unwrap();
        let mut all = s.load_all();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], r);
        assert_eq!(all[1].driver, "null");
        s.remove(&r.id).unwrap();
        s.remove(&r.id).unwrap();
        assert_eq!(s.load_all().len(), 1);
        assert_eq!(bridge_name(&a), format!("br-{}", &a[..12]));
    }
}
