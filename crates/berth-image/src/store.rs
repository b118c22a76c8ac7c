//! The on-disk image store: content-addressed blobs, unpacked layers (overlayfs lower
//! directories shared between images by chain id), image records and the reference
//! map. See docs/storage.md for the layout and the crash-safety argument. `pull` writes
//! into it through the crate-private ingest/commit methods; the engine reads it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::StoreError;
use crate::manifest::ImageConfig;
use crate::reference::{is_full_hex_id, Reference};

/// An image as the engine sees it.
#[derive(Clone, Debug)]
pub struct Image {
    /// `sha256:<hex>`, the digest of the config blob.
    pub id: String,
    /// Familiar, sorted: `alpine:latest`, `localhost:5000/x:v1`.
    pub repo_tags: Vec<String>,
    /// Familiar, sorted: `alpine@sha256:<manifest digest>`.
    pub repo_digests: Vec<String>,
    /// From the config, RFC 3339.
    pub created: Option<String>,
    /// Sum of the unpacked layers' regular-file bytes.
    pub size: u64,
    pub config: ImageConfig,
    pub config_raw: serde_json::Value,
    /// Diff ids, bottom layer first.
    pub layers: Vec<String>,
}

impl Image {
    /// `created` as unix seconds (what `/images/json` calls `Created`); 0 if unknown.
    pub fn created_unix(&self) -> i64 {
        self.created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0)
    }

    /// `sha256:` stripped, first 12 hex characters.
    pub fn short_id(&self) -> String {
        short(&self.id)
    }
}

/// One line of `docker rmi` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveItem {
    /// `alpine:latest`, `alpine@sha256:…`
    Untagged(String),
    /// `sha256:<image id>` or `sha256:<chain id>` of a removed layer.
    Deleted(String),
}

/// `images/<hex>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: String,
    /// Diff ids, bottom first.
    pub layers: Vec<String>,
    /// Chain ids, bottom first (same length as `layers`).
    pub chain_ids: Vec<String>,
    /// The digest the image was pulled by (manifest, or manifest list / index).
    #[serde(default)]
    pub manifest_digest: Option<String>,
    /// Manifest / index blobs kept in `blobs/` for this image.
    #[serde(default)]
    pub blobs: Vec<String>,
}

struct Entry {
    record: ImageRecord,
    config: ImageConfig,
    config_raw: serde_json::Value,
    size: u64,
}

#[derive(Default)]
struct State {
    images: BTreeMap<String, Entry>,
    /// Familiar reference (`alpine:latest`, `alpine@sha256:…`) → image id.
    refs: BTreeMap<String, String>,
    /// Chain ids (hex) that a pull in progress relies on: never garbage-collected.
    pins: HashMap<String, usize>,
}

struct Inner {
    root: PathBuf,
    state: Mutex<State>,
}

/// The image store rooted at `<data-root>/image`. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore").field("root", &self.inner.root).finish()
    }
}

/// `repositories.json`, in Docker's shape:
/// `{"Repositories":{"alpine":{"alpine:latest":"sha256:…"}}}`.
#[derive(Default, Serialize, Deserialize)]
struct RepositoriesFile {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// Chain ids for a stack of diff ids (OCI image spec): `ChainID(L0) = DiffID(L0)`,
/// `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
pub fn chain_id(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => {
                let h = Sha256::digest(format!("{parent} {d}").as_bytes());
                format!("sha256:{}", hex::encode(h))
            }
        };
        out.push(next);
    }
    out
}

pub(crate) fn digest_hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

fn short(id: &str) -> String {
    digest_hex(id).chars().take(12).collect()
}

/// The mode of the store's root directory (Docker's `image/`).
pub const STORE_ROOT_MODE: u32 = 0o700;

