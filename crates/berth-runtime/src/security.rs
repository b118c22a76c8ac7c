//! Docker's default hardening of a container process: capabilities, no_new_privs,
//! seccomp, masked and read-only kernel paths, the devices cgroup, and what
//! `--privileged` turns off (and on: all capabilities, host devices, rw /sys).
//!
//! Plan, then apply: [`plan`] turns a [`SecuritySpec`] into plain data ([`Plan`]:
//! capability sets, paths, device rules, seccomp profile) and is unit-tested; the
//! apply functions are thin and run at fixed points of the container's start:
//! - [`apply_devices`] in the shim, when it creates the cgroup (v1 devices controller;
//!   on cgroup v2 device control needs an eBPF program, not done: see docs/security.md);
//! - [`prepare_rootfs`] in the init before pivot_root (privileged: host device nodes);
//! - [`prepare`] in the init after pivot_root (masked / read-only paths, rw /sys);
//! - [`apply`] (init) / [`apply_exec`] (exec) last before execve: it performs the user
//!   switch itself, because capabilities and seccomp must be ordered around setuid
//!   the way runc orders them (see [`apply`]).
//!
//! Neighbours: `seccomp` compiles profiles, `berth_sys::security` makes the calls.

use crate::cgroup::{Cgroup, Version};
use crate::seccomp::{self, Profile};
use crate::spec::RunSpec;
use crate::user::ExecUser;
use crate::RuntimeError;
use berth_sys::libc;
use berth_sys::mount::{mknod, mount};
use berth_sys::security as sys;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The security part of a run spec (`RunSpec::security`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySpec {
    /// `--privileged`: all capabilities, no seccomp, no masked/read-only paths, rw
    /// /sys, every host device node and device access.
    pub privileged: bool,
    /// `--cap-add` / `--cap-drop`: Docker's names, any case, with or without `CAP_`;
    /// "ALL" is allowed in both.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    pub seccomp: SeccompMode,
    /// `None`: Docker's defaults ([`DEFAULT_MASKED_PATHS`]); `Some(vec![])`:
    /// `--security-opt systempaths=unconfined`.
    pub masked_paths: Option<Vec<String>>,
    /// `None`: Docker's defaults ([`DEFAULT_READONLY_PATHS`]).
    pub readonly_paths: Option<Vec<String>>,
}

/// `--security-opt seccomp=…`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// Docker's default profile.
    #[default]
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// A profile in Docker's JSON format (the file's content, as the docker CLI sends it).
    Profile(String),
}

/// Capability names by number (`CAP_CHOWN` = 0 … `CAP_CHECKPOINT_RESTORE` = 40).
pub const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (moby `oci/caps` `DefaultCapabilities`), in its order.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The kernel's highest capability when /proc does not say (CAP_CHECKPOINT_RESTORE).
pub const FALLBACK_LAST_CAP: u32 = 40;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecurityError {
    /// Docker's wording (an invalid-parameter error at create).
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

impl SecurityError {
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidArgument
    }
}

/// Capability number of a Docker name ("chown", "CAP_CHOWN", "Net_Raw").
pub fn cap_number(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    CAP_NAMES.iter().position(|c| *c == full).map(|i| i as u32)
}

/// Bit mask → names (`CAP_…`), in number order.
pub fn cap_names(mask: u64) -> Vec<&'static str> {
    CAP_NAMES.iter().enumerate().filter(|(i, _)| mask & (1u64 << i) != 0).map(|(_, n)| *n).collect()
}

fn all_caps(last_cap: u32) -> u64 {
    let n = last_cap.min(CAP_NAMES.len() as u32 - 1);
    if n >= 63 {
        u64::MAX
    } else {
        (1u64 << (n + 1)) - 1
    }
}

/// moby's `TweakCapabilities`: privileged → all; `--cap-add ALL` → all but the drops;
/// `--cap-drop ALL` → only the adds; else defaults − drops + adds.
pub fn effective_caps(spec: &SecuritySpec, last_cap: u32) -> Result<u64, SecurityError> {
    let all = all_caps(last_cap);
    if spec.privileged {
        return Ok(all);
    }
    let parse = |list: &[String]| -> Result<(bool, u64), SecurityError> {
        let mut has_all = false;
        let mut mask = 0u64;
        for c in list {
            if c.eq_ignore_ascii_case("ALL") {
                has_all = true;
                continue;
            }
            let n = cap_number(c).ok_or_else(|| {
                let up = c.to_ascii_uppercase();
                SecurityError::UnknownCapability(if up.starts_with("CAP_") { up } else { format!("CAP_{up}") })
            })?;
            mask |= 1u64 << n;
        }
        Ok((has_all, mask))
    };
    let (add_all, add) = parse(&spec.cap_add)?;
    let (drop_all, drop) = parse(&spec.cap_drop)?;
    let defaults = DEFAULT_CAPS.iter().filter_map(|c| cap_number(c)).fold(0u64, |m, n| m | (1u64 << n));
    Ok(if add_all {
        all & !drop
    } else if drop_all {
        add
    } else {
        (defaults & !drop) | add
    })
}

