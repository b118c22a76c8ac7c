//! berth-client: the blocking Docker Engine API client used by the `berth` CLI.
//!
//! Owns HTTP/1.1 over the daemon's Unix socket (hand-rolled, one keep-alive connection
//! per invocation plus extra connections for concurrent and hijacked calls), API version
//! negotiation through `/_ping`, the upgrade handshake for attach/exec, and the stream
//! decoders. It must not use tokio or any engine crate: `berth run` has a tight startup
//! budget, so nothing here spawns runtimes or threads on its own.

#![forbid(unsafe_code)]

pub mod http;
pub mod stream;

use std::io::{self, BufReader, Read};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use berth_api::version::{ApiVersion, MAX_API_VERSION};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use http::{query_escape, with_query, BodyReader, Conn, Framing, Head};

/// The socket used when neither `-H` nor `BERTH_HOST`/`DOCKER_HOST` say otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/berth.sock";
/// The API version assumed when `/_ping` carries no `Api-Version` (as Docker does).
pub const FALLBACK_API_VERSION: &str = "1.24";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")]
    Connect { host: String, source: io::Error },
    /// A non-2xx answer. `message` is what Docker prints after `Error response from daemon: `.
    #[error("Error response from daemon: {message}")]
    Api { status: u16, message: String },
    /// A non-2xx answer without any body: Docker prints this text without the prefix.
    #[error("{0}")]
    Bare(String),
    /// A connection that broke: a stream the daemon cut short reads as Go's
    /// `unexpected EOF`, as the docker CLI prints it; anything else as a connect error.
    #[error("{}", io_text(.0))]
    Io(#[from] io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Host(String),
}

fn io_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        UNEXPECTED_EOF.to_string()
    } else {
        format!("error during connect: {e}")
    }
}

/// Go's `io.ErrUnexpectedEOF`: what the docker CLI prints when the daemon goes away in
/// the middle of a stream (`events`, `logs -f`, `wait`).
pub const UNEXPECTED_EOF: &str = "unexpected EOF";

impl Error {
    /// The HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The daemon's message (without the `Error response from daemon: ` prefix).
    pub fn message(&self) -> String {
        match self {
            Error::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Go's `http.StatusText` for the codes a daemon answers with.
pub fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Turns an error answer into the error Docker's client would report.
pub fn api_error(head: &Head, body: &[u8], url: &str) -> Error {
    let status = head.status;
    let is_json = head.header("Content-Type").is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    if body.is_empty() {
        return Error::Bare(format!(
            "request returned {status} {} for API route and version {url}, check if the server supports the requested API version",
            status_text(status)
        ));
    }
    if is_json {
        let msg = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .filter(|m| !m.is_empty());
        return match msg {
            Some(message) => Error::Api { status, message },
            None => Error::Api {
                status,
                message: format!("API returned a {status} ({}) but provided no error-message", status_text(status)),
            },
        };
    }
    Error::Api { status, message: String::from_utf8_lossy(body).trim().to_string() }
}

/// A streamed response: status, headers and a body reader that owns its connection.
pub struct Response {
    pub head: Head,
    pub body: BodyReader<Conn>,
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf)
    }
}

impl Response {
    /// Shuts the connection down, e.g. to abandon a pending `/wait`.
    pub fn close(&self) {
        let _ = self.body.get_ref().get_ref().shutdown(Shutdown::Both);
    }

    /// A handle on the socket (to shut it down from another thread).
    pub fn socket(&self) -> io::Result<UnixStream> {
        self.body.get_ref().get_ref().try_clone()
    }
}

/// A hijacked (upgraded) connection: raw bytes in both directions.
pub struct Hijacked {
    /// Reads the server's output; may already hold bytes that followed the 101 head.
    pub reader: Conn,
    pub writer: UnixStream,
}

impl Hijacked {
    /// Half-close: tells the server stdin is done while output keeps flowing.
    pub fn close_write(&self) -> io::Result<()> {
        self.writer.shutdown(Shutdown::Write)
    }
}

/// A request body for the typed helpers.
pub enum Body<'a> {
    None,
    Empty,
    Json(Vec<u8>),
    Raw { content_type: &'a str, data: &'a [u8] },
    Chunked { content_type: &'a str, reader: &'a mut dyn Read },
}

impl Body<'_> {
    pub fn json<T: Serialize>(v: &T) -> Body<'static> {
        Body::Json(serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()))
    }
}

/// A Docker Engine API client bound to one daemon address.
pub struct Client {
    host: String,
    socket: PathBuf,
    version: Option<String>,
    idle: Option<Conn>,
}

