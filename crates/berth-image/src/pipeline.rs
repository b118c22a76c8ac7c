//! The streaming layer pipeline of a pull: one layer's download, compressed-digest
//! hashing, decompression, diff-id hashing and unpacking run at the same time, as the
//! bytes arrive. The async side reads the HTTP body, hashes it and writes it to an
//! `ingest/` file (the layer's kept blob) while handing it, cut into pieces of at most
//! [`MAX_PIECE`] bytes, over a bounded channel to a blocking thread that decompresses
//! and unpacks it into its own `layers/.tmp-*` directory. Memory is the channel's few
//! pieces, never the layer.
//!
//! A body that breaks off (a reset, an EOF before its length) is resumed as Docker
//! does: the blob is asked for again with `Range: bytes=<offset>-` and the 206 answer
//! feeds the same hasher, ingest file and unpacker from that byte on, so the digest
//! still covers the whole blob. An answer that is not that range (a 200), or a resumed
//! blob that fails its digest, cannot go on: the pipeline is taken down (as on any
//! failure) and the layer starts over from its first byte. Every request counts as an
//! attempt of Docker's `--max-download-attempts` (5), with its `Retrying in N seconds`
//! countdown (5 s after the first failure, 10 s after the second, …) between them.
//!
//! The layer is committed (by the blocking thread) only after the async side has
//! checked the compressed digest and fsync'ed the blob — it says so by the channel's
//! last message — and the thread has checked the diff id. Any other ending (a
//! download that gave up, a wrong digest, a dropped pull) closes the channel without
//! that message: the thread fails on it and removes its temp dir; the ingest file is
//! removed by its guard. A kill -9 leaves only `ingest/` files and `layers/.tmp-*`,
//! which `ImageStore::open` deletes.

use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::error::{PullError, StoreError, UnpackError};
use crate::pull::DownloadRetry;
use crate::store::{remove_any, ImageStore};
use crate::unpack::{unpack_reader, UnpackStats};

/// Pieces in flight between a layer's download and its unpacker: with [`MAX_PIECE`]
/// this bounds what a layer's pipeline holds to 8 × 256 KiB.
pub(crate) const PIPE_CHUNKS: usize = 8;

/// The longest piece the channel carries. hyper hands out chunks of at most its read
/// buffer (~400 KiB), but nothing here relies on it: a longer chunk is cut up by
/// [`pieces`] before it enters the channel.
pub(crate) const MAX_PIECE: usize = 256 * 1024;

/// `chunk` as channel-sized pieces: the chunk itself when it is at most [`MAX_PIECE`]
/// long, else copies of at most that size, made one at a time (a slice would keep the
/// whole large buffer alive for as long as any piece of it waits in the channel).
pub(crate) fn pieces(chunk: Bytes) -> Pieces {
    Pieces { copy: chunk.len() > MAX_PIECE, rest: chunk }
}

/// The iterator of [`pieces`].
pub(crate) struct Pieces {
    rest: Bytes,
    copy: bool,
}

impl Iterator for Pieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.rest.is_empty() {
            return None;
        }
        if !self.copy {
            return Some(std::mem::take(&mut self.rest));
        }
        let n = self.rest.len().min(MAX_PIECE);
        let piece = Bytes::copy_from_slice(&self.rest[..n]);
        let _ = self.rest.split_to(n);
        Some(piece)
    }
}

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

/// What a layer's pipeline reports, as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Downloading(u64, Option<u64>),
    /// Docker's countdown before the next attempt: `Retrying in N seconds`.
    Retrying(u64),
    VerifyingChecksum,
    DownloadComplete,
    /// The unpacker has read this many compressed bytes (of at least the second).
    Extracting(u64, u64),
}

/// The blob a download is for: its digest, its size if known, its URL (for errors).
#[derive(Clone, Copy)]
pub(crate) struct Blob<'a> {
    pub(crate) digest: &'a str,
    pub(crate) total: Option<u64>,
    pub(crate) url: &'a str,
}

/// A blob's body as chunks; an error item is a transfer that broke off (its text).
pub(crate) type Body = BoxStream<'static, Result<Bytes, String>>;

/// What a request for the blob from an offset got.
pub(crate) enum Opened {
    /// The blob's bytes from the offset asked for on.
    Body(Body),
    /// A range was asked for and the answer was not that range (the whole blob with a
    /// 200, another range): the pipeline cannot go on from where it is. Why, in words.
    NotResumed(String),
}

