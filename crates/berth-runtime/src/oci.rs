//! A run spec as an OCI runtime-spec bundle config (`config.json`), for containers
//! created by an OCI runtime binary (runc) instead of the shim's own clone
//! (`RunSpec::runtime`; see docs/process-tree.md, "Other OCI runtimes").
//!
//! [`config`] is pure: everything it needs from the host (the user resolved in the
//! container's /etc/passwd, the kernel's last capability, the kernel release) comes in
//! [`HostFacts`]. It builds the same container the native path does: Docker's default
//! mounts ([`crate::rootfs::standard_mounts`]), the spec's binds and tmpfs, the
//! capability sets, masked/read-only paths, devices rules and seccomp profile of
//! [`crate::security::plan`] (the profile resolved per container as moby does, then
//! written in the OCI seccomp format), the cgroup limits of `RunSpec::cgroup` under
//! `cgroupsPath` `/<parent>/<name>` (cgroupfs driver: the same directories
//! [`crate::cgroup::Cgroup`] uses, so pause, stats and OOM detection work unchanged).
//! `args[0]` is left for the runtime to look up in the process's PATH.
//! Only the parts of the runtime spec Berth uses are modelled.

use crate::seccomp::{self, Action, CmpOp, Profile};
use crate::security::{self, DeviceRule};
use crate::spec::{MountKind, RunSpec};
use crate::user::ExecUser;
use berth_sys::libc;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The runtime-spec version written into `ociVersion`.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// Host facts [`config`] depends on, gathered by the shim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// `RunSpec::user` resolved in the container's /etc/passwd and /etc/group.
    pub user: ExecUser,
    /// The kernel's highest capability number (`/proc/sys/kernel/cap_last_cap`).
    pub last_cap: u32,
    /// Kernel (major, minor), for seccomp rules with `minKernel`.
    pub kernel: (u32, u32),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub oci_version: String,
    pub process: Process,
    pub root: Root,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    pub linux: Linux,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    pub user: User,
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSize {
    pub height: u32,
    pub width: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub inheritable: Vec<String>,
    pub permitted: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: PathBuf,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    #[serde(default)]
    pub masked_paths: Vec<String>,
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// `pid`, `mount`, `ipc`, `uts`, `network`.
    #[serde(rename = "type")]
    pub kind: String,
    /// An existing namespace to join (the container's netns file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub devices: Vec<DeviceCgroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Pids>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCgroup {
    pub allow: bool,
    /// `a`, `c` or `b`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    pub access: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Memory + swap, as Docker's `--memory-swap`; -1 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<Syscall>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SeccompArg>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompArg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// The bundle config for `spec`. Errors are the same texts the native path gives
/// (`invalid ulimit type: x`, a profile that does not parse).
pub fn config(spec: &RunSpec, host: &HostFacts) -> Result<Spec, String> {
    let plan = security::plan(&spec.security, host.last_cap).map_err(|e| e.to_string())?;
    let names = |mask: u64| security::cap_names(mask).into_iter().map(str::to_string).collect::<Vec<_>>();
    let caps = Capabilities {
        bounding: names(plan.caps.bounding),
        effective: names(plan.caps.effective),
        inheritable: names(plan.caps.inheritable),
        permitted: names(plan.caps.permitted),
        ambient: names(plan.caps.ambient),
    };
    let seccomp = match &plan.seccomp {
        Some(p) => Some(seccomp_config(p, &security::cap_names(plan.caps.effective), host.kernel)?),
        None => None,
    };
    let cwd = if spec.cwd.is_empty() { "/".to_string() } else { spec.cwd.clone() };
    let process = Process {
        terminal: spec.tty,
        console_size: spec.console_size.filter(|_| spec.tty).map(|(rows, cols)| ConsoleSize {
            height: u32::from(rows),
            width: u32::from(cols),
        }),
        user: User { uid: host.user.uid, gid: host.user.gid, additional_gids: host.user.groups.clone() },
        args: spec.process_args(),
        env: crate::init::build_env(spec, &host.user.home),
        cwd,
        capabilities: Some(caps),
        rlimits: rlimits(spec)?,
        no_new_privileges: plan.no_new_privs,
    };
    let ns = |k: &str| Namespace { kind: k.to_string(), path: None };
    let cgroups_path = (!spec.cgroup.root.as_os_str().is_empty()).then(|| cgroups_path(&spec.cgroup));
    let resources = cgroups_path.is_some().then(|| resources(spec, &plan.devices));
    Ok(Spec {
        oci_version: OCI_VERSION.to_string(),
        process,
        root: Root { path: spec.rootfs.merged.clone(), readonly: spec.readonly_rootfs },
        hostname: spec.hostname.clone(),
        mounts: mounts(spec),
        linux: Linux {
            namespaces: {
                let mut v = vec![ns("pid")];
                match &spec.network {
                    crate::spec::NetMode::Private => v.push(ns("network")),
                    crate::spec::NetMode::Host => {}
                    crate::spec::NetMode::Join(p) => v.push(Namespace { kind: "network".into(), path: Some(p.clone()) }),
                }
                v.extend([ns("ipc"), ns("uts"), ns("mount")]);
                v
            },
            resources,
            cgroups_path,
            masked_paths: plan.masked,
            readonly_paths: plan.readonly,
            seccomp,
        },
    })
}

/// `/<parent>/<name>`: with runc's cgroupfs driver, the directories
/// [`crate::cgroup::Cgroup::from_spec`] points at.
pub fn cgroups_path(c: &crate::spec::CgroupSpec) -> String {
    let name = if c.name.is_empty() { "container" } else { &c.name };
    Path::new("/").join(&c.parent).join(name).to_string_lossy().into_owned()
}

fn flag_words(flags: libc::c_ulong) -> Vec<String> {
    let words = [
        (libc::MS_RDONLY, "ro"),
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
        (libc::MS_STRICTATIME, "strictatime"),
    ];
    words.iter().filter(|(f, _)| flags & f != 0).map(|(_, w)| w.to_string()).collect()
}

fn is_propagation(w: &str) -> bool {
    matches!(w, "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave")
}

/// Docker's default mounts, then the spec's (and `--init`'s) in order.
fn mounts(spec: &RunSpec) -> Vec<Mount> {
    let mut out: Vec<Mount> = crate::rootfs::standard_mounts()
        .into_iter()
        .map(|op| {
            let mut options = flag_words(op.flags);
            options.extend(op.data.split(',').filter(|d| !d.is_empty()).map(str::to_string));
            let source = if op.target == "/dev/shm" { "shm" } else { op.fstype };
            Mount { destination: op.target.to_string(), kind: op.fstype.to_string(), source: source.into(), options }
        })
        .collect();
    let mut user_mounts = spec.mounts.clone();
    if let Some(init) = &spec.init {
        user_mounts.push(crate::spec::Mount {
            source: init.clone(),
            destination: crate::spec::DOCKER_INIT.to_string(),
            kind: MountKind::Bind,
            readonly: true,
            options: vec![],
        });
    }
    for m in user_mounts {
        let mut options = Vec::new();
        let user_opts = m.options.iter().filter(|o| !matches!(o.as_str(), "ro" | "rw" | "bind" | "rbind"));
        match m.kind {
            MountKind::Bind => {
                let recursive = !m.options.iter().any(|o| o == "bind");
                options.push(if recursive { "rbind" } else { "bind" }.to_string());
                options.push(if m.readonly { "ro" } else { "rw" }.to_string());
                options.extend(user_opts.cloned());
                if !options.iter().any(|o| is_propagation(o)) {
                    options.push("rprivate".to_string());
                }
                out.push(Mount { destination: m.destination, kind: "bind".into(), source: m.source, options });
            }
            MountKind::Tmpfs => {
                options.push(if m.readonly { "ro" } else { "rw" }.to_string());
                options.extend(user_opts.cloned());
                out.push(Mount { destination: m.destination, kind: "tmpfs".into(), source: "tmpfs".into(), options });
            }
        }
    }
    out
}

fn rlimits(spec: &RunSpec) -> Result<Vec<Rlimit>, String> {
    let val = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    spec.ulimits
        .iter()
        .map(|u| {
            berth_sys::process::rlimit_resource(&u.name).ok_or_else(|| format!("invalid ulimit type: {}", u.name))?;
            Ok(Rlimit { kind: format!("RLIMIT_{}", u.name.to_ascii_uppercase()), hard: val(u.hard), soft: val(u.soft) })
        })
        .collect()
}

fn resources(spec: &RunSpec, devices: &[DeviceRule]) -> Resources {
    let c = &spec.cgroup;
    let memory = Memory { limit: c.memory.filter(|m| *m > 0), swap: c.memory_swap.filter(|s| *s != 0).map(|s| s.max(-1)) };
    let cpu = Cpu {
        shares: c.cpu_shares.filter(|s| *s > 0).map(|s| s as u64),
        quota: c.cpu_quota.filter(|q| *q != 0).map(|q| q.max(-1)),
        period: c.cpu_period.filter(|p| *p > 0).map(|p| p as u64),
        cpus: c.cpuset_cpus.clone().filter(|s| !s.is_empty()),
    };
    Resources {
        devices: devices
            .iter()
            .map(|d| DeviceCgroup {
                allow: d.allow,
                kind: d.kind.to_string(),
                major: d.major.map(i64::from),
                minor: d.minor.map(i64::from),
                access: d.access.to_string(),
            })
            .collect(),
        memory: (memory != Memory::default()).then_some(memory),
        cpu: (cpu != Cpu::default()).then_some(cpu),
        pids: c.pids_limit.filter(|p| *p != 0).map(|p| Pids { limit: p.max(-1) }),
    }
}

/// libseccomp's name for the architecture we run on (what `archMap` keys are).
pub fn native_scmp_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "x86" => "SCMP_ARCH_X86",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "powerpc64" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "",
    }
}

