//! Hijacked connections (attach, later exec start): answer 101, then relay bytes
//! between the client and the shim's stream until the shim closes it.
//!
//! Rules from the trace: the client's half-close is stdin EOF only (output keeps
//! flowing); the end of output is signalled by closing the connection; non-TTY output
//! keeps Docker's 8-byte frames, TTY output is raw. Without an `Upgrade` header (some
//! SDKs) the output is sent as an ordinary streamed 200 body instead.

use std::os::unix::net::UnixStream as StdUnixStream;

use berth_engine::AttachTicket;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http::{channel_body, empty, Resp};
use crate::routes::Ctx;

fn to_tokio(s: StdUnixStream) -> std::io::Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

/// Reads the shim's framed output and writes it to `out`, without headers for TTY.
async fn pump_output<R, W>(mut from: R, mut out: W, tty: bool) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !tty {
        tokio::io::copy(&mut from, &mut out).await?;
        return out.flush().await;
    }
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let mut left = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
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

pub fn relay(ctx: Ctx, tty: bool, ticket: AttachTicket, stdin: bool) -> Resp {
    let upgrade = ctx
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp") || u.eq_ignore_ascii_case("h2c"));
    let multiplexed_type = ctx
        .version
        .as_deref()
        .and_then(berth_api::version::ApiVersion::parse)
        .is_some_and(|v| v >= berth_api::version::ApiVersion { major: 1, minor: 42 })
        && !tty;
    let content_type = if multiplexed_type {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    if !upgrade {
        // Plain streamed answer: output only.
        let (tx, body) = channel_body(16);
        tokio::spawn(async move {
            let Some(s) = ticket.stream().await else { return };
            let Ok(s) = to_tokio(s) else { return };
            let (r, mut w) = s.into_split();
            let _ = w.shutdown().await;
            let (pr, mut pw) = tokio::io::duplex(64 * 1024);
            let pump = tokio::spawn(pump_output(r, pr, tty));
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
            pump.abort();
        });
        let mut r = Response::new(body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return r;
    }
    let req = ctx.req;
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach upgrade failed: {e}");
                return;
            }
        };
        let client = TokioIo::new(upgraded);
        let (mut client_r, client_w) = tokio::io::split(client);
        let Some(shim) = ticket.stream().await else { return };
        let Ok(shim) = to_tokio(shim) else { return };
        let (mut shim_r, mut shim_w) = shim.into_split();
        let input = tokio::spawn(async move {
            if stdin {
                let _ = tokio::io::copy(&mut client_r, &mut shim_w).await;
            } else {
                let mut sink = [0u8; 512];
                while matches!(client_r.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            let _ = shim_w.shutdown().await;
        });
        let mut client_w = client_w;
        let _ = pump_output(&mut shim_r, &mut client_w, tty).await;
        let _ = client_w.shutdown().await;
        input.abort();
    });
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    r
}