/// A request for the blob that failed; `retry` when Docker would try it again (the
/// registry could not be talked to, or answered 5xx).
pub(crate) struct OpenError {
    pub(crate) error: PullError,
    pub(crate) retry: bool,
}

/// How a download that did not finish ended.
pub(crate) enum Stop {
    /// The layer failed for good.
    Fail(PullError),
    /// This pipeline cannot go on, but the layer may start over from its first byte
    /// (if attempts are left): the registry did not answer the range, or a resumed
    /// blob did not verify (the bytes after the offset may be another replica's).
    StartOver(PullError),
}

/// The requests made for one layer so far, and the waits between them.
pub(crate) struct Attempts {
    policy: DownloadRetry,
    failed: u32,
}

impl Attempts {
    pub(crate) fn new(policy: DownloadRetry) -> Self {
        Attempts { policy, failed: 0 }
    }

    /// After a failed request: `false` if it was the last one allowed; otherwise
    /// Docker's countdown (`Retrying in 5 seconds` … `Retrying in 1 second`, 5 s more
    /// after each failure: xfer's `retries * 5`), then `true`. A cancelled pull ends
    /// the wait with an error.
    async fn back_off(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        report: &mut (dyn FnMut(Event) + Send),
    ) -> Result<bool, PullError> {
        self.failed += 1;
        if self.failed >= self.policy.attempts.max(1) {
            return Ok(false);
        }
        let mut left = 5 * u64::from(self.failed);
        while left > 0 {
            report(Event::Retrying(left));
            tokio::select! {
                () = tokio::time::sleep(self.policy.tick) => {}
                () = cancelled(cancel) => return Err(cancelled_error()),
            }
            left -= 1;
        }
        Ok(true)
    }
}

fn cancelled_error() -> PullError {
    PullError::Internal("pull cancelled: another layer failed".into())
}

/// One layer, start to end: the pipeline (download ‖ unpack) run until the layer is
/// committed, or until it fails for good — a pipeline that cannot resume is taken down
/// and a new one started while attempts are left. `open(offset)` requests the blob
/// from a byte on (0: all of it). Returns only once the unpacker is done and its temp
/// dir and the ingest file are gone (unless the layer was committed).
pub(crate) async fn stream_layer<O, F>(
    store: &ImageStore,
    open: &mut O,
    blob: &Blob<'_>,
    (diff_id, chain): (&str, &str),
    retry: DownloadRetry,
    cancel: &mut watch::Receiver<bool>,
    report: &mut (dyn FnMut(Event) + Send),
) -> Result<(), PullError>
where
    O: FnMut(u64) -> F,
    F: Future<Output = Result<Opened, OpenError>>,
{
    let mut attempts = Attempts::new(retry);
    loop {
        let ingest = store.ingest_path();
        let scratch = Scratch(ingest.clone());
        let (tx, rx) = mpsc::channel(PIPE_CHUNKS);
        let (ptx, mut prx) = watch::channel(0u64);
        let tmp = store.layer_tmp();
        let (s2, d2, c2) = (store.clone(), diff_id.to_string(), chain.to_string());
        let unpacker =
            tokio::task::spawn_blocking(move || unpack_and_commit(&s2, ChannelReader::new(rx, ptx), &tmp, &d2, &c2));
        let downloaded = download(open, &ingest, blob, tx, &mut attempts, cancel, report).await;
        if matches!(downloaded, Ok(true)) {
            // The unpacker is at most the channel's few pieces behind: show it finishing.
            let total = blob.total.unwrap_or(0);
            loop {
                let cur = *prx.borrow_and_update();
                report(Event::Extracting(cur, total.max(cur)));
                if prx.changed().await.is_err() {
                    break;
                }
            }
        }
        // Always wait for the unpacker, so its temp dir is gone before going on.
        let unpacked = unpacker.await.map_err(|e| PullError::Internal(format!("unpack task failed: {e}")))?;
        drop(scratch);
        match downloaded {
            Ok(_) => return unpacked,
            Err(Stop::Fail(e)) => return Err(e),
            Err(Stop::StartOver(e)) => {
                if !attempts.back_off(cancel, report).await? {
                    return Err(e);
                }
                tracing::info!(digest = %blob.digest, "starting the layer download over");
            }
        }
    }
}

