//! Reading a container's json-file log (written by the shim, see
//! `berth_runtime::jsonlog`) for `GET /logs`: rotated files, tail, since/until,
//! timestamps, and follow until the container stops. The `local` format's reader is
//! `logs_local` (same batches and follow rules); [`Reader`] picks one by driver.
//!
//! Memory stays bounded whatever the log's size: files are read in blocks, a line longer
//! than [`Limits::max_line`] is skipped without being kept, `--tail N` finds where its
//! N-th last matching line starts by reading backwards from the end of the newest files
//! (counting, not keeping) and then streams forward from there, and entries go out in
//! small batches through a bounded channel.
//!
//! Only lines ended by `\n` count: an unterminated tail of a file is a write in progress
//! (completed later when following) or a torn write (ignored).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::containers::{log_options, LogDriver};
use crate::error::{Error, ErrorKind, Result};
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

/// Buffer sizes of the reader: what bounds its memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Bytes read from a file at a time.
    pub block: usize,
    /// Longest line kept; longer ones are skipped. The shim splits output at 16 KiB,
    /// which JSON escaping can grow to ~100 KiB, so a longer line is not the shim's.
    pub max_line: usize,
    /// Entries per batch handed to the sending task.
    pub batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { block: 64 * 1024, max_line: 1024 * 1024, batch: 256 }
    }
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

/// Whether an entry of `stream` written at `time` is wanted (before any tail).
fn wanted(opts: &LogOptions, stream: u8, time: &str) -> bool {
    wanted_at(opts, stream, || unix_secs(time))
}

/// Whether an entry of `stream` written at `secs()` (Unix seconds, asked only when
/// since/until are given) is wanted; shared by the json-file and local readers.
pub(crate) fn wanted_at(opts: &LogOptions, stream: u8, secs: impl FnOnce() -> f64) -> bool {
    if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
        return false;
    }
    if opts.since.is_some() || opts.until.is_some() {
        let t = secs();
        if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t > u) {
            return false;
        }
    }
    true
}

/// Turns parsed lines into entries according to the options (tail applied by caller).
fn select(opts: &LogOptions, stream: u8, time: &str, text: String) -> Option<LogEntry> {
    if !wanted(opts, stream, time) {
        return None;
    }
    let mut data = Vec::with_capacity(text.len() + 32);
    if opts.timestamps {
        // The file holds Go's RFC3339Nano (trailing zeros trimmed); `logs -t` prints
        // Docker's fixed nine-digit form.
        let fixed = timefmt::parse(time).map(timefmt::rfc3339_nano_fixed);
        data.extend_from_slice(fixed.as_deref().unwrap_or(time).as_bytes());
        data.push(b' ');
    }
    data.extend_from_slice(text.as_bytes());
    Some(LogEntry { stream, data })
}

/// Whether a raw line counts for `--tail` under the options.
fn line_wanted(opts: &LogOptions, line: &[u8]) -> bool {
    parse_line(line).is_some_and(|(s, t, _)| wanted(opts, s, &t))
}

fn numbered(log: &Path, n: usize) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// Forward reader of `\n`-terminated lines from an offset, with a bounded buffer.
struct Lines {
    file: File,
    /// Bytes read but not consumed start at `buf[start]`.
    buf: Vec<u8>,
    start: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Inside a line longer than the limit: drop bytes up to its end.
    skipping: bool,
    limits: Limits,
    /// Largest buffer capacity so far (for tests and benchmarks of the bound).
    peak: usize,
}

