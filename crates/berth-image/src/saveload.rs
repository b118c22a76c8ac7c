//! `docker save` / `docker load`: images out of and into the store as a docker-archive
//! (`manifest.json`, `repositories`, `<config hex>.json`, `<layer>/layer.tar` with
//! `VERSION` and `json`, as Docker 20.10 writes it); load also reads an OCI image
//! layout (`index.json`, `blobs/sha256/…`).
//!
//! Save streams: each layer's tar is the kept blob decompressed ([`ImageStore::
//! layer_tar`]), checked against its diff id as it goes. Load streams too: the archive
//! is read once, every file beside the small metadata goes to an `ingest/` file (the
//! manifest may come last, so nothing can be unpacked before the end), then each image's
//! layers are unpacked from those files (diff ids checked), kept as the layers' tars,
//! and the image recorded. Memory is bounded by the caps below, never by the archive.
//! A broken or lying archive leaves the store as it was: ingest files are removed
//! whatever happens, and layers this load committed for an image that then failed are
//! removed again.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_api::reference::Reference;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{StoreError, UnpackError};
use crate::manifest::ImageConfig;
use crate::store::{chain_id, digest_hex, remove_any, Image, ImageRecord, ImageStore, LAYER_BLOB};

/// Largest metadata file read into memory (`manifest.json`, a config, an index).
const MAX_META: u64 = 8 << 20;
/// Most entries an archive may have (bounds the name table).
const MAX_ENTRIES: usize = 100_000;

/// One image of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// What to save: an image and the tags to record for it (none for an image named by id).
pub struct SaveItem {
    pub image: Image,
    pub tags: Vec<String>,
}

fn file_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn tar_err(e: io::Error) -> StoreError {
    StoreError::Internal(format!("writing the archive: {e}"))
}

impl ImageStore {
    /// Writes `items` as one docker-archive to `out` (blocking). A layer whose kept
    /// tar does not hash to its diff id fails the write, so the client sees an error
    /// rather than a clean end.
    pub fn save(&self, items: &[SaveItem], out: impl Write) -> Result<(), StoreError> {
        let mut tar = tar::Builder::new(out);
        let mut written: BTreeMap<String, ()> = BTreeMap::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for item in items {
            let img = &item.image;
            let chains = chain_id(&img.layers);
            let mut layer_paths = Vec::new();
            for (i, chain) in chains.iter().enumerate() {
                let dir = digest_hex(chain).to_string();
                layer_paths.push(format!("{dir}/layer.tar"));
                if written.insert(dir.clone(), ()).is_some() {
                    continue;
                }
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(0);
                tar.append_data(&mut h, format!("{dir}/"), io::empty()).map_err(tar_err)?;
                tar.append_data(&mut file_header(3, 0o644), format!("{dir}/VERSION"), &b"1.0"[..]).map_err(tar_err)?;
                let mut json = serde_json::json!({ "id": dir });
                if i > 0 {
                    json["parent"] = digest_hex(&chains[i - 1]).into();
                }
                let json = serde_json::to_vec(&json).map_err(|e| StoreError::Internal(e.to_string()))?;
                tar.append_data(&mut file_header(json.len() as u64, 0o644), format!("{dir}/json"), &json[..]).map_err(tar_err)?;
                let (size, reader) = self.layer_tar(chain, &img.layers[i])?;
                tar.append_data(&mut file_header(size, 0o644), format!("{dir}/layer.tar"), reader).map_err(tar_err)?;
            }
            let config_path = self.blob_path(&img.id);
            let config = fs::read(&config_path).map_err(|e| StoreError::io("read", &config_path, e))?;
            let config_name = format!("{}.json", digest_hex(&img.id));
            if written.insert(config_name.clone(), ()).is_none() {
                tar.append_data(&mut file_header(config.len() as u64, 0o644), &config_name, &config[..]).map_err(tar_err)?;
            }
            for t in &item.tags {
                if let Ok(r) = Reference::parse(t) {
                    if let (Some(tag), Some(top)) = (r.tag.clone(), chains.last()) {
                        repositories.entry(r.familiar_name()).or_default().insert(tag, digest_hex(top).to_string());
                    }
                }
            }
            manifest.push(ManifestItem {
                config: config_name,
                repo_tags: (!item.tags.is_empty()).then(|| item.tags.clone()),
                layers: layer_paths,
            });
        }
        let m = serde_json::to_vec(&manifest).map_err(|e| StoreError::Internal(e.to_string()))?;
        tar.append_data(&mut file_header(m.len() as u64, 0o644), "manifest.json", &m[..]).map_err(tar_err)?;
        if !repositories.is_empty() {
            let r = serde_json::to_vec(&repositories).map_err(|e| StoreError::Internal(e.to_string()))?;
            tar.append_data(&mut file_header(r.len() as u64, 0o644), "repositories", &r[..]).map_err(tar_err)?;
        }
        tar.into_inner().map_err(tar_err)?.flush().map_err(tar_err)?;
        Ok(())
    }

