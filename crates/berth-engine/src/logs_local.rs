//! Reading a container's `local` log (Docker's format, written by the shim, see
//! `berth_runtime::locallog`) for `GET /logs`: `local-logs/container.log` and its
//! rotated files `container.log.N` or `container.log.N.gz`, with the json-file reader's
//! options, batches and follow rules (`logs.rs`).
//!
//! Memory stays bounded: frames are read one at a time through a block-sized buffer
//! (a frame longer than [`Limits::max_line`] is skipped, not kept); gzipped files are
//! decompressed as a stream. `--tail N` counts the wanted entries of each file, newest
//! file first, until N are found, then reads forward from the file where the tail
//! starts, skipping the entries before it: counting, never keeping.
//!
//! Only complete frames count: an incomplete last frame of the live file is a write in
//! progress, read again once complete when following.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_runtime::locallog::{decode_entry, FRAME_OVERHEAD};
use flate2::read::GzDecoder;

use crate::logs::{wanted_at, Batch, Limits, LogEntry, LogOptions};

enum Src {
    Plain(BufReader<File>),
    Gz(Box<GzDecoder<BufReader<File>>>),
}

impl Read for Src {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Src::Plain(r) => r.read(buf),
            Src::Gz(r) => r.read(buf),
        }
    }
}

/// Reads until `buf` is full or the end; how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Forward reader of one file's frames.
struct Frames {
    src: Src,
    /// Offset (in the decompressed stream) of the next frame.
    offset: u64,
    /// A frame's two length words differed: nothing more is read from this file.
    corrupt: bool,
    msg: Vec<u8>,
    limits: Limits,
}

impl Frames {
    fn plain(mut file: File, offset: u64, limits: Limits) -> io::Result<Frames> {
        file.seek(SeekFrom::Start(offset))?;
        let src = Src::Plain(BufReader::with_capacity(limits.block, file));
        Ok(Frames { src, offset, corrupt: false, msg: Vec::new(), limits })
    }

    fn open(f: Source, limits: Limits) -> io::Result<Frames> {
        match f {
            Source::Plain(f) => Frames::plain(f, 0, limits),
            Source::Gz(mut f) => {
                // Counting for `--tail` read a clone of this file (the offset is shared).
                f.seek(SeekFrom::Start(0))?;
                let src = Src::Gz(Box::new(GzDecoder::new(BufReader::with_capacity(limits.block, f))));
                Ok(Frames { src, offset: 0, corrupt: false, msg: Vec::new(), limits })
            }
        }
    }

    /// Goes back to the start of the incomplete frame (plain files only: a gzipped file
    /// is complete).
    fn rewind(&mut self) -> io::Result<()> {
        if let Src::Plain(r) = &mut self.src {
            r.seek(SeekFrom::Start(self.offset))?;
        }
        Ok(())
    }

    /// Starts over at offset 0 (the file was truncated in place).
    fn restart(&mut self) -> io::Result<()> {
        self.offset = 0;
        self.corrupt = false;
        self.rewind()
    }

    /// The next complete frame's message, or None at the end of what is written.
    fn next(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            if self.corrupt {
                return Ok(None);
            }
            let mut head = [0u8; 4];
            if read_full(&mut self.src, &mut head)? < 4 {
                self.rewind()?;
                return Ok(None);
            }
            let len = u32::from_be_bytes(head) as usize;
            let whole = (len + FRAME_OVERHEAD) as u64;
            if len > self.limits.max_line {
                let rest = whole - 4;
                if io::copy(&mut (&mut self.src).take(rest), &mut io::sink())? < rest {
                    self.rewind()?;
                    return Ok(None);
                }
                self.offset += whole;
                continue;
            }
            self.msg.resize(len + 4, 0);
            if read_full(&mut self.src, &mut self.msg)? < len + 4 {
                self.rewind()?;
                return Ok(None);
            }
            if self.msg[len..] != head {
                self.corrupt = true;
                return Ok(None);
            }
            self.offset += whole;
            if self.msg.capacity() > 4 * self.limits.block && len < self.limits.block {
                self.msg.shrink_to(self.limits.block);
            }
            return Ok(Some(&self.msg[..len]));
        }
    }
}

