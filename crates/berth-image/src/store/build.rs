//! What the builder adds to the store: config-only images (a Dockerfile step that
//! changes no file: ENV, CMD, LABEL, …), which share their parent's layers and differ
//! only in their config blob, written like a commit (config blob, then the record).

use sha2::{Digest as _, Sha256};

use super::images::ImageRecord;
use super::*;
use crate::manifest::ImageConfig;
use crate::reference::Reference;

impl ImageStore {
    /// Creates an image with `parent`'s layers (none without a parent) and `config`
    /// (its `rootfs` filled in here); `Parent` is `parent`.
    pub fn commit_config(
        &self,
        parent: Option<&Image>,
        config: serde_json::Value,
        reference: Option<&Reference>,
    ) -> Result<Image, StoreError> {
        let diff_ids: Vec<String> = parent.map(|p| p.layers.clone()).unwrap_or_default();
        self.commit_layers(parent, diff_ids, config, reference)
    }

    /// Creates an image of exactly `diff_ids` (bottom first; every layer already in the
    /// store, e.g. a prefix of a pulled image's) and `config`; `Parent` is `parent`.
    /// The builder restores `--cache-from` steps this way.
    pub fn commit_layers(
        &self,
        parent: Option<&Image>,
        diff_ids: Vec<String>,
        config: serde_json::Value,
        reference: Option<&Reference>,
    ) -> Result<Image, StoreError> {
        let chains = chain_id(&diff_ids);
        let _pin = self.pin(&chains);
        if let Some(c) = chains.iter().find(|c| !self.has_layer(c)) {
            return Err(StoreError::Internal(format!("layer {c} of the image is missing")));
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
}
