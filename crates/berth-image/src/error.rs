//! Error types of berth-image, one per module, each able to say its [`ErrorKind`].
//!
//! Messages are lowercase and worded like Docker's where Docker has a wording, because
//! the API edge passes them to the client verbatim.

use std::path::PathBuf;

/// What kind of failure an error is; the API edge maps this to an HTTP status once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 404: no such image, manifest, blob or repository.
    NotFound,
    /// 400: a malformed reference or an unsupported input.
    InvalidArgument,
    /// 409: the operation conflicts with the current state (image in use, …).
    Conflict,
    /// 500/503: a registry could not be reached or answered unexpectedly.
    Unavailable,
    /// 500: I/O failure or a broken store.
    Internal,
    /// 401: a registry refused the credentials (`docker login`).
    Unauthorized,
}

/// A reference string that does not follow Docker's grammar; the type and its texts
/// live with the grammar in `berth_api::reference`.
pub use berth_api::reference::ReferenceError;

/// The kind of a [`ReferenceError`]: always 400, a malformed reference or tag. A trait
/// because the error type is berth-api's.
pub trait ReferenceErrorKind {
    fn kind(&self) -> ErrorKind;
}

impl ReferenceErrorKind for ReferenceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// Failures of the on-disk image store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `No such image: alpine:latest`
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt store file {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// A layer given by the client (`docker import`) that cannot be unpacked; its kind
    /// is the unpacking error's (400 for a broken archive, 500 for a failed write).
    #[error(transparent)]
    Layer(#[from] UnpackError),
    #[error("{0}")]
    Internal(String),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NoSuchImage(_) => ErrorKind::NotFound,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Reference(e) => e.kind(),
            StoreError::Layer(e) => e.kind(),
            StoreError::Io { .. } | StoreError::Corrupt { .. } | StoreError::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io { op, path: path.into(), source }
    }
}

/// Failures while unpacking a layer tar into an overlayfs lower directory.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("invalid layer: path {path:?} escapes the layer directory")]
    Escape { path: String },
    #[error("invalid layer: {path:?} would be written through the symlink {through:?}")]
    ThroughSymlink { path: String, through: String },
    #[error("invalid layer: hardlink {path:?} points to {target:?} which is not in the layer")]
    BadHardlink { path: String, target: String },
    #[error(
        "failed to create overlay whiteout {path:?}: {source} (whiteouts are character devices 0/0 and need CAP_MKNOD, i.e. root)"
    )]
    Whiteout {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to set overlay opaque xattr on {path:?}: {source} (trusted.* xattrs need CAP_SYS_ADMIN, i.e. root)")]
    Opaque {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported layer compression: {0}")]
    Compression(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading layer tar: {0}")]
    Tar(#[source] std::io::Error),
    /// A client's archive (`docker import`) that is not a readable (compressed) tar,
    /// in Go's words: `unexpected EOF`, `archive/tar: invalid tar header`.
    #[error("{0}")]
    Archive(String),
}

impl UnpackError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Escape { .. }
            | UnpackError::ThroughSymlink { .. }
            | UnpackError::BadHardlink { .. }
            | UnpackError::Compression(_)
            | UnpackError::Tar(_)
            | UnpackError::Archive(_) => ErrorKind::InvalidArgument,
            UnpackError::Whiteout { .. } | UnpackError::Opaque { .. } | UnpackError::Io { .. } => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        UnpackError::Io { op, path: path.into(), source }
    }
}

/// Failures of `pull`.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// `manifest for localhost:5000/nosuch:latest not found: manifest unknown: manifest unknown`
    #[error("manifest for {reference} not found: {detail}")]
    ManifestNotFound { reference: String, detail: String },
    /// `pull access denied for x, repository does not exist or may require 'docker login': …`
    #[error("pull access denied for {name}, repository does not exist or may require 'docker login'{}", detail_suffix(.detail))]
    AccessDenied { name: String, detail: String },
    /// `no matching manifest for linux/amd64 in the manifest list entries`
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { platform: String },
    /// A single-platform image that is not the `--platform` asked for.
    #[error("image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    PlatformMismatch { reference: String, wanted: String, actual: String },
    /// The registry could not be reached: `Get "https://…/v2/": <cause>`
    #[error("{0}")]
    Unreachable(String),
    /// The registry answered something unexpected.
    #[error("{0}")]
    Registry(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Docker's words (distribution/pull_v2.go): `filesystem layer verification failed
    /// for digest sha256:…`, `image config verification failed …`, `manifest
    /// verification failed …`. `what` is the part before "verification"; the digest
    /// actually received is kept for the daemon log only.
    #[error("{what} verification failed for digest {expected}")]
    DigestMismatch { what: String, expected: String, actual: String },
    /// Docker's errRootFSMismatch: the uncompressed layers do not hash to the config's
    /// diff ids.
    #[error("layers from manifest don't match image configuration")]
    RootFsMismatch { expected: String, actual: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{0}")]
    Internal(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl PullError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PullError::ManifestNotFound { .. }
            | PullError::AccessDenied { .. }
            | PullError::NoMatchingPlatform { .. }
            | PullError::PlatformMismatch { .. } => ErrorKind::NotFound,
            PullError::Unreachable(_) | PullError::Registry(_) | PullError::Unauthorized(_) => {
                ErrorKind::Unavailable
            }
            PullError::Unsupported(_) => ErrorKind::InvalidArgument,
            PullError::DigestMismatch { .. } | PullError::RootFsMismatch { .. } => ErrorKind::Unavailable,
            PullError::Store(e) => e.kind(),
            PullError::Unpack(e) => e.kind(),
            PullError::Reference(e) => e.kind(),
            PullError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<berth_archive::ExtractError> for UnpackError {
    fn from(e: berth_archive::ExtractError) -> Self {
        use berth_archive::ExtractError as X;
        match e {
            X::Read(e) => UnpackError::Tar(e),
            X::Escape { path } => UnpackError::Escape { path: path.display().to_string() },
            X::Invalid(m) => UnpackError::Tar(std::io::Error::new(std::io::ErrorKind::InvalidData, m)),
            X::ThroughSymlink { path, through } => UnpackError::ThroughSymlink { path, through },
            X::BadHardlink { path, target } => UnpackError::BadHardlink { path, target },
            X::Whiteout { path, source } => UnpackError::Whiteout { path, source },
            X::Opaque { path, source } => UnpackError::Opaque { path, source },
            X::Io { op, path, source } => UnpackError::Io { op, path, source },
        }
    }
}