impl Client {
    /// `host` is a `unix://` URL (or a bare socket path).
    pub fn new(host: &str) -> Result<Client> {
        let socket = if let Some(p) = host.strip_prefix("unix://") {
            PathBuf::from(p)
        } else if host.starts_with('/') {
            PathBuf::from(host)
        } else {
            let proto = host.split("://").next().unwrap_or(host);
            return Err(Error::Host(format!("unsupported protocol: '{proto}'")));
        };
        Ok(Client { host: host.to_string(), socket, version: None, idle: None })
    }

    /// `-H/--host`, else `BERTH_HOST`, else `DOCKER_HOST`, else the default socket.
    pub fn resolve_host(flag: Option<&str>) -> String {
        if let Some(h) = flag.filter(|h| !h.is_empty()) {
            return h.to_string();
        }
        for var in ["BERTH_HOST", "DOCKER_HOST"] {
            if let Ok(h) = std::env::var(var) {
                if !h.is_empty() {
                    return h;
                }
            }
        }
        DEFAULT_HOST.to_string()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Another client for the same daemon and API version, with its own connections
    /// (for calls that must run concurrently, or from another thread).
    pub fn fork(&self) -> Client {
        Client { host: self.host.clone(), socket: self.socket.clone(), version: self.version.clone(), idle: None }
    }

    fn connect(&self) -> Result<Conn> {
        match UnixStream::connect(&self.socket) {
            Ok(s) => Ok(BufReader::with_capacity(64 * 1024, s)),
            Err(source) => Err(Error::Connect { host: self.host.clone(), source }),
        }
    }

    fn take_conn(&mut self) -> Result<(Conn, bool)> {
        match self.idle.take() {
            Some(c) => Ok((c, true)),
            None => Ok((self.connect()?, false)),
        }
    }

    /// Sends a request on `conn` and reads the response head. Only transport errors.
    fn roundtrip(conn: &mut Conn, method: &str, path: &str, headers: &[(&str, &str)], body: &mut Body<'_>) -> io::Result<Head> {
        let req_body = match body {
            Body::None => http::ReqBody::None,
            Body::Empty => http::ReqBody::Empty,
            Body::Json(data) => http::ReqBody::Bytes { content_type: "application/json", data },
            Body::Raw { content_type, data } => http::ReqBody::Bytes { content_type, data },
            Body::Chunked { content_type, reader } => http::ReqBody::Chunked { content_type, reader: &mut **reader },
        };
        http::write_request(conn.get_mut(), http::Request { method, path, headers, body: req_body })?;
        http::read_head(conn)
    }

    /// `HEAD /_ping` (GET as fallback) and pick min(our max, server's `Api-Version`).
    pub fn negotiate(&mut self) -> Result<String> {
        if let Some(v) = &self.version {
            return Ok(v.clone());
        }
        let mut conn = self.connect()?;
        let mut head = Self::roundtrip(&mut conn, "HEAD", "/_ping", &[], &mut Body::None);
        if let Ok(h) = &head {
            if h.status == 404 || h.status == 405 {
                let mut c2 = self.connect()?;
                head = Self::roundtrip(&mut c2, "GET", "/_ping", &[], &mut Body::None);
                if let Ok(h) = &head {
                    let mut sink = Vec::new();
                    let mut br = BodyReader::new(&mut c2, http::framing("GET", h));
                    let _ = br.read_to_end(&mut sink);
                }
                conn = c2;
            }
        }
        let version = match &head {
            Ok(h) => match h.header("Api-Version") {
                Some(v) => negotiated(v),
                None if h.status < 400 => FALLBACK_API_VERSION.to_string(),
                None => MAX_API_VERSION.to_string(),
            },
            Err(_) => MAX_API_VERSION.to_string(),
        };
        if head.is_ok() {
            self.idle = Some(conn);
        }
        self.version = Some(version.clone());
        Ok(version)
    }

    fn versioned(&mut self, path: &str) -> Result<String> {
        let v = self.negotiate()?;
        Ok(format!("/v{v}{path}"))
    }

    /// Sends a request and returns the response with its body unread. Non-2xx answers
    /// become `Error::Api`.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], mut body: Body<'_>) -> Result<Response> {
        let full = self.versioned(path)?;
        let (mut conn, reused) = self.take_conn()?;
        let replayable = !matches!(body, Body::Chunked { .. });
        let head = match Self::roundtrip(&mut conn, method, &full, headers, &mut body) {
            Ok(h) => h,
            Err(_) if reused && replayable => {
                // The server closed our idle keep-alive connection: retry once on a new one.
                conn = self.connect()?;
                Self::roundtrip(&mut conn, method, &full, headers, &mut body)?
            }
            Err(e) => return Err(Error::Io(e)),
        };
        let framing = http::framing(method, &head);
        let mut body = BodyReader::new(conn, framing);
        if head.status >= 400 {
            let mut data = Vec::new();
            let _ = body.read_to_end(&mut data);
            let url = format!("http://{}{}", query_escape(&self.socket.to_string_lossy()), full);
            return Err(api_error(&head, &data, &url));
        }
        Ok(Response { head, body })
    }

