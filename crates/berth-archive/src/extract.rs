//! The tar extractor, for `docker cp` into a container and for image layers. Nothing
//! is created outside the destination, whatever the archive holds: names are made
//! relative and `..` is refused, parents are resolved without leaving it, the last
//! component is never followed (files are created `O_NOFOLLOW|O_EXCL`), hard links
//! must point inside. Two modes ([`ExtractOptions::layer`]) hold what differs:
//!
//! * **copy** (`docker cp`, run inside the container's jail): a symlink among the
//!   parents is followed but kept inside the destination (an absolute target starts
//!   again there), a symlink whose relative target climbs out is refused (Docker's
//!   breakout check), Docker's `NoOverwriteDirNonDir` and `copyUIDGID` apply, and
//!   failing to set an owner or mode fails the extraction;
//! * **layer** (pull, load, import): AUFS/OCI whiteouts become overlay whiteouts
//!   (`.wh.x` → char device 0/0, `.wh..wh..opq` → `trusted.overlay.opaque=y`), parents
//!   are made with plain mkdir and a symlink among them is refused, the archive's
//!   owners, modes and `SCHILY.xattr`s are applied best effort (an unprivileged unpack
//!   keeps the caller's ownership), the root entry's metadata is taken.
//!
//! Directory times are set last, deepest first, after their contents exist.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use berth_sys::libc;

use crate::path::tar_components;
use crate::{set_mtime, OPAQUE_XATTR, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};

/// How to extract.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtractOptions {
    /// An image layer rather than a `docker cp` upload (see the module docs).
    pub layer: bool,
    /// Docker's `NoOverwriteDirNonDir`: a directory never replaces a non-directory or
    /// the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// The owner of everything extracted instead of the archive's (`copyUIDGID`).
    pub owner: Option<(u32, u32)>,
}

/// What an extraction found out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Bytes of regular files (hard links counted once) and symlinks (their targets'
    /// lengths), as Docker's layer size counts them.
    pub size: u64,
}

/// Why an extraction failed. [`ExtractError::is_invalid`]: the archive's fault.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The archive itself could not be read (truncated, cut short, not a tar).
    #[error("reading the archive: {0}")]
    Read(#[source] io::Error),
    /// An entry name (or hard link target) climbs out with `..`.
    #[error("invalid archive entry {path:?}: it leaves the destination")]
    Escape { path: PathBuf },
    /// Another fault of the archive, in Docker's words.
    #[error("{0}")]
    Invalid(String),
    /// Layer: an entry below a symlink.
    #[error("invalid layer: {path:?} would be written through the symlink {through:?}")]
    ThroughSymlink { path: String, through: String },
    /// Layer: a hard link to something not in the layer.
    #[error("invalid layer: hardlink {path:?} points to {target:?} which is not in the layer")]
    BadHardlink { path: String, target: String },
    /// Layer: a whiteout could not be made (needs CAP_MKNOD).
    #[error("failed to create overlay whiteout {path:?}: {source}")]
    Whiteout {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Layer: an opaque directory could not be marked (needs CAP_SYS_ADMIN).
    #[error("failed to set overlay opaque xattr on {path:?}: {source}")]
    Opaque {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The destination refused a write.
    #[error("{op} {}: {}", path.display(), berth_sys::errno_text(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ExtractError {
    /// The archive's fault (a 400), not the destination's (a 500).
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            ExtractError::Read(_)
                | ExtractError::Escape { .. }
                | ExtractError::Invalid(_)
                | ExtractError::ThroughSymlink { .. }
                | ExtractError::BadHardlink { .. }
        )
    }

    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        ExtractError::Io { op, path: path.to_path_buf(), source }
    }
}

/// Extracts the tar `r` into the existing directory `dest` (see the module docs). The
/// reader is left after the archive's end marker, for a caller that hashes or drains
/// the rest.
pub fn extract<R: Read>(r: R, dest: &Path, opts: &ExtractOptions) -> Result<ExtractStats, ExtractError> {
    let mut ar = tar::Archive::new(r);
    let mut size = 0u64;
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in ar.entries().map_err(ExtractError::Read)? {
        let mut e = entry.map_err(ExtractError::Read)?;
        size += extract_entry(&mut e, dest, opts, &mut dir_times)?;
    }
    dir_times.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (p, t) in dir_times {
        set_mtime(&p, t);
    }
    Ok(ExtractStats { size })
}