/// The five capability sets of the container process (before execve; the kernel
/// then computes the post-exec sets: root keeps bounding ∩ permitted, a non-root
/// user without file capabilities ends with empty permitted/effective).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// How a path is masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Bind /dev/null over a file.
    NullBind(String),
    /// A read-only empty tmpfs over a directory.
    EmptyTmpfs(String),
}

/// One devices-cgroup v1 rule, written as `devices.allow` / `devices.deny` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    /// `None` = `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: &'static str,
}

impl DeviceRule {
    /// The line the kernel expects ("c 1:3 rwm", "a *:* rwm").
    pub fn line(&self) -> String {
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        format!("{} {}:{} {}", self.kind, n(self.major), n(self.minor), self.access)
    }
}

/// Docker's (moby defaults + runc's implicit) allow list after `a` is denied.
pub fn default_device_rules() -> Vec<DeviceRule> {
    let r = |kind, major, minor, access| DeviceRule { allow: true, kind, major, minor, access };
    vec![
        DeviceRule { allow: false, kind: 'a', major: None, minor: None, access: "rwm" },
        r('c', None, None, "m"),
        r('b', None, None, "m"),
        r('c', Some(1), Some(3), "rwm"),    // null
        r('c', Some(1), Some(5), "rwm"),    // zero
        r('c', Some(1), Some(7), "rwm"),    // full
        r('c', Some(1), Some(8), "rwm"),    // random
        r('c', Some(1), Some(9), "rwm"),    // urandom
        r('c', Some(5), Some(0), "rwm"),    // tty
        r('c', Some(5), Some(1), "rwm"),    // console
        r('c', Some(5), Some(2), "rwm"),    // ptmx
        r('c', Some(136), None, "rwm"),     // pts
        r('c', Some(10), Some(200), "rwm"), // net/tun
    ]
}

/// Everything [`plan`] decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub caps: CapSets,
    pub no_new_privs: bool,
    /// `None`: no filter.
    pub seccomp: Option<Profile>,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    pub devices: Vec<DeviceRule>,
    /// Privileged: /sys remounted rw, host device nodes copied into /dev.
    pub privileged: bool,
}

/// The pure plan for `spec` on a kernel whose highest capability is `last_cap`.
pub fn plan(spec: &SecuritySpec, last_cap: u32) -> Result<Plan, SecurityError> {
    plan_with(spec, last_cap, true)
}

/// [`plan`]; without `seccomp` the default profile is not built (steps that do not
/// load a filter skip that work; a custom profile is still parsed, to fail early).
fn plan_with(spec: &SecuritySpec, last_cap: u32, with_filter: bool) -> Result<Plan, SecurityError> {
    let set = effective_caps(spec, last_cap)?;
    let caps = CapSets { bounding: set, effective: set, permitted: set, inheritable: 0, ambient: 0 };
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if spec.privileged {
        let devices = vec![DeviceRule { allow: true, kind: 'a', major: None, minor: None, access: "rwm" }];
        return Ok(Plan {
            caps,
            no_new_privs: spec.no_new_privileges,
            seccomp: None,
            masked: vec![],
            readonly: vec![],
            devices,
            privileged: true,
        });
    }
    let seccomp = match &spec.seccomp {
        SeccompMode::Default if with_filter => Some(seccomp::default_profile()),
        SeccompMode::Default => None,
        SeccompMode::Unconfined => None,
        SeccompMode::Profile(json) => Some(seccomp::parse(json)?),
    };
    Ok(Plan {
        caps,
        no_new_privs: spec.no_new_privileges,
        seccomp,
        masked: spec.masked_paths.clone().unwrap_or_else(|| owned(DEFAULT_MASKED_PATHS)),
        readonly: spec.readonly_paths.clone().unwrap_or_else(|| owned(DEFAULT_READONLY_PATHS)),
        devices: default_device_rules(),
        privileged: false,
    })
}

