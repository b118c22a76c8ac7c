//! Resuming a cut layer download (docs/storage.md, "Write order"), as Docker does: the
//! pull reaches the fixture registry through [`FlakyProxy`], a TCP proxy written here
//! as a test double for a flaky network. It forwards bytes unchanged, logs each HTTP
//! request it relays (request line and `Range` header), and cuts the connection of a
//! chosen blob's response after N bytes. The image is pulled as
//! `127.0.0.1:<proxy port>/library/busybox` (a loopback registry: plain http).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use berth_e2e::{registry, Daemon};

/// One request the proxy relayed.
#[derive(Clone, Debug)]
struct Req {
    line: String,
    range: Option<String>,
}

/// Which responses of the blob the proxy cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Only the first response for the blob.
    Once,
    /// Every response for the blob.
    Always,
    /// None (the network is fine again).
    Never,
}

/// The flaky-network test double (see the module doc).
struct FlakyProxy {
    addr: String,
    log: Arc<Mutex<Vec<Req>>>,
    mode: Arc<Mutex<Cut>>,
}

impl FlakyProxy {
    /// Relays to the fixture registry; responses to `GET …/blobs/<digest>` are cut
    /// after `cut_after` bytes (head included) as `mode` says.
    fn start(digest: &str, cut_after: usize, mode: Cut) -> FlakyProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(mode));
        let cut_first_done = Arc::new(AtomicBool::new(false));
        let (log2, mode2, digest) = (log.clone(), mode.clone(), digest.to_string());
        thread::spawn(move || {
            for client in l.incoming().flatten() {
                let Ok(up) = TcpStream::connect(registry()) else { continue };
                // The bytes left before this connection's current response is cut.
                let budget: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));
                let (mut c_in, mut up_out) = (client.try_clone().expect("dup"), up.try_clone().expect("dup"));
                let (log, mode, done, digest, b) =
                    (log2.clone(), mode2.clone(), cut_first_done.clone(), digest.clone(), budget.clone());
                thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    let mut pending: Vec<u8> = Vec::new();
                    loop {
                        let n = match c_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        // Request heads (a pull sends no bodies), parsed before they
                        // are forwarded, so the cut is armed before the answer comes.
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                            pending.drain(..end + 4);
                            let line = head.lines().next().unwrap_or("").to_string();
                            let range = head.lines().find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.trim().eq_ignore_ascii_case("range").then(|| v.trim().to_string())
                            });
                            let blob = line.starts_with("GET ") && line.contains(&format!("/blobs/{digest}"));
                            let cut = blob
                                && match *mode.lock().expect("mode") {
                                    Cut::Once => !done.swap(true, Ordering::SeqCst),
                                    Cut::Always => true,
                                    Cut::Never => false,
                                };
                            *b.lock().expect("budget") = cut.then_some(cut_after);
                            log.lock().expect("log").push(Req { line, range });
                        }
                        if pending.len() > 64 * 1024 {
                            pending.clear(); // not HTTP (a TLS hello): nothing to log
                        }
                        if up_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = up_out.shutdown(Shutdown::Write);
                });
                thread::spawn(move || {
                    let (mut up, mut client) = (up, client);
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match up.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut budget = budget.lock().expect("budget");
                        let (n, cut) = match budget.as_mut() {
                            Some(left) if n >= *left => (*left, true),
                            Some(left) => {
                                *left -= n;
                                (n, false)
                            }
                            None => (n, false),
                        };
                        if client.write_all(&buf[..n]).is_err() || cut {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = up.shutdown(Shutdown::Both);
                });
            }
        });
        FlakyProxy { addr, log, mode }
    }

    /// The requests for the blob, in order.
    fn blob_requests(&self, digest: &str) -> Vec<Req> {
        let log = self.log.lock().expect("log");
        log.iter().filter(|r| r.line.starts_with("GET ") && r.line.contains(&format!("/blobs/{digest}"))).cloned().collect()
    }
}

