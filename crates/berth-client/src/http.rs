//! Minimal blocking HTTP/1.1: write one request, parse one response head, and read the
//! body with whatever framing the server chose (Content-Length, chunked, until close).
//! Kept hand-rolled because `berth run` has a tight startup budget.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

/// A connection: the buffered reader owns the socket; writes go through `get_mut()`.
pub type Conn = BufReader<UnixStream>;

/// A request body.
pub enum ReqBody<'a> {
    None,
    /// Bodiless POST/PUT/DELETE: `Content-Length: 0` as the docker CLI sends.
    Empty,
    Bytes { content_type: &'a str, data: &'a [u8] },
    /// Streamed with `Transfer-Encoding: chunked`.
    Chunked { content_type: &'a str, reader: &'a mut dyn Read },
}

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: ReqBody<'a>,
}

/// Serializes a request head (and a non-streamed body) exactly once into one buffer, so
/// each request costs a single `write` syscall.
pub fn write_request(w: &mut UnixStream, req: Request<'_>) -> io::Result<()> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(req.method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(req.path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Berth-Client/");
    head.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    head.extend_from_slice(b" (linux)\r\n");
    for (k, v) in req.headers {
        head.extend_from_slice(k.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match req.body {
        ReqBody::None => {
            head.extend_from_slice(b"\r\n");
            w.write_all(&head)
        }
        ReqBody::Empty => {
            head.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            w.write_all(&head)
        }
        ReqBody::Bytes { content_type, data } => {
            head.extend_from_slice(format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes());
            head.extend_from_slice(data);
            w.write_all(&head)
        }
        ReqBody::Chunked { content_type, reader } => {
            head.extend_from_slice(format!("Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes());
            w.write_all(&head)?;
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let mut chunk = format!("{n:x}\r\n").into_bytes();
                chunk.extend_from_slice(&buf[..n]);
                chunk.extend_from_slice(b"\r\n");
                w.write_all(&chunk)?;
            }
            w.write_all(b"0\r\n\r\n")
        }
    }
}

/// Status line and headers of a response.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn read_line(r: &mut impl BufRead, line: &mut String) -> io::Result<usize> {
    line.clear();
    let n = r.read_line(line)?;
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(n)
}

/// Reads a response head. Informational 1xx answers other than 101 are skipped.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Head> {
    let mut line = String::new();
    loop {
        if read_line(r, &mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before response"));
        }
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let proto = parts.next().unwrap_or("");
        if !proto.starts_with("HTTP/") {
            return Err(bad(format!("malformed HTTP response {line:?}")));
        }
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("malformed status line {line:?}")))?;
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            if read_line(r, &mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in response headers"));
            }
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok(Head { status, reason, headers });
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD, 204, 304, 1xx).
    Empty,
    Length(u64),
    Chunked,
    /// Read until the server closes; the connection cannot be reused.
    Close,
}

pub fn framing(method: &str, head: &Head) -> Framing {
    if method == "HEAD" || head.status == 204 || head.status == 304 || (100..200).contains(&head.status) {
        return Framing::Empty;
    }
    if head.header("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Framing::Chunked;
    }
    if let Some(n) = head.header("Content-Length").and_then(|v| v.parse().ok()) {
        return Framing::Length(n);
    }
    Framing::Close
}

/// A body reader over any buffered reader, decoding the framing.
pub struct BodyReader<R> {
    inner: R,
    framing: Framing,
    /// Bytes left in the current chunk (chunked) or in the body (length).
    left: u64,
    done: bool,
}

impl<R: BufRead> BodyReader<R> {
    pub fn new(inner: R, framing: Framing) -> Self {
        let (left, done) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(n) => (n, n == 0),
            _ => (0, false),
        };
        BodyReader { inner, framing, left, done }
    }

    /// True once the whole body has been read and the connection can carry another request.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut line = String::new();
        if read_line(&mut self.inner, &mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, crate::UNEXPECTED_EOF));
        }
        let size = line.split(';').next().unwrap_or("").trim();
        let n = u64::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if n == 0 {
            // Trailers until an empty line.
            loop {
                if read_line(&mut self.inner, &mut line)? == 0 || line.is_empty() {
                    break;
                }
            }
            self.done = true;
        }
        self.left = n;
        Ok(())
    }
}

impl<R: BufRead> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::Empty => Ok(0),
            Framing::Close => {
                let n = self.inner.read(buf)?;
                if n == 0 {
                    self.done = true;
                }
                Ok(n)
            }
            Framing::Length(_) => {
                let max = buf.len().min(self.left as usize);
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in body"));
                }
                self.left -= n as u64;
                if self.left == 0 {
                    self.done = true;
                }
                Ok(n)
            }
            Framing::Chunked => {
                while self.left == 0 {
                    self.next_chunk()?;
                    if self.done {
                        return Ok(0);
                    }
                }
                let max = buf.len().min(self.left as usize);
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in chunk"));
                }
                self.left -= n as u64;
                if self.left == 0 {
                    let mut crlf = String::new();
                    read_line(&mut self.inner, &mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// Percent-encodes a query value the way Go's `url.Values.Encode` does.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `path?k=v&…` with Go's encoding, keys in the order given.
pub fn with_query(path: &str, params: &[(&str, String)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let mut out = String::from(path);
    out.push('?');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&query_escape(k));
        out.push('=');
        out.push_str(&query_escape(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(raw: &str, method: &str) -> (Head, Vec<u8>) {
        let mut r = Cursor::new(raw.as_bytes().to_vec());
        let head = read_head(&mut r).expect("head");
        let f = framing(method, &head);
        let mut body = Vec::new();
        BodyReader::new(&mut r, f).read_to_end(&mut body).expect("body");
        (head, body)
    }

    #[test]
    fn response_framings() {
        let cases: &[(&str, &str, u16, &str)] = &[
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKextra", "GET", 200, "OK"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", "GET", 200, "abcde"),
            ("HTTP/1.1 200 OK\r\n\r\nuntil close", "GET", 200, "until close"),
            ("HTTP/1.1 204 No Content\r\n\r\n", "POST", 204, ""),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 200, ""),
            ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", "POST", 201, ""),
        ];
        for (raw, method, status, body) in cases {
            let (h, b) = parse(raw, method);
            assert_eq!(h.status, *status, "{raw:?}");
            assert_eq!(String::from_utf8_lossy(&b), *body, "{raw:?}");
        }
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let (h, _) = parse("HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n", "GET");
        assert_eq!(h.header("api-version"), Some("1.41"));
    }

    #[test]
    fn query_encoding_like_go() {
        assert_eq!(
            with_query("/images/create", &[("fromImage", "localhost:5000/busybox".into()), ("tag", "latest".into())]),
            "/images/create?fromImage=localhost%3A5000%2Fbusybox&tag=latest"
        );
        assert_eq!(query_escape(r#"{"name":{"web":true}}"#), "%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D");
    }
}