/// Checks a spec the way `docker create` would (unknown capabilities, a profile that
/// does not parse or compile); for the engine to call before it writes the spec.
pub fn validate(spec: &SecuritySpec) -> Result<(), SecurityError> {
    let p = plan(spec, FALLBACK_LAST_CAP)?;
    if let Some(profile) = &p.seccomp {
        let r = seccomp::resolve(profile, &cap_names(p.caps.effective), seccomp::native_go_arch(), (99, 0))?;
        seccomp::compile(&r)?;
    }
    Ok(())
}

/// The kernel's highest capability number, from `<proc>/sys/kernel/cap_last_cap`.
pub fn last_cap(proc_root: &Path) -> u32 {
    std::fs::read_to_string(proc_root.join("sys/kernel/cap_last_cap"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(FALLBACK_LAST_CAP)
}

fn kernel_release(proc_root: &Path) -> (u32, u32) {
    let r = std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).unwrap_or_default();
    seccomp::parse_kernel(&r)
}

fn ctx(what: impl std::fmt::Display, e: std::io::Error) -> String {
    format!("{what}: {}", berth_sys::errno_text(&e))
}

// ---- devices cgroup (shim) ----------------------------------------------------------

/// Writes the plan's device rules into the container's cgroup (v1 `devices.deny` /
/// `devices.allow`). Called by the shim right after the cgroup is created, before the
/// init exists. On v2 it does nothing (an eBPF program would be needed).
pub fn apply_devices(cg: &Cgroup, spec: &SecuritySpec) -> Result<(), RuntimeError> {
    if cg.version() != Version::V1 {
        return Ok(());
    }
    let dir = cg.dir("devices");
    if !dir.is_dir() {
        return Ok(());
    }
    let p = plan_with(spec, FALLBACK_LAST_CAP, false).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
    for r in &p.devices {
        let file = dir.join(if r.allow { "devices.allow" } else { "devices.deny" });
        std::fs::write(&file, r.line()).map_err(|e| RuntimeError::io("write", file, e))?;
    }
    Ok(())
}

// ---- rootfs (init, before and after pivot_root) -------------------------------------

/// Before pivot_root, with the host's /dev still visible: a privileged container gets
/// a node for every host device (Docker's `HostDevices`), created with the host's
/// mode and owner. `merged` is the container's root as seen from the host.
pub fn prepare_rootfs(spec: &SecuritySpec, merged: &Path) -> Result<(), String> {
    if !spec.privileged {
        return Ok(());
    }
    copy_host_devices(Path::new("/dev"), &merged.join("dev"))
}

/// Directories of /dev that are the container's own or not device nodes.
const SKIP_DEV: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", "lxc", ".udev", "console", "ptmx"];

fn copy_host_devices(host: &Path, dst: &Path) -> Result<(), String> {
    let rd = std::fs::read_dir(host).map_err(|e| ctx(format_args!("read {}", host.display()), e))?;
    for ent in rd.flatten() {
        let name = ent.file_name();
        if host == Path::new("/dev") && SKIP_DEV.iter().any(|s| name == *s) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(ent.path()) else { continue };
        let ft = meta.file_type();
        let target = dst.join(&name);
        if ft.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| ctx(format_args!("mkdir {}", target.display()), e))?;
            copy_host_devices(&ent.path(), &target)?;
        } else if (ft.is_char_device() || ft.is_block_device()) && std::fs::symlink_metadata(&target).is_err() {
            let rdev = meta.rdev();
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            let kind = if ft.is_char_device() { libc::S_IFCHR } else { libc::S_IFBLK };
            mknod(&target, kind | (meta.mode() & 0o7777), major, minor)
                .map_err(|e| ctx(format_args!("mknod {}", target.display()), e))?;
            std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| ctx(format_args!("chown {}", target.display()), e))?;
        }
    }
    Ok(())
}

/// After pivot_root (paths are the container's): masks and read-only paths, or for a
/// privileged container a read-write /sys. Called by the init; errors are fatal.
pub fn prepare(spec: &RunSpec) -> Result<(), String> {
    let p = plan_with(&spec.security, FALLBACK_LAST_CAP, false).map_err(|e| e.to_string())?;
    if p.privileged {
        let flags = libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        return mount(None, Path::new("/sys"), None, flags, None).map_err(|e| ctx("remount /sys read-write", e));
    }
    for m in plan_masks(&p.masked, |path| std::fs::metadata(path).ok().map(|m| m.is_dir())) {
        match &m {
            Mask::NullBind(path) => mount(Some(Path::new("/dev/null")), Path::new(path), None, libc::MS_BIND, None),
            Mask::EmptyTmpfs(path) => mount(Some(Path::new("tmpfs")), Path::new(path), Some("tmpfs"), libc::MS_RDONLY, None),
        }
        .map_err(|e| ctx(format_args!("mask {m:?}"), e))?;
    }
    for path in &p.readonly {
        readonly_path(Path::new(path))?;
    }
    Ok(())
}

