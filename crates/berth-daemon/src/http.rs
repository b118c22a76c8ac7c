//! Response building blocks: bodies (full, empty, streamed), JSON answers, Docker's
//! error body, and the one place where an engine error kind becomes an HTTP status.

use std::convert::Infallible;

use berth_api::version::MAX_API_VERSION;
use berth_engine::{Error, ErrorKind};
use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use tokio::sync::mpsc;

/// A body's error aborts the response mid-stream (no last chunk): how a client
/// learns that a streamed archive was cut short.
pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

fn never(e: Infallible) -> std::io::Error {
    match e {}
}

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(never).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(never).boxed()
}

/// A body fed from a channel: sent chunked, each message flushed as it comes.
pub fn channel_body(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(capacity);
    let s = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(s).boxed())
}

/// Headers every answer carries (the CLI negotiates from `Api-Version`).
pub fn common_headers(resp: &mut Resp) {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(MAX_API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
}

pub fn status_only(status: StatusCode) -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            let mut r = Response::new(full(body));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub fn error(status: StatusCode, message: &str) -> Resp {
    json(status, &berth_api::ErrorResponse { message: message.to_string() })
}

/// Engine error kind → Docker's status code.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Unavailable | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn from_error(e: &Error) -> Resp {
    let status = status_of(e.kind());
    if status == StatusCode::NOT_MODIFIED {
        return status_only(status);
    }
    error(status, &e.message)
}

/// One JSON object followed by a newline, as Docker's streams carry them.
pub fn json_line<T: Serialize>(v: &T) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// Docker's 8-byte stream header followed by the payload.
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(&[stream, 0, 0, 0]);
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(payload);
    Bytes::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_docker_headers() {
        assert_eq!(&frame(1, b"hi\n")[..], &[1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
    }

    #[test]
    fn kinds_map_to_statuses() {
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::Conflict), StatusCode::CONFLICT);
        assert_eq!(status_of(ErrorKind::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(ErrorKind::Internal), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_of(ErrorKind::NotImplemented), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(status_of(ErrorKind::Forbidden), StatusCode::FORBIDDEN);
    }
}
