//! Routes over a container's filesystem: `docker cp` (`HEAD`/`GET`/`PUT
//! /containers/{id}/archive`), `docker diff` (`/changes`), `docker export` and
//! `docker commit` (`POST /commit`). The engine's `fsops` does the work in a jail; this
//! file turns tars into streamed bodies and back, and the path stat into Docker's
//! `X-Docker-Container-Path-Stat` header.

use std::io;

use base64::Engine as _;
use berth_api::{ContainerConfig, IdResponse};
use berth_engine::fsops::{CommitOptions, ExtractOptions, PathStat, TarStream, UploadStream};
use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::http::{empty, error, from_error, json, Body, Resp};
use crate::routes::Ctx;
use crate::State;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// The tar as it is written; if the writing fails, the body ends in an error, which
/// makes hyper abort the chunked response (no last chunk), so the client reports an
/// unexpected EOF instead of taking a partial archive for a whole one.
pub(crate) fn stream_body(t: TarStream) -> Body {
    let s = stream::unfold(Some(t), |st| async move {
        let mut t = st?;
        if let Some(b) = t.data.recv().await {
            return Some((Ok(Frame::data(b)), Some(t)));
        }
        match t.done.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some((Err(io::Error::other(e)), None)),
            Err(_) => Some((Err(io::Error::other("the archive writer failed")), None)),
        }
    });
    StreamBody::new(s).boxed()
}

fn stat_header(stat: &PathStat) -> Option<HeaderValue> {
    let json = serde_json::to_vec(stat).ok()?;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json)).ok()
}

pub(crate) fn tar_response(body: Body, stat: Option<&PathStat>) -> Resp {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Some(v) = stat.and_then(stat_header) {
        r.headers_mut().insert(STAT_HEADER, v);
    }
    r
}

/// `HEAD` (stat only) and `GET` (stat + tar) `/containers/{id}/archive?path=`.
pub async fn get(state: &State, ctx: Ctx, id: &str) -> Resp {
    let path = ctx.q("path").to_string();
    if path.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad parameter: path cannot be empty",
        );
    }
    if ctx.req.method() == Method::HEAD {
        return match state.engine.stat_path(id, &path).await {
            Ok(stat) => tar_response(empty(), Some(&stat)),
            Err(e) => from_error(&e),
        };
    }
    match state.engine.archive_path(id, &path).await {
        Ok((stat, t)) => tar_response(stream_body(t), Some(&stat)),
        Err(e) => from_error(&e),
    }
}

/// A streamed request body (an archive of any size: the JSON body cap does not apply)
/// as the engine reads uploads; a body cut short ends in an error, not in EOF.
pub fn upload_stream(mut body: hyper::body::Incoming) -> UploadStream {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    // The client went away mid-archive: fail the extraction.
                    let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e.to_string()))).await;
                    break;
                }
            };
            if let Ok(data) = frame.into_data() {
                if tx.send(Ok(data)).await.is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`: the body is
/// a tar (usually chunked), fed to the extraction as it arrives.
pub async fn put(state: &State, ctx: Ctx, id: &str) -> Resp {
    let path = ctx.q("path").to_string();
    if path.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad parameter: path cannot be empty",
        );
    }
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: ctx.flag("noOverwriteDirNonDir"),
        copy_uid_gid: ctx.flag("copyUIDGID"),
    };
    let rx = upload_stream(ctx.req.into_body());
    match state.engine.extract_to_dir(id, &path, opts, rx).await {
        Ok(()) => Response::new(empty()),
        Err(e) => from_error(&e),
    }
}

/// `GET /containers/{id}/changes`.
pub async fn changes(state: &State, id: &str) -> Resp {
    match state.engine.changes(id).await {
        Ok(c) => json(StatusCode::OK, &c),
        Err(e) => from_error(&e),
    }
}

/// `GET /containers/{id}/export`.
pub async fn export(state: &State, id: &str) -> Resp {
    match state.engine.export(id).await {
        Ok(t) => tar_response(stream_body(t), None),
        Err(e) => from_error(&e),
    }
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=…` with an
/// optional container config as the body.
pub async fn commit(state: &State, mut ctx: Ctx) -> Resp {
    let changes = ctx.q_all("changes");
    let pause = ctx.q("pause").is_empty() || ctx.flag("pause");
    let mut opts = CommitOptions {
        container: ctx.q("container").to_string(),
        repo: ctx.q("repo").to_string(),
        tag: ctx.q("tag").to_string(),
        comment: ctx.q("comment").to_string(),
        author: ctx.q("author").to_string(),
        pause,
        changes,
        config: None,
    };
    let body = match ctx.body(&state.limits).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let trimmed = String::from_utf8_lossy(&body);
    let trimmed = trimmed.trim();
    if !trimmed.is_empty() && trimmed != "null" {
        match serde_json::from_str::<ContainerConfig>(trimmed) {
            Ok(c) => opts.config = Some(c),
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    match state.engine.commit(opts).await {
        Ok(id) => json(StatusCode::CREATED, &IdResponse { id }),
        Err(e) => from_error(&e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_cut_archive_ends_the_body_in_an_error() {
        // (how the writer ended, whether the body must fail): a clean end only when
        // the writer says so; an error or a vanished writer aborts the body.
        let cases: [(Option<std::result::Result<(), String>>, bool); 3] =
            [(Some(Ok(())), false), (Some(Err("read /x: I/O error".into())), true), (None, true)];
        for (end, fails) in cases {
            let (tx, rx) = mpsc::channel(2);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            tx.send(Bytes::from_static(b"part")).await.unwrap();
            drop(tx);
            match end.clone() {
                Some(r) => done_tx.send(r).unwrap(),
                None => drop(done_tx),
            }
            let body = stream_body(TarStream { data: rx, done: done_rx });
            let got = body.collect().await;
            assert_eq!(got.is_err(), fails, "{end:?}");
            if let Ok(b) = got {
                assert_eq!(&b.to_bytes()[..], b"part");
            }
        }
    }
}
