//! The streaming layer pipeline of a pull: one layer's download, compressed-digest
//! hashing, decompression, diff-id hashing and unpacking run at the same time, as the
//! bytes arrive. The async side reads the HTTP body, hashes it and writes it to an
//! `ingest/` file (the layer's kept blob) while handing each chunk over a bounded
//! channel to a blocking thread that decompresses and unpacks it into its own
//! `layers/.tmp-*` directory. Memory is the channel's few chunks, never the layer.
//!
//! The layer is committed (by the blocking thread) only after the async side has
//! checked the compressed digest and fsync'ed the blob — it says so by the channel's
//! last message — and the thread has checked the diff id. Any other ending (a cut
//! connection, a wrong digest, a dropped pull) closes the channel without that
//! message: the thread fails on it and removes its temp dir; the ingest file is removed
//! by its guard. A kill -9 leaves only `ingest/` files and `layers/.tmp-*`, which
//! `ImageStore::open` deletes.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::error::{PullError, StoreError, UnpackError};
use crate::store::{remove_any, ImageStore};
use crate::unpack::{unpack_reader, UnpackStats};

/// Chunks in flight between a layer's download and its unpacker. With hyper's body
/// chunks (at most its read buffer, ~400 KiB) this bounds a layer's pipeline memory.
pub(crate) const PIPE_CHUNKS: usize = 8;

/// What the download side sends the unpacker.
#[derive(Debug)]
pub(crate) enum Msg {
    /// Compressed bytes, in order.
    Data(Bytes),
    /// The end: every byte was sent, the compressed digest checked out and the blob
    /// is fsync'ed at this path. Only after this may the layer be committed.
    Verified(PathBuf),
}

/// The unpacker's end of the channel as a blocking [`Read`]: a closed channel before
/// [`Msg::Verified`] is an unexpected EOF (the download failed or was dropped).
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    cur: Bytes,
    verified: Option<PathBuf>,
    count: u64,
    progress: watch::Sender<u64>,
}

impl ChannelReader {
    pub(crate) fn new(rx: mpsc::Receiver<Msg>, progress: watch::Sender<u64>) -> Self {
        ChannelReader { rx, cur: Bytes::new(), verified: None, count: 0, progress }
    }

    /// Reads (and drops) whatever the decompressor left unread, up to the verdict:
    /// the verified blob's path, or an error if the download did not end well.
    pub(crate) fn finish(&mut self) -> io::Result<PathBuf> {
        let mut sink = [0u8; 8192];
        while self.read(&mut sink)? > 0 {}
        self.verified
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected EOF"))
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.verified.is_some() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(b)) => self.cur = b,
                Some(Msg::Verified(p)) => {
                    self.verified = Some(p);
                    let _ = self.progress.send(self.count);
                    return Ok(0);
                }
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected EOF")),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        self.count += n as u64;
        let _ = self.progress.send(self.count);
        Ok(n)
    }
}

/// The blocking half: unpacks what `reader` delivers into `tmp/diff`, checks the diff
/// id, waits for the verdict, keeps the blob as the layer's tar and commits the layer
/// as `chain`. Whatever fails, `tmp` is removed before returning.
pub(crate) fn unpack_and_commit(
    store: &ImageStore,
    mut reader: ChannelReader,
    tmp: &Path,
    diff_id: &str,
    chain: &str,
) -> Result<(), PullError> {
    let r = (|| {
        std::fs::create_dir(tmp).map_err(|e| UnpackError::io("mkdir", tmp, e))?;
        let stats: UnpackStats = unpack_reader(&mut reader, &tmp.join("diff"))?;
        if stats.diff_id != diff_id {
            tracing::warn!(expected = %diff_id, actual = %stats.diff_id, "uncompressed layer does not match the config's diff id");
            return Err(PullError::RootFsMismatch { expected: diff_id.to_string(), actual: stats.diff_id });
        }
        let blob = reader.finish().map_err(UnpackError::Tar)?;
        // The blob as pulled stays with the layer (a hard link, no copy), so `save`
        // and `push` give back the exact bytes; the ingest name goes with its guard.
        let keep = tmp.join(crate::store::LAYER_BLOB);
        std::fs::hard_link(&blob, &keep).map_err(|e| StoreError::io("link", &keep, e))?;
        store.commit_layer(tmp, chain, &stats)?;
        Ok(())
    })();
    if r.is_err() {
        let _ = remove_any(tmp);
    }
    r
}

/// An `ingest/` file deleted on drop — also when the pull future is dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = remove_any(&self.0);
    }
}

