//! What `push` reads from the store: the config blob, each layer's kept tar (the blob
//! as pulled, or the uncompressed tar of a commit/import/load; docs/storage.md "Layer
//! tars") and the manifests the image was pulled with, so a pulled image can be pushed
//! back byte for byte. Read-only; `push` owns the registry side.

use std::fs;
use std::path::PathBuf;

use crate::error::StoreError;

use super::{digest_hex, ImageStore, LAYER_BLOB};

/// One layer of an image about to be pushed, bottom first.
#[derive(Clone, Debug)]
pub struct PushLayer {
    pub diff_id: String,
    pub chain_id: String,
    /// The kept tar: gzip-compressed for pulled layers, plain for made ones.
    pub blob: PathBuf,
}

/// An image as `push` needs it.
#[derive(Clone, Debug)]
pub struct PushSource {
    pub id: String,
    pub config: Vec<u8>,
    pub layers: Vec<PushLayer>,
    /// The manifests (and indexes) the image was pulled by, with their digests.
    pub manifests: Vec<(String, Vec<u8>)>,
}

impl ImageStore {
    /// The image `id`'s config, layer tars and pull manifests. A layer without a kept
    /// tar (unpacked by an older berth) cannot be pushed: Docker's layers always can,
    /// so the error says how to get one.
    pub fn push_source(&self, id: &str) -> Result<PushSource, StoreError> {
        let record = {
            let st = self.lock()?;
            st.images.get(id).ok_or_else(|| StoreError::NoSuchImage(id.to_string()))?.record.clone()
        };
        let config_path = self.blob_path(id);
        let config = fs::read(&config_path).map_err(|e| StoreError::io("read", &config_path, e))?;
        let mut layers = Vec::new();
        for (d, c) in record.layers.iter().zip(&record.chain_ids) {
            let blob = self.layer_path(digest_hex(c)).join(LAYER_BLOB);
            if !blob.is_file() {
                return Err(StoreError::Internal(format!(
                    "layer {d} has no recorded tar (it was unpacked by an older berth); remove the image and pull it again"
                )));
            }
            layers.push(PushLayer { diff_id: d.clone(), chain_id: c.clone(), blob });
        }
        let manifests = record
            .blobs
            .iter()
            .filter_map(|d| fs::read(self.blob_path(d)).ok().map(|b| (d.clone(), b)))
            .collect();
        Ok(PushSource { id: id.to_string(), config, layers, manifests })
    }
}
