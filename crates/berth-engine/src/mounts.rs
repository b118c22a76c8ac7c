//! A container's mounts, typed: `HostConfig.Binds` (`-v src:dst[:opts]`) and
//! `HostConfig.Mounts` (`--mount type=…`) parsed by one pure parser into [`MountSpec`]s.
//! The record keeps the HostConfig as the client sent it; the run spec's mounts, the
//! inspect `Mounts` and the paths `cp` must not write through all derive from here.
//! Volume entries carry a name (empty for an anonymous volume until create names it);
//! create resolves them into the record's `mount_points` (`volume_mounts.rs`), which
//! later readers use instead of parsing again.

use std::path::PathBuf;

use berth_api::{HostConfig, Map, MountPoint};
use berth_runtime::spec::{Mount, MountKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::validate::json_kind;

/// What a mount is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// Bind propagation, as Docker names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    #[default]
    RPrivate,
    Private,
    RShared,
    Shared,
    RSlave,
    Slave,
}

impl Propagation {
    pub fn parse(s: &str) -> Option<Propagation> {
        Some(match s {
            "rprivate" => Propagation::RPrivate,
            "private" => Propagation::Private,
            "rshared" => Propagation::RShared,
            "shared" => Propagation::Shared,
            "rslave" => Propagation::RSlave,
            "slave" => Propagation::Slave,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::RPrivate => "rprivate",
            Propagation::Private => "private",
            Propagation::RShared => "rshared",
            Propagation::Shared => "shared",
            Propagation::RSlave => "rslave",
            Propagation::Slave => "slave",
        }
    }
}

/// One mount of a container, whichever field it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountSpec {
    pub kind: MountType,
    /// Host path of a bind or (once resolved) of a volume's data; empty for tmpfs.
    pub source: String,
    /// Absolute path inside the container.
    pub destination: String,
    pub read_only: bool,
    pub propagation: Propagation,
    /// A bind that does not take the submounts of its source along.
    pub non_recursive: bool,
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<u32>,
    /// The `-v` mode text as given (inspect's `Mode`); empty for `Mounts` entries.
    pub mode: String,
    /// From `HostConfig.Mounts` (whose bind sources must exist) rather than `Binds`.
    pub from_mounts: bool,
    /// A volume's name; empty for an anonymous one not yet named.
    pub name: String,
    /// The volume was named by the user (`rm -v` keeps it), not anonymous.
    pub named: bool,
    /// `nocopy` / `volume-nocopy`: no copy-up of the image's content.
    pub nocopy: bool,
    /// `volume-subpath`: mount this path inside the volume.
    pub subpath: String,
    /// `--mount type=volume,volume-opt=…,volume-label=…` for a volume made here.
    pub volume_opts: Map,
    pub volume_labels: Map,
    /// `volume-driver=` / `HostConfig.VolumeDriver`; empty = `local`.
    pub volume_driver: String,
}

impl Default for MountSpec {
    fn default() -> MountSpec {
        MountSpec::new(MountType::Bind, "", "")
    }
}

impl MountSpec {
    fn new(kind: MountType, source: &str, destination: &str) -> MountSpec {
        MountSpec {
            kind,
            source: source.to_string(),
            destination: destination.to_string(),
            read_only: false,
            propagation: Propagation::default(),
            non_recursive: false,
            tmpfs_size: None,
            tmpfs_mode: None,
            mode: String::new(),
            from_mounts: false,
            name: String::new(),
            named: false,
            nocopy: false,
            subpath: String::new(),
            volume_opts: Map::new(),
            volume_labels: Map::new(),
            volume_driver: String::new(),
        }
    }

    /// An anonymous volume at `destination` (`-v /path`, an image `VOLUME`).
    pub fn anonymous(destination: &str) -> MountSpec {
        MountSpec::new(MountType::Volume, "", destination)
    }

