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
    /// `--group-add`: supplementary groups (gids or names in the container's
    /// /etc/group) for the init and every exec.
    pub group_add: Vec<String>,
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
    /// `--ulimit`: applied with setrlimit in the init (and in every exec) before execve.
    /// Hard limits above the shim's own are clamped (raising one needs
    /// CAP_SYS_RESOURCE); see [`plan_ulimits`].
    pub ulimits: Vec<Ulimit>,
    /// `--read-only`: `/` is remounted read-only after setup; /proc, /dev, /dev/shm,
    /// /dev/mqueue and the spec's mounts (tmpfs, binds) keep their own flags.
    pub readonly_rootfs: bool,
    /// `--init`: host path of a static init (e.g. tini-static), bind-mounted read-only
    /// at [`DOCKER_INIT`] and run as `/sbin/docker-init -- <args>`.
    pub init: Option<PathBuf>,
    /// json-file `max-size` in bytes: the log is rotated before it would exceed this.
    pub log_max_size: Option<u64>,
    /// json-file `max-file`: how many files (`<log>`, `<log>.1`, ...) to keep; 0 = 1.
    pub log_max_file: u32,
    /// The log's format: json-file (default) or Docker's `local`. An empty `log_path`
    /// (`--log-driver none`) means no log at all.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Gzip rotated log files (`local`'s `compress`).
    #[serde(default)]
    pub log_compress: bool,
    /// Capabilities, seccomp, no_new_privs, masked paths, devices: see `security`.
    #[serde(default)]
    pub security: crate::security::SecuritySpec,
    /// An OCI runtime binary (`docker run --runtime`, e.g. `/usr/sbin/runc`) that
    /// creates the container from a bundle instead of the shim's own clone; `None` =
    /// the native path. The shim keeps its other roles (see `crate::oci` and
    /// docs/process-tree.md, "Other OCI runtimes").
    #[serde(default)]
    pub runtime: Option<PathBuf>,
    /// The container's network namespace.
    #[serde(default)]
    pub network: NetMode,
    /// Host ports the shim reserves (binds, without listening) for as long as it
    /// lives: published ports, whose traffic the kernel's DNAT carries.
    #[serde(default)]
    pub ports: Vec<HostPort>,
}

/// Which network namespace the container gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetMode {
    /// A new one with only `lo` (`--network none`).
    #[default]
    Private,
    /// The host's (`--network host`).
    Host,
    /// An existing one, by path: berthd's netns file of the container (bridge
    /// networks) or of another container, or `/proc/<pid>/ns/net` (`container:<id>`).
    Join(PathBuf),
}

/// One published host port: `proto` is `tcp`, `udp` or `sctp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPort {
    pub proto: String,
    pub ip: std::net::IpAddr,
    pub port: u16,
}

/// Where `--init`'s binary appears inside the container.
pub const DOCKER_INIT: &str = "/sbin/docker-init";

impl RunSpec {
    /// The argv the init execs: `args`, behind `/sbin/docker-init --` with `init`.
    pub fn process_args(&self) -> Vec<String> {
        match &self.init {
            Some(_) => {
                let mut v = vec![DOCKER_INIT.to_string(), "--".to_string()];
                v.extend(self.args.iter().cloned());
                v
            }
            None => self.args.clone(),
        }
    }
}

/// One `--ulimit name=soft[:hard]`; negative values mean unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ulimit {
    /// Docker's names: core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile,
    /// nproc, rss, rtprio, rttime, sigpending, stack.
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// A resolved `setrlimit` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// Turns `--ulimit`s into setrlimit calls. `current_hard(resource)` is the hard limit
/// the container process inherits: without CAP_SYS_RESOURCE a hard limit cannot be
/// raised, so larger requests are clamped to it (and soft to hard), with one warning
/// per clamp. Unknown names are an error (Docker's `invalid ulimit type`).
pub fn plan_ulimits(ulimits: &[Ulimit], current_hard: impl Fn(i32) -> u64) -> Result<(Vec<Rlimit>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let val = |v: i64| if v < 0 { berth_sys::process::RLIM_INFINITY } else { v as u64 };
    for u in ulimits {
        let resource = berth_sys::process::rlimit_resource(&u.name).ok_or_else(|| format!("invalid ulimit type: {}", u.name))?;
        let (mut soft, mut hard) = (val(u.soft), val(u.hard));
        if soft > hard {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: {} > {}", u.soft, u.hard));
        }
        let cap = current_hard(resource);
        if hard > cap {
            warnings.push(format!(
                "ulimit {}: hard limit {} clamped to {} (raising a hard limit needs CAP_SYS_RESOURCE)",
                u.name,
                u.hard,
                cap
            ));
            hard = cap;
            soft = soft.min(cap);
        }
        out.push(Rlimit { resource, soft, hard });
    }
    Ok((out, warnings))
}

