//! Extra registries for the auth, TLS and push tests: real Debian `docker-registry`
//! instances (never the fixture registry on :5000) on free 127.0.0.1 ports, with
//! htpasswd basic auth, TLS from a CA the test makes with `openssl`, client-certificate
//! checks, or token auth against [`TokenServer`] — a token-server test double (Docker
//! Hub's auth service cannot run here) that signs real RS256 JWTs with `openssl`, which
//! the real registry verifies. Everything lives in a temp dir and dies on drop.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The user and password every auth-enabled test registry accepts.
pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret";

fn sh(script: &str, dir: &Path) {
    let out = Command::new("bash").arg("-ec").arg(script).current_dir(dir).output().expect("run bash");
    assert!(
        out.status.success(),
        "script failed:\n{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A CA, a server certificate for `127.0.0.1` and `vm` (this machine's name for
/// 127.0.0.1 in /etc/hosts) and a client certificate, all made with openssl in `dir`:
/// ca.crt/ca.key, server.crt/server.key, client.cert/client.key.
pub fn make_pki(dir: &Path) {
    sh(
        r#"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=berth-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=vm 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:vm,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=berth-client 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.cert -days 2 -extfile client.ext 2>/dev/null
"#,
        dir,
    );
}

/// How a [`TestRegistry`] is protected.
pub enum Auth {
    None,
    /// htpasswd basic auth with [`USER`]/[`PASSWORD`].
    Basic,
    /// Token auth against a [`TokenServer`] at this realm URL, service `berth-test`.
    Token { realm: String, cert: PathBuf },
}

/// A `docker-registry` on `127.0.0.1:<port>`.
pub struct TestRegistry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    /// Starts a registry; `tls` makes it serve https with a certificate of a fresh CA
    /// (`self.dir/ca.crt`), `client_certs` also requires a client certificate of it.
    pub fn start(auth: Auth, tls: bool, client_certs: bool) -> TestRegistry {
        let dir = tempfile::Builder::new().prefix("breg-").tempdir_in("/tmp").expect("temp dir");
        let d = dir.path();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            d.join("data").display()
        );
        if tls {
            make_pki(d);
            cfg.push_str(&format!(
                "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\n",
                d.display()
            ));
            if client_certs {
                cfg.push_str(&format!("    clientcas:\n      - {}/ca.crt\n", d.display()));
            }
        }
        match auth {
            Auth::None => {}
            Auth::Basic => {
                sh(&format!("htpasswd -Bbn {USER} {PASSWORD} > htpasswd"), d);
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}/htpasswd\n",
                    d.display()
                ));
            }
            Auth::Token { realm, cert } => {
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: berth-test\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
                    cert.display()
                ));
            }
        }
        fs::write(d.join("config.yml"), cfg).expect("write registry config");
        let child = Self::spawn(d);
        let mut r = TestRegistry { port, dir, child };
        r.wait_listening();
        r
    }

    fn spawn(d: &Path) -> Child {
        let log = fs::OpenOptions::new().create(true).append(true).open(d.join("registry.log")).expect("registry log");
        Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)")
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("docker-registry exited ({st}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "docker-registry did not listen:\n{}", self.log());
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freezes the registry (SIGSTOP): requests in flight hang.
    pub fn freeze(&self) {
        let _ = Command::new("kill").arg("-STOP").arg(self.child.id().to_string()).status();
    }

    /// Kills the registry (SIGKILL; a frozen one too): connections reset, new ones are
    /// refused.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.dir.path());
        self.wait_listening();
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Copies an image of the fixture registry into this one with skopeo (an
    /// independent client), as `repo:tag` under `host` (`addr()` or `vm:<port>`).
    pub fn seed(&self, host: &str, fixture: &str, repo_tag: &str, creds: bool) {
        self.seed_with(host, fixture, repo_tag, creds, &[]);
    }

    /// [`TestRegistry::seed`] with extra `skopeo copy` flags (`--format oci
    /// --dest-compress-format zstd`).
    pub fn seed_with(&self, host: &str, fixture: &str, repo_tag: &str, creds: bool, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"]);
        cmd.args(extra);
        if creds {
            cmd.arg(format!("--dest-creds={USER}:{PASSWORD}"));
        }
        let cert_dir = self.dir.path().join("skopeo-certs");
        if self.dir.path().join("client.cert").exists() {
            fs::create_dir_all(&cert_dir).expect("skopeo cert dir");
            for f in ["client.cert", "client.key", "ca.crt"] {
                fs::copy(self.dir.path().join(f), cert_dir.join(f)).expect("copy cert");
            }
            cmd.arg(format!("--dest-cert-dir={}", cert_dir.display()));
        }
        cmd.arg(format!("docker://{}/{fixture}", crate::registry()));
        cmd.arg(format!("docker://{host}/{repo_tag}"));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token-server test double: `GET /token?service=&scope=[&offline_token=true]`
/// with basic auth [`USER`]/[`PASSWORD`] (or none: an anonymous token without access)
/// and `POST /token` with `grant_type=refresh_token` (the refresh token it issued).
/// Wrong credentials get Docker Hub's `401 {"details":"incorrect username or password"}`.
pub struct TokenServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
}

/// The refresh token the double hands out with `offline_token=true`.
pub const REFRESH_TOKEN: &str = "berth-refresh-1";

impl TokenServer {
    pub fn start() -> TokenServer {
        let dir = tempfile::Builder::new().prefix("btok-").tempdir_in("/tmp").expect("temp dir");
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout token.key -out token.crt -days 2 -subj /CN=berth-token 2>/dev/null\nopenssl x509 -in token.crt -outform der | openssl base64 -A > token.x5c",
            dir.path(),
        );
        let l = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, d) = (stop.clone(), dir.path().to_path_buf());
        thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let d = d.clone();
                        thread::spawn(move || serve_token(s, &d));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer { port, dir, stop }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("token.crt")
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let v: Vec<u8> = s.bytes().filter_map(val).collect();
    let mut out = Vec::new();
    for c in v.chunks(4) {
        let mut n = 0u32;
        for (i, x) in c.iter().enumerate() {
            n |= (*x as u32) << (18 - 6 * i);
        }
        for i in 0..c.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(h.unwrap_or(b'%'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn serve_token(mut s: TcpStream, dir: &Path) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut ps = params(query);
    if method == "POST" {
        ps.extend(params(&body));
    }
    let get = |k: &str| ps.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
    let basic = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("authorization") {
            return None;
        }
        let enc = v.trim().strip_prefix("Basic ")?;
        Some(String::from_utf8_lossy(&b64_decode(enc)).into_owned())
    });
    let good = format!("{USER}:{PASSWORD}");
    let (authorized, refresh) = if method == "POST" {
        (get("grant_type").as_deref() == Some("refresh_token") && get("refresh_token").as_deref() == Some(REFRESH_TOKEN), false)
    } else {
        match &basic {
            Some(b) if *b == good => (true, get("offline_token").as_deref() == Some("true")),
            Some(_) => {
                let msg = r#"{"details":"incorrect username or password"}"#;
                let _ = write!(s, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
                return;
            }
            None => (false, false),
        }
    };
    let mut access = Vec::new();
    if authorized {
        for (k, v) in &ps {
            if k != "scope" {
                continue;
            }
            for scope in v.split(' ') {
                let mut it = scope.splitn(3, ':');
                if let (Some(t), Some(n), Some(a)) = (it.next(), it.next(), it.next()) {
                    let actions: Vec<String> = a.split(',').map(|x| format!("{x:?}")).collect();
                    access.push(format!(r#"{{"type":{t:?},"name":{n:?},"actions":[{}]}}"#, actions.join(",")));
                }
            }
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let x5c = fs::read_to_string(dir.join("token.x5c")).unwrap_or_default();
    let header = format!(r#"{{"typ":"JWT","alg":"RS256","x5c":["{}"]}}"#, x5c.trim());
    let sub = if authorized { USER } else { "" };
    let claims = format!(
        r#"{{"iss":"berth-test-issuer","sub":"{sub}","aud":"berth-test","exp":{},"nbf":{},"iat":{},"jti":"{}","access":[{}]}}"#,
        now + 600,
        now - 60,
        now - 60,
        now,
        access.join(",")
    );
    let signing_input = format!("{}.{}", b64url(header.as_bytes()), b64url(claims.as_bytes()));
    let mut child = match Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("token.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(signing_input.as_bytes());
    }
    let sig = child.wait_with_output().map(|o| o.stdout).unwrap_or_default();
    let token = format!("{signing_input}.{}", b64url(&sig));
    let extra = if refresh { format!(r#","refresh_token":"{REFRESH_TOKEN}""#) } else { String::new() };
    let resp = format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":600{extra}}}"#);
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{resp}",
        resp.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_helpers() {
        assert_eq!(b64url(b"tester:s3cret"), "dGVzdGVyOnMzY3JldA");
        assert_eq!(b64_decode("dGVzdGVyOnMzY3JldA=="), b"tester:s3cret");
        assert_eq!(pct_decode("repository%3Ame%2Fbusybox%3Apull"), "repository:me/busybox:pull");
    }
}
