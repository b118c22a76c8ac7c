//! Content-addressed blobs (`blobs/sha256/<hex>`: manifests, configs) and their ingest:
//! partial downloads under `ingest/`, renamed into `blobs/` after fsync and verification.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::error::StoreError;

impl ImageStore {
    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest_hex(digest))
    }

    /// A fresh path under `ingest/` for a partial download.
    pub(crate) fn ingest_path(&self) -> PathBuf {
        self.inner.root.join("ingest").join(format!("{:016x}", rand::random::<u64>()))
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
}

pub(super) fn live_blobs(st: &State) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for e in st.images.values() {
        live.insert(digest_hex(&e.record.id).to_string());
        for b in &e.record.blobs {
            live.insert(digest_hex(b).to_string());
        }
    }
    live
}
