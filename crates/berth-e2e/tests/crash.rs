//! Crash and bad-input torture: a `berthd` SIGKILLed at many moments of a pull and of
//! create/run bursts, a registry serving a layer whose bytes do not match its digest,
//! and name conflicts under concurrency. After each, the daemon must start again on
//! the same roots into a consistent store (docs/storage.md, "Recovery"), and errors
//! must be in Docker's words. Everything goes through the real `docker` CLI.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use berth_e2e::{host_processes, is_hex, registry, wait_until, Cli, Daemon};

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The on-disk invariants of the image store that hold whenever no pull runs
/// (docs/storage.md): nothing in `ingest/`, no `layers/.tmp-*`, every layer has `ok`,
/// no temp records.
#[track_caller]
fn assert_image_store_clean(d: &Daemon, when: &str) {
    let image = d.data_root.join("image");
    let ingest = names_in(&image.join("ingest"));
    assert!(ingest.is_empty(), "{when}: leftovers in ingest/: {ingest:?}");
    for l in names_in(&image.join("layers")) {
        assert!(!l.starts_with('.'), "{when}: temp layer dir layers/{l}");
        assert!(image.join("layers").join(&l).join("ok").is_file(), "{when}: layers/{l} has no ok marker");
    }
    for r in names_in(&image.join("images")) {
        assert!(!r.starts_with('.') && r.ends_with(".json"), "{when}: stray file images/{r}");
    }
}

/// Blob file names under `image/blobs/sha256`.
fn blob_set(d: &Daemon) -> BTreeSet<String> {
    names_in(&d.data_root.join("image/blobs/sha256")).into_iter().collect()
}

/// Every image `docker images -a` lists is complete: it inspects, and a container of
/// it runs (which needs every layer directory with its `ok` marker).
#[track_caller]
fn assert_listed_images_complete(d: &Daemon, when: &str) -> Vec<String> {
    let ids = d.docker(&["images", "-a", "-q", "--no-trunc"]).ok();
    let ids: Vec<String> = ids.lines().into_iter().filter(|l| !l.is_empty()).collect();
    for id in &ids {
        let layers = d.docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", id]).ok();
        assert_ne!(layers.out(), "0", "{when}: image {id} has no layers");
        let r = d.docker(&["run", "--rm", id, "true"]);
        assert_eq!(r.code, 0, "{when}: listed image {id} does not run:\n{r:?}");
    }
    ids
}

#[test]
fn sigkill_at_many_moments_of_a_pull() {
    let mut d = Daemon::start();
    // Spread the kills over the whole pull as it runs on this machine: time one full
    // pull (docker CLI start included), then kill at 0 %, 10 %, … 110 % of it.
    let t0 = Instant::now();
    d.docker(&["pull", "redis"]).ok();
    let full = t0.elapsed();
    d.docker(&["rmi", "redis"]).ok();
    let delays_ms: Vec<u64> = (0..=11u64).map(|k| full.as_millis() as u64 * k / 10).collect();
    for (round, delay) in delays_ms.iter().enumerate() {
        let when = format!("round {round} (SIGKILL {delay} ms into `docker pull redis`)");
        let mut pull = d.cli_background(Cli::Docker, &["pull", "redis"]);
        thread::sleep(Duration::from_millis(*delay));
        d.kill9();
        // The client sees the connection drop (or had already finished).
        let _ = pull.wait_timeout(Duration::from_secs(30));
        d.start_again();

        assert_image_store_clean(&d, &when);
        let ids = assert_listed_images_complete(&d, &when);
        assert!(ids.len() <= 1, "{when}: more than one image from one pull: {ids:?}");
        let progress = pull.stdout();
        eprintln!(
            "{when}: client's last line {:?}; after restart {} image(s)",
            progress.lines().last().unwrap_or(""),
            ids.len()
        );
        // The pull can always be completed afterwards.
        d.docker(&["pull", "redis"])
            .ok()
            .stdout_has("Digest: sha256:")
            .stdout_has("redis:latest");
        assert_image_store_clean(&d, &format!("{when}, after a fresh pull"));
        d.docker(&["run", "--rm", "redis", "redis-server", "--version"]).ok().stdout_has("Redis server v=");
        let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok();
        assert_eq!(images.lines(), vec!["redis:latest".to_string()], "{when}");
        // Start the next round from an empty store so that the pull does real work.
        d.docker(&["rmi", "redis"]).ok();
        let dangling = d.docker(&["images", "-a", "-q"]).ok();
        for id in dangling.lines().into_iter().filter(|l| !l.is_empty()) {
            d.docker(&["rmi", &id]).ok();
        }
        assert!(names_in(&d.data_root.join("image/layers")).is_empty(), "{when}: layers left after rmi");
        assert!(blob_set(&d).is_empty(), "{when}: blobs left after rmi: {:?}", blob_set(&d));
    }
}