/// The async half of one pipeline (stops early, with an error, when `cancel` turns
/// true): requests the blob with `open`, streams the body into `ingest` (hashing it)
/// and into `tx`; a body that breaks off is asked for again from where it stopped
/// while `attempts` allow. On a matching `digest` fsyncs the file and sends
/// [`Msg::Verified`]. Returns `Ok(false)` if the unpacker hung up early and the blob is
/// the right one (the unpacker's own error then says why); a wrong digest is the error
/// either way.
pub(crate) async fn download<O, F>(
    open: &mut O,
    ingest: &Path,
    blob: &Blob<'_>,
    tx: mpsc::Sender<Msg>,
    attempts: &mut Attempts,
    cancel: &mut watch::Receiver<bool>,
    report: &mut (dyn FnMut(Event) + Send),
) -> Result<bool, Stop>
where
    O: FnMut(u64) -> F,
    F: Future<Output = Result<Opened, OpenError>>,
{
    const STEP: u64 = 512 * 1024;
    let Blob { digest, total, url } = *blob;
    let mut file = tokio::fs::File::create(ingest)
        .await
        .map_err(|e| Stop::Fail(StoreError::io("create", ingest, e).into()))?;
    let mut hasher = Sha256::new();
    let mut current = 0u64;
    let mut gone = false;
    let mut resumed = false;
    'request: loop {
        let opened = tokio::select! {
            o = open(current) => o,
            () = cancelled(cancel) => return Err(Stop::Fail(cancelled_error())),
        };
        let mut body = match opened {
            Ok(Opened::Body(b)) => b,
            Ok(Opened::NotResumed(why)) => {
                tracing::warn!(%url, offset = current, %why, "the registry did not resume the blob");
                return Err(Stop::StartOver(PullError::Registry(why)));
            }
            Err(OpenError { error, retry }) => {
                tracing::warn!(%url, offset = current, %error, "layer request failed");
                if retry && attempts.back_off(cancel, report).await.map_err(Stop::Fail)? {
                    continue;
                }
                return Err(Stop::Fail(error));
            }
        };
        resumed |= current > 0;
        // The first chunk of each answer is reported (after a countdown, at once).
        let mut last: Option<u64> = None;
        loop {
            let next = tokio::select! {
                n = body.next() => n,
                () = cancelled(cancel) => return Err(Stop::Fail(cancelled_error())),
            };
            let chunk = match next {
                None => break 'request,
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::warn!(%url, offset = current, error = %e, "layer download broke off");
                    let error = PullError::Unreachable(body_error(url, &e));
                    if attempts.back_off(cancel, report).await.map_err(Stop::Fail)? {
                        continue 'request;
                    }
                    return Err(Stop::Fail(error));
                }
            };
            hasher.update(&chunk);
            if !gone {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Stop::Fail(StoreError::io("write", ingest, e).into()))?;
            }
            current += chunk.len() as u64;
            // An unpacker that gave up (a broken tar) is not the verdict yet: a tampered
            // blob must still fail as Docker's digest error, so the rest is only hashed.
            if !gone {
                for piece in pieces(chunk) {
                    if tx.send(Msg::Data(piece)).await.is_err() {
                        gone = true;
                        break;
                    }
                }
            }
            if last.is_none_or(|l| current - l >= STEP) {
                last = Some(current);
                report(Event::Downloading(current, total));
            }
        }
    }
    report(Event::Downloading(current, total));
    report(Event::VerifyingChecksum);
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != digest {
        tracing::warn!(expected = %digest, actual = %got, resumed, "layer blob does not match its digest");
        let e = PullError::DigestMismatch { what: "filesystem layer".into(), expected: digest.into(), actual: got };
        // Docker's rule: only a resumed download is fetched again after a wrong digest.
        return Err(if resumed { Stop::StartOver(e) } else { Stop::Fail(e) });
    }
    if gone {
        return Ok(false);
    }
    file.sync_all().await.map_err(|e| Stop::Fail(StoreError::io("fsync", ingest, e).into()))?;
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
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

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

    const CHUNK: usize = 16 * 1024;

    /// How the test's blob source (a test double for a registry and the network in
    /// between) answers one request.
    #[derive(Clone, Copy, Debug)]
    enum Answer {
        /// The blob from the offset asked for, in 16 KiB chunks, broken off (a
        /// connection reset) after this many bytes; `None`: to its end.
        Serve(Option<usize>),
        /// The whole blob with a 200 to a range request.
        IgnoreRange,
        /// The bytes from the offset, each flipped: a replica that has other bytes.
        Corrupt,
        /// The request fails; retriable (a 5xx, a refused connection) or not (a 404).
        Refuse { retry: bool },
    }

    /// Answers requests by `script` (its last answer repeats), recording their offsets.
    fn source(blob: Arc<Vec<u8>>, script: Vec<Answer>, asked: Arc<Mutex<Vec<u64>>>) -> impl FnMut(u64) -> std::future::Ready<Result<Opened, OpenError>> {
        move |offset| {
            let n = {
                let mut a = asked.lock().unwrap();
                a.push(offset);
                a.len() - 1
            };
            let answer = script[n.min(script.len() - 1)];
            let from = offset as usize;
            let body = |bytes: Vec<u8>, cut: Option<usize>| -> Opened {
                let mut items: Vec<Result<Bytes, String>> = Vec::new();
                let end = cut.map_or(bytes.len(), |c| c.min(bytes.len()));
                for c in bytes[..end].chunks(CHUNK) {
                    items.push(Ok(Bytes::copy_from_slice(c)));
                }
                if cut.is_some() {
                    items.push(Err("connection reset by peer".into()));
                }
                Opened::Body(futures_util::stream::iter(items).boxed())
            };
            std::future::ready(match answer {
                Answer::Serve(cut) => Ok(body(blob[from..].to_vec(), cut)),
                Answer::IgnoreRange if offset > 0 => Ok(Opened::NotResumed("expected HTTP 206 from byte range request".into())),
                Answer::IgnoreRange => Ok(body(blob.to_vec(), None)),
                Answer::Corrupt => Ok(body(blob[from..].iter().map(|b| !b).collect(), None)),
                Answer::Refuse { retry } => Err(OpenError { error: PullError::Unreachable("Get \"http://x/blob\": connection refused".into()), retry }),
            })
        }
    }

    struct Outcome {
        result: Result<(), PullError>,
        asked: Vec<u64>,
        events: Vec<Event>,
        store: ImageStore,
        root: tempfile::TempDir,
    }

    impl Outcome {
        fn countdowns(&self) -> Vec<u64> {
            self.events.iter().filter_map(|e| if let Event::Retrying(s) = e { Some(*s) } else { None }).collect()
        }
    }

    /// One layer through [`stream_layer`] from the scripted source; `digest` and
    /// `diff_id` as announced by the manifest and config.
    async fn run(blob: &[u8], digest: &str, diff_id: &str, script: Vec<Answer>, attempts: u32) -> Outcome {
        let root = tempfile::tempdir().unwrap();
        let store = ImageStore::open(root.path()).unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let mut open = source(Arc::new(blob.to_vec()), script, asked.clone());
        let (_ctx, mut crx) = watch::channel(false);
        let mut events = Vec::new();
        let retry = DownloadRetry { attempts, tick: Duration::from_millis(1) };
        let b = Blob { digest, total: Some(blob.len() as u64), url: "http://x/blob" };
        let result = stream_layer(&store, &mut open, &b, (diff_id, diff_id), retry, &mut crx, &mut |e| events.push(e)).await;
        let asked = asked.lock().unwrap().clone();
        Outcome { result, asked, events, store, root }
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

    #[derive(Debug)]
    enum Want {
        Ok,
        Cut,
        Refused,
        Digest,
        DiffId,
        NotResumed,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipeline_cases() {
        // A layer far larger than the channel (8 pieces × 16 KiB) streams through.
        let tar = layer_tar(3 * 1024 * 1024);
        let blob = gz(&tar);
        assert!(blob.len() > PIPE_CHUNKS * CHUNK);
        let half = (blob.len() / 2 / CHUNK * CHUNK) as u64;
        let q = 256 * 1024u64;
        use Answer::*;
        struct Case {
            name: &'static str,
            script: Vec<Answer>,
            attempts: u32,
            lie: bool,
            wrong_diff: bool,
            want: Want,
            asked: Vec<u64>,
            countdowns: Vec<u64>,
        }
        let c = |name, script, attempts, want, asked: Vec<u64>, countdowns: Vec<u64>| Case {
            name,
            script,
            attempts,
            lie: false,
            wrong_diff: false,
            want,
            asked,
            countdowns,
        };
        let five: Vec<u64> = (1..=5).rev().collect();
        let all: Vec<u64> = [5u64, 10, 15, 20].iter().flat_map(|n| (1..=*n).rev()).collect();
        let cases = [
            c("whole", vec![Serve(None)], 5, Want::Ok, vec![0], vec![]),
            // Resumed from where the body broke off, the same unpacker going on.
            c("cut mid-body, resumed", vec![Serve(Some(half as usize)), Serve(None)], 5, Want::Ok, vec![0, half], five.clone()),
            c("cut at the first byte", vec![Serve(Some(0)), Serve(None)], 5, Want::Ok, vec![0, 0], five.clone()),
            c(
                "cut twice",
                vec![Serve(Some(q as usize)), Serve(Some(q as usize)), Serve(None)],
                5,
                Want::Ok,
                vec![0, q, 2 * q],
                (1..=5).rev().chain((1..=10).rev()).collect(),
            ),
            // Every answer breaks off: 5 requests, each resuming, then the pull fails.
            c("always cut", vec![Serve(Some(q as usize))], 5, Want::Cut, vec![0, q, 2 * q, 3 * q, 4 * q], all.clone()),
            c("always cut, one attempt", vec![Serve(Some(q as usize))], 1, Want::Cut, vec![0], vec![]),
            // A 200 to the range: the pipeline is taken down, the layer starts over.
            c("range ignored", vec![Serve(Some(half as usize)), IgnoreRange, Serve(None)], 5, Want::Ok, vec![0, half, 0], (1..=5).rev().chain((1..=10).rev()).collect()),
            // Out of attempts at the range request: its error is the pull's.
            c("range ignored, no attempt left", vec![Serve(Some(half as usize)), IgnoreRange], 2, Want::NotResumed, vec![0, half], five.clone()),
            // The resumed bytes are another blob's: the digest fails, and as in Docker
            // a resumed download then starts over.
            c("resumed bytes corrupt", vec![Serve(Some(half as usize)), Corrupt, Serve(None)], 5, Want::Ok, vec![0, half, 0], (1..=5).rev().chain((1..=10).rev()).collect()),
            c("refused, then served", vec![Refuse { retry: true }, Serve(None)], 5, Want::Ok, vec![0, 0], five.clone()),
            c("refused for good", vec![Refuse { retry: false }], 5, Want::Refused, vec![0], vec![]),
            Case { lie: true, ..c("wrong compressed digest", vec![Serve(None)], 5, Want::Digest, vec![0], vec![]) },
            Case { wrong_diff: true, ..c("wrong diff id", vec![Serve(None)], 5, Want::DiffId, vec![0], vec![]) },
        ];
        for case in cases {
            let name = case.name;
            let digest = if case.lie { sha(b"other") } else { sha(&blob) };
            let diff_id = if case.wrong_diff { sha(b"nope") } else { sha(&tar) };
            let o = run(&blob, &digest, &diff_id, case.script, case.attempts).await;
            let left = leftovers(o.root.path());
            assert_eq!(o.asked, case.asked, "{name}: the offsets asked for");
            assert_eq!(o.countdowns(), case.countdowns, "{name}: Retrying in … lines");
            match case.want {
                Want::Ok => {
                    o.result.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(o.store.has_layer(&diff_id), "{name}");
                    assert_eq!(left, vec![crate::store::digest_hex(&diff_id).to_string()], "{name}");
                    let dir = o.root.path().join("layers").join(crate::store::digest_hex(&diff_id));
                    assert_eq!(std::fs::read(dir.join("blob")).unwrap(), blob, "{name}");
                    assert_eq!(std::fs::metadata(dir.join("diff/big")).unwrap().len(), 3 * 1024 * 1024, "{name}");
                    let last = o.events.iter().rev().find(|e| matches!(e, Event::Downloading(..)));
                    assert_eq!(last, Some(&Event::Downloading(blob.len() as u64, Some(blob.len() as u64))), "{name}");
                    assert_eq!(o.events.last(), Some(&Event::Extracting(blob.len() as u64, blob.len() as u64)), "{name}");
                }
                want => {
                    let e = o.result.expect_err(name);
                    let ok = match want {
                        Want::Cut => e.to_string() == "Get \"http://x/blob\": connection reset by peer",
                        Want::Refused => e.to_string().contains("connection refused"),
                        Want::Digest => matches!(e, PullError::DigestMismatch { .. }),
                        Want::DiffId => matches!(e, PullError::RootFsMismatch { .. }),
                        Want::NotResumed => e.to_string() == "expected HTTP 206 from byte range request",
                        Want::Ok => false,
                    };
                    assert!(ok, "{name}: {e:?}");
                    assert!(left.is_empty(), "{name}: {left:?}");
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_pull_stops_during_the_countdown() {
        let blob = gz(&layer_tar(64 * 1024));
        let root = tempfile::tempdir().unwrap();
        let store = ImageStore::open(root.path()).unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let mut open = source(Arc::new(blob.clone()), vec![Answer::Serve(Some(CHUNK))], asked.clone());
        let (ctx, mut crx) = watch::channel(false);
        let digest = sha(&blob);
        let b = Blob { digest: &digest, total: None, url: "http://x/blob" };
        // A countdown of hours: only the cancellation can end it.
        let retry = DownloadRetry { attempts: 5, tick: Duration::from_secs(3600) };
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = ctx.send(true);
        });
        let r = stream_layer(&store, &mut open, &b, (&digest, &digest), retry, &mut crx, &mut |_| {}).await;
        canceller.await.unwrap();
        assert!(r.unwrap_err().to_string().contains("cancelled"));
        assert_eq!(*asked.lock().unwrap(), vec![0]);
        assert!(leftovers(root.path()).is_empty());
    }

    #[test]
    fn pieces_are_bounded() {
        for len in [0, 1, 1000, MAX_PIECE - 1, MAX_PIECE, MAX_PIECE + 1, 3 * MAX_PIECE + 5, 16 * 1024 * 1024] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let chunk = Bytes::from(data.clone());
            let ps: Vec<Bytes> = pieces(chunk.clone()).collect();
            assert!(ps.iter().all(|p| !p.is_empty() && p.len() <= MAX_PIECE), "{len}");
            assert_eq!(ps.len(), len.div_ceil(MAX_PIECE), "{len}");
            assert_eq!(ps.concat(), data, "{len}");
            if len <= MAX_PIECE && len > 0 {
                // Small enough: passed on as it is, no copy.
                assert_eq!(ps[0].as_ptr(), chunk.as_ptr(), "{len}");
            }
        }
    }

    /// A source that hands out the whole blob as one 5 MiB chunk (far beyond hyper's
    /// read buffer) still puts only bounded pieces into the channel.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_huge_chunk_enters_the_channel_in_bounded_pieces() {
        let data: Vec<u8> = (0..5 * 1024 * 1024).map(|i: usize| (i % 253) as u8).collect();
        let digest = sha(&data);
        let root = tempfile::tempdir().unwrap();
        let ingest = root.path().join("ingest");
        let (tx, mut rx) = mpsc::channel(PIPE_CHUNKS);
        let reader = tokio::spawn(async move {
            let mut sizes = Vec::new();
            let mut got = Vec::new();
            let mut verified = false;
            while let Some(m) = rx.recv().await {
                match m {
                    Msg::Data(b) => {
                        sizes.push(b.len());
                        got.extend_from_slice(&b);
                    }
                    Msg::Verified(_) => verified = true,
                }
            }
            (sizes, got, verified)
        });
        let whole = Bytes::from(data.clone());
        let mut open = move |_offset: u64| {
            let body: Body = futures_util::stream::iter(vec![Ok::<Bytes, String>(whole.clone())]).boxed();
            std::future::ready(Ok::<Opened, OpenError>(Opened::Body(body)))
        };
        let (_ctx, mut crx) = watch::channel(false);
        let mut attempts = Attempts::new(DownloadRetry::default());
        let b = Blob { digest: &digest, total: None, url: "http://x/blob" };
        let r = download(&mut open, &ingest, &b, tx, &mut attempts, &mut crx, &mut |_| {}).await;
        assert!(matches!(r, Ok(true)));
        let (sizes, got, verified) = reader.await.unwrap();
        assert!(verified);
        assert_eq!(got, data);
        assert_eq!(sizes.len(), data.len().div_ceil(MAX_PIECE));
        assert!(sizes.iter().all(|n| *n <= MAX_PIECE), "{sizes:?}");
        assert_eq!(std::fs::read(&ingest).unwrap(), data);
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
