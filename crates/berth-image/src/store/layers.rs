//! Unpacked layers by chain id (`layers/<chain-hex>/diff`, an overlayfs lower dir, with
//! the `ok` marker written last), the pins that keep a pull's layers from collection,
//! and the OCI chain-id computation.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::*;
use crate::error::StoreError;

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

impl ImageStore {
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

    pub(crate) fn layer_path(&self, chain_hex: &str) -> PathBuf {
        self.inner.root.join("layers").join(chain_hex)
    }

    /// Bytes of regular files in a committed layer (its `size` file), None if absent.
    pub fn layer_size(&self, chain: &str) -> Option<u64> {
        fs::read_to_string(self.layer_path(digest_hex(chain)).join("size")).ok()?.trim().parse().ok()
    }

    pub(crate) fn has_layer(&self, chain: &str) -> bool {
        self.layer_path(digest_hex(chain)).join("ok").is_file()
    }

    /// A fresh temporary layer directory (`layers/.tmp-…`), removed by `open` if left.
    pub(crate) fn layer_tmp(&self) -> PathBuf {
        self.inner.root.join("layers").join(format!(".tmp-{:016x}", rand::random::<u64>()))
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

    pub(super) fn layer_unused(&self, st: &State, chain_hex: &str) -> bool {
        !st.pins.contains_key(chain_hex)
            && !st
                .images
                .values()
                .any(|e| e.record.chain_ids.iter().any(|c| digest_hex(c) == chain_hex))
    }

    /// Removes a layer: the `ok` marker first, so a crash leaves an incomplete layer
    /// that `open` deletes. Returns whether it existed.
    pub(super) fn delete_layer(&self, chain_hex: &str) -> Result<bool, StoreError> {
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
