//! Reading a container's json-file log (written by the shim) for `GET /logs`:
//! tail, since/until, timestamps, and follow until the container stops.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::{timefmt, Engine};

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Last N lines; None = all.
    pub tail: Option<usize>,
    /// Unix seconds (fractional allowed).
    pub since: Option<f64>,
    pub until: Option<f64>,
    pub timestamps: bool,
}

/// One log record, ready to frame: stream 1 = stdout, 2 = stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub stream: u8,
    pub data: Vec<u8>,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// Parses one json-file line into (stream, time, text).
fn parse_line(line: &[u8]) -> Option<(u8, String, String)> {
    let l: Line = serde_json::from_slice(line).ok()?;
    let stream = if l.stream == "stderr" { 2 } else { 1 };
    Some((stream, l.time, l.log))
}

fn unix_secs(t: &str) -> f64 {
    timefmt::parse(t).map_or(0.0, |t| t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
}

/// Turns parsed lines into entries according to the options (tail applied by caller).
fn select(opts: &LogOptions, stream: u8, time: &str, text: String) -> Option<LogEntry> {
    if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
        return None;
    }
    if opts.since.is_some() || opts.until.is_some() {
        let t = unix_secs(time);
        if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t > u) {
            return None;
        }
    }
    let mut data = Vec::with_capacity(text.len() + 32);
    if opts.timestamps {
        // The file holds Go's RFC3339Nano (trailing zeros trimmed); `logs -t` prints
        // Docker's fixed nine-digit form.
        let fixed = timefmt::parse(time).map(timefmt::rfc3339_nano);
        data.extend_from_slice(fixed.as_deref().unwrap_or(time).as_bytes());
        data.push(b' ');
    }
    data.extend_from_slice(text.as_bytes());
    Some(LogEntry { stream, data })
}

/// The rotated json-file logs, oldest first, concatenated.
fn rotated_content(log: &std::path::Path) -> Vec<u8> {
    let mut files = Vec::new();
    for n in 1.. {
        let p = std::path::PathBuf::from(format!("{}.{n}", log.display()));
        if !p.exists() {
            break;
        }
        files.push(p);
    }
    let mut out = Vec::new();
    for p in files.iter().rev() {
        if let Ok(mut data) = std::fs::read(p) {
            out.append(&mut data);
        }
    }
    out
}

/// Splits complete lines off `buf`, leaving a trailing partial line in it.
fn take_lines(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
        let rest = buf.split_off(pos + 1);
        let mut line = std::mem::replace(buf, rest);
        line.pop();
        out.push(line);
    }
    out
}

impl Engine {
    /// `GET /containers/{id}/logs`: the container's TTY flag and a stream of entries.
    pub fn logs(&self, name_or_id: &str, opts: LogOptions) -> Result<(bool, mpsc::Receiver<LogEntry>)> {
        let c = self.lookup(name_or_id)?;
        let tty = c.tty();
        let path = self.log_path(&c.id);
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut notice = c.subscribe();
            let mut offset = 0u64;
            // Rotated files (`<log>.N` … `<log>.1`, oldest first) come before the live one.
            let p = path.clone();
            let mut partial = tokio::task::spawn_blocking(move || rotated_content(&p)).await.unwrap_or_default();
            let mut first = true;
            loop {
                // Observed before reading: once the container has stopped, the shim has
                // drained and closed the log, so this read is the last one needed.
                let stopped = !notice.borrow_and_update().running;
                let p = path.clone();
                let chunk = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Vec<u8>)> {
                    let mut f = match std::fs::File::open(&p) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((offset, Vec::new())),
                        Err(e) => return Err(e),
                    };
                    // A file shorter than what we read was rotated: start it over.
                    let start = if f.metadata()?.len() < offset { 0 } else { offset };
                    f.seek(SeekFrom::Start(start))?;
                    let mut v = Vec::new();
                    f.read_to_end(&mut v)?;
                    Ok((start, v))
                })
                .await;
                let chunk = match chunk {
                    Ok(Ok((start, v))) => {
                        offset = start;
                        v
                    }
                    _ => return,
                };
                offset += chunk.len() as u64;
                partial.extend_from_slice(&chunk);
                let mut entries: Vec<LogEntry> = take_lines(&mut partial)
                    .iter()
                    .filter_map(|l| parse_line(l))
                    .filter_map(|(s, t, text)| select(&opts, s, &t, text))
                    .collect();
                if first {
                    if let Some(n) = opts.tail {
                        let skip = entries.len().saturating_sub(n);
                        entries.drain(..skip);
                    }
                    first = false;
                }
                for e in entries {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                if !opts.follow || stopped {
                    return;
                }
                tokio::select! {
                    _ = notice.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok((tty, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_nine_digits() {
        let opts = LogOptions { stdout: true, timestamps: true, ..Default::default() };
        let e = select(&opts, 1, "2026-11-23T19:28:01.05345Z", "x\n".into()).expect("entry");
        assert_eq!(e.data, b"2026-11-23T19:28:01.053450000Z x\n".to_vec());
    }

    #[test]
    fn lines_split_and_keep_partials() {
        let mut b = b"{\"a\":1}\n{\"b\":2}\n{\"c\"".to_vec();
        let lines = take_lines(&mut b);
        assert_eq!(lines, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
        assert_eq!(b, b"{\"c\"".to_vec());
    }

    #[test]
    fn selection_by_stream_time_and_stamps() {
        let line = br#"{"log":"hi\n","stream":"stderr","time":"2026-11-23T11:29:54.177021719Z"}"#;
        let (s, t, text) = parse_line(line).expect("parse");
        assert_eq!(s, 2);
        let all = LogOptions { stdout: true, stderr: true, ..Default::default() };
        assert_eq!(select(&all, s, &t, text.clone()), Some(LogEntry { stream: 2, data: b"hi\n".to_vec() }));
        let out_only = LogOptions { stdout: true, ..Default::default() };
        assert_eq!(select(&out_only, s, &t, text.clone()), None);
        let stamped = LogOptions { stdout: true, stderr: true, timestamps: true, ..Default::default() };
        assert_eq!(
            select(&stamped, s, &t, text.clone()).expect("entry").data,
            b"2026-11-23T11:29:54.177021719Z hi\n".to_vec()
        );
        let later = LogOptions { stdout: true, stderr: true, since: Some(1.0e10), ..Default::default() };
        assert_eq!(select(&later, s, &t, text), None);
    }
}