impl ImageStore {
    /// Opens (creating if needed) the store at `root` and recovers from a crash:
    /// partial downloads and incomplete layers are deleted, records whose layers or
    /// config are missing are dropped, and unreferenced layers and blobs are collected.
    pub fn open(root: &Path) -> Result<ImageStore, StoreError> {
        for d in ["blobs/sha256", "ingest", "layers", "images"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| StoreError::io("create", &p, e))?;
        }
        // Docker's `image/` is 0700: image configs can hold build secrets (ENV), and
        // containers reach their layers through overlayfs, which opens the lower dirs
        // with the mounter's (root's) credentials. A store of an older version (0755)
        // is tightened here.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root, fs::Permissions::from_mode(STORE_ROOT_MODE))
                .map_err(|e| StoreError::io("chmod", root, e))?;
        }
        // ingest/*: partial downloads never survive a restart.
        for e in read_dir(&root.join("ingest"))? {
            remove_any(&e)?;
        }
        // layers/*: only directories with an `ok` marker are complete.
        let layers_dir = root.join("layers");
        for e in read_dir(&layers_dir)? {
            if !e.join("ok").is_file() {
                tracing::info!(path = %e.display(), "removing incomplete layer");
                remove_any(&e)?;
            }
        }
        let mut state = State::default();
        let images_dir = root.join("images");
        for p in read_dir(&images_dir)? {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if !name.ends_with(".json") || name.starts_with('.') {
                remove_any(&p)?; // leftovers of an interrupted atomic write
                continue;
            }
            match load_entry(root, &p) {
                Ok(entry) => {
                    state.images.insert(entry.record.id.clone(), entry);
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "dropping broken image record");
                    remove_any(&p)?;
                }
            }
        }
        let repos_path = root.join("repositories.json");
        if repos_path.exists() {
            let raw = fs::read(&repos_path).map_err(|e| StoreError::io("read", &repos_path, e))?;
            let file: RepositoriesFile = serde_json::from_slice(&raw).map_err(|e| {
                StoreError::Corrupt { path: repos_path.clone(), message: e.to_string() }
            })?;
            for (_, refs) in file.repositories {
                for (r, id) in refs {
                    if state.images.contains_key(&id) {
                        state.refs.insert(r, id);
                    }
                }
            }
        }
        for p in read_dir(root)? {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if n.starts_with(".repositories.json.") {
                remove_any(&p)?;
            }
        }
        let store = ImageStore { inner: Arc::new(Inner { root: root.to_path_buf(), state: Mutex::new(state) }) };
        {
            let st = store.lock()?;
            store.gc_unreferenced(&st)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.inner
            .state
            .lock()
            .map_err(|_| StoreError::Internal("image store lock poisoned".to_string()))
    }

    /// Finds an image by reference (`alpine` = `alpine:latest`, `alpine:3`,
    /// `x@sha256:…`) or by id (`sha256:<hex>`, `<hex>`, a unique hex prefix).
    pub fn resolve(&self, name: &str) -> Result<Image, StoreError> {
        let st = self.lock()?;
        let id = resolve_id(&st, name)?;
        self.build(&st, &id)
    }

    /// By full id `sha256:<hex>`.
    pub fn get(&self, id: &str) -> Result<Image, StoreError> {
        let st = self.lock()?;
        let id = if id.starts_with("sha256:") { id.to_string() } else { format!("sha256:{id}") };
        if !st.images.contains_key(&id) {
            return Err(StoreError::NoSuchImage(id));
        }
        self.build(&st, &id)
    }

    /// All images, newest first (ties by id).
    pub fn list(&self) -> Vec<Image> {
        let Ok(st) = self.lock() else { return Vec::new() };
        let mut out: Vec<Image> = st.images.keys().filter_map(|id| self.build(&st, id).ok()).collect();
        out.sort_by(|a, b| b.created_unix().cmp(&a.created_unix()).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Points `reference` (tag added if missing) at `image_id`, moving it if it pointed
    /// at another image.
    pub fn tag(&self, image_id: &str, reference: &Reference) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        let id = if st.images.contains_key(image_id) {
            image_id.to_string()
        } else {
            resolve_id(&st, image_id)?
        };
        let r = reference.clone().with_default_tag();
        st.refs.insert(r.familiar(), id);
        self.save_refs(&st)
    }

    /// Docker's `rmi`. `used_by(image_id)` returns the id of a container using the
    /// image, if any; it is called with the store locked and must not call back into
    /// the store. An image still used by a container is never deleted from
    /// disk (its layers back the container's rootfs): `-f` then only untags.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        used_by: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<RemoveItem>, StoreError> {
        let mut st = self.lock()?;
        let id = resolve_id(&st, name)?;
        let mut records = Vec::new();
        let repo_refs = refs_of(&st, &id);
        let by_id = is_id_prefix(&id, name);
        let mut quiet = false;
        if !by_id {
            let parsed = Reference::parse(name)?.with_default_tag();
            if !force && is_single_reference(&repo_refs) {
                if let Some(c) = used_by(&id) {
                    return Err(StoreError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short(&c),
                        short(&id)
                    )));
                }
            }
            let key = parsed.familiar();
            st.refs.remove(&key);
            records.push(RemoveItem::Untagged(key));
            if parsed.digest.is_none() {
                let name_of = parsed.familiar_name();
                let remaining = refs_of(&st, &id);
                let tag_left = remaining.iter().any(|r| r.digest.is_none() && r.familiar_name() == name_of);
                if !tag_left {
                    for r in remaining {
                        if r.digest.is_some() && r.familiar_name() == name_of {
                            let k = r.familiar();
                            st.refs.remove(&k);
                            records.push(RemoveItem::Untagged(k));
                        }
                    }
                }
            }
            if !refs_of(&st, &id).is_empty() {
                self.save_refs(&st)?;
                return Ok(records);
            }
            quiet = true;
        } else if is_single_reference(&repo_refs) {
            if let Some(c) = used_by(&id) {
                return Err(container_conflict(&id, &c, force));
            }
            for r in &repo_refs {
                let k = r.familiar();
                st.refs.remove(&k);
                records.push(RemoveItem::Untagged(k));
            }
        }
        // Delete the image itself (Docker's imageDeleteHelper).
        let remaining = refs_of(&st, &id);
        if !remaining.is_empty() && !force {
            return Err(StoreError::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                short(&id)
            )));
        }
        if let Some(c) = used_by(&id) {
            if quiet {
                // The last reference is gone; the container keeps the image alive.
                self.save_refs(&st)?;
                return Ok(records);
            }
            return Err(container_conflict(&id, &c, force));
        }
        for r in remaining {
            let k = r.familiar();
            st.refs.remove(&k);
            records.push(RemoveItem::Untagged(k));
        }
        // Order matters for crash safety: references, then the record, then layers.
        self.save_refs(&st)?;
        let hex = digest_hex(&id).to_string();
        let rec_path = self.inner.root.join("images").join(format!("{hex}.json"));
        remove_any(&rec_path)?;
        fsync_dir(&self.inner.root.join("images"))?;
        let entry = st.images.remove(&id);
        records.push(RemoveItem::Deleted(id.clone()));
        if let Some(entry) = entry {
            for chain in entry.record.chain_ids.iter().rev() {
                if self.layer_unused(&st, digest_hex(chain)) && self.delete_layer(digest_hex(chain))? {
                    records.push(RemoveItem::Deleted(chain.clone()));
                }
            }
            let mut blobs = entry.record.blobs.clone();
            blobs.push(id.clone());
            let live = live_blobs(&st);
            for b in blobs {
                if !live.contains(digest_hex(&b)) {
                    remove_any(&self.blob_path(&b))?;
                }
            }
        }
        Ok(records)
    }

    /// The overlayfs lowerdir list for `image`: the top layer first.
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>, StoreError> {
        let chains = chain_id(&image.layers);
        let mut out = Vec::with_capacity(chains.len());
        for c in chains.iter().rev() {
            let dir = self.layer_path(digest_hex(c));
            if !dir.join("ok").is_file() {
                return Err(StoreError::Internal(format!(
                    "layer {c} of image {} is missing from {}",
                    image.id,
                    dir.display()
                )));
            }
            out.push(dir.join("diff"));
        }
        Ok(out)
    }

    /// Creates an image (`docker commit`): `parent`'s layers plus one new layer read
    /// from `layer_tar` (an uncompressed tar with AUFS/OCI whiteouts), described by
    /// `config` (an image config object; its `rootfs` is filled in here), and points
    /// `reference` (tag added if missing) at it. Written like a pull: the layer is
    /// unpacked under `layers/.tmp-*`, fsync'ed, renamed and marked `ok`; then the
    /// config blob; then the record; then the references. The compressed-blob step of a
    /// pull has no counterpart: the unpacked layer is all the store keeps.
    pub fn commit(
        &self,
        parent: Option<&Image>,
        layer_tar: impl std::io::Read,
        config: serde_json::Value,
        reference: Option<&Reference>,
    ) -> Result<Image, StoreError> {
        let mut diff_ids: Vec<String> = parent.map(|p| p.layers.clone()).unwrap_or_default();
        let parent_chains = chain_id(&diff_ids);
        let _parent_pin = self.pin(&parent_chains);
        if let Some(c) = parent_chains.iter().find(|c| !self.has_layer(c)) {
            return Err(StoreError::Internal(format!("layer {c} of the parent image is missing")));
        }
        let tmp = self.layer_tmp();
        fs::create_dir(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        let stats = match crate::unpack::unpack(layer_tar, &tmp.join("diff")) {
            Ok(s) => s,
            Err(e) => {
                let _ = remove_any(&tmp);
                return Err(StoreError::Internal(format!("writing the new layer: {e}")));
            }
        };
        diff_ids.push(stats.diff_id.clone());
        let chains = chain_id(&diff_ids);
        let top = chains.last().cloned().unwrap_or_default();
        let _pin = self.pin(std::slice::from_ref(&top));
        if let Err(e) = self.commit_layer(&tmp, &top, stats.size) {
            let _ = remove_any(&tmp);
            return Err(e);
        }
        let mut config = config;
        let obj = config
            .as_object_mut()
            .ok_or_else(|| StoreError::Internal("an image config must be a JSON object".into()))?;
        obj.insert("rootfs".into(), serde_json::json!({ "type": "layers", "diff_ids": diff_ids }));
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| StoreError::Internal(format!("encoding the image config: {e}")))?;
        serde_json::from_slice::<ImageConfig>(&bytes)
            .map_err(|e| StoreError::Internal(format!("invalid image config: {e}")))?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        self.write_blob(&id, &bytes)?;
        let record = ImageRecord { id, layers: diff_ids, chain_ids: chains, manifest_digest: None, blobs: Vec::new() };
        let refs: Vec<Reference> = reference.map(|r| r.clone().with_default_tag()).into_iter().collect();
        let (image, _) = self.commit_image(record, &refs)?;
        Ok(image)
    }

    // ----- crate-private: used by pull -----

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest_hex(digest))
    }

    pub(crate) fn layer_path(&self, chain_hex: &str) -> PathBuf {
        self.inner.root.join("layers").join(chain_hex)
    }

    pub(crate) fn has_layer(&self, chain: &str) -> bool {
        self.layer_path(digest_hex(chain)).join("ok").is_file()
    }

    pub(crate) fn has_image(&self, id: &str) -> bool {
        self.lock().map(|st| st.images.contains_key(id)).unwrap_or(false)
    }

    /// A fresh path under `ingest/` for a partial download.
    pub(crate) fn ingest_path(&self) -> PathBuf {
        self.inner.root.join("ingest").join(format!("{:016x}", rand::random::<u64>()))
    }

    /// A fresh temporary layer directory (`layers/.tmp-…`), removed by `open` if left.
    pub(crate) fn layer_tmp(&self) -> PathBuf {
        self.inner.root.join("layers").join(format!(".tmp-{:016x}", rand::random::<u64>()))
    }

    /// Moves a verified, fsync'ed ingest file into `blobs/`.
    pub(crate) fn commit_blob(&self, ingest: &Path, digest: &str) -> Result<PathBuf, StoreError> {
        let dst = self.blob_path(digest);
        fs::rename(ingest, &dst).map_err(|e| StoreError::io("rename", &dst, e))?;
        fsync_dir(&self.inner.root.join("blobs/sha256"))?;
        Ok(dst)
    }

    /// Writes a small verified blob (manifest, config) atomically.
    pub(crate) fn write_blob(&self, digest: &str, data: &[u8]) -> Result<(), StoreError> {
        let dst = self.blob_path(digest);
        if dst.is_file() {
            return Ok(());
        }
        let tmp = self.ingest_path();
        write_synced(&tmp, data)?;
        self.commit_blob(&tmp, digest)?;
        Ok(())
    }

    /// Pins chain ids so that a concurrent `remove` does not collect them while a pull
    /// that relies on them runs. Unpinned when the guard drops.
    pub(crate) fn pin(&self, chains: &[String]) -> PinGuard {
        if let Ok(mut st) = self.lock() {
            for c in chains {
                *st.pins.entry(digest_hex(c).to_string()).or_insert(0) += 1;
            }
        }
        PinGuard { store: self.clone(), chains: chains.iter().map(|c| digest_hex(c).to_string()).collect() }
    }

    /// Moves an unpacked layer (`tmp/diff`) into `layers/<chain>` and writes the `ok`
    /// marker last. If another pull committed the same layer first, `tmp` is dropped.
    pub(crate) fn commit_layer(&self, tmp: &Path, chain: &str, size: u64) -> Result<(), StoreError> {
        let _st = self.lock()?;
        let hex = digest_hex(chain);
        let dst = self.layer_path(hex);
        if dst.join("ok").is_file() {
            remove_any(tmp)?;
            return Ok(());
        }
        if dst.exists() {
            remove_any(&dst)?;
        }
        write_synced(&tmp.join("size"), size.to_string().as_bytes())?;
        fsync_dir(tmp)?;
        fs::rename(tmp, &dst).map_err(|e| StoreError::io("rename", &dst, e))?;
        write_synced(&dst.join("ok"), b"")?;
        fsync_dir(&dst)?;
        fsync_dir(&self.inner.root.join("layers"))?;
        Ok(())
    }

    /// Records a complete image (all layers `ok`, config blob written) and points
    /// `refs` at it. Returns the image and whether `refs[0]` already pointed at it.
    pub(crate) fn commit_image(
        &self,
        record: ImageRecord,
        refs: &[Reference],
    ) -> Result<(Image, bool), StoreError> {
        let mut st = self.lock()?;
        for c in &record.chain_ids {
            if !self.has_layer(c) {
                return Err(StoreError::Internal(format!("layer {c} disappeared during the pull")));
            }
        }
        let id = record.id.clone();
        let rec_path = self.inner.root.join("images").join(format!("{}.json", digest_hex(&id)));
        let merged = match st.images.get(&id) {
            Some(e) => {
                let mut r = e.record.clone();
                for b in &record.blobs {
                    if !r.blobs.contains(b) {
                        r.blobs.push(b.clone());
                    }
                }
                if r.manifest_digest.is_none() {
                    r.manifest_digest = record.manifest_digest.clone();
                }
                r
            }
            None => record,
        };
        let json = serde_json::to_vec_pretty(&merged)
            .map_err(|e| StoreError::Internal(format!("encoding image record: {e}")))?;
        write_atomic(&rec_path, &json)?;
        let entry = load_entry(&self.inner.root, &rec_path)?;
        st.images.insert(id.clone(), entry);
        let was = refs.first().and_then(|r| st.refs.get(&r.familiar())).is_some_and(|t| *t == id);
        for r in refs {
            st.refs.insert(r.familiar(), id.clone());
        }
        self.save_refs(&st)?;
        let img = self.build(&st, &id)?;
        Ok((img, was))
    }

    // ----- internals -----

    fn build(&self, st: &State, id: &str) -> Result<Image, StoreError> {
        let e = st.images.get(id).ok_or_else(|| StoreError::NoSuchImage(id.to_string()))?;
        let mut repo_tags = Vec::new();
        let mut repo_digests = Vec::new();
        for (r, target) in &st.refs {
            if target == id {
                if r.contains('@') {
                    repo_digests.push(r.clone());
                } else {
                    repo_tags.push(r.clone());
                }
            }
        }
        Ok(Image {
            id: id.to_string(),
            repo_tags,
            repo_digests,
            created: e.config.created.clone(),
            size: e.size,
            config: e.config.clone(),
            config_raw: e.config_raw.clone(),
            layers: e.record.layers.clone(),
        })
    }

    fn save_refs(&self, st: &State) -> Result<(), StoreError> {
        let mut file = RepositoriesFile::default();
        for (r, id) in &st.refs {
            let repo = match r.find('@') {
                Some(i) => r[..i].to_string(),
                None => match r.rfind(':') {
                    Some(i) if !r[i..].contains('/') => r[..i].to_string(),
                    _ => r.clone(),
                },
            };
            file.repositories.entry(repo).or_default().insert(r.clone(), id.clone());
        }
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| StoreError::Internal(format!("encoding repositories.json: {e}")))?;
        write_atomic(&self.inner.root.join("repositories.json"), &json)
    }

    fn layer_unused(&self, st: &State, chain_hex: &str) -> bool {
        !st.pins.contains_key(chain_hex)
            && !st
                .images
                .values()
                .any(|e| e.record.chain_ids.iter().any(|c| digest_hex(c) == chain_hex))
    }

    /// Removes a layer: the `ok` marker first, so a crash leaves an incomplete layer
    /// that `open` deletes. Returns whether it existed.
    fn delete_layer(&self, chain_hex: &str) -> Result<bool, StoreError> {
        let dir = self.layer_path(chain_hex);
        if !dir.exists() {
            return Ok(false);
        }
        let ok = dir.join("ok");
        if ok.exists() {
            fs::remove_file(&ok).map_err(|e| StoreError::io("remove", &ok, e))?;
            fsync_dir(&dir)?;
        }
        remove_any(&dir)?;
        Ok(true)
    }

    fn gc_unreferenced(&self, st: &State) -> Result<(), StoreError> {
        for p in read_dir(&self.inner.root.join("layers"))? {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if self.layer_unused(st, &n) {
                tracing::info!(layer = %n, "removing unreferenced layer");
                self.delete_layer(&n)?;
            }
        }
        let live = live_blobs(st);
        for p in read_dir(&self.inner.root.join("blobs/sha256"))? {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !live.contains(n) {
                remove_any(&p)?;
            }
        }
        Ok(())
    }
}