/// Which masks to mount: missing paths are skipped; `is_dir(path)` is `None` when the
/// path does not exist.
pub fn plan_masks(paths: &[String], is_dir: impl Fn(&str) -> Option<bool>) -> Vec<Mask> {
    paths
        .iter()
        .filter_map(|p| match is_dir(p)? {
            true => Some(Mask::EmptyTmpfs(p.clone())),
            false => Some(Mask::NullBind(p.clone())),
        })
        .collect()
}

fn readonly_path(path: &Path) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None).map_err(|e| ctx(format_args!("bind {}", path.display()), e))?;
    let keep = sys::mount_flags(path).unwrap_or(0);
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep;
    mount(None, path, None, flags, None).map_err(|e| ctx(format_args!("remount {} read-only", path.display()), e))
}

// ---- credentials, capabilities, seccomp (last before execve) ------------------------

/// The init's last step before execve: switches to `user` and applies the plan, in
/// runc's order —
/// 1. keep-caps on (so a setuid away from root keeps the permitted set);
/// 2. without no_new_privs the seccomp filter is loaded now, while CAP_SYS_ADMIN is
///    still held (loading it later would need no_new_privs, which Docker only sets
///    when asked); the profile allows every call that follows;
/// 3. the bounding set is reduced (needs CAP_SETPCAP);
/// 4. groups, gid, uid;
/// 5. keep-caps off, capset(effective, permitted, inheritable), ambient cleared;
/// 6. no_new_privs and, with it, the seccomp filter as late as possible.
///
/// Capabilities this process does not hold itself (a berthd without some capability)
/// are left out rather than failing the start.
pub fn apply(spec: &SecuritySpec, user: &ExecUser) -> Result<(), String> {
    apply_inner(spec, false, user)
}

/// [`apply`] for `docker exec`: the container's security, plus all capabilities with
/// `docker exec --privileged` (the container's seccomp profile and no_new_privs stay,
/// as in Docker).
pub fn apply_exec(spec: &SecuritySpec, exec_privileged: bool, user: &ExecUser) -> Result<(), String> {
    apply_inner(spec, exec_privileged, user)
}

fn apply_inner(spec: &SecuritySpec, exec_privileged: bool, user: &ExecUser) -> Result<(), String> {
    let prepared = prepare_apply(spec, exec_privileged)?;
    apply_prepared(&prepared, user)
}

/// Everything [`apply`] computes before it changes the process: the capability sets
/// and the compiled seccomp filter. The init prepares this before it reports ready, so
/// the compile overlaps the shim's cgroup work instead of delaying the execve.
pub struct Prepared {
    caps: CapSets,
    held: u64,
    last: u32,
    no_new_privs: bool,
    filter: Option<Vec<berth_sys::security::BpfInsn>>,
}

