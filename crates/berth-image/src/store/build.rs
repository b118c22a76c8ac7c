//! What the builder adds to the store: config-only images (a Dockerfile step that
//! changes no file: ENV, CMD, LABEL, …), which share their parent's layers and differ
//! only in their config blob, written like a commit (config blob, then the record).


use super::*;
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
        self.write_image(parent, diff_ids, chains, config, reference)
    }
}
