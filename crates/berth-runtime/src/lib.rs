//! berth-runtime: one container process. Turns a [`spec::RunSpec`] into namespaces, an
//! overlayfs rootfs, cgroup limits (v1 and v2) and a running init, supervised by the
//! `berth-shim` monitor binary; [`client`] is the blocking side berthd uses to talk to
//! a shim. See docs/process-tree.md for the process tree and socket protocol.
//!
//! No `unsafe` here (syscalls go through `berth-sys`) and no tokio: the shim is a
//! single-threaded std-only program and the client is plain blocking std code.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

pub mod cgroup;
pub mod client;
pub mod frame;
pub mod jsonlog;
pub mod locallog;
pub mod lookup;
pub mod oci;
pub mod rootfs;
pub mod seccomp;
pub mod security;
#[doc(hidden)]
pub mod shim;
pub mod spec;
pub mod user;

mod exec;
mod init;
mod runc;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the container's init ended; written by the shim as `exit.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit status, or 128 + signal number.
    pub exit_code: i32,
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds, UTC (Go's RFC3339Nano).
    pub finished_at: String,
}

/// Error kinds the API edge maps to HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container could not be started; the message is Docker-worded (the docker
    /// CLI maps it to exit codes 126/127 by substring).
    #[error("{0}")]
    Start(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shim protocol error: {0}")]
    Protocol(String),
    /// The shim is gone (socket missing or refused): the container is not running.
    #[error("container is not running")]
    NotRunning,
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
}

impl RuntimeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Start(_) => {
                if self.start_exit_code().is_some() {
                    ErrorKind::InvalidArgument
                } else {
                    ErrorKind::Internal
                }
            }
            RuntimeError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            RuntimeError::Io { .. } | RuntimeError::Protocol(_) => ErrorKind::Internal,
            RuntimeError::NotRunning => ErrorKind::Conflict,
            RuntimeError::InvalidSpec(_) => ErrorKind::InvalidArgument,
        }
    }

    /// For start failures, the exit code Docker records in the container state (and
    /// the CLI exits with): 127 for a missing command, 126 for one that cannot be
    /// invoked. Mirrors moby's `translateContainerdStartErr`.
    pub fn start_exit_code(&self) -> Option<i32> {
        let RuntimeError::Start(msg) = self else { return None };
        let m = msg.to_lowercase();
        if m.contains("permission denied") {
            Some(126)
        } else if m.contains("executable file not found") || m.contains("no such file or directory") {
            Some(127)
        } else {
            None
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io { op, path: path.into(), source }
    }
}

/// Docker's wrapping of an init failure message.
pub(crate) fn start_error_message(inner: &str) -> String {
    format!("failed to create task for container: unable to start container process: {inner}: unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_error_kinds() {
        let e = RuntimeError::Start(start_error_message("exec: \"ls\": executable file not found in $PATH"));
        assert_eq!(e.start_exit_code(), Some(127));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = RuntimeError::Start(start_error_message("exec: \"/etc/passwd\": permission denied"));
        assert_eq!(e.start_exit_code(), Some(126));
        let e = RuntimeError::Start(start_error_message("mount overlay: invalid argument"));
        assert_eq!(e.start_exit_code(), None);
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(RuntimeError::NotRunning.kind(), ErrorKind::Conflict);
    }
}
