//! berth-archive: Berth's one tar writer, one tar extractor and one diff walker, and
//! the small file-format facts around them (overlay and AUFS/OCI whiteouts, Go's
//! `os.FileMode` bits and time format, lexical path cleaning). `docker cp` (both
//! ways), `export`, `commit`, `diff` and layer unpacking (pull, load, import) all use
//! them; the callers decide *where* (jails, chroots, the image store's directories) and
//! *when* (threads, async pipes), this crate only reads and writes file trees.
//!
//! It must not use: tokio or any async runtime, the engine's, image store's or API's
//! types (it knows nothing of containers, images or HTTP), or raw syscalls (`unsafe`
//! is forbidden here; what std lacks goes through `berth-sys`).

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

pub mod decompress;
pub mod diff;
pub mod extract;
pub mod mode;
pub mod path;
pub mod write;

pub use diff::{compute_changes, Change, CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY};
pub use extract::{extract, ExtractError, ExtractOptions, ExtractStats};
pub use mode::{go_file_mode, go_time};
pub use write::TarOut;

/// The xattr overlayfs marks an opaque directory with (`y`).
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// AUFS/OCI whiteout: `.wh.<name>` deletes `<name>` of the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// AUFS metadata entries (`.wh..wh.plnk`, …), of which only the opaque marker counts.
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// AUFS/OCI opaque marker: the directory holding it hides the layers below.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// An overlayfs whiteout: a character device 0/0.
pub fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Whether overlayfs treats the directory `p` as opaque.
pub fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// An empty file or directory: what the shim leaves in the upper dir where it mounts
/// something (/etc/hosts, bind destinations) that the image lacks. Docker keeps those
/// in a separate init layer, so they are neither changes nor part of a commit.
pub fn is_stub(p: &Path, md: &fs::Metadata) -> bool {
    (md.is_file() && md.len() == 0)
        || (md.is_dir()
            && fs::read_dir(p)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false))
}

/// Sets a file's modification (and access) time, not following a symlink; best
/// effort (a file system may refuse).
pub fn set_mtime(p: &Path, secs: i64) {
    if let Err(e) = berth_sys::fs::set_mtime_nofollow(p, secs) {
        tracing::debug!(path = %p.display(), error = %e, "utimensat failed");
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::Path;

    pub fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Makes an overlay whiteout at `p` (needs CAP_MKNOD).
    pub fn whiteout(p: &Path) -> bool {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        mknod(p, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).is_ok()
    }
}