fn supported(kind: tar::EntryType) -> bool {
    matches!(
        kind,
        tar::EntryType::Directory
            | tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::GNUSparse
            | tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo
    )
}

/// Extracts one entry; returns the regular-file bytes it added.
fn extract_entry<R: Read>(
    e: &mut tar::Entry<'_, R>,
    dest: &Path,
    opts: &ExtractOptions,
    dir_times: &mut Vec<(PathBuf, i64)>,
) -> Result<u64, ExtractError> {
    let layer = opts.layer;
    let raw = e.path().map_err(ExtractError::Read)?.into_owned();
    let raw_s = raw.display().to_string();
    let mut comps = tar_components(&raw).ok_or_else(|| ExtractError::Escape { path: raw.clone() })?;
    if layer {
        comps = comps.into_iter().map(|c| OsString::from(c.to_string_lossy().into_owned())).collect();
    }
    let h = e.header().clone();
    let kind = h.entry_type();
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    let mtime = h.mtime().unwrap_or(0);
    let mtime = if layer { i64::try_from(mtime).unwrap_or(0) } else { mtime as i64 };
    let (uid, gid) = (h.uid().ok().and_then(|u| u32::try_from(u).ok()), h.gid().ok().and_then(|g| u32::try_from(g).ok()));
    let owner = match (opts.owner, uid, gid) {
        (Some(o), _, _) => Some(o),
        (None, Some(u), Some(g)) => Some((u, g)),
        // A layer keeps the unpacker's ownership; a copy gives root what it cannot map.
        (None, u, g) => (!layer).then(|| (u.unwrap_or(0), g.unwrap_or(0))),
    };
    let meta = Meta { strict: !layer, owner };

    let Some((last, parent_comps)) = comps.split_last() else {
        // The root itself ("./"): a layer takes its metadata.
        if layer && kind.is_dir() {
            meta.apply(dest, Some(mode), None, &[])?;
            dir_times.push((dest.to_path_buf(), mtime));
        }
        return Ok(0);
    };
    if !layer && !supported(kind) {
        return Ok(0);
    }
    let parent = if layer {
        layer_parent(dest, parent_comps, &raw_s)?
    } else {
        copy_parent(dest, parent_comps, &raw)?
    };
    if layer {
        let base = last.to_string_lossy();
        if base == WHITEOUT_OPAQUE {
            xattr::set(&parent, OPAQUE_XATTR, b"y").map_err(|source| ExtractError::Opaque { path: raw_s.clone(), source })?;
            return Ok(0);
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(0); // other AUFS metadata (.wh..wh.plnk, …) has no overlay meaning
        }
        if let Some(name) = base.strip_prefix(WHITEOUT_PREFIX) {
            if name.is_empty() || name == "." || name == ".." {
                return Err(ExtractError::Escape { path: raw });
            }
            let target = parent.join(name);
            clear(&target, false, true)?;
            berth_sys::mount::mknod(&target, libc::S_IFCHR, 0, 0)
                .map_err(|source| ExtractError::Whiteout { path: raw_s.clone(), source })?;
            meta.apply(&target, None, None, &[])?;
            return Ok(0);
        }
        if !supported(kind) {
            tracing::debug!(path = %raw_s, kind = ?kind, "skipping unsupported tar entry");
            return Ok(0);
        }
    }

    let target = parent.join(last);
    let is_dir = kind == tar::EntryType::Directory;
    if !layer && opts.no_overwrite_dir_non_dir {
        if let Ok(fi) = fs::symlink_metadata(&target) {
            let (what, with) = match (fi.is_dir(), is_dir) {
                (true, false) => ("directory", "non-directory"),
                (false, true) => ("non-directory", "directory"),
                _ => ("", ""),
            };
            if !what.is_empty() {
                return Err(ExtractError::Invalid(format!(
                    "cannot overwrite {what} {:?} with {with} {:?}",
                    target.display().to_string(),
                    raw.display().to_string()
                )));
            }
        }
    }
    // A layer's hard link clears its place once its source is known good.
    if !(layer && kind == tar::EntryType::Link) {
        clear(&target, is_dir, layer)?;
    }
    let xattrs = if layer { pax_xattrs(e) } else { Vec::new() };
    let werr = |op: &'static str| {
        let path = target.clone();
        move |source: io::Error| ExtractError::Io { op, path, source }
    };
    match kind {
        tar::EntryType::Directory => {
            if fs::symlink_metadata(&target).is_err() {
                fs::DirBuilder::new().mode(0o755).create(&target).map_err(werr("mkdir"))?;
            }
            meta.apply(&target, Some(mode), None, &xattrs)?;
            dir_times.push((target, mtime));
            Ok(0)
        }
        tar::EntryType::Symlink => {
            let link = link_name(e, "symlink", &raw, layer)?;
            if !layer && symlink_escapes(parent_comps, &link) {
                return Err(ExtractError::Invalid(format!(
                    "invalid symlink {:?} -> {:?}",
                    raw.display().to_string(),
                    link.display().to_string()
                )));
            }
            // The target is stored as is (absolute or relative) and never followed here.
            std::os::unix::fs::symlink(&link, &target).map_err(werr("symlink"))?;
            meta.apply(&target, None, Some(mtime), &xattrs)?;
            // Docker's layer size counts a symlink as its lstat size: the target's length.
            Ok(link.as_os_str().len() as u64)
        }
        tar::EntryType::Link => {
            let link = link_name(e, "hardlink", &raw, layer)?;
            let src = if layer { layer_link_source(dest, &link, &raw_s)? } else { copy_link_source(dest, &link, &raw)? };
            if layer {
                if src == target {
                    return Ok(0);
                }
                clear(&target, false, true)?;
                fs::hard_link(&src, &target).map_err(werr("link"))?;
            } else {
                // A target missing from the archive and the destination is the
                // archive's fault: 400, not 500.
                fs::hard_link(&src, &target).map_err(|err| {
                    ExtractError::Invalid(format!(
                        "invalid hardlink {:?} -> {:?}: {}",
                        raw.display().to_string(),
                        link.display().to_string(),
                        berth_sys::errno_text(&err)
                    ))
                })?;
            }
            Ok(0) // shares the source's inode and metadata
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let (sflag, major, minor) = match kind {
                tar::EntryType::Fifo => (libc::S_IFIFO, 0, 0),
                _ => (
                    if kind == tar::EntryType::Char { libc::S_IFCHR } else { libc::S_IFBLK },
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                ),
            };
            berth_sys::mount::mknod(&target, sflag | mode, major, minor).map_err(werr("mknod"))?;
            meta.apply(&target, Some(mode), Some(mtime), &xattrs)?;
            Ok(0)
        }
        _ => {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&target)
                .map_err(werr("create"))?;
            let added = io::copy(e, &mut f).map_err(|err| {
                if !layer && err.kind() == io::ErrorKind::UnexpectedEof {
                    ExtractError::Read(err)
                } else {
                    ExtractError::io("write", &target, err)
                }
            })?;
            if meta.strict {
                // On the open file; the mode after chown, which clears set-id bits.
                if let Some((u, g)) = owner {
                    std::os::unix::fs::fchown(&f, Some(u), Some(g)).map_err(werr("chown"))?;
                }
                f.set_permissions(fs::Permissions::from_mode(mode)).map_err(werr("chmod"))?;
                drop(f);
                set_mtime(&target, mtime);
            } else {
                drop(f);
                meta.apply(&target, Some(mode), Some(mtime), &xattrs)?;
            }
            Ok(added)
        }
    }
}

