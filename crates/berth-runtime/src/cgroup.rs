//! Container cgroups, v1 and v2 behind one interface. Every function takes the cgroup
//! root as a path (normally /sys/fs/cgroup) so tests run on temp dirs. Limits are
//! planned as plain data ([`plan_limits`]) and applied by [`Cgroup::apply`].
//!
//! v1: one hierarchy per controller, `<root>/<controller>/<parent>/<name>`.
//! v2: one hierarchy, `<root>/<parent>/<name>`, controllers enabled through the
//! ancestors' `cgroup.subtree_control`.

use crate::spec::CgroupSpec;
use crate::RuntimeError;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// v2 when `<root>/cgroup.controllers` exists (the root is a cgroup2 mount), else v1.
pub fn detect(root: &Path) -> Version {
    if root.join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

/// v1 hierarchies a container joins (when present under the root).
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "net_cls", "net_prio",
    "perf_event", "hugetlb", "systemd",
];

/// v2 controllers enabled for containers.
pub const V2_CONTROLLERS: &[&str] = &["cpuset", "cpu", "io", "memory", "pids"];

/// One planned write: `controller` names the v1 hierarchy ("" on v2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

fn w(controller: &'static str, file: &'static str, value: impl ToString) -> Write {
    Write { controller, file, value: value.to_string() }
}

/// Docker's cpu-shares → cgroup v2 cpu.weight conversion (as runc does).
pub fn shares_to_weight(shares: i64) -> i64 {
    if shares <= 0 {
        return 100;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// The limit writes for `spec`, in the order they must be applied.
pub fn plan_limits(version: Version, spec: &CgroupSpec) -> Vec<Write> {
    let mut out = Vec::new();
    match version {
        Version::V1 => {
            if let Some(m) = spec.memory.filter(|m| *m > 0) {
                out.push(w("memory", "memory.limit_in_bytes", m));
            }
            if let Some(s) = spec.memory_swap.filter(|s| *s != 0) {
                out.push(w("memory", "memory.memsw.limit_in_bytes", if s < 0 { -1 } else { s }));
            }
            if let Some(s) = spec.cpu_shares.filter(|s| *s > 0) {
                out.push(w("cpu", "cpu.shares", s));
            }
            if let Some(p) = spec.cpu_period.filter(|p| *p > 0) {
                out.push(w("cpu", "cpu.cfs_period_us", p));
            }
            if let Some(q) = spec.cpu_quota.filter(|q| *q != 0) {
                out.push(w("cpu", "cpu.cfs_quota_us", if q < 0 { -1 } else { q }));
            }
            if let Some(c) = spec.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
                out.push(w("cpuset", "cpuset.cpus", c));
            }
            if let Some(p) = spec.pids_limit.filter(|p| *p != 0) {
                out.push(w("pids", "pids.max", if p < 0 { "max".to_string() } else { p.to_string() }));
            }
        }
        Version::V2 => {
            if let Some(m) = spec.memory.filter(|m| *m > 0) {
                out.push(w("", "memory.max", m));
            }
            match (spec.memory, spec.memory_swap) {
                (_, Some(s)) if s < 0 => out.push(w("", "memory.swap.max", "max")),
                (Some(m), Some(s)) if m > 0 && s > 0 => out.push(w("", "memory.swap.max", (s - m).max(0))),
                _ => {}
            }
            if let Some(s) = spec.cpu_shares.filter(|s| *s > 0) {
                out.push(w("", "cpu.weight", shares_to_weight(s)));
            }
            let quota = spec.cpu_quota.filter(|q| *q != 0);
            let period = spec.cpu_period.filter(|p| *p > 0);
            if quota.is_some() || period.is_some() {
                let q = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                out.push(w("", "cpu.max", format!("{q} {}", period.unwrap_or(100_000))));
            }
            if let Some(c) = spec.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
                out.push(w("", "cpuset.cpus", c));
            }
            if let Some(p) = spec.pids_limit.filter(|p| *p != 0) {
                out.push(w("", "pids.max", if p < 0 { "max".to_string() } else { p.to_string() }));
            }
        }
    }
    out
}

