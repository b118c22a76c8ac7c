//! Lifecycle operations on running containers that work through the container's
//! cgroup rather than the shim: pause/unpause (freezer), top, stats, update; and the
//! restart-policy decisions taken when a container exits.

use std::time::Duration;

use berth_api::{HostConfig, TopResponse};
use berth_runtime::cgroup::Cgroup;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::record::{Container, Record};
use crate::state::Status;
use crate::{timefmt, Engine};

/// Docker's restart manager: 100 ms doubling up to a minute; a run of 10 s resets it.
pub const BACKOFF_START_MS: u64 = 100;
pub const BACKOFF_MAX_MS: u64 = 60_000;
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// Whether a container that just exited with `code` restarts under its policy.
pub fn should_restart(rec: &Record, code: i64) -> bool {
    if rec.manually_stopped {
        return false;
    }
    let p = &rec.host_config.restart_policy;
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => code != 0 && (p.maximum_retry_count <= 0 || rec.restart_count < p.maximum_retry_count),
        _ => false,
    }
}

/// Validates a restart policy as Docker does.
pub fn validate_restart_policy(hc: &HostConfig) -> Result<()> {
    let p = &hc.restart_policy;
    match p.name.as_str() {
        "" | "no" | "always" | "unless-stopped" => {
            if p.maximum_retry_count != 0 {
                return Err(Error::invalid("invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string()));
            }
        }
        "on-failure" => {
            if p.maximum_retry_count < 0 {
                return Err(Error::invalid("invalid restart policy: maximum retry count cannot be negative"));
            }
        }
        other => return Err(Error::invalid(format!("invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"))),
    }
    if hc.auto_remove && !matches!(p.name.as_str(), "" | "no") {
        return Err(Error::invalid("can't create 'AutoRemove' container with restart policy"));
    }
    Ok(())
}

/// Next back-off delay after a run that lasted `ran`.
pub fn next_backoff(previous_ms: u64, ran: Duration) -> u64 {
    if ran >= BACKOFF_RESET_AFTER || previous_ms == 0 {
        BACKOFF_START_MS
    } else {
        (previous_ms * 2).min(BACKOFF_MAX_MS)
    }
}

impl Engine {
    pub(crate) fn cgroup_of(&self, id: &str) -> Option<Cgroup> {
        let root = &self.inner.cfg.cgroup_root;
        if root.as_os_str().is_empty() {
            return None;
        }
        Some(Cgroup::new(root, &self.inner.cfg.cgroup_parent, id))
    }

    fn running_or_conflict(&self, c: &Container) -> Result<Record> {
        let r = c.record();
        if !r.state.status.is_running() {
            return Err(Error::conflict(format!("Container {} is not running", r.id)));
        }
        Ok(r)
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, name_or_id: &str) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let _op = self.op_lock(&c, name_or_id).await?;
        let r = self.running_or_conflict(&c)?;
        if !r.state.status.can_pause() {
            return Err(Error::conflict(format!("Container {} is already paused", r.id)));
        }
        let cg = self.cgroup_of(&r.id).ok_or_else(|| Error::invalid("pause needs cgroups"))?;
        tokio::task::spawn_blocking(move || cg.freeze())
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)?;
        let health_closed = self.health_close(&c);
        let rec = c.update_state(&self.container_dir(&r.id), |r| {
            r.state.status = Status::Paused;
            if health_closed {
                crate::health::mark_closed(&mut r.state.health);
            }
        })?;
        self.container_event(&rec, "pause", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, name_or_id: &str) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let _op = self.op_lock(&c, name_or_id).await?;
        let r = c.record();
        if !r.state.status.can_unpause() {
            return Err(Error::conflict(format!("Container {} is not paused", r.id)));
        }
        let cg = self.cgroup_of(&r.id).ok_or_else(|| Error::invalid("unpause needs cgroups"))?;
        tokio::task::spawn_blocking(move || cg.thaw())
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)?;
        let rec = c.update_state(&self.container_dir(&r.id), |r| {
            r.state.status = Status::Running;
        })?;
        self.container_event(&rec, "unpause", &[]);
        self.health_update(&c);
        Ok(())
    }

    /// Pids of every process in the container's cgroup.
    fn container_pids(&self, id: &str) -> Vec<i32> {
        let Some(cg) = self.cgroup_of(id) else { return Vec::new() };
        let dirs = cg.dirs();
        let dir = dirs
            .iter()
            .find(|d| d.to_string_lossy().contains("/pids/"))
            .or_else(|| dirs.first());
        dir.and_then(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// `GET /containers/{id}/top?ps_args=`: the host's `ps`, filtered to the container.
    pub async fn top(&self, name_or_id: &str, ps_args: &str) -> Result<TopResponse> {
        let c = self.lookup(name_or_id)?;
        let r = self.running_or_conflict(&c)?;
        let pids = self.container_pids(&r.id);
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.split_whitespace().map(str::to_owned).collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| Error::internal(format!("Error running ps: {e}")))?;
        if !out.status.success() {
            return Err(Error::internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// One `docker stats` sample in Docker's JSON shape; `pre` is the previous sample
    /// (its cpu_stats become precpu_stats).
    pub fn stats_sample(&self, name_or_id: &str, pre: Option<&Value>) -> Result<Value> {
        let c = self.lookup(name_or_id)?;
        let r = c.record();
        let now = timefmt::now();
        let ncpu = crate::host_cpus();
        let (cpu, mem, pids, blkio) = if r.state.status.is_running() {
            let s = self.cgroup_of(&r.id).map(|cg| cg.stats()).unwrap_or_default();
            let proc_root = std::path::Path::new("/proc");
            let host = berth_runtime::cgroup::system_cpu_usage(proc_root).unwrap_or_default();
            let host_mem = berth_runtime::cgroup::host_memory(proc_root).unwrap_or(u64::MAX);
            let entries = |v: &[berth_runtime::cgroup::BlkioEntry]| -> Vec<Value> {
                v.iter().map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value})).collect()
            };
            (
                json!({
                    "cpu_usage": {
                        "total_usage": s.cpu.total_ns,
                        "percpu_usage": if s.cpu.percpu_ns.is_empty() { Value::Null } else { json!(s.cpu.percpu_ns) },
                        "usage_in_kernelmode": s.cpu.system_ns,
                        "usage_in_usermode": s.cpu.user_ns,
                    },
                    "system_cpu_usage": host.system_usage_ns,
                    "online_cpus": if host.online_cpus > 0 { host.online_cpus as usize } else { ncpu },
                    "throttling_data": {
                        "periods": s.cpu.periods,
                        "throttled_periods": s.cpu.throttled_periods,
                        "throttled_time": s.cpu.throttled_ns,
                    },
                }),
                json!({
                    "usage": s.memory.usage,
                    "max_usage": s.memory.max_usage,
                    "failcnt": s.memory.failcnt,
                    "limit": s.memory.limit.min(host_mem),
                    "stats": s.memory.stats,
                }),
                json!({"current": s.pids.current, "limit": s.pids.limit}),
                json!({
                    "io_service_bytes_recursive": entries(&s.blkio.io_service_bytes_recursive),
                    "io_serviced_recursive": entries(&s.blkio.io_serviced_recursive),
                }),
            )
        } else {
            (
                json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}}),
                json!({}),
                json!({}),
                json!({"io_service_bytes_recursive": null}),
            )
        };
        let (preread, precpu) = match pre {
            Some(p) => (p["read"].clone(), p["cpu_stats"].clone()),
            None => (json!(berth_api::ZERO_TIME), json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}})),
        };
        Ok(json!({
            "read": now,
            "preread": preread,
            "pids_stats": pids,
            "blkio_stats": blkio,
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu,
            "precpu_stats": precpu,
            "memory_stats": mem,
            "name": format!("/{}", r.name),
            "id": r.id,
            "networks": {},
        }))
    }

    /// `POST /containers/{id}/update`: new limits applied to the live cgroup and kept.
    pub async fn update(&self, name_or_id: &str, upd: HostConfig) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        let _op = self.op_lock(&c, name_or_id).await?;
        let r = c.record();
        // An empty name (no policy in the update) is valid and keeps the container's.
        validate_restart_policy(&HostConfig { restart_policy: upd.restart_policy.clone(), ..Default::default() })?;
        let rec = c.update(&self.container_dir(&r.id), |rec| {
            let hc = &mut rec.host_config;
            if upd.memory != 0 {
                hc.memory = upd.memory;
            }
            if upd.memory_swap != 0 {
                hc.memory_swap = upd.memory_swap;
            }
            if upd.cpu_shares != 0 {
                hc.cpu_shares = upd.cpu_shares;
            }
            if upd.nano_cpus != 0 {
                hc.nano_cpus = upd.nano_cpus;
            }
            if upd.cpu_quota != 0 {
                hc.cpu_quota = upd.cpu_quota;
            }
            if upd.cpu_period != 0 {
                hc.cpu_period = upd.cpu_period;
            }
            if !upd.cpuset_cpus.is_empty() {
                hc.cpuset_cpus = upd.cpuset_cpus.clone();
            }
            if upd.pids_limit.is_some() {
                hc.pids_limit = upd.pids_limit;
            }
            if !upd.restart_policy.name.is_empty() {
                hc.restart_policy = upd.restart_policy.clone();
            }
        })?;
        if rec.state.status.is_running() {
            if let Some(cg) = self.cgroup_of(&rec.id) {
                let spec = self.cgroup_spec(&rec);
                tokio::task::spawn_blocking(move || cg.apply(&spec))
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?
                    .map_err(Error::from)?;
            }
        }
        self.container_event(&rec, "update", &[]);
        Ok(())
    }
}

