//! The engine's error: a kind (mapped to an HTTP status once, at the API edge),
//! Docker's message text, and the error of the crate below that caused it (kept as
//! `source()`, so the chain and a start failure's exit code survive).

use std::fmt;
use std::sync::Arc;

use berth_image::ReferenceErrorKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    /// The request asked for a state the object is already in (HTTP 304).
    NotModified,
    Unavailable,
    /// The object cannot do that (Docker's `errdefs.NotImplemented`, HTTP 501).
    NotImplemented,
    /// Not allowed on this object, ever (Docker's `errdefs.Forbidden`, HTTP 403:
    /// removing a predefined network).
    Forbidden,
    /// A registry refused the credentials (Docker's `errdefs.Unauthorized`, HTTP 401).
    Unauthorized,
    Internal,
}

/// The cause of an [`Error`]: the image or runtime crate's error it came from.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Clone, Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// The lower crate's error this one was made from (its text is `message`).
    pub source: Option<Source>,
}

/// Errors compare by kind and message (what the API shows), not by cause.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None }
    }
    /// An error of a lower crate: its kind, its text as the message, itself as source.
    pub fn caused_by<E: std::error::Error + Send + Sync + 'static>(kind: ErrorKind, e: E) -> Error {
        Error { kind, message: e.to_string(), source: Some(Arc::new(e)) }
    }
    /// For a failed start, the exit code Docker records (127 command not found, 126
    /// not executable), from the runtime's typed start error in the chain.
    pub fn start_exit_code(&self) -> Option<i32> {
        let src = self.source.as_deref()?;
        src.downcast_ref::<berth_runtime::RuntimeError>()?.start_exit_code()
    }
    pub fn not_found(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, m)
    }
    pub fn invalid(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, m)
    }
    pub fn conflict(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::Forbidden, m)
    }
    pub fn internal(m: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, m)
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// An I/O error with the path it happened on.
    pub fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> Error {
        Error::internal(format!("{what} {}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

macro_rules! from_image_errors {
    ($($t:ty),*) => {$(
        /// Keeps the image crate's kind, text and the error itself as the source.
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::caused_by(e.kind().into(), e)
            }
        }
    )*};
}
from_image_errors!(berth_image::StoreError, berth_image::ReferenceError, berth_image::PullError, berth_image::UnpackError);

/// Keeps the runtime's kind, text and the error itself as the source.
impl From<berth_runtime::RuntimeError> for Error {
    fn from(e: berth_runtime::RuntimeError) -> Error {
        Error::caused_by(e.kind().into(), e)
    }
}

impl From<berth_image::ErrorKind> for ErrorKind {
    fn from(k: berth_image::ErrorKind) -> ErrorKind {
        match k {
            berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
            berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
            berth_image::ErrorKind::Unavailable => ErrorKind::Unavailable,
            berth_image::ErrorKind::Internal => ErrorKind::Internal,
            berth_image::ErrorKind::Unauthorized => ErrorKind::Unauthorized,
        }
    }
}

impl From<berth_runtime::ErrorKind> for ErrorKind {
    fn from(k: berth_runtime::ErrorKind) -> ErrorKind {
        match k {
            berth_runtime::ErrorKind::NotFound => ErrorKind::NotFound,
            berth_runtime::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            berth_runtime::ErrorKind::Conflict => ErrorKind::Conflict,
            berth_runtime::ErrorKind::Unavailable => ErrorKind::Unavailable,
            berth_runtime::ErrorKind::Internal => ErrorKind::Internal,
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn lower_errors_keep_kind_text_and_source() {
        let io = || std::io::Error::from_raw_os_error(2);
        // (converted error, kind, message, source's message)
        let cases: Vec<(Error, ErrorKind, &str)> = vec![
            (berth_image::StoreError::NoSuchImage("alpine:latest".into()).into(), ErrorKind::NotFound, "No such image: alpine:latest"),
            (berth_image::ReferenceError::InvalidFormat.into(), ErrorKind::InvalidArgument, "invalid reference format"),
            (berth_image::StoreError::Conflict("in use".into()).into(), ErrorKind::Conflict, "in use"),
            (berth_runtime::RuntimeError::NotRunning.into(), ErrorKind::Conflict, "container is not running"),
            (
                berth_runtime::RuntimeError::Protocol("bad frame".into()).into(),
                ErrorKind::Internal,
                "shim protocol error: bad frame",
            ),
        ];
        for (e, kind, msg) in cases {
            assert_eq!((e.kind, e.message.as_str()), (kind, msg));
            assert_eq!(e.to_string(), msg);
            assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some(msg), "{msg}");
        }
        // The chain goes on below: the I/O error under a store error.
        let e = Error::from(berth_image::StoreError::Io { op: "open", path: "/x".into(), source: io() });
        let below = e.source().and_then(|s| s.source()).map(|s| s.to_string());
        assert_eq!(below, Some(io().to_string()));
        // Errors made here have no cause, and compare by kind and message only.
        assert!(Error::conflict("x").source().is_none());
        assert_eq!(Error::from(berth_image::StoreError::Conflict("x".into())), Error::conflict("x"));
    }

    #[test]
    fn start_exit_codes_come_from_the_runtime_error() {
        let start = |m: &str| Error::caused_by(ErrorKind::InvalidArgument, berth_runtime::RuntimeError::Start(m.into()));
        for (e, want) in [
            (start("exec: \"nosuchcmd\": executable file not found in $PATH"), Some(127)),
            (start("exec: \"/etc\": permission denied"), Some(126)),
            (start("mount overlay: invalid argument"), None),
            // Not a start error, whatever its text says.
            (Error::internal("open /x: no such file or directory"), None),
            (Error::from(berth_runtime::RuntimeError::Protocol("no such file or directory".into())), None),
        ] {
            assert_eq!(e.start_exit_code(), want, "{e}");
        }
    }

}