/// Processes whose command line names this daemon's exec root (its shims).
fn shims_of(d: &Daemon) -> Vec<(u32, String)> {
    let root = d.exec_root.to_string_lossy().to_string();
    host_processes()
        .into_iter()
        .filter(|(_, c)| c.contains(&root) && c.split(' ').next().is_some_and(|p| p.ends_with("berth-shim")))
        .collect()
}

#[test]
fn sigkill_during_create_and_run_bursts() {
    let mut d = Daemon::start();
    d.docker(&["pull", "alpine"]).ok();
    let delays_ms = [30u64, 120, 250, 500];
    for (round, delay) in delays_ms.iter().enumerate() {
        let when = format!("round {round} (SIGKILL {delay} ms into a create/run burst)");
        let mut clients = Vec::new();
        for i in 0..4 {
            let name = format!("c{round}-{i}");
            clients.push(d.cli_background(Cli::Docker, &["create", "--name", &name, "alpine", "true"]));
        }
        for i in 0..3 {
            let name = format!("r{round}-{i}");
            clients.push(d.cli_background(Cli::Docker, &["run", "-d", "--name", &name, "alpine", "sleep", "300"]));
        }
        // Colliding names: at most one may exist afterwards.
        for _ in 0..3 {
            clients.push(d.cli_background(Cli::Docker, &["create", "--name", &format!("dup{round}"), "alpine", "true"]));
        }
        thread::sleep(Duration::from_millis(*delay));
        d.kill9();
        for mut c in clients {
            let _ = c.wait_timeout(Duration::from_secs(30));
        }
        d.start_again();

        let containers = d.data_root.join("containers");
        let dirs = names_in(&containers);
        for n in &dirs {
            assert!(!n.starts_with('.'), "{when}: half-created or half-removed dir containers/{n}");
            assert!(containers.join(n).join("config.v2.json").is_file(), "{when}: containers/{n} has no record");
        }
        let ids = d.docker(&["ps", "-aq", "--no-trunc"]).ok();
        let ids: Vec<String> = ids.lines().into_iter().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            ids.iter().cloned().collect::<BTreeSet<_>>(),
            dirs.iter().cloned().collect::<BTreeSet<_>>(),
            "{when}: listed containers differ from the record directories"
        );
        for id in &ids {
            assert!(is_hex(id, 64), "{when}: {id}");
            let st = d.docker(&["inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.Running}}", id]).ok();
            let parts: Vec<&str> = st.out().split(' ').collect();
            assert_eq!(parts.len(), 3, "{when}: {st:?}");
            assert!(
                matches!((parts[1], parts[2]), ("created", "false") | ("running", "true") | ("exited", "false")),
                "{when}: inconsistent state of {}: {st:?}",
                parts[0]
            );
        }
        let names = d.docker(&["ps", "-a", "--format", "{{.Names}}"]).ok();
        let names = names.lines();
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{when}: duplicate container names: {names:?}");
        // Every running container really has its shim; no shim runs for a container
        // that is not running.
        let running = d.docker(&["ps", "-q", "--no-trunc"]).ok();
        let running: BTreeSet<String> = running.lines().into_iter().filter(|l| !l.is_empty()).collect();
        for (pid, cmd) in shims_of(&d) {
            assert!(
                running.iter().any(|id| cmd.contains(id.as_str())),
                "{when}: shim {pid} ({cmd}) runs for a container the daemon does not show as running; running: {running:?}"
            );
        }
        // The daemon still works normally.
        d.docker(&["run", "--rm", "alpine", "true"]).ok();
    }
    // How often the kill landed inside a start (shim spawned, start not recorded).
    let undone = d.log_text().matches("start interrupted by a daemon crash").count();
    eprintln!("sigkill_during_create_and_run_bursts: {undone} interrupted start(s) undone on restart");
    let all = d.docker(&["ps", "-aq"]).ok();
    let mut args = vec!["rm", "-f"];
    let ids: Vec<String> = all.lines().into_iter().filter(|l| !l.is_empty()).collect();
    args.extend(ids.iter().map(String::as_str));
    if !ids.is_empty() {
        d.docker(&args).ok();
    }
    assert!(d.docker(&["ps", "-aq"]).ok().out().is_empty());
    assert!(names_in(&d.data_root.join("containers")).is_empty(), "container dirs left after rm -f");
    wait_until(Duration::from_secs(10), "every shim to exit after rm -f", || {
        shims_of(&d).is_empty().then_some(())
    });
}

