//! Connections: the accept loop and the life of one HTTP/1 connection.
//!
//! - At most `max_connections` connections are served at once; at the cap the loop
//!   stops accepting (clients wait in the listen backlog) instead of spinning.
//! - Accept errors (EMFILE, ENFILE, …) back off from 50 ms up to 1 s and are logged at
//!   most once per 10 s with the number of errors not logged.
//! - hyper's header read timeout closes a connection that has not sent a complete
//!   request head within `header_read_timeout` of its opening or of the end of its
//!   previous response. It never runs while a response streams (`logs -f`, `events`,
//!   `stats`, `wait`) nor after an upgrade (attach, exec), where hyper is out of the way.
//! - A client that goes away mid-request (EOF or error on read) ends the connection and
//!   so drops the handler's future: a `stop` or `wait` whose client is gone stops
//!   waiting (no half-close: as Go's server, a read EOF cancels the request).
//! - hyper answers a request it cannot parse with an empty 400/414/431; `ErrorBodies`
//!   rewrites that answer into one carrying Docker's `{"message": …}` body.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::{routes, State};

/// Accept-error pacing: the delay before the next accept and whether to log this one.
#[derive(Debug, Default)]
struct AcceptErrors {
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    const MIN_DELAY: Duration = Duration::from_millis(50);
    const MAX_DELAY: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    /// After a failed accept at `now`: how long to wait, and the line to log, if any.
    fn failed(&mut self, now: Instant, err: &dyn std::fmt::Display) -> (Duration, Option<String>) {
        self.delay = (self.delay * 2).clamp(Self::MIN_DELAY, Self::MAX_DELAY);
        let due = self.last_log.is_none_or(|t| now.duration_since(t) >= Self::LOG_EVERY);
        if !due {
            self.suppressed += 1;
            return (self.delay, None);
        }
        let line = if self.suppressed > 0 {
            format!("accept: {err} ({} more accept errors in the last {}s not logged)", self.suppressed, Self::LOG_EVERY.as_secs())
        } else {
            format!("accept: {err}")
        };
        self.last_log = Some(now);
        self.suppressed = 0;
        (self.delay, Some(line))
    }

    /// After a successful accept: the next error waits the shortest delay again (the
    /// log interval stays, so alternating success and failure cannot flood the log).
    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

pub async fn serve(listener: UnixListener, state: State) {
    let slots = Arc::new(Semaphore::new(state.limits.max_connections));
    let mut errors = AcceptErrors::default();
    loop {
        // At the cap: wait for a connection to end before accepting another.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let stream = loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    errors.succeeded();
                    break s;
                }
                Err(e) => {
                    let (delay, line) = errors.failed(Instant::now(), &e);
                    if let Some(line) = line {
                        tracing::warn!("{line}");
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            serve_connection(stream, state).await;
            drop(permit);
        });
    }
}

/// Where a connection is, as far as rewriting hyper's error answers goes.
const IDLE: u8 = 0; // between requests: the next response, if any, is hyper's own
const BUSY: u8 = 1; // a handler's response is being produced or written
const RAW: u8 = 2; // upgraded: the bytes are the container's, never touched

/// The largest request head berthd reads (Go's `http.DefaultMaxHeaderBytes`).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The connection's socket as a request extension, so that a hijacking handler can see
/// when the client has read the `101` (see `hijack::relay`). Valid while the connection
/// lives, which an upgraded stream keeps alive.
#[derive(Clone, Copy, Debug)]
pub struct ConnFd(pub std::os::fd::RawFd);

async fn serve_connection(stream: UnixStream, state: State) {
    let conn_fd = ConnFd(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let mode = Arc::new(AtomicU8::new(IDLE));
    let io = ErrorBodies { inner: stream, mode: mode.clone(), pending: None };
    let limits = state.limits;
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let mode = mode.clone();
        req.extensions_mut().insert(conn_fd);
        async move {
            mode.store(BUSY, Ordering::SeqCst);
            tracing::debug!("Calling {} {}", req.method(), req.uri().path());
            let mut guard = Abandoned { what: format!("{} {}", req.method(), req.uri().path()), done: false };
            let resp = routes::handle(state, req).await;
            guard.done = true;
            crate::limits::trim_after_large_bodies();
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                mode.store(RAW, Ordering::SeqCst);
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked { inner: b, mode }.boxed()))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Go's `http.DefaultMaxHeaderBytes`, which dockerd uses: a request head over
        // 1 MiB is a 431. Set explicitly: hyper's own buffer limit alone is checked only
        // between reads, so a head just over it could still be accepted or refused
        // depending on how the bytes arrived. The buffer has room for the largest head.
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES + 64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(io), svc).with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}

