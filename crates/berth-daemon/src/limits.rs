//! The daemon's resource limits at the HTTP edge (docs/security.md): how many
//! connections it serves at once, how long a client may take to send a request head or
//! a JSON body, and how large a JSON body may be. Parsed here from flags and
//! daemon.json; `read_body` is the one place a buffered request body is read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::http::{error, Resp};

/// The limits in force, fixed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Largest buffered (JSON) request body, in bytes.
    pub max_request_body: u64,
    /// Time a connection has to deliver a complete request head, counted from its
    /// opening or from the end of its previous response (so also the keep-alive idle
    /// timeout). None: no limit.
    pub header_read_timeout: Option<Duration>,
    /// Time a client has to deliver a whole buffered (JSON) request body. None: no limit.
    pub body_read_timeout: Option<Duration>,
    /// Largest unpacked build context (`POST /build`), in bytes.
    pub max_build_context: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_request_body: 16 << 20,
            header_read_timeout: Some(Duration::from_secs(30)),
            body_read_timeout: Some(Duration::from_secs(60)),
            max_build_context: 4 << 30,
        }
    }
}

/// A daemon.json value that may be written as a number or a string (`16777216`,
/// `"16MiB"`, `30`, `"30s"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NumOrStr {
    Num(u64),
    Str(String),
}

impl NumOrStr {
    fn text(&self) -> String {
        match self {
            NumOrStr::Num(n) => n.to_string(),
            NumOrStr::Str(s) => s.clone(),
        }
    }
}

/// The limit settings as given (flag first, then daemon.json, then the default).
#[derive(Debug, Default)]
pub struct LimitSettings {
    pub max_connections: Option<NumOrStr>,
    pub max_request_body: Option<NumOrStr>,
    pub header_read_timeout: Option<NumOrStr>,
    pub body_read_timeout: Option<NumOrStr>,
    pub max_build_context: Option<NumOrStr>,
}

impl LimitSettings {
    pub fn resolve(&self) -> Result<Limits, String> {
        let d = Limits::default();
        let max_connections = match &self.max_connections {
            None => d.max_connections,
            Some(v) => match v.text().trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("invalid max-connections {:?}: expected a positive number", v.text())),
            },
        };
        let max_request_body = match &self.max_request_body {
            None => d.max_request_body,
            Some(v) => match parse_size(&v.text()) {
                Some(n) if n > 0 => n,
                _ => return Err(format!("invalid max-request-body {:?}: expected a size such as 16MiB", v.text())),
            },
        };
        let max_build_context = match &self.max_build_context {
            None => d.max_build_context,
            Some(v) => match parse_size(&v.text()) {
                Some(n) if n > 0 => n,
                _ => return Err(format!("invalid max-build-context {:?}: expected a size such as 4GiB", v.text())),
            },
        };
        let timeout = |name: &str, v: &Option<NumOrStr>, default: Option<Duration>| match v {
            None => Ok(default),
            Some(v) => match parse_duration(&v.text()) {
                Some(t) if t.is_zero() => Ok(None),
                Some(t) => Ok(Some(t)),
                None => Err(format!("invalid {name} {:?}: expected a duration such as 30s", v.text())),
            },
        };
        Ok(Limits {
            max_connections,
            max_request_body,
            header_read_timeout: timeout("header-read-timeout", &self.header_read_timeout, d.header_read_timeout)?,
            body_read_timeout: timeout("body-read-timeout", &self.body_read_timeout, d.body_read_timeout)?,
            max_build_context,
        })
    }
}

/// `16777216`, `512k`, `16m`, `16MiB`, `1g`, `1GB`: bytes, binary units (as Docker's
/// RAMInBytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// `30` (seconds), `30s`, `500ms`, `2m`, `1h`; `0` disables.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// Bodies at least this large make the heap be trimmed once their request is answered.
const TRIM_AFTER: usize = 1 << 20;

/// Set when a large body was buffered since the last trim.
static LARGE_BODY_READ: AtomicBool = AtomicBool::new(false);

/// After a request: if a large body was buffered, give the freed memory back to the
/// system (glibc keeps it otherwise; see BENCHMARKS.md "Request body memory").
pub fn trim_after_large_bodies() {
    if LARGE_BODY_READ.swap(false, Ordering::SeqCst) {
        tokio::task::spawn_blocking(berth_engine::trim_heap);
    }
}

fn too_large(max: u64) -> Resp {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is too large: the daemon accepts at most {max} bytes (max-request-body)"),
    )
}

