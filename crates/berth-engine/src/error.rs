//! The engine's error: a kind (mapped to an HTTP status once, at the API edge) and
//! Docker's message text.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    /// The request asked for a state the object is already in (HTTP 304).
    NotModified,
    Unavailable,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
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

impl std::error::Error for Error {}

impl From<berth_image::ErrorKind> for ErrorKind {
    fn from(k: berth_image::ErrorKind) -> ErrorKind {
        match k {
            berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
            berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
            berth_image::ErrorKind::Unavailable => ErrorKind::Unavailable,
            berth_image::ErrorKind::Internal => ErrorKind::Internal,
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

/// Converts any error of the image crate, keeping its kind and text.
pub fn from_image<E: std::fmt::Display>(kind: berth_image::ErrorKind, e: E) -> Error {
    Error::new(kind.into(), e.to_string())
}

/// Converts any error of the runtime crate, keeping its kind and text.
pub fn from_runtime(e: berth_runtime::RuntimeError) -> Error {
    Error::new(e.kind().into(), e.to_string())
}