/// What `docker stats` needs from a cgroup (Docker's `StatsJSON` minus the host
/// numbers and the network). Values a host does not expose read as 0 / empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// `cpu_usage.total_usage`, ns.
    pub total_ns: u64,
    /// `cpu_usage.usage_in_usermode`, ns.
    pub user_ns: u64,
    /// `cpu_usage.usage_in_kernelmode`, ns.
    pub system_ns: u64,
    /// `cpu_usage.percpu_usage`, ns per CPU (v1 only; v2 has no per-CPU numbers).
    pub percpu_ns: Vec<u64>,
    /// `throttling_data`.
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// `usage`: v1 memory.usage_in_bytes, v2 memory.current.
    pub usage: u64,
    /// `max_usage`: v1 memory.max_usage_in_bytes, v2 memory.peak (when present).
    pub max_usage: u64,
    pub failcnt: u64,
    /// `limit`: the cgroup's limit; `u64::MAX`-ish ("max" on v2, a page-rounded
    /// i64::MAX on v1) when unlimited — Docker then reports the host's memory
    /// ([`host_memory`]).
    pub limit: u64,
    /// `stats`: memory.stat verbatim (v1: cache, rss, total_inactive_file, ...;
    /// v2: anon, file, inactive_file, ...). The CLI subtracts total_inactive_file (v1)
    /// or inactive_file (v2) from usage.
    pub stats: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// 0 = unlimited, as in Docker's JSON.
    pub limit: u64,
}

/// One `blkio_stats` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// v1: the kernel's "Read"/"Write"/"Sync"/"Async"/"Discard"/"Total"; v2: "read"/
    /// "write" (as Docker reports them).
    pub op: String,
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlkioStats {
    /// `io_service_bytes_recursive`.
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// `io_serviced_recursive`.
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// Host CPU numbers for `docker stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCpu {
    /// `system_cpu_usage`: user+nice+system+idle+iowait+irq+softirq over all CPUs, ns
    /// (moby's `getSystemCPUUsage`).
    pub system_usage_ns: u64,
    /// `online_cpus`: the `cpuN` lines of /proc/stat.
    pub online_cpus: u32,
}

/// USER_HZ: /proc/stat and cpuacct.stat count in these ticks (100 on every Linux ABI
/// Docker supports; the kernel fixes it at 100 for userspace).
const CLOCK_TICKS: u64 = 100;

/// Parses /proc/stat (`proc` is the procfs root, normally /proc).
pub fn system_cpu_usage(proc: &Path) -> Result<HostCpu, RuntimeError> {
    let path = proc.join("stat");
    let text = std::fs::read_to_string(&path).map_err(|e| io_err("read", &path, e))?;
    parse_proc_stat(&text).ok_or_else(|| io_err("parse", &path, io::Error::from(io::ErrorKind::InvalidData)))
}

fn parse_proc_stat(text: &str) -> Option<HostCpu> {
    let mut out = HostCpu::default();
    let mut found = false;
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let ticks: u64 = f.take(7).map(|x| x.parse::<u64>().unwrap_or(0)).sum();
                out.system_usage_ns = ticks * (1_000_000_000 / CLOCK_TICKS);
                found = true;
            }
            Some(c) if c.starts_with("cpu") => out.online_cpus += 1,
            _ => {}
        }
    }
    found.then_some(out)
}

/// Total host memory in bytes (/proc/meminfo `MemTotal`), the `limit` Docker reports
/// for a container without a memory limit.
pub fn host_memory(proc: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc.join("meminfo")).ok()?;
    let kb: u64 = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// `key value` lines into a map.
fn flat_keyed(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// v1 blkio files: `MAJ:MIN Op value` lines (and a trailing `Total n`).
fn parse_v1_blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, v] = f.as_slice() else { return None };
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry { major: maj.parse().ok()?, minor: min.parse().ok()?, op: op.to_string(), value: v.parse().ok()? })
        })
        .collect()
}

/// v2 io.stat: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`.
fn parse_v2_io(text: &str) -> BlkioStats {
    let mut out = BlkioStats::default();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else { continue };
        let kv: std::collections::BTreeMap<&str, u64> =
            f.filter_map(|x| x.split_once('=')).filter_map(|(k, v)| Some((k, v.parse().ok()?))).collect();
        let e = |op: &str, key: &str| BlkioEntry { major, minor, op: op.into(), value: kv.get(key).copied().unwrap_or(0) };
        out.io_service_bytes_recursive.extend([e("read", "rbytes"), e("write", "wbytes")]);
        out.io_serviced_recursive.extend([e("read", "rios"), e("write", "wios")]);
    }
    out
}