/// Owner, xattrs, mode (after chown, which clears set-id bits) and mtime of an
/// extracted file. `strict`: a failed chown or chmod fails the extraction; otherwise
/// they are best effort (logged).
struct Meta {
    strict: bool,
    owner: Option<(u32, u32)>,
}

impl Meta {
    fn apply(&self, p: &Path, mode: Option<u32>, mtime: Option<i64>, xattrs: &[(String, Vec<u8>)]) -> Result<(), ExtractError> {
        let check = |op: &'static str, r: io::Result<()>| match r {
            Err(e) if self.strict => Err(ExtractError::io(op, p, e)),
            Err(e) => {
                tracing::debug!(path = %p.display(), error = %e, "{op} failed");
                Ok(())
            }
            Ok(()) => Ok(()),
        };
        if let Some((u, g)) = self.owner {
            check("chown", std::os::unix::fs::lchown(p, Some(u), Some(g)))?;
        }
        for (k, v) in xattrs {
            if let Err(e) = xattr::set(p, k, v) {
                tracing::debug!(path = %p.display(), xattr = %k, error = %e, "setting xattr failed");
            }
        }
        if let Some(m) = mode {
            check("chmod", fs::set_permissions(p, fs::Permissions::from_mode(m)))?;
        }
        if let Some(t) = mtime {
            set_mtime(p, t);
        }
        Ok(())
    }
}

