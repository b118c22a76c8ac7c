//! Registry manifest and image-config types (Docker schema2 and OCI) and the choice of
//! a platform from a manifest list / OCI index. Pure data; the registry client fetches,
//! `pull` drives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MEDIA_DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header sent for manifests, most preferred first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform images are pulled for: linux and the host architecture in Go's
    /// spelling (amd64 on x86_64).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            _ => "amd64",
        };
        Platform { architecture: arch.to_string(), os: "linux".to_string(), variant: None }
    }
}

impl Platform {
    /// containerd's `platforms.Parse` + `Normalize` for what Docker accepts in
    /// `--platform`: `os[/arch[/variant]]` or a bare architecture (the host's OS), Go's
    /// spellings of architectures (`x86_64` → `amd64`, `aarch64` → `arm64`), arm64's
    /// default variant `v8` dropped. Only Linux is usable here.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<String> = s.split('/').map(str::to_ascii_lowercase).collect();
        let unknown = || format!("\"{s}\": unknown operating system or architecture: invalid argument");
        if parts.len() > 3 || parts.iter().any(String::is_empty) {
            return Err(unknown());
        }
        const OSES: &[&str] = &["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix", "android", "ios", "plan9", "js", "wasip1"];
        let norm_arch = |a: &str| -> (String, Option<String>) {
            match a {
                "x86_64" | "x86-64" | "amd64" => ("amd64".into(), None),
                "aarch64" | "arm64" => ("arm64".into(), None),
                "armhf" => ("arm".into(), Some("v7".into())),
                "armel" => ("arm".into(), Some("v6".into())),
                "i386" | "i686" | "386" => ("386".into(), None),
                other => (other.into(), None),
            }
        };
        let (os, arch, variant) = match parts.as_slice() {
            [one] if OSES.contains(&one.as_str()) => (one.clone(), Platform::host().architecture, None),
            [one] => {
                let (a, v) = norm_arch(one);
                ("linux".to_string(), a, v)
            }
            [os, arch] => {
                let (a, v) = norm_arch(arch);
                (os.clone(), a, v)
            }
            [os, arch, variant] => {
                let (a, _) = norm_arch(arch);
                (os.clone(), a, Some(variant.clone()))
            }
            _ => return Err(unknown()),
        };
        if !OSES.contains(&os.as_str()) {
            return Err(unknown());
        }
        if os != "linux" {
            return Err(format!("image operating system \"{os}\" cannot be used on this platform"));
        }
        let variant = match (arch.as_str(), variant) {
            ("arm64", Some(v)) if v == "v8" => None,
            (_, v) => v,
        };
        Ok(Platform { architecture: arch, os, variant })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A single-platform image manifest (Docker schema2 or OCI).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// A manifest list (Docker) or image index (OCI).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ManifestIndex {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// What a manifest document turned out to be.
#[derive(Clone, Debug)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ManifestIndex),
}

impl Manifest {
    /// Parses a manifest body; the media type comes from the `Content-Type` header or,
    /// when that is missing or generic, from the document itself.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, String> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
            #[serde(rename = "schemaVersion", default)]
            schema_version: Option<u32>,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
            #[serde(default)]
            config: Option<serde_json::Value>,
        }
        let probe: Probe =
            serde_json::from_slice(body).map_err(|e| format!("invalid manifest json: {e}"))?;
        let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        let mt = match (ct.as_deref(), probe.media_type.as_deref()) {
            (Some(c), _) if is_known(c) => c.to_string(),
            (_, Some(m)) if is_known(m) => m.to_string(),
            _ if probe.manifests.is_some() => MEDIA_OCI_INDEX.to_string(),
            _ if probe.config.is_some() => MEDIA_OCI_MANIFEST.to_string(),
            _ if probe.schema_version == Some(1) => MEDIA_DOCKER_SCHEMA1.to_string(),
            _ => return Err("unknown manifest type".to_string()),
        };
        match mt.as_str() {
            MEDIA_DOCKER_MANIFEST | MEDIA_OCI_MANIFEST => serde_json::from_slice(body)
                .map(Manifest::Image)
                .map_err(|e| format!("invalid image manifest: {e}")),
            MEDIA_DOCKER_LIST | MEDIA_OCI_INDEX => serde_json::from_slice(body)
                .map(Manifest::Index)
                .map_err(|e| format!("invalid manifest list: {e}")),
            _ => Err(format!(
                "unsupported manifest media type {mt}: Docker image format v1 (schema1) is not supported"
            )),
        }
    }
}

fn is_known(mt: &str) -> bool {
    matches!(
        mt,
        MEDIA_DOCKER_MANIFEST
            | MEDIA_DOCKER_LIST
            | MEDIA_OCI_MANIFEST
            | MEDIA_OCI_INDEX
            | MEDIA_DOCKER_SCHEMA1
            | MEDIA_DOCKER_SCHEMA1_SIGNED
    )
}