/// Keeps chain ids pinned for the duration of a pull.
pub(crate) struct PinGuard {
    store: ImageStore,
    chains: Vec<String>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Ok(mut st) = self.store.lock() {
            for c in &self.chains {
                if let Some(n) = st.pins.get_mut(c) {
                    *n -= 1;
                    if *n == 0 {
                        st.pins.remove(c);
                    }
                }
            }
        }
    }
}

fn container_conflict(id: &str, container: &str, force: bool) -> StoreError {
    // berth cannot tell a running from a stopped user here; a forced delete of an image a
    // container still uses is refused like Docker refuses it for a running container.
    if force {
        StoreError::Conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
            short(id),
            short(container)
        ))
    } else {
        StoreError::Conflict(format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
            short(id),
            short(container)
        ))
    }
}

fn live_blobs(st: &State) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for e in st.images.values() {
        live.insert(digest_hex(&e.record.id).to_string());
        for b in &e.record.blobs {
            live.insert(digest_hex(b).to_string());
        }
    }
    live
}

fn refs_of(st: &State, id: &str) -> Vec<Reference> {
    st.refs
        .iter()
        .filter(|(_, t)| *t == id)
        .filter_map(|(r, _)| Reference::parse(r).ok())
        .collect()
}

/// Docker's isImageIDPrefix.
fn is_id_prefix(id: &str, name: &str) -> bool {
    id.starts_with(name) || digest_hex(id).starts_with(name)
}

