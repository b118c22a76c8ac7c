//! The run spec: everything the shim needs to start one container, written by berthd
//! as `<exec-root>/<id>.spec.json` and passed to `berth-shim` by path.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSpec {
    pub id: String,
    pub rootfs: Rootfs,
    /// argv; `args[0]` is looked up in the container's PATH unless it contains '/'.
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Working directory; "" means "/". Created if missing.
    pub cwd: String,
    /// "", "uid", "uid:gid", "name", "name:group", resolved inside the container.
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// (rows, cols)
    pub console_size: Option<(u16, u16)>,
    /// Extra mounts applied inside the rootfs before pivot_root.
    pub mounts: Vec<Mount>,
    pub cgroup: CgroupSpec,
    pub log_path: PathBuf,
    pub exit_path: PathBuf,
    pub socket_path: PathBuf,
    pub shim_log_path: Option<PathBuf>,
}

/// overlayfs layout; all absolute host paths. `lower` is ordered top layer first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Rootfs {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    /// Host path for binds; ignored for tmpfs.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub kind: MountKind,
    pub readonly: bool,
    /// Bind: propagation/flag words ("rprivate", "nosuid", ...). Tmpfs: data options
    /// ("size=64m", "mode=1777") and flag words ("noexec", "nosuid", "nodev").
    pub options: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Bind,
    Tmpfs,
}

/// Where the container's cgroup lives and its limits. An empty `root` disables cgroup
/// handling entirely. The cgroup is `<root>/<parent>/<name>` (v2) or
/// `<root>/<controller>/<parent>/<name>` (v1).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CgroupSpec {
    pub root: PathBuf,
    pub parent: String,
    pub name: String,
    /// Bytes.
    pub memory: Option<i64>,
    /// Memory + swap in bytes; -1 = unlimited swap.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<i64>,
    /// Microseconds per period.
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    pub cpu_period: Option<i64>,
    pub cpuset_cpus: Option<String>,
    /// ≤ 0 = unlimited.
    pub pids_limit: Option<i64>,
}