    /// The runtime's mount for this spec.
    pub fn to_runtime(&self) -> Mount {
        match self.kind {
            MountType::Tmpfs => {
                let mut opts = Vec::new();
                if self.read_only {
                    opts.push("ro".to_string());
                }
                if let Some(s) = self.tmpfs_size {
                    opts.push(format!("size={s}"));
                }
                if let Some(m) = self.tmpfs_mode {
                    opts.push(format!("mode={m:o}"));
                }
                Mount::tmpfs(&format!("{}:{}", self.destination, opts.join(",")))
            }
            MountType::Bind | MountType::Volume => {
                let mut options = vec![self.propagation.as_str().to_string()];
                if self.non_recursive {
                    options.push("bind".into());
                }
                let mut source = PathBuf::from(&self.source);
                if !self.subpath.is_empty() {
                    source = source.join(self.subpath.trim_start_matches('/'));
                }
                Mount {
                    source,
                    destination: self.destination.clone(),
                    kind: MountKind::Bind,
                    readonly: self.read_only,
                    options,
                }
            }
        }
    }

    /// The inspect `Mounts` entry, as Docker shows it.
    pub fn mount_point(&self) -> MountPoint {
        let volume = self.kind == MountType::Volume;
        MountPoint {
            kind: self.kind.as_str().into(),
            name: volume.then(|| self.name.clone()),
            source: self.source.clone(),
            destination: self.destination.clone(),
            driver: volume.then(|| "local".to_string()),
            mode: self.mode.clone(),
            rw: !self.read_only,
            propagation: match self.kind {
                MountType::Bind => self.propagation.as_str().into(),
                _ => String::new(),
            },
        }
    }
}

/// `-v` modes Docker takes besides propagation (`linuxValidMountMode`).
const BIND_MODES: &[&str] = &["ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated"];

/// One `-v src:dst[:opts]` entry: a bind when `src` is absolute, else a named volume;
/// a lone `/path` is an anonymous volume.
pub fn parse_bind(spec: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] if d.starts_with('/') => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(Error::invalid(format!("invalid volume specification: '{spec}'"))),
    };
    if (src.is_empty() && parts.len() > 1) || dst.is_empty() {
        return Err(Error::invalid(format!("invalid volume specification: '{spec}'")));
    }
    let kind = if src.starts_with('/') { MountType::Bind } else { MountType::Volume };
    if !dst.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{}\": invalid mount path: '{dst}' mount path must be absolute",
            kind.as_str()
        )));
    }
    if dst == "/" {
        return Err(Error::invalid(format!("invalid specification: destination can't be '/' in '{spec}'")));
    }
    let mut m = MountSpec::new(kind, if kind == MountType::Bind { src } else { "" }, dst);
    if kind == MountType::Volume {
        m.name = src.to_string();
        m.named = !src.is_empty();
    }
    m.mode = mode.to_string();
    let (mut rw, mut prop) = (0, 0);
    for w in mode.split(',').filter(|w| !w.is_empty()) {
        if let Some(p) = Propagation::parse(w) {
            m.propagation = p;
            prop += 1;
        } else if BIND_MODES.contains(&w) {
            if w == "ro" || w == "rw" {
                m.read_only = w == "ro";
                rw += 1;
            }
            if w == "nocopy" {
                m.nocopy = true;
            }
        } else {
            return Err(Error::invalid(format!("invalid mode: {mode}")));
        }
    }
    if rw > 1 || prop > 1 || (m.nocopy && kind == MountType::Bind) {
        return Err(Error::invalid(format!("invalid mode: {mode}")));
    }
    if kind == MountType::Volume && m.mode.is_empty() && m.named {
        // Docker's default SELinux relabel mode for `-v name:/path`, shown in inspect.
        m.mode = "z".into();
    }
    Ok(m)
}