/// The only layer of the fixture's busybox: (digest, size).
fn busybox_layer() -> (String, u64) {
    let mut s = TcpStream::connect(registry()).expect("registry");
    write!(
        s,
        "GET /v2/library/busybox/manifests/latest HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n",
        registry()
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let m = berth_e2e::parse_response(&raw, false).expect("parse").json();
    let layers = m["layers"].as_array().expect("a single-platform manifest with layers");
    assert_eq!(layers.len(), 1, "{m}");
    (layers[0]["digest"].as_str().expect("digest").to_string(), layers[0]["size"].as_u64().expect("size"))
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Nothing half-written: no ingest files, no temp layers, every layer has `ok`.
#[track_caller]
fn assert_store_clean(d: &Daemon, when: &str) {
    let image = d.data_root.join("image");
    assert!(names_in(&image.join("ingest")).is_empty(), "{when}: leftovers in ingest/");
    for l in names_in(&image.join("layers")) {
        assert!(!l.starts_with('.'), "{when}: temp layer dir layers/{l}");
        assert!(image.join("layers").join(&l).join("ok").is_file(), "{when}: layers/{l} has no ok marker");
    }
}

/// The first response for the layer is cut 300 KiB in: after Docker's countdown the
/// download goes on from where it stopped with a `Range` request, into the same
/// pipeline, and the image is complete and runs.
#[test]
fn a_cut_layer_download_resumes_with_a_range_request() {
    let d = Daemon::start();
    let (digest, size) = busybox_layer();
    let cut_after = 300 * 1024;
    assert!(size > 2 * cut_after as u64, "the layer must outlast the cut: {size}");
    let proxy = FlakyProxy::start(&digest, cut_after, Cut::Once);
    let reference = format!("{}/library/busybox", proxy.addr);
    let resp = d.request("POST", &format!("/images/create?fromImage={reference}&tag=latest"), None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let msgs: Vec<serde_json::Value> = resp
        .text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON message per line"))
        .collect();
    assert!(msgs.iter().all(|m| m.get("error").is_none()), "{}", resp.text());
    let id = &digest["sha256:".len().."sha256:".len() + 12];
    // The layer's statuses, consecutive repeats folded: one break, Docker's countdown
    // (one line a second), and the download going on.
    let mut statuses: Vec<&str> = Vec::new();
    for s in msgs.iter().filter(|m| m["id"] == id).filter_map(|m| m["status"].as_str()) {
        if statuses.last() != Some(&s) {
            statuses.push(s);
        }
    }
    let want = [
        "Pulling fs layer",
        "Downloading",
        "Retrying in 5 seconds",
        "Retrying in 4 seconds",
        "Retrying in 3 seconds",
        "Retrying in 2 seconds",
        "Retrying in 1 second",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
    ];
    assert_eq!(statuses, want);
    // Progress goes on from where it stopped, up to the whole blob.
    let downloading: Vec<u64> = msgs
        .iter()
        .filter(|m| m["id"] == id && m["status"] == "Downloading")
        .map(|m| m["progressDetail"]["current"].as_u64().expect("current"))
        .collect();
    assert!(downloading.windows(2).all(|w| w[0] <= w[1]), "{downloading:?}");
    assert_eq!(downloading.last(), Some(&size));

    // Resumed, not restarted: the second request asks for the rest only.
    let reqs = proxy.blob_requests(&digest);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range, None, "{reqs:?}");
    let range = reqs[1].range.clone().unwrap_or_else(|| panic!("the second request has no Range: {reqs:?}"));
    let offset: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("Range {range:?}"));
    assert!(offset > 0 && offset < cut_after as u64, "{range}");

    assert_store_clean(&d, "after the resumed pull");
    d.docker(&["run", "--rm", &reference, "echo", "resumed"]).ok().stdout_has("resumed");
    // The blob kept with the layer is the whole blob, byte for byte (`save` checks it).
    let tar = d.dir().join("busybox.tar");
    d.docker(&["save", "-o", tar.to_str().expect("path"), &reference]).ok();
}

/// Every response for the layer is cut: five requests (each resuming from where the
/// previous stopped) with Docker's 5, 10, 15 and 20 second countdowns between them,
/// then the pull fails with Go's text for a cut body and leaves nothing behind. When
/// the network is fine again, the next pull completes.
#[test]
fn a_download_cut_every_time_fails_after_five_attempts_and_leaves_nothing() {
    let d = Daemon::start();
    let (digest, size) = busybox_layer();
    let cut_after = 64 * 1024;
    assert!(size > 5 * cut_after as u64, "five cut answers must not add up to the blob: {size}");
    let proxy = FlakyProxy::start(&digest, cut_after, Cut::Always);
    let reference = format!("{}/library/busybox", proxy.addr);
    let layers_before = names_in(&d.data_root.join("image/layers"));

    let r = d.docker(&["pull", &reference]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.trim(), "unexpected EOF", "{r:?}");
    let id = &digest["sha256:".len().."sha256:".len() + 12];
    for n in [5, 10, 15, 20] {
        assert!(r.stdout.contains(&format!("{id}: Retrying in {n} seconds\n")), "{r:?}");
    }
    assert!(!r.stdout.contains("Retrying in 25 seconds"), "{r:?}");

    let reqs = proxy.blob_requests(&digest);
    assert_eq!(reqs.len(), 5, "{reqs:?}");
    assert_eq!(reqs[0].range, None, "{reqs:?}");
    let offsets: Vec<u64> = reqs[1..]
        .iter()
        .map(|q| {
            let r = q.range.as_deref().unwrap_or_else(|| panic!("a resume without Range: {reqs:?}"));
            r.trim_start_matches("bytes=").trim_end_matches('-').parse().expect("offset")
        })
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]) && offsets[0] > 0, "each resume goes further: {offsets:?}");

    assert_store_clean(&d, "after the failed pull");
    assert_eq!(names_in(&d.data_root.join("image/layers")), layers_before, "layers left behind");
    d.docker(&["image", "inspect", &reference]).code(1).stderr_has("No such image");

    *proxy.mode.lock().expect("mode") = Cut::Never;
    d.docker(&["pull", &reference]).ok().stdout_has("Status: Downloaded newer image for");
    assert_store_clean(&d, "after the good pull");
    d.docker(&["run", "--rm", &reference, "true"]).ok();
}
