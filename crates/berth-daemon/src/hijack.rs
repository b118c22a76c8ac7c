//! Hijacked connections (attach, exec start): answer 101, then relay bytes between
//! the client and the shim's stream until the shim closes it.
//!
//! Rules from the trace: the client's half-close is stdin EOF only (output keeps
//! flowing); the end of output is signalled by closing the connection; non-TTY output
//! keeps Docker's 8-byte frames, TTY output is raw. The shim ends an exec stream with a
//! frame of stream 3 carrying the exit code, which is never forwarded. The detach
//! sequence (ctrl-p ctrl-q by default) in stdin ends the relay and leaves the process
//! running. Without an `Upgrade` header (some SDKs) the output is sent as an ordinary
//! streamed 200 body instead.

use std::future::Future;
use std::os::unix::net::UnixStream as StdUnixStream;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::http::{channel_body, empty, Resp};
use crate::routes::Ctx;

/// Called with the exit code an exec stream ends with.
pub type OnExit = Box<dyn FnOnce(i64) + Send>;

pub fn to_tokio(s: StdUnixStream) -> std::io::Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

/// Reads the shim's frames and writes them to `out`: with headers for non-TTY, bare
/// payloads for TTY; a stream-3 frame reports the exit code.
pub async fn pump_output<R, W>(mut from: R, mut out: W, tty: bool, mut on_exit: Option<OnExit>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if header[0] == 3 {
            let mut code = vec![0u8; len];
            from.read_exact(&mut code).await?;
            let code = std::str::from_utf8(&code).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(-1);
            if let Some(f) = on_exit.take() {
                f(code);
            }
            continue;
        }
        if !tty {
            out.write_all(&header).await?;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            from.read_exact(&mut buf[..n]).await?;
            out.write_all(&buf[..n]).await?;
            left -= n;
        }
        out.flush().await?;
    }
    out.flush().await
}

/// Parses `ctrl-p,ctrl-q`-style detach keys into bytes (Docker's syntax).
pub fn detach_sequence(keys: &str) -> Vec<u8> {
    let keys = if keys.is_empty() { "ctrl-p,ctrl-q" } else { keys };
    keys.split(',')
        .filter_map(|k| {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let c = c.chars().next()?;
                match c {
                    'a'..='z' => Some(c as u8 - b'a' + 1),
                    '@' => Some(0),
                    '[' => Some(27),
                    '\\' => Some(28),
                    ']' => Some(29),
                    '^' => Some(30),
                    '_' => Some(31),
                    _ => None,
                }
            } else if k.len() == 1 {
                k.bytes().next()
            } else {
                None
            }
        })
        .collect()
}

/// Copies stdin to the shim until EOF or the detach sequence; returns true on detach.
async fn pump_input<R, W>(mut from: R, mut to: W, detach: &[u8]) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut matched = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if !detach.is_empty() && b == detach[matched] {
                matched += 1;
                if matched == detach.len() {
                    let _ = to.write_all(&out).await;
                    return true;
                }
                continue;
            }
            if matched > 0 {
                out.extend_from_slice(&detach[..matched]);
                matched = 0;
            }
            out.push(b);
        }
        if to.write_all(&out).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    false
}

pub struct Relay {
    pub tty: bool,
    pub stdin: bool,
    pub detach_keys: String,
    pub on_exit: Option<OnExit>,
    /// Bytes written to the client before the live stream, already in the client's
    /// framing (attach's `logs=1` replay).
    pub prelude: Option<mpsc::Receiver<Bytes>>,
}

/// What a relay's source yields: the shim's stream and, for a container attach, the
/// [`berth_engine::StreamGuard`] kept until the relay has written its last byte (the
/// exit handling waits for it, so `wait` answers after the output went out).
pub type Source = Option<(StdUnixStream, Option<berth_engine::StreamGuard>)>;