/// A symlink's or hard link's target.
fn link_name<R: Read>(e: &tar::Entry<'_, R>, what: &str, raw: &Path, layer: bool) -> Result<PathBuf, ExtractError> {
    match e.link_name() {
        Ok(Some(l)) => Ok(l.into_owned()),
        Err(err) if layer => Err(ExtractError::Read(err)),
        _ if layer => Err(ExtractError::Read(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {} without target", raw.display()),
        ))),
        _ => Err(ExtractError::Invalid(format!("{what} {} without a target", raw.display()))),
    }
}

/// Removes whatever is at `p` (not following symlinks), unless `keep_dir` and it is a
/// directory. `strict`: a failing lstat is an error rather than "nothing there".
fn clear(p: &Path, keep_dir: bool, strict: bool) -> Result<(), ExtractError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_dir() => {
            if !keep_dir {
                fs::remove_dir_all(p).map_err(|e| ExtractError::io("remove", p, e))?;
            }
        }
        Ok(_) => fs::remove_file(p).map_err(|e| ExtractError::io("remove", p, e))?,
        Err(e) if strict && e.kind() != io::ErrorKind::NotFound => return Err(ExtractError::io("stat", p, e)),
        Err(_) => {}
    }
    Ok(())
}

/// Copy: where an entry's parent directory is: its components resolved under `dest`
/// with every symlink (one an earlier entry made, or one already there) kept inside
/// `dest` (an absolute target starts again at `dest`, `..` stops there), so no entry
/// is written outside it. Missing directories are created.
fn copy_parent(dest: &Path, comps: &[OsString], raw: &Path) -> Result<PathBuf, ExtractError> {
    let rel: PathBuf = comps.iter().collect();
    let parent = berth_sys::fs::secure_join(dest, &rel.to_string_lossy())
        .map_err(|e| ExtractError::Invalid(format!("invalid archive entry {raw:?}: {}", berth_sys::errno_text(&e))))?;
    match fs::symlink_metadata(&parent) {
        Ok(m) if m.is_dir() => Ok(parent),
        Ok(_) => Err(ExtractError::Invalid(format!(
            "invalid archive entry {raw:?}: {} is not a directory",
            parent.display()
        ))),
        Err(_) => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&parent)
                .map_err(|e| match e.raw_os_error() {
                    // A file of the archive (or of the destination) in the way.
                    Some(libc::ENOTDIR) | Some(libc::EEXIST) => ExtractError::Invalid(format!(
                        "invalid archive entry {raw:?}: mkdir {}: {}",
                        parent.display(),
                        berth_sys::errno_text(&e)
                    )),
                    _ => ExtractError::io("mkdir", &parent, e),
                })?;
            Ok(parent)
        }
    }
}

/// Layer: creates the directories `comps` below `root` with plain mkdir. An existing
/// component that is a symlink (or not a directory) is an error: nothing is ever
/// written through a symlink.
fn layer_parent(root: &Path, comps: &[OsString], entry_path: &str) -> Result<PathBuf, ExtractError> {
    let mut cur = root.to_path_buf();
    for c in comps {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ExtractError::ThroughSymlink {
                    path: entry_path.to_string(),
                    through: cur.strip_prefix(root).unwrap_or(&cur).display().to_string(),
                })
            }
            Ok(_) => {
                return Err(ExtractError::io(
                    "mkdir",
                    &cur,
                    io::Error::other("a parent of a layer entry is not a directory"),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o755).create(&cur).map_err(|e| ExtractError::io("mkdir", &cur, e))?;
            }
            Err(e) => return Err(ExtractError::io("stat", &cur, e)),
        }
    }
    Ok(cur)
}