fn action_name(a: Action) -> (&'static str, Option<u32>) {
    match a.0 & 0xffff_0000 {
        0x7fff_0000 => ("SCMP_ACT_ALLOW", None),
        0x0005_0000 => ("SCMP_ACT_ERRNO", Some(a.0 & 0xffff)),
        0x0003_0000 => ("SCMP_ACT_TRAP", None),
        0x7ff0_0000 => ("SCMP_ACT_TRACE", Some(a.0 & 0xffff)),
        0x7ffc_0000 => ("SCMP_ACT_LOG", None),
        0x8000_0000 => ("SCMP_ACT_KILL_PROCESS", None),
        _ => ("SCMP_ACT_KILL", None),
    }
}

fn op_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Ne => "SCMP_CMP_NE",
        CmpOp::Lt => "SCMP_CMP_LT",
        CmpOp::Le => "SCMP_CMP_LE",
        CmpOp::Eq => "SCMP_CMP_EQ",
        CmpOp::Ge => "SCMP_CMP_GE",
        CmpOp::Gt => "SCMP_CMP_GT",
        CmpOp::MaskedEq => "SCMP_CMP_MASKED_EQ",
    }
}

/// A Docker-format profile → OCI `linux.seccomp`, filtered for this container the way
/// moby's `setupSeccomp` does (capabilities, GOARCH, kernel; `archMap` → the native
/// architecture and its sub-architectures). Consecutive rules with the same action and
/// arguments share one entry.
pub fn seccomp_config(p: &Profile, caps: &[&str], kernel: (u32, u32)) -> Result<Seccomp, String> {
    let resolved = seccomp::resolve(p, caps, seccomp::native_go_arch(), kernel).map_err(|e| e.to_string())?;
    let (default_action, default_errno) = action_name(resolved.default);
    let native = native_scmp_arch();
    let architectures = match &p.arch_map {
        Some(map) => map
            .iter()
            .filter(|m| m.architecture == native)
            .flat_map(|m| std::iter::once(m.architecture.clone()).chain(m.sub_architectures.iter().flatten().cloned()))
            .collect(),
        None => p.architectures.clone().unwrap_or_default(),
    };
    let mut syscalls: Vec<Syscall> = Vec::new();
    for r in &resolved.rules {
        let (action, errno_ret) = action_name(r.action);
        let args: Vec<SeccompArg> = r
            .conds
            .iter()
            .map(|c| SeccompArg { index: c.index, value: c.value, value_two: c.value_two, op: op_name(c.op).to_string() })
            .collect();
        match syscalls.last_mut() {
            Some(last) if last.action == action && last.errno_ret == errno_ret && last.args == args => {
                last.names.push(r.name.clone());
            }
            _ => syscalls.push(Syscall { names: vec![r.name.clone()], action: action.to_string(), errno_ret, args }),
        }
    }
    Ok(Seccomp {
        default_action: default_action.to_string(),
        default_errno_ret: default_errno,
        architectures,
        flags: p.flags.clone().unwrap_or_default(),
        syscalls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{SeccompMode, SecuritySpec};
    use crate::spec::{CgroupSpec, Mount as SpecMount, Rootfs, Ulimit};
    use serde_json::{json, Value};

    fn host() -> HostFacts {
        HostFacts {
            user: ExecUser { uid: 1000, gid: 1000, groups: vec![10], home: "/home/app".into() },
            last_cap: 40,
            kernel: (6, 1),
        }
    }

    fn base() -> RunSpec {
        RunSpec {
            id: "c1".into(),
            rootfs: Rootfs { merged: "/var/lib/berth/containers/c1/fs/merged".into(), ..Default::default() },
            args: vec!["echo".into(), "hi".into()],
            env: vec!["A=1".into()],
            hostname: "h1".into(),
            cgroup: CgroupSpec { root: "/sys/fs/cgroup".into(), parent: "berth".into(), name: "c1".into(), ..Default::default() },
            ..Default::default()
        }
    }

    /// The generated JSON for `base()` tweaked by `f`.
    fn gen(f: impl FnOnce(&mut RunSpec)) -> Value {
        let mut s = base();
        f(&mut s);
        serde_json::to_value(config(&s, &host()).unwrap()).unwrap()
    }

    #[test]
    fn json_pointers_table() {
        type Case = (&'static str, fn(&mut RunSpec), &'static str, Value);
        let cases: &[Case] = &[
            ("version", |_| {}, "/ociVersion", json!(OCI_VERSION)),
            ("root", |_| {}, "/root", json!({"path": "/var/lib/berth/containers/c1/fs/merged", "readonly": false})),
            ("read-only root", |s| s.readonly_rootfs = true, "/root/readonly", json!(true)),
            ("hostname", |_| {}, "/hostname", json!("h1")),
            ("args untouched (runtime does the PATH lookup)", |_| {}, "/process/args", json!(["echo", "hi"])),
            ("--init", |s| s.init = Some("/usr/bin/tini".into()), "/process/args", json!(["/sbin/docker-init", "--", "echo", "hi"])),
            (
                "env defaults, HOME from the user",
                |_| {},
                "/process/env",
                json!([format!("PATH={}", crate::lookup::DEFAULT_PATH), "HOSTNAME=h1", "A=1", "HOME=/home/app"]),
            ),
            ("cwd default", |_| {}, "/process/cwd", json!("/")),
            ("cwd", |s| s.cwd = "/work".into(), "/process/cwd", json!("/work")),
            ("user", |_| {}, "/process/user", json!({"uid": 1000, "gid": 1000, "additionalGids": [10]})),
            ("no terminal", |_| {}, "/process/terminal", json!(false)),
            ("terminal", |s| s.tty = true, "/process/terminal", json!(true)),
            (
                "console size",
                |s| {
                    s.tty = true;
                    s.console_size = Some((24, 80));
                },
                "/process/consoleSize",
                json!({"height": 24, "width": 80}),
            ),
            ("no-new-privileges", |s| s.security.no_new_privileges = true, "/process/noNewPrivileges", json!(true)),
            (
                "ulimits",
                |s| s.ulimits = vec![Ulimit { name: "nofile".into(), soft: 1024, hard: -1 }],
                "/process/rlimits",
                json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": u64::MAX}]),
            ),
            (
                "namespaces",
                |_| {},
                "/linux/namespaces",
                json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
            ),
            ("cgroups path", |_| {}, "/linux/cgroupsPath", json!("/berth/c1")),
            ("nested parent", |s| s.cgroup.parent = "system.slice/berth".into(), "/linux/cgroupsPath", json!("/system.slice/berth/c1")),
            ("memory", |s| s.cgroup.memory = Some(64 << 20), "/linux/resources/memory", json!({"limit": 64 << 20})),
            (
                "memory + unlimited swap",
                |s| {
                    s.cgroup.memory = Some(64 << 20);
                    s.cgroup.memory_swap = Some(-1);
                },
                "/linux/resources/memory",
                json!({"limit": 64 << 20, "swap": -1}),
            ),
            (
                "cpu",
                |s| {
                    s.cgroup.cpu_shares = Some(512);
                    s.cgroup.cpu_quota = Some(50_000);
                    s.cgroup.cpu_period = Some(100_000);
                    s.cgroup.cpuset_cpus = Some("0".into());
                },
                "/linux/resources/cpu",
                json!({"shares": 512, "quota": 50_000, "period": 100_000, "cpus": "0"}),
            ),
            ("pids", |s| s.cgroup.pids_limit = Some(50), "/linux/resources/pids", json!({"limit": 50})),
            ("pids unlimited", |s| s.cgroup.pids_limit = Some(-5), "/linux/resources/pids", json!({"limit": -1})),
            ("devices: deny all first", |_| {}, "/linux/resources/devices/0", json!({"allow": false, "type": "a", "access": "rwm"})),
            (
                "devices: null allowed",
                |_| {},
                "/linux/resources/devices/3",
                json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
            ),
            (
                "privileged devices",
                |s| s.security.privileged = true,
                "/linux/resources/devices",
                json!([{"allow": true, "type": "a", "access": "rwm"}]),
            ),
            ("masked paths", |_| {}, "/linux/maskedPaths/0", json!("/proc/asound")),
            ("readonly paths", |_| {}, "/linux/readonlyPaths", json!(security::DEFAULT_READONLY_PATHS)),
            ("systempaths=unconfined", |s| s.security.masked_paths = Some(vec![]), "/linux/maskedPaths", json!([])),
            ("seccomp default action", |_| {}, "/linux/seccomp/defaultAction", json!("SCMP_ACT_ERRNO")),
            ("seccomp default errno", |_| {}, "/linux/seccomp/defaultErrnoRet", json!(1)),
        ];
        for (name, f, ptr, want) in cases {
            let v = gen(*f);
            assert_eq!(v.pointer(ptr), Some(want), "{name}: {ptr} in {v:#}");
        }
    }

    #[test]
    fn absent_fields_table() {
        type Case = (&'static str, fn(&mut RunSpec), &'static str);
        let cases: &[Case] = &[
            ("no console size without tty", |s| s.console_size = Some((24, 80)), "/process/consoleSize"),
            ("no rlimits", |_| {}, "/process/rlimits"),
            ("no memory limit", |_| {}, "/linux/resources/memory"),
            ("no cpu limit", |_| {}, "/linux/resources/cpu"),
            ("no pids limit", |_| {}, "/linux/resources/pids"),
            ("cgroups disabled", |s| s.cgroup.root = PathBuf::new(), "/linux/cgroupsPath"),
            ("cgroups disabled: no resources", |s| s.cgroup.root = PathBuf::new(), "/linux/resources"),
            ("unconfined", |s| s.security.seccomp = SeccompMode::Unconfined, "/linux/seccomp"),
            ("privileged: no seccomp", |s| s.security.privileged = true, "/linux/seccomp"),
            ("empty hostname", |s| s.hostname.clear(), "/hostname"),
        ];
        for (name, f, ptr) in cases {
            let v = gen(*f);
            assert_eq!(v.pointer(ptr), None, "{name}: {ptr} in {v:#}");
        }
    }

    #[test]
    fn capabilities() {
        let v = gen(|_| {});
        let bounding = v.pointer("/process/capabilities/bounding").unwrap().as_array().unwrap();
        assert_eq!(bounding.len(), security::DEFAULT_CAPS.len());
        assert!(bounding.contains(&json!("CAP_NET_RAW")) && !bounding.contains(&json!("CAP_SYS_ADMIN")));
        for set in ["effective", "permitted"] {
            assert_eq!(v.pointer(&format!("/process/capabilities/{set}")).unwrap().as_array().unwrap(), bounding);
        }
        assert_eq!(v.pointer("/process/capabilities/inheritable"), Some(&json!([])));
        assert_eq!(v.pointer("/process/capabilities/ambient"), Some(&json!([])));
        let v = gen(|s| s.security = SecuritySpec { cap_drop: vec!["ALL".into()], cap_add: vec!["chown".into()], ..Default::default() });
        assert_eq!(v.pointer("/process/capabilities/effective"), Some(&json!(["CAP_CHOWN"])));
        let v = gen(|s| s.security.privileged = true);
        assert_eq!(v.pointer("/process/capabilities/bounding").unwrap().as_array().unwrap().len(), 41);
    }

    #[test]
    fn mounts_table() {
        let v = gen(|s| {
            s.mounts = vec![
                SpecMount { source: "/c/hosts".into(), destination: "/etc/hosts".into(), ..Default::default() },
                SpecMount { source: "/data".into(), destination: "/data".into(), readonly: true, options: vec!["rslave".into()], ..Default::default() },
                SpecMount::tmpfs("/run:size=64m"),
                SpecMount::tmpfs("/ro:ro"),
            ]
        });
        let m = |dest: &str| -> Value {
            let all = v.pointer("/mounts").unwrap().as_array().unwrap();
            all.iter().find(|m| m["destination"] == dest).cloned().unwrap_or_else(|| panic!("no mount {dest} in {all:#?}"))
        };
        let cases: &[(&str, Value)] = &[
            ("/proc", json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "nodev", "noexec"]})),
            ("/sys", json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid", "nodev", "noexec"]})),
            (
                "/dev",
                json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            ),
            (
                "/dev/pts",
                json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                       "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
            ),
            (
                "/dev/shm",
                json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=65536k"]}),
            ),
            ("/dev/mqueue", json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "nodev", "noexec"]})),
            ("/etc/hosts", json!({"destination": "/etc/hosts", "type": "bind", "source": "/c/hosts", "options": ["rbind", "rw", "rprivate"]})),
            ("/data", json!({"destination": "/data", "type": "bind", "source": "/data", "options": ["rbind", "ro", "rslave"]})),
            ("/run", json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "noexec", "nosuid", "nodev", "size=64m"]})),
            ("/ro", json!({"destination": "/ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "noexec", "nosuid", "nodev"]})),
        ];
        for (dest, want) in cases {
            assert_eq!(&m(dest), want, "{dest}");
        }
        // /dev before /dev/pts, the standard mounts before the spec's.
        let order: Vec<String> =
            v["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap().to_string()).collect();
        assert_eq!(order[..7], ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/etc/hosts"]);
        let v = gen(|s| s.init = Some("/usr/bin/tini".into()));
        let init = v["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(init, json!({"destination": "/sbin/docker-init", "type": "bind", "source": "/usr/bin/tini", "options": ["rbind", "ro", "rprivate"]}));
    }

    #[test]
    fn seccomp_default_profile() {
        let v = gen(|_| {});
        let sc = &v["linux"]["seccomp"];
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(sc["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        }
        let rules = sc["syscalls"].as_array().unwrap();
        let find = |name: &str| -> Vec<&Value> { rules.iter().filter(|r| r["names"].as_array().unwrap().contains(&json!(name))).collect() };
        let cases: &[(&str, Value)] = &[
            ("read", json!([{"action": "SCMP_ACT_ALLOW"}])),
            ("socket", json!([{"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]}])),
            // Without CAP_SYS_ADMIN: clone with namespace flags masked out, clone3 ENOSYS.
            (
                "clone",
                json!([{"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]),
            ),
            ("clone3", json!([{"action": "SCMP_ACT_ERRNO", "errnoRet": 38}])),
            ("mount", json!([])),
            ("reboot", json!([])),
        ];
        for (name, want) in cases {
            let got: Vec<Value> = find(name)
                .into_iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.as_object_mut().unwrap().remove("names");
                    r
                })
                .collect();
            assert_eq!(&Value::Array(got), want, "{name}");
        }
        // personality: five alternatives, one entry each.
        assert_eq!(find("personality").len(), 5);
        // CAP_SYS_ADMIN allows mount and plain clone.
        let v = gen(|s| s.security.cap_add = vec!["SYS_ADMIN".into()]);
        let rules = v["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        let allowed = |n: &str| rules.iter().any(|r| r["names"].as_array().unwrap().contains(&json!(n)) && r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none());
        assert!(allowed("mount") && allowed("clone") && allowed("clone3"));
    }

    #[test]
    fn custom_profile_and_errors() {
        let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["chmod","fchmod"],"action":"SCMP_ACT_ERRNO"},{"names":["kill"],"action":"SCMP_ACT_LOG"}]}"#;
        let v = gen(|s| s.security.seccomp = SeccompMode::Profile(profile.into()));
        assert_eq!(
            v["linux"]["seccomp"],
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
                {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["kill"], "action": "SCMP_ACT_LOG"}]})
        );
        let mut s = base();
        s.ulimits = vec![Ulimit { name: "bogus".into(), soft: 1, hard: 1 }];
        assert_eq!(config(&s, &host()).unwrap_err(), "invalid ulimit type: bogus");
        let mut s = base();
        s.security.cap_add = vec!["FOO".into()];
        assert_eq!(config(&s, &host()).unwrap_err(), "unknown capability: \"CAP_FOO\"");
        let mut s = base();
        s.security.seccomp = SeccompMode::Profile("{".into());
        assert!(config(&s, &host()).unwrap_err().starts_with("decoding seccomp profile failed"));
    }
}
