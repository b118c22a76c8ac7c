//! `docker save` / `docker load`: images out of and into the store as a docker-archive
//! (`manifest.json`, `repositories`, `<config hex>.json`, `<v1 id>/` with `VERSION`,
//! `json` and `layer.tar`, as Docker 20.10 writes it); load also reads an OCI image
//! layout (`index.json`, `blobs/sha256/…`), such as skopeo's `oci-archive`.
//!
//! Save plans every member first (names, the small files; [`v1`] makes the legacy
//! directories and their `json` exactly as Docker does) and writes them in Docker's
//! order, streaming each layer's tar (the kept blob decompressed, [`ImageStore::
//! layer_tar`], checked against its diff id as it goes). A diff id met again in another
//! directory becomes a symlink to the first `layer.tar`, as in Docker's archives.
//!
//! Load streams too: the archive is read once, every file beside the small metadata goes
//! to an `ingest/` file (the manifest may come last, so nothing can be unpacked before
//! the end), then each image's layers are unpacked from those files (diff ids checked),
//! kept as the layers' tars, and the image recorded; `Parent` links between images of
//! the archive are restored at the end, as Docker does. Memory is bounded by the caps
//! below, never by the archive. A broken or lying archive leaves the store as it was for
//! the image that failed: ingest files are removed whatever happens, and layers this
//! load committed for that image are removed again (images before it stay loaded, as
//! with Docker). Error texts are Docker's where Docker has one.

mod v1;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_api::reference::Reference;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::{StoreError, UnpackError};
use crate::manifest::{select_platform, ImageConfig, ManifestIndex, Platform};
use crate::store::{chain_id, digest_hex, remove_any, Image, ImageRecord, ImageStore, LAYER_BLOB};

pub use v1::{layers as v1_layers, V1Layer};

/// Largest metadata file read into memory (`manifest.json`, a config, an index).
const MAX_META: u64 = 8 << 20;
/// Most metadata bytes held in memory at once (all small files together).
const MAX_META_TOTAL: u64 = 64 << 20;
/// Most entries an archive may have (bounds the name table).
const MAX_ENTRIES: usize = 100_000;

/// One image of `manifest.json` (moby's `manifestItem`; `LayerSources`, for Windows
/// foreign layers, is ignored).
#[derive(Debug, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
    #[serde(rename = "Parent", default)]
    parent: Option<String>,
}

/// What to save: an image and the tags to record for it (none for an image named by id).
pub struct SaveItem {
    pub image: Image,
    pub tags: Vec<String>,
}

/// What a load reports as it goes: a line of Docker's output, or an image recorded (by
/// id; Docker's `load` event).
#[derive(Debug, Clone, PartialEq)]
pub enum LoadNote {
    Line(String),
    Loaded(String),
}

/// A member of a planned archive.
enum Member {
    Dir,
    Bytes(Vec<u8>),
    /// A layer's tar, streamed from the store.
    Layer { chain: String, diff: String },
    /// A symlink to an earlier `layer.tar` with the same diff id.
    Link(String),
}

fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime.max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    // Docker's archives name the owner; "root" always fits the ustar fields.
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

fn tar_err(e: io::Error) -> StoreError {
    StoreError::Internal(format!("writing the archive: {e}"))
}

/// `["a","b"]` with Go's escaping, or `null` (a nil slice) when `v` is None.
fn go_list(v: Option<&[String]>) -> String {
    match v {
        Some(v) => format!("[{}]", v.iter().map(|s| v1::go_string(s)).collect::<Vec<_>>().join(",")),
        None => "null".into(),
    }
}