    /// Sends a request and reads the whole body; the connection is kept for reuse.
    pub fn call(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Body<'_>) -> Result<(Head, Vec<u8>)> {
        let mut resp = self.send(method, path, headers, body)?;
        let mut data = Vec::new();
        resp.body.read_to_end(&mut data)?;
        if resp.body.is_done() && resp.body.framing() != Framing::Close {
            self.idle = Some(resp.body.into_inner());
        }
        Ok((resp.head, data))
    }

    pub fn get_json<T: DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        let (_, data) = self.call("GET", path, &[], Body::None)?;
        decode(&data)
    }

    /// GET returning the raw body (for `inspect`, which prints unknown keys too).
    pub fn get_raw(&mut self, path: &str) -> Result<Vec<u8>> {
        Ok(self.call("GET", path, &[], Body::None)?.1)
    }

    pub fn post_json<B: Serialize, T: DeserializeOwned>(&mut self, path: &str, body: &B) -> Result<T> {
        let (_, data) = self.call("POST", path, &[], Body::json(body))?;
        decode(&data)
    }

    /// A bodiless POST (`Content-Length: 0`), body discarded.
    pub fn post(&mut self, path: &str) -> Result<Vec<u8>> {
        Ok(self.call("POST", path, &[], Body::Empty)?.1)
    }

    pub fn delete(&mut self, path: &str) -> Result<Vec<u8>> {
        Ok(self.call("DELETE", path, &[], Body::None)?.1)
    }

    /// Upgrades a new connection to a raw stream (container attach, exec start).
    pub fn hijack(&mut self, method: &str, path: &str, body: Body<'_>) -> Result<Hijacked> {
        let full = self.versioned(path)?;
        let mut conn = self.connect()?;
        let (content_type, data): (&str, &[u8]) = match &body {
            Body::Json(d) => ("application/json", d),
            Body::Raw { content_type, data } => (content_type, data),
            _ => ("text/plain", b""),
        };
        let headers = [("Connection", "Upgrade"), ("Upgrade", "tcp")];
        let mut b = Body::Raw { content_type, data };
        let head = Self::roundtrip(&mut conn, method, &full, &headers, &mut b)?;
        if head.status != 101 {
            if head.status >= 400 {
                let framing = http::framing(method, &head);
                let mut data = Vec::new();
                let _ = BodyReader::new(&mut conn, framing).read_to_end(&mut data);
                let url = format!("http://{}{}", query_escape(&self.socket.to_string_lossy()), full);
                return Err(api_error(&head, &data, &url));
            }
            return Err(Error::Protocol(format!("unable to upgrade to tcp, received {}", head.status)));
        }
        let writer = conn.get_ref().try_clone()?;
        Ok(Hijacked { reader: conn, writer })
    }
}

fn negotiated(server: &str) -> String {
    match (ApiVersion::parse(server), ApiVersion::parse(MAX_API_VERSION)) {
        (Some(s), Some(m)) if s < m => s.to_string(),
        (Some(_), Some(m)) => m.to_string(),
        _ => MAX_API_VERSION.to_string(),
    }
}

