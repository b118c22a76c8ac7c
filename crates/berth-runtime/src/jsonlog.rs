//! Docker's json-file log format: one JSON object per line of container output,
//! `{"log":"hi\n","stream":"stdout","time":"<RFC3339Nano>"}`. Lines longer than 16 KiB
//! are split into partial entries (no trailing newline); a trailing partial line is
//! flushed at exit. Strings are escaped the way Go's encoding/json does (HTML-safe
//! `<>&`, U+2028/2029), so files match Docker's byte for byte.

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
}
