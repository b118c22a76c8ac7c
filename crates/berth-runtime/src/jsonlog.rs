//! Docker's json-file log format: one JSON object per line of container output,
//! `{"log":"hi\n","stream":"stdout","time":"<RFC3339Nano>"}`. Lines longer than 16 KiB
//! are split into partial entries (no trailing newline); a trailing partial line is
//! flushed at exit. Strings are escaped the way Go's encoding/json does (HTML-safe
//! `<>&`, U+2028/2029), so files match Docker's byte for byte.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Docker's maximum log message size before a line is split.
pub const MAX_LINE: usize = 16 * 1024;

/// Appends one encoded entry (with trailing '\n') to `out`.
pub fn encode_entry(out: &mut Vec<u8>, log: &[u8], stream: &str, time: &str) {
    out.extend_from_slice(b"{\"log\":\"");
    escape_into(out, &String::from_utf8_lossy(log));
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                let v = c as u32;
                out.extend_from_slice(b"\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[((v >> shift) & 0xf) as usize]);
                }
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// Splits one stream's output into log entries.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds output bytes; calls `emit` with each complete line (including '\n') or
    /// 16 KiB chunk of an overlong line.
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) if self.pending.len() + i < MAX_LINE => {
                    if self.pending.is_empty() {
                        emit(&data[..=i]);
                    } else {
                        self.pending.extend_from_slice(&data[..=i]);
                        emit(&self.pending);
                        self.pending.clear();
                    }
                    data = &data[i + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.pending.len();
                    let take = room.min(data.len());
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.pending.len() == MAX_LINE {
                        emit(&self.pending);
                        self.pending.clear();
                    }
                }
            }
        }
    }

    /// Emits a trailing partial line, if any.
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// The json-file log with Docker's `max-size`/`max-file` rotation: before an entry
/// would take the file past `max_size`, `<log>.N-1` is dropped, `<log>.k` becomes
/// `<log>.k+1`, `<log>` becomes `<log>.1` and a new `<log>` is started (with
/// `max_file` ≤ 1 the file is truncated instead). Entries are never split across
/// files. Entries are buffered by [`LogFile::push`] and written by [`LogFile::flush`].
/// With `compress` (the `local` driver's default) rotated files are `<log>.k.gz`: `<log>.1`
/// is gzipped right after the rotation, in the shim's loop (synchronously: a 20 MB file
/// takes a fraction of a second at flate2's fast level).
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    compress: bool,
    buf: Vec<u8>,
}

fn open_append(path: &Path) -> io::Result<File> {
    File::options().append(true).create(true).mode(0o640).open(path)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

impl LogFile {
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> io::Result<LogFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size: max_size.filter(|m| *m > 0),
            max_file,
            compress: false,
            buf: Vec::new(),
        })
    }

    /// Gzips rotated files (`<log>.k.gz`).
    pub fn compressed(mut self, compress: bool) -> LogFile {
        self.compress = compress;
        self
    }

    /// The k-th rotated file's name.
    fn rotated(&self, k: u32) -> PathBuf {
        let p = numbered(&self.path, k);
        if self.compress {
            let mut s = p.into_os_string();
            s.push(".gz");
            return PathBuf::from(s);
        }
        p
    }

    /// Buffers one encoded entry, rotating first if it would not fit.
    pub fn push(&mut self, entry: &[u8]) {
        if let Some(max) = self.max_size {
            let used = self.size + self.buf.len() as u64;
            if used > 0 && used + entry.len() as u64 > max {
                self.flush();
                if let Err(e) = self.rotate() {
                    eprintln!("berth-shim: rotate {}: {e}", self.path.display());
                }
            }
        }
        self.buf.extend_from_slice(entry);
    }

    /// Writes the buffered entries.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => self.size += self.buf.len() as u64,
            Err(e) => eprintln!("berth-shim: write {}: {e}", self.path.display()),
        }
        self.buf.clear();
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let last = self.max_file - 1;
        match std::fs::remove_file(self.rotated(last)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for k in (1..last).rev() {
            match std::fs::rename(self.rotated(k), self.rotated(k + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        if self.compress {
            crate::locallog::compress_file(&numbered(&self.path, 1))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_docker() {
        let mut v = Vec::new();
        encode_entry(&mut v, b"hi\n", "stdout", "2026-11-23T11:29:54.177021719Z");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-23T11:29:54.177021719Z\"}\n"
        );
        let mut v = Vec::new();
        encode_entry(&mut v, b"a\"b\\<x>&\x01\t\xff\xe2\x80\xa8", "stderr", "t");
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with(r#"{"log":"a\"b\\\u003cx\u003e\u0026\u0001\t\u{fffd}\u2028","#.replace("\\u{fffd}", "\u{fffd}").as_str()), "{s}");
        let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed["stream"], "stderr");
    }

    #[test]
    fn splits_lines() {
        let mut sp = LineSplitter::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        sp.push(b"a\nbb", |l| got.push(l.to_vec()));
        sp.push(b"b\nc\n", |l| got.push(l.to_vec()));
        sp.push(b"tail", |l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"a\n".to_vec(), b"bbb\n".to_vec(), b"c\n".to_vec()]);
        sp.flush(|l| got.push(l.to_vec()));
        assert_eq!(got.last().unwrap(), b"tail");
    }

    #[test]
    fn splits_long_lines_at_16k() {
        let mut sp = LineSplitter::default();
        let mut got: Vec<usize> = Vec::new();
        let mut data = vec![b'x'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        sp.push(&data[..100], |l| got.push(l.len()));
        sp.push(&data[100..], |l| got.push(l.len()));
        assert_eq!(got, vec![MAX_LINE, MAX_LINE, 11]);
        let mut got = Vec::new();
        let mut exact = vec![b'y'; MAX_LINE - 1];
        exact.push(b'\n');
        sp.push(&exact, |l| got.push(l.len()));
        assert_eq!(got, vec![MAX_LINE]);
    }

    #[test]
    fn rotates_like_docker() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c-json.log");
        let mut l = LogFile::open(&p, Some(100), 3).unwrap();
        let entry = |i: usize| format!("{{\"log\":\"{i:036}\"}}\n"); // 46 bytes
        for i in 0..9 {
            l.push(entry(i).as_bytes());
            l.flush();
        }
        let read = |s: &str| std::fs::read_to_string(t.path().join(s)).unwrap_or_default();
        // Two entries fit in 100 bytes; 9 entries → files [8], [6,7], [4,5]; 0-3 dropped.
        assert_eq!(read("c-json.log"), entry(8));
        assert_eq!(read("c-json.log.1"), entry(6) + &entry(7));
        assert_eq!(read("c-json.log.2"), entry(4) + &entry(5));
        assert!(!t.path().join("c-json.log.3").exists());
        // Reopening continues with the existing size.
        let mut l = LogFile::open(&p, Some(100), 3).unwrap();
        l.push(entry(9).as_bytes());
        l.push(entry(10).as_bytes());
        l.flush();
        assert_eq!(read("c-json.log"), entry(10));
        assert_eq!(read("c-json.log.1"), entry(8) + &entry(9));
        // max_file 1: truncate in place.
        let q = t.path().join("one.log");
        let mut l = LogFile::open(&q, Some(50), 1).unwrap();
        for i in 0..3 {
            l.push(entry(i).as_bytes());
        }
        l.flush();
        assert_eq!(std::fs::read_to_string(&q).unwrap(), entry(2));
        assert!(!t.path().join("one.log.1").exists());
    }
}