/// Docker's isSingleReference: at most one tag, and all references in one repository.
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut names = BTreeSet::new();
    for r in refs {
        if r.digest.is_some() {
            names.insert(r.familiar_name());
        } else if single.is_none() {
            names.insert(r.familiar_name());
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    names.len() == 1 && names.contains(&single.familiar_name())
}

fn resolve_id(st: &State, name: &str) -> Result<String, StoreError> {
    let not_found = || match Reference::parse(name) {
        Ok(r) => StoreError::NoSuchImage(r.with_default_tag().familiar()),
        Err(_) => StoreError::NoSuchImage(name.to_string()),
    };
    if name.is_empty() {
        return Err(not_found());
    }
    if let Some(hex) = name.strip_prefix("sha256:") {
        let id = format!("sha256:{hex}");
        if st.images.contains_key(&id) {
            return Ok(id);
        }
        return prefix_match(st, hex).ok_or_else(|| StoreError::NoSuchImage(name.to_string()));
    }
    if is_full_hex_id(name) {
        let id = format!("sha256:{name}");
        if st.images.contains_key(&id) {
            return Ok(id);
        }
        return Err(StoreError::NoSuchImage(name.to_string()));
    }
    if let Ok(r) = Reference::parse(name) {
        if let Some(id) = st.refs.get(&r.with_default_tag().familiar()) {
            return Ok(id.clone());
        }
    }
    prefix_match(st, name).ok_or_else(not_found)
}

fn prefix_match(st: &State, prefix: &str) -> Option<String> {
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut it = st.images.keys().filter(|id| digest_hex(id).starts_with(prefix));
    let first = it.next()?;
    if it.next().is_some() {
        return None; // ambiguous
    }
    Some(first.clone())
}

fn load_entry(root: &Path, rec_path: &Path) -> Result<Entry, StoreError> {
    let raw = fs::read(rec_path).map_err(|e| StoreError::io("read", rec_path, e))?;
    let record: ImageRecord = serde_json::from_slice(&raw)
        .map_err(|e| StoreError::Corrupt { path: rec_path.to_path_buf(), message: e.to_string() })?;
    if record.chain_ids.len() != record.layers.len() {
        return Err(StoreError::Corrupt { path: rec_path.to_path_buf(), message: "layer count mismatch".into() });
    }
    let mut size = 0u64;
    for c in &record.chain_ids {
        let dir = root.join("layers").join(digest_hex(c));
        if !dir.join("ok").is_file() {
            return Err(StoreError::Corrupt { path: rec_path.to_path_buf(), message: format!("layer {c} missing") });
        }
        size += fs::read_to_string(dir.join("size"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    let cfg_path = root.join("blobs/sha256").join(digest_hex(&record.id));
    let cfg_bytes = fs::read(&cfg_path).map_err(|e| StoreError::io("read", &cfg_path, e))?;
    let config_raw: serde_json::Value = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| StoreError::Corrupt { path: cfg_path.clone(), message: e.to_string() })?;
    let config: ImageConfig = serde_json::from_value(config_raw.clone())
        .map_err(|e| StoreError::Corrupt { path: cfg_path.clone(), message: e.to_string() })?;
    Ok(Entry { record, config, config_raw, size })
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let rd = fs::read_dir(dir).map_err(|e| StoreError::io("read dir", dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| StoreError::io("read dir", dir, e))?;
        out.push(e.path());
    }
    Ok(out)
}

/// Removes a file, symlink or directory tree without following symlinks.
pub(crate) fn remove_any(p: &Path) -> Result<(), StoreError> {
    let md = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("stat", p, e)),
    };
    let r = if md.is_dir() { fs::remove_dir_all(p) } else { fs::remove_file(p) };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", p, e)),
    }
}

