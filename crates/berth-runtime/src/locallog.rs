//! Docker's `local` log format (moby `daemon/logger/local`): each entry is a protobuf
//! `LogEntry` framed as `[u32 BE length][message][u32 BE length]`, so the file can be
//! read forwards and backwards. The message's fields, proto3 (zero values omitted):
//!
//! | field | number | wire type |
//! |---|---|---|
//! | `source` ("stdout"/"stderr") | 1 | length-delimited |
//! | `time_nano` (Unix nanoseconds) | 2 | varint (int64) |
//! | `line` (without its `\n`) | 3 | length-delimited |
//! | `partial` (no `\n` ended it) | 4 | varint (bool) |
//! | `partial_log_metadata` | 5 | length-delimited (never written; skipped on read) |
//!
//! The few fields are encoded by hand: the shim stays small, with no protobuf crate.
//! Files live at `<container dir>/local-logs/container.log`, rotated like json-file
//! (see [`crate::jsonlog::LogFile`]) and, with `compress` (the default), gzipped after
//! rotation (`container.log.1.gz`, ...).

/// Frame overhead: the two length words.
pub const FRAME_OVERHEAD: usize = 8;

/// One decoded entry. `line` borrows from the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub source: &'a str,
    pub time_nano: i64,
    pub line: &'a [u8],
    pub partial: bool,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.push(field << 3 | 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends one framed entry for one line of output (`\n` included when it ended the
/// line; without one the entry is `partial`).
pub fn encode_entry(out: &mut Vec<u8>, line: &[u8], source: &str, time_nano: i64) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let (line, partial) = match line.strip_suffix(b"\n") {
        Some(l) => (l, false),
        None => (line, true),
    };
    put_bytes(out, 1, source.as_bytes());
    if time_nano != 0 {
        out.push(2 << 3);
        put_varint(out, time_nano as u64);
    }
    put_bytes(out, 3, line);
    if partial {
        out.extend_from_slice(&[4 << 3, 1]);
    }
    let len = ((out.len() - start - 4) as u32).to_be_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out.extend_from_slice(&len);
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decodes one `LogEntry` message (without its frame). Unknown fields are skipped;
/// None if the message is malformed.
pub fn decode_entry(msg: &[u8]) -> Option<Entry<'_>> {
    let mut e = Entry { source: "", time_nano: 0, line: &[], partial: false };
    let mut at = 0;
    while at < msg.len() {
        let key = varint(msg, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = varint(msg, &mut at)?;
                match field {
                    2 => e.time_nano = v as i64,
                    4 => e.partial = v != 0,
                    _ => {}
                }
            }
            2 => {
                let n = usize::try_from(varint(msg, &mut at)?).ok()?;
                let data = msg.get(at..at.checked_add(n)?)?;
                at += n;
                match field {
                    1 => e.source = std::str::from_utf8(data).ok()?,
                    3 => e.line = data,
                    _ => {}
                }
            }
            1 => at = at.checked_add(8).filter(|a| *a <= msg.len())?,
            5 => at = at.checked_add(4).filter(|a| *a <= msg.len())?,
            _ => return None,
        }
    }
    Some(e)
}

/// Gzips `src` to `<src>.gz` (through a temp file renamed into place) and removes
/// `src`: what Docker does to a rotated file with `compress=true`.
pub fn compress_file(src: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut gz = src.as_os_str().to_owned();
    gz.push(".gz");
    let mut tmp = gz.clone();
    tmp.push(".tmp");
    let result = (|| {
        let mut input = std::fs::File::open(src)?;
        let out = std::fs::File::create(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        std::io::copy(&mut input, &mut enc)?;
        enc.finish()?.flush()?;
        std::fs::rename(&tmp, &gz)?;
        std::fs::remove_file(src)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a buffer of frames into messages, checking both length words.
    fn frames(mut b: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let n = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            assert_eq!(&b[4 + n..8 + n], &b[..4], "trailing length");
            out.push(&b[4..4 + n]);
            b = &b[8 + n..];
        }
        out
    }

    #[test]
    fn encodes_a_known_byte_sequence() {
        // By hand from the protobuf encoding rules:
        //   0a 06 "stdout"            field 1, wire 2, len 6
        //   10 ac 02                  field 2, wire 0, varint 300
        //   1a 02 "hi"                field 3, wire 2, len 2 (the '\n' is dropped)
        // = 8 + 3 + 4 = 15 bytes, framed by 00 00 00 0f on both sides.
        let mut v = Vec::new();
        encode_entry(&mut v, b"hi\n", "stdout", 300);
        let mut want = vec![0, 0, 0, 15, 0x0a, 6];
        want.extend_from_slice(b"stdout");
        want.extend_from_slice(&[0x10, 0xac, 0x02, 0x1a, 2, b'h', b'i', 0, 0, 0, 15]);
        assert_eq!(v, want);
        // A partial line: field 4 (varint) = 1, no line ending stripped: 8 + 2 + 3 + 2.
        let mut v = Vec::new();
        encode_entry(&mut v, b"x", "stderr", 1);
        let mut want = vec![0, 0, 0, 15, 0x0a, 6];
        want.extend_from_slice(b"stderr");
        want.extend_from_slice(&[0x10, 0x01, 0x1a, 1, b'x', 0x20, 0x01, 0, 0, 0, 15]);
        assert_eq!(v, want);
    }

    #[test]
    fn round_trips() {
        let cases: &[(&[u8], &str, i64, bool)] = &[
            (b"hello\n", "stdout", 1_764_561_234_123_456_789, false),
            (b"\n", "stderr", 1, false),
            (b"no newline", "stdout", i64::MAX, true),
            (&[0xff, 0, b'\n', b'\n'], "stderr", 42, false),
            (b"", "stdout", 0, true),
        ];
        let mut buf = Vec::new();
        for (line, src, t, _) in cases {
            encode_entry(&mut buf, line, src, *t);
        }
        let got: Vec<Entry> = frames(&buf).into_iter().map(|m| decode_entry(m).expect("decode")).collect();
        for ((line, src, t, partial), e) in cases.iter().zip(&got) {
            assert_eq!(e.source, *src);
            assert_eq!(e.time_nano, *t);
            assert_eq!(e.partial, *partial);
            let mut back = e.line.to_vec();
            if !e.partial {
                back.push(b'\n');
            }
            assert_eq!(&back[..], *line);
        }
    }

    #[test]
    fn decoder_skips_unknown_fields_and_refuses_garbage() {
        // partial_log_metadata (5, wire 2) and an unknown fixed64 (6, wire 1) are skipped.
        let mut m = vec![0x0a, 6];
        m.extend_from_slice(b"stdout");
        m.extend_from_slice(&[0x2a, 3, 1, 2, 3, 0x31, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, 1, b'z']);
        let e = decode_entry(&m).expect("decode");
        assert_eq!((e.source, e.line), ("stdout", &b"z"[..]));
        for bad in [&[0x0a, 9, b'a'][..], &[0x0b][..], &[0x10, 0x80][..], &[0x31, 1][..]] {
            assert_eq!(decode_entry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn compresses_rotated_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("container.log.1");
        std::fs::write(&p, b"abc").unwrap();
        compress_file(&p).unwrap();
        assert!(!p.exists());
        let gz = std::fs::File::open(t.path().join("container.log.1.gz")).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut s).unwrap();
        assert_eq!(s, "abc");
    }
}
