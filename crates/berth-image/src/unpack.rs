//! Layer unpacking: a (possibly gzip-compressed) layer tar → a directory usable as an
//! overlayfs lower dir, with its diff id and size. The extraction itself (whiteouts,
//! opaque dirs, the path jail) is `berth-archive`'s extractor in layer mode; this file
//! adds decompression, progress and hashing. The store owns where the destination lives.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::UnpackError;

/// What unpacking a layer found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackStats {
    /// Bytes of regular files (hardlinks counted once).
    pub size: u64,
    /// `sha256:` of the uncompressed tar stream — the layer's diff id.
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream (what `save` writes as `layer.tar`).
    pub tar_size: u64,
}

/// The compressions Docker's `DecompressStream` knows, by magic bytes (one detector
/// and one set of streaming decoders, in berth-archive).
pub use berth_archive::decompress::{detect as detect_compression, Compression};

/// Unpacks a client's archive (`docker import`): a plain, gzip-, bzip2-, xz- or
/// zstd-compressed tar read as it arrives.
pub fn unpack_any<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    unpack_any_tee(reader, dest, None)
}

/// [`unpack_any`], copying the uncompressed tar stream to `tee` as it is hashed (the
/// store keeps it as the layer's tar: docs/storage.md, "Layer tars").
pub fn unpack_any_tee<R: Read>(mut reader: R, dest: &Path, tee: Option<&mut dyn io::Write>) -> Result<UnpackStats, UnpackError> {
    // The longest magic is 6 bytes; read them (or the whole stream if shorter) and
    // put them back in front.
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UnpackError::Archive(archive_text(e.kind(), &e.to_string()))),
        }
    }
    let head = &head[..got];
    let trap = std::rc::Rc::new(std::cell::RefCell::new(None));
    let r = BufReader::with_capacity(64 * 1024, io::Cursor::new(head.to_vec()).chain(reader));
    let result = match berth_archive::decompress::decoder(detect_compression(head), r) {
        Ok(inner) => unpack_tee(ErrorTrap { inner, seen: trap.clone() }, dest, tee),
        Err(e) => Err(UnpackError::Compression(e.to_string())),
    };
    let seen = trap.borrow_mut().take();
    match (result, seen) {
        (Ok(s), _) => Ok(s),
        // The stream itself failed (a cut body, a corrupt compressed stream): that is
        // the error, not the write the extractor was doing when the bytes stopped.
        (Err(_), Some((kind, msg))) => Err(UnpackError::Archive(archive_text(kind, &msg))),
        (Err(UnpackError::Tar(e)), None) => Err(UnpackError::Archive(archive_text(e.kind(), &e.to_string()))),
        (Err(e), None) => Err(e),
    }
}

/// Go's texts for a broken client archive, as `docker import` reports them.
fn archive_text(kind: io::ErrorKind, msg: &str) -> String {
    if kind == io::ErrorKind::UnexpectedEof
        || msg.contains("failed to read entire block")
        || msg.contains("unexpected EOF")
        || msg.contains("incomplete")
    {
        "unexpected EOF".into()
    } else if msg.contains("checksum") || msg.contains("numeric field") || msg.contains("header") {
        "archive/tar: invalid tar header".into()
    } else {
        msg.to_string()
    }
}

/// Remembers the first error of the stream it reads (kind and text).
struct ErrorTrap<R> {
    inner: R,
    seen: std::rc::Rc<std::cell::RefCell<Option<(io::ErrorKind, String)>>>,
}

impl<R: Read> Read for ErrorTrap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let mut seen = self.seen.borrow_mut();
            if seen.is_none() && e.kind() != io::ErrorKind::Interrupted {
                *seen = Some((e.kind(), e.to_string()));
            }
        })
    }
}

/// Unpacks the layer blob at `blob` (gzip or plain tar) into `dest`, calling
/// `progress(compressed bytes read)` now and then.
pub fn unpack_blob(
    blob: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<UnpackStats, UnpackError> {
    let f = fs::File::open(blob).map_err(|e| UnpackError::io("open", blob, e))?;
    let counting = CountingReader { inner: f, count: 0, last: 0, progress };
    unpack_reader(counting, dest)
}

/// Unpacks a layer blob (plain tar, or gzip, zstd, bzip2, xz) read from `reader` as it arrives
/// (the streaming pull hands it the download) into `dest`.
pub fn unpack_reader<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let mut buf = BufReader::with_capacity(64 * 1024, reader);
    let head = buf.fill_buf().map_err(UnpackError::Tar)?.to_vec();
    match detect_compression(&head) {
        // The common cases without a box.
        Compression::Gzip => unpack(flate2::bufread::MultiGzDecoder::new(buf), dest),
        Compression::None => unpack(buf, dest),
        other => unpack(berth_archive::decompress::decoder(other, buf).map_err(UnpackError::Tar)?, dest),
    }
}

