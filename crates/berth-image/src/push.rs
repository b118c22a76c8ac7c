//! `docker push`: the distribution spec's upload side — per layer a blob `HEAD`
//! (`Layer already exists`), a cross-repository mount from a repository of the same
//! registry the image is also known by (`Mounted from …`), else an upload (`POST`
//! then one monolithic `PUT`, or `PATCH` chunks and a closing `PUT` for blobs larger
//! than the chunk size), retried with back-off; then the config blob and the manifest
//! (`PUT /manifests/<tag>`). A pulled image's layers are its kept blobs and its
//! manifest the one it was pulled with, so the registry gets the same digests; made
//! layers (commit, import, load) are gzip-compressed on the way. Progress is Docker's
//! stream: Preparing, Waiting, Pushing [==> ], Pushed, `<tag>: digest: … size: N` and
//! the `aux` record. Uses `registry` for HTTP and `store` for what is pushed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::error::{ErrorKind, StoreError};
use crate::manifest::{Manifest, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_MANIFEST};
use crate::pull::{Credentials, Progress, RegistryConfig};
use crate::reference::Reference;
use crate::registry::{login_endpoints, status_error, Client, RegistryError};
use crate::store::{digest_hex, remove_any, ImageStore, PushLayer};

/// How a push sends blobs.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Blobs larger than this go up in `PATCH` chunks of this size (bounds the memory
    /// one upload holds); smaller ones in one streamed `PUT`.
    pub chunk_size: u64,
    /// Attempts per blob; waits 1 s, 2 s, 4 s … between them (Docker: 5 attempts).
    pub attempts: u32,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { chunk_size: 16 * 1024 * 1024, attempts: 4 }
    }
}

/// One item of the push stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushEvent {
    Line(Progress),
    /// `{"Tag":…,"Digest":…,"Size":…}` after the digest line.
    Aux { tag: String, digest: String, size: u64 },
}

/// Failures of `push`, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// `An image does not exist locally with the tag: localhost:5000/x`
    #[error("An image does not exist locally with the tag: {0}")]
    NoSuchTag(String),
    #[error("{0}")]
    Registry(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl PushError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PushError::NoSuchTag(_) => ErrorKind::NotFound,
            PushError::Registry(_) => ErrorKind::Unavailable,
            PushError::Unauthorized(_) => ErrorKind::Unauthorized,
            PushError::Store(e) => e.kind(),
            PushError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// Docker's rendering of a refused push (`denied: requested access to the resource is
/// denied`, `unauthorized: authentication required`) or the registry's own error.
fn registry_failure(e: RegistryError) -> PushError {
    match &e {
        RegistryError::Unauthorized(m) => PushError::Unauthorized(m.clone()),
        RegistryError::Status { status, errors, .. } if errors.is_empty() && *status == StatusCode::UNAUTHORIZED => {
            PushError::Unauthorized("unauthorized: authentication required".into())
        }
        RegistryError::Status { status, .. } if *status == StatusCode::FORBIDDEN => {
            PushError::Registry("denied: requested access to the resource is denied".into())
        }
        _ => PushError::Registry(e.detail()),
    }
}

/// How many layers upload at once (Docker's default is 5).
const CONCURRENT_UPLOADS: usize = 3;
const PROGRESS_STEP: u64 = 512 * 1024;

struct Reporter<'a> {
    sink: Mutex<&'a mut (dyn FnMut(PushEvent) + Send)>,
}

impl Reporter<'_> {
    fn line(&self, id: Option<&str>, status: impl Into<String>, current: Option<u64>, total: Option<u64>) {
        let p = Progress { id: id.map(str::to_string), status: status.into(), current, total };
        if let Ok(mut f) = self.sink.lock() {
            (f)(PushEvent::Line(p));
        }
    }
}

fn short(d: &str) -> String {
    digest_hex(d).chars().take(12).collect()
}

/// A blob ready to go: where its bytes are, its digest, size and media type. A
/// temporary (gzip of a made layer) is deleted on drop.
struct Prepared {
    path: PathBuf,
    digest: String,
    size: u64,
    temp: bool,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if self.temp {
            let _ = remove_any(&self.path);
        }
    }
}

