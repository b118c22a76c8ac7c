//! berth-e2e: the end-to-end test harness.
//!
//! Owns starting real `berthd` daemons on short temp roots and sockets, driving them
//! with the real `berth` and `docker` CLIs (and raw HTTP over the Unix socket), and
//! cleaning up after them. It never links the engine: everything goes through the
//! binaries that `cargo build --workspace` produced, exactly as a user would run them.
//!
//! Requirements (CI always has all of them; `scripts/test.sh` sets them up): running as
//! root, the fixture registry of `scripts/fixtures.sh` reachable at
//! `$BERTH_TEST_REGISTRY` (default `127.0.0.1:5000`), the `docker` CLI. A missing
//! requirement fails the test loudly; nothing is skipped silently.

#![forbid(unsafe_code)]

pub mod registry;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Default fixture registry address (see scripts/fixtures.sh).
pub const DEFAULT_REGISTRY: &str = "127.0.0.1:5000";

/// How long one CLI command may run before the harness kills it and fails the test.
fn command_timeout() -> Duration {
    let secs = std::env::var("BERTH_E2E_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// Which command-line client runs a case. Most cases run through both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    Berth,
    Docker,
}

/// The result of one CLI invocation.
#[derive(Clone)]
pub struct Run {
    pub cmd: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Panics (showing the whole run) unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success:\n{self:?}");
        self
    }

    /// Panics unless the command exited with `code`.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit code {code}:\n{self:?}");
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(self.stdout.contains(needle), "stdout should contain {needle:?}:\n{self:?}");
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(self.stderr.contains(needle), "stderr should contain {needle:?}:\n{self:?}");
        self
    }

    /// Like `stderr_has`, ignoring ASCII case (Docker's own messages changed case
    /// between releases: "Container x is not running" / "container x is not running").
    #[track_caller]
    pub fn stderr_has_ci(self, needle: &str) -> Self {
        assert!(
            self.stderr.to_ascii_lowercase().contains(&needle.to_ascii_lowercase()),
            "stderr should contain {needle:?} (any case):\n{self:?}"
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(self, needle: &str) -> Self {
        assert!(!self.stderr.contains(needle), "stderr should not contain {needle:?}:\n{self:?}");
        self
    }

    #[track_caller]
    pub fn stdout_lacks(self, needle: &str) -> Self {
        assert!(!self.stdout.contains(needle), "stdout should not contain {needle:?}:\n{self:?}");
        self
    }

    /// stdout lines, without trailing whitespace.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(|l| l.trim_end().to_string()).collect()
    }

    /// stdout trimmed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }
}

/// A parsed HTTP/1.1 response from the daemon's socket.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Paths of the workspace's built binaries.
#[derive(Debug, Clone)]
pub struct Bins {
    pub berthd: PathBuf,
    pub berth: PathBuf,
    pub shim: PathBuf,
}

/// Finds `berthd`, `berth` and `berth-shim` next to the test executable
/// (`target/debug/deps/<test>` → `target/debug/`), honouring `BERTH_BIN_DIR` and
/// `CARGO_TARGET_DIR`.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(d) = std::env::var("BERTH_BIN_DIR") {
            candidates.push(PathBuf::from(d));
        }
        if let Ok(exe) = std::env::current_exe() {
            // target/debug/deps/<test-hash> → target/debug
            if let Some(deps) = exe.parent() {
                if let Some(profile) = deps.parent() {
                    candidates.push(profile.to_path_buf());
                }
                candidates.push(deps.to_path_buf());
            }
        }
        if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
            candidates.push(Path::new(&t).join("debug"));
        }
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        candidates.push(ws.join("target/debug"));
        for dir in &candidates {
            let b = Bins {
                berthd: dir.join("berthd"),
                berth: dir.join("berth"),
                shim: dir.join("berth-shim"),
            };
            if b.berthd.is_file() && b.berth.is_file() {
                return b;
            }
        }
        panic!(
            "berth-e2e: cannot find the berthd/berth binaries (looked in {candidates:?}); \
             build them first with `cargo build --workspace` (scripts/test.sh does)"
        );
    })
}