/// Copy: a hard link's source, resolved like a parent; like link(2), its last
/// component is not followed.
fn copy_link_source(dest: &Path, link: &Path, raw: &Path) -> Result<PathBuf, ExtractError> {
    let comps = tar_components(link).ok_or_else(|| ExtractError::Escape { path: link.to_path_buf() })?;
    let Some((last, parent)) = comps.split_last() else {
        return Err(ExtractError::Invalid(format!(
            "invalid hardlink {:?} -> {:?}",
            raw.display().to_string(),
            link.display().to_string()
        )));
    };
    let rel: PathBuf = parent.iter().collect();
    berth_sys::fs::secure_join(dest, &rel.to_string_lossy())
        .map(|p| p.join(last))
        .map_err(|err| {
            ExtractError::Invalid(format!(
                "invalid hardlink {:?} -> {:?}: {}",
                raw.display().to_string(),
                link.display().to_string(),
                berth_sys::errno_text(&err)
            ))
        })
}

/// Layer: a hard link's source must be inside the layer, reached without symlinks,
/// and not a directory.
fn layer_link_source(root: &Path, link: &Path, raw_s: &str) -> Result<PathBuf, ExtractError> {
    let bad = || ExtractError::BadHardlink { path: raw_s.to_string(), target: link.display().to_string() };
    let comps = tar_components(link).ok_or_else(bad)?;
    let Some((last, parents)) = comps.split_last() else { return Err(bad()) };
    let mut src = root.to_path_buf();
    for c in parents {
        src.push(c.to_string_lossy().as_ref());
        match fs::symlink_metadata(&src) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return Err(bad()),
        }
    }
    src.push(last.to_string_lossy().as_ref());
    match fs::symlink_metadata(&src) {
        Ok(m) if !m.file_type().is_dir() => Ok(src),
        _ => Err(bad()),
    }
}