/// One `HostConfig.Mounts` entry, with Docker's mount-parser texts.
pub fn parse_mount(v: &Value) -> Result<MountSpec> {
    let Value::Object(o) = v else {
        return Err(Error::invalid(format!(
            "json: cannot unmarshal {} into Go struct field HostConfig.HostConfig.Mounts of type mount.Mount",
            json_kind(v)
        )));
    };
    let str_of = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
    let kind = str_of("Type");
    let bad = |why: &str| Error::invalid(format!("invalid mount config for type \"{kind}\": {why}"));
    let kind_t = match kind {
        "bind" => MountType::Bind,
        "volume" => MountType::Volume,
        "tmpfs" => MountType::Tmpfs,
        _ => return Err(bad("mount type unknown")),
    };
    let target = str_of("Target");
    if target.is_empty() {
        return Err(bad("field Target must not be empty"));
    }
    if !target.starts_with('/') {
        return Err(bad(&format!("invalid mount path: '{target}' mount path must be absolute")));
    }
    let source = str_of("Source");
    let mut m = MountSpec::new(kind_t, source, target);
    m.from_mounts = true;
    m.read_only = o.get("ReadOnly").and_then(Value::as_bool).unwrap_or(false);
    match kind_t {
        MountType::Bind => {
            if source.is_empty() {
                return Err(bad("field Source must not be empty"));
            }
            if !source.starts_with('/') {
                return Err(bad(&format!("invalid mount path: '{source}' mount path must be absolute")));
            }
            if let Some(b) = o.get("BindOptions").and_then(Value::as_object) {
                let p = b.get("Propagation").and_then(Value::as_str).unwrap_or("");
                if !p.is_empty() {
                    m.propagation =
                        Propagation::parse(p).ok_or_else(|| bad(&format!("invalid propagation mode: {p}")))?;
                }
                m.non_recursive = b.get("NonRecursive").and_then(Value::as_bool).unwrap_or(false);
            }
        }
        MountType::Tmpfs => {
            if !source.is_empty() {
                return Err(bad("field Source must not be specified"));
            }
            if let Some(t) = o.get("TmpfsOptions").and_then(Value::as_object) {
                m.tmpfs_size = t.get("SizeBytes").and_then(Value::as_i64).filter(|s| *s != 0);
                if m.tmpfs_size.is_some_and(|s| s < 0) {
                    return Err(bad("invalid tmpfs option: size must not be negative"));
                }
                m.tmpfs_mode = t.get("Mode").and_then(Value::as_u64).filter(|m| *m != 0).map(|m| (m & 0o7777) as u32);
            }
        }
        MountType::Volume => {
            if source.starts_with('/') {
                return Err(bad(&format!("invalid mount path: '{source}' mount path must not be absolute")));
            }
            if o.get("BindOptions").is_some_and(|b| !b.is_null()) {
                return Err(bad("BindOptions must not be specified"));
            }
            m.name = source.to_string();
            m.named = !source.is_empty();
            // Resolved to the volume's data dir at create.
            m.source.clear();
            if let Some(v) = o.get("VolumeOptions").and_then(Value::as_object) {
                m.nocopy = v.get("NoCopy").and_then(Value::as_bool).unwrap_or(false);
                m.subpath = v.get("Subpath").and_then(Value::as_str).unwrap_or("").to_string();
                let map = |x: Option<&Value>| -> Map {
                    x.and_then(Value::as_object)
                        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                        .unwrap_or_default()
                };
                m.volume_labels = map(v.get("Labels"));
                if let Some(d) = v.get("DriverConfig").and_then(Value::as_object) {
                    m.volume_opts = map(d.get("Options"));
                    m.volume_driver = d.get("Name").and_then(Value::as_str).unwrap_or("").to_string();
                }
            }
            if !m.subpath.is_empty()
                && (m.subpath.starts_with('/') || m.subpath.split('/').any(|c| c == ".."))
            {
                return Err(bad(&format!("subpath must be a relative path within the volume: {}", m.subpath)));
            }
        }
    }
    Ok(m)
}