/// A log file not yet being read.
enum Source {
    Plain(File),
    Gz(File),
}

/// Decodes one message into (stream, entry time in nanoseconds, text with its `\n`).
fn parse(msg: &[u8]) -> Option<(u8, i64, Vec<u8>, bool)> {
    let e = decode_entry(msg)?;
    let stream = if e.source == "stderr" { 2 } else { 1 };
    Some((stream, e.time_nano, e.line.to_vec(), e.partial))
}

fn secs(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

fn wanted(opts: &LogOptions, msg: &[u8]) -> bool {
    decode_entry(msg).is_some_and(|e| wanted_at(opts, if e.source == "stderr" { 2 } else { 1 }, || secs(e.time_nano)))
}

fn select(opts: &LogOptions, msg: &[u8]) -> Option<LogEntry> {
    let (stream, nanos, line, partial) = parse(msg)?;
    if !wanted_at(opts, stream, || secs(nanos)) {
        return None;
    }
    let mut data = Vec::with_capacity(line.len() + 32);
    if opts.timestamps {
        let (s, n) = (nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000) as u32);
        data.extend_from_slice(berth_api::time::rfc3339_nano_fixed(s, n, 0).as_bytes());
        data.push(b' ');
    }
    data.extend_from_slice(&line);
    if !partial {
        data.push(b'\n');
    }
    Some(LogEntry { stream, data })
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn numbered(log: &Path, n: usize, gz: bool) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(format!(".{n}"));
    if gz {
        p.push(".gz");
    }
    PathBuf::from(p)
}