/// A throwaway `docker-registry` on its own port and storage, so that corrupting a blob
/// never touches the shared fixtures. Killed (by pid) on drop.
struct ScratchRegistry {
    child: Child,
    addr: String,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl ScratchRegistry {
    fn start() -> ScratchRegistry {
        let dir = tempfile::Builder::new().prefix("bt-reg-").tempdir_in("/tmp").expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("data");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .expect("write registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry (Debian package docker-registry)");
        let reg = ScratchRegistry { child, addr, storage, _dir: dir };
        wait_until(Duration::from_secs(15), "the scratch registry to answer /v2/", || {
            let mut s = TcpStream::connect(&reg.addr).ok()?;
            write!(s, "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", reg.addr).ok()?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).ok()?;
            buf.starts_with("HTTP/1.1 200").then_some(())
        });
        reg
    }

    /// Copies `src` (a repository of the fixture registry) to `dst` here.
    fn copy_from_fixtures(&self, src: &str, dst: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests"])
            .arg(format!("docker://{}/{src}", registry()))
            .arg(format!("docker://{}/{dst}", self.addr))
            .output()
            .expect("run skopeo");
        assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The layer digests of `repo`'s manifest, bottom first.
    fn layers(&self, repo: &str) -> Vec<String> {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{repo}", self.addr))
            .output()
            .expect("run skopeo inspect");
        assert!(out.status.success(), "skopeo inspect failed: {}", String::from_utf8_lossy(&out.stderr));
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest JSON");
        m["layers"]
            .as_array()
            .expect("a single-platform manifest")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest").to_string())
            .collect()
    }

    /// Flips bytes in the middle of a stored blob, keeping its size, so the registry
    /// serves content that does not match the digest it is named by.
    fn corrupt(&self, digest: &str) {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let path = self.storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
        let mut f = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let len = f.metadata().expect("stat blob").len();
        let at = len / 2;
        let mut buf = [0u8; 16];
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.read_exact(&mut buf).expect("read blob");
        for b in &mut buf {
            *b ^= 0xff;
        }
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.write_all(&buf).expect("write blob");
    }
}

impl Drop for ScratchRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A two-layer image with one corrupted layer: the pull fails with Docker's words and
/// leaves the store exactly as it was (no ingest files, no half layers, no stray
/// blobs), with earlier images intact.
fn broken_layer_case(corrupt_index: usize) {
    let reg = ScratchRegistry::start();
    reg.copy_from_fixtures("library/redis:latest", "broken/redis:latest");
    let layers = reg.layers("broken/redis:latest");
    assert_eq!(layers.len(), 2, "{layers:?}");
    let bad = &layers[corrupt_index];
    reg.corrupt(bad);

    let d = Daemon::start();
    d.docker(&["pull", "busybox"]).ok();
    let blobs_before = blob_set(&d);
    let layers_before = names_in(&d.data_root.join("image/layers"));
    let reference = format!("{}/broken/redis", reg.addr);
    let r = d.docker(&["pull", &reference]).code(1);
    let r = r.stderr_has(&format!("filesystem layer verification failed for digest {bad}"));
    drop(r);

    assert_image_store_clean(&d, "after the failed pull");
    assert_eq!(blob_set(&d), blobs_before, "the failed pull left blobs behind");
    assert_eq!(names_in(&d.data_root.join("image/layers")), layers_before, "the failed pull left layers behind");
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok();
    assert_eq!(images.lines(), vec!["busybox:latest".to_string()]);
    d.docker(&["run", "--rm", "busybox", "true"]).ok();
    d.docker(&["image", "inspect", &reference]).code(1).stderr_has(&format!("No such image: {reference}"));
    // The good image from the good registry still pulls and runs.
    d.docker(&["pull", "redis"]).ok();
    d.docker(&["run", "--rm", "redis", "true"]).ok();
    assert_image_store_clean(&d, "after the good pull");
}

#[test]
fn broken_top_layer_fails_the_pull_and_loses_nothing() {
    broken_layer_case(1);
}

#[test]
fn broken_bottom_layer_fails_the_pull_and_loses_nothing() {
    broken_layer_case(0);
}

#[test]
fn concurrent_creates_of_one_name() {
    let d = Daemon::start();
    d.docker(&["pull", "alpine"]).ok();
    let clients: Vec<_> = (0..10)
        .map(|_| d.cli_background(Cli::Docker, &["create", "--name", "same", "alpine", "true"]))
        .collect();
    let runs: Vec<_> = clients.into_iter().map(|c| c.wait(Duration::from_secs(60))).collect();
    let winners: Vec<_> = runs.iter().filter(|r| r.code == 0).collect();
    assert_eq!(winners.len(), 1, "exactly one create may win: {runs:?}");
    let id = winners[0].stdout.trim().to_string();
    assert!(is_hex(&id, 64), "{:?}", winners[0]);
    for r in runs.iter().filter(|r| r.code != 0) {
        // `docker create` exits 1 on a daemon error (only `run` uses 125).
        assert_eq!(r.code, 1, "{r:?}");
        assert_eq!(
            r.stderr.trim(),
            format!(
                "Error response from daemon: Conflict. The container name \"/same\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
            ),
            "{r:?}"
        );
    }
    let ps = d.docker(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]).ok();
    assert_eq!(ps.lines(), vec![format!("{id} same")]);
    assert_eq!(names_in(&d.data_root.join("containers")), vec![id.clone()], "losers left directories");
    d.docker(&["rm", "same"]).ok();
    d.docker(&["create", "--name", "same", "alpine", "true"]).ok();
}

