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

/// Usage numbers for `docker stats` (fields absent on a host read as 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub pids: u64,
    pub cpu_usage_ns: u64,
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

    /// Freezes every task (docker pause).
    pub fn freeze(&self) -> Result<(), RuntimeError> {
        match self.version {
            Version::V1 => write_file(&self.dir("freezer").join("freezer.state"), "FROZEN"),
            Version::V2 => write_file(&self.dir("").join("cgroup.freeze"), "1"),
        }
    }

    /// Thaws (docker unpause).
    pub fn thaw(&self) -> Result<(), RuntimeError> {
        match self.version {
            Version::V1 => write_file(&self.dir("freezer").join("freezer.state"), "THAWED"),
            Version::V2 => write_file(&self.dir("").join("cgroup.freeze"), "0"),
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

    pub fn stats(&self) -> Stats {
        let num = |p: PathBuf| read_trim(&p).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        match self.version {
            Version::V1 => Stats {
                memory_usage: num(self.dir("memory").join("memory.usage_in_bytes")),
                memory_limit: num(self.dir("memory").join("memory.limit_in_bytes")),
                pids: num(self.dir("pids").join("pids.current")),
                cpu_usage_ns: num(self.dir("cpuacct").join("cpuacct.usage")),
            },
            Version::V2 => {
                let d = self.dir("");
                let cpu = std::fs::read_to_string(d.join("cpu.stat")).ok().and_then(|t| keyed(&t, "usage_usec"));
                Stats {
                    memory_usage: num(d.join("memory.current")),
                    memory_limit: num(d.join("memory.max")),
                    pids: num(d.join("pids.current")),
                    cpu_usage_ns: cpu.unwrap_or(0) * 1000,
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
        cg.freeze().unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("berth/abc/cgroup.freeze")).unwrap(), "1");
        for f in ["cpu.max", "memory.events", "cgroup.freeze"] {
            std::fs::remove_file(t.path().join("berth/abc").join(f)).unwrap();
        }
        cg.remove().unwrap();
        assert!(!t.path().join("berth/abc").exists());
    }
}