fn open_if(p: &Path) -> io::Result<Option<File>> {
    match File::open(p) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `local` log as opened for one request (see the module doc).
pub(crate) struct LocalReader {
    path: PathBuf,
    opts: LogOptions,
    limits: Limits,
    /// Files newer than `cur` still to read, newest first: `pop` gives the next one.
    older: Vec<Source>,
    cur: Option<Frames>,
    cur_live: bool,
    live_id: Option<(u64, u64)>,
    draining: bool,
    /// Wanted entries at the start of `cur` that are before the `--tail`.
    skip: usize,
}

impl LocalReader {
    pub(crate) fn open(path: &Path, opts: LogOptions, limits: Limits) -> io::Result<LocalReader> {
        let mut files: Vec<Source> = Vec::new(); // newest first; the live one at 0 if any
        let mut seen = Vec::new();
        let mut live_id = None;
        if let Some(f) = open_if(path)? {
            let id = file_id(&f.metadata()?);
            live_id = Some(id);
            seen.push(id);
            files.push(Source::Plain(f));
        }
        let has_live = live_id.is_some();
        for n in 1.. {
            // Just after a rotation both `.1` and `.1.gz` may exist: the plain one is whole.
            let f = match open_if(&numbered(path, n, false))? {
                Some(f) => Source::Plain(f),
                None => match open_if(&numbered(path, n, true))? {
                    Some(f) => Source::Gz(f),
                    None => break,
                },
            };
            let id = match &f {
                Source::Plain(f) | Source::Gz(f) => file_id(&f.metadata()?),
            };
            if !seen.contains(&id) {
                seen.push(id);
                files.push(f);
            }
        }
        // Where reading starts: (index in `files`, offset, wanted entries to skip).
        let (first, offset, skip) = match opts.tail {
            None => (files.len().checked_sub(1), 0, 0),
            Some(0) => match files.first() {
                Some(Source::Plain(f)) if has_live => {
                    // Nothing old: start after the last complete frame of the live file.
                    let mut fr = Frames::plain(f.try_clone()?, 0, limits)?;
                    while fr.next()?.is_some() {}
                    (Some(0), fr.offset, 0)
                }
                _ => (None, 0, 0),
            },
            Some(n) => {
                let mut at = None;
                let mut found = 0;
                for (i, f) in files.iter().enumerate() {
                    let dup = match f {
                        Source::Plain(f) => Source::Plain(f.try_clone()?),
                        Source::Gz(f) => Source::Gz(f.try_clone()?),
                    };
                    let mut fr = Frames::open(dup, limits)?;
                    let mut count = 0;
                    while let Some(m) = fr.next()? {
                        if wanted(&opts, m) {
                            count += 1;
                        }
                    }
                    if found + count >= n {
                        at = Some((Some(i), 0, count - (n - found)));
                        break;
                    }
                    found += count;
                }
                at.unwrap_or((files.len().checked_sub(1), 0, 0))
            }
        };
        let mut older = Vec::new();
        let mut cur = None;
        let mut cur_live = false;
        if let Some(first) = first {
            for (i, f) in files.into_iter().enumerate().take(first + 1) {
                if i == first {
                    let mut fr = Frames::open(f, limits)?;
                    if offset > 0 {
                        fr.offset = offset;
                        fr.rewind()?;
                    }
                    cur = Some(fr);
                    cur_live = has_live && i == 0;
                } else {
                    older.push(f);
                }
            }
        }
        Ok(LocalReader { path: path.to_path_buf(), opts, limits, older, cur, cur_live, live_id, draining: false, skip })
    }

    fn advance(&mut self, f: Source, live: bool) -> io::Result<()> {
        self.cur = Some(Frames::open(f, self.limits)?);
        self.cur_live = live;
        Ok(())
    }

    /// Reads up to a batch of entries (as `LogReader::next_batch`).
    pub(crate) fn next_batch(&mut self) -> io::Result<Batch> {
        let mut entries = Vec::new();
        loop {
            if let Some(cur) = self.cur.as_mut() {
                while entries.len() < self.limits.batch {
                    let Some(msg) = cur.next()? else { break };
                    if self.skip > 0 {
                        if wanted(&self.opts, msg) {
                            self.skip -= 1;
                        }
                        continue;
                    }
                    if let Some(e) = select(&self.opts, msg) {
                        entries.push(e);
                    }
                }
                if entries.len() >= self.limits.batch {
                    return Ok(Batch { entries, caught_up: false });
                }
            }
            if let Some(next) = self.older.pop() {
                let live = self.older.is_empty() && self.live_id.is_some();
                self.advance(next, live)?;
                continue;
            }
            if !self.opts.follow {
                return Ok(Batch { entries, caught_up: true });
            }
            if self.draining {
                self.draining = false;
                if let Some(f) = open_if(&self.path)? {
                    self.live_id = Some(file_id(&f.metadata()?));
                    self.advance(Source::Plain(f), true)?;
                    continue;
                }
            }
            match std::fs::metadata(&self.path) {
                Ok(m) if Some(file_id(&m)) != self.live_id || !self.cur_live => {
                    if self.cur.is_some() && self.cur_live {
                        self.draining = true;
                        continue;
                    }
                    if let Some(f) = open_if(&self.path)? {
                        self.live_id = Some(file_id(&f.metadata()?));
                        self.advance(Source::Plain(f), true)?;
                        continue;
                    }
                }
                Ok(m) => {
                    if let Some(cur) = self.cur.as_mut() {
                        if m.len() < cur.offset {
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::locallog::encode_entry;

    const T0: i64 = 1_764_561_234_000_000_000;

    fn frames(stream: &str, range: std::ops::Range<usize>) -> Vec<u8> {
        let mut v = Vec::new();
        for i in range {
            encode_entry(&mut v, format!("{i}\n").as_bytes(), stream, T0 + i as i64 * 1_000_000_000);
        }
        v
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gz");
        e.finish().expect("gz")
    }

    fn both() -> LogOptions {
        LogOptions { stdout: true, stderr: true, ..Default::default() }
    }

    fn small() -> Limits {
        Limits { block: 7, max_line: 200, batch: 3 }
    }

    fn read_all(r: &mut LocalReader) -> Vec<LogEntry> {
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

    fn texts(e: &[LogEntry]) -> Vec<String> {
        e.iter().map(|e| String::from_utf8_lossy(&e.data).trim_end().to_string()).collect()
    }

    fn nums(r: std::ops::Range<usize>) -> Vec<String> {
        r.map(|i| i.to_string()).collect()
    }

    fn read(log: &Path, opts: LogOptions, limits: Limits) -> Vec<String> {
        texts(&read_all(&mut LocalReader::open(log, opts, limits).expect("open")))
    }

    /// `container.log` = 6..9, `.1.gz` = 3..6, `.2` (not yet compressed) = 0..3.
    fn rotated_log(dir: &Path) -> PathBuf {
        let log = dir.join("container.log");
        std::fs::write(&log, frames("stdout", 6..9)).expect("w");
        std::fs::write(numbered(&log, 1, true), gz(&frames("stdout", 3..6))).expect("w");
        std::fs::write(numbered(&log, 2, false), frames("stdout", 0..3)).expect("w");
        log
    }

    #[test]
    fn tail_across_rotated_and_compressed_files() {
        let t = tempfile::tempdir().expect("tmp");
        let log = rotated_log(t.path());
        for limits in [Limits::default(), small()] {
            let cases: &[(Option<usize>, std::ops::Range<usize>)] =
                &[(None, 0..9), (Some(0), 0..0), (Some(1), 8..9), (Some(3), 6..9), (Some(5), 4..9), (Some(100), 0..9)];
            for (n, want) in cases {
                assert_eq!(read(&log, LogOptions { tail: *n, ..both() }, limits), nums(want.clone()), "tail {n:?}");
            }
        }
    }

    #[test]
    fn selection_timestamps_and_partial_entries() {
        let t = tempfile::tempdir().expect("tmp");
        let log = t.path().join("container.log");
        let mut v = Vec::new();
        encode_entry(&mut v, b"out\n", "stdout", T0 + 5);
        encode_entry(&mut v, b"err\n", "stderr", T0 + 2_000_000_000);
        encode_entry(&mut v, b"part", "stdout", T0 + 3_000_000_000);
        encode_entry(&mut v, b"ial\n", "stdout", T0 + 3_000_000_000);
        // A frame too long for the limits is skipped, then reading goes on.
        encode_entry(&mut v, &[b'x'; 300], "stdout", T0);
        encode_entry(&mut v, b"end\n", "stderr", T0 + 4_000_000_000);
        std::fs::write(&log, &v).expect("w");
        let all = read_all(&mut LocalReader::open(&log, both(), small()).expect("open"));
        let got: Vec<(u8, &[u8])> = all.iter().map(|e| (e.stream, &e.data[..])).collect();
        assert_eq!(got, [(1, &b"out\n"[..]), (2, b"err\n"), (1, b"part"), (1, b"ial\n"), (2, b"end\n")]);
        let err = LogOptions { stderr: true, tail: Some(1), ..Default::default() };
        assert_eq!(read(&log, err, small()), ["end"]);
        let since = LogOptions { since: Some(secs(T0) + 1.5), until: Some(secs(T0) + 3.5), ..both() };
        assert_eq!(read(&log, since, small()), ["err", "part", "ial"]);
        let stamped = LogOptions { stdout: true, timestamps: true, tail: Some(3), ..Default::default() };
        let e = read_all(&mut LocalReader::open(&log, stamped, small()).expect("open"));
        assert_eq!(e[0].data, b"2025-12-01T03:53:54.000000005Z out\n".to_vec());
    }

    #[test]
    fn follow_waits_for_whole_frames_and_goes_on_across_rotation() {
        let t = tempfile::tempdir().expect("tmp");
        let log = t.path().join("container.log");
        std::fs::write(&log, frames("stdout", 0..2)).expect("w");
        let append = |data: &[u8]| {
            use std::io::Write;
            let mut f = File::options().append(true).create(true).open(&log).expect("open");
            f.write_all(data).expect("write");
        };
        let follow = LogOptions { follow: true, tail: Some(1), ..both() };
        let mut r = LocalReader::open(&log, follow, small()).expect("open");
        let mut step = || texts(&read_all(&mut r));
        assert_eq!(step(), ["1"]);
        let f2 = frames("stdout", 2..3);
        append(&f2[..5]);
        assert_eq!(step(), Vec::<String>::new());
        append(&f2[5..]);
        assert_eq!(step(), ["2"]);
        // Rotated as the shim does with compress: written, renamed, gzipped, new file.
        append(&frames("stdout", 3..5));
        std::fs::rename(&log, numbered(&log, 1, false)).expect("rotate");
        berth_runtime::locallog::compress_file(&numbered(&log, 1, false)).expect("gz");
        append(&frames("stdout", 5..7));
        assert_eq!(step(), nums(3..7));
        // Truncated in place (max-file 1), then written again.
        File::options().write(true).open(&log).expect("open").set_len(0).expect("truncate");
        append(&frames("stdout", 7..8));
        assert_eq!(step(), ["7"]);
        // Started with tail 0: only what comes next.
        let mut r = LocalReader::open(&log, LogOptions { follow: true, tail: Some(0), ..both() }, small()).expect("open");
        assert_eq!(texts(&read_all(&mut r)), Vec::<String>::new());
        append(&frames("stdout", 8..9));
        assert_eq!(texts(&read_all(&mut r)), ["8"]);
        // The whole log now: .1.gz (0..5, the old live file) then the live file.
        assert_eq!(read(&log, both(), small()), [nums(0..5), nums(7..9)].concat());
    }

    #[test]
    fn the_shims_rotation_is_read_back_whole() {
        // The writer's own rotation (20 B files, 3 kept, gzipped) read by the reader.
        let t = tempfile::tempdir().expect("tmp");
        let log = t.path().join("container.log");
        let mut w = berth_runtime::jsonlog::LogFile::open(&log, Some(60), 3).expect("open").compressed(true);
        for i in 0..10 {
            let mut v = Vec::new();
            encode_entry(&mut v, format!("{i}\n").as_bytes(), "stdout", T0);
            w.push(&v);
            w.flush();
        }
        assert!(numbered(&log, 1, true).exists() && numbered(&log, 2, true).exists());
        assert!(!numbered(&log, 1, false).exists() && !numbered(&log, 3, true).exists());
        let got = read(&log, both(), Limits::default());
        assert_eq!(got.last().map(String::as_str), Some("9"));
        let first: usize = got[0].parse().expect("num");
        assert_eq!(got, nums(first..10));
        assert_eq!(read(&log, LogOptions { tail: Some(4), ..both() }, small()), nums(6..10));
    }

    #[test]
    fn corrupt_and_missing_files() {
        let t = tempfile::tempdir().expect("tmp");
        let log = t.path().join("container.log");
        assert_eq!(read(&log, both(), small()), Vec::<String>::new());
        assert_eq!(read(&log, LogOptions { tail: Some(2), ..both() }, small()), Vec::<String>::new());
        let mut v = frames("stdout", 0..2);
        let n = v.len();
        v[n - 1] ^= 1; // trailing length differs
        v.extend(frames("stdout", 2..3));
        std::fs::write(&log, &v).expect("w");
        assert_eq!(read(&log, both(), small()), ["0"]);
    }
}
