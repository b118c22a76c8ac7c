//! The local volume driver: named and anonymous volumes under
//! `<data-root>/volumes/<name>/` (`_data` is what containers mount, `volume.json` the
//! metadata), Docker's name and option rules in its words, and the `/volumes` filters.
//!
//! Crash rules (docs/storage.md, "Volumes"): a volume is built as `.creating-<name>`
//! (data dir and metadata, synced) and renamed into place, so a kill -9 never leaves a
//! half-made volume visible; removal renames to `.removing-<name>-<random>` first, so a volume
//! is either whole or gone. [`VolumeStore::open`] deletes the leftovers of both.
//! Which containers use a volume is the engine's to say (their records); this store
//! knows files only. The glue (create-time mount resolution, copy-up, in-use checks)
//! is in `volume_mounts.rs`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_api::{Map, Volume};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock;

/// The label Docker (≥ 23) puts on anonymous volumes; prune without `all` removes only these.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// `volumes/` itself: Docker's 0701 (entries reachable, not listable).
const VOLUMES_DIR_MODE: u32 = 0o701;

/// What `volume.json` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeMeta {
    pub name: String,
    pub created_at: String,
    pub labels: Option<Map>,
    pub options: Option<Map>,
}

/// The local driver's volumes.
pub struct VolumeStore {
    root: PathBuf,
    vols: Mutex<BTreeMap<String, VolumeMeta>>,
    /// Serialises create and remove (file work included) so a name is made once.
    op: Mutex<()>,
    /// Volumes a container create in flight refers to (not yet in any record): in use.
    pins: Mutex<BTreeMap<String, usize>>,
}

/// Docker's `validateName` of the local driver.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.len() == 1 {
        return Err("volume name is too short, names should be at least two alphanumeric characters".into());
    }
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    Ok(())
}

/// Docker's `validateOpts` of the local driver (Linux): `type`, `device`, `o` (each
/// needing the others as Docker's `mandatoryOpts` say) and `size` (refused: no quota
/// support here, as Docker on a file system without project quotas).
pub fn validate_opts(opts: &Map) -> std::result::Result<(), String> {
    if let Some(k) = opts.keys().find(|k| !matches!(k.as_str(), "type" | "device" | "o" | "size")) {
        return Err(format!("invalid option: {k:?}"));
    }
    if opts.get("size").is_some_and(|v| !v.trim_start_matches('0').is_empty()) {
        return Err("quota size requested but no quota support".into());
    }
    let mandatory: [(&str, &[&str]); 3] = [("device", &["type"]), ("type", &["device"]), ("o", &["device", "type"])];
    for (opt, needs) in mandatory {
        if opts.contains_key(opt) {
            if let Some(n) = needs.iter().find(|n| !opts.contains_key(**n)) {
                return Err(format!("missing required option: {n:?}"));
            }
        }
    }
    Ok(())
}

/// A new anonymous volume's name: 64 hex digits, as Docker's.
pub fn anonymous_name() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The `o=` option split as `mount(8)` does: flags for the syscall, the rest as data.
pub fn mount_flags(o: &str) -> (berth_sys::libc::c_ulong, String) {
    use berth_sys::libc;
    let mut flags: libc::c_ulong = 0;
    let mut data = Vec::new();
    for w in o.split(',').filter(|w| !w.is_empty()) {
        let f = match w {
            "ro" => libc::MS_RDONLY,
            "rw" => 0,
            "bind" => libc::MS_BIND,
            "rbind" => libc::MS_BIND | libc::MS_REC,
            "nosuid" => libc::MS_NOSUID,
            "nodev" => libc::MS_NODEV,
            "noexec" => libc::MS_NOEXEC,
            "noatime" => libc::MS_NOATIME,
            "nodiratime" => libc::MS_NODIRATIME,
            "relatime" => libc::MS_RELATIME,
            "sync" => libc::MS_SYNCHRONOUS,
            "suid" | "dev" | "exec" | "async" | "defaults" => 0,
            _ => {
                data.push(w);
                continue;
            }
        };
        flags |= f;
    }
    (flags, data.join(","))
}