/// The fixture registry address, checked once: it must answer `GET /v2/` with 200.
pub fn registry() -> &'static str {
    static REG: OnceLock<String> = OnceLock::new();
    REG.get_or_init(|| {
        let reg = std::env::var("BERTH_TEST_REGISTRY").unwrap_or_else(|_| DEFAULT_REGISTRY.to_string());
        let probe = || -> std::io::Result<String> {
            let mut s = TcpStream::connect(&reg)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET /v2/ HTTP/1.1\r\nHost: {reg}\r\nConnection: close\r\n\r\n")?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf.lines().next().unwrap_or_default().to_string())
        };
        match probe() {
            Ok(line) if line.contains(" 200") => reg,
            other => panic!(
                "berth-e2e: the fixture registry at {reg} is not reachable ({other:?}). \
                 Run scripts/fixtures.sh (scripts/test.sh does; CI always has it). \
                 These tests never skip silently."
            ),
        }
    })
}

/// Panics unless the tests run as root (needed for namespaces, mounts and cgroups).
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "berth-e2e: the end-to-end tests must run as root (CI always does; use `sudo scripts/test.sh`). \
         They never skip silently."
    );
}

/// The real docker CLI: `$BERTH_DOCKER_CLI`, else /usr/local/bin/docker, else `docker` on PATH.
pub fn docker_cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        if let Ok(p) = std::env::var("BERTH_DOCKER_CLI") {
            return PathBuf::from(p);
        }
        let local = PathBuf::from("/usr/local/bin/docker");
        if local.is_file() {
            return local;
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let p = dir.join("docker");
                if p.is_file() {
                    return p;
                }
            }
        }
        panic!("berth-e2e: the real `docker` CLI was not found (set BERTH_DOCKER_CLI); it is the compatibility judge")
    })
}

/// One running `berthd` on its own temp roots and socket. Killed on drop.
pub struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub sock: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub log: PathBuf,
    docker_config: PathBuf,
    starts: u32,
    /// Extra `berthd` arguments ([`Daemon::start_with_args`]), kept across restarts.
    extra_args: Vec<String>,
}

impl Daemon {
    /// Starts a fresh daemon on a new `/tmp/bt-XXXXXX` and waits for `/_ping`.
    pub fn start() -> Daemon {
        Daemon::start_with_args(&[])
    }