impl ImageStore {
    /// Writes `items` as one docker-archive to `out` (blocking). A layer whose kept
    /// tar does not hash to its diff id fails the write, so the client sees an error
    /// rather than a clean end.
    pub fn save(&self, items: &[SaveItem], out: impl Write) -> Result<(), StoreError> {
        // Keyed (top-level name, name inside it): Docker tars a directory tree, so its
        // members come sorted that way, each directory before what it holds.
        let mut members: BTreeMap<(String, String), (Member, i64)> = BTreeMap::new();
        // First `layer.tar` written for each diff id.
        let mut first_tar: HashMap<String, String> = HashMap::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let ids: HashSet<&str> = items.iter().map(|i| i.image.id.as_str()).collect();
        for item in items {
            let img = &item.image;
            let created = img.created_unix();
            let config_path = self.blob_path(&img.id);
            let config = fs::read(&config_path).map_err(|e| StoreError::io("read", &config_path, e))?;
            let parsed: serde_json::Value = serde_json::from_slice(&config)
                .map_err(|e| StoreError::Internal(format!("invalid image config {}: {e}", img.id)))?;
            let chains = chain_id(&img.layers);
            let dirs = v1::layers(&parsed, &img.layers);
            let mut layer_paths = Vec::new();
            for (i, l) in dirs.into_iter().enumerate() {
                let path = format!("{}/layer.tar", l.id);
                layer_paths.push(path.clone());
                if members.contains_key(&(l.id.clone(), String::new())) {
                    continue;
                }
                let tar_member = match first_tar.get(&img.layers[i]) {
                    Some(first) => Member::Link(format!("../{first}")),
                    None => {
                        first_tar.insert(img.layers[i].clone(), path);
                        Member::Layer { chain: chains[i].clone(), diff: img.layers[i].clone() }
                    }
                };
                members.insert((l.id.clone(), String::new()), (Member::Dir, created));
                members.insert((l.id.clone(), "VERSION".into()), (Member::Bytes(b"1.0".to_vec()), created));
                members.insert((l.id.clone(), "json".into()), (Member::Bytes(l.json.into_bytes()), created));
                members.insert((l.id, "layer.tar".into()), (tar_member, created));
            }
            let config_name = format!("{}.json", digest_hex(&img.id));
            members.entry((config_name.clone(), String::new())).or_insert((Member::Bytes(config), created));
            if let Some(top) = layer_paths.last().and_then(|p| p.split('/').next()) {
                for t in &item.tags {
                    if let Ok(r) = Reference::parse(t) {
                        if let Some(tag) = r.tag.clone() {
                            repositories.entry(r.familiar_name()).or_default().insert(tag, top.to_string());
                        }
                    }
                }
            }
            // Docker's validatedParentLinks: a parent only if it is in the archive too.
            let parent = img.parent.as_deref().filter(|p| *p != img.id && ids.contains(p));
            let mut m = format!(
                "{{\"Config\":{},\"RepoTags\":{},\"Layers\":{}",
                v1::go_string(&config_name),
                go_list((!item.tags.is_empty()).then_some(item.tags.as_slice())),
                go_list(Some(&layer_paths))
            );
            if let Some(p) = parent {
                m.push_str(&format!(",\"Parent\":{}", v1::go_string(p)));
            }
            m.push('}');
            manifest.push(m);
        }
        // Go's json.Encoder: one line, newline-terminated.
        let manifest = format!("[{}]\n", manifest.join(","));
        members.insert(("manifest.json".into(), String::new()), (Member::Bytes(manifest.into_bytes()), 0));
        if !repositories.is_empty() {
            let mut r = serde_json::to_string(&repositories).map_err(|e| StoreError::Internal(e.to_string()))?;
            r.push('\n');
            members.insert(("repositories".into(), String::new()), (Member::Bytes(r.into_bytes()), 0));
        }

        let mut tar = tar::Builder::new(out);
        for ((top, sub), (member, mtime)) in members {
            let name = if sub.is_empty() { top } else { format!("{top}/{sub}") };
            match member {
                Member::Dir => {
                    let mut h = header(tar::EntryType::Directory, 0, 0o755, mtime);
                    tar.append_data(&mut h, format!("{name}/"), io::empty()).map_err(tar_err)?;
                }
                Member::Bytes(b) => {
                    let mut h = header(tar::EntryType::Regular, b.len() as u64, 0o644, mtime);
                    tar.append_data(&mut h, &name, &b[..]).map_err(tar_err)?;
                }
                Member::Layer { chain, diff } => {
                    let (size, reader) = self.layer_tar(&chain, &diff)?;
                    let mut h = header(tar::EntryType::Regular, size, 0o644, mtime);
                    tar.append_data(&mut h, &name, reader).map_err(tar_err)?;
                }
                Member::Link(target) => {
                    let mut h = header(tar::EntryType::Symlink, 0, 0o777, mtime);
                    tar.append_link(&mut h, &name, &target).map_err(tar_err)?;
                }
            }
        }
        tar.into_inner().map_err(tar_err)?.flush().map_err(tar_err)?;
        Ok(())
    }