/// What the download half reports, as it goes.
pub(crate) enum Event {
    Downloading(u64, Option<u64>),
    VerifyingChecksum,
    DownloadComplete,
}

/// The blob a download is for: its digest, its size if known, its URL (for errors).
#[derive(Clone, Copy)]
pub(crate) struct Blob<'a> {
    pub(crate) digest: &'a str,
    pub(crate) total: Option<u64>,
    pub(crate) url: &'a str,
}

/// The async half (stops early, with an error, when `cancel` turns true): streams `body` into `ingest` (hashing it) and into `tx`; on a
/// matching `digest` fsyncs the file and sends [`Msg::Verified`]. Returns `Ok(false)`
/// if the unpacker hung up early and the blob is the right one (the unpacker's own
/// error then says why); a wrong digest is the error either way.
pub(crate) async fn download<S, E>(
    mut body: S,
    ingest: &Path,
    blob: &Blob<'_>,
    tx: mpsc::Sender<Msg>,
    cancel: &mut watch::Receiver<bool>,
    report: &mut (dyn FnMut(Event) + Send),
) -> Result<bool, PullError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    const STEP: u64 = 512 * 1024;
    let Blob { digest, total, url } = *blob;
    let mut file = tokio::fs::File::create(ingest).await.map_err(|e| StoreError::io("create", ingest, e))?;
    let mut hasher = Sha256::new();
    let (mut current, mut last) = (0u64, 0u64);
    let mut gone = false;
    loop {
        let next = tokio::select! {
            n = body.next() => n,
            () = cancelled(cancel) => return Err(PullError::Internal("pull cancelled: another layer failed".into())),
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| PullError::Unreachable(body_error(url, &e.to_string())))?;
        hasher.update(&chunk);
        if !gone {
            file.write_all(&chunk).await.map_err(|e| StoreError::io("write", ingest, e))?;
        }
        current += chunk.len() as u64;
        // An unpacker that gave up (a broken tar) is not the verdict yet: a tampered
        // blob must still fail as Docker's digest error, so the rest is only hashed.
        if !gone && tx.send(Msg::Data(chunk)).await.is_err() {
            gone = true;
        }
        if last == 0 || current - last >= STEP {
            last = current.max(1);
            report(Event::Downloading(current, total));
        }
    }
    report(Event::Downloading(current, total));
    report(Event::VerifyingChecksum);
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != digest {
        tracing::warn!(expected = %digest, actual = %got, "layer blob does not match its digest");
        return Err(PullError::DigestMismatch { what: "filesystem layer".into(), expected: digest.into(), actual: got });
    }
    if gone {
        return Ok(false);
    }
    file.sync_all().await.map_err(|e| StoreError::io("fsync", ingest, e))?;
    drop(file);
    report(Event::DownloadComplete);
    Ok(tx.send(Msg::Verified(ingest.to_path_buf())).await.is_ok())
}

/// Go's text for a body that broke off: its HTTP client reports a short body as
/// `unexpected EOF`, unwrapped (the request itself had succeeded); other failures keep
/// the request's `Get "<url>": …` prefix.
pub(crate) fn body_error(url: &str, e: &str) -> String {
    if e.contains("error decoding response body") || e.contains("error reading a body") || e.contains("end of file") {
        "unexpected EOF".to_string()
    } else {
        format!("Get \"{url}\": {e}")
    }
}