/// Every mount of `hc`: its binds, then its `Mounts` entries, in the order given.
pub fn of(hc: &HostConfig) -> Result<Vec<MountSpec>> {
    let mut v = Vec::new();
    for b in hc.binds.iter().flatten() {
        v.push(parse_bind(b)?);
    }
    for m in hc.mounts.iter().flatten() {
        v.push(parse_mount(m)?);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &v {
        if !seen.insert(m.destination.trim_end_matches('/')) {
            return Err(Error::invalid(format!("Duplicate mount point: {}", m.destination)));
        }
    }
    Ok(v)
}

/// Create-time checks that need the host: a `--mount` bind's source must exist
/// (a `-v` bind's may not yet).
pub fn check_sources(specs: &[MountSpec]) -> Result<()> {
    for m in specs.iter().filter(|m| m.kind == MountType::Bind && m.from_mounts) {
        if std::fs::symlink_metadata(&m.source).is_err() {
            return Err(Error::invalid(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                m.source
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bind(src: &str, dst: &str) -> MountSpec {
        MountSpec::new(MountType::Bind, src, dst)
    }

    #[test]
    fn binds_parse_as_docker_does() {
        let with = |f: &dyn Fn(&mut MountSpec), mode: &str, mut m: MountSpec| {
            m.mode = mode.into();
            f(&mut m);
            m
        };
        let cases: Vec<(&str, std::result::Result<MountSpec, &str>)> = vec![
            ("/a:/b", Ok(bind("/a", "/b"))),
            ("/a:/b:ro", Ok(with(&|m| m.read_only = true, "ro", bind("/a", "/b")))),
            ("/a:/b:rw", Ok(with(&|_| {}, "rw", bind("/a", "/b")))),
            ("/a:/b:rshared", Ok(with(&|m| m.propagation = Propagation::RShared, "rshared", bind("/a", "/b")))),
            (
                "/a:/b:ro,slave",
                Ok(with(&|m| (m.read_only, m.propagation) = (true, Propagation::Slave), "ro,slave", bind("/a", "/b"))),
            ),
            ("/a:/b:z", Ok(with(&|_| {}, "z", bind("/a", "/b")))),
            ("/a:/b:bogus", Err("invalid mode: bogus")),
            ("/a:/b:ro,rw", Err("invalid mode: ro,rw")),
            ("/a:/b:shared,slave", Err("invalid mode: shared,slave")),
            ("nope", Err("invalid volume specification: 'nope'")),
            ("/a:/b:ro:x", Err("invalid volume specification: '/a:/b:ro:x'")),
            ("vol:/b", Ok(with(&|m| (m.name, m.named) = ("vol".into(), true), "z", MountSpec::new(MountType::Volume, "", "/b")))),
            ("vol:/b:ro,nocopy", Ok(with(&|m| (m.name, m.named, m.read_only, m.nocopy) = ("vol".into(), true, true, true), "ro,nocopy", MountSpec::new(MountType::Volume, "", "/b")))),
            ("/anon", Ok(MountSpec::anonymous("/anon"))),
            ("/a:/b:nocopy", Err("invalid mode: nocopy")),
            ("vol:/", Err("invalid specification: destination can't be '/' in 'vol:/'")),
            (
                "/a:b",
                Err("invalid volume specification: '/a:b': invalid mount config for type \"bind\": invalid mount path: 'b' mount path must be absolute"),
            ),
        ];
        for (spec, want) in cases {
            match (parse_bind(spec), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{spec}"),
                (Err(e), Err(want)) => assert_eq!(e.to_string(), want, "{spec}"),
                (got, want) => panic!("{spec}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn mounts_entries_parse_as_docker_does() {
        let from = |mut m: MountSpec, f: &dyn Fn(&mut MountSpec)| {
            m.from_mounts = true;
            f(&mut m);
            m
        };
        let cases: Vec<(Value, std::result::Result<MountSpec, &str>)> = vec![
            (json!({"Type": "bind", "Source": "/a", "Target": "/b"}), Ok(from(bind("/a", "/b"), &|_| {}))),
            (
                json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true,
                       "BindOptions": {"Propagation": "rslave", "NonRecursive": true}}),
                Ok(from(bind("/a", "/b"), &|m| {
                    (m.read_only, m.propagation, m.non_recursive) = (true, Propagation::RSlave, true)
                })),
            ),
            (
                json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770}}),
                Ok(from(MountSpec::new(MountType::Tmpfs, "", "/t"), &|m| {
                    (m.tmpfs_size, m.tmpfs_mode) = (Some(1048576), Some(0o1770))
                })),
            ),
            (json!("x"), Err("json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Mounts of type mount.Mount")),
            (json!({"Type": "nope", "Target": "/x"}), Err("invalid mount config for type \"nope\": mount type unknown")),
            (json!({"Type": "bind", "Target": "/x"}), Err("invalid mount config for type \"bind\": field Source must not be empty")),
            (json!({"Type": "bind", "Source": "/a"}), Err("invalid mount config for type \"bind\": field Target must not be empty")),
            (
                json!({"Type": "tmpfs", "Target": "rel"}),
                Err("invalid mount config for type \"tmpfs\": invalid mount path: 'rel' mount path must be absolute"),
            ),
            (
                json!({"Type": "tmpfs", "Source": "/a", "Target": "/x"}),
                Err("invalid mount config for type \"tmpfs\": field Source must not be specified"),
            ),
            (
                json!({"Type": "bind", "Source": "/a", "Target": "/x", "BindOptions": {"Propagation": "weird"}}),
                Err("invalid mount config for type \"bind\": invalid propagation mode: weird"),
            ),
            (
                json!({"Type": "volume", "Source": "v", "Target": "/x", "ReadOnly": true,
                       "VolumeOptions": {"NoCopy": true, "Subpath": "sub/dir", "Labels": {"a": "b"},
                                         "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}}),
                Ok(from(MountSpec::new(MountType::Volume, "", "/x"), &|m| {
                    (m.name, m.named, m.read_only, m.nocopy, m.subpath) = ("v".into(), true, true, true, "sub/dir".into());
                    m.volume_labels = [("a".to_string(), "b".to_string())].into();
                    m.volume_opts = [("type".to_string(), "tmpfs".to_string())].into();
                    m.volume_driver = "local".into();
                })),
            ),
            (json!({"Type": "volume", "Target": "/x"}), Ok(from(MountSpec::anonymous("/x"), &|_| {}))),
            (
                json!({"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Subpath": "../up"}}),
                Err("invalid mount config for type \"volume\": subpath must be a relative path within the volume: ../up"),
            ),
            (
                json!({"Type": "volume", "Source": "v", "Target": "/x", "BindOptions": {"Propagation": "shared"}}),
                Err("invalid mount config for type \"volume\": BindOptions must not be specified"),
            ),
        ];
        for (v, want) in cases {
            match (parse_mount(&v), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{v}"),
                (Err(e), Err(want)) => assert_eq!(e.to_string(), want, "{v}"),
                (got, want) => panic!("{v}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn specs_become_runtime_mounts_and_inspect_entries() {
        let mut m = parse_bind("/a:/b:ro,rshared").expect("bind");
        let r = m.to_runtime();
        assert_eq!((r.kind, r.readonly, r.options.as_slice()), (MountKind::Bind, true, ["rshared".to_string()].as_slice()));
        let p = m.mount_point();
        assert_eq!((p.kind.as_str(), p.mode.as_str(), p.rw, p.propagation.as_str()), ("bind", "ro,rshared", false, "rshared"));
        m.non_recursive = true;
        assert_eq!(m.to_runtime().options, ["rshared", "bind"]);
        let t = parse_mount(&json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4096, "Mode": 0o700}}))
            .expect("tmpfs");
        let r = t.to_runtime();
        assert_eq!((r.kind, r.destination.as_str()), (MountKind::Tmpfs, "/t"));
        assert_eq!(r.options, ["noexec", "nosuid", "nodev", "size=4096", "mode=700"]);
        let p = t.mount_point();
        assert_eq!((p.kind.as_str(), p.source.as_str(), p.rw, p.propagation.as_str()), ("tmpfs", "", true, ""));
    }

    #[test]
    fn duplicate_destinations_and_missing_mount_sources_are_refused() {
        let hc = HostConfig {
            binds: Some(vec!["/a:/x".into()]),
            mounts: Some(vec![json!({"Type": "bind", "Source": "/b", "Target": "/x/"})]),
            ..Default::default()
        };
        assert_eq!(of(&hc).expect_err("duplicate").to_string(), "Duplicate mount point: /x/");
        let m = parse_mount(&json!({"Type": "bind", "Source": "/nope/nope", "Target": "/x"})).expect("bind");
        assert_eq!(
            check_sources(&[m]).expect_err("missing source").to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /nope/nope"
        );
        // A `-v` bind's source may be missing at create.
        assert!(check_sources(&[parse_bind("/nope/nope:/x").expect("bind")]).is_ok());
    }
}