    /// Loads a docker-archive or OCI layout from `archive` (blocking). `line` gets
    /// Docker's messages (`Loaded image: x:y`, `Loaded image ID: sha256:…`, the
    /// renaming notice) as each image is recorded.
    pub fn load(&self, archive: impl Read, line: &mut dyn FnMut(String)) -> Result<(), StoreError> {
        let files = Ingested::read(self, archive)?;
        let images = files.images()?;
        for (config, layers, tags) in images {
            self.load_one(&files, &config, &layers, &tags, line)?;
        }
        Ok(())
    }

    fn load_one(
        &self,
        files: &Ingested,
        config_name: &str,
        layer_names: &[String],
        tags: &[String],
        line: &mut dyn FnMut(String),
    ) -> Result<(), StoreError> {
        let config = files.small(config_name)?;
        let parsed: ImageConfig = serde_json::from_slice(&config).map_err(|e| bad(format!("invalid image config {config_name}: {e}")))?;
        let diff_ids = parsed.rootfs.diff_ids.clone();
        if diff_ids.len() != layer_names.len() {
            return Err(bad(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                layer_names.len(),
                diff_ids.len()
            )));
        }
        let refs: Vec<Reference> = tags
            .iter()
            .map(|t| Reference::parse(t).map(Reference::with_default_tag).map_err(StoreError::from))
            .collect::<Result<_, _>>()?;
        let chains = chain_id(&diff_ids);
        let _pin = self.pin(&chains);
        let mut committed = Vec::new();
        let result = (|| {
            for (i, name) in layer_names.iter().enumerate() {
                if self.has_layer(&chains[i]) {
                    continue;
                }
                let src = files.file(name)?;
                let tmp = self.layer_tmp();
                fs::create_dir(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
                let r = (|| {
                    let f = fs::File::open(src).map_err(|e| StoreError::io("open", src, e))?;
                    let stats = crate::unpack::unpack_any(io::BufReader::with_capacity(64 * 1024, f), &tmp.join("diff"))?;
                    if stats.diff_id != diff_ids[i] {
                        return Err(bad(format!("invalid diffID for layer {i}: expected \"{}\", got \"{}\"", diff_ids[i], stats.diff_id)));
                    }
                    let keep = tmp.join(LAYER_BLOB);
                    fs::hard_link(src, &keep).map_err(|e| StoreError::io("link", &keep, e))?;
                    self.commit_layer(&tmp, &chains[i], &stats)
                })();
                if let Err(e) = r {
                    let _ = remove_any(&tmp);
                    return Err(e);
                }
                committed.push(chains[i].clone());
            }
            let id = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
            self.write_blob(&id, &config)?;
            let before: Vec<(String, Option<String>)> = refs.iter().map(|r| (r.familiar(), self.resolve(&r.familiar()).ok().map(|i| i.id))).collect();
            let record = ImageRecord {
                id: id.clone(),
                layers: diff_ids.clone(),
                chain_ids: chains.clone(),
                manifest_digest: None,
                blobs: Vec::new(),
                parent: None,
            };
            self.commit_image(record, &refs)?;
            Ok((id, before))
        })();
        match result {
            Ok((id, before)) => {
                for (name, old) in before {
                    if let Some(old) = old.filter(|o| *o != id) {
                        line(format!("The image {name} already exists, renaming the old one with ID {old} to empty string"));
                    }
                    line(format!("Loaded image: {name}"));
                }
                if refs.is_empty() {
                    line(format!("Loaded image ID: {id}"));
                }
                Ok(())
            }
            Err(e) => {
                drop(_pin);
                self.drop_unused_layers(&committed);
                Err(e)
            }
        }
    }
}