pub(crate) fn write_synced(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let mut f = fs::File::create(path).map_err(|e| StoreError::io("create", path, e))?;
    f.write_all(data).map_err(|e| StoreError::io("write", path, e))?;
    f.sync_all().map_err(|e| StoreError::io("fsync", path, e))
}

/// tmp + fsync + rename + fsync(dir): [`berth_sys::fs::write_atomic`], 0644 as
/// `File::create` under the usual umask gave.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    berth_sys::fs::write_atomic(path, data, 0o644).map_err(|e| StoreError::io(e.op, e.path, e.source))
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let f = fs::File::open(dir).map_err(|e| StoreError::io("open", dir, e))?;
    f.sync_all().map_err(|e| StoreError::io("fsync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::unpack;
    use std::cell::RefCell;

    #[test]
    fn store_root_is_private_and_an_older_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("test setup");
        let root = tmp.path().join("image");
        let mode = |p: &Path| fs::metadata(p).expect("test setup").permissions().mode() & 0o7777;
        ImageStore::open(&root).expect("test setup");
        assert_eq!(mode(&root), STORE_ROOT_MODE);
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("test setup");
        ImageStore::open(&root).expect("test setup");
        assert_eq!(mode(&root), 0o700);
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_path(p).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Imports an image built from `layers` the way pull does; returns its id.
    fn import(store: &ImageStore, layers: &[&[(&str, &[u8])]], created: &str, refs: &[&str]) -> String {
        let mut diff_ids = Vec::new();
        for files in layers {
            let tar = tar_of(files);
            diff_ids.push(format!("sha256:{}", hex::encode(Sha256::digest(&tar))));
            let chains = chain_id(&diff_ids);
            let chain = chains.last().unwrap();
            if store.has_layer(chain) {
                continue;
            }
            let tmp = store.layer_tmp();
            fs::create_dir(&tmp).unwrap();
            let stats = unpack(&tar[..], &tmp.join("diff")).unwrap();
            store.commit_layer(&tmp, chain, stats.size).unwrap();
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": created,
            "config": {"Cmd": ["sh"], "Env": null},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let bytes = serde_json::to_vec(&config).unwrap();
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        store.write_blob(&id, &bytes).unwrap();
        let manifest = format!("manifest-of-{id}");
        let mdigest = format!("sha256:{}", hex::encode(Sha256::digest(manifest.as_bytes())));
        store.write_blob(&mdigest, manifest.as_bytes()).unwrap();
        let record = ImageRecord {
            id: id.clone(),
            layers: diff_ids.clone(),
            chain_ids: chain_id(&diff_ids),
            manifest_digest: Some(mdigest.clone()),
            blobs: vec![mdigest.clone()],
        };
        let mut rs: Vec<Reference> = refs.iter().map(|r| Reference::parse(r).unwrap().with_default_tag()).collect();
        if let Some(first) = rs.first().cloned() {
            rs.push(Reference { tag: None, digest: Some(mdigest), ..first });
        }
        store.commit_image(record, &rs).unwrap();
        id
    }

    fn no_container(_: &str) -> Option<String> {
        None
    }

    fn names(items: &[RemoveItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                RemoveItem::Untagged(s) => format!("Untagged: {s}"),
                RemoveItem::Deleted(s) => format!("Deleted: {s}"),
            })
            .collect()
    }

    #[test]
    fn chain_ids_follow_the_oci_spec() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_id(&d);
        assert_eq!(c[0], "sha256:aa");
        assert_eq!(c[1], format!("sha256:{}", hex::encode(Sha256::digest(b"sha256:aa sha256:bb"))));
        assert!(chain_id(&[]).is_empty());
    }

    #[test]
    fn resolve_list_tag_and_layer_dirs() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"12345")], &[("b", b"xy")]], "2024-01-02T03:04:05Z", &["alpine"]);
        let img = store.resolve("alpine").unwrap();
        assert_eq!(img.id, id);
        assert_eq!(img.repo_tags, vec!["alpine:latest"]);
        assert_eq!(img.repo_digests.len(), 1);
        assert!(img.repo_digests[0].starts_with("alpine@sha256:"));
        assert_eq!(img.size, 7);
        assert_eq!(img.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(img.config.config.as_ref().unwrap().cmd, Some(vec!["sh".to_string()]));
        for name in ["alpine:latest", "docker.io/library/alpine", &id, digest_hex(&id), &digest_hex(&id)[..5], &img.repo_digests[0]] {
            assert_eq!(store.resolve(name).unwrap().id, id, "{name}");
        }
        assert_eq!(store.get(&id).unwrap().id, id);
        for (name, msg) in [
            ("alpine:3", "No such image: alpine:3"),
            ("nosuch", "No such image: nosuch:latest"),
            ("localhost:5000/x", "No such image: localhost:5000/x:latest"),
            ("sha256:0000", "No such image: sha256:0000"),
        ] {
            let e = store.resolve(name).unwrap_err();
            assert_eq!(e.to_string(), msg);
            assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        }
        store.tag(&id, &Reference::parse("localhost:5000/x:v1").unwrap()).unwrap();
        assert_eq!(store.resolve("alpine").unwrap().repo_tags, vec!["alpine:latest", "localhost:5000/x:v1"]);

        let dirs = store.layer_dirs(&img).unwrap();
        assert_eq!(dirs.len(), 2);
        assert!(dirs[0].join("b").is_file(), "top layer first");
        assert!(dirs[1].join("a").is_file());

        // Moving a tag to another image.
        let id2 = import(&store, &[&[("a", b"12345")]], "2025-01-01T00:00:00Z", &["other"]);
        store.tag(&id2, &Reference::parse("localhost:5000/x:v1").unwrap()).unwrap();
        assert_eq!(store.resolve("localhost:5000/x:v1").unwrap().id, id2);
        let list = store.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].id, id2, "newest first");

        // Everything survives a reopen.
        drop(store);
        let store = ImageStore::open(t.path()).unwrap();
        assert_eq!(store.resolve("localhost:5000/x:v1").unwrap().id, id2);
        assert_eq!(store.resolve("alpine").unwrap().repo_tags, vec!["alpine:latest"]);
        assert_eq!(store.list().len(), 2);
    }

    #[test]
    fn rmi_untag_then_delete() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let base = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["base"]);
        let id = import(&store, &[&[("a", b"1")], &[("b", b"2")]], "2024-01-01T00:00:00Z", &["localhost:5000/myb"]);
        store.tag(&id, &Reference::parse("myimg:v1").unwrap()).unwrap();
        let digest_ref = store.get(&id).unwrap().repo_digests[0].clone();

        let r = store.remove("myimg:v1", false, &no_container).unwrap();
        assert_eq!(names(&r), vec!["Untagged: myimg:v1"]);

        // A container uses it: the last tag may not go without force.
        let used = |i: &str| (i == id).then(|| "2193b0430448aaaaaaaaaaaa".to_string());
        let e = store.remove("localhost:5000/myb", false, &used).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            format!(
                "conflict: unable to remove repository reference \"localhost:5000/myb\" (must force) - container 2193b0430448 is using its referenced image {}",
                &digest_hex(&id)[..12]
            )
        );

        let r = store.remove("localhost:5000/myb", false, &no_container).unwrap();
        let top_chain = chain_id(&store_diff_ids(&t, &id))[1].clone();
        assert_eq!(
            names(&r),
            vec![
                "Untagged: localhost:5000/myb:latest".to_string(),
                format!("Untagged: {digest_ref}"),
                format!("Deleted: {id}"),
                format!("Deleted: {top_chain}"),
            ]
        );
        // The shared bottom layer stays for `base`.
        let b = store.resolve("base").unwrap();
        assert!(store.layer_dirs(&b).unwrap()[0].join("a").is_file());
        assert!(!t.path().join("layers").join(digest_hex(&top_chain)).exists());
        assert!(!t.path().join("images").join(format!("{}.json", digest_hex(&id))).exists());
        assert!(!t.path().join("blobs/sha256").join(digest_hex(&id)).exists());
        assert!(t.path().join("blobs/sha256").join(digest_hex(&base)).exists());

        let e = store.remove("nosuchimage_trace", false, &no_container).unwrap_err();
        assert_eq!(e.to_string(), "No such image: nosuchimage_trace:latest");
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
    }

    fn store_diff_ids(_t: &tempfile::TempDir, _id: &str) -> Vec<String> {
        let a = tar_of(&[("a", b"1")]);
        let b = tar_of(&[("b", b"2")]);
        vec![
            format!("sha256:{}", hex::encode(Sha256::digest(&a))),
            format!("sha256:{}", hex::encode(Sha256::digest(&b))),
        ]
    }

    #[test]
    fn rmi_by_id() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["one"]);
        store.tag(&id, &Reference::parse("two:latest").unwrap()).unwrap();
        let short = &digest_hex(&id)[..12];
        let e = store.remove(short, false, &no_container).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            format!("conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
        );
        let used = |_: &str| Some("c0ffee000000".to_string());
        let e = store.remove(short, true, &used).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        let r = store.remove(short, true, &no_container).unwrap();
        let n = names(&r);
        assert!(n.contains(&"Untagged: one:latest".to_string()), "{n:?}");
        assert!(n.contains(&"Untagged: two:latest".to_string()), "{n:?}");
        assert!(n.contains(&format!("Deleted: {id}")), "{n:?}");
        assert!(store.list().is_empty());
        assert!(fs::read_dir(t.path().join("layers")).unwrap().next().is_none());

        // Single repository (tag + digest) by id without force: removes both.
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["one"]);
        let r = store.remove(&id, false, &no_container).unwrap();
        assert_eq!(names(&r).len(), 4, "{:?}", names(&r));
        assert!(names(&r)[1].starts_with("Untagged: one@sha256:"));

        // Used by a container and removed by tag with force: untagged, kept on disk.
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["one"]);
        let used = |_: &str| Some("c0ffee000000".to_string());
        let r = store.remove("one", true, &used).unwrap();
        assert_eq!(names(&r).len(), 2);
        let img = store.get(&id).unwrap();
        assert!(img.repo_tags.is_empty());
        assert!(store.layer_dirs(&img).is_ok());
    }

    #[test]
    fn open_recovers_from_a_crash() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["keep"]);
        drop(store);
        let root = t.path();
        // A partial download, a half-unpacked layer, a layer that was renamed into
        // place but never got its `ok`, a tmp record and a tmp repositories file.
        fs::write(root.join("ingest/partial"), b"xx").unwrap();
        fs::create_dir_all(root.join("layers/.tmp-0001/diff")).unwrap();
        fs::create_dir_all(root.join("layers/abcd/diff")).unwrap();
        fs::write(root.join("images/.x.json.123"), b"{").unwrap();
        fs::write(root.join(".repositories.json.1234"), b"{").unwrap();
        // A complete layer no image refers to (crash before the record was written).
        fs::create_dir_all(root.join("layers/beef/diff")).unwrap();
        fs::write(root.join("layers/beef/ok"), b"").unwrap();
        // A record whose layer vanished.
        let orphan = ImageRecord {
            id: "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            layers: vec!["sha256:2222".into()],
            chain_ids: vec!["sha256:2222".into()],
            manifest_digest: None,
            blobs: vec![],
        };
        fs::write(root.join("images/1111111111111111111111111111111111111111111111111111111111111111.json"), serde_json::to_vec(&orphan).unwrap()).unwrap();
        let store = ImageStore::open(root).unwrap();
        assert!(fs::read_dir(root.join("ingest")).unwrap().next().is_none());
        for gone in ["layers/.tmp-0001", "layers/abcd", "layers/beef", "images/.x.json.123", ".repositories.json.1234"] {
            assert!(!root.join(gone).exists(), "{gone}");
        }
        assert_eq!(store.list().len(), 1);
        assert_eq!(store.resolve("keep").unwrap().id, id);
    }

    #[test]
    fn commit_stacks_a_layer_on_its_parent() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let base = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["base"]);
        let parent = store.get(&base).unwrap();
        let layer = tar_of(&[("new", b"hello")]);
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2025-01-01T00:00:00Z",
            "config": {"Cmd": ["cat", "/new"]},
            "history": [{"created_by": "sh"}],
        });
        let r = Reference::parse("committed:v1").unwrap();
        let img = store.commit(Some(&parent), &layer[..], config, Some(&r)).unwrap();
        assert_eq!(img.repo_tags, vec!["committed:v1"]);
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layers[0], parent.layers[0]);
        assert_eq!(img.layers[1], format!("sha256:{}", hex::encode(Sha256::digest(&layer))));
        assert_eq!(img.config.config.as_ref().unwrap().cmd, Some(vec!["cat".to_string(), "/new".to_string()]));
        assert_eq!(img.config.rootfs.diff_ids, img.layers);
        let dirs = store.layer_dirs(&img).unwrap();
        assert_eq!(fs::read(dirs[0].join("new")).unwrap(), b"hello");
        assert!(dirs[1].join("a").is_file());
        // Survives a reopen; removing it keeps the parent's layer.
        drop(store);
        let store = ImageStore::open(t.path()).unwrap();
        assert_eq!(store.resolve("committed:v1").unwrap().id, img.id);
        store.remove("committed:v1", false, &no_container).unwrap();
        assert!(store.layer_dirs(&store.get(&base).unwrap()).is_ok());
        // Without a parent or a reference: a dangling single-layer image.
        let img = store.commit(None, &tar_of(&[("x", b"1")])[..], serde_json::json!({"os": "linux"}), None).unwrap();
        assert!(img.repo_tags.is_empty());
        assert_eq!(img.layers.len(), 1);
    }

    #[test]
    fn pins_protect_layers_from_removal() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["x"]);
        let img = store.get(&id).unwrap();
        let chains = chain_id(&img.layers);
        let seen = RefCell::new(0);
        {
            let _pin = store.pin(&chains);
            let r = store.remove("x", false, &|_| {
                *seen.borrow_mut() += 1;
                None
            }).unwrap();
            assert_eq!(r.len(), 3, "{r:?}"); // untag, untag digest, delete image; layer pinned
            assert!(store.has_layer(&chains[0]));
        }
        assert!(*seen.borrow() > 0);
    }
}