    /// Loads a docker-archive or OCI layout from `archive` (blocking). `note` gets
    /// Docker's lines (`Loaded image: x:y`, the renaming notice) and each image id as
    /// the image is recorded; Docker's `Loaded image ID: sha256:…` lines come at the
    /// end, for every image, and only when the archive's last image has no tag (moby's
    /// `imageRefCount`, which each image resets).
    pub fn load(&self, archive: impl Read, note: &mut dyn FnMut(LoadNote)) -> Result<(), StoreError> {
        let files = Ingested::read(self, archive)?;
        let images = files.images()?;
        let mut ids: Vec<String> = Vec::new();
        let mut last_tagged = false;
        for img in &images {
            let id = self.load_one(&files, img, note)?;
            note(LoadNote::Loaded(id.clone()));
            last_tagged = !img.tags.is_empty();
            ids.push(id);
        }
        for (img, id) in images.iter().zip(&ids) {
            if let Some(p) = img.parent.as_deref().filter(|p| *p != id && ids.iter().any(|i| i == p)) {
                self.link_parent(id, p)?;
            }
        }
        if !last_tagged {
            for id in &ids {
                note(LoadNote::Line(format!("Loaded image ID: {id}")));
            }
        }
        Ok(())
    }

    /// moby's `setParentID`: `parent` must be `id`'s parent by history (one entry
    /// fewer, the others equal), or the load fails with Docker's text.
    fn link_parent(&self, id: &str, parent: &str) -> Result<(), StoreError> {
        let img = self.get(id)?;
        let p = self.get(parent)?;
        if !valid_parent(&img.config, &p.config) {
            return Err(bad(format!("image {parent} is not a valid parent for {id}")));
        }
        self.set_parent(id, parent)
    }

    fn load_one(&self, files: &Ingested, img: &ToLoad, note: &mut dyn FnMut(LoadNote)) -> Result<String, StoreError> {
        let (config_name, layer_names) = (&img.config, &img.layers);
        let config = files.small(config_name)?;
        let parsed: ImageConfig = serde_json::from_slice(&config).map_err(|e| bad(format!("invalid image config {config_name}: {e}")))?;
        if !parsed.os.is_empty() && parsed.os != "linux" {
            return Err(bad(format!("cannot load {} image on linux", parsed.os)));
        }
        let diff_ids = parsed.rootfs.diff_ids.clone();
        if diff_ids.len() != layer_names.len() {
            return Err(bad(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                layer_names.len(),
                diff_ids.len()
            )));
        }
        // Docker's rule: a RepoTag names a tag (no bare name, no digest). Checked before
        // anything is stored, so a bad one leaves no untagged image behind.
        let refs: Vec<Reference> = img
            .tags
            .iter()
            .map(|t| {
                let r = Reference::parse(t)?;
                if r.tag.is_none() || r.digest.is_some() {
                    return Err(bad(format!("invalid tag \"{t}\"")));
                }
                Ok(r)
            })
            .collect::<Result<_, StoreError>>()?;
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
                        note(LoadNote::Line(format!("The image {name} already exists, renaming the old one with ID {old} to empty string")));
                    }
                    note(LoadNote::Line(format!("Loaded image: {name}")));
                }
                Ok(id)
            }
            Err(e) => {
                drop(_pin);
                self.drop_unused_layers(&committed);
                Err(e)
            }
        }
    }
}