impl Lines {
    fn new(mut file: File, offset: u64, limits: Limits) -> io::Result<Lines> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Lines { file, buf: Vec::new(), start: 0, base: offset, skipping: false, limits, peak: 0 })
    }

    /// File offset up to which the file has been read.
    fn read_end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Starts over at offset 0 (the file was truncated in place).
    fn restart(&mut self) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.buf.clear();
        self.start = 0;
        self.base = 0;
        self.skipping = false;
        Ok(())
    }

    /// The next complete line (without its `\n`), or None at the end of what has been
    /// written so far; an unterminated rest stays buffered for the next call.
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        let range = loop {
            if let Some(i) = self.buf[self.start..].iter().position(|b| *b == b'\n') {
                let s = self.start;
                self.start += i + 1;
                if std::mem::take(&mut self.skipping) || i > self.limits.max_line {
                    continue;
                }
                break s..s + i;
            }
            // No line end buffered: keep the partial line unless it is already too long.
            if self.skipping || self.buf.len() - self.start > self.limits.max_line {
                self.skipping = true;
                self.base += self.buf.len() as u64;
                self.buf.clear();
            } else {
                self.buf.drain(..self.start);
                self.base += self.start as u64;
            }
            self.start = 0;
            if self.buf.capacity() > 4 * self.limits.block && self.buf.len() < self.limits.block {
                self.buf.shrink_to(2 * self.limits.block);
            }
            let old = self.buf.len();
            self.buf.reserve_exact(self.limits.block);
            self.buf.resize(old + self.limits.block, 0);
            self.peak = self.peak.max(self.buf.capacity());
            let n = loop {
                match self.file.read(&mut self.buf[old..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            self.buf.truncate(old + n.as_ref().map_or(0, |n| *n));
            if n? == 0 {
                return Ok(None);
            }
        };
        Ok(Some(&self.buf[range]))
    }
}

/// Backward reader of a file's `\n`-terminated lines, newest first, with a bounded
/// buffer. Yields each line's start offset and where its bytes are in `buf`.
struct RevLines<'f> {
    file: &'f File,
    /// File offset of `buf[0]`; everything before it is unread.
    pos: u64,
    /// Bytes not yet yielded. Unless `seeking`, empty or ending with the `\n` of the next
    /// line to yield.
    buf: Vec<u8>,
    /// Length to cut `buf` to on the next call (the last line yielded, kept until then).
    cut: Option<usize>,
    /// Looking for a `\n` that ends a line: after the file's unterminated tail at the
    /// start, or before an over-long line whose bytes are dropped.
    seeking: bool,
    limits: Limits,
    peak: usize,
}

impl<'f> RevLines<'f> {
    fn new(file: &'f File, len: u64, limits: Limits) -> RevLines<'f> {
        RevLines { file, pos: len, buf: Vec::new(), cut: None, seeking: true, limits, peak: 0 }
    }

    /// Prepends the block before `pos`; false at the file's start.
    fn read_back(&mut self) -> io::Result<bool> {
        if self.pos == 0 {
            return Ok(false);
        }
        let n = self.pos.min(self.limits.block as u64) as usize;
        let mut nb = Vec::with_capacity(n + self.buf.len());
        nb.resize(n, 0);
        self.file.read_exact_at(&mut nb, self.pos - n as u64)?;
        nb.extend_from_slice(&self.buf);
        self.buf = nb;
        self.pos -= n as u64;
        self.peak = self.peak.max(self.buf.capacity());
        Ok(true)
    }

    /// The next line backwards: its start offset and the range of its bytes in `buf`
    /// (valid until the next call).
    fn next_line(&mut self) -> io::Result<Option<(u64, std::ops::Range<usize>)>> {
        if let Some(c) = self.cut.take() {
            self.buf.truncate(c);
        }
        loop {
            if self.seeking {
                match self.buf.iter().rposition(|b| *b == b'\n') {
                    Some(i) => {
                        self.buf.truncate(i + 1);
                        self.seeking = false;
                    }
                    None => {
                        self.buf.clear();
                        if !self.read_back()? {
                            return Ok(None);
                        }
                        continue;
                    }
                }
            }
            let Some(body) = self.buf.len().checked_sub(1) else {
                if !self.read_back()? {
                    return Ok(None);
                }
                continue;
            };
            let start = match self.buf[..body].iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if self.pos == 0 => 0,
                None if body > self.limits.max_line => {
                    // Too long to keep: drop it and look for the end of the line before.
                    self.buf.clear();
                    self.seeking = true;
                    continue;
                }
                None => {
                    self.read_back()?;
                    continue;
                }
            };
            if body - start > self.limits.max_line {
                self.buf.truncate(start);
                continue;
            }
            // What stays ends with the `\n` before this line (or is empty at offset 0).
            self.cut = Some(start);
            return Ok(Some((self.pos + start as u64, start..body)));
        }
    }
}

/// The open files of a log, newest first (the live one at 0 if any): opening them only
/// takes a few syscalls, done before a request is answered so that a container removed
/// afterwards cannot take its log from a reader.
pub(crate) struct LogFiles {
    files: Vec<File>,
    live_id: Option<(u64, u64)>,
}