/// Chooses the entry of a manifest list for `want`: same os and architecture, an entry
/// without variant (or with the wanted variant) preferred over other variants.
pub fn select_platform<'a>(index: &'a ManifestIndex, want: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
        })
        .collect();
    let variant = |d: &Descriptor| d.platform.as_ref().and_then(|p| p.variant.clone());
    candidates
        .iter()
        .find(|d| variant(d) == want.variant)
        .or_else(|| candidates.iter().find(|d| variant(d).is_none()))
        .or_else(|| candidates.first())
        .copied()
}

/// The image config (`application/vnd.docker.container.image.v1+json` /
/// `application/vnd.oci.image.config.v1+json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, deserialize_with = "null_default")]
    pub history: Vec<History>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// The runtime defaults of an image, with Docker's/OCI's key names. Every field may be
/// absent or `null`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "StopSignal", default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Docker's `HEALTHCHECK` (Test, Interval, Timeout, StartPeriod, StartInterval,
    /// Retries), kept as JSON: the engine types and merges it.
    #[serde(rename = "Healthcheck", default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {

    #[test]
    fn platforms_parse_like_containerd() {
        let p = |os: &str, a: &str, v: Option<&str>| Platform { os: os.into(), architecture: a.into(), variant: v.map(Into::into) };
        let cases: Vec<(&str, Result<Platform, &str>)> = vec![
            ("linux/arm64", Ok(p("linux", "arm64", None))),
            ("linux/arm64/v8", Ok(p("linux", "arm64", None))),
            ("linux/aarch64", Ok(p("linux", "arm64", None))),
            ("linux/x86_64", Ok(p("linux", "amd64", None))),
            ("Linux/AMD64", Ok(p("linux", "amd64", None))),
            ("linux/arm/v7", Ok(p("linux", "arm", Some("v7")))),
            ("linux/armhf", Ok(p("linux", "arm", Some("v7")))),
            ("arm64", Ok(p("linux", "arm64", None))),
            ("linux", Ok(Platform::host())),
            ("windows/amd64", Err("image operating system \"windows\" cannot be used on this platform")),
            ("foo/amd64", Err("\"foo/amd64\": unknown operating system or architecture: invalid argument")),
            ("linux//v7", Err("\"linux//v7\": unknown operating system or architecture: invalid argument")),
            ("a/b/c/d", Err("\"a/b/c/d\": unknown operating system or architecture: invalid argument")),
        ];
        for (s, want) in cases {
            assert_eq!(Platform::parse(s), want.map_err(str::to_string), "{s}");
        }
    }

    use super::*;

    fn idx(entries: &[(&str, &str, Option<&str>)]) -> ManifestIndex {
        ManifestIndex {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.into()),
            manifests: entries
                .iter()
                .enumerate()
                .map(|(i, (os, arch, v))| Descriptor {
                    media_type: MEDIA_OCI_MANIFEST.into(),
                    digest: format!("sha256:{i}"),
                    size: 1,
                    platform: Some(Platform {
                        os: os.to_string(),
                        architecture: arch.to_string(),
                        variant: v.map(str::to_string),
                    }),
                    urls: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn platform_selection() {
        let amd64 = Platform { os: "linux".into(), architecture: "amd64".into(), variant: None };
        let cases: Vec<(ManifestIndex, Option<&str>)> = vec![
            (idx(&[("linux", "arm64", Some("v8")), ("linux", "amd64", None)]), Some("sha256:1")),
            (idx(&[("linux", "amd64", Some("v3")), ("linux", "amd64", None)]), Some("sha256:1")),
            (idx(&[("linux", "amd64", Some("v3"))]), Some("sha256:0")),
            (idx(&[("windows", "amd64", None), ("linux", "arm", Some("v7"))]), None),
            (idx(&[]), None),
        ];
        for (i, want) in cases {
            assert_eq!(select_platform(&i, &amd64).map(|d| d.digest.as_str()), want);
        }
    }

    #[test]
    fn parse_kinds() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:a","size":1},"layers":[]}"#;
        assert!(matches!(Manifest::parse(Some(MEDIA_DOCKER_MANIFEST), m), Ok(Manifest::Image(_))));
        assert!(matches!(Manifest::parse(None, m), Ok(Manifest::Image(_))));
        let l = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(Manifest::parse(Some("application/json"), l), Ok(Manifest::Index(_))));
        let s1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(Manifest::parse(None, s1).is_err());
    }

    #[test]
    fn config_accepts_nulls() {
        let c: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":["sh"],"Labels":null,"ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:a"]},"history":null}"#,
        )
        .unwrap();
        let cc = c.config.unwrap();
        assert_eq!(cc.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(cc.env, None);
        assert!(cc.exposed_ports.unwrap().contains_key("80/tcp"));
        assert_eq!(c.rootfs.diff_ids, vec!["sha256:a".to_string()]);
    }
}