fn content_type(ctx: &Ctx, tty: bool) -> &'static str {
    let multiplexed = ctx
        .version
        .as_deref()
        .and_then(berth_api::version::ApiVersion::parse)
        .is_some_and(|v| v >= berth_api::version::ApiVersion { major: 1, minor: 42 })
        && !tty;
    if multiplexed {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// Answers the hijack and relays once `source` yields the shim stream (None: the
/// process never started; the connection is just closed).
/// How long a relay waits for the client to read the `101` before sending more.
const HEAD_READ_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Waits until the client has read everything sent on its connection (the `101` head),
/// at most [`HEAD_READ_WAIT`]. Clients such as docker-py read the head through a
/// buffered reader and then switch to the raw socket: bytes that arrived with the head
/// would sit in that buffer and be lost. Docker leaves this to timing (its replay of
/// `logs=1` usually comes later than the client's read); Berth checks.
async fn client_read_the_head(fd: crate::conn::ConnFd) {
    let deadline = tokio::time::Instant::now() + HEAD_READ_WAIT;
    while berth_engine::unread_by_peer(fd.0).is_ok_and(|n| n > 0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

pub fn relay<F>(ctx: &mut Ctx, opts: Relay, source: F) -> Resp
where
    F: Future<Output = Source> + Send + 'static,
{
    let upgrade = ctx
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp") || u.eq_ignore_ascii_case("h2c"));
    let ctype = content_type(ctx, opts.tty);
    let Relay { tty, stdin, detach_keys, on_exit, prelude } = opts;
    if !upgrade {
        // Plain streamed answer: output only.
        let (tx, body) = channel_body(16);
        tokio::spawn(async move {
            if let Some(mut p) = prelude {
                while let Some(b) = p.recv().await {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            let Some((s, _hold)) = source.await else { return };
            let Ok(s) = to_tokio(s) else { return };
            let (r, mut w) = s.into_split();
            let _ = w.shutdown().await;
            let (pr, mut pw) = tokio::io::duplex(64 * 1024);
            let pump = tokio::spawn(pump_output(r, pr, tty, on_exit));
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match pw.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = pump.await;
        });
        let mut r = Response::new(body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        return r;
    }
    let conn_fd = ctx.req.extensions().get::<crate::conn::ConnFd>().copied();
    let on_upgrade = hyper::upgrade::on(&mut ctx.req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("upgrade failed: {e}");
                return;
            }
        };
        if let Some(fd) = conn_fd {
            client_read_the_head(fd).await;
        }
        let (mut client_r, mut client_w) = tokio::io::split(TokioIo::new(upgraded));
        if let Some(mut p) = prelude {
            while let Some(b) = p.recv().await {
                if client_w.write_all(&b).await.is_err() {
                    return;
                }
            }
            let _ = client_w.flush().await;
        }
        let Some((shim, _hold)) = source.await else {
            let _ = client_w.shutdown().await;
            return;
        };
        let Ok(shim) = to_tokio(shim) else { return };
        let (mut shim_r, mut shim_w) = shim.into_split();
        let detach = detach_sequence(&detach_keys);
        let (detached_tx, detached_rx) = tokio::sync::oneshot::channel::<()>();
        let input = tokio::spawn(async move {
            if stdin {
                if pump_input(&mut client_r, &mut shim_w, &detach).await {
                    let _ = detached_tx.send(());
                }
            } else {
                let mut sink = [0u8; 512];
                while matches!(client_r.read(&mut sink).await, Ok(n) if n > 0) {}
                let _ = shim_w.shutdown().await;
            }
        });
        tokio::select! {
            _ = pump_output(&mut shim_r, &mut client_w, tty, on_exit) => {}
            Ok(()) = detached_rx => {}
        }
        let _ = client_w.shutdown().await;
        input.abort();
    });
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(detach_sequence(""), vec![16, 17]);
        assert_eq!(detach_sequence("ctrl-a,x"), vec![1, b'x']);
    }

    #[tokio::test]
    async fn output_frames_and_exit_code() {
        let mut input = Vec::new();
        input.extend_from_slice(&crate::http::frame(1, b"hi\n"));
        input.extend_from_slice(&crate::http::frame(3, b"7"));
        let (code_tx, code_rx) = std::sync::mpsc::channel();
        let mut out = Vec::new();
        pump_output(&input[..], &mut out, false, Some(Box::new(move |c| code_tx.send(c).unwrap_or(()))))
            .await
            .expect("pump");
        assert_eq!(out, crate::http::frame(1, b"hi\n").to_vec());
        assert_eq!(code_rx.recv().expect("code"), 7);
        let mut raw = Vec::new();
        pump_output(&input[..], &mut raw, true, None).await.expect("pump");
        assert_eq!(raw, b"hi\n");
    }

    #[tokio::test]
    async fn input_stops_at_detach_keys() {
        let mut to = Vec::new();
        let detached = pump_input(&b"ab\x10c\x10\x11zz"[..], &mut to, &[16, 17]).await;
        assert!(detached);
        assert_eq!(to, b"ab\x10c");
    }
}
