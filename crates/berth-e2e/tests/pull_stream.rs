//! The streaming pull (docs/storage.md, "Write order"): Docker's per-layer progress in
//! the `/images/create` JSON stream, as the docker CLI and `berth` render it on and off
//! a terminal; a layer far larger than the pipeline's buffers; and pulls cut at several
//! points by a TCP proxy in front of the fixture registry (a test double for a network
//! failure: the proxy forwards bytes unchanged and closes both sockets once a
//! connection has relayed N bytes) that leave nothing behind, after which the next pull
//! completes. Those run with `--max-download-attempts 1`, so a cut is final; resuming
//! a cut download is `pull_resume.rs`'s.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use berth_e2e::{both, registry, Daemon};

const T: Duration = Duration::from_secs(60);

/// The pipeline holds 8 pieces of at most 256 KiB.
const PIPELINE_BYTES: u64 = 8 * 256 * 1024;

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
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

/// The layer sizes of the fixture's redis manifest, by short id.
fn redis_layers() -> Vec<(String, u64)> {
    let mut s = TcpStream::connect(registry()).expect("registry");
    write!(
        s,
        "GET /v2/library/redis/manifests/latest HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n",
        registry()
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let resp = berth_e2e::parse_response(&raw, false).expect("parse");
    let m = resp.json();
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().expect("digest");
            (d["sha256:".len().."sha256:".len() + 12].to_string(), l["size"].as_u64().expect("size"))
        })
        .collect()
}

#[test]
fn progress_stream_has_dockers_per_layer_shape() {
    let d = Daemon::start();
    let layers = redis_layers();
    assert!(
        layers.iter().any(|(_, size)| *size > PIPELINE_BYTES),
        "the fixture needs a layer larger than the pipeline's buffers: {layers:?}"
    );
    let resp = d.request("POST", "/images/create?fromImage=redis&tag=latest", None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let msgs: Vec<serde_json::Value> = resp
        .text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON message per line"))
        .collect();
    // Per layer: its statuses, consecutive repeats folded.
    let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &msgs {
        assert!(m.get("error").is_none(), "{m}");
        let (Some(id), Some(status)) = (m["id"].as_str(), m["status"].as_str()) else { continue };
        if id == "latest" {
            assert_eq!(status, "Pulling from library/redis");
            continue;
        }
        let v = per.entry(id.to_string()).or_default();
        if v.last().map(String::as_str) != Some(status) {
            v.push(status.to_string());
        }
        if status == "Downloading" || status == "Extracting" {
            let cur = m["progressDetail"]["current"].as_u64().expect("current");
            let total = m["progressDetail"]["total"].as_u64().expect("total");
            assert!(cur <= total, "{m}");
            let size = layers.iter().find(|(s, _)| s == id).map(|(_, n)| *n).expect("a layer of the manifest");
            assert_eq!(total, size, "{m}");
        }
    }
    let want = ["Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"];
    assert_eq!(per.len(), layers.len(), "{per:?}");
    for (id, statuses) in &per {
        assert_eq!(statuses, &want, "layer {id}");
        // The last Downloading and the last Extracting cover the whole blob.
        let size = layers.iter().find(|(s, _)| s == id).map(|(_, n)| *n).expect("size");
        for what in ["Downloading", "Extracting"] {
            let last = msgs
                .iter()
                .rev()
                .find(|m| m["id"] == id.as_str() && m["status"] == what)
                .expect("a progress line");
            assert_eq!(last["progressDetail"]["current"].as_u64(), Some(size), "{what} of {id}");
        }
    }
    let tail: Vec<&str> = msgs.iter().rev().take(2).filter_map(|m| m["status"].as_str()).collect();
    assert_eq!(tail[0], "Status: Downloaded newer image for redis:latest");
    assert!(tail[1].starts_with("Digest: sha256:"), "{tail:?}");
    assert_store_clean(&d, "after the pull");
    d.docker(&["run", "--rm", "redis", "redis-server", "--version"]).ok().stdout_has("Redis server v=");
}

both!(fn pull_renders_plain_off_a_terminal_and_bars_on_one(d, cli) {
    let plain = d.cli(cli, &["pull", "redis"]).ok();
    let out = plain.out().to_string();
    for (id, _) in redis_layers() {
        assert!(out.contains(&format!("{id}: Pulling fs layer\n")), "{out}");
        assert!(out.contains(&format!("{id}: Pull complete\n")), "{out}");
    }
    assert!(!out.contains("Extracting") && !out.contains("Downloading"), "no progress bars off a terminal:\n{out}");
    assert!(out.contains("Status: Downloaded newer image for redis:latest"), "{out}");
    d.cli(cli, &["rmi", "redis"]).ok();

    let mut p = d.cli_pty(cli, &["pull", "redis"], 30, 120);
    assert_eq!(p.wait(T), 0, "transcript: {:?}", p.transcript());
    let t = p.transcript();
    assert!(t.contains("Downloading [") && t.contains("Extracting ["), "bars on a terminal: {t:?}");
    assert!(t.contains("Pull complete") && t.contains("\x1b["), "{t:?}");
    assert!(t.contains("Status: Downloaded newer image for redis:latest"), "{t:?}");
});

/// A TCP proxy to the fixture registry that, while armed, cuts each connection once
/// it has relayed `cut_after` bytes towards the client.
struct CuttingProxy {
    addr: String,
    armed: Arc<AtomicBool>,
    cut_after: Arc<AtomicU64>,
}

impl CuttingProxy {
    fn start() -> CuttingProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let armed = Arc::new(AtomicBool::new(false));
        let cut_after = Arc::new(AtomicU64::new(u64::MAX));
        let (a, c) = (armed.clone(), cut_after.clone());
        thread::spawn(move || {
            for client in l.incoming().flatten() {
                let Ok(up) = TcpStream::connect(registry()) else { continue };
                let (a, c) = (a.clone(), c.clone());
                let (mut c_in, mut up_out) = (client.try_clone().expect("dup"), up.try_clone().expect("dup"));
                thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut up_out);
                    let _ = up_out.shutdown(Shutdown::Write);
                });
                thread::spawn(move || {
                    let (mut up, mut client) = (up, client);
                    let mut buf = [0u8; 16 * 1024];
                    let mut sent = 0u64;
                    loop {
                        let n = match up.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let limit = c.load(Ordering::SeqCst);
                        let n = if a.load(Ordering::SeqCst) && sent + n as u64 > limit {
                            (limit.saturating_sub(sent)) as usize
                        } else {
                            n
                        };
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n as u64;
                        if a.load(Ordering::SeqCst) && sent >= limit {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = up.shutdown(Shutdown::Both);
                });
            }
        });
        CuttingProxy { addr, armed, cut_after }
    }
}

