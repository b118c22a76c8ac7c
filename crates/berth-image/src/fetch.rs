//! `docker import URL`: the archive fetched over HTTP(S) and handed on as a stream of
//! chunks (never buffered whole), with Docker's texts when the URL cannot be fetched.
//! The store's `import` reads the stream; the engine wires the two together.

use std::io;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::ErrorKind;

/// A fetch that did not get an archive: Docker's text and the kind of failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FetchError {}

/// Docker's normalisation of an import source: without a scheme it is `http://`.
pub fn import_url(src: &str) -> String {
    if src.contains("://") {
        src.to_string()
    } else {
        format!("http://{src}")
    }
}

/// The innermost cause's text (what Go's error would end with).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// GETs `url` (already normalised by [`import_url`]); on a 2xx/3xx answer returns its
/// body as chunks (a cut transfer ends in an error item) and its length if known.
pub async fn fetch(url: &str) -> Result<(mpsc::Receiver<io::Result<Bytes>>, Option<u64>), FetchError> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| FetchError { kind: ErrorKind::Internal, message: e.to_string() })?;
    let mut resp = client.get(url).send().await.map_err(|e| FetchError {
        kind: if e.is_builder() { ErrorKind::InvalidArgument } else { ErrorKind::Internal },
        message: format!("Get {url:?}: {}", root_cause(&e)),
    })?;
    let status = resp.status();
    if status.as_u16() >= 400 {
        // Docker's GetWithStatusError: the status and the start of the body.
        let mut body = Vec::new();
        while body.len() < 1024 {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        body.truncate(1024);
        let kind = match status.as_u16() {
            404 => ErrorKind::NotFound,
            400..=499 => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        return Err(FetchError {
            kind,
            message: format!(
                "failed to GET {url} with status {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
        });
    }
    let length = resp.content_length();
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if tx.send(Ok(c)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, root_cause(&e)))).await;
                    return;
                }
            }
        }
    });
    Ok((rx, length))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn sources_without_a_scheme_are_http() {
        for (src, want) in [
            ("127.0.0.1:8080/x.tar", "http://127.0.0.1:8080/x.tar"),
            ("http://h/x", "http://h/x"),
            ("https://h/x", "https://h/x"),
        ] {
            assert_eq!(import_url(src), want);
        }
    }

    /// A one-shot HTTP server on 127.0.0.1 answering every request with `answer`.
    fn serve(answer: Vec<u8>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&answer);
            }
        });
        format!("http://{addr}/x.tar")
    }

    #[tokio::test]
    async fn fetch_streams_the_body_and_words_failures_like_docker() {
        let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec());
        let (mut rx, len) = fetch(&url).await.unwrap();
        assert_eq!(len, Some(5));
        let mut got = Vec::new();
        while let Some(c) = rx.recv().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, b"hello");

        let url = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nno such\n  ".to_vec());
        let e = fetch(&url).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.message, format!("failed to GET {url} with status 404 Not Found: no such"));

        // Nothing listens on the port of a listener that was dropped.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/x.tar");
        let e = fetch(&url).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.starts_with(&format!("Get \"{url}\": ")), "{}", e.message);
        assert!(e.message.to_lowercase().contains("refused"), "{}", e.message);
    }
}