/// Hashes a pulled (compressed) blob, or gzips a made layer's plain tar into
/// `ingest/` while hashing the result. Blocking.
fn prepare(store: &ImageStore, layer: &PushLayer) -> Result<Prepared, StoreError> {
    let mut f = std::fs::File::open(&layer.blob).map_err(|e| StoreError::io("open", &layer.blob, e))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(|e| StoreError::io("read", &layer.blob, e))?;
    // A pulled blob (gzip or zstd) goes up as it is; a plain tar is gzip'ed.
    let compressed = n >= 2 && !matches!(crate::unpack::detect_compression(&head[..n]), crate::unpack::Compression::None);
    drop(f);
    if compressed {
        let (digest, size) = hash_file(&layer.blob)?;
        return Ok(Prepared { path: layer.blob.clone(), digest, size, temp: false });
    }
    let out = store.ingest_path();
    let res = (|| -> Result<(String, u64), StoreError> {
        let src = std::fs::File::open(&layer.blob).map_err(|e| StoreError::io("open", &layer.blob, e))?;
        let dst = std::fs::File::create(&out).map_err(|e| StoreError::io("create", &out, e))?;
        let mut hw = HashWriter { inner: std::io::BufWriter::new(dst), hasher: Sha256::new(), n: 0 };
        {
            let mut gz = flate2::write::GzEncoder::new(&mut hw, flate2::Compression::fast());
            std::io::copy(&mut std::io::BufReader::new(src), &mut gz).map_err(|e| StoreError::io("compress", &layer.blob, e))?;
            gz.finish().map_err(|e| StoreError::io("compress", &out, e))?;
        }
        hw.inner.flush().map_err(|e| StoreError::io("write", &out, e))?;
        Ok((format!("sha256:{}", hex::encode(hw.hasher.finalize())), hw.n))
    })();
    match res {
        Ok((digest, size)) => Ok(Prepared { path: out, digest, size, temp: true }),
        Err(e) => {
            let _ = remove_any(&out);
            Err(e)
        }
    }
}

struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hasher.update(&b[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hash_file(p: &Path) -> Result<(String, u64), StoreError> {
    let mut f = std::fs::File::open(p).map_err(|e| StoreError::io("open", p, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| StoreError::io("read", p, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), n))
}

/// Pushes the image `reference` (with a tag) names to its registry. Returns the
/// manifest digest and size; the store gains the `repo@digest` reference.
pub async fn push(
    store: &ImageStore,
    reference: &Reference,
    cfg: &RegistryConfig,
    creds: Option<&Credentials>,
    opts: &PushOptions,
    progress: &mut (dyn FnMut(PushEvent) + Send),
) -> Result<(String, u64), PushError> {
    let reference = reference.clone().with_default_tag();
    let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
    let rep = Reporter { sink: Mutex::new(progress) };
    rep.line(None, format!("The push refers to repository [{}]", reference.full_name()), None, None);
    let image = store.resolve(&reference.familiar()).map_err(|e| match e {
        StoreError::NoSuchImage(_) => PushError::NoSuchTag(reference.familiar_name()),
        other => PushError::Store(other),
    })?;
    let store2 = store.clone();
    let id = image.id.clone();
    let src = tokio::task::spawn_blocking(move || store2.push_source(&id))
        .await
        .map_err(|e| PushError::Internal(e.to_string()))??;

    // Repositories of the same registry this image is known by: mount candidates.
    let mut mount_from: Vec<String> = Vec::new();
    for r in image.repo_tags.iter().chain(&image.repo_digests) {
        if let Ok(p) = Reference::parse(r) {
            if p.domain == reference.domain && p.path != reference.path && !mount_from.contains(&p.path) {
                mount_from.push(p.path.clone());
            }
        }
    }
    let client = connect(&reference, cfg, creds, &mount_from).await?;

    // Layers, top first as Docker lists them; one upload per distinct diff id.
    let mut order: Vec<&PushLayer> = Vec::new();
    for l in src.layers.iter().rev() {
        if !order.iter().any(|o| o.diff_id == l.diff_id) {
            order.push(l);
        }
    }
    for l in &order {
        rep.line(Some(&short(&l.diff_id)), "Preparing", None, None);
    }
    for l in order.iter().skip(CONCURRENT_UPLOADS) {
        rep.line(Some(&short(&l.diff_id)), "Waiting", None, None);
    }
    let jobs: Vec<_> = order.iter().map(|l| prepare_and_push(store, &client, &rep, (*l).clone(), &mount_from, opts)).collect();
    let results: Vec<Result<(String, Prepared), PushError>> =
        stream::iter(jobs).buffer_unordered(CONCURRENT_UPLOADS).collect().await;
    let mut blobs: BTreeMap<String, Prepared> = BTreeMap::new();
    for r in results {
        let (d, p) = r?;
        blobs.insert(d, p);
    }
    let mut layer_descs: Vec<(String, u64)> = Vec::new();
    for l in &src.layers {
        let p = blobs.get(&l.diff_id).ok_or_else(|| PushError::Internal(format!("layer {} was not pushed", l.diff_id)))?;
        layer_descs.push((p.digest.clone(), p.size));
    }

    // The config, then the manifest: the one the image was pulled with when it
    // describes exactly these blobs, else a new schema2 manifest.
    push_bytes(&client, &src.id, &src.config, opts).await?;
    let (body, media_type) = reuse_manifest(&src.id, &src.manifests, &layer_descs)
        .unwrap_or_else(|| (schema2_manifest(&src.id, src.config.len() as u64, &layer_descs), MEDIA_DOCKER_MANIFEST.to_string()));
    let url = client.url(&format!("manifests/{tag}"));
    // A bodiless request first so that a 401 is answered before the body is sent.
    let probe = client.request(Method::HEAD, &url, &[]).await.map_err(registry_failure)?;
    drop(probe);
    let resp = client
        .request_body(Method::PUT, &url, &[("Content-Type", &media_type)], reqwest::Body::from(body.clone()))
        .await
        .map_err(registry_failure)?;
    if !resp.status().is_success() {
        return Err(registry_failure(status_error(&url, resp).await));
    }
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    let size = body.len() as u64;
    rep.line(None, format!("{tag}: digest: {digest} size: {size}"), None, None);
    if let Ok(mut f) = rep.sink.lock() {
        (f)(PushEvent::Aux { tag: tag.clone(), digest: digest.clone(), size });
    }
    let digest_ref = Reference { digest: Some(digest.clone()), tag: None, ..reference.name_only() };
    store.tag(&image.id, &digest_ref)?;
    Ok((digest, size))
}

/// The registry's endpoint for a push (never a mirror): https, or for an insecure
/// registry https without verification then http, the first that answers `/v2/`.
async fn connect(
    reference: &Reference,
    cfg: &RegistryConfig,
    creds: Option<&Credentials>,
    mount_from: &[String],
) -> Result<Client, PushError> {
    let mut last = None;
    for ep in login_endpoints(&reference.domain, cfg) {
        let client = Client::new(&ep, &reference.path, creds).map_err(registry_failure)?.for_push(mount_from);
        match client.ping().await {
            Ok(_) => return Ok(client),
            Err(RegistryError::Transport(m)) => last = Some(PushError::Registry(m)),
            Err(e) => return Err(registry_failure(e)),
        }
    }
    Err(last.unwrap_or_else(|| PushError::Internal("no registry endpoint".into())))
}

/// The pulled manifest for `id` if its layers are exactly `layers` (digest, size).
fn reuse_manifest(id: &str, manifests: &[(String, Vec<u8>)], layers: &[(String, u64)]) -> Option<(Vec<u8>, String)> {
    for (_, body) in manifests {
        let Ok(Manifest::Image(m)) = Manifest::parse(None, body) else { continue };
        if m.config.digest != id || m.layers.len() != layers.len() {
            continue;
        }
        if m.layers.iter().zip(layers).all(|(d, (dg, sz))| d.digest == *dg && d.size == *sz) {
            let oci = m.media_type.as_deref() == Some(MEDIA_OCI_MANIFEST)
                || (m.media_type.is_none() && m.config.media_type.starts_with("application/vnd.oci."));
            let mt = if oci { MEDIA_OCI_MANIFEST } else { MEDIA_DOCKER_MANIFEST };
            return Some((body.clone(), mt.to_string()));
        }
    }
    None
}

/// A schema2 manifest as Docker writes it: its key order, three-space indentation.
fn schema2_manifest(config: &str, config_size: u64, layers: &[(String, u64)]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Desc<'a> {
        #[serde(rename = "mediaType")]
        media_type: &'a str,
        size: u64,
        digest: &'a str,
    }
    #[derive(serde::Serialize)]
    struct M<'a> {
        #[serde(rename = "schemaVersion")]
        schema_version: u32,
        #[serde(rename = "mediaType")]
        media_type: &'a str,
        config: Desc<'a>,
        layers: Vec<Desc<'a>>,
    }
    let m = M {
        schema_version: 2,
        media_type: MEDIA_DOCKER_MANIFEST,
        config: Desc { media_type: "application/vnd.docker.container.image.v1+json", size: config_size, digest: config },
        layers: layers
            .iter()
            .map(|(d, s)| Desc { media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: *s, digest: d })
            .collect(),
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = serde::Serialize::serialize(&m, &mut ser);
    out
}

async fn prepare_and_push(
    store: &ImageStore,
    client: &Client,
    rep: &Reporter<'_>,
    layer: PushLayer,
    mount_from: &[String],
    opts: &PushOptions,
) -> Result<(String, Prepared), PushError> {
    let store = store.clone();
    let diff_id = layer.diff_id.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&store, &layer))
        .await
        .map_err(|e| PushError::Internal(e.to_string()))??;
    push_layer(client, rep, &diff_id, &prepared, mount_from, opts).await?;
    Ok((diff_id, prepared))
}

