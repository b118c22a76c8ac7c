//! Stream decoders: Docker's 8-byte multiplexed frames (attach, logs) and the JSON
//! message streams of pull/push/build/load.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use berth_api::JsonMessage;

/// Copies a multiplexed stream: frame stream 0/1 → `stdout`, 2 → `stderr`. Each frame is
/// flushed as it arrives so interleaving stays as close to the container's as possible.
pub fn demux<R: Read, O: Write, E: Write>(mut r: R, stdout: &mut O, stderr: &mut E) -> io::Result<()> {
    let mut hdr = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // A clean EOF is only allowed on a frame boundary.
        let mut got = 0;
        while got < 8 {
            match r.read(&mut hdr[got..]) {
                Ok(0) if got == 0 => return Ok(()),
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated stream frame header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let kind = hdr[0];
        if kind > 2 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("Unrecognized input header: {kind}")));
        }
        let mut left = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        while left > 0 {
            let want = left.min(buf.len());
            let n = match r.read(&mut buf[..want]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated stream frame")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            left -= n;
            // A closed local stdout (e.g. `| head`) must not abort draining the stream.
            let _ = if kind == 2 { stderr.write_all(&buf[..n]) } else { stdout.write_all(&buf[..n]) };
        }
        let _ = if kind == 2 { stderr.flush() } else { stdout.flush() };
    }
}

/// Copies a raw (TTY) stream to `out`.
pub fn copy_raw<R: Read, O: Write>(mut r: R, out: &mut O) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
    }
}

/// An error reported inside a JSON message stream (`errorDetail`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamError {
    pub code: Option<i64>,
    pub message: String,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StreamError {}

/// Why displaying a JSON message stream stopped early.
#[derive(Debug)]
pub enum DisplayError {
    Io(io::Error),
    Stream(StreamError),
}

impl std::fmt::Display for DisplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisplayError::Io(e) => write!(f, "{e}"),
            DisplayError::Stream(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DisplayError {}

/// Iterates the JSON objects of a message stream (newline-separated or just concatenated).
pub fn json_messages<R: Read>(r: R) -> impl Iterator<Item = io::Result<JsonMessage>> {
    serde_json::Deserializer::from_reader(r)
        .into_iter::<JsonMessage>()
        .map(|m| m.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)))
}

fn has_progress(m: &JsonMessage) -> bool {
    m.progress_detail.as_ref().is_some_and(|p| p.current.unwrap_or(0) > 0 || p.total.unwrap_or(0) > 0)
}

/// Renders one message like Docker's `jsonmessage.Display`.
fn display_one(out: &mut dyn Write, m: &JsonMessage, tty: bool) -> io::Result<()> {
    let mut endl = "";
    if tty && m.stream.is_none() && m.progress_detail.is_some() {
        out.write_all(b"\x1b[2K\r")?;
        endl = "\r";
    } else if has_progress(m) {
        // Progress bars are dropped when the output is not a terminal.
        return Ok(());
    }
    if let Some(id) = m.id.as_deref().filter(|s| !s.is_empty()) {
        write!(out, "{id}: ")?;
    }
    let status = m.status.as_deref().unwrap_or("");
    if tty && m.progress_detail.is_some() {
        write!(out, "{status} {}{endl}", m.progress.as_deref().unwrap_or(""))?;
    } else if let Some(s) = m.stream.as_deref().filter(|s| !s.is_empty()) {
        write!(out, "{s}{endl}")?;
    } else {
        writeln!(out, "{status}{endl}")?;
    }
    Ok(())
}

/// Displays a JSON message stream the way `docker pull` does. `aux` receives auxiliary
/// messages (image IDs from build/push). Stops at the first `errorDetail`.
pub fn display_json_messages<R: Read>(
    r: R,
    out: &mut dyn Write,
    tty: bool,
    mut aux: impl FnMut(&serde_json::Value),
) -> Result<(), DisplayError> {
    let mut ids: HashMap<String, usize> = HashMap::new();
    for m in json_messages(r) {
        let m = m.map_err(DisplayError::Io)?;
        if let Some(a) = &m.aux {
            aux(a);
            continue;
        }
        if m.error_detail.is_some() || m.error.is_some() {
            let (code, message) = match &m.error_detail {
                Some(d) if !d.message.is_empty() => (d.code, d.message.clone()),
                Some(d) => (d.code, m.error.clone().unwrap_or_default()),
                None => (None, m.error.clone().unwrap_or_default()),
            };
            return Err(DisplayError::Stream(StreamError { code, message }));
        }
        let mut diff = 0;
        let id = m.id.clone().unwrap_or_default();
        if !id.is_empty() && (m.progress_detail.is_some() || m.progress.is_some()) {
            let n = ids.len();
            let line = match ids.get(&id) {
                Some(l) => *l,
                None => {
                    ids.insert(id.clone(), n);
                    if tty {
                        out.write_all(b"\n").map_err(DisplayError::Io)?;
                    }
                    n
                }
            };
            diff = ids.len() - line;
            if tty && diff > 0 {
                write!(out, "\x1b[{diff}A").map_err(DisplayError::Io)?;
            }
        } else {
            ids.clear();
        }
        display_one(out, &m, tty).map_err(DisplayError::Io)?;
        if tty && !id.is_empty() && diff > 0 {
            write!(out, "\x1b[{diff}B").map_err(DisplayError::Io)?;
        }
        out.flush().map_err(DisplayError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn demux_splits_streams() {
        let mut input = frame(1, b"hi\n");
        input.extend(frame(2, b"err\n"));
        input.extend(frame(1, b"/data\nB\n"));
        let (mut o, mut e) = (Vec::new(), Vec::new());
        demux(&input[..], &mut o, &mut e).expect("demux");
        assert_eq!(o, b"hi\n/data\nB\n");
        assert_eq!(e, b"err\n");
    }

    #[test]
    fn demux_rejects_raw_bytes() {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let err = demux(&b"hello world"[..], &mut o, &mut e).expect_err("raw");
        assert_eq!(err.to_string(), "Unrecognized input header: 104");
    }

    #[test]
    fn pull_stream_non_tty() {
        let input = r#"{"status":"Pulling from uq","id":"latest"}
{"status":"Already exists","progressDetail":{},"id":"b85c45f69b7a"}
{"status":"Downloading","progressDetail":{"current":36445,"total":3073128},"progress":"[>  ]","id":"6622afed2486"}
{"status":"Pull complete","progressDetail":{},"id":"6622afed2486"}
{"status":"Digest: sha256:4a2c"}
{"progressDetail":{},"aux":{"Tag":"latest"}}
{"status":"Status: Downloaded newer image for localhost:5000/uq:latest"}
"#;
        let mut out = Vec::new();
        let mut auxes = 0;
        display_json_messages(input.as_bytes(), &mut out, false, |_| auxes += 1).expect("display");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "latest: Pulling from uq\nb85c45f69b7a: Already exists\n6622afed2486: Pull complete\nDigest: sha256:4a2c\nStatus: Downloaded newer image for localhost:5000/uq:latest\n"
        );
        assert_eq!(auxes, 1);
    }

    #[test]
    fn stream_error_stops() {
        let input = r#"{"stream":"bad\n"}{"errorDetail":{"code":3,"message":"boom"},"error":"boom"}"#;
        let mut out = Vec::new();
        match display_json_messages(input.as_bytes(), &mut out, false, |_| {}) {
            Err(DisplayError::Stream(e)) => assert_eq!(e, StreamError { code: Some(3), message: "boom".into() }),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(out, b"bad\n");
    }
}