/// Does `v` pass the `/volumes` list filters (`dangling`, `driver`, `label`, `name`)?
/// `in_use`: some container refers to it.
pub fn matches(v: &VolumeMeta, filters: &BTreeMap<String, Vec<String>>, in_use: bool) -> bool {
    let labels = v.labels.clone().unwrap_or_default();
    filters.iter().all(|(key, values)| {
        values.is_empty()
            || match key.as_str() {
                "name" => values.iter().any(|n| v.name.contains(n.as_str())),
                "driver" => values.iter().any(|d| d == "local"),
                "dangling" => values.iter().any(|d| matches!(d.as_str(), "true" | "1") != in_use),
                "label" => values.iter().all(|l| label_match(&labels, l)),
                "label!" => !values.iter().any(|l| label_match(&labels, l)),
                _ => true,
            }
    })
}

fn label_match(labels: &Map, l: &str) -> bool {
    match l.split_once('=') {
        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
        None => labels.contains_key(l),
    }
}

/// The `dangling` filter's values as Docker checks them.
pub fn check_dangling(filters: &BTreeMap<String, Vec<String>>) -> std::result::Result<(), String> {
    for d in filters.get("dangling").into_iter().flatten() {
        if !matches!(d.as_str(), "true" | "false" | "1" | "0") {
            return Err(format!("invalid filter 'dangling={d}'"));
        }
    }
    Ok(())
}