pub fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T> {
    let data: &[u8] = if data.iter().all(|b| b.is_ascii_whitespace()) { b"null" } else { data };
    serde_json::from_slice(data).map_err(|e| Error::Protocol(format!("error decoding response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader as StdBufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;
    use std::thread;

    /// A fake daemon: answers each request read on each connection with the next canned
    /// response and reports the request lines it saw.
    fn fake_daemon(answers: Vec<&'static str>) -> (tempdir::Dir, mpsc::Receiver<String>) {
        let dir = tempdir::Dir::new();
        let sock = dir.path.join("d.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        let (tx, rx) = mpsc::channel();
        let answers = std::sync::Arc::new(std::sync::Mutex::new(answers.into_iter()));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let answers = answers.clone();
                let tx = tx.clone();
                thread::spawn(move || {
                let mut w = stream.try_clone().expect("clone");
                let mut r = StdBufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).expect("hdr");
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).expect("body");
                    let _ = tx.send(format!("{} {}", line.trim(), String::from_utf8_lossy(&body)).trim().to_string());
                    let next = answers.lock().expect("lock").next();
                    match next {
                        Some(a) => w.write_all(a.as_bytes()).expect("answer"),
                        None => return,
                    }
                    if a_is_upgrade(&line) {
                        let _ = w.write_all(&[1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
                        let _ = w.shutdown(Shutdown::Write);
                        break;
                    }
                }
                });
            }
        });
        (dir, rx)
    }

    fn a_is_upgrade(line: &str) -> bool {
        line.contains("/attach")
    }

    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir()
                    .join(format!("berth-client-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
                std::fs::create_dir_all(&path).expect("mkdir");
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    const PING_141: &str = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn negotiation_table() {
        let cases: &[(&str, &str)] = &[
            (PING_141, "1.41"),
            ("HTTP/1.1 200 OK\r\nApi-Version: 1.99\r\nContent-Length: 0\r\n\r\n", MAX_API_VERSION),
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "1.24"),
            ("HTTP/1.1 500 Oops\r\nApi-Version: 1.30\r\nContent-Length: 0\r\n\r\n", "1.30"),
            ("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", MAX_API_VERSION),
        ];
        for (ping, want) in cases {
            let (dir, _rx) = fake_daemon(vec![ping]);
            let mut c = Client::new(&format!("unix://{}", dir.path.join("d.sock").display())).expect("client");
            assert_eq!(c.negotiate().expect("negotiate"), *want, "{ping:?}");
        }
    }

    #[test]
    fn keep_alive_and_errors() {
        let (dir, rx) = fake_daemon(vec![
            PING_141,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[{},{\r\n2\r\n}]\r\n0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 39\r\n\r\n{\"message\":\"No such container: nosuch\"}",
            "HTTP/1.1 204 No Content\r\n\r\n",
        ]);
        let mut c = Client::new(&format!("unix://{}", dir.path.join("d.sock").display())).expect("client");
        let v: Vec<serde_json::Value> = c.get_json("/containers/json?all=1").expect("list");
        assert_eq!(v.len(), 2);
        let err = c.post("/containers/nosuch/stop").expect_err("404");
        assert_eq!(err.to_string(), "Error response from daemon: No such container: nosuch");
        assert!(err.is_not_found());
        c.post("/containers/x/start").expect("start");
        let seen: Vec<String> = rx.try_iter().collect();
        assert_eq!(
            seen,
            vec![
                "HEAD /_ping HTTP/1.1",
                "GET /v1.41/containers/json?all=1 HTTP/1.1",
                "POST /v1.41/containers/nosuch/stop HTTP/1.1",
                "POST /v1.41/containers/x/start HTTP/1.1"
            ]
        );
    }

    #[test]
    fn hijack_reads_frames_after_101() {
        let (dir, _rx) = fake_daemon(vec![
            PING_141,
            "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
        ]);
        let mut c = Client::new(&format!("unix://{}", dir.path.join("d.sock").display())).expect("client");
        c.negotiate().expect("ping");
        let h = c.hijack("POST", "/containers/x/attach?stderr=1&stdout=1&stream=1", Body::None).expect("hijack");
        h.close_write().expect("half close");
        let (mut o, mut e) = (Vec::new(), Vec::new());
        stream::demux(h.reader, &mut o, &mut e).expect("demux");
        assert_eq!(o, b"hi\n");
    }

    #[test]
    fn error_bodies_like_docker() {
        let head = |ct: &str| Head { status: 500, reason: String::new(), headers: vec![("Content-Type".into(), ct.into())] };
        let cases: &[(&str, &str, &str)] = &[
            ("application/json", r#"{"message":"boom"}"#, "Error response from daemon: boom"),
            ("application/json", r#"{"error":"x"}"#, "Error response from daemon: API returned a 500 (Internal Server Error) but provided no error-message"),
            ("text/plain", "no such thing here\n", "Error response from daemon: no such thing here"),
            ("application/json", "", "request returned 500 Internal Server Error for API route and version http://x/v1.41/y, check if the server supports the requested API version"),
        ];
        for (ct, body, want) in cases {
            assert_eq!(api_error(&head(ct), body.as_bytes(), "http://x/v1.41/y").to_string(), *want);
        }
    }

    #[test]
    fn connect_failure_message() {
        let mut c = Client::new("unix:///nonexistent/berth.sock").expect("client");
        let err = c.negotiate().expect_err("no daemon");
        assert_eq!(err.to_string(), "Cannot connect to the Docker daemon at unix:///nonexistent/berth.sock. Is the docker daemon running?");
    }
}
