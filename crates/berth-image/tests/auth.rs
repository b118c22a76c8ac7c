//! Registry authentication and manifest lists against a small in-process mock registry
//! on 127.0.0.1 (raw HTTP/1.1 over tokio): Bearer token flow (anonymous and with basic
//! credentials), Basic auth, and platform selection from an OCI index.
//!
//! A test double on purpose: Debian's docker-registry has no token server and Docker
//! Hub's auth service cannot be reached from here, so the challenge/token exchange is
//! served by this mock. Everything else is tested against the real registry
//! (tests/registry.rs).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use berth_image::{pull, Credentials, ErrorKind, ImageStore, Progress, Reference, RegistryConfig};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    Bearer,
    BearerNeedsLogin,
    Basic,
}

struct Blob {
    content_type: &'static str,
    body: Vec<u8>,
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// An index with an arm64 and an amd64 image, one gzip layer each.
fn content(path: &str) -> (HashMap<String, Blob>, String) {
    let mut blobs = HashMap::new();
    let mut entries = Vec::new();
    for arch in ["arm64", "amd64"] {
        let mut b = tar::Builder::new(Vec::new());
        let data = format!("I am {arch}\n");
        let mut h = tar::Header::new_gnu();
        h.set_path("arch").unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux", "created": "2024-05-06T07:08:09Z",
            "config": {"Cmd": ["/arch"]},
            "rootfs": {"type": "layers", "diff_ids": [digest(&tar)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&gz), "size": gz.len()}],
        }))
        .unwrap();
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
        blobs.insert(format!("/v2/{path}/blobs/{}", digest(&gz)), Blob { content_type: "application/octet-stream", body: gz });
        blobs.insert(format!("/v2/{path}/blobs/{}", digest(&config)), Blob { content_type: "application/json", body: config });
        blobs.insert(format!("/v2/{path}/manifests/{}", digest(&manifest)), Blob { content_type: "application/vnd.oci.image.manifest.v1+json", body: manifest });
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries,
    }))
    .unwrap();
    let index_digest = digest(&index);
    blobs.insert(format!("/v2/{path}/manifests/latest"), Blob { content_type: "application/vnd.oci.image.index.v1+json", body: index });
    (blobs, index_digest)
}

/// Serves `content` behind `auth`; returns the port and the request log.
async fn mock(auth: Auth, path: &str) -> (u16, String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (blobs, index_digest) = content(path);
    let blobs = Arc::new(blobs);
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:s3cret"));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let blobs = blobs.clone();
            let log = log2.clone();
            let basic = basic.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    // A TLS ClientHello (the https probe of an insecure registry):
                    // a plain HTTP server drops it at once.
                    if buf[0] == 0x16 {
                        return;
                    }
                }
                let req = String::from_utf8_lossy(&buf).to_string();
                let mut lines = req.lines();
                let target = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_string();
                let headers: HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let authz = headers.get("authorization").cloned().unwrap_or_default();
                log.lock().unwrap().push(format!("{target} [{authz}]"));
                let (status, ctype, body, extra): (&str, &str, Vec<u8>, String) = if target.starts_with("/token") {
                    if auth == Auth::BearerNeedsLogin && authz != basic {
                        ("401 Unauthorized", "application/json", b"{}".to_vec(), String::new())
                    } else {
                        ("200 OK", "application/json", br#"{"access_token":"T0K"}"#.to_vec(), String::new())
                    }
                } else {
                    let ok = match auth {
                        Auth::Bearer | Auth::BearerNeedsLogin => authz == "Bearer T0K",
                        Auth::Basic => authz == basic,
                    };
                    if !ok {
                        let challenge = match auth {
                            Auth::Basic => "Basic realm=\"mock\"".to_string(),
                            _ => format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"mock\",scope=\"repository:x:pull\""),
                        };
                        (
                            "401 Unauthorized",
                            "application/json",
                            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
                            format!("WWW-Authenticate: {challenge}\r\n"),
                        )
                    } else if let Some(b) = blobs.get(&target) {
                        ("200 OK", b.content_type, b.body.clone(), String::new())
                    } else {
                        ("404 Not Found", "application/json", br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.to_vec(), String::new())
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, index_digest, log)
}

async fn do_pull(store: &ImageStore, r: &str, creds: Option<&Credentials>) -> (Result<berth_image::Image, berth_image::PullError>, Vec<Progress>) {
    let mut ev = Vec::new();
    let mut cb = |p: Progress| ev.push(p);
    let res = pull(store, &Reference::parse(r).unwrap(), &RegistryConfig::default(), creds, &mut cb).await;
    (res, ev)
}

fn amd64_checks(store: &ImageStore, img: &berth_image::Image) {
    assert_eq!(img.config.architecture, "amd64");
    let dirs = store.layer_dirs(img).unwrap();
    assert_eq!(std::fs::read_to_string(dirs[0].join("arch")).unwrap(), "I am amd64\n");
}

#[tokio::test]
async fn bearer_token_anonymous_and_index() {
    let (port, index_digest, log) = mock(Auth::Bearer, "x").await;
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let (img, ev) = do_pull(&store, &format!("127.0.0.1:{port}/x"), None).await;
    let img = img.unwrap();
    amd64_checks(&store, &img);
    // The repo digest and the Digest line are the index's digest, as in Docker.
    assert_eq!(img.repo_digests, vec![format!("127.0.0.1:{port}/x@{index_digest}")]);
    assert!(ev.iter().any(|p| p.status == format!("Digest: {index_digest}")));
    let log = log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.starts_with("/token?service=mock&scope=repository%3Ax%3Apull [")), "{log:#?}");
    assert!(log.iter().any(|l| l.ends_with("[Bearer T0K]")), "{log:#?}");
}

#[tokio::test]
async fn bearer_token_with_credentials() {
    let (port, _, log) = mock(Auth::BearerNeedsLogin, "x").await;
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let (e, ev) = do_pull(&store, &format!("127.0.0.1:{port}/x"), None).await;
    let e = e.unwrap_err();
    assert!(ev.is_empty());
    assert!(matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Unavailable), "{e}");
    assert!(e.to_string().starts_with(&format!("pull access denied for 127.0.0.1:{port}/x, repository does not exist or may require 'docker login'")), "{e}");
    let creds = Credentials { username: "alice".into(), password: "s3cret".into(), ..Default::default() };
    let (img, _) = do_pull(&store, &format!("127.0.0.1:{port}/x"), Some(&creds)).await;
    amd64_checks(&store, &img.unwrap());
    assert!(log.lock().unwrap().iter().any(|l| l.starts_with("/token") && l.contains("[Basic ")));
}

#[tokio::test]
async fn basic_auth() {
    let (port, _, _) = mock(Auth::Basic, "x").await;
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let (e, _) = do_pull(&store, &format!("127.0.0.1:{port}/x"), None).await;
    assert!(e.unwrap_err().to_string().contains("pull access denied"));
    let creds = Credentials { username: "alice".into(), password: "s3cret".into(), ..Default::default() };
    let (img, _) = do_pull(&store, &format!("127.0.0.1:{port}/x"), Some(&creds)).await;
    amd64_checks(&store, &img.unwrap());
}
