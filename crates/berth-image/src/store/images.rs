//! Image metadata: the image records (`images/<hex>.json`) and their configs, listing,
//! `docker commit` into the store, the record a pull writes, and `rmi`.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::*;
use crate::error::StoreError;
use crate::manifest::ImageConfig;
use crate::reference::Reference;

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
    /// The image this one was committed from (`sha256:…`), Docker's `Parent`.
    pub parent: Option<String>,
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
    /// The image a commit was made from (Docker keeps it beside the config, not in it:
    /// the image id does not depend on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

pub(super) struct Entry {
    pub(super) record: ImageRecord,
    pub(super) config: ImageConfig,
    pub(super) config_raw: serde_json::Value,
    pub(super) size: u64,
}

impl ImageStore {
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
        let has_children = st.images.values().any(|e| e.record.parent.as_deref() == Some(id.as_str()));
        if by_id && has_children {
            // Docker's hard conflict: not even forced.
            return Err(StoreError::Conflict(format!(
                "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                short(&id)
            )));
        }
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
        // An image other images were committed on stays while they exist: untagged by
        // name, it is kept (the refusal for an id came before anything changed).
        if has_children {
            self.save_refs(&st)?;
            return Ok(records);
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
        self.create_image(parent, config, reference, |dir, tee| {
            crate::unpack::unpack_tee(layer_tar, dir, Some(tee))
                .map_err(|e| StoreError::Internal(format!("writing the new layer: {e}")))
        })
    }

    /// Creates a single-layer image from a client's archive (`docker import`): a plain
    /// or gzip-compressed tar read as it arrives, hashed uncompressed for its diff id,
    /// stored like a commit without a parent. A broken archive is the client's error
    /// ([`StoreError::Layer`], 400) and leaves nothing behind: the layer is unpacked
    /// under `layers/.tmp-*`, removed on failure.
    pub fn import(
        &self,
        archive: impl std::io::Read,
        config: serde_json::Value,
        reference: Option<&Reference>,
    ) -> Result<Image, StoreError> {
        self.create_image(None, config, reference, |dir, tee| {
            crate::unpack::unpack_any_tee(archive, dir, Some(tee)).map_err(StoreError::Layer)
        })
    }

    fn create_image(
        &self,
        parent: Option<&Image>,
        config: serde_json::Value,
        reference: Option<&Reference>,
        unpack: impl FnOnce(&Path, &mut dyn std::io::Write) -> Result<crate::unpack::UnpackStats, StoreError>,
    ) -> Result<Image, StoreError> {
        let mut diff_ids: Vec<String> = parent.map(|p| p.layers.clone()).unwrap_or_default();
        let parent_chains = chain_id(&diff_ids);
        let _parent_pin = self.pin(&parent_chains);
        if let Some(c) = parent_chains.iter().find(|c| !self.has_layer(c)) {
            return Err(StoreError::Internal(format!("layer {c} of the parent image is missing")));
        }
        let tmp = self.layer_tmp();
        fs::create_dir(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        // The uncompressed tar is kept beside the layer as it is unpacked (docs/
        // storage.md, "Layer tars"); fsync'ed before the layer is committed.
        let blob_path = tmp.join(super::LAYER_BLOB);
        let unpacked = fs::File::create(&blob_path)
            .map_err(|e| StoreError::io("create", &blob_path, e))
            .and_then(|f| {
                let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
                let stats = unpack(&tmp.join("diff"), &mut w)?;
                let f = w.into_inner().map_err(|e| StoreError::io("write", &blob_path, e.into_error()))?;
                f.sync_all().map_err(|e| StoreError::io("fsync", &blob_path, e))?;
                Ok(stats)
            });
        let stats = match unpacked {
            Ok(s) => s,
            Err(e) => {
                let _ = remove_any(&tmp);
                return Err(e);
            }
        };
        diff_ids.push(stats.diff_id.clone());
        let chains = chain_id(&diff_ids);
        let top = chains.last().cloned().unwrap_or_default();
        let _pin = self.pin(std::slice::from_ref(&top));
        if let Err(e) = self.commit_layer(&tmp, &top, &stats) {
            let _ = remove_any(&tmp);
            return Err(e);
        }
        self.write_image(parent, diff_ids, chains, config, reference)
    }

    /// The shared tail of commit, import, build and `--cache-from` restores: `config`
    /// gets its `rootfs` (= `diff_ids`, whose layers are in the store), is written as
    /// the image's config blob, and the image record is committed and tagged.
    pub(crate) fn write_image(
        &self,
        parent: Option<&Image>,
        diff_ids: Vec<String>,
        chains: Vec<String>,
        config: serde_json::Value,
        reference: Option<&Reference>,
    ) -> Result<Image, StoreError> {
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
        let record = ImageRecord {
            id,
            layers: diff_ids,
            chain_ids: chains,
            manifest_digest: None,
            blobs: Vec::new(),
            parent: parent.map(|p| p.id.clone()),
        };
        let refs: Vec<Reference> = reference.map(|r| r.clone().with_default_tag()).into_iter().collect();
        let (image, _) = self.commit_image(record, &refs)?;
        Ok(image)
    }

    /// Sets an image's `Parent` (a load restores the links between the images of one
    /// archive, as Docker's `SetParent`); any parent it had is replaced.
    pub(crate) fn set_parent(&self, id: &str, parent: &str) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        let e = st.images.get_mut(id).ok_or_else(|| StoreError::NoSuchImage(id.to_string()))?;
        let mut r = e.record.clone();
        r.parent = Some(parent.to_string());
        let rec_path = self.inner.root.join("images").join(format!("{}.json", digest_hex(id)));
        let json = serde_json::to_vec_pretty(&r)
            .map_err(|e| StoreError::Internal(format!("encoding image record: {e}")))?;
        write_atomic(&rec_path, &json)?;
        e.record = r;
        Ok(())
    }

    pub(crate) fn has_image(&self, id: &str) -> bool {
        self.lock().map(|st| st.images.contains_key(id)).unwrap_or(false)
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
                if r.parent.is_none() {
                    r.parent = record.parent.clone();
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
        // No reference: repositories.json is unchanged (a build's intermediate images
        // and commits without a tag skip its rewrite and two disk flushes).
        if !refs.is_empty() {
            self.save_refs(&st)?;
        }
        let img = self.build(&st, &id)?;
        Ok((img, was))
    }

    pub(super) fn build(&self, st: &State, id: &str) -> Result<Image, StoreError> {
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
            parent: e.record.parent.clone(),
        })
    }
}

pub(super) fn container_conflict(id: &str, container: &str, force: bool) -> StoreError {
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

pub(super) fn load_entry(root: &Path, rec_path: &Path) -> Result<Entry, StoreError> {
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