impl LogFiles {
    /// Opens the live log and its rotated files, skipping a file seen twice when a
    /// rotation happens meanwhile.
    pub(crate) fn open(path: &Path) -> io::Result<LogFiles> {
        let mut files: Vec<File> = Vec::new();
        let mut seen = Vec::new();
        let mut live_id = None;
        match File::open(path) {
            Ok(f) => {
                let id = file_id(&f.metadata()?);
                live_id = Some(id);
                seen.push(id);
                files.push(f);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for n in 1.. {
            let f = match File::open(numbered(path, n)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            let id = file_id(&f.metadata()?);
            if !seen.contains(&id) {
                seen.push(id);
                files.push(f);
            }
        }
        Ok(LogFiles { files, live_id })
    }
}

/// The log as opened for one request: reads forward from where `--tail` starts through
/// the rotated files to the live one, which it follows across rotations.
pub(crate) struct LogReader {
    path: PathBuf,
    opts: LogOptions,
    limits: Limits,
    /// Files newer than `cur` still to read, newest first: `pop` gives the next one.
    older: Vec<File>,
    /// The file being read and whether it is the live one.
    cur: Option<Lines>,
    cur_live: bool,
    /// The live file's identity, to notice a rotation while following.
    live_id: Option<(u64, u64)>,
    /// The live file has been replaced; read the old one to its end before switching.
    draining: bool,
    peak: usize,
}

/// One step of reading: entries and whether the reader caught up with the live file.
pub(crate) struct Batch {
    pub entries: Vec<LogEntry>,
    pub caught_up: bool,
}

impl LogReader {
    /// Opens the live log and its rotated files (newest first, skipping a file seen twice
    /// when a rotation happens meanwhile) and positions at the start of the `--tail`.
    pub(crate) fn open(path: &Path, opts: LogOptions, limits: Limits) -> io::Result<LogReader> {
        LogReader::position(path, LogFiles::open(path)?, opts, limits)
    }

    /// Positions a reader over `opened` (the files of `path`) at the start of the `--tail`.
    fn position(path: &Path, opened: LogFiles, opts: LogOptions, limits: Limits) -> io::Result<LogReader> {
        let LogFiles { files, live_id } = opened;
        let has_live = live_id.is_some();
        let mut peak = 0;
        // Where reading starts: (index in `files`, offset).
        let (first, offset) = match opts.tail {
            None => (files.len().saturating_sub(1), 0),
            Some(n) => {
                let mut at = None;
                let mut count = 0;
                'files: for (i, f) in files.iter().enumerate() {
                    let mut rl = RevLines::new(f, f.metadata()?.len(), limits);
                    if n == 0 {
                        // Nothing old: start after the last complete line.
                        let end = match rl.next_line()? {
                            Some((start, r)) => start + r.len() as u64 + 1,
                            None => 0,
                        };
                        peak = peak.max(rl.peak);
                        at = Some((i, end));
                        break;
                    }
                    while let Some((start, r)) = rl.next_line()? {
                        if line_wanted(&opts, &rl.buf[r]) {
                            count += 1;
                            if count == n {
                                at = Some((i, start));
                                peak = peak.max(rl.peak);
                                break 'files;
                            }
                        }
                    }
                    peak = peak.max(rl.peak);
                }
                at.unwrap_or((files.len().saturating_sub(1), 0))
            }
        };
        let mut older = Vec::new();
        let mut cur = None;
        let mut cur_live = false;
        for (i, f) in files.into_iter().enumerate().take(first + 1) {
            if i == first {
                cur = Some(Lines::new(f, offset, limits)?);
                cur_live = has_live && i == 0;
            } else {
                older.push(f);
            }
        }
        Ok(LogReader { path: path.to_path_buf(), opts, limits, older, cur, cur_live, live_id, draining: false, peak })
    }

    /// Largest buffer capacity the reader has used so far.
    #[cfg(test)]
    fn peak_buffer(&self) -> usize {
        self.peak.max(self.cur.as_ref().map_or(0, |c| c.peak))
    }

    fn advance(&mut self, f: File, live: bool) -> io::Result<()> {
        if let Some(c) = &self.cur {
            self.peak = self.peak.max(c.peak);
        }
        self.cur = Some(Lines::new(f, 0, self.limits)?);
        self.cur_live = live;
        Ok(())
    }

    /// Reads up to a batch of entries. `caught_up` means the end of the live file (or of
    /// the log) was reached; when following, later calls return what was written since.
    pub(crate) fn next_batch(&mut self) -> io::Result<Batch> {
        let mut entries = Vec::new();
        loop {
            if let Some(cur) = self.cur.as_mut() {
                while entries.len() < self.limits.batch {
                    let Some(line) = cur.next_line()? else { break };
                    if let Some(e) = parse_line(line).and_then(|(s, t, text)| select(&self.opts, s, &t, text)) {
                        entries.push(e);
                    }
                }
                if entries.len() >= self.limits.batch {
                    return Ok(Batch { entries, caught_up: false });
                }
            }
            // At the end of the current file.
            if let Some(next) = self.older.pop() {
                let live = self.older.is_empty() && self.live_id.is_some();
                self.advance(next, live)?;
                continue;
            }
            if !self.opts.follow {
                return Ok(Batch { entries, caught_up: true });
            }
            if self.draining {
                // The replaced file is read to its end: go on with the new live file.
                self.draining = false;
                if let Ok(f) = File::open(&self.path) {
                    self.live_id = Some(file_id(&f.metadata()?));
                    self.advance(f, true)?;
                    continue;
                }
            }
            // Following: has the live file been replaced or truncated?
            match std::fs::metadata(&self.path) {
                Ok(m) if Some(file_id(&m)) != self.live_id || !self.cur_live => {
                    if self.cur.is_some() && self.cur_live {
                        // Read what was written to the old file before it was renamed.
                        self.draining = true;
                        continue;
                    }
                    if let Ok(f) = File::open(&self.path) {
                        self.live_id = Some(file_id(&f.metadata()?));
                        self.advance(f, true)?;
                        continue;
                    }
                }
                Ok(m) => {
                    if let Some(cur) = self.cur.as_mut() {
                        if m.len() < cur.read_end() {
                            // Truncated in place (max-file 1): start it over.
                            cur.restart()?;
                            continue;
                        }
                    }
                }
                Err(_) => {}
            }
            return Ok(Batch { entries, caught_up: true });
        }
    }
}

/// A reader of either format, opened for one request.
pub(crate) enum Reader {
    Json(LogReader),
    Local(crate::logs_local::LocalReader),
}

impl Reader {
    fn open(driver: LogDriver, path: &Path, opts: LogOptions, limits: Limits) -> io::Result<Reader> {
        Ok(match driver {
            LogDriver::Local => Reader::Local(crate::logs_local::LocalReader::open(path, opts, limits)?),
            _ => Reader::Json(LogReader::open(path, opts, limits)?),
        })
    }

    fn next_batch(&mut self) -> io::Result<Batch> {
        match self {
            Reader::Json(r) => r.next_batch(),
            Reader::Local(r) => r.next_batch(),
        }
    }
}

impl Engine {
    /// `GET /containers/{id}/logs`: the container's TTY flag and a stream of entries.
    /// A container logging to `none` has nothing to read: Docker's 501. A json-file
    /// log's files are open when this returns, so a client that reads the stream later
    /// (as docker-py's `run` does, after `wait` and `remove`) still gets every entry.
    pub fn logs(&self, name_or_id: &str, opts: LogOptions) -> Result<(bool, mpsc::Receiver<LogEntry>)> {
        let c = self.lookup(name_or_id)?;
        let tty = c.tty();
        let driver = log_options(&c.record().host_config)?.driver;
        let Some(path) = self.log_file(&c.id, driver) else {
            return Err(Error::new(ErrorKind::NotImplemented, "configured logging driver does not support reading"));
        };
        let mut notice = c.subscribe();
        let follow = opts.follow;
        // The `local` reader opens its files (and counts a tail through compressed
        // ones) off the async threads, below.
        let files = match driver {
            LogDriver::Local => None,
            _ => Some(LogFiles::open(&path).map_err(|e| Error::io("open", &path, e))?),
        };
        // Removed meanwhile (its log gone before it was opened): gone, as Docker
        // answers then, rather than an empty stream.
        self.lookup(&c.id)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let opened = tokio::task::spawn_blocking(move || match files {
                Some(files) => LogReader::position(&path, files, opts, Limits::default()).map(Reader::Json),
                None => Reader::open(driver, &path, opts, Limits::default()),
            })
            .await;
            let Ok(Ok(mut reader)) = opened else { return };
            loop {
                // Observed before reading: once the container has stopped, the shim has
                // drained and closed the log, so a read that catches up is the last one.
                let stopped = !notice.borrow_and_update().running;
                let step = tokio::task::spawn_blocking(move || {
                    let b = reader.next_batch();
                    (reader, b)
                })
                .await;
                let Ok((r, Ok(batch))) = step else { return };
                reader = r;
                for e in batch.entries {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                if !batch.caught_up {
                    continue;
                }
                if !follow || stopped {
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

    const T0: &str = "2026-11-23T11:29:54.177021719Z";

    /// One json-file line as the shim writes it.
    fn line(stream: &str, text: &str) -> Vec<u8> {
        let mut v = Vec::new();
        berth_runtime::jsonlog::encode_entry(&mut v, text.as_bytes(), stream, T0);
        v
    }

    fn lines(stream: &str, range: std::ops::Range<usize>) -> Vec<u8> {
        range.flat_map(|i| line(stream, &format!("{i}\n"))).collect()
    }

    fn both() -> LogOptions {
        LogOptions { stdout: true, stderr: true, ..Default::default() }
    }

    fn tail(n: usize) -> LogOptions {
        LogOptions { tail: Some(n), ..both() }
    }

    /// Writes `<dir>/c.log` (`files[0]`, if Some) and `c.log.1`, `c.log.2`… (the rest).
    fn write_log(dir: &Path, files: &[Option<Vec<u8>>]) -> PathBuf {
        let log = dir.join("c.log");
        for (i, f) in files.iter().enumerate() {
            let p = if i == 0 { log.clone() } else { numbered(&log, i) };
            if let Some(data) = f {
                std::fs::write(p, data).expect("write");
            }
        }
        log
    }

    /// All entries a non-following reader gives, checking every batch's bound.
    fn read_all(r: &mut LogReader) -> Vec<LogEntry> {
        let mut out = Vec::new();
        loop {
            let b = r.next_batch().expect("batch");
            assert!(b.entries.len() <= r.limits.batch);
            out.extend(b.entries);
            if b.caught_up {
                return out;
            }
        }
    }

    fn texts(entries: &[LogEntry]) -> Vec<String> {
        entries.iter().map(|e| String::from_utf8_lossy(&e.data).trim_end().to_string()).collect()
    }

    fn read(log: &Path, opts: LogOptions, limits: Limits) -> Vec<String> {
        texts(&read_all(&mut LogReader::open(log, opts, limits).expect("open")))
    }

    fn small() -> Limits {
        Limits { block: 7, max_line: 200, batch: 3 }
    }

    fn nums(r: std::ops::Range<usize>) -> Vec<String> {
        r.map(|i| i.to_string()).collect()
    }

    /// The files are opened before a request is answered and positioned later: a log
    /// whose container is removed in between (its directory renamed and deleted, as
    /// `rm` does) is still read whole, following or not. (Opening by path after the
    /// removal found nothing, and docker-py's `run(remove=True)` returned b"".)
    #[test]
    fn a_log_opened_before_removal_is_read_whole() {
        for follow in [false, true] {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path().join("c");
            std::fs::create_dir(&dir).expect("mkdir");
            let log = write_log(&dir, &[Some(lines("stdout", 0..5)), Some(lines("stdout", 100..102))]);
            let files = LogFiles::open(&log).expect("open");
            let doomed = tmp.path().join(".removing-c");
            std::fs::rename(&dir, &doomed).expect("rename");
            std::fs::remove_dir_all(&doomed).expect("remove");
            let opts = LogOptions { follow, ..both() };
            let mut r = LogReader::position(&log, files, opts, small()).expect("position");
            let mut want = nums(100..102);
            want.extend(nums(0..5));
            assert_eq!(texts(&read_all(&mut r)), want, "follow {follow}");
            // Opening by path now finds nothing.
            assert!(read(&log, both(), small()).is_empty());
        }
    }

    #[test]
    fn tail_across_rotated_files() {
        let t = tempfile::tempdir().expect("tmp");
        let log = write_log(
            t.path(),
            &[Some(lines("stdout", 6..9)), Some(lines("stdout", 3..6)), Some(lines("stdout", 0..3))],
        );
        for limits in [Limits::default(), small()] {
            let cases: &[(Option<usize>, std::ops::Range<usize>)] = &[
                (None, 0..9),
                (Some(0), 0..0),
                (Some(1), 8..9),
                (Some(3), 6..9),
                (Some(5), 4..9),
                (Some(9), 0..9),
                (Some(100), 0..9),
            ];
            for (n, want) in cases {
                let opts = LogOptions { tail: *n, ..both() };
                assert_eq!(read(&log, opts, limits), nums(want.clone()), "tail {n:?}");
            }
        }
    }

    #[test]
    fn tail_counts_only_selected_lines() {
        let t = tempfile::tempdir().expect("tmp");
        // Every third line is stderr: 0,3,6…; stderr lines in the rotated file too.
        let data = |r: std::ops::Range<usize>| -> Vec<u8> {
            r.flat_map(|i| line(if i % 3 == 0 { "stderr" } else { "stdout" }, &format!("{i}\n"))).collect()
        };
        let log = write_log(t.path(), &[Some(data(10..20)), Some(data(0..10))]);
        let err = LogOptions { stdout: false, stderr: true, tail: Some(4), ..Default::default() };
        assert_eq!(read(&log, err, small()), ["9", "12", "15", "18"]);
        let out = LogOptions { stdout: true, stderr: false, tail: Some(2), ..Default::default() };
        assert_eq!(read(&log, out, small()), ["17", "19"]);
        // since/until filter before counting too.
        let old = LogOptions { until: Some(1.0), tail: Some(2), ..both() };
        assert_eq!(read(&log, old, small()), Vec::<String>::new());
        let streams: Vec<u8> =
            read_all(&mut LogReader::open(&log, tail(3), small()).expect("open")).iter().map(|e| e.stream).collect();
        assert_eq!(streams, [1, 2, 1]); // 17, 18, 19
    }

    #[test]
    fn partial_last_lines_are_not_entries() {
        let t = tempfile::tempdir().expect("tmp");
        let mut live = lines("stdout", 3..5);
        live.extend_from_slice(&line("stdout", "torn\n")[..20]);
        let mut rotated = lines("stdout", 0..3);
        rotated.extend_from_slice(b"{\"log\":\"x\"");
        let log = write_log(t.path(), &[Some(live), Some(rotated)]);
        for limits in [Limits::default(), small()] {
            assert_eq!(read(&log, both(), limits), nums(0..5));
            assert_eq!(read(&log, tail(2), limits), nums(3..5));
            assert_eq!(read(&log, tail(3), limits), nums(2..5));
        }
    }

    #[test]
    fn a_huge_line_is_skipped_in_bounded_memory() {
        let t = tempfile::tempdir().expect("tmp");
        let limits = Limits::default();
        let huge = vec![b'x'; 3 * limits.max_line];
        for tail_end in [false, true] {
            let mut live = lines("stdout", 0..2);
            live.extend_from_slice(&huge);
            live.push(b'\n');
            live.extend(lines("stdout", 2..4));
            if tail_end {
                live.extend_from_slice(&huge); // unterminated
            }
            let log = write_log(t.path(), &[Some(live)]);
            let bound = limits.max_line + 2 * limits.block;
            for (opts, want) in [(both(), nums(0..4)), (tail(3), nums(1..4)), (tail(2), nums(2..4))] {
                let mut r = LogReader::open(&log, opts, limits).expect("open");
                assert_eq!(texts(&read_all(&mut r)), want);
                assert!(r.peak_buffer() <= bound, "peak {}", r.peak_buffer());
            }
        }
        // With small limits: a line just over the cap is skipped, one at the cap kept.
        let at_cap = format!("{:0>1$}", "", 200 - line("stdout", "").len() + 1);
        let over = format!("{at_cap}y");
        let mut live = line("stdout", "a");
        live.extend(line("stdout", &at_cap));
        assert_eq!(line("stdout", &at_cap).len() - 1, 200);
        live.extend(line("stdout", &over));
        live.extend(line("stdout", "z"));
        let log = write_log(t.path(), &[Some(live)]);
        assert_eq!(read(&log, both(), small()), ["a".to_string(), at_cap.clone(), "z".to_string()]);
        assert_eq!(read(&log, tail(2), small()), [at_cap, "z".to_string()]);
    }

    #[test]
    fn empty_and_missing_files() {
        let t = tempfile::tempdir().expect("tmp");
        let none: Vec<String> = Vec::new();
        let log = write_log(t.path(), &[None]);
        assert_eq!(read(&log, both(), small()), none);
        assert_eq!(read(&log, tail(3), small()), none);
        let log = write_log(t.path(), &[Some(Vec::new()), Some(Vec::new())]);
        assert_eq!(read(&log, both(), small()), none);
        assert_eq!(read(&log, tail(3), small()), none);
        // Rotated content with an empty live file (just rotated).
        let log = write_log(t.path(), &[Some(Vec::new()), Some(lines("stderr", 0..4))]);
        assert_eq!(read(&log, tail(3), small()), nums(1..4));
        // Only rotated files (live one not yet created).
        std::fs::remove_file(&log).expect("rm");
        assert_eq!(read(&log, tail(2), small()), nums(2..4));
        assert_eq!(read(&log, both(), small()), nums(0..4));
    }

    #[test]
    fn a_big_log_is_read_with_small_buffers() {
        // ~12 MB over three files: the whole log read, and its tail, with buffers of
        // about one block (the old reader held the log, and quadratic copies of it).
        let t = tempfile::tempdir().expect("tmp");
        let per = 50_000;
        let files: Vec<Option<Vec<u8>>> = (0..3).map(|k| Some(lines("stdout", (2 - k) * per..(3 - k) * per))).collect();
        assert!(files.iter().flatten().map(Vec::len).sum::<usize>() > 3_000_000);
        let log = write_log(t.path(), &files);
        let limits = Limits::default();
        let mut r = LogReader::open(&log, tail(3), limits).expect("open");
        assert_eq!(texts(&read_all(&mut r)), nums(3 * per - 3..3 * per));
        assert!(r.peak_buffer() <= 2 * limits.block, "peak {}", r.peak_buffer());
        // A tail reaching into the oldest file reads back only as far as needed.
        let mut r = LogReader::open(&log, tail(per + 5), limits).expect("open");
        let got = read_all(&mut r);
        assert_eq!(got.len(), per + 5);
        assert_eq!(texts(&got[..1]), [(2 * per - 5).to_string()]);
        assert!(r.peak_buffer() <= 2 * limits.block, "peak {}", r.peak_buffer());
        let mut r = LogReader::open(&log, both(), limits).expect("open");
        let mut n = 0;
        loop {
            let b = r.next_batch().expect("batch");
            assert!(b.entries.len() <= limits.batch);
            n += b.entries.len();
            if b.caught_up {
                break;
            }
        }
        assert_eq!(n, 3 * per);
        assert!(r.peak_buffer() <= 2 * limits.block, "peak {}", r.peak_buffer());
    }

    #[test]
    fn follow_goes_on_across_rotation_and_truncation() {
        let t = tempfile::tempdir().expect("tmp");
        let log = write_log(t.path(), &[Some(lines("stdout", 0..2))]);
        let append = |data: &[u8]| {
            use std::io::Write;
            let mut f = File::options().append(true).create(true).open(&log).expect("open");
            f.write_all(data).expect("write");
        };
        let follow = LogOptions { follow: true, tail: Some(1), ..both() };
        let mut r = LogReader::open(&log, follow, small()).expect("open");
        let step = |r: &mut LogReader| texts(&read_all(r));
        assert_eq!(step(&mut r), ["1"]);
        assert_eq!(step(&mut r), Vec::<String>::new());
        // A line written in two pieces comes out once complete.
        let l2 = line("stdout", "2\n");
        append(&l2[..10]);
        assert_eq!(step(&mut r), Vec::<String>::new());
        append(&l2[10..]);
        assert_eq!(step(&mut r), ["2"]);
        // Written to the old file just before it was rotated, then to the new one.
        append(&lines("stdout", 3..5));
        std::fs::rename(&log, numbered(&log, 1)).expect("rotate");
        append(&lines("stdout", 5..7));
        assert_eq!(step(&mut r), nums(3..7));
        // Truncated in place (max-file 1), then written again.
        File::options().write(true).open(&log).expect("open").set_len(0).expect("truncate");
        append(&lines("stdout", 7..8));
        assert_eq!(step(&mut r), ["7"]);
        // tail 0 when following: only what comes next.
        let follow0 = LogOptions { follow: true, tail: Some(0), ..both() };
        let mut r = LogReader::open(&log, follow0, small()).expect("open");
        assert_eq!(step(&mut r), Vec::<String>::new());
        append(&lines("stdout", 8..9));
        assert_eq!(step(&mut r), ["8"]);
    }

    /// Fuzzing the reader: arbitrary bytes and garbled JSON in rotated and live files,
    /// with any options and tiny buffers, never panic, and give what a simple reader of
    /// whole files gives.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const TIMES: [&str; 4] =
            ["2026-11-23T11:29:54.177021719Z", "2026-11-23T11:29:55Z", "2026-11-23T11:29:53.5Z", "bad"];

        fn chunk() -> impl Strategy<Value = Vec<u8>> {
            let valid = (any::<bool>(), "[a-z<\"\\\n\u{e9}]{0,12}", 0..TIMES.len()).prop_map(|(err, text, t)| {
                let mut v = Vec::new();
                berth_runtime::jsonlog::encode_entry(
                    &mut v,
                    text.as_bytes(),
                    if err { "stderr" } else { "stdout" },
                    TIMES[t],
                );
                v
            });
            let garbled = (valid.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut v, i, b)| {
                let at = i.index(v.len());
                v[at] = b;
                v
            });
            let torn = (valid.clone(), any::<prop::sample::Index>()).prop_map(|(mut v, i)| {
                v.truncate(i.index(v.len()));
                v
            });
            prop_oneof![4 => valid, 1 => garbled, 1 => torn, 1 => prop::collection::vec(any::<u8>(), 0..40), 1 => Just(b"\n".to_vec())]
        }

        fn file() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(chunk(), 0..12).prop_map(|c| c.concat())
        }

        fn options() -> impl Strategy<Value = LogOptions> {
            (any::<bool>(), any::<bool>(), prop::option::of(0usize..15), 0..3usize, 0..3usize, any::<bool>()).prop_map(
                |(stdout, stderr, tail, since, until, timestamps)| {
                    let at = |s: &str| Some(unix_secs(s));
                    let since = [None, at("2026-11-23T11:29:54Z"), at("2026-11-23T11:29:54.5Z")][since];
                    let until = [None, at("2026-11-23T11:29:54.5Z"), at("2026-11-23T11:29:56Z")][until];
                    LogOptions { stdout, stderr, follow: false, tail, since, until, timestamps }
                },
            )
        }

        fn limits() -> impl Strategy<Value = Limits> {
            (1usize..40, prop_oneof![3 => 60usize..110, 1 => 1usize..300], 1usize..5)
                .prop_map(|(block, max_line, batch)| Limits { block, max_line, batch })
        }

        /// Whole files in memory, oldest first: `\n`-terminated lines of at most
        /// `max_line` bytes that parse, selected, then the last N.
        fn reference(oldest_first: &[&Vec<u8>], opts: &LogOptions, max_line: usize) -> Vec<LogEntry> {
            let mut all = Vec::new();
            for f in oldest_first {
                let mut parts: Vec<&[u8]> = f.split(|b| *b == b'\n').collect();
                parts.pop(); // unterminated (or empty) rest
                for p in parts.into_iter().filter(|p| p.len() <= max_line) {
                    all.extend(parse_line(p).and_then(|(s, t, x)| select(opts, s, &t, x)));
                }
            }
            if let Some(n) = opts.tail {
                all.drain(..all.len().saturating_sub(n));
            }
            all
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn reader_matches_reference(
                live in prop::option::of(file()),
                rotated in prop::collection::vec(file(), 0..4),
                opts in options(),
                limits in limits(),
            ) {
                let t = tempfile::tempdir().expect("tmp");
                let mut files = vec![live.clone()];
                files.extend(rotated.iter().cloned().map(Some));
                let log = write_log(t.path(), &files);
                let mut oldest_first: Vec<&Vec<u8>> = rotated.iter().rev().collect();
                oldest_first.extend(live.as_ref());
                let want = reference(&oldest_first, &opts, limits.max_line);
                let mut r = LogReader::open(&log, opts, limits).expect("open");
                prop_assert_eq!(read_all(&mut r), want);
                prop_assert!(r.peak_buffer() <= limits.max_line + 2 * limits.block + 1);
            }
        }
    }
}
