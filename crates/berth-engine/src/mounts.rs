//! A container's mounts, typed: `HostConfig.Binds` (`-v src:dst[:opts]`) and
//! `HostConfig.Mounts` (`--mount type=…`) parsed by one pure parser into [`MountSpec`]s.
//! The record keeps the HostConfig as the client sent it; the run spec's mounts, the
//! inspect `Mounts` and the paths `cp` must not write through all derive from here.
//! Volumes (named and anonymous) are refused until the volumes work lands.

use std::path::PathBuf;

use berth_api::{HostConfig, MountPoint};
use berth_runtime::spec::{Mount, MountKind};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::validate::json_kind;

/// What a mount is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
}

impl MountType {
    fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// Bind propagation, as Docker names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: MountType,
    /// Host path of a bind; empty for tmpfs.
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
        }
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
                Mount {
                    source: PathBuf::from(&self.source),
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
        MountPoint {
            kind: self.kind.as_str().into(),
            name: None,
            source: self.source.clone(),
            destination: self.destination.clone(),
            driver: None,
            mode: self.mode.clone(),
            rw: !self.read_only,
            propagation: match self.kind {
                MountType::Tmpfs => String::new(),
                _ => self.propagation.as_str().into(),
            },
        }
    }
}

/// `-v` modes Docker takes besides propagation (`linuxValidMountMode`).
const BIND_MODES: &[&str] = &["ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated"];

/// One `-v src:dst[:opts]` entry.
pub fn parse_bind(spec: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(Error::invalid(format!("invalid volume specification: '{spec}'"))),
    };
    if src.is_empty() || dst.is_empty() {
        return Err(Error::invalid(format!("invalid volume specification: '{spec}'")));
    }
    if !src.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid volume specification: '{spec}': named volumes are not supported yet"
        )));
    }
    if !dst.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    let mut m = MountSpec::new(MountType::Bind, src, dst);
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
        } else {
            return Err(Error::invalid(format!("invalid mode: {mode}")));
        }
    }
    if rw > 1 || prop > 1 {
        return Err(Error::invalid(format!("invalid mode: {mode}")));
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
            return Err(bad("named volumes are not supported yet"));
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
            ("vol:/b", Err("invalid volume specification: 'vol:/b': named volumes are not supported yet")),
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
                json!({"Type": "volume", "Source": "v", "Target": "/x"}),
                Err("invalid mount config for type \"volume\": named volumes are not supported yet"),
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