/// Resolves once `cancel` turns true (never, if its sender is gone without that).
pub(crate) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn layer_tar(size: usize) -> Vec<u8> {
        let t = tempfile::tempdir().unwrap();
        // Incompressible (xorshift), so the gzip blob is as large as the layer.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(t.path().join("big"), &data).unwrap();
        std::fs::write(t.path().join("small"), b"hi").unwrap();
        let mut out = berth_archive::TarOut::new(Vec::new(), false);
        out.add_tree(t.path(), "").unwrap();
        out.finish().unwrap()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sha(b: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(b)))
    }

    /// Feeds `blob` through the pipeline in 16 KiB chunks; `cut_at` stops the body
    /// with an error there; `lie` announces a wrong compressed digest.
    async fn run(blob: Vec<u8>, diff_id: String, cut_at: Option<usize>, lie: bool) -> (Result<(), PullError>, ImageStore, tempfile::TempDir) {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let digest = if lie { sha(b"other") } else { sha(&blob) };
        let chunks: Vec<Result<Bytes, String>> = blob
            .chunks(16 * 1024)
            .scan(0usize, |off, c| {
                let start = *off;
                *off += c.len();
                Some(match cut_at {
                    Some(cut) if start >= cut => Err("connection reset by peer".to_string()),
                    _ => Ok(Bytes::copy_from_slice(c)),
                })
            })
            .collect();
        let body = futures_util::stream::iter(chunks);
        let (tx, rx) = mpsc::channel(PIPE_CHUNKS);
        let (ptx, _prx) = watch::channel(0u64);
        let tmp = store.layer_tmp();
        let ingest = store.ingest_path();
        let scratch = Scratch(ingest.clone());
        let s2 = store.clone();
        let chain = diff_id.clone();
        let th = tokio::task::spawn_blocking(move || unpack_and_commit(&s2, ChannelReader::new(rx, ptx), &tmp, &diff_id, &chain));
        let (_ctx, mut crx) = watch::channel(false);
        let d = download(body, &ingest, &Blob { digest: &digest, total: None, url: "http://x/blob" }, tx, &mut crx, &mut |_| {}).await;
        let u = th.await.unwrap();
        drop(scratch);
        let r = match d {
            Err(e) => Err(e),
            Ok(_) => u,
        };
        (r, store, t)
    }

    fn leftovers(root: &Path) -> Vec<String> {
        let mut v = Vec::new();
        for dir in ["ingest", "layers"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                v.push(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipeline_cases() {
        // A layer far larger than the channel (8 chunks × 16 KiB) streams through.
        let tar = layer_tar(3 * 1024 * 1024);
        let blob = gz(&tar);
        assert!(blob.len() > PIPE_CHUNKS * 16 * 1024);
        struct Case {
            name: &'static str,
            cut_at: Option<usize>,
            lie: bool,
            wrong_diff: bool,
            ok: bool,
        }
        let cases = [
            Case { name: "whole", cut_at: None, lie: false, wrong_diff: false, ok: true },
            Case { name: "cut mid-body", cut_at: Some(blob.len() / 2), lie: false, wrong_diff: false, ok: false },
            Case { name: "cut at first byte", cut_at: Some(0), lie: false, wrong_diff: false, ok: false },
            Case { name: "wrong compressed digest", cut_at: None, lie: true, wrong_diff: false, ok: false },
            Case { name: "wrong diff id", cut_at: None, lie: false, wrong_diff: true, ok: false },
        ];
        for c in cases {
            let diff_id = if c.wrong_diff { sha(b"nope") } else { sha(&tar) };
            let (r, store, t) = run(blob.clone(), diff_id.clone(), c.cut_at, c.lie).await;
            let left = leftovers(t.path());
            if c.ok {
                r.unwrap_or_else(|e| panic!("{}: {e}", c.name));
                assert!(store.has_layer(&diff_id), "{}", c.name);
                assert_eq!(left, vec![crate::store::digest_hex(&diff_id).to_string()], "{}", c.name);
                let dir = t.path().join("layers").join(crate::store::digest_hex(&diff_id));
                assert_eq!(std::fs::read(dir.join("blob")).unwrap(), blob, "{}", c.name);
                assert_eq!(std::fs::metadata(dir.join("diff/big")).unwrap().len(), 3 * 1024 * 1024);
            } else {
                let e = r.expect_err(c.name);
                match c.name {
                    "wrong compressed digest" => assert!(matches!(e, PullError::DigestMismatch { .. }), "{e}"),
                    "wrong diff id" => assert!(matches!(e, PullError::RootFsMismatch { .. }), "{e}"),
                    _ => assert!(e.to_string().contains("Get \"http://x/blob\": connection reset by peer"), "{}: {e}", c.name),
                }
                assert!(left.is_empty(), "{}: {left:?}", c.name);
            }
        }
    }

    #[test]
    fn body_error_texts() {
        let cases = [
            ("error decoding response body", "unexpected EOF"),
            ("error reading a body from connection", "unexpected EOF"),
            ("connection refused", "Get \"http://r/b\": connection refused"),
        ];
        for (e, want) in cases {
            assert_eq!(body_error("http://r/b", e), want, "{e}");
        }
    }

    #[test]
    fn reader_without_verdict_is_eof() {
        let (tx, rx) = mpsc::channel(2);
        let (ptx, prx) = watch::channel(0u64);
        tx.try_send(Msg::Data(Bytes::from_static(b"abc"))).unwrap();
        drop(tx);
        let mut r = ChannelReader::new(rx, ptx);
        let mut buf = [0u8; 2];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert_eq!(*prx.borrow(), 2);
        assert_eq!(r.finish().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