/// Logs (debug) a handler dropped before it answered: its client went away.
struct Abandoned {
    what: String,
    done: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.done {
            tracing::debug!("client went away: abandoned {}", self.what);
        }
    }
}

/// A response body that marks the connection idle again once hyper drops it.
struct Tracked {
    inner: crate::http::Body,
    mode: Arc<AtomicU8>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = self.mode.compare_exchange(BUSY, IDLE, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// hyper's own answer to an unparsable request: written while no handler response is
/// under way, and without the `Api-Version` header every handler answer carries.
fn hypers_error_status(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let code: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if !matches!(code, 400 | 414 | 431) {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    (!head.contains("\r\napi-version:")).then_some(code)
}

/// The answer written instead: the same status with Docker's error body.
fn error_answer(code: u16) -> Vec<u8> {
    let (reason, message) = match code {
        414 => ("URI Too Long", "request URI too long"),
        431 => ("Request Header Fields Too Large", "request header fields too large"),
        _ => ("Bad Request", "malformed HTTP request"),
    };
    let body = format!("{}\n", serde_json::json!({ "message": message }));
    format!(
        "HTTP/1.1 {code} {reason}\r\nApi-Version: {}\r\nContent-Type: application/json\r\nServer: Berth/{} (linux)\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        berth_api::version::MAX_API_VERSION,
        env!("CARGO_PKG_VERSION"),
        body.len(),
    )
    .into_bytes()
}

/// The connection's stream, rewriting hyper's empty error answers (see module doc).
struct ErrorBodies {
    inner: UnixStream,
    mode: Arc<AtomicU8>,
    /// A replacement being written: its bytes, how many are written, and the length of
    /// hyper's buffer it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl ErrorBodies {
    fn intercept(&mut self, buf: &[u8]) -> bool {
        if self.pending.is_none() && self.mode.load(Ordering::SeqCst) == IDLE {
            if let Some(code) = hypers_error_status(buf) {
                self.pending = Some((error_answer(code), 0, buf.len()));
            }
        }
        self.pending.is_some()
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let Some((bytes, written, stands_for)) = self.pending.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if *written == bytes.len() {
                let n = *stands_for;
                self.pending = None;
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for ErrorBodies {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ErrorBodies {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.intercept(buf) {
            return self.poll_pending(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if self.intercept(first) {
                return self.poll_pending(cx);
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_and_log_once_per_interval() {
        let mut a = AcceptErrors::default();
        let t0 = Instant::now();
        let (d, line) = a.failed(t0, &"Too many open files");
        assert_eq!(d, Duration::from_millis(50));
        assert_eq!(line.as_deref(), Some("accept: Too many open files"));
        let mut delays = Vec::new();
        for i in 1..=1000u32 {
            let (d, line) = a.failed(t0 + Duration::from_millis(i.into()), &"Too many open files");
            assert!(line.is_none(), "error {i} logged inside the interval");
            delays.push(d);
        }
        assert_eq!(&delays[..5], &[100, 200, 400, 800, 1000].map(Duration::from_millis));
        assert_eq!(delays.last(), Some(&Duration::from_secs(1)));
        let (_, line) = a.failed(t0 + Duration::from_secs(10), &"Too many open files");
        assert_eq!(
            line.as_deref(),
            Some("accept: Too many open files (1000 more accept errors in the last 10s not logged)")
        );
        a.succeeded();
        let (d, line) = a.failed(t0 + Duration::from_secs(11), &"x");
        assert_eq!(d, Duration::from_millis(50));
        assert!(line.is_none());
    }

    #[test]
    fn only_hypers_own_error_answers_are_rewritten() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n", Some(400)),
            (b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n", Some(414)),
            (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n", Some(431)),
            // A handler's 400 carries Api-Version.
            (b"HTTP/1.1 400 Bad Request\r\napi-version: 1.43\r\ncontent-length: 3\r\n\r\n{}\n", None),
            (b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", None),
            (b"HTTP/1.1 400 Bad Request\r\ncontent-len", None),
            (b"\x01\x00\x00\x00\x00\x00\x00\x02hi", None),
        ];
        for (buf, want) in cases {
            assert_eq!(hypers_error_status(buf), *want, "{:?}", String::from_utf8_lossy(buf));
        }
        let a = String::from_utf8(error_answer(431)).expect("utf8");
        assert!(a.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{a}");
        let (head, body) = a.split_once("\r\n\r\n").expect("head");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{a}");
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["message"], "request header fields too large");
    }
}