impl VolumeStore {
    /// Opens `root` (creating it), removing what a crash left half-made or half-removed.
    pub fn open(root: &Path) -> Result<VolumeStore> {
        std::fs::create_dir_all(root).map_err(|e| Error::io("create", root, e))?;
        crate::set_mode(root, VOLUMES_DIR_MODE)?;
        let mut vols = BTreeMap::new();
        for e in std::fs::read_dir(root).map_err(|e| Error::io("read", root, e))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(".creating-") || name.starts_with(".removing-") {
                if let Err(err) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), "removing a volume leftover: {err}");
                }
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            match std::fs::read(path.join("volume.json")).map(|d| serde_json::from_slice::<VolumeMeta>(&d)) {
                Ok(Ok(m)) if m.name == name => {
                    vols.insert(name, m);
                }
                other => tracing::warn!(path = %path.display(), "not a volume: {other:?}"),
            }
        }
        Ok(VolumeStore { root: root.to_path_buf(), vols: Mutex::new(vols), op: Mutex::new(()), pins: Mutex::new(BTreeMap::new()) })
    }

    /// `<root>/<name>/_data`.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Option<VolumeMeta> {
        lock(&self.vols).get(name).cloned()
    }

    pub fn list(&self) -> Vec<VolumeMeta> {
        lock(&self.vols).values().cloned().collect()
    }

    /// The API's view of `m`.
    pub fn api(&self, m: &VolumeMeta) -> Volume {
        Volume {
            created_at: m.created_at.clone(),
            driver: "local".into(),
            labels: m.labels.clone(),
            mountpoint: self.data_dir(&m.name).to_string_lossy().into_owned(),
            name: m.name.clone(),
            options: m.options.clone(),
            scope: "local".into(),
            usage_data: None,
        }
    }

    /// Creates volume `name` (an existing one is returned as it is, as Docker's create
    /// is idempotent); `true` when it was made now. Blocking file work.
    pub fn create(&self, name: &str, driver: &str, opts: &Map, labels: &Map) -> Result<(VolumeMeta, bool)> {
        if !driver.is_empty() && driver != "local" {
            return Err(Error::not_found(format!(
                "error looking up volume plugin {driver}: plugin {driver:?} not found"
            )));
        }
        validate_name(name).map_err(|e| Error::invalid(format!("create {name}: {e}")))?;
        let _op = lock(&self.op);
        if let Some(m) = self.get(name) {
            return Ok((m, false));
        }
        validate_opts(opts).map_err(|e| Error::invalid(format!("create {name}: {e}")))?;
        let meta = VolumeMeta {
            name: name.to_string(),
            created_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            labels: (!labels.is_empty()).then(|| labels.clone()),
            options: (!opts.is_empty()).then(|| opts.clone()),
        };
        let tmp = self.root.join(format!(".creating-{name}"));
        let dir = self.root.join(name);
        let build = || -> io::Result<()> {
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp)?;
            std::fs::create_dir(tmp.join("_data"))?;
            let data = serde_json::to_vec(&meta).map_err(io::Error::other)?;
            berth_sys::fs::write_atomic(&tmp.join("volume.json"), &data, crate::STATE_FILE_MODE)
                .map_err(|e| io::Error::other(e.to_string()))?;
            std::fs::rename(&tmp, &dir)?;
            berth_sys::fs::fsync_dir(&self.root).map_err(|e| io::Error::other(e.to_string()))
        };
        if let Err(e) = build() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::io("create volume", &dir, e));
        }
        lock(&self.vols).insert(name.to_string(), meta.clone());
        Ok((meta, true))
    }

    /// Marks `names` in use by a container being created (each must exist: a volume
    /// removed since it was resolved is Docker's 404); undone by [`VolumeStore::unpin`].
    pub fn pin(&self, names: &[String]) -> Result<()> {
        let _op = lock(&self.op);
        if let Some(n) = names.iter().find(|n| self.get(n).is_none()) {
            return Err(Error::not_found(format!("get {n}: no such volume")));
        }
        let mut pins = lock(&self.pins);
        for n in names {
            *pins.entry(n.clone()).or_insert(0) += 1;
        }
        Ok(())
    }

    pub fn unpin(&self, names: &[String]) {
        let mut pins = lock(&self.pins);
        for n in names {
            if let Some(c) = pins.get_mut(n) {
                *c -= 1;
                if *c == 0 {
                    pins.remove(n);
                }
            }
        }
    }

    /// Removes volume `name` if `users` (asked under the store's lock) finds no
    /// container using it, else Docker's 409; `force` only forgives a missing volume.
    pub fn remove(&self, name: &str, force: bool, users: impl Fn(&str) -> Vec<String>) -> Result<()> {
        let op = lock(&self.op);
        if self.get(name).is_none() {
            if force {
                return Ok(());
            }
            return Err(Error::not_found(format!("get {name}: no such volume")));
        }
        let u = users(name);
        if !u.is_empty() || lock(&self.pins).contains_key(name) {
            return Err(Error::conflict(format!("remove {name}: volume is in use - [{}]", u.join(", "))));
        }
        let dir = self.root.join(name);
        // A driver-mounted volume (type/device/o) is unmounted first.
        if crate::volume_mounts::is_mount_point(&self.data_dir(name)) {
            let _ = berth_sys::mount::umount2(&self.data_dir(name), berth_sys::libc::MNT_DETACH);
        }
        // Unique: the same name may be made and removed again before these files are gone.
        let doomed = self.root.join(format!(".removing-{name}-{:016x}", rand::random::<u64>()));
        std::fs::rename(&dir, &doomed).map_err(|e| Error::io("rename", &dir, e))?;
        lock(&self.vols).remove(name);
        // The rename was the removal; deleting the files (maybe many) holds no lock.
        drop(op);
        if let Err(e) = std::fs::remove_dir_all(&doomed) {
            tracing::warn!(path = %doomed.display(), "remove volume files: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::parse_filters;

    #[test]
    fn names_follow_the_local_drivers_rules() {
        let cases: &[(&str, std::result::Result<(), &str>)] = &[
            ("ab", Ok(())),
            ("data_1.x-y", Ok(())),
            ("0abc", Ok(())),
            ("a", Err("volume name is too short, names should be at least two alphanumeric characters")),
            (".", Err("volume name is too short, names should be at least two alphanumeric characters")),
            (
                "hello world",
                Err("\"hello world\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
            ),
            (
                "_x",
                Err("\"_x\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
            ),
        ];
        for (n, want) in cases {
            assert_eq!(validate_name(n), want.map_err(str::to_string), "{n}");
        }
        let a = anonymous_name();
        assert!(a.len() == 64 && a.bytes().all(|b| b.is_ascii_hexdigit()) && validate_name(&a).is_ok());
    }

    #[test]
    fn options_follow_the_local_drivers_rules() {
        let m = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Map>();
        let cases: Vec<(Map, std::result::Result<(), &str>)> = vec![
            (m(&[]), Ok(())),
            (m(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]), Ok(())),
            (m(&[("hello", "world")]), Err("invalid option: \"hello\"")),
            (m(&[("type", "tmpfs")]), Err("missing required option: \"device\"")),
            (m(&[("device", "/x")]), Err("missing required option: \"type\"")),
            (m(&[("size", "1g")]), Err("quota size requested but no quota support")),
        ];
        for (opts, want) in cases {
            assert_eq!(validate_opts(&opts), want.map_err(str::to_string), "{opts:?}");
        }
        use berth_sys::libc;
        assert_eq!(mount_flags("bind,ro"), (libc::MS_BIND | libc::MS_RDONLY, String::new()));
        assert_eq!(mount_flags("size=1m,nosuid,uid=5"), (libc::MS_NOSUID, "size=1m,uid=5".into()));
    }

    #[test]
    fn list_filters() {
        let labelled = VolumeMeta {
            name: "web-data".into(),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        };
        let cases: &[(&str, bool, bool)] = &[
            (r#"{}"#, false, true),
            (r#"{"name":{"web":true}}"#, false, true),
            (r#"{"name":{"db":true}}"#, false, false),
            (r#"{"dangling":{"true":true}}"#, false, true),
            (r#"{"dangling":{"true":true}}"#, true, false),
            (r#"{"dangling":{"false":true}}"#, true, true),
            (r#"{"driver":{"local":true}}"#, false, true),
            (r#"{"driver":{"nfs":true}}"#, false, false),
            (r#"{"label":{"app":true}}"#, false, true),
            (r#"{"label":{"app=web":true}}"#, false, true),
            (r#"{"label":{"app=db":true}}"#, false, false),
            (r#"{"label!":{"app":true}}"#, false, false),
            (r#"{"label!":{"x":true}}"#, false, true),
        ];
        for (f, in_use, want) in cases {
            assert_eq!(matches(&labelled, &parse_filters(f).unwrap(), *in_use), *want, "{f} in_use={in_use}");
        }
        assert_eq!(check_dangling(&parse_filters(r#"{"dangling":["maybe"]}"#).unwrap()), Err("invalid filter 'dangling=maybe'".into()));
    }

    #[test]
    fn store_creates_idempotently_and_cleans_leftovers() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("volumes");
        let s = VolumeStore::open(&root).unwrap();
        let labels: Map = [("a".to_string(), "b".to_string())].into();
        let (m, made) = s.create("data", "local", &Map::new(), &labels).unwrap();
        assert!(made && s.data_dir("data").is_dir());
        assert_eq!(m.labels, Some(labels.clone()));
        let (m2, made2) = s.create("data", "", &Map::new(), &Map::new()).unwrap();
        assert!(!made2 && m2 == m);
        assert_eq!(
            s.create("x", "local", &Map::new(), &Map::new()).unwrap_err().to_string(),
            "create x: volume name is too short, names should be at least two alphanumeric characters"
        );
        assert_eq!(
            s.create("vv", "nfsplugin", &Map::new(), &Map::new()).unwrap_err().to_string(),
            "error looking up volume plugin nfsplugin: plugin \"nfsplugin\" not found"
        );
        assert_eq!(
            s.remove("data", false, |_| vec!["c1".into(), "c2".into()]).unwrap_err().to_string(),
            "remove data: volume is in use - [c1, c2]"
        );
        // A create in flight holds its volumes.
        s.pin(&["data".to_string()]).unwrap();
        assert!(s.remove("data", false, |_| Vec::new()).unwrap_err().to_string().starts_with("remove data: volume is in use"));
        s.unpin(&["data".to_string()]);
        assert_eq!(s.pin(&["gone".to_string()]).unwrap_err().to_string(), "get gone: no such volume");
        // What a crash leaves: a half-made and a half-removed volume, both invisible.
        std::fs::create_dir_all(root.join(".creating-half/_data")).unwrap();
        std::fs::create_dir_all(root.join(".removing-old/_data")).unwrap();
        let s = VolumeStore::open(&root).unwrap();
        assert_eq!(s.list().iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["data"]);
        assert!(!root.join(".creating-half").exists() && !root.join(".removing-old").exists());
        s.remove("data", false, |_| Vec::new()).unwrap();
        assert!(s.get("data").is_none() && !root.join("data").exists());
        assert_eq!(s.remove("data", false, |_| Vec::new()).unwrap_err().to_string(), "get data: no such volume");
        assert!(s.remove("data", true, |_| Vec::new()).is_ok());
    }
}