/// One container's cgroup.
#[derive(Clone, Debug)]
pub struct Cgroup {
    version: Version,
    root: PathBuf,
    rel: PathBuf,
}

fn io_err(op: &'static str, path: &Path, e: io::Error) -> RuntimeError {
    RuntimeError::io(op, path, e)
}

fn write_file(path: &Path, value: &str) -> Result<(), RuntimeError> {
    std::fs::write(path, value).map_err(|e| io_err("write", path, e))
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Cgroup {
    /// `parent` may be nested ("berth" or "system.slice/berth").
    pub fn new(root: &Path, parent: &str, name: &str) -> Self {
        Cgroup { version: detect(root), root: root.to_path_buf(), rel: Path::new(parent).join(name) }
    }

    /// `None` when the spec's root is empty (cgroups disabled).
    pub fn from_spec(spec: &CgroupSpec) -> Option<Self> {
        if spec.root.as_os_str().is_empty() {
            return None;
        }
        let name = if spec.name.is_empty() { "container" } else { &spec.name };
        Some(Cgroup::new(&spec.root, &spec.parent, name))
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The path as it appears in /proc/<pid>/cgroup, e.g. `/berth/<id>`.
    pub fn rel_path(&self) -> PathBuf {
        Path::new("/").join(&self.rel)
    }

    /// The directory for a v1 controller (ignored on v2).
    pub fn dir(&self, controller: &str) -> PathBuf {
        match self.version {
            Version::V2 => self.root.join(&self.rel),
            Version::V1 => self.root.join(controller).join(&self.rel),
        }
    }

    fn v1_hierarchies(&self) -> impl Iterator<Item = &'static str> + '_ {
        V1_CONTROLLERS.iter().copied().filter(|c| self.root.join(c).is_dir())
    }

    /// Every directory of this cgroup (one per v1 hierarchy, or the single v2 one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self.version {
            Version::V2 => vec![self.root.join(&self.rel)],
            Version::V1 => self.v1_hierarchies().map(|c| self.dir(c)).collect(),
        }
    }

    /// Creates the cgroup (and its parents), preparing what the kernel needs before
    /// tasks can join: v1 cpuset.cpus/mems copied down, v2 controllers enabled.
    pub fn create(&self) -> Result<(), RuntimeError> {
        match self.version {
            Version::V1 => {
                for c in self.v1_hierarchies() {
                    let d = self.dir(c);
                    std::fs::create_dir_all(&d).map_err(|e| io_err("mkdir", &d, e))?;
                    if c == "cpuset" {
                        self.v1_cpuset_init()?;
                    }
                }
            }
            Version::V2 => {
                let mut cur = self.root.clone();
                for comp in self.rel.components() {
                    self.v2_enable(&cur);
                    cur.push(comp);
                    if !cur.is_dir() {
                        std::fs::create_dir(&cur).or_else(|e| {
                            if e.kind() == io::ErrorKind::AlreadyExists { Ok(()) } else { Err(io_err("mkdir", &cur, e)) }
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn v2_enable(&self, dir: &Path) {
        let avail = read_trim(&dir.join("cgroup.controllers")).unwrap_or_default();
        let enabled = read_trim(&dir.join("cgroup.subtree_control")).unwrap_or_default();
        for c in V2_CONTROLLERS {
            let has = |s: &str| s.split_whitespace().any(|x| x == *c);
            if has(&avail) && !has(&enabled) {
                // Best effort: a controller that cannot be enabled just is not limited.
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
    }

    // v1 cpuset: a new cpuset has empty cpus/mems and refuses tasks until they are set.
    fn v1_cpuset_init(&self) -> Result<(), RuntimeError> {
        let mut cur = self.root.join("cpuset");
        for comp in self.rel.components() {
            let parent = cur.clone();
            cur.push(comp);
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if read_trim(&cur.join(f)).unwrap_or_default().is_empty() {
                    if let Some(v) = read_trim(&parent.join(f)).filter(|v| !v.is_empty()) {
                        write_file(&cur.join(f), &v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the limits from `spec`. A missing memsw file (swap accounting disabled)
    /// is skipped, as Docker does with a warning.
    pub fn apply(&self, spec: &CgroupSpec) -> Result<(), RuntimeError> {
        for wr in plan_limits(self.version, spec) {
            let path = self.dir(wr.controller).join(wr.file);
            match std::fs::write(&path, &wr.value) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && wr.file.contains("swap") => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && wr.file.contains("memsw") => {}
                Err(e) => return Err(io_err("write", &path, e)),
            }
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup (every v1 hierarchy).
    pub fn add_pid(&self, pid: i32) -> Result<(), RuntimeError> {
        let s = pid.to_string();
        for d in self.dirs() {
            write_file(&d.join("cgroup.procs"), &s)?;
        }
        Ok(())
    }

    /// Removes the (empty) cgroup directories; missing ones are fine.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        let mut first = None;
        for d in self.dirs() {
            if let Err(e) = std::fs::remove_dir(&d) {
                if e.kind() != io::ErrorKind::NotFound && first.is_none() {
                    first = Some(io_err("rmdir", &d, e));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Freezes every task (docker pause) and waits until the kernel reports the
    /// cgroup frozen: v1 `freezer.state` goes FREEZING → FROZEN (the write is repeated
    /// while FREEZING, as runc does), v2 `cgroup.events` says `frozen 1`. Gives up
    /// (thawing again) after ~5 s.
    pub fn freeze(&self) -> Result<(), RuntimeError> {
        let (path, value) = self.freeze_file(true);
        write_file(&path, value)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut sleep = std::time::Duration::from_micros(100);
        loop {
            if self.is_frozen() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.thaw();
                return Err(io_err("freeze", &path, io::Error::from(io::ErrorKind::TimedOut)));
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(std::time::Duration::from_millis(10));
            if self.version == Version::V1 {
                write_file(&path, value)?;
            }
        }
    }

    /// Thaws (docker unpause).
    pub fn thaw(&self) -> Result<(), RuntimeError> {
        let (path, value) = self.freeze_file(false);
        write_file(&path, value)
    }

    fn freeze_file(&self, freeze: bool) -> (PathBuf, &'static str) {
        match self.version {
            Version::V1 => (self.dir("freezer").join("freezer.state"), if freeze { "FROZEN" } else { "THAWED" }),
            Version::V2 => (self.dir("").join("cgroup.freeze"), if freeze { "1" } else { "0" }),
        }
    }

    /// Whether the cgroup is (completely) frozen.
    pub fn is_frozen(&self) -> bool {
        match self.version {
            Version::V1 => read_trim(&self.dir("freezer").join("freezer.state")).as_deref() == Some("FROZEN"),
            Version::V2 => {
                let events = std::fs::read_to_string(self.dir("").join("cgroup.events")).unwrap_or_default();
                keyed(&events, "frozen") == Some(1)
            }
        }
    }

    /// Whether the kernel OOM killer killed a task in this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (path, key) = match self.version {
            Version::V1 => (self.dir("memory").join("memory.oom_control"), "oom_kill"),
            Version::V2 => (self.dir("").join("memory.events"), "oom_kill"),
        };
        std::fs::read_to_string(path).ok().and_then(|t| keyed(&t, key)).unwrap_or(0) > 0
    }

    /// Current usage for `docker stats`.
    pub fn stats(&self) -> Stats {
        let text = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let num = |p: PathBuf| read_trim(&p).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        // "max" (unlimited) → 0 for pids, u64::MAX for memory.
        let limit = |p: PathBuf, unlimited: u64| match read_trim(&p).as_deref() {
            Some("max") => unlimited,
            Some(v) => v.parse().unwrap_or(0),
            None => 0,
        };
        match self.version {
            Version::V1 => {
                let acct = self.dir("cpuacct");
                let ticks = flat_keyed(&text(acct.join("cpuacct.stat")));
                let ns = |k: &str| ticks.get(k).copied().unwrap_or(0) * (1_000_000_000 / CLOCK_TICKS);
                let throttle = flat_keyed(&text(self.dir("cpu").join("cpu.stat")));
                let t = |k: &str| throttle.get(k).copied().unwrap_or(0);
                let mem = self.dir("memory");
                let blk = self.dir("blkio");
                // CFQ/BFQ files first; without such a scheduler the throttle files.
                let blkio = |names: [&str; 2]| {
                    let mut v = Vec::new();
                    for n in names {
                        v = parse_v1_blkio(&text(blk.join(n)));
                        if !v.is_empty() {
                            break;
                        }
                    }
                    v
                };
                Stats {
                    cpu: CpuStats {
                        total_ns: num(acct.join("cpuacct.usage")),
                        user_ns: ns("user"),
                        system_ns: ns("system"),
                        percpu_ns: text(acct.join("cpuacct.usage_percpu")).split_whitespace().filter_map(|x| x.parse().ok()).collect(),
                        periods: t("nr_periods"),
                        throttled_periods: t("nr_throttled"),
                        throttled_ns: t("throttled_time"),
                    },
                    memory: MemoryStats {
                        usage: num(mem.join("memory.usage_in_bytes")),
                        max_usage: num(mem.join("memory.max_usage_in_bytes")),
                        failcnt: num(mem.join("memory.failcnt")),
                        limit: num(mem.join("memory.limit_in_bytes")),
                        stats: flat_keyed(&text(mem.join("memory.stat"))),
                    },
                    pids: PidsStats {
                        current: num(self.dir("pids").join("pids.current")),
                        limit: limit(self.dir("pids").join("pids.max"), 0),
                    },
                    blkio: BlkioStats {
                        io_service_bytes_recursive: blkio([
                            "blkio.io_service_bytes_recursive",
                            "blkio.throttle.io_service_bytes_recursive",
                        ]),
                        io_serviced_recursive: blkio(["blkio.io_serviced_recursive", "blkio.throttle.io_serviced_recursive"]),
                    },
                }
            }
            Version::V2 => {
                let d = self.dir("");
                let cpu = flat_keyed(&text(d.join("cpu.stat")));
                let us = |k: &str| cpu.get(k).copied().unwrap_or(0);
                Stats {
                    cpu: CpuStats {
                        total_ns: us("usage_usec") * 1000,
                        user_ns: us("user_usec") * 1000,
                        system_ns: us("system_usec") * 1000,
                        percpu_ns: Vec::new(),
                        periods: us("nr_periods"),
                        throttled_periods: us("nr_throttled"),
                        throttled_ns: us("throttled_usec") * 1000,
                    },
                    memory: MemoryStats {
                        usage: num(d.join("memory.current")),
                        max_usage: num(d.join("memory.peak")),
                        failcnt: 0,
                        limit: limit(d.join("memory.max"), u64::MAX),
                        stats: flat_keyed(&text(d.join("memory.stat"))),
                    },
                    pids: PidsStats { current: num(d.join("pids.current")), limit: limit(d.join("pids.max"), 0) },
                    blkio: parse_v2_io(&text(d.join("io.stat"))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CgroupSpec {
        CgroupSpec {
            root: PathBuf::new(),
            parent: "berth".into(),
            name: "abc".into(),
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(100),
        }
    }

    #[test]
    fn plans_v1() {
        let p = plan_limits(Version::V1, &spec());
        let got: Vec<(&str, &str, &str)> = p.iter().map(|w| (w.controller, w.file, w.value.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("memory", "memory.limit_in_bytes", "67108864"),
                ("memory", "memory.memsw.limit_in_bytes", "134217728"),
                ("cpu", "cpu.shares", "512"),
                ("cpu", "cpu.cfs_period_us", "100000"),
                ("cpu", "cpu.cfs_quota_us", "50000"),
                ("cpuset", "cpuset.cpus", "0"),
                ("pids", "pids.max", "100"),
            ]
        );
        let unl = CgroupSpec { memory_swap: Some(-1), pids_limit: Some(-1), ..Default::default() };
        let got: Vec<String> = plan_limits(Version::V1, &unl).into_iter().map(|w| w.value).collect();
        assert_eq!(got, vec!["-1", "max"]);
        assert!(plan_limits(Version::V1, &CgroupSpec::default()).is_empty());
    }

    #[test]
    fn plans_v2() {
        let p = plan_limits(Version::V2, &spec());
        let got: Vec<(&str, &str)> = p.iter().map(|w| (w.file, w.value.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("memory.max", "67108864"),
                ("memory.swap.max", "67108864"),
                ("cpu.weight", "20"),
                ("cpu.max", "50000 100000"),
                ("cpuset.cpus", "0"),
                ("pids.max", "100"),
            ]
        );
        let only_period = CgroupSpec { cpu_period: Some(50_000), memory_swap: Some(-1), ..Default::default() };
        let got: Vec<String> = plan_limits(Version::V2, &only_period).into_iter().map(|w| w.value).collect();
        assert_eq!(got, vec!["max", "max 50000"]);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn v1_on_temp_root() {
        let t = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu", "cpuset", "pids"] {
            std::fs::create_dir(t.path().join(c)).unwrap();
        }
        std::fs::write(t.path().join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(t.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
        let cg = Cgroup::new(t.path(), "berth", "abc");
        assert_eq!(cg.version(), Version::V1);
        assert_eq!(cg.dirs().len(), 4);
        cg.create().unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("cpuset/berth/cpuset.cpus")).unwrap(), "0-1");
        assert_eq!(std::fs::read_to_string(t.path().join("cpuset/berth/abc/cpuset.mems")).unwrap(), "0");
        cg.apply(&CgroupSpec { memory: Some(1000), pids_limit: Some(5), ..Default::default() }).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("memory/berth/abc/memory.limit_in_bytes")).unwrap(), "1000");
        assert_eq!(std::fs::read_to_string(t.path().join("pids/berth/abc/pids.max")).unwrap(), "5");
        cg.add_pid(42).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("cpu/berth/abc/cgroup.procs")).unwrap(), "42");
        std::fs::write(t.path().join("memory/berth/abc/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
        assert!(cg.oom_killed());
        assert_eq!(cg.rel_path(), Path::new("/berth/abc"));
    }

    #[test]
    fn v2_on_temp_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n").unwrap();
        std::fs::write(t.path().join("cgroup.subtree_control"), "memory\n").unwrap();
        let cg = Cgroup::new(t.path(), "berth", "abc");
        assert_eq!(cg.version(), Version::V2);
        cg.create().unwrap();
        assert!(t.path().join("berth/abc").is_dir());
        // On a plain dir each "+c" write replaces the file; the last enabled wins.
        assert_eq!(std::fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(), "+pids");
        cg.apply(&CgroupSpec { cpu_quota: Some(20_000), ..Default::default() }).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("berth/abc/cpu.max")).unwrap(), "20000 100000");
        assert!(!cg.oom_killed());
        std::fs::write(t.path().join("berth/abc/memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n").unwrap();
        assert!(cg.oom_killed());
        std::fs::write(t.path().join("berth/abc/cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        cg.freeze().unwrap();
        assert!(cg.is_frozen());
        assert_eq!(std::fs::read_to_string(t.path().join("berth/abc/cgroup.freeze")).unwrap(), "1");
        for f in ["cpu.max", "memory.events", "cgroup.freeze", "cgroup.events"] {
            std::fs::remove_file(t.path().join("berth/abc").join(f)).unwrap();
        }
        cg.remove().unwrap();
        assert!(!t.path().join("berth/abc").exists());
    }

    #[test]
    fn stats_on_a_fake_v2_tree() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        let d = t.path().join("berth/abc");
        std::fs::create_dir_all(&d).unwrap();
        let files = [
            ("cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n"),
            ("memory.current", "1048576\n"),
            ("memory.peak", "2097152\n"),
            ("memory.max", "max\n"),
            ("memory.stat", "anon 4096\nfile 8192\ninactive_file 4096\n"),
            ("pids.current", "3\n"),
            ("pids.max", "100\n"),
            ("io.stat", "8:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n"),
        ];
        for (f, v) in files {
            std::fs::write(d.join(f), v).unwrap();
        }
        let s = Cgroup::new(t.path(), "berth", "abc").stats();
        assert_eq!(
            s.cpu,
            CpuStats { total_ns: 2_500_000, user_ns: 2_000_000, system_ns: 500_000, percpu_ns: vec![], periods: 10, throttled_periods: 2, throttled_ns: 30_000 }
        );
        assert_eq!((s.memory.usage, s.memory.max_usage, s.memory.limit), (1 << 20, 2 << 20, u64::MAX));
        assert_eq!(s.memory.stats.get("inactive_file"), Some(&4096));
        assert_eq!(s.pids, PidsStats { current: 3, limit: 100 });
        let e = |op: &str, value| BlkioEntry { major: 8, minor: 0, op: op.into(), value };
        assert_eq!(s.blkio.io_service_bytes_recursive, [e("read", 1024), e("write", 2048)]);
        assert_eq!(s.blkio.io_serviced_recursive, [e("read", 1), e("write", 2)]);
        std::fs::write(d.join("pids.max"), "max\n").unwrap();
        assert_eq!(Cgroup::new(t.path(), "berth", "abc").stats().pids.limit, 0);
    }

    #[test]
    fn stats_on_a_fake_v1_tree() {
        let t = tempfile::tempdir().unwrap();
        for c in ["cpu", "cpuacct", "memory", "pids", "blkio"] {
            std::fs::create_dir_all(t.path().join(c).join("berth/abc")).unwrap();
        }
        let w = |c: &str, f: &str, v: &str| std::fs::write(t.path().join(c).join("berth/abc").join(f), v).unwrap();
        w("cpuacct", "cpuacct.usage", "123456789\n");
        w("cpuacct", "cpuacct.usage_percpu", "100000000 23456789 \n");
        w("cpuacct", "cpuacct.stat", "user 7\nsystem 3\n");
        w("cpu", "cpu.stat", "nr_periods 5\nnr_throttled 1\nthrottled_time 999\n");
        w("memory", "memory.usage_in_bytes", "4096\n");
        w("memory", "memory.max_usage_in_bytes", "8192\n");
        w("memory", "memory.limit_in_bytes", "67108864\n");
        w("memory", "memory.failcnt", "2\n");
        w("memory", "memory.stat", "cache 100\nrss 200\ntotal_inactive_file 50\n");
        w("pids", "pids.current", "2\n");
        w("pids", "pids.max", "max\n");
        w("blkio", "blkio.io_service_bytes_recursive", "");
        w("blkio", "blkio.throttle.io_service_bytes_recursive", "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n");
        let s = Cgroup::new(t.path(), "berth", "abc").stats();
        assert_eq!(s.cpu.total_ns, 123_456_789);
        assert_eq!(s.cpu.percpu_ns, [100_000_000, 23_456_789]);
        assert_eq!((s.cpu.user_ns, s.cpu.system_ns), (70_000_000, 30_000_000));
        assert_eq!((s.cpu.periods, s.cpu.throttled_periods, s.cpu.throttled_ns), (5, 1, 999));
        assert_eq!((s.memory.usage, s.memory.max_usage, s.memory.limit, s.memory.failcnt), (4096, 8192, 64 << 20, 2));
        assert_eq!(s.memory.stats.get("total_inactive_file"), Some(&50));
        assert_eq!(s.pids, PidsStats { current: 2, limit: 0 });
        let ops: Vec<(&str, u64)> = s.blkio.io_service_bytes_recursive.iter().map(|e| (e.op.as_str(), e.value)).collect();
        assert_eq!(ops, [("Read", 4096), ("Write", 512), ("Total", 4608)]);
    }

    #[test]
    fn host_numbers() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("stat"),
            "cpu  100 5 50 1000 10 1 2 7 0 0\ncpu0 50 2 25 500 5 1 1 3 0 0\ncpu1 50 3 25 500 5 0 1 4 0 0\nintr 1\n",
        )
        .unwrap();
        std::fs::write(t.path().join("meminfo"), "MemTotal:       24684212 kB\nMemFree: 1 kB\n").unwrap();
        let h = system_cpu_usage(t.path()).unwrap();
        assert_eq!(h, HostCpu { system_usage_ns: 1168 * 10_000_000, online_cpus: 2 });
        assert_eq!(host_memory(t.path()), Some(24_684_212 * 1024));
        let real = system_cpu_usage(Path::new("/proc")).unwrap();
        assert!(real.system_usage_ns > 0 && real.online_cpus >= 1);
    }
}