    /// [`Daemon::start`] with extra `berthd` arguments (e.g. `--add-runtime`).
    pub fn start_with_args(extra_args: &[&str]) -> Daemon {
        require_root();
        let _ = registry();
        let _ = bins();
        let dir = tempfile::Builder::new()
            .prefix("bt-")
            .tempdir_in("/tmp")
            .expect("create temp dir under /tmp");
        let root = dir.path().to_path_buf();
        let docker_config = root.join("dcfg");
        fs::create_dir_all(&docker_config).expect("create DOCKER_CONFIG dir");
        let mut d = Daemon {
            sock: root.join("b.sock"),
            data_root: root.join("root"),
            exec_root: root.join("run"),
            log: root.join("berthd.log"),
            docker_config,
            dir,
            child: None,
            starts: 0,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        assert!(
            d.sock.as_os_str().len() < 100,
            "socket path too long for sun_path: {:?}",
            d.sock
        );
        d.spawn();
        d
    }

    /// The temp directory holding everything this daemon owns.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `unix:///tmp/bt-XXXXXX/b.sock`
    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        {
            let mut l = &log;
            let _ = writeln!(l, "===== berth-e2e: daemon start #{} =====", self.starts);
        }
        let b = bins();
        let mut cmd = Command::new(&b.berthd);
        cmd.arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("-H")
            .arg(self.host())
            .arg("--registry-mirror")
            .arg(format!("http://{}", registry()))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.env("RUST_BACKTRACE", "1");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", b.berthd.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "berthd exited during startup ({status}); its log:\n{}",
                        self.log_text()
                    );
                }
            }
            match self.try_request("GET", "/_ping", None) {
                Ok(r) if r.status == 200 => return,
                Ok(r) => last = format!("status {} body {:?}", r.status, r.text()),
                Err(e) => last = e.to_string(),
            }
            thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "berthd did not answer GET /_ping on {} within 30s (last: {last}); its log:\n{}",
            self.sock.display(),
            self.log_text()
        );
    }

    /// The daemon's log so far (all starts).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    /// The daemon's pid (current start).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("daemon not running")
    }

    /// SIGKILLs the daemon (containers' shims live on, by design).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs the daemon and waits up to `grace` for it to exit, then SIGKILLs it.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + grace;
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                    _ => break,
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILLs the daemon and starts it again on the same roots and socket.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts the daemon again after `kill9`/`stop`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "daemon still running");
        self.spawn();
    }

    /// Runs `berth -H unix://<sock> <args>`.
    pub fn berth(&self, args: &[&str]) -> Run {
        self.cli(Cli::Berth, args)
    }

    /// Runs the real `docker -H unix://<sock> <args>` with a clean DOCKER_CONFIG.
    pub fn docker(&self, args: &[&str]) -> Run {
        self.cli(Cli::Docker, args)
    }

    /// Runs `args` through the chosen client against this daemon.
    pub fn cli(&self, cli: Cli, args: &[&str]) -> Run {
        let (cmd, shown) = self.cli_command(cli, args);
        run_with_timeout(cmd, shown, command_timeout())
    }

    /// Runs `args` through the chosen client with `input` on its stdin (then EOF).
    pub fn cli_input(&self, cli: Cli, args: &[&str], input: &[u8]) -> Run {
        let (cmd, shown) = self.cli_command(cli, args);
        run_with_input(cmd, format!("{shown} <<< {:?}", String::from_utf8_lossy(input)), input, command_timeout())
    }

    /// Starts `args` through the chosen client in the background (stdin null, stdout
    /// and stderr to files under the daemon's dir); see [`Background`].
    pub fn cli_background(&self, cli: Cli, args: &[&str]) -> Background {
        let (cmd, shown) = self.cli_command(cli, args);
        Background::spawn(cmd, shown, self.dir())
    }

    /// Starts `args` through the chosen client on a new pseudo-terminal of `rows`×`cols`
    /// (the client is a session leader with the pty as its controlling terminal).
    pub fn cli_pty(&self, cli: Cli, args: &[&str], rows: u16, cols: u16) -> PtySession {
        let (cmd, shown) = self.cli_command(cli, args);
        PtySession::spawn(cmd, shown, rows, cols)
    }

    /// The `Command` (and its shell-quoted form) that runs `args` through `cli`.
    pub fn cli_command(&self, cli: Cli, args: &[&str]) -> (Command, String) {
        let program = match cli {
            Cli::Berth => bins().berth.clone(),
            Cli::Docker => docker_cli().to_path_buf(),
        };
        let host = self.host();
        let mut full: Vec<&str> = vec!["-H", &host];
        full.extend_from_slice(args);
        let mut cmd = Command::new(&program);
        cmd.args(&full)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION");
        let name = match cli {
            Cli::Berth => "berth",
            Cli::Docker => "docker",
        };
        let shown = format!("{name} {}", shell_words(&full));
        (cmd, shown)
    }

    /// The inspect document of one container (`GET /containers/<name>/json`).
    #[track_caller]
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let r = self.request("GET", &format!("/containers/{name}/json"), None);
        assert_eq!(r.status, 200, "inspect {name}: {r:?}");
        r.json()
    }

    /// Polls the inspect document of `name` until `pred` holds; panics after `timeout`
    /// with the last document.
    #[track_caller]
    pub fn wait_inspect(&self, name: &str, timeout: Duration, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.try_request("GET", &format!("/containers/{name}/json"), None);
            if let Ok(r) = &r {
                if r.status == 200 {
                    let v = r.json();
                    if pred(&v) {
                        return v;
                    }
                    if Instant::now() >= deadline {
                        panic!("{name}: not {what} within {timeout:?}; last inspect State: {}", v["State"]);
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!("{name}: not {what} within {timeout:?}; last answer: {r:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// One HTTP/1.1 request over the daemon's Unix socket (`Connection: close`).
    #[track_caller]
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path} over {}: {e}", self.sock.display()))
    }

    /// Sends one request from a new thread (for calls that block, such as
    /// `POST /containers/<id>/wait`); join the handle for the response.
    pub fn request_in_background(&self, method: &str, path: &str) -> thread::JoinHandle<std::io::Result<HttpResponse>> {
        let sock = self.sock.clone();
        let (method, path) = (method.to_string(), path.to_string());
        thread::spawn(move || request_on(&sock, &method, &path, None, Duration::from_secs(120)))
    }

    fn try_request(&self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<HttpResponse> {
        request_on(&self.sock, method, path, body, Duration::from_secs(30))
    }
}

fn request_on(sock: &Path, method: &str, path: &str, body: Option<&str>, timeout: Duration) -> std::io::Result<HttpResponse> {
    {
        let mut s = UnixStream::connect(sock)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: berth-e2e\r\nConnection: close\r\n");
        match body {
            Some(b) => {
                req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()))
            }
            None => req.push_str("\r\n"),
        }
        s.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse_response(&raw, method == "HEAD")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "\n===== berthd log ({}) =====\n{}\n===== end of berthd log =====",
                self.log.display(),
                self.log_text()
            );
        }
        self.stop(Duration::from_secs(5));
        cleanup_tree(self.dir.path());
        // Bridges, firewall chains and netns files of this daemon instance: the host
        // is shared with other tests' daemons.
        let _ = Command::new(&bins().berthd)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .args(&self.extra_args)
            .arg("--network-cleanup")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills every process that belongs to a daemon's temp tree (shims, whose command line
/// names the exec root, and container processes, whose root is under the data root),
/// then lazily unmounts everything mounted below it so the temp dir can be removed.
fn cleanup_tree(dir: &Path) {
    let dir_s = dir.to_string_lossy().to_string();
    let me = std::process::id().to_string();
    for _round in 0..3 {
        let mut victims = Vec::new();
        if let Ok(entries) = fs::read_dir("/proc") {
            for e in entries.flatten() {
                let pid = e.file_name().to_string_lossy().to_string();
                if !pid.bytes().all(|c| c.is_ascii_digit()) || pid == me {
                    continue;
                }
                let p = e.path();
                let cmdline = fs::read(p.join("cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default();
                let root = fs::read_link(p.join("root"))
                    .map(|r| r.to_string_lossy().to_string())
                    .unwrap_or_default();
                if cmdline.contains(&dir_s) || root.starts_with(&dir_s) {
                    victims.push(pid);
                }
            }
        }
        if victims.is_empty() {
            break;
        }
        for pid in &victims {
            let _ = Command::new("kill").args(["-KILL", pid]).stderr(Stdio::null()).status();
        }
        thread::sleep(Duration::from_millis(50));
    }
    // Deepest mount points first.
    let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mount_path))
        .filter(|m| m.starts_with(&dir_s))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    for m in mounts {
        let _ = Command::new("umount")
            .args(["-l", &m])
            .stderr(Stdio::null())
            .status();
    }
    remove_container_cgroups(dir);
}

/// Removes the cgroups of the daemon's containers (`berth/<id>` in every hierarchy):
/// shims killed above never got to remove them, and the test machine is shared.
fn remove_container_cgroups(dir: &Path) {
    let ids: Vec<String> = fs::read_dir(dir.join("root/containers"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    let roots: Vec<PathBuf> = match fs::read_dir("/sys/fs/cgroup") {
        Ok(d) if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => {
            drop(d);
            vec![PathBuf::from("/sys/fs/cgroup")]
        }
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    for id in ids.iter().filter(|i| i.len() == 64) {
        for r in &roots {
            let _ = fs::remove_dir(r.join("berth").join(id));
        }
    }
}

fn unescape_mount_path(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c)) {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command with stdin closed, collecting stdout/stderr; kills it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, shown: String, timeout: Duration) -> Run {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
    collect(child, shown, timeout)
}

/// Like [`run_with_timeout`], with `input` written to the command's stdin, then EOF.
pub fn run_with_input(mut cmd: Command, shown: String, input: &[u8], timeout: Duration) -> Run {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let t_in = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let r = collect(child, shown, timeout);
    let _ = t_in.join();
    r
}

fn collect(mut child: Child, shown: String, timeout: Duration) -> Run {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    match status {
        Some(s) => Run { cmd: shown, code: s.code().unwrap_or(-1), stdout, stderr },
        None => panic!(
            "`{shown}` did not finish within {timeout:?} (BERTH_E2E_TIMEOUT); killed.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}

/// Polls `f` every 50 ms until it returns `Some`; panics with `what` after `timeout`.
#[track_caller]
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Command lines (`argv` joined by spaces) of every process on the host, by pid.
pub fn host_processes() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmdline = fs::read(e.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim_end().to_string())
                .unwrap_or_default();
            out.push((pid, cmdline));
        }
    }
    out
}

/// A client command running in the background, its stdout/stderr going to files, so a
/// test can look at what it printed so far (`logs -f`, `events`, `attach`, ...).
pub struct Background {
    child: Option<Child>,
    pub cmd: String,
    out_path: PathBuf,
    err_path: PathBuf,
}

impl Background {
    fn spawn(mut cmd: Command, shown: String, dir: &Path) -> Background {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let out_path = dir.join(format!("bg{n}.out"));
        let err_path = dir.join(format!("bg{n}.err"));
        let out = fs::File::create(&out_path).expect("create background stdout file");
        let err = fs::File::create(&err_path).expect("create background stderr file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
        Background { child: Some(child), cmd: shown, out_path, err_path }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.out_path).unwrap_or_default()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.err_path).unwrap_or_default()).into_owned()
    }

    /// Waits until stdout contains `needle`; panics (showing the output) after `timeout`.
    #[track_caller]
    pub fn expect_stdout(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            if out.contains(needle) {
                return out;
            }
            if Instant::now() >= deadline {
                panic!("`{}`: no {needle:?} on stdout within {timeout:?}\n--- stdout ---\n{out}\n--- stderr ---\n{}", self.cmd, self.stderr());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (e.g. "INT") to the client process.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status();
    }

    /// Waits for the client to exit; `None` if it is still running after `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Run> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    self.child = None;
                    return Some(Run { cmd: self.cmd.clone(), code: s.code().unwrap_or(-1), stdout: self.stdout(), stderr: self.stderr() });
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
    }

    /// Waits for the client to exit; panics after `timeout`.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Run {
        match self.wait_timeout(timeout) {
            Some(r) => r,
            None => panic!("`{}` still running after {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.cmd, self.stdout(), self.stderr()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A client running on a real pseudo-terminal: the test types into the master and
/// reads everything the client writes to its terminal.
pub struct PtySession {
    child: Option<Child>,
    pub cmd: String,
    master: fs::File,
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Bytes of `buf` already consumed by `expect`.
    pos: usize,
}


impl PtySession {
    /// Opens a pty of `rows`×`cols` and runs `cmd` with the slave as stdin/stdout/stderr
    /// under `setsid -c` (new session, the pty as controlling terminal), as a terminal
    /// emulator would.
    pub fn spawn(cmd: Command, shown: String, rows: u16, cols: u16) -> PtySession {
        use std::os::fd::AsFd;
        let pty = berth_sys::pty::open_pty(Path::new("/dev/ptmx"), Path::new("/dev/pts")).expect("open a pty");
        berth_sys::pty::set_winsize(pty.master.as_fd(), rows, cols).expect("TIOCSWINSZ on the new pty");
        let (master, slave) = (pty.master, pty.slave);
        let mut wrapped = Command::new("setsid");
        wrapped.arg("-c").arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        wrapped.env("TERM", "xterm");
        let s1 = slave.try_clone().expect("dup pty slave");
        let s2 = slave.try_clone().expect("dup pty slave");
        wrapped.stdin(Stdio::from(slave)).stdout(Stdio::from(s1)).stderr(Stdio::from(s2));
        let child = wrapped.spawn().unwrap_or_else(|e| panic!("spawn `{shown}` on a pty: {e}"));
        drop(wrapped); // closes our copies of the slave, so EOF/EIO shows the client is gone
        let mut reader = master.try_clone().expect("dup pty master");
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let b2 = buf.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break, // EIO once every slave fd is closed
                    Ok(n) => {
                        if let Ok(mut b) = b2.lock() {
                            b.extend_from_slice(&chunk[..n]);
                        }
                    }
                }
            }
        });
        PtySession { child: Some(child), cmd: shown, master, buf, pos: 0 }
    }

    /// Everything the client wrote to its terminal so far.
    pub fn transcript(&self) -> String {
        let b = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Types `bytes` (raw: use `\r` for Enter, `\x04` for Ctrl-D).
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to pty master");
        let _ = self.master.flush();
    }

    /// Waits until `needle` appears in output not yet consumed; returns the output up to
    /// and including it and consumes it. Panics with the transcript after `timeout`.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = {
                let b = self.buf.lock().map(|b| b[self.pos.min(b.len())..].to_vec()).unwrap_or_default();
                b
            };
            if let Some(i) = text.windows(needle.len().max(1)).position(|w| w == needle.as_bytes()) {
                let end = i + needle.len();
                self.pos += end;
                return String::from_utf8_lossy(&text[..end]).into_owned();
            }
            if Instant::now() >= deadline {
                panic!(
                    "`{}`: no {needle:?} on the terminal within {timeout:?}\n--- unconsumed output ---\n{:?}\n--- whole transcript ---\n{:?}",
                    self.cmd,
                    String::from_utf8_lossy(&text),
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Changes the terminal size (TIOCSWINSZ on the master; the kernel then sends
    /// SIGWINCH to the client, which is the terminal's foreground process group).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        use std::os::fd::AsFd;
        berth_sys::pty::set_winsize(self.master.as_fd(), rows, cols).expect("TIOCSWINSZ on the pty master");
        let _ = Command::new("kill").args(["-WINCH", &self.pid().to_string()]).status();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits for the client to exit and returns its exit code; panics after `timeout`.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        let Some(child) = self.child.as_mut() else { panic!("`{}` already waited for", self.cmd) };
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    self.child = None;
                    return s.code().unwrap_or(-1);
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => panic!("`{}` still running after {timeout:?}\n--- transcript ---\n{:?}", self.cmd, self.transcript()),
            }
        }
    }

    /// True while the client has not exited.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Parses a raw HTTP/1.1 response (Content-Length, chunked, or until close).