/// A zstd-compressed layer (OCI `tar+zstd`) decoded as it is read, by a pure-Rust
/// decoder whose window (memory) is capped at its default, not by the input.
pub(crate) fn zstd_reader<R: Read>(r: R) -> std::io::Result<impl Read> {
    ruzstd::decoding::StreamingDecoder::new(r)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("zstd: {e}")))
}

struct CountingReader<'a, R> {
    inner: R,
    count: u64,
    last: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if n == 0 || self.count - self.last >= 512 * 1024 {
            self.last = self.count;
            (self.progress)(self.count);
        }
        Ok(n)
    }
}

struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    tee: Option<&'a mut dyn io::Write>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(t) = self.tee.as_mut() {
            t.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Unpacks an uncompressed tar stream into `dest` (created if missing) with the
/// archive crate's extractor in layer mode.
pub fn unpack<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    unpack_tee(reader, dest, None)
}

/// [`unpack`], copying the tar stream to `tee` byte for byte as it is hashed.
pub fn unpack_tee<R: Read>(reader: R, dest: &Path, tee: Option<&mut dyn io::Write>) -> Result<UnpackStats, UnpackError> {
    match fs::DirBuilder::new().mode(0o755).create(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(UnpackError::io("mkdir", dest, e)),
    }
    let mut hashing = HashingReader { inner: reader, hasher: Sha256::new(), count: 0, tee };
    let opts = berth_archive::ExtractOptions { layer: true, ..Default::default() };
    let stats = berth_archive::extract(&mut hashing, dest, &opts).map_err(UnpackError::from)?;
    // Hash the trailing blocks too: the diff id covers the whole stream.
    io::copy(&mut hashing, &mut io::sink()).map_err(UnpackError::Tar)?;
    let tar_size = hashing.count;
    Ok(UnpackStats { size: stats.size, diff_id: format!("sha256:{}", hex::encode(hashing.hasher.finalize())), tar_size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A tar of a tree made on disk, written by the archive crate's writer.
    fn build(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let t = tempfile::tempdir().unwrap();
        for (p, data) in files {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, data).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        }
        for (p, target) in links {
            std::os::unix::fs::symlink(target, t.path().join(p)).unwrap();
        }
        let mut out = berth_archive::TarOut::new(Vec::new(), false);
        out.add_tree(t.path(), "").unwrap();
        out.finish().unwrap()
    }

    #[test]
    fn files_dirs_symlinks_and_size() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("diff");
        let tar = build(
            &[("etc/hosts", b"127.0.0.1 localhost\n"), ("bin/sh", b"#!")],
            &[("etc/abs", "/etc/passwd"), ("etc/rel", "../bin/sh")],
        );
        let stats = unpack(&tar[..], &dest).unwrap();
        // 20 + 2 bytes of files, 11 + 9 of symlink targets (Docker counts lstat sizes).
        assert_eq!(stats.size, 22 + 11 + 9);
        assert_eq!(stats.diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&tar))));
        assert_eq!(fs::read(dest.join("etc/hosts")).unwrap(), b"127.0.0.1 localhost\n");
        assert_eq!(fs::read_link(dest.join("etc/abs")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(fs::read_link(dest.join("etc/rel")).unwrap(), Path::new("../bin/sh"));
        assert_eq!(fs::metadata(dest.join("etc/hosts")).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn gzip_blob_with_progress() {
        let t = tempfile::tempdir().unwrap();
        let tar = build(&[("a", &vec![7u8; 100_000])], &[]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let blob = t.path().join("blob");
        fs::write(&blob, gz.finish().unwrap()).unwrap();
        let mut seen = Vec::new();
        let stats = unpack_blob(&blob, &t.path().join("diff"), &mut |n| seen.push(n)).unwrap();
        assert_eq!(stats.size, 100_000);
        assert_eq!(stats.diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&tar))));
        assert_eq!(seen.last().copied(), Some(fs::metadata(&blob).unwrap().len()));
    }

    #[test]
    fn compression_magic() {
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect_compression(b"etc/"), Compression::None);
    }
}