fn bad(msg: String) -> StoreError {
    StoreError::Layer(UnpackError::Archive(msg))
}

/// Normalizes an archive member name: `./` and trailing `/` dropped; absolute names and
/// `..` components are refused (nothing is ever written by these names, but an archive
/// that has them is not one Docker or Berth wrote).
pub fn member_name(raw: &str) -> Result<String, String> {
    if raw.starts_with('/') {
        return Err(format!("invalid archive: absolute path {raw:?}"));
    }
    let mut parts = Vec::new();
    for p in raw.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(format!("invalid archive: path {raw:?} leaves the archive")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The archive's files: small metadata in memory, everything else in `ingest/` files
/// (removed on drop), symlinks resolved by name.
struct Ingested {
    small: HashMap<String, Vec<u8>>,
    files: HashMap<String, PathBuf>,
    links: HashMap<String, String>,
}

impl Drop for Ingested {
    fn drop(&mut self) {
        for p in self.files.values() {
            let _ = remove_any(p);
        }
    }
}

fn is_meta(name: &str) -> bool {
    matches!(name, "manifest.json" | "repositories" | "index.json" | "oci-layout") || (!name.contains('/') && name.ends_with(".json"))
}

impl Ingested {
    fn read(store: &ImageStore, archive: impl Read) -> Result<Ingested, StoreError> {
        let mut out = Ingested { small: HashMap::new(), files: HashMap::new(), links: HashMap::new() };
        let mut ar = tar::Archive::new(archive);
        let entries = ar.entries().map_err(|e| bad(format!("invalid archive: {e}")))?;
        for (n, entry) in entries.enumerate() {
            if n >= MAX_ENTRIES {
                return Err(bad(format!("invalid archive: more than {MAX_ENTRIES} entries")));
            }
            let mut entry = entry.map_err(|e| bad(format!("invalid archive: {e}")))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = member_name(&raw).map_err(bad)?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                    let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                        name.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string())
                    } else {
                        String::new()
                    };
                    let joined = if base.is_empty() { target } else { format!("{base}/{target}") };
                    // `..` inside the archive is fine for a link target once resolved.
                    let resolved = resolve_dots(&joined).ok_or_else(|| bad(format!("invalid archive: link {raw:?} leaves the archive")))?;
                    out.links.insert(name, resolved);
                    continue;
                }
                _ => continue,
            }
            if is_meta(&name) {
                if entry.size() > MAX_META {
                    return Err(bad(format!("invalid archive: {name} is larger than {MAX_META} bytes")));
                }
                let mut v = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut v).map_err(|e| bad(format!("invalid archive: {e}")))?;
                out.small.insert(name, v);
                continue;
            }
            let path = store.ingest_path();
            // Registered first, so the file goes whatever happens next.
            out.files.insert(name.clone(), path.clone());
            let mut f = fs::File::create(&path).map_err(|e| StoreError::io("create", &path, e))?;
            io::copy(&mut entry, &mut f).map_err(|e| bad(format!("invalid archive: {e}")))?;
            f.sync_all().map_err(|e| StoreError::io("fsync", &path, e))?;
        }
        Ok(out)
    }

    fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        let mut n = name;
        for _ in 0..16 {
            match self.links.get(n) {
                Some(t) => n = t,
                None => break,
            }
        }
        n
    }

    fn file(&self, name: &str) -> Result<&Path, StoreError> {
        let n = member_name(name).map_err(bad)?;
        self.files
            .get(self.resolve(&n))
            .map(PathBuf::as_path)
            .ok_or_else(|| bad(format!("invalid archive: {name} is missing")))
    }

    /// A metadata file: from memory, or (a large config, an OCI blob) from its ingest
    /// file, at most [`MAX_META`] bytes.
    fn small(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let n = member_name(name).map_err(bad)?;
        let n = self.resolve(&n);
        if let Some(v) = self.small.get(n) {
            return Ok(v.clone());
        }
        let p = self.file(n)?;
        let f = fs::File::open(p).map_err(|e| StoreError::io("open", p, e))?;
        let mut v = Vec::new();
        f.take(MAX_META + 1).read_to_end(&mut v).map_err(|e| StoreError::io("read", p, e))?;
        if v.len() as u64 > MAX_META {
            return Err(bad(format!("invalid archive: {name} is larger than {MAX_META} bytes")));
        }
        Ok(v)
    }

    /// (config member, layer members, tags) of each image, from `manifest.json` or an
    /// OCI `index.json`.
    fn images(&self) -> Result<Vec<ToLoad>, StoreError> {
        if let Some(m) = self.small.get("manifest.json") {
            let items: Vec<ManifestItem> = serde_json::from_slice(m).map_err(|e| bad(format!("invalid manifest.json: {e}")))?;
            return Ok(items.into_iter().map(|i| (i.config, i.layers, i.repo_tags.unwrap_or_default())).collect());
        }
        let Some(index) = self.small.get("index.json") else {
            return Err(bad("invalid archive: it has neither manifest.json nor index.json".into()));
        };
        let blob = |d: &str| format!("blobs/sha256/{}", digest_hex(d));
        let idx: serde_json::Value = serde_json::from_slice(index).map_err(|e| bad(format!("invalid index.json: {e}")))?;
        let mut out = Vec::new();
        for m in idx["manifests"].as_array().cloned().unwrap_or_default() {
            let digest = m["digest"].as_str().unwrap_or_default();
            let manifest: serde_json::Value =
                serde_json::from_slice(&self.small(&blob(digest))?).map_err(|e| bad(format!("invalid manifest {digest}: {e}")))?;
            let config = blob(manifest["config"]["digest"].as_str().unwrap_or_default());
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|l| blob(l["digest"].as_str().unwrap_or_default()))
                .collect();
            let tags: Vec<String> = m["annotations"]["io.containerd.image.name"]
                .as_str()
                .and_then(|n| Reference::parse(n).ok())
                .map(|r| r.with_default_tag().familiar())
                .into_iter()
                .collect();
            out.push((config, layers, tags));
        }
        Ok(out)
    }
}

/// One image of an archive: its config member, its layer members (bottom first) and
/// its tags.
type ToLoad = (String, Vec<String>, Vec<String>);

/// `a/b/../c` → `a/c`; None if it climbs above the root.
fn resolve_dots(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        let table = [
            ("manifest.json", Ok("manifest.json")),
            ("./abc/layer.tar", Ok("abc/layer.tar")),
            ("abc/", Ok("abc")),
            ("/etc/passwd", Err(())),
            ("../x/layer.tar", Err(())),
            ("a/../../b", Err(())),
        ];
        for (raw, want) in table {
            assert_eq!(member_name(raw).map_err(|_| ()), want.map(str::to_string), "{raw}");
        }
        assert_eq!(resolve_dots("a/../b/layer.tar").as_deref(), Some("b/layer.tar"));
        assert_eq!(resolve_dots("../b"), None);
    }
}