/// moby's `checkValidParent`: no history on either side, or the child's history is the
/// parent's plus one entry (creation times compared as instants).
fn valid_parent(img: &ImageConfig, parent: &ImageConfig) -> bool {
    let (c, p) = (&img.history, &parent.history);
    if c.is_empty() && p.is_empty() {
        return true;
    }
    if c.len() != p.len() + 1 {
        return false;
    }
    let instant = |t: &Option<String>| t.as_deref().map(|s| chrono::DateTime::parse_from_rfc3339(s).map_err(|_| s.to_string()));
    p.iter().zip(c).all(|(hp, hc)| {
        instant(&hp.created) == instant(&hc.created)
            && hp.created_by.as_deref().unwrap_or("") == hc.created_by.as_deref().unwrap_or("")
            && hp.author.as_deref().unwrap_or("") == hc.author.as_deref().unwrap_or("")
            && hp.comment.as_deref().unwrap_or("") == hc.comment.as_deref().unwrap_or("")
            && hp.empty_layer.unwrap_or(false) == hc.empty_layer.unwrap_or(false)
    })
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

/// Small files kept in memory: the top-level metadata, configs, and the legacy v1
/// `VERSION` and `json` of each layer directory (never read, but not worth an ingest
/// file and an fsync each).
fn is_meta(name: &str) -> bool {
    matches!(name, "manifest.json" | "repositories" | "index.json" | "oci-layout")
        || (!name.contains('/') && name.ends_with(".json"))
        || (name.matches('/').count() == 1 && (name.ends_with("/json") || name.ends_with("/VERSION")))
}

impl Ingested {
    fn read(store: &ImageStore, archive: impl Read) -> Result<Ingested, StoreError> {
        let mut out = Ingested { small: HashMap::new(), files: HashMap::new(), links: HashMap::new() };
        let mut meta_total = 0u64;
        let mut ar = tar::Archive::new(decompressed(archive)?);
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
                meta_total += entry.size();
                if meta_total > MAX_META_TOTAL {
                    return Err(bad(format!("invalid archive: more than {MAX_META_TOTAL} bytes of metadata")));
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
            .ok_or_else(|| bad(format!("open {name}: no such file or directory")))
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

    /// The images to load, from `manifest.json` or an OCI `index.json`.
    fn images(&self) -> Result<Vec<ToLoad>, StoreError> {
        if let Some(m) = self.small.get("manifest.json") {
            let items: Option<Vec<ManifestItem>> = serde_json::from_slice(m).map_err(|e| match e.classify() {
                // Go's json.Decoder says this of a cut document.
                serde_json::error::Category::Eof => bad("unexpected EOF".into()),
                _ => bad(format!("invalid manifest.json: {e}")),
            })?;
            let items = items.ok_or_else(|| bad("invalid manifest, manifest cannot be null (but can be [])".into()))?;
            return Ok(items
                .into_iter()
                .map(|i| ToLoad { config: i.config, layers: i.layers, tags: i.repo_tags.unwrap_or_default(), parent: i.parent })
                .collect());
        }
        let Some(index) = self.small.get("index.json") else {
            // What Docker says of an archive without its manifest.
            return Err(bad("open manifest.json: no such file or directory".into()));
        };
        let blob = |d: &str| format!("blobs/sha256/{}", digest_hex(d));
        let idx: serde_json::Value = serde_json::from_slice(index).map_err(|e| bad(format!("invalid index.json: {e}")))?;
        let mut out = Vec::new();
        for m in idx["manifests"].as_array().cloned().unwrap_or_default() {
            let mut digest = m["digest"].as_str().unwrap_or_default().to_string();
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&self.small(&blob(&digest))?).map_err(|e| bad(format!("invalid manifest {digest}: {e}")))?;
            // A multi-platform image (an index inside the layout, e.g. `skopeo copy
            // --all`): the host's platform, as a pull would choose.
            if manifest.get("manifests").is_some() {
                let nested: ManifestIndex =
                    serde_json::from_value(manifest).map_err(|e| bad(format!("invalid index {digest}: {e}")))?;
                let want = Platform::host();
                let d = select_platform(&nested, &want)
                    .ok_or_else(|| bad(format!("no matching manifest for {want} in the manifest list entries")))?;
                digest = d.digest.clone();
                manifest = serde_json::from_slice(&self.small(&blob(&digest))?).map_err(|e| bad(format!("invalid manifest {digest}: {e}")))?;
            }
            let config = blob(manifest["config"]["digest"].as_str().unwrap_or_default());
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|l| blob(l["digest"].as_str().unwrap_or_default()))
                .collect();
            out.push(ToLoad { config, layers, tags: oci_name(&m["annotations"]).into_iter().collect(), parent: None });
        }
        Ok(out)
    }
}

/// The name of an image in an OCI layout: containerd's `io.containerd.image.name`, else
/// `org.opencontainers.image.ref.name` when it is a whole reference with a tag (skopeo
/// writes `name:tag` there; a bare tag such as `2` or `latest` names nothing).
fn oci_name(annotations: &serde_json::Value) -> Option<String> {
    if let Some(n) = annotations["io.containerd.image.name"].as_str() {
        return Reference::parse(n).ok().map(|r| r.with_default_tag().familiar());
    }
    let n = annotations["org.opencontainers.image.ref.name"].as_str()?;
    Reference::parse(n).ok().filter(|r| r.tag.is_some() && r.digest.is_none()).map(|r| r.familiar())
}

/// One image of an archive: its config member, its layer members (bottom first), its
/// tags, and the parent image `manifest.json` names.
struct ToLoad {
    config: String,
    layers: Vec<String>,
    tags: Vec<String>,
    parent: Option<String>,
}

/// The archive as Docker's load reads it (its `DecompressStream`): plain, or gzip, bzip2,
/// xz or zstd by the magic bytes (`docker save | gzip` loads as it is), decoded as it
/// arrives by berth-archive's streaming decoders.
fn decompressed<'a>(mut archive: impl Read + 'a) -> Result<Box<dyn Read + 'a>, StoreError> {
    // The longest magic is 6 bytes; a client's first chunk may be shorter.
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match archive.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(format!("invalid archive: {e}"))),
        }
    }
    let head = head[..got].to_vec();
    let kind = berth_archive::decompress::detect(&head);
    let r = io::BufReader::with_capacity(64 * 1024, io::Cursor::new(head).chain(archive));
    berth_archive::decompress::decoder(kind, r).map_err(|e| bad(format!("invalid archive: {e}")))
}

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
