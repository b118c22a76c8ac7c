//! `docker pull`: resolve the manifest (following a manifest list to the host
//! platform), fetch the config, stream the missing layers (up to 3 at once, each
//! downloaded, verified and unpacked as its bytes arrive, a cut download resumed with a
//! range request: `pipeline`), record the image and point the reference at it —
//! reporting progress exactly as Docker's `/images/create` stream. Uses `registry` for HTTP and `store` for everything on disk.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use sha2::{Digest as _, Sha256};

use crate::error::PullError;
use crate::manifest::{select_platform, Descriptor, ImageConfig, Manifest, Platform};
use crate::reference::Reference;
use crate::registry::{endpoints, Client, RegistryError};
use crate::store::{chain_id, digest_hex, Image, ImageRecord, ImageStore};
use crate::pipeline::{stream_layer, Blob, Event, OpenError, Opened};

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// Docker Hub mirrors, tried in order before registry-1.docker.io
    /// (`http://127.0.0.1:5000`; without a scheme https is assumed).
    pub mirrors: Vec<String>,
    /// Registries reached over plain http: `host:port`, `host`, or a CIDR such as
    /// `127.0.0.0/8`. Loopback hosts are always insecure.
    pub insecure: Vec<String>,
    /// Directories holding `<host:port>/{ca.crt,client.cert,client.key}` for secure
    /// registries and https mirrors (`/etc/docker/certs.d`, Berth's own), all read.
    pub certs_dirs: Vec<PathBuf>,
    /// How often a layer download is tried before the pull fails.
    pub download_retry: DownloadRetry,
}

/// Docker's layer download retries (`dockerd --max-download-attempts`): at most
/// `attempts` requests for one layer's blob (the first, each resume from where a
/// broken transfer stopped, each start-over); after the n-th failure a wait of 5·n
/// seconds, shown as one `Retrying in N seconds` line per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadRetry {
    /// Docker's default is 5; 1 never retries.
    pub attempts: u32,
    /// One second of the countdown (tests shorten it).
    pub tick: Duration,
}

impl Default for DownloadRetry {
    fn default() -> Self {
        DownloadRetry { attempts: 5, tick: Duration::from_secs(1) }
    }
}

/// Credentials for registries that ask for them (Basic, or Basic to a token realm).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// A refresh token from an earlier login (OAuth2 `refresh_token` grant).
    pub identity_token: Option<String>,
    /// A bearer token sent as is.
    pub registry_token: Option<String>,
}

/// One line of Docker's pull progress stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub id: Option<String>,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// How many blobs download at once (Docker's default is 3).
const CONCURRENT_DOWNLOADS: usize = 3;

struct Reporter<'a> {
    sink: Mutex<&'a mut (dyn FnMut(Progress) + Send)>,
}

impl Reporter<'_> {
    fn emit(&self, id: Option<&str>, status: impl Into<String>, current: Option<u64>, total: Option<u64>) {
        let p = Progress { id: id.map(str::to_string), status: status.into(), current, total };
        if let Ok(mut f) = self.sink.lock() {
            (f)(p);
        }
    }

    fn layer(&self, id: &str, status: &str) {
        self.emit(Some(id), status, None, None);
    }
}

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn short_id(digest: &str) -> String {
    digest_hex(digest).chars().take(12).collect()
}

/// What a pull is for besides its reference.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// `--platform` / `?platform=`: the manifest chosen out of an index, and what a
    /// single-platform image must be; `None` is the host's.
    pub platform: Option<Platform>,
    /// `pull -a` (a reference without tag or digest and an empty `tag`): every tag.
    pub all_tags: bool,
}

