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