/// Keeps the header and the rows whose PID column is one of `pids`.
pub fn parse_ps(out: &str, pids: &[i32]) -> Result<TopResponse> {
    let mut lines = out.lines();
    let header = lines.next().ok_or_else(|| Error::internal("ps printed nothing"))?;
    let titles: Vec<String> = header.split_whitespace().map(str::to_owned).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::internal("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else { continue };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1].iter().map(|s| s.to_string()).collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(TopResponse { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::RestartPolicy;

    fn rec(policy: &str, max: i64, count: i64) -> Record {
        let mut r = Record::default();
        r.host_config.restart_policy = RestartPolicy { name: policy.into(), maximum_retry_count: max };
        r.restart_count = count;
        r
    }

    #[test]
    fn restart_policies() {
        assert!(!should_restart(&rec("no", 0, 0), 1));
        assert!(should_restart(&rec("always", 0, 0), 0));
        assert!(should_restart(&rec("unless-stopped", 0, 5), 0));
        assert!(!should_restart(&rec("on-failure", 0, 0), 0));
        assert!(should_restart(&rec("on-failure", 0, 9), 1));
        assert!(should_restart(&rec("on-failure", 3, 2), 1));
        assert!(!should_restart(&rec("on-failure", 3, 3), 1));
        let mut stopped = rec("always", 0, 0);
        stopped.manually_stopped = true;
        assert!(!should_restart(&stopped, 0));
    }

    #[test]
    fn backoff_doubles_and_resets() {
        assert_eq!(next_backoff(0, Duration::ZERO), 100);
        assert_eq!(next_backoff(100, Duration::from_secs(1)), 200);
        assert_eq!(next_backoff(40_000, Duration::from_secs(1)), 60_000);
        assert_eq!(next_backoff(6_400, Duration::from_secs(11)), 100);
    }

    #[test]
    fn policy_validation() {
        let mut hc = HostConfig {
            restart_policy: RestartPolicy { name: "sometimes".into(), maximum_retry_count: 0 },
            ..Default::default()
        };
        assert!(validate_restart_policy(&hc).is_err());
        hc.restart_policy = RestartPolicy { name: "always".into(), maximum_retry_count: 0 };
        assert!(validate_restart_policy(&hc).is_ok());
        hc.auto_remove = true;
        assert!(validate_restart_policy(&hc).is_err());
    }

    #[test]
    fn ps_rows_are_filtered_by_pid() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 /sbin/init\nroot        4242       9  0 10:01 ?        00:00:00 sleep 1000\n";
        let t = parse_ps(out, &[4242]).expect("parse");
        assert_eq!(t.titles.len(), 8);
        assert_eq!(t.processes, vec![vec!["root", "4242", "9", "0", "10:01", "?", "00:00:00", "sleep 1000"]]);
    }
}