/// Pulls `reference` (tag `latest` if it has neither tag nor digest) into `store`.
pub async fn pull(
    store: &ImageStore,
    reference: &Reference,
    cfg: &RegistryConfig,
    creds: Option<&Credentials>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Image, PullError> {
    pull_with(store, reference, cfg, creds, &PullOptions::default(), progress).await
}

/// [`pull`] with options; with `all_tags` (and a reference without tag or digest)
/// every tag the registry lists, ending in one status line for the repository, as
/// Docker's `pull -a`; the image returned is the last tag's.
pub async fn pull_with(
    store: &ImageStore,
    reference: &Reference,
    cfg: &RegistryConfig,
    creds: Option<&Credentials>,
    opts: &PullOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Image, PullError> {
    let rep = Reporter { sink: Mutex::new(progress) };
    if opts.all_tags && reference.tag.is_none() && reference.digest.is_none() {
        let tags = list_tags(reference, cfg, creds).await?;
        let mut last = None;
        let mut any_new = false;
        for t in tags {
            let r = Reference { tag: Some(t), digest: None, ..reference.clone() };
            let (img, was_current) = pull_one(store, &r, cfg, creds, opts, &rep).await?;
            any_new |= !was_current;
            last = Some(img);
        }
        let name = reference.familiar_name();
        let word = if any_new { "Downloaded newer image for" } else { "Image is up to date for" };
        rep.emit(None, format!("Status: {word} {name}"), None, None);
        return last.ok_or_else(|| PullError::ManifestNotFound {
            reference: name,
            detail: "no tags in the repository".into(),
        });
    }
    let reference = reference.clone().with_default_tag();
    let (image, was_current) = pull_one(store, &reference, cfg, creds, opts, &rep).await?;
    if was_current {
        rep.emit(None, format!("Status: Image is up to date for {}", reference.familiar()), None, None);
    } else {
        rep.emit(None, format!("Status: Downloaded newer image for {}", reference.familiar()), None, None);
    }
    Ok(image)
}

/// The repository's tags (`GET /v2/<name>/tags/list`, following `Link` pages).
async fn list_tags(reference: &Reference, cfg: &RegistryConfig, creds: Option<&Credentials>) -> Result<Vec<String>, PullError> {
    let mut last = None;
    for ep in endpoints(reference, cfg) {
        let client = Client::new(&ep, &reference.path, creds).map_err(|e| registry_error(e, reference))?;
        match client.tags().await {
            Ok(t) => return Ok(t),
            Err(e) => {
                let fall_back = ep.mirror || matches!(e, RegistryError::Transport(_));
                last = Some(registry_error(e, reference));
                if !fall_back {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| PullError::Internal("no registry endpoint".into())))
}

/// One tag or digest: everything but the final `Status:` line. Returns the image and
/// whether it was already what the reference pointed at.
async fn pull_one(
    store: &ImageStore,
    reference: &Reference,
    cfg: &RegistryConfig,
    creds: Option<&Credentials>,
    opts: &PullOptions,
    rep: &Reporter<'_>,
) -> Result<(Image, bool), PullError> {
    let reference = reference.clone();
    let tag_or_digest = reference
        .digest
        .clone()
        .or_else(|| reference.tag.clone())
        .unwrap_or_else(|| "latest".to_string());

    // 1. The manifest, from the first endpoint that serves it.
    let (client, top_body, top_ct) = fetch_first_manifest(&reference, cfg, creds, &tag_or_digest).await?;
    let top_digest = sha256_digest(&top_body);
    if let Some(want) = &reference.digest {
        if *want != top_digest {
            return Err(PullError::DigestMismatch {
                what: "manifest".into(),
                expected: want.clone(),
                actual: top_digest,
            });
        }
    }
    let mut manifest_blobs = vec![(top_digest.clone(), top_body.clone())];
    let manifest = match Manifest::parse(top_ct.as_deref(), &top_body).map_err(PullError::Unsupported)? {
        Manifest::Image(m) => m,
        Manifest::Index(idx) => {
            let want = opts.platform.clone().unwrap_or_else(Platform::host);
            let desc = select_platform(&idx, &want)
                .ok_or_else(|| PullError::NoMatchingPlatform { platform: want.to_string() })?
                .clone();
            let (body, ct) = client
                .manifest(&desc.digest)
                .await
                .map_err(|e| registry_error(e, &reference))?;
            let got = sha256_digest(&body);
            if got != desc.digest {
                return Err(PullError::DigestMismatch {
                    what: "manifest".into(),
                    expected: desc.digest.clone(),
                    actual: got,
                });
            }
            let m = match Manifest::parse(ct.as_deref(), &body).map_err(PullError::Unsupported)? {
                Manifest::Image(m) => m,
                Manifest::Index(_) => {
                    return Err(PullError::Unsupported("nested manifest lists are not supported".into()))
                }
            };
            manifest_blobs.push((desc.digest.clone(), body));
            m
        }
    };

    rep.emit(Some(&tag_or_digest), format!("Pulling from {}", reference.path), None, None);

    // 2. The config: it names the image (its digest) and the diff ids.
    let config_digest = manifest.config.digest.clone();
    let config_bytes = fetch_small_blob(&client, &config_digest, &reference).await?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| PullError::Registry(format!("invalid image config {config_digest}: {e}")))?;
    if let Some(want) = &opts.platform {
        // A single-platform image must be the one asked for (Docker checks the config).
        let actual = Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
        };
        let variant_ok = want.variant.is_none() || actual.variant.is_none() || want.variant == actual.variant;
        if actual.os != want.os || actual.architecture != want.architecture || !variant_ok {
            return Err(PullError::PlatformMismatch {
                reference: reference.familiar(),
                wanted: want.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    let diff_ids = config.rootfs.diff_ids.clone();
    if diff_ids.len() != manifest.layers.len() {
        return Err(PullError::Registry(format!(
            "image config {config_digest} lists {} layers but the manifest has {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let chains = chain_id(&diff_ids);
    let pins = store.pin(&chains);

    // 3. Layers, unless the image is already here. Layers stream and commit one by
    // one, so a pull that fails takes back the ones it committed and nothing uses.
    if !store.has_image(&config_digest) {
        let missing: Vec<String> = chains.iter().filter(|c| !store.has_layer(c)).cloned().collect();
        let layers = (manifest.layers.as_slice(), diff_ids.as_slice(), chains.as_slice());
        if let Err(e) = pull_layers(store, &client, rep, layers, &reference, cfg.download_retry).await {
            drop(pins);
            store.drop_unused_layers(&missing);
            return Err(e);
        }
    }

    // 4. Record the image and move the reference.
    for (d, body) in &manifest_blobs {
        store.write_blob(d, body)?;
    }
    store.write_blob(&config_digest, &config_bytes)?;
    let record = ImageRecord {
        id: config_digest.clone(),
        layers: diff_ids,
        chain_ids: chains,
        manifest_digest: Some(top_digest.clone()),
        blobs: manifest_blobs.iter().map(|(d, _)| d.clone()).collect(),
        parent: None,
    };
    let mut refs = vec![reference.clone()];
    let digest_ref = Reference { digest: Some(top_digest.clone()), tag: None, ..reference.name_only() };
    if digest_ref != reference {
        refs.push(digest_ref);
    }
    let (image, was_current) = store.commit_image(record, &refs)?;
    rep.emit(None, format!("Digest: {top_digest}"), None, None);
    Ok((image, was_current))
}

pub(crate) async fn fetch_first_manifest(
    reference: &Reference,
    cfg: &RegistryConfig,
    creds: Option<&Credentials>,
    tag_or_digest: &str,
) -> Result<(Client, Vec<u8>, Option<String>), PullError> {
    let eps = endpoints(reference, cfg);
    let mut last: Option<PullError> = None;
    for ep in &eps {
        let client = match Client::new(ep, &reference.path, creds) {
            Ok(c) => c,
            Err(e) => {
                last = Some(registry_error(e, reference));
                continue;
            }
        };
        match client.manifest(tag_or_digest).await {
            Ok((body, ct)) => return Ok((client, body, ct)),
            Err(e) => {
                if ep.mirror {
                    tracing::info!(mirror = %ep.base, error = %e.detail(), "mirror failed, trying the next endpoint");
                }
                // Past a mirror every failure falls back; otherwise only a registry
                // that could not be talked to (an insecure one's https, then http).
                let fall_back = ep.mirror || matches!(e, RegistryError::Transport(_));
                last = Some(registry_error(e, reference));
                if !fall_back {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| PullError::Internal("no registry endpoint".into())))
}

/// Maps a registry failure to Docker's wording (distribution/errors.go).
pub(crate) fn registry_error(e: RegistryError, reference: &Reference) -> PullError {
    let status = e.status();
    if e.has_code("MANIFEST_UNKNOWN") || (status == Some(reqwest::StatusCode::NOT_FOUND) && !e.has_code("NAME_UNKNOWN")) {
        let detail = if e.has_code("MANIFEST_UNKNOWN") { e.detail() } else { "manifest unknown: manifest unknown".into() };
        return PullError::ManifestNotFound { reference: reference.familiar(), detail };
    }
    if e.has_code("NAME_UNKNOWN") {
        return PullError::ManifestNotFound {
            reference: reference.familiar(),
            detail: e.detail(),
        };
    }
    if e.has_code("DENIED")
        || e.has_code("UNAUTHORIZED")
        || matches!(status, Some(reqwest::StatusCode::UNAUTHORIZED) | Some(reqwest::StatusCode::FORBIDDEN))
    {
        return PullError::AccessDenied {
            name: reference.familiar_name(),
            detail: "denied: requested access to the resource is denied".into(),
        };
    }
    match e {
        RegistryError::Transport(s) => PullError::Unreachable(s),
        RegistryError::Unauthorized(s) => PullError::Registry(s),
        other => PullError::Registry(other.detail()),
    }
}

pub(crate) async fn fetch_small_blob(client: &Client, digest: &str, reference: &Reference) -> Result<Vec<u8>, PullError> {
    let (resp, url) = client.blob(digest).await.map_err(|e| registry_error(e, reference))?;
    let body = resp
        .bytes()
        .await
        .map_err(|e| PullError::Unreachable(format!("Get \"{url}\": {e}")))?;
    let got = sha256_digest(&body);
    if got != digest {
        return Err(PullError::DigestMismatch { what: "image config".into(), expected: digest.into(), actual: got });
    }
    Ok(body.to_vec())
}

async fn pull_layers(
    store: &ImageStore,
    client: &Client,
    rep: &Reporter<'_>,
    (layers, diff_ids, chains): (&[Descriptor], &[String], &[String]),
    reference: &Reference,
    retry: DownloadRetry,
) -> Result<(), PullError> {
    // Docker prints every layer's first line up front.
    let mut needed: Vec<usize> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        if store.has_layer(&chains[i]) {
            rep.layer(&short_id(&l.digest), "Already exists");
        } else {
            rep.layer(&short_id(&l.digest), "Pulling fs layer");
            needed.push(i);
        }
    }
    // Docker's "Waiting": a layer queued behind the download slots.
    for &i in needed.iter().skip(CONCURRENT_DOWNLOADS) {
        rep.layer(&short_id(&layers[i].digest), "Waiting");
    }
    // Each layer streams: download → hash → decompress → unpack, at once, into its
    // own temp dir (src/pipeline.rs); up to CONCURRENT_DOWNLOADS layers at a time.
    // When one fails the others are cancelled, and each still waits for its unpacker
    // to remove its temp dir, so the pull answers only once nothing is left behind.
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let mut results = stream::iter(needed)
        .map(|i| {
            let mut cancel = cancel_rx.clone();
            async move {
                if *cancel.borrow() {
                    return Ok(());
                }
                let layer = (&layers[i], diff_ids[i].as_str(), chains[i].as_str());
                pull_layer(store, client, rep, layer, reference, retry, &mut cancel).await
            }
        })
        .buffer_unordered(CONCURRENT_DOWNLOADS);
    let mut first_err = None;
    while let Some(r) = results.next().await {
        if let Err(e) = r {
            if first_err.is_none() {
                let _ = cancel_tx.send(true);
                first_err = Some(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// One layer through the streaming pipeline (resumed or started over while `retry`
/// allows), with its progress lines.
async fn pull_layer(
    store: &ImageStore,
    client: &Client,
    rep: &Reporter<'_>,
    (desc, diff_id, chain): (&Descriptor, &str, &str),
    reference: &Reference,
    retry: DownloadRetry,
    cancel: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), PullError> {
    let id = short_id(&desc.digest);
    if store.has_layer(chain) {
        // A concurrent pull committed it meanwhile.
        rep.layer(&id, "Pull complete");
        return Ok(());
    }
    let url = client.url(&format!("blobs/{}", desc.digest));
    let blob = Blob { digest: &desc.digest, total: (desc.size > 0).then_some(desc.size), url: &url };
    let mut open = |offset: u64| open_blob(client, &desc.digest, offset, reference);
    let mut report = |ev: Event| match ev {
        Event::Downloading(cur, tot) => rep.emit(Some(&id), "Downloading", Some(cur), tot),
        Event::Retrying(secs) => {
            let unit = if secs == 1 { "second" } else { "seconds" };
            rep.layer(&id, &format!("Retrying in {secs} {unit}"));
        }
        Event::VerifyingChecksum => rep.layer(&id, "Verifying Checksum"),
        Event::DownloadComplete => rep.layer(&id, "Download complete"),
        Event::Extracting(cur, tot) => rep.emit(Some(&id), "Extracting", Some(cur), Some(tot)),
    };
    stream_layer(store, &mut open, &blob, (diff_id, chain), retry, cancel, &mut report).await?;
    rep.layer(&id, "Pull complete");
    Ok(())
}

/// One request for a layer blob from byte `offset` on, in the pipeline's terms: a
/// range must be answered 206 from that very byte (Docker's `expected HTTP 206 from
/// byte range request` otherwise); a failure is retried when the registry could not
/// be talked to or answered 5xx, as Docker's `retryOnError`.
async fn open_blob(client: &Client, digest: &str, offset: u64, reference: &Reference) -> Result<Opened, OpenError> {
    let (resp, _url) = client.blob_from(digest, offset).await.map_err(|e| {
        let retry = match &e {
            RegistryError::Transport(_) => true,
            RegistryError::Status { status, .. } => status.is_server_error(),
            RegistryError::Unauthorized(_) => false,
        };
        OpenError { error: registry_error(e, reference), retry }
    })?;
    if offset > 0 {
        if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            return Ok(Opened::NotResumed("expected HTTP 206 from byte range request".into()));
        }
        let start = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_range_start);
        if let Some(start) = start.filter(|s| *s != offset) {
            return Ok(Opened::NotResumed(format!("byte range request from {offset} answered from {start}")));
        }
    }
    Ok(Opened::Body(resp.bytes_stream().map(|r| r.map_err(|e| e.to_string())).boxed()))
}

/// The first byte of a `Content-Range: bytes <first>-<last>/<size>`.
fn content_range_start(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}
