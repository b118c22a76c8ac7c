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

/// In a layer directory: the layer's tar as it came (the compressed blob of a pull,
/// the uncompressed tar of a commit, import or load), from which `save` reproduces the
/// tar whose sha256 is the diff id (docs/storage.md, "Layer tars").
pub(crate) const LAYER_BLOB: &str = "blob";
/// In a layer directory: the byte length of the uncompressed tar (decimal).
pub(crate) const TAR_SIZE: &str = "tar-size";

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

    /// The layer's tar, byte for byte the one its diff id names, and its length: the
    /// kept blob decompressed as it is read. The reader fails (rather than end) if the
    /// bytes do not hash to `diff_id` or are not `size` long, so a damaged blob never
    /// passes as a layer. A layer unpacked by a berth that kept no blob is refused.
    pub fn layer_tar(&self, chain: &str, diff_id: &str) -> Result<(u64, Box<dyn std::io::Read + Send>), StoreError> {
        let dir = self.layer_path(digest_hex(chain));
        let blob = dir.join(LAYER_BLOB);
        let size: u64 = fs::read_to_string(dir.join(TAR_SIZE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|_| blob.is_file())
            .ok_or_else(|| {
                StoreError::Internal(format!(
                    "layer {diff_id} has no recorded tar (it was unpacked by an older berth); remove the image and pull it again"
                ))
            })?;
        let f = fs::File::open(&blob).map_err(|e| StoreError::io("open", &blob, e))?;
        let mut buf = std::io::BufReader::with_capacity(64 * 1024, f);
        let head = std::io::BufRead::fill_buf(&mut buf).map_err(|e| StoreError::io("read", &blob, e))?.to_vec();
        let inner: Box<dyn std::io::Read + Send> = match crate::unpack::detect_compression(&head) {
            crate::unpack::Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
            crate::unpack::Compression::None => Box::new(buf),
            crate::unpack::Compression::Zstd => {
                Box::new(crate::unpack::zstd_reader(buf).map_err(|e| StoreError::io("read", &blob, e))?)
            }
            other => return Err(StoreError::Internal(format!("layer {diff_id}: a {other:?}-compressed blob cannot be read back"))),
        };
        Ok((size, Box::new(Verified { inner, hasher: Sha256::new(), left: size, want: diff_id.to_string() })))
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
    pub(crate) fn commit_layer(&self, tmp: &Path, chain: &str, stats: &crate::unpack::UnpackStats) -> Result<(), StoreError> {
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
        write_synced(&tmp.join("size"), stats.size.to_string().as_bytes())?;
        if tmp.join(LAYER_BLOB).is_file() {
            write_synced(&tmp.join(TAR_SIZE), stats.tar_size.to_string().as_bytes())?;
        }
        fsync_dir(tmp)?;
        fs::rename(tmp, &dst).map_err(|e| StoreError::io("rename", &dst, e))?;
        write_synced(&dst.join("ok"), b"")?;
        fsync_dir(&dst)?;
        fsync_dir(&self.inner.root.join("layers"))?;
        Ok(())
    }

    /// Removes those of `chains` no image uses and no pull pins (a load that failed
    /// after committing some of its layers).
    pub(crate) fn drop_unused_layers(&self, chains: &[String]) {
        let Ok(st) = self.lock() else { return };
        for c in chains {
            let hex = digest_hex(c);
            if self.layer_unused(&st, hex) {
                let _ = self.delete_layer(hex);
            }
        }
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

/// Reads a layer tar while checking its length and digest; fails instead of ending if
/// either is wrong.
struct Verified {
    inner: Box<dyn std::io::Read + Send>,
    hasher: Sha256,
    left: u64,
    want: String,
}

impl std::io::Read for Verified {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("layer {} is longer than recorded", self.want)));
        }
        self.left -= n as u64;
        self.hasher.update(&buf[..n]);
        if n == 0 {
            let got = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
            if self.left != 0 || got != self.want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("layer tar does not match its diff id: expected {}, got {got}", self.want),
                ));
            }
        }
        Ok(n)
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