pub fn prepare_apply(spec: &SecuritySpec, exec_privileged: bool) -> Result<Prepared, String> {
    let proc_root = Path::new("/proc");
    let last = last_cap(proc_root);
    let mut p = plan(spec, last).map_err(|e| e.to_string())?;
    let held = (0..=last).filter(|c| sys::cap_bounding_has(*c).unwrap_or(false)).fold(0u64, |m, c| m | (1u64 << c));
    if exec_privileged {
        let all = all_caps(last);
        p.caps = CapSets { bounding: all, effective: all, permitted: all, inheritable: 0, ambient: 0 };
    }
    let (_, permitted_now, _) = sys::capget().map_err(|e| ctx("capget", e))?;
    let avail = held & permitted_now;
    let c = CapSets {
        bounding: p.caps.bounding & avail,
        effective: p.caps.effective & avail,
        permitted: p.caps.permitted & avail,
        inheritable: p.caps.inheritable & avail,
        ambient: p.caps.ambient & avail,
    };
    let filter = match &p.seccomp {
        Some(profile) => {
            let names = cap_names(c.effective);
            let r = seccomp::resolve(profile, &names, seccomp::native_go_arch(), kernel_release(proc_root))
                .map_err(|e| e.to_string())?;
            Some(seccomp::compile(&r).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    Ok(Prepared { caps: c, held, last, no_new_privs: p.no_new_privs, filter })
}

/// Switches to `user` and applies what [`prepare_apply`] computed, in runc's order.
pub fn apply_prepared(pr: &Prepared, user: &ExecUser) -> Result<(), String> {
    let (c, held, last, filter) = (&pr.caps, pr.held, pr.last, &pr.filter);
    let load = |prog: &[berth_sys::security::BpfInsn]| sys::seccomp_set_filter(prog).map_err(|e| ctx("load seccomp filter", e));

    sys::set_keep_caps(true).map_err(|e| ctx("prctl(PR_SET_KEEPCAPS)", e))?;
    if let (Some(prog), false) = (filter, pr.no_new_privs) {
        load(prog)?;
    }
    for cap in 0..=last {
        if c.bounding & (1u64 << cap) == 0 && held & (1u64 << cap) != 0 {
            sys::cap_bounding_drop(cap).map_err(|e| ctx(format_args!("drop {} from the bounding set", CAP_NAMES.get(cap as usize).unwrap_or(&"?")), e))?;
        }
    }
    berth_sys::process::set_ids(user.uid, user.gid, &user.groups).map_err(|e| ctx("set user", e))?;
    sys::set_keep_caps(false).map_err(|e| ctx("prctl(PR_SET_KEEPCAPS)", e))?;
    sys::capset(c.effective, c.permitted, c.inheritable).map_err(|e| ctx("capset", e))?;
    sys::ambient_clear_all().map_err(|e| ctx("clear ambient capabilities", e))?;
    for cap in 0..=last {
        if c.ambient & (1u64 << cap) != 0 {
            sys::ambient_raise(cap).map_err(|e| ctx("raise ambient capability", e))?;
        }
    }
    if pr.no_new_privs {
        sys::set_no_new_privs().map_err(|e| ctx("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
        if let Some(prog) = filter {
            load(prog)?;
        }
    }
    Ok(())
}

/// Where a spec's profile file is read from, for callers holding a path
/// (`--security-opt seccomp=/path.json` on a CLI that sends paths).
pub fn read_profile(path: &Path) -> Result<SeccompMode, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io("read", PathBuf::from(path), e))?;
    Ok(SeccompMode::Profile(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(f: impl FnOnce(&mut SecuritySpec)) -> SecuritySpec {
        let mut s = SecuritySpec::default();
        f(&mut s);
        s
    }
    fn caps_of(s: &SecuritySpec) -> Result<u64, SecurityError> {
        effective_caps(s, 40)
    }
    fn bit(name: &str) -> u64 {
        1u64 << cap_number(name).unwrap()
    }
    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn capability_table() {
        const DOCKER_DEFAULT: u64 = 0xa804_25fb;
        const ALL_40: u64 = 0x1ff_ffff_ffff;
        let cases: Vec<(&str, SecuritySpec, Result<u64, SecurityError>)> = vec![
            ("default", spec(|_| {}), Ok(DOCKER_DEFAULT)),
            ("privileged", spec(|s| s.privileged = true), Ok(ALL_40)),
            ("privileged ignores drops", spec(|s| { s.privileged = true; s.cap_drop = strings(&["ALL"]) }), Ok(ALL_40)),
            ("drop two", spec(|s| s.cap_drop = strings(&["NET_RAW", "cap_chown"])), Ok(DOCKER_DEFAULT & !bit("CAP_NET_RAW") & !bit("CAP_CHOWN"))),
            ("add one", spec(|s| s.cap_add = strings(&["sys_admin"])), Ok(DOCKER_DEFAULT | bit("CAP_SYS_ADMIN"))),
            ("drop all add one", spec(|s| { s.cap_drop = strings(&["all"]); s.cap_add = strings(&["CAP_KILL"]) }), Ok(bit("CAP_KILL"))),
            ("add all drop one", spec(|s| { s.cap_add = strings(&["ALL"]); s.cap_drop = strings(&["MKNOD"]) }), Ok(ALL_40 & !bit("CAP_MKNOD"))),
            ("drop all", spec(|s| s.cap_drop = strings(&["ALL"])), Ok(0)),
            ("unknown", spec(|s| s.cap_add = strings(&["bogus"])), Err(SecurityError::UnknownCapability("CAP_BOGUS".into()))),
            ("unknown drop", spec(|s| s.cap_drop = strings(&["cap_nope"])), Err(SecurityError::UnknownCapability("CAP_NOPE".into()))),
        ];
        for (name, s, want) in cases {
            assert_eq!(caps_of(&s), want, "{name}");
        }
        // An older kernel (last cap 37) limits "all".
        assert_eq!(effective_caps(&spec(|s| s.privileged = true), 37).unwrap(), (1u64 << 38) - 1);
    }

    #[test]
    fn plan_table() {
        let p = plan(&SecuritySpec::default(), 40).unwrap();
        assert_eq!(p.caps, CapSets { bounding: 0xa80425fb, effective: 0xa80425fb, permitted: 0xa80425fb, inheritable: 0, ambient: 0 });
        assert!(p.seccomp.is_some() && !p.no_new_privs && !p.privileged);
        assert_eq!(p.masked.len(), 11);
        assert!(p.masked.contains(&"/proc/kcore".to_string()));
        assert_eq!(p.readonly, strings(DEFAULT_READONLY_PATHS));
        assert_eq!(p.devices[0].line(), "a *:* rwm");
        assert!(!p.devices[0].allow);
        let lines: Vec<String> = p.devices[1..].iter().map(DeviceRule::line).collect();
        assert_eq!(
            lines,
            [
                "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"
            ]
        );

        let p = plan(&spec(|s| s.privileged = true), 40).unwrap();
        assert!(p.privileged && p.seccomp.is_none() && p.masked.is_empty() && p.readonly.is_empty());
        assert_eq!(p.devices.len(), 1);
        assert!(p.devices[0].allow);
        assert_eq!(p.devices[0].line(), "a *:* rwm");

        let p = plan(&spec(|s| { s.seccomp = SeccompMode::Unconfined; s.no_new_privileges = true }), 40).unwrap();
        assert!(p.seccomp.is_none() && p.no_new_privs);

        let p = plan(&spec(|s| { s.masked_paths = Some(vec![]); s.readonly_paths = Some(strings(&["/x"])) }), 40).unwrap();
        assert!(p.masked.is_empty());
        assert_eq!(p.readonly, ["/x"]);

        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        let p = plan(&spec(|s| s.seccomp = SeccompMode::Profile(json.into())), 40).unwrap();
        assert_eq!(p.seccomp.unwrap().default_action, "SCMP_ACT_ALLOW");
        assert!(matches!(
            plan(&spec(|s| s.seccomp = SeccompMode::Profile("{".into())), 40),
            Err(SecurityError::Seccomp(seccomp::SeccompError::Parse(_)))
        ));
    }

    #[test]
    fn masks_by_file_type() {
        let paths = strings(&["/proc/kcore", "/proc/acpi", "/proc/missing"]);
        let m = plan_masks(&paths, |p| match p {
            "/proc/kcore" => Some(false),
            "/proc/acpi" => Some(true),
            _ => None,
        });
        assert_eq!(m, [Mask::NullBind("/proc/kcore".into()), Mask::EmptyTmpfs("/proc/acpi".into())]);
    }

    #[test]
    fn spec_json_shape() {
        let s: SecuritySpec = serde_json::from_str("{}").unwrap();
        assert_eq!(s, SecuritySpec::default());
        let s: SecuritySpec =
            serde_json::from_str(r#"{"privileged":true,"cap_drop":["ALL"],"seccomp":{"profile":"{}"}}"#).unwrap();
        assert!(s.privileged);
        assert_eq!(s.seccomp, SeccompMode::Profile("{}".into()));
        let s: SecuritySpec = serde_json::from_str(r#"{"seccomp":"unconfined"}"#).unwrap();
        assert_eq!(s.seccomp, SeccompMode::Unconfined);
    }

    #[test]
    fn validate_reports_docker_errors() {
        assert!(validate(&SecuritySpec::default()).is_ok());
        let e = validate(&spec(|s| s.cap_add = strings(&["foo"]))).unwrap_err();
        assert_eq!(e.to_string(), "unknown capability: \"CAP_FOO\"");
    }

    #[test]
    fn cap_names_roundtrip() {
        assert_eq!(cap_names(0xa80425fb).len(), 14);
        for c in DEFAULT_CAPS {
            assert!(cap_names(0xa80425fb).contains(c));
        }
        assert_eq!(cap_number("net_raw"), Some(13));
        assert_eq!(cap_number("CAP_CHECKPOINT_RESTORE"), Some(40));
    }
}
