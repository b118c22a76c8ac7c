//! Compressed archives as Docker's `DecompressStream` takes them: gzip, bzip2, xz and
//! zstd recognised by their magic bytes, anything else read as it is. Every decoder is
//! pure Rust and streams: its memory is capped by the format's window (bzip2's 900 KB
//! blocks, zstd's default window limit, xz's dictionary up to [`XZ_MEM_LIMIT_KIB`]),
//! never by the size of the input. Used for build contexts, `import` and layers.

use std::io::{self, BufRead, Read};

/// A compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

/// The most an xz stream's decoder may allocate (its dictionary): `xz -9` needs 64 MiB.
pub const XZ_MEM_LIMIT_KIB: u32 = 128 * 1024;

/// Detects the compression by the magic bytes at the start of `head` (Docker's
/// `DetectCompression`); needs at most 6 bytes.
pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// `r` decoded as it is read, by the format its first bytes show.
pub fn decompressed<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let kind = detect(r.fill_buf()?);
    decoder(kind, r)
}

/// `r` decoded as `kind`.
pub fn decoder<'a, R: BufRead + 'a>(kind: Compression, r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?,
        ),
        Compression::Bzip2 => Box::new(Bzip2 { inner: bzip2_rs::DecoderReader::new(r) }),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(r, true, XZ_MEM_LIMIT_KIB)),
    })
}

/// bzip2-rs's reader, its errors given the format's name.
struct Bzip2<R: Read> {
    inner: bzip2_rs::DecoderReader<R>,
}

impl<R: Read> Read for Bzip2<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| io::Error::new(e.kind(), format!("bzip2: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Compresses with the system's tool (the formats' reference encoders).
    fn compress(tool: &str, data: &[u8]) -> Option<Vec<u8>> {
        let mut child = Command::new(tool).arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().ok()?;
        let mut stdin = child.stdin.take()?;
        let data = data.to_vec();
        let w = std::thread::spawn(move || io::Write::write_all(&mut stdin, &data));
        let out = child.wait_with_output().ok()?;
        w.join().ok()?.ok()?;
        out.status.success().then_some(out.stdout)
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        /// Valid streams of each format (made once by the reference tools), to mutate.
        fn seeds() -> Vec<Vec<u8>> {
            let data: Vec<u8> = (0..20_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
            ["gzip", "bzip2", "xz", "zstd"].iter().filter_map(|t| super::compress(t, &data)).collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
            /// Damaged streams (bytes flipped, cut, garbage after a magic) end in an
            /// error or some output, never a panic, and never more output than a
            /// bound: a decoder's memory and output follow the input, not a lie in it.
            #[test]
            fn damaged_streams_never_panic(seed in 0usize..4, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8), cut in any::<usize>(), garbage in proptest::collection::vec(any::<u8>(), 0..512), magic in 0usize..5) {
                let seeds = seeds();
                let mut data = if magic < 4 && garbage.len() > 16 {
                    let m: [&[u8]; 4] = [&[0x1f, 0x8b, 8, 0], b"BZh9", &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0], &[0x28, 0xb5, 0x2f, 0xfd]];
                    let mut d = m[magic].to_vec();
                    d.extend_from_slice(&garbage);
                    d
                } else {
                    seeds[seed % seeds.len()].clone()
                };
                for (at, b) in flips {
                    let n = data.len();
                    data[at % n] ^= b;
                }
                let keep = cut % (data.len() + 1);
                data.truncate(keep.max(1));
                if let Ok(mut r) = decompressed(io::BufReader::new(data.as_slice())) {
                    let mut out = Vec::new();
                    let _ = (&mut r).take(64 << 20).read_to_end(&mut out);
                };
            }
        }
    }

    #[test]
    fn every_format_round_trips_through_the_reference_tools() {
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for (tool, kind) in [("gzip", Compression::Gzip), ("bzip2", Compression::Bzip2), ("xz", Compression::Xz), ("zstd", Compression::Zstd)] {
            let Some(packed) = compress(tool, &data) else {
                // gzip, bzip2 and xz are in every Debian; zstd is installed by scripts/lib.sh.
                assert_eq!(tool, "zstd", "{tool} is missing");
                continue;
            };
            assert_eq!(detect(&packed), kind, "{tool}");
            let mut out = Vec::new();
            decompressed(io::BufReader::new(packed.as_slice())).expect(tool).read_to_end(&mut out).expect(tool);
            assert_eq!(out, data, "{tool}");
            // A cut stream is an error, never a short success.
            let cut = &packed[..packed.len() / 2];
            let mut out = Vec::new();
            let r = decompressed(io::BufReader::new(cut)).and_then(|mut d| d.read_to_end(&mut out));
            assert!(r.is_err(), "{tool}: a cut stream read as {} bytes", out.len());
        }
        assert_eq!(detect(b"plain tar"), Compression::None);
    }
}