#[test]
fn stopped_containers_keep_exit_code_and_logs_across_sigkill() {
    let mut d = Daemon::start();
    d.docker(&["pull", "alpine"]).ok();
    let r = d.docker(&["run", "--name", "three", "alpine", "sh", "-c", "echo out; echo err >&2; exit 3"]).code(3);
    assert_eq!(r.stdout, "out\n");
    d.docker(&["run", "-d", "--name", "stopped", "alpine", "sleep", "300"]).ok();
    d.docker(&["stop", "-t", "0", "stopped"]).ok();
    d.docker(&["create", "--name", "fresh", "alpine", "true"]).ok();
    // Exits while no daemon runs: the shim records it, the next daemon picks it up.
    d.docker(&["run", "-d", "--name", "late", "alpine", "sh", "-c", "sleep 2; echo bye; exit 7"]).ok();
    d.kill9();
    thread::sleep(Duration::from_secs(3));
    d.start_again();

    let state = |d: &Daemon, n: &str| {
        d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n]).ok().out().to_string()
    };
    assert_eq!(state(&d, "three"), "exited 3");
    assert_eq!(state(&d, "stopped"), "exited 137");
    assert_eq!(state(&d, "fresh"), "created 0");
    assert_eq!(state(&d, "late"), "exited 7");
    let logs = d.docker(&["logs", "three"]).ok();
    assert_eq!((logs.stdout.as_str(), logs.stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(d.docker(&["logs", "late"]).ok().stdout, "bye\n");
    let ps = d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]).ok();
    for want in ["three|Exited (3) ", "stopped|Exited (137) ", "late|Exited (7) ", "fresh|Created"] {
        assert!(ps.lines().iter().any(|l| l.starts_with(want)), "{want}: {ps:?}");
    }
    assert_eq!(d.docker(&["wait", "late"]).ok().out(), "7");
    // A second SIGKILL right away changes nothing.
    d.restart();
    assert_eq!(state(&d, "three"), "exited 3");
    assert_eq!(state(&d, "late"), "exited 7");
    assert_eq!(d.docker(&["logs", "late"]).ok().stdout, "bye\n");
    d.docker(&["start", "-a", "three"]).code(3).stdout_has("out\n");
    assert_eq!(d.docker(&["logs", "three"]).ok().stdout, "out\nout\n");
}