#[test]
fn pulls_cut_at_several_points_leave_nothing_and_the_next_pull_completes() {
    // One attempt per layer: every cut ends the pull (no resume, no countdown).
    let d = Daemon::start_with_args(&["--max-download-attempts", "1"]);
    d.docker(&["pull", "busybox"]).ok();
    let layers_before = names_in(&d.data_root.join("image/layers"));
    let proxy = CuttingProxy::start();
    let reference = format!("{}/library/redis:latest", proxy.addr);
    let small = redis_layers().iter().map(|(_, n)| *n).min().expect("layers");
    // Inside the first bytes of every blob; past the small layer (which then commits
    // and must be taken back); deep into the large one.
    for cut in [50 * 1024, small + 64 * 1024, 5 * 1024 * 1024] {
        let when = format!("cut after {cut} bytes");
        proxy.cut_after.store(cut, Ordering::SeqCst);
        proxy.armed.store(true, Ordering::SeqCst);
        let r = d.docker(&["pull", &reference]);
        assert_eq!(r.code, 1, "{when}: {r:?}");
        // Go's text for a body cut short, as Docker prints it.
        assert_eq!(r.stderr.trim(), "unexpected EOF", "{when}");
        assert_store_clean(&d, &when);
        assert_eq!(names_in(&d.data_root.join("image/layers")), layers_before, "{when}: layers left behind");
        d.docker(&["image", "inspect", &reference]).code(1).stderr_has("No such image");
    }
    proxy.armed.store(false, Ordering::SeqCst);
    d.docker(&["pull", &reference]).ok().stdout_has("Status: Downloaded newer image for");
    assert_store_clean(&d, "after the good pull");
    d.docker(&["run", "--rm", &reference, "redis-server", "--version"]).ok().stdout_has("Redis server v=");
    d.docker(&["run", "--rm", "busybox", "true"]).ok();
}

/// The fixture's redis is built on alpine's layer: pulled after alpine, that layer is
/// "Already exists" (one line, nothing downloaded) and only the other one streams.
#[test]
fn a_layer_already_present_is_reported_and_not_pulled_again() {
    let d = Daemon::start();
    d.docker(&["pull", "alpine"]).ok();
    let layers = redis_layers();
    let layers_before = names_in(&d.data_root.join("image/layers"));
    assert_eq!(layers_before.len(), 1);
    let resp = d.request("POST", "/images/create?fromImage=redis&tag=latest", None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in resp.text().lines().filter(|l| !l.trim().is_empty()) {
        let m: serde_json::Value = serde_json::from_str(l).expect("JSON");
        assert!(m.get("error").is_none(), "{m}");
        if let (Some(id), Some(status)) = (m["id"].as_str(), m["status"].as_str()) {
            let v = per.entry(id.to_string()).or_default();
            if v.last().map(String::as_str) != Some(status) {
                v.push(status.to_string());
            }
        }
    }
    assert_eq!(per[&layers[0].0], ["Already exists"], "{per:?}");
    assert_eq!(per[&layers[1].0].first().map(String::as_str), Some("Pulling fs layer"), "{per:?}");
    assert_eq!(per[&layers[1].0].last().map(String::as_str), Some("Pull complete"), "{per:?}");
    let after = names_in(&d.data_root.join("image/layers"));
    assert_eq!(after.len(), 2, "one new layer: {after:?}");
    assert!(after.contains(&layers_before[0]), "the shared layer is the same directory");
    assert_store_clean(&d, "after the pull");
    d.docker(&["run", "--rm", "redis", "redis-server", "--version"]).ok().stdout_has("Redis server v=");
}