pub fn parse_response(raw: &[u8], head: bool) -> std::io::Result<HttpResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad(&format!("no header end in {:?}", String::from_utf8_lossy(raw))))?;
    let head_text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    let body = if head || status == 204 || status == 304 {
        Vec::new()
    } else if chunked {
        let mut out = Vec::new();
        let mut r = rest;
        while let Some(eol) = r.windows(2).position(|w| w == b"\r\n") {
            let size_txt = String::from_utf8_lossy(&r[..eol]).into_owned();
            let size = usize::from_str_radix(size_txt.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(&format!("bad chunk size {size_txt:?}")))?;
            r = &r[eol + 2..];
            if size == 0 || r.len() < size {
                out.extend_from_slice(&r[..size.min(r.len())]);
                break;
            }
            out.extend_from_slice(&r[..size]);
            r = r.get(size + 2..).unwrap_or(&[]);
        }
        out
    } else if let Some((_, len)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
        let n: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, headers, body })
}

/// True if `s` is `n` lowercase hex digits.
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Splits a tabwriter table line into its cells: columns are separated by 2+ spaces
/// (Docker pads with 3), while a cell may itself contain single spaces ("IMAGE ID").
pub fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut spaces = 0;
    for ch in line.trim_end().chars() {
        if ch == ' ' {
            spaces += 1;
            continue;
        }
        if spaces >= 2 {
            out.push(std::mem::take(&mut cur));
        } else {
            for _ in 0..spaces {
                cur.push(' ');
            }
        }
        spaces = 0;
        cur.push(ch);
    }
    out.push(cur);
    out
}