/// Docker's symlink breakout check: a relative target that climbs out of `dest` from
/// the link's directory (`rel_dir`, relative to `dest`) is refused.
fn symlink_escapes(rel_dir: &[OsString], target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = rel_dir.len();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if depth == 0 {
                    return true;
                }
                depth -= 1;
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// `SCHILY.xattr.<name>` PAX records.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::is_root;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    // ----- layers -----

    fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_cksum();
        h
    }

    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
    }

    fn build(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            match e {
                E::Dir(p) => b.append(&header(p, tar::EntryType::Directory, 0, 0o755), io::empty()).unwrap(),
                E::File(p, data) => {
                    b.append(&header(p, tar::EntryType::Regular, data.len() as u64, 0o640), *data).unwrap()
                }
                E::Sym(p, t) | E::Hard(p, t) => {
                    let kind = if matches!(e, E::Sym(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                    let mut h = header("x", kind, 0, 0o777);
                    // set_path rejects "..", which these tests need: write the raw name.
                    let name = &mut h.as_old_mut().name;
                    name.fill(0);
                    name[..p.len()].copy_from_slice(p.as_bytes());
                    h.set_link_name(t).unwrap();
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn raw_file(path: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header("x", tar::EntryType::Regular, data.len() as u64, 0o644);
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, data).unwrap();
        b.into_inner().unwrap()
    }


    /// A layer unpacked into `dest` (created).
    fn unpack(tar: &[u8], dest: &Path) -> Result<ExtractStats, ExtractError> {
        fs::create_dir_all(dest).unwrap();
        extract(tar, dest, &ExtractOptions { layer: true, ..Default::default() })
    }

    #[test]
    fn whiteout_becomes_char_device() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("diff");
        let tar = build(&[E::Dir("etc/"), E::File("etc/.wh.passwd", b"")]);
        match unpack(&tar[..], &dest) {
            Ok(_) => {
                let md = fs::symlink_metadata(dest.join("etc/passwd")).unwrap();
                assert!(md.file_type().is_char_device());
                assert_eq!(md.rdev(), 0);
                assert!(!dest.join("etc/.wh.passwd").exists());
            }
            Err(e) => {
                assert!(!is_root(), "whiteout failed as root: {e}");
                assert!(matches!(e, ExtractError::Whiteout { .. }), "{e}");
            }
        }
    }

    #[test]
    fn opaque_dir_gets_xattr() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("diff");
        let tar = build(&[E::Dir("var/"), E::File("var/.wh..wh..opq", b""), E::File("var/x", b"1")]);
        match unpack(&tar[..], &dest) {
            Ok(_) => {
                let v = xattr::get(dest.join("var"), OPAQUE_XATTR).unwrap();
                assert_eq!(v.as_deref(), Some(&b"y"[..]));
                assert!(!dest.join("var/.wh..wh..opq").exists());
                assert!(dest.join("var/x").exists());
            }
            Err(e) => {
                // tmpfs without user xattrs, or no CAP_SYS_ADMIN: must say so.
                assert!(e.to_string().contains("opaque"), "{e}");
                eprintln!("skipping opaque check: {e}");
            }
        }
    }

    #[test]
    fn dotdot_escape_rejected() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("diff");
        let err = unpack(&raw_file("../escape", b"x")[..], &dest).unwrap_err();
        assert!(matches!(err, ExtractError::Escape { .. }), "{err}");
        assert!(!t.path().join("escape").exists());
        let err = unpack(&raw_file("a/../../escape2", b"x")[..], &dest).unwrap_err();
        assert!(matches!(err, ExtractError::Escape { .. }), "{err}");
        assert!(!t.path().join("escape2").exists());
    }

    #[test]
    fn write_through_symlink_rejected() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let dest = t.path().join("diff");
        let tar = build(&[E::Sym("link", outside.to_str().unwrap()), E::File("link/pwned", b"x")]);
        let err = unpack(&tar[..], &dest).unwrap_err();
        assert!(matches!(err, ExtractError::ThroughSymlink { .. }), "{err}");
        assert!(!outside.join("pwned").exists());
        // Relative symlink that climbs out, then a file through it.
        let tar = build(&[E::Sym("up", "../.."), E::File("up/pwned2", b"x")]);
        assert!(unpack(&tar[..], &t.path().join("diff2")).is_err());
        assert!(!t.path().join("pwned2").exists());
    }

    #[test]
    fn symlink_replaced_by_file_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("victim");
        fs::write(&outside, b"orig").unwrap();
        let dest = t.path().join("diff");
        let tar = build(&[E::Sym("f", outside.to_str().unwrap()), E::File("f", b"new")]);
        unpack(&tar[..], &dest).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"orig");
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"new");
    }

    #[test]
    fn hardlinks() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("diff");
        let tar = build(&[E::File("bin/busybox", b"elf"), E::Hard("bin/sh", "bin/busybox")]);
        let stats = unpack(&tar[..], &dest).unwrap();
        assert_eq!(stats.size, 3);
        let a = fs::metadata(dest.join("bin/busybox")).unwrap();
        let b = fs::metadata(dest.join("bin/sh")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.nlink(), 2);
        // Hardlinks outside the layer or to missing files are rejected.
        let outside = t.path().join("secret");
        fs::write(&outside, b"s").unwrap();
        for target in ["../secret", "missing"] {
            let tar = build(&[E::Hard("x", target)]);
            let err = unpack(&tar[..], &t.path().join("d2")).unwrap_err();
            assert!(matches!(err, ExtractError::BadHardlink { .. }), "{target}: {err}");
        }
        let abs = build(&[E::Hard("x", outside.to_str().unwrap())]);
        // An absolute link name is relative to the layer root, where it does not exist.
        assert!(unpack(&abs[..], &t.path().join("d3")).is_err());
        // A hardlink through a symlinked directory is rejected.
        let tar = build(&[E::Sym("d", t.path().to_str().unwrap()), E::Hard("x", "d/secret")]);
        assert!(matches!(unpack(&tar[..], &t.path().join("d4")), Err(ExtractError::BadHardlink { .. })));
    }

    #[test]
    fn device_nodes_when_root() {
        if !is_root() {
            eprintln!("skipping: mknod needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let mut h = header("dev/null", tar::EntryType::Char, 0, 0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, io::empty()).unwrap();
        let tar = b.into_inner().unwrap();
        unpack(&tar[..], &t.path().join("diff")).unwrap();
        let md = fs::symlink_metadata(t.path().join("diff/dev/null")).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), nix::sys::stat::makedev(1, 3));
    }

    // ----- extraction (PUT archive) -----

    /// Appends an entry with `name` and `link` byte for byte (the tar crate's
    /// builder refuses `..` and absolute names, which is what these tests send).
    fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        for (kind, value) in [(tar::EntryType::GNULongLink, link), (tar::EntryType::GNULongName, name)] {
            if value.len() > 100 {
                let (long, payload) = crate::write::gnu_long(kind, value.as_bytes());
                out.extend_from_slice(long.as_bytes());
                out.extend_from_slice(&payload);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let n = link.len().min(100);
        h.as_old_mut().linkname[..n].copy_from_slice(&link.as_bytes()[..n]);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn finish_tar(mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(&[0; 1024]);
        out
    }

    /// Every file under `root` (not following symlinks) except below `skip`, with
    /// what would show a change: kind, size, link count, content of small files.
    fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, (u32, u64, u64, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(p) = todo.pop() {
            if p == skip {
                continue;
            }
            let md = fs::symlink_metadata(&p).unwrap();
            let data = if md.is_file() { fs::read(&p).unwrap() } else { Vec::new() };
            out.insert(p.clone(), (md.mode(), md.len(), md.nlink(), data));
            if md.is_dir() {
                todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        out
    }

    /// A temp tree `T/outside/sentinel` + `T/a/b/dest`: `..` three times from dest
    /// reaches T, so any escape shows in T's snapshot.
    struct Arena {
        t: tempfile::TempDir,
    }

    impl Arena {
        fn new() -> Arena {
            let t = tempfile::tempdir().unwrap();
            fs::create_dir_all(t.path().join("outside")).unwrap();
            fs::write(t.path().join("outside/sentinel"), "PRECIOUS").unwrap();
            fs::create_dir_all(t.path().join("a/b/dest")).unwrap();
            Arena { t }
        }
        fn dest(&self) -> PathBuf {
            self.t.path().join("a/b/dest")
        }
        fn out(&self) -> String {
            self.t.path().join("outside").to_string_lossy().into_owned()
        }
        fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u64, u64, Vec<u8>)> {
            snapshot(self.t.path(), &self.dest())
        }
    }

    #[test]
    fn extraction_stays_in_its_directory() {
        use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as L};
        let owner = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        // (entries, Ok(paths that must exist under dest) | Err(text in the 400 message))
        type Case = (Vec<(&'static str, tar::EntryType, &'static str)>, std::result::Result<Vec<&'static str>, &'static str>);
        let cases: Vec<Case> = vec![
            (vec![("x/", D, ""), ("x/f", F, "")], Ok(vec!["x/f"])),
            (vec![("/abs/f", F, "")], Ok(vec!["abs/f"])),
            (vec![("../f", F, "")], Err("leaves the destination")),
            (vec![("x/../../f", F, "")], Err("leaves the destination")),
            // The hard link that answered 500.
            (vec![("h", H, "missing")], Err("invalid hardlink \"h\" -> \"missing\": no such file or directory")),
            (vec![("h", H, "../outside/sentinel")], Err("leaves the destination")),
            (vec![("h", H, "@OUT@/sentinel")], Err("invalid hardlink")),
            (vec![("l", L, "../../x")], Err("invalid symlink \"l\" -> \"../../x\"")),
            // Through a symlink that points out: the write lands inside dest.
            (vec![("l", L, "@OUT@"), ("l/sentinel", F, "")], Ok(vec!["@OUT@/sentinel"])),
            (vec![("l", L, "/"), ("l/etc/passwd", F, "")], Ok(vec!["etc/passwd"])),
            (vec![("d/", D, ""), ("d/up", L, ".."), ("d/up/up2", L, ".."), ("d/up/up2/f", F, "")], Ok(vec!["f"])),
            // A hard link to a symlink links the symlink, not what it points at.
            (vec![("l", L, "@OUT@/sentinel"), ("h", H, "l")], Ok(vec!["h"])),
            (vec![("f", F, ""), ("f/x", F, "")], Err("is not a directory")),
        ];
        for (entries, want) in cases {
            let a = Arena::new();
            let before = a.snapshot();
            let mut tar = Vec::new();
            for (name, kind, link) in &entries {
                let fix = |s: &str| s.replace("@OUT@", &a.out());
                raw_entry(&mut tar, &fix(name), *kind, &fix(link), b"");
            }
            let r = extract(&finish_tar(tar)[..], &a.dest(), &ExtractOptions { owner: Some(owner), ..Default::default() });
            match want {
                Ok(paths) => {
                    r.unwrap_or_else(|e| panic!("{entries:?}: {e}"));
                    for p in paths {
                        let p = p.replace("@OUT@", &a.out()[1..]);
                        assert!(fs::symlink_metadata(a.dest().join(&p)).is_ok(), "{entries:?}: {p}");
                    }
                }
                Err(text) => {
                    let e = r.expect_err(&format!("{entries:?}"));
                    assert!(e.is_invalid(), "{entries:?}: {e}");
                    assert!(e.to_string().contains(text), "{entries:?}: {e}");
                }
            }
            assert_eq!(a.snapshot(), before, "{entries:?} changed something outside");
        }
    }

    #[test]
    fn bad_archives_are_400() {
        let a = Arena::new();
        let mut truncated = Vec::new();
        raw_entry(&mut truncated, "f", tar::EntryType::Regular, "", b"");
        // Announce 4096 bytes, send 10.
        let mut h = tar::Header::new_gnu();
        h.set_path("big").unwrap();
        h.set_size(4096);
        h.set_cksum();
        truncated.extend_from_slice(h.as_bytes());
        truncated.extend_from_slice(b"0123456789");
        let garbage = vec![0x5au8; 2048];
        for (what, bytes) in [("truncated", truncated), ("garbage", garbage)] {
            let e = extract(&bytes[..], &a.dest(), &ExtractOptions::default()).expect_err(what);
            assert!(e.is_invalid(), "{what}: {e}");
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const SEGS: &[&str] = &["a", "b", "l", "..", ".", "", "etc", "passwd", "@OUT@", "sentinel", "LONG", ".wh.a", ".wh..wh..opq", ".wh.."];
        const LINKS: &[&str] = &["/", "..", "../..", "../../..", "@OUT@", "@OUT@/sentinel", "a", "l", "a/l", "../outside/sentinel", "/etc", "LONG", ""];
        const KINDS: &[tar::EntryType] = &[
            tar::EntryType::Regular,
            tar::EntryType::Directory,
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Char,
            tar::EntryType::Fifo,
        ];

        fn entry() -> impl Strategy<Value = (bool, Vec<usize>, usize, usize, usize)> {
            (
                any::<bool>(),
                proptest::collection::vec(0..SEGS.len(), 1..5),
                0..KINDS.len(),
                0..LINKS.len(),
                0usize..3,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Whatever the archive holds (`..`, absolute names, links out and files
            /// written through them, hard links out, devices, long names, whiteouts),
            /// nothing outside the destination changes, and nothing panics, in either
            /// mode.
            #[test]
            fn extractor_never_writes_outside(entries in proptest::collection::vec(entry(), 1..12)) {
                let a = Arena::new();
                let before = a.snapshot();
                let long = "n".repeat(140);
                let fix = |s: &str| s.replace("@OUT@", &a.out()).replace("LONG", &long);
                let mut tar = Vec::new();
                for (abs, segs, kind, link, size) in &entries {
                    let name: Vec<&str> = segs.iter().map(|i| SEGS[*i]).collect();
                    let name = format!("{}{}", if *abs { "/" } else { "" }, name.join("/"));
                    let data = vec![b'z'; *size * 300];
                    let kind = KINDS[*kind];
                    let data: &[u8] = if kind == tar::EntryType::Regular { &data } else { b"" };
                    raw_entry(&mut tar, &fix(&name), kind, &fix(LINKS[*link]), data);
                }
                let tar = finish_tar(tar);
                let opts = ExtractOptions { no_overwrite_dir_non_dir: entries.len() % 2 == 0, ..Default::default() };
                let _ = extract(&tar[..], &a.dest(), &opts);
                prop_assert_eq!(a.snapshot(), before);
                // The same archive as an image layer (whiteouts applied).
                let a = Arena::new();
                let before = a.snapshot();
                let _ = extract(&tar[..], &a.dest(), &ExtractOptions { layer: true, ..Default::default() });
                prop_assert_eq!(a.snapshot(), before);
            }
        }
    }
}