/// HEAD, mount, or upload (with retries) one layer, with its progress lines.
async fn push_layer(
    client: &Client,
    rep: &Reporter<'_>,
    diff_id: &str,
    p: &Prepared,
    mount_from: &[String],
    opts: &PushOptions,
) -> Result<(), PushError> {
    let id = short(diff_id);
    if blob_exists(client, &p.digest).await.map_err(registry_failure)? {
        rep.line(Some(&id), "Layer already exists", None, None);
        return Ok(());
    }
    for from in mount_from {
        let url = client.url(&format!("blobs/uploads/?mount={}&from={from}", p.digest));
        let resp = client.request(Method::POST, &url, &[]).await.map_err(registry_failure)?;
        if resp.status() == StatusCode::CREATED {
            rep.line(Some(&id), format!("Mounted from {from}"), None, None);
            return Ok(());
        }
        // 202: the registry opened an upload instead; leave it, ours starts below.
    }
    let mut attempt = 0;
    loop {
        match upload(client, rep, &id, p, opts).await {
            Ok(()) => break,
            Err(e) => {
                attempt += 1;
                let retriable = match &e {
                    RegistryError::Transport(_) => true,
                    RegistryError::Status { status, .. } => status.is_server_error(),
                    RegistryError::Unauthorized(_) => false,
                };
                if !retriable || attempt >= opts.attempts {
                    return Err(registry_failure(e));
                }
                let secs = 1u64 << (attempt - 1).min(5);
                tracing::info!(layer = %id, error = %e.detail(), "blob upload failed, retrying in {secs}s");
                for left in (1..=secs).rev() {
                    let unit = if left == 1 { "second" } else { "seconds" };
                    rep.line(Some(&id), format!("Retrying in {left} {unit}"), None, None);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    rep.line(Some(&id), "Pushed", None, None);
    Ok(())
}

async fn blob_exists(client: &Client, digest: &str) -> Result<bool, RegistryError> {
    let url = client.url(&format!("blobs/{digest}"));
    let resp = client.request(Method::HEAD, &url, &[]).await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(status_error(&url, resp).await),
    }
}

/// `POST` an upload session; its absolute `Location`.
async fn start_upload(client: &Client) -> Result<String, RegistryError> {
    let url = client.url("blobs/uploads/");
    let resp = client.request(Method::POST, &url, &[]).await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(status_error(&url, resp).await);
    }
    location(client, &url, &resp)
}

fn location(client: &Client, url: &str, resp: &reqwest::Response) -> Result<String, RegistryError> {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Transport(format!("{url}: upload answer without a Location")))?;
    Ok(if loc.starts_with('/') { format!("{}{loc}", client.base()) } else { loc.to_string() })
}

fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={}", digest.replace(':', "%3A"))
}