/// What `docker exec` runs inside a running container (the shim's `exec` request).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecSpec {
    /// argv; `args[0]` is looked up in the exec's PATH unless it contains '/'.
    pub args: Vec<String>,
    /// Added to (overriding) the container's environment.
    pub env: Vec<String>,
    /// "" = the container's working directory. Not created when missing.
    pub cwd: String,
    /// "" = the container's user.
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    /// `docker exec --privileged`: passed to the security hook.
    pub privileged: bool,
    /// (rows, cols)
    pub console_size: Option<(u16, u16)>,
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

impl Mount {
    /// `--tmpfs <dest>[:<opts>]` as Docker does it: `noexec,nosuid,nodev` unless the
    /// options say `exec`/`suid`/`dev`; `ro` makes it read-only.
    pub fn tmpfs(arg: &str) -> Mount {
        let (dest, opts) = arg.split_once(':').unwrap_or((arg, ""));
        let opts: Vec<String> = opts.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect();
        let mut options: Vec<String> = Vec::new();
        for (flag, undo) in [("noexec", "exec"), ("nosuid", "suid"), ("nodev", "dev")] {
            if !opts.iter().any(|o| o == undo) {
                options.push(flag.to_string());
            }
        }
        let readonly = opts.iter().any(|o| o == "ro");
        options.extend(opts.into_iter().filter(|o| o != "ro" && o != "rw"));
        Mount { source: PathBuf::new(), destination: dest.to_string(), kind: MountKind::Tmpfs, readonly, options }
    }
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

/// The container log's on-disk format (what the shim writes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Docker's json-file: one JSON object a line ([`crate::jsonlog`]).
    #[default]
    JsonFile,
    /// Docker's local driver: framed protobuf entries ([`crate::locallog`]).
    Local,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimit_plans_clamp_to_the_hard_limit() {
        let nofile = berth_sys::process::rlimit_resource("nofile").unwrap();
        let core = berth_sys::process::rlimit_resource("core").unwrap();
        let ul = |n: &str, s, h| Ulimit { name: n.into(), soft: s, hard: h };
        let (p, w) = plan_ulimits(&[ul("nofile", 1024, 2048), ul("core", -1, -1)], |_| 4096).unwrap();
        assert_eq!(p, [Rlimit { resource: nofile, soft: 1024, hard: 2048 }, Rlimit { resource: core, soft: 4096, hard: 4096 }]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("ulimit core") && w[0].contains("CAP_SYS_RESOURCE"), "{w:?}");
        let (p, _) = plan_ulimits(&[ul("nofile", 9000, 9000)], |_| 4096).unwrap();
        assert_eq!((p[0].soft, p[0].hard), (4096, 4096));
        assert_eq!(plan_ulimits(&[ul("bogus", 1, 1)], |_| 1).unwrap_err(), "invalid ulimit type: bogus");
        assert!(plan_ulimits(&[ul("nofile", 10, 5)], |_| 100).is_err());
    }

    #[test]
    fn tmpfs_defaults() {
        let m = Mount::tmpfs("/run:rw,size=64m");
        assert_eq!((m.destination.as_str(), m.kind, m.readonly), ("/run", MountKind::Tmpfs, false));
        assert_eq!(m.options, ["noexec", "nosuid", "nodev", "size=64m"]);
        let m = Mount::tmpfs("/x:ro,exec,mode=1777");
        assert!(m.readonly);
        assert_eq!(m.options, ["nosuid", "nodev", "exec", "mode=1777"]);
        assert_eq!(Mount::tmpfs("/y").options, ["noexec", "nosuid", "nodev"]);
    }

    #[test]
    fn init_prefix() {
        let s = RunSpec { args: vec!["sleep".into(), "1".into()], init: Some("/usr/bin/tini-static".into()), ..Default::default() };
        assert_eq!(s.process_args(), ["/sbin/docker-init", "--", "sleep", "1"]);
        assert_eq!(RunSpec { args: vec!["a".into()], ..Default::default() }.process_args(), ["a"]);
    }
}