/// Generates one `#[test]` per client for a case that must behave the same through
/// `berth` and the real `docker` CLI:
///
/// ```ignore
/// both!(fn run_hello(d, cli) { d.cli(cli, &["run", "hello-world"]).ok(); });
/// ```
#[macro_export]
macro_rules! both {
    ($(#[$m:meta])* fn $name:ident($d:ident, $cli:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_mut)]
            fn case(mut $d: $crate::Daemon, $cli: $crate::Cli) $body
            $(#[$m])*
            #[test]
            fn berth() {
                case($crate::Daemon::start(), $crate::Cli::Berth)
            }
            $(#[$m])*
            #[test]
            fn docker() {
                case($crate::Daemon::start(), $crate::Cli::Docker)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked() {
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n{\"message\":\"page not found\"}", false).expect("parse");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["message"], "page not found");
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n3\r\n!!!\r\n0\r\n\r\n", false).expect("parse");
        assert_eq!(r.text(), "OK!!!");
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", true).expect("parse");
        assert!(r.body.is_empty());
    }

    #[test]
    fn splits_table_cells() {
        assert_eq!(cells("NAMES     IMAGE"), vec!["NAMES", "IMAGE"]);
        assert_eq!(
            cells("REPOSITORY   TAG       IMAGE ID       CREATED        SIZE"),
            vec!["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        );
        assert_eq!(cells("web       Up 2 seconds"), vec!["web", "Up 2 seconds"]);
    }

    #[test]
    fn hex_check() {
        assert!(is_hex("0123456789ab", 12));
        assert!(!is_hex("0123456789aB", 12));
        assert!(!is_hex("0123", 12));
    }
}