/// One upload attempt of a blob file: a streamed `PUT` when it fits in a chunk, else
/// `PATCH` chunks (each read into memory, at most `chunk_size`) and a closing `PUT`.
async fn upload(client: &Client, rep: &Reporter<'_>, id: &str, p: &Prepared, opts: &PushOptions) -> Result<(), RegistryError> {
    let loc = start_upload(client).await?;
    let total = p.size;
    rep.line(Some(id), "Pushing", Some(0), Some(total));
    let io = |e: std::io::Error| RegistryError::Transport(format!("reading {}: {e}", p.path.display()));
    if total <= opts.chunk_size {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let file = tokio::fs::File::open(&p.path).await.map_err(io)?;
        let body_stream = stream::unfold((file, 0u64, 0u64, tx), |(mut f, sent, last, tx)| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 64 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    let last = if sent - last >= PROGRESS_STEP {
                        let _ = tx.send(sent);
                        sent
                    } else {
                        last
                    };
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), (f, sent, last, tx)))
                }
                Err(e) => Some((Err(e), (f, sent, last, tx))),
            }
        });
        let url = with_digest(&loc, &p.digest);
        let len = total.to_string();
        let headers = [("Content-Type", "application/octet-stream"), ("Content-Length", len.as_str())];
        let send = client.request_body(Method::PUT, &url, &headers, reqwest::Body::wrap_stream(body_stream));
        tokio::pin!(send);
        let resp = loop {
            tokio::select! {
                r = &mut send => break r?,
                Some(n) = rx.recv() => rep.line(Some(id), "Pushing", Some(n), Some(total)),
            }
        };
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(&url, resp).await);
        }
        rep.line(Some(id), "Pushing", Some(total), Some(total));
        return Ok(());
    }
    let mut file = std::fs::File::open(&p.path).map_err(io)?;
    let mut loc = loc;
    let mut offset = 0u64;
    while offset < total {
        let want = opts.chunk_size.min(total - offset) as usize;
        let mut chunk = vec![0u8; want];
        file.read_exact(&mut chunk).map_err(io)?;
        let range = format!("{}-{}", offset, offset + want as u64 - 1);
        let len = want.to_string();
        let resp = client
            .request_body(
                Method::PATCH,
                &loc,
                &[("Content-Type", "application/octet-stream"), ("Content-Range", &range), ("Content-Length", &len)],
                reqwest::Body::from(chunk),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(&loc, resp).await);
        }
        loc = location(client, &loc, &resp)?;
        offset += want as u64;
        rep.line(Some(id), "Pushing", Some(offset), Some(total));
    }
    let url = with_digest(&loc, &p.digest);
    let resp = client.request_body(Method::PUT, &url, &[("Content-Length", "0")], reqwest::Body::from(Vec::new())).await?;
    if resp.status() != StatusCode::CREATED {
        return Err(status_error(&url, resp).await);
    }
    Ok(())
}

/// A small blob (the config) held in memory: HEAD, else one monolithic upload.
async fn push_bytes(client: &Client, digest: &str, data: &[u8], opts: &PushOptions) -> Result<(), PushError> {
    let mut attempt = 0;
    loop {
        let r = async {
            if blob_exists(client, digest).await? {
                return Ok(());
            }
            let loc = start_upload(client).await?;
            let url = with_digest(&loc, digest);
            let resp = client
                .request_body(Method::PUT, &url, &[("Content-Type", "application/octet-stream")], reqwest::Body::from(data.to_vec()))
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(status_error(&url, resp).await);
            }
            Ok(())
        }
        .await;
        match r {
            Ok(()) => return Ok(()),
            Err(e) => {
                attempt += 1;
                let retriable = matches!(e, RegistryError::Transport(_))
                    || matches!(&e, RegistryError::Status { status, .. } if status.is_server_error());
                if !retriable || attempt >= opts.attempts {
                    return Err(registry_failure(e));
                }
                tokio::time::sleep(Duration::from_secs(1u64 << (attempt - 1).min(5))).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_reused_only_when_they_describe_the_blobs() {
        let layers = vec![("sha256:aa".to_string(), 10u64), ("sha256:bb".to_string(), 20u64)];
        let built = schema2_manifest("sha256:cc", 5, &layers);
        let text = String::from_utf8(built.clone()).unwrap();
        assert!(text.starts_with("{\n   \"schemaVersion\": 2,"), "{text}");
        let m = vec![("sha256:x".to_string(), built.clone())];
        assert_eq!(reuse_manifest("sha256:cc", &m, &layers), Some((built.clone(), MEDIA_DOCKER_MANIFEST.to_string())));
        assert_eq!(reuse_manifest("sha256:other", &m, &layers), None);
        assert_eq!(reuse_manifest("sha256:cc", &m, &layers[..1]), None);
        let moved = vec![("sha256:aa".to_string(), 10u64), ("sha256:bb".to_string(), 21u64)];
        assert_eq!(reuse_manifest("sha256:cc", &m, &moved), None);
        // An OCI manifest without a mediaType field is recognised by its config.
        let oci = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:cc", "size": 5},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:aa", "size": 10}],
        }))
        .unwrap();
        let got = reuse_manifest("sha256:cc", &[("d".into(), oci.clone())], &layers[..1]);
        assert_eq!(got, Some((oci, MEDIA_OCI_MANIFEST.to_string())));
    }

    #[test]
    fn upload_urls() {
        assert_eq!(with_digest("http://h/v2/x/blobs/uploads/u1", "sha256:ab"), "http://h/v2/x/blobs/uploads/u1?digest=sha256%3Aab");
        assert_eq!(
            with_digest("http://h/v2/x/blobs/uploads/u1?_state=s", "sha256:ab"),
            "http://h/v2/x/blobs/uploads/u1?_state=s&digest=sha256%3Aab"
        );
    }
}