/// Reads a whole request body that is to be parsed (JSON), never holding more than
/// `max_request_body` bytes: a declared Content-Length above the cap is refused before
/// any of it is read, a chunked body as soon as it passes the cap (413). A body not
/// delivered within `body_read_timeout` is answered 408. Either way hyper then closes
/// the connection, since the rest of the body was not read.
pub async fn read_body<B>(body: &mut B, headers: &HeaderMap, limits: &Limits) -> Result<Bytes, Resp>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let max = limits.max_request_body;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let read = async {
        let capacity = usize::try_from(declared.unwrap_or(0).min(max)).unwrap_or(0);
        let mut buf = BytesMut::with_capacity(capacity);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| error(StatusCode::BAD_REQUEST, &e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() as u64).saturating_add(data.len() as u64) > max {
                    LARGE_BODY_READ.store(true, Ordering::SeqCst);
                    return Err(too_large(max));
                }
                buf.extend_from_slice(&data);
                if buf.len() >= TRIM_AFTER {
                    LARGE_BODY_READ.store(true, Ordering::SeqCst);
                }
            }
        }
        Ok(buf.freeze())
    };
    match limits.body_read_timeout {
        None => read.await,
        Some(t) => match tokio::time::timeout(t, read).await {
            Ok(r) => r,
            Err(_) => Err(error(
                StatusCode::REQUEST_TIMEOUT,
                &format!("timed out reading the request body after {t:?} (body-read-timeout)"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<u64>)] = &[
            ("16777216", Some(16 << 20)),
            ("16MiB", Some(16 << 20)),
            ("16m", Some(16 << 20)),
            ("512k", Some(512 << 10)),
            ("1GB", Some(1 << 30)),
            ("10b", Some(10)),
            ("", None),
            ("m", None),
            ("12x", None),
            ("-1", None),
            ("99999999999999999999g", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s), *want, "{s:?}");
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("30", Some(Duration::from_secs(30))),
            ("30s", Some(Duration::from_secs(30))),
            ("500ms", Some(Duration::from_millis(500))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("0", Some(Duration::ZERO)),
            ("1.5s", None),
            ("s", None),
            ("10d", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s), *want, "{s:?}");
        }
    }

    #[test]
    fn settings_resolve() {
        assert_eq!(LimitSettings::default().resolve(), Ok(Limits::default()));
        let s = LimitSettings {
            max_connections: Some(NumOrStr::Num(10)),
            max_request_body: Some(NumOrStr::Str("1m".into())),
            header_read_timeout: Some(NumOrStr::Str("0".into())),
            body_read_timeout: Some(NumOrStr::Num(5)),
            max_build_context: Some(NumOrStr::Str("2MiB".into())),
        };
        assert_eq!(
            s.resolve(),
            Ok(Limits {
                max_connections: 10,
                max_request_body: 1 << 20,
                header_read_timeout: None,
                body_read_timeout: Some(Duration::from_secs(5)),
                max_build_context: 2 << 20,
            })
        );
        for bad in [
            LimitSettings { max_connections: Some(NumOrStr::Num(0)), ..Default::default() },
            LimitSettings { max_request_body: Some(NumOrStr::Str("big".into())), ..Default::default() },
            LimitSettings { header_read_timeout: Some(NumOrStr::Str("soon".into())), ..Default::default() },
        ] {
            assert!(bad.resolve().is_err(), "{bad:?}");
        }
    }

    fn limits(max: u64) -> Limits {
        Limits { max_request_body: max, ..Limits::default() }
    }

    fn length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, n.into());
        h
    }

    #[tokio::test]
    async fn body_within_the_cap_is_read_whole() {
        let mut b = Full::new(Bytes::from_static(b"{\"a\":1}"));
        let got = read_body(&mut b, &length(7), &limits(7)).await.expect("read");
        assert_eq!(&got[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn declared_length_over_the_cap_is_413_unread() {
        let mut b = Full::new(Bytes::from_static(b"0123456789"));
        let r = read_body(&mut b, &length(10), &limits(9)).await.expect_err("too large");
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Nothing was read.
        assert!(!hyper::body::Body::is_end_stream(&b));
        let body = r.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(v["message"].as_str().unwrap_or("").contains("at most 9 bytes"), "{v}");
    }

    #[tokio::test]
    async fn chunked_body_over_the_cap_stops_at_the_cap() {
        // An endless chunked body: reading must stop once the cap is passed.
        let chunks = futures_util::stream::repeat_with(|| {
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'x'; 1000])))
        });
        let mut b = StreamBody::new(chunks);
        let r = read_body(&mut b, &HeaderMap::new(), &limits(10_000)).await.expect_err("too large");
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn stalled_body_times_out_408() {
        let stalled = futures_util::stream::pending::<Result<Frame<Bytes>, std::convert::Infallible>>();
        let mut b = StreamBody::new(stalled);
        let l = Limits { body_read_timeout: Some(Duration::from_millis(10)), ..Limits::default() };
        let r = read_body(&mut b, &HeaderMap::new(), &l).await.expect_err("timeout");
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
