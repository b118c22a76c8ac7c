//! Container commands: run/create (with auto-pull), start, attach, exec, logs, ps and
//! the simple verbs (stop, kill, rm, …). Call order and connections follow the trace
//! (`engine-api-trace.md` §4): attach before start, `/wait` headers before `/start`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use berth_api::{
    ContainerConfig, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect, ContainerSummary, EndpointSettings,
    ExecConfig, ExecInspect, HostConfig, IdResponse, LogConfig, NetworkingConfig, PortBinding, RestartPolicy, TopResponse, Ulimit,
    WaitResponse,
};
use berth_client::{query_escape, stream, Body, Client, Hijacked};
use serde_json::{json, Value};

use crate::cli::{AttachArgs, ExecArgs, KillArgs, LogsArgs, Names, PsArgs, RmArgs, RunArgs, StartArgs, StopArgs, TopArgs};
use crate::format::{display_ports, ellipsis, go_time_string, human_size, tabwrite, tabwrite_with, truncate_id};
use crate::refs::Ref;
use crate::template::{go_quote, Template};
use crate::detach::{self, Escape, Scan};
use crate::{term, CmdResult, Ctx, Fail};

/// Go's `url.Values.Encode`: keys sorted, values escaped.
pub fn query(path: &str, params: &[(&str, String)]) -> String {
    let mut p: Vec<&(&str, String)> = params.iter().collect();
    p.sort_by(|a, b| a.0.cmp(b.0));
    if p.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = p.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect();
    format!("{path}?{}", q.join("&"))
}

/// Decodes a list answer leniently: `null` fields take their defaults (older daemons and
/// thin answers send `"RepoTags": null`, `"Ports": null`, …).
pub fn decode_list<T: serde::de::DeserializeOwned>(v: Option<Vec<Value>>) -> Result<Vec<T>, Fail> {
    v.unwrap_or_default()
        .into_iter()
        .map(|mut x| {
            if let Value::Object(m) = &mut x {
                m.retain(|_, v| !v.is_null());
            }
            serde_json::from_value(x).map_err(|e| Fail::new(1, format!("error decoding response: {e}")))
        })
        .collect()
}

/// `--filter k=v` flags → `{"k":{"v":true}}` (empty string when no filter).
pub fn filters_json(filters: &[String]) -> Result<Option<String>, Fail> {
    let mut m: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| Fail::new(125, format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)")))?;
        m.entry(k.trim().to_lowercase()).or_default().insert(v.to_string(), true);
    }
    if m.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(&m).unwrap_or_default()))
}

// ---------------------------------------------------------------------------------
// Create body

/// go-units `RAMInBytes`: "512m", "1g", "100k", "1024b", "2GiB"…
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim().to_lowercase();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size: '{s}'")),
    };
    Ok((n * mult) as i64)
}

/// `-p [ip:][hostPort:]containerPort[/proto]` (ranges allowed) → exposed ports and bindings.
pub fn parse_publish(spec: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (addr, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, p.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    // IPv6 hosts come in brackets: [::1]:8080:80
    let (ip, rest) = if let Some(r) = addr.strip_prefix('[') {
        let (ip, r) = r.split_once("]:").ok_or_else(|| format!("invalid IP address: {addr}"))?;
        (ip.to_string(), r.to_string())
    } else {
        let parts: Vec<&str> = addr.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), addr.to_string()),
            _ => (parts[..parts.len() - 2].join(":"), parts[parts.len() - 2..].join(":")),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest.clone()),
    };
    let range = |r: &str| -> Result<(u32, u32), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u32 = a.parse().map_err(|_| format!("invalid containerPort: {r}"))?;
        let b: u32 = b.parse().map_err(|_| format!("invalid containerPort: {r}"))?;
        if a == 0 || b > 65535 || b < a {
            return Err(format!("invalid port range: {r}"));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(&container)?;
    let host_range = if host.is_empty() { None } else { Some(range(&host).map_err(|_| format!("invalid hostPort: {host}"))?) };
    let mut out = Vec::new();
    for (i, cp) in (c0..=c1).enumerate() {
        let hp = match host_range {
            None => String::new(),
            Some((h0, h1)) if h1 - h0 == c1 - c0 => (h0 + i as u32).to_string(),
            // A host range for a single container port: the daemon picks from it.
            Some((h0, h1)) if h0 != h1 => format!("{h0}-{h1}"),
            Some((h0, _)) => h0.to_string(),
        };
        out.push((format!("{cp}/{proto}"), PortBinding { host_ip: ip.clone(), host_port: hp }));
    }
    Ok(out)
}

fn env_lookup(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

pub fn read_env_files(files: &[String]) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| Fail::new(125, format!("open {f}: {}", crate::system::io_text(&e))))?;
        for line in text.lines() {
            let l = line.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(v) = env_lookup(l) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Docker 28 sends capabilities upper-cased with a `CAP_` prefix (`ALL` stays).
pub fn normalize_caps(caps: &[String]) -> Vec<String> {
    caps.iter()
        .map(|c| {
            let u = c.to_uppercase();
            if u == "ALL" || u.starts_with("CAP_") {
                u
            } else {
                format!("CAP_{u}")
            }
        })
        .collect()
}

/// `--label-file`: one label per line, `#` comments and blank lines skipped.
pub fn read_label_files(files: &[String]) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| Fail::new(125, format!("open {f}: {}", crate::system::io_text(&e))))?;
        out.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned));
    }
    Ok(out)
}

/// `--security-opt`: docker sends the *content* of a `seccomp=<file>` profile
/// (`seccomp=unconfined` passes as is) and accepts `:` as the old separator.
pub fn security_opts(opts: &[String]) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for o in opts {
        let (k, v) = match o.split_once('=').or_else(|| o.split_once(':')) {
            Some(kv) => kv,
            None => {
                out.push(o.clone());
                continue;
            }
        };
        if k == "seccomp" && v != "unconfined" && v != "builtin" {
            let data = std::fs::read(v).map_err(|e| Fail::new(125, format!("opening seccomp profile ({v}) failed: open {v}: {}", crate::system::io_text(&e))))?;
            let mut compact = Vec::new();
            let parsed: Value = serde_json::from_slice(&data).map_err(|e| Fail::new(125, format!("compacting json for seccomp profile ({v}) failed: {e}")))?;
            serde_json::to_writer(&mut compact, &parsed).map_err(|e| Fail::new(125, e.to_string()))?;
            out.push(format!("seccomp={}", String::from_utf8_lossy(&compact)));
        } else {
            out.push(o.clone());
        }
    }
    Ok(out)
}

/// Builds the `/containers/create` body exactly as docker does for these flags.
pub fn build_create(o: &RunArgs, image: &str, cmd: &[String], console: Option<(u16, u16)>) -> Result<ContainerCreateRequest, Fail> {
    let bad = |m: String| Fail::new(125, m);
    let mut env = read_env_files(&o.env_file)?;
    env.extend(o.env.iter().filter_map(|e| env_lookup(e)));
    let mut labels = BTreeMap::new();
    let mut all_labels = read_label_files(&o.label_file)?;
    all_labels.extend(o.label.iter().cloned());
    for l in &all_labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut exposed: BTreeMap<String, Value> = BTreeMap::new();
    let mut bindings: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for p in &o.publish {
        for (port, b) in parse_publish(p).map_err(bad)? {
            exposed.insert(port.clone(), json!({}));
            bindings.entry(port).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(b);
        }
    }
    for e in &o.expose {
        let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        exposed.insert(format!("{p}/{proto}"), json!({}));
    }
    let mut binds = Vec::new();
    let mut volumes: BTreeMap<String, Value> = BTreeMap::new();
    for v in &o.volume {
        if v.contains(':') {
            binds.push(v.clone());
        } else {
            volumes.insert(v.clone(), json!({}));
        }
    }
    let attach_all = o.attach.is_empty();
    let has = |s: &str| o.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
    let attach_stdin = !o.detach && (if attach_all { o.interactive } else { has("stdin") });
    let attach_stdout = !o.detach && (attach_all || has("stdout"));
    let attach_stderr = !o.detach && (attach_all || has("stderr"));
    let entrypoint = match &o.entrypoint {
        Some(e) if e.is_empty() => Some(vec![String::new()]),
        Some(e) => Some(vec![e.clone()]),
        None => None,
    };
    let restart = {
        // The policy name is checked by the daemon (docker's CLI sends it as typed).
        let (name, count) = o.restart.split_once(':').unwrap_or((&o.restart, "0"));
        if o.rm && !matches!(name, "" | "no") {
            return Err(bad("conflicting options: cannot specify both --restart and --rm".into()));
        }
        RestartPolicy { name: if name.is_empty() { "no".into() } else { name.into() }, maximum_retry_count: count.parse().map_err(|_| bad(format!("invalid restart policy format: maximum retry count must be an integer")))? }
    };
    let network = o.network.clone().unwrap_or_else(|| "default".into());
    let mut endpoints = BTreeMap::new();
    endpoints.insert(
        network.clone(),
        EndpointSettings { aliases: if o.network_alias.is_empty() { None } else { Some(o.network_alias.clone()) }, ..Default::default() },
    );
    let mut ulimits = Vec::new();
    for u in &o.ulimit {
        let (name, vals) = u.split_once('=').ok_or_else(|| bad(format!("invalid ulimit argument: {u}")))?;
        let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
        ulimits.push(Ulimit {
            name: name.into(),
            soft: soft.parse().map_err(|_| bad(format!("invalid ulimit soft value {soft}")))?,
            hard: hard.parse().map_err(|_| bad(format!("invalid ulimit hard value {hard}")))?,
        });
    }
    let mut tmpfs = BTreeMap::new();
    for t in &o.tmpfs {
        let (p, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(p.to_string(), opts.to_string());
    }
    let mut log_cfg = BTreeMap::new();
    for l in &o.log_opt {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        log_cfg.insert(k.to_string(), v.to_string());
    }
    let opt_vec = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
    let memory = o.memory.as_deref().map(ram_in_bytes).transpose().map_err(bad)?.unwrap_or(0);
    let memory_swap = match o.memory_swap.as_deref() {
        Some("-1") => -1,
        Some(s) => ram_in_bytes(s).map_err(bad)?,
        None => 0,
    };
    let nano_cpus = match o.cpus.as_deref() {
        Some(c) => (c.parse::<f64>().map_err(|_| bad(format!("invalid argument \"{c}\" for \"--cpus\" flag: failed to parse {c} as a rational number")))? * 1e9) as i64,
        None => 0,
    };
    let config = ContainerConfig {
        hostname: o.hostname.clone().unwrap_or_default(),
        domainname: o.domainname.clone().unwrap_or_default(),
        user: o.user.clone().unwrap_or_default(),
        attach_stdin,
        attach_stdout,
        attach_stderr,
        exposed_ports: if exposed.is_empty() { None } else { Some(exposed) },
        tty: o.tty,
        open_stdin: o.interactive,
        stdin_once: o.interactive && attach_stdin,
        env: if env.is_empty() { None } else { Some(env) },
        cmd: if cmd.is_empty() { None } else { Some(cmd.to_vec()) },
        image: image.to_string(),
        volumes: Some(volumes),
        working_dir: o.workdir.clone().unwrap_or_default(),
        entrypoint,
        mac_address: o.mac_address.clone(),
        on_build: None,
        labels: Some(labels),
        stop_signal: o.stop_signal.clone(),
        stop_timeout: o.stop_timeout,
        ..Default::default()
    };
    let host = HostConfig {
        binds: if binds.is_empty() { None } else { Some(binds) },
        log_config: LogConfig { kind: o.log_driver.clone().unwrap_or_default(), config: Some(log_cfg) },
        network_mode: network,
        port_bindings: Some(bindings),
        restart_policy: restart,
        auto_remove: o.rm,
        volumes_from: opt_vec(&o.volumes_from),
        console_size: Some(match (o.tty, console) {
            (true, Some((r, c))) => vec![r as u32, c as u32],
            _ => vec![0, 0],
        }),
        cap_add: opt_vec(&normalize_caps(&o.cap_add)),
        cap_drop: opt_vec(&normalize_caps(&o.cap_drop)),
        container_id_file: o.cidfile.clone().unwrap_or_default(),
        cgroupns_mode: o.cgroupns.clone().unwrap_or_default(),
        dns: Some(o.dns.clone()),
        dns_options: Some(o.dns_option.clone()),
        dns_search: Some(o.dns_search.clone()),
        extra_hosts: opt_vec(&o.add_host),
        group_add: opt_vec(&o.group_add),
        ipc_mode: o.ipc.clone().unwrap_or_default(),
        pid_mode: o.pid.clone().unwrap_or_default(),
        privileged: o.privileged,
        publish_all_ports: o.publish_all,
        readonly_rootfs: o.read_only,
        security_opt: if o.security_opt.is_empty() { None } else { Some(security_opts(&o.security_opt)?) },
        uts_mode: o.uts.clone().unwrap_or_default(),
        shm_size: o.shm_size.as_deref().map(ram_in_bytes).transpose().map_err(bad)?.unwrap_or(0),
        runtime: o.runtime.clone(),
        cpu_shares: o.cpu_shares.unwrap_or(0),
        memory,
        nano_cpus,
        cgroup_parent: o.cgroup_parent.clone().unwrap_or_default(),
        cpuset_cpus: o.cpuset_cpus.clone().unwrap_or_default(),
        devices: Some(o.device.iter().map(|d| {
            let mut p = d.splitn(3, ':');
            let host = p.next().unwrap_or("").to_string();
            let cont = p.next().map(str::to_owned).unwrap_or_else(|| host.clone());
            let perms = p.next().unwrap_or("rwm").to_string();
            json!({"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms})
        }).collect()),
        memory_reservation: o.memory_reservation.as_deref().map(ram_in_bytes).transpose().map_err(bad)?.unwrap_or(0),
        memory_swap,
        memory_swappiness: Some(-1),
        oom_kill_disable: Some(o.oom_kill_disable),
        pids_limit: Some(o.pids_limit.unwrap_or(0)),
        ulimits: Some(ulimits),
        init: if o.init { Some(true) } else { None },
        tmpfs: if tmpfs.is_empty() { None } else { Some(tmpfs) },
        ..Default::default()
    };
    Ok(ContainerCreateRequest { config, host_config: Some(host), networking_config: Some(NetworkingConfig { endpoints_config: Some(endpoints) }) })
}

// ---------------------------------------------------------------------------------
// Pull helper shared with `image pull`

/// `POST /images/create` and display its progress. `out` is stdout for `pull`, stderr
/// for the auto-pull in `run`.
pub fn pull_image(client: &mut Client, r: &Ref, platform: Option<&str>, out: &mut dyn Write, out_is_tty: bool, quiet: bool) -> Result<(), Fail> {
    let mut params = vec![("fromImage", r.full_name()), ("tag", r.tag_or_digest())];
    if let Some(p) = platform {
        params.push(("platform", p.to_string()));
    }
    let path = query("/images/create", &params);
    let resp = client.send("POST", &path, &[("X-Registry-Auth", "e30=")], Body::Empty)?;
    let mut sink = io::sink();
    let target: &mut dyn Write = if quiet { &mut sink } else { out };
    match stream::display_json_messages(resp, target, out_is_tty && !quiet, |_| {}) {
        Ok(()) => Ok(()),
        Err(stream::DisplayError::Stream(e)) => Err(Fail::new(1, e.message)),
        Err(stream::DisplayError::Io(e)) => Err(Fail::new(1, e.to_string())),
    }
}

// ---------------------------------------------------------------------------------
// run / create

/// With trailing var args clap takes an unknown `--foo` before the image as the image;
/// docker rejects it as an unknown flag.
fn reject_flag_positional(ctx: &Ctx, path: &str, first: &str) -> Result<(), Fail> {
    if !first.starts_with('-') || first == "-" {
        return Ok(());
    }
    let msg = if first.starts_with("--") {
        format!("unknown flag: {}", first.split('=').next().unwrap_or(first))
    } else {
        format!("unknown shorthand flag: '{}' in {first}", first.chars().nth(1).unwrap_or('?'))
    };
    let prog = &ctx.prog;
    Err(Fail::new(125, format!("{msg}\n\nUsage:  {}\n\nRun '{prog} {path} --help' for more information", ctx.usage(path))))
}

/// A daemon error while creating: `run` reports it as docker's status error (125 with
/// the help hint); `create` returns it plainly (exit 1), as docker 28 does.
fn daemon_fail(msg: String, cmd: &str) -> Fail {
    if cmd == "create" {
        Fail::new(1, msg)
    } else {
        Fail::new(125, msg).with_help(cmd)
    }
}

fn run_fail(e: berth_client::Error, cmd: &str) -> Fail {
    Fail::new(125, e.to_string()).with_help(cmd)
}

/// Exit code of a failed start, from the daemon's message (docker's `toStatusError`).
pub fn start_error_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") || msg.contains("system cannot find the file specified") {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

fn create_container(ctx: &mut Ctx, o: &RunArgs, cmd_name: &str) -> Result<(String, bool), Fail> {
    let image = o.args[0].clone();
    let cmd = &o.args[1..];
    let console = if o.tty { term::tty_size() } else { None };
    let body = build_create(o, &image, cmd, console).map_err(|f| f.with_help(cmd_name))?;
    let mut params = Vec::new();
    if let Some(n) = &o.name {
        params.push(("name", n.clone()));
    }
    if let Some(p) = &o.platform {
        params.push(("platform", p.clone()));
    }
    let path = query("/containers/create", &params);
    let r = Ref::parse(&image).map_err(|e| Fail::new(125, e).with_help(cmd_name))?.with_default_tag();
    let mut stderr = io::stderr();
    let stderr_tty = term::isatty(2);
    if o.pull == "always" {
        pull_image(&mut ctx.client, &r, o.platform.as_deref(), &mut stderr, stderr_tty, o.quiet).map_err(|f| daemon_fail(f.msg, cmd_name))?;
    }
    let resp: ContainerCreateResponse = match ctx.client.post_json(&path, &body) {
        Ok(r) => r,
        Err(e) if e.is_not_found() && o.pull != "never" => {
            let _ = writeln!(stderr, "Unable to find image '{}' locally", r.familiar());
            pull_image(&mut ctx.client, &r, o.platform.as_deref(), &mut stderr, stderr_tty, o.quiet).map_err(|f| daemon_fail(f.msg, cmd_name))?;
            ctx.client.post_json(&path, &body).map_err(|e| daemon_fail(e.to_string(), cmd_name))?
        }
        Err(e) => return Err(daemon_fail(e.to_string(), cmd_name)),
    };
    for w in &resp.warnings {
        let _ = writeln!(stderr, "WARNING: {w}");
    }
    if let Some(f) = &o.cidfile {
        std::fs::write(f, &resp.id).map_err(|e| Fail::new(125, format!("failed to write the container ID to the file: {e}")).with_help(cmd_name))?;
    }
    Ok((resp.id, o.tty))
}

/// Spawns the thread that reads a `/wait` body; the result arrives on the channel.
fn spawn_wait(resp: berth_client::Response) -> mpsc::Receiver<Result<WaitResponse, String>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut resp = resp;
        let mut data = Vec::new();
        let r = match resp.read_to_end(&mut data) {
            Ok(_) => berth_client::decode::<WaitResponse>(&data).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let _ = tx.send(r);
    });
    rx
}

/// Streams a hijacked attach to the local stdout/stderr, pumping stdin when asked.
/// With `escape`, stdin passes through the detach-key detector; returns `true` when the
/// user detached (the connection is then dropped at once, as docker does).
fn stream_hijacked(h: Hijacked, tty: bool, stdin: bool, escape: Option<Vec<u8>>) -> io::Result<bool> {
    let detached = Arc::new(AtomicBool::new(false));
    if stdin {
        let w = h.writer.try_clone()?;
        let flag = detached.clone();
        thread::spawn(move || {
            let _ = pump_stdin_escaped(io::stdin().lock(), w, escape, &flag);
        });
    } else {
        let _ = h.close_write();
    }
    let mut out = io::stdout().lock();
    let r = if tty {
        stream::copy_raw(h.reader, &mut out)
    } else {
        let mut err = io::stderr();
        stream::demux(h.reader, &mut out, &mut err)
    };
    if detached.load(Ordering::SeqCst) {
        return Ok(true);
    }
    r.map(|_| false)
}

/// Copies stdin to the hijacked connection until EOF (then half-closes) or until the
/// detach sequence (then shuts the whole connection down and raises `detached`).
fn pump_stdin_escaped<R: Read>(mut from: R, mut to: std::os::unix::net::UnixStream, escape: Option<Vec<u8>>, detached: &AtomicBool) -> io::Result<()> {
    let mut esc = escape.map(Escape::new);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match esc.as_mut().map(|e| e.feed(&buf[..n])) {
            None => to.write_all(&buf[..n])?,
            Some(Scan::Forward(b)) => to.write_all(&b)?,
            Some(Scan::Detach(b)) => {
                let _ = to.write_all(&b);
                detached.store(true, Ordering::SeqCst);
                return to.shutdown(std::net::Shutdown::Both);
            }
        }
    }
    if let Some(e) = esc.as_mut() {
        to.write_all(&e.flush())?;
    }
    to.shutdown(std::net::Shutdown::Write)
}

/// The detach keys of a TTY session: the sequence to watch for and the value to send in
/// the attach query (only when given by flag or config, like docker).
fn detach_setup(flag: Option<&str>, tty: bool, stdin: bool) -> Result<(Option<Vec<u8>>, Option<String>), Fail> {
    let keys = detach::effective(flag);
    if !(tty && stdin) {
        return Ok((None, keys));
    }
    let bytes = detach::keys_bytes(keys.as_deref()).map_err(|e| Fail::new(1, e))?;
    Ok((Some(bytes), keys))
}

/// Forwards signals as `kill?signal=` (sig-proxy) and turns SIGWINCH into a resize.
fn forward_signals(client: &Client, id: &str, resize_path: Option<String>, proxy: bool) {
    let sigs: Vec<i32> = if proxy { term::PROXY_SIGNALS.to_vec() } else if resize_path.is_some() { vec![libc::SIGWINCH] } else { return };
    let Ok(mut pipe) = term::catch_signals(&sigs) else { return };
    let mut client = client.fork();
    let id = id.to_string();
    thread::spawn(move || {
        let mut b = [0u8; 1];
        while let Ok(1) = pipe.read(&mut b) {
            let sig = b[0] as i32;
            if sig == libc::SIGWINCH {
                if let (Some(p), Some((h, w))) = (&resize_path, term::tty_size()) {
                    let _ = client.post(&query(p, &[("h", h.to_string()), ("w", w.to_string())]));
                }
            }
            if proxy {
                let _ = client.post(&format!("/containers/{id}/kill?signal={}", term::signal_name(sig)));
            }
        }
    });
}

pub fn run(ctx: &mut Ctx, o: RunArgs, create_only: bool) -> CmdResult {
    let name = if create_only { "create" } else { "run" };
    ctx.require(name, o.args.len(), 1, None)?;
    reject_flag_positional(ctx, name, &o.args[0])?;
    if o.interactive && o.tty && !term::isatty(0) && !create_only && !o.detach {
        return Err(Fail::new(1, "the input device is not a TTY"));
    }
    let (id, tty) = create_container(ctx, &o, name)?;
    if create_only {
        println!("{id}");
        return Ok(0);
    }
    let stdin = o.interactive && !o.detach;
    let attach = !o.detach;
    let (escape, detach_keys) = detach_setup(o.detach_keys.as_deref(), tty, stdin).map_err(|f| Fail::new(125, f.msg).with_help("run"))?;
    // Attach first (own connection), then the wait on the first connection, then start.
    let hijacked = if attach {
        let mut params = vec![("stream", "1".to_string())];
        if let Some(k) = &detach_keys {
            params.push(("detachKeys", k.clone()));
        }
        let has = |s: &str| o.attach.is_empty() || o.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
        if stdin {
            params.push(("stdin", "1".into()));
        }
        if has("stdout") {
            params.push(("stdout", "1".into()));
        }
        if has("stderr") {
            params.push(("stderr", "1".into()));
        }
        Some(ctx.client.hijack("POST", &query(&format!("/containers/{id}/attach"), &params), Body::None).map_err(|e| run_fail(e, "run"))?)
    } else {
        None
    };
    let condition = if o.rm { "removed" } else { "next-exit" };
    let wait = ctx.client.send("POST", &format!("/containers/{id}/wait?condition={condition}"), &[], Body::Empty).map_err(|e| run_fail(e, "run"))?;
    let wait_sock = wait.socket().ok();
    if tty && attach && term::isatty(0) {
        let _ = term::set_raw();
    }
    if let Err(e) = ctx.client.post(&format!("/containers/{id}/start")) {
        term::restore();
        wait.close();
        if let Some(h) = &hijacked {
            let _ = h.writer.shutdown(std::net::Shutdown::Both);
        }
        let code = start_error_code(&e.message());
        return Err(Fail::new(code, e.to_string()).with_help("run"));
    }
    if o.detach {
        drop(wait);
        println!("{id}");
        return Ok(0);
    }
    let resize_path = if tty { Some(format!("/containers/{id}/resize")) } else { None };
    if let (Some(p), Some((h, w))) = (&resize_path, term::tty_size()) {
        let _ = ctx.client.post(&query(p, &[("h", h.to_string()), ("w", w.to_string())]));
    }
    forward_signals(&ctx.client, &id, resize_path, o.sig_proxy);
    let waited = spawn_wait(wait);
    if let Some(h) = hijacked {
        if let Ok(true) = stream_hijacked(h, tty, stdin, escape) {
            // Detached: the container keeps running; docker returns without waiting.
            term::restore();
            return Ok(0);
        }
    }
    let res = waited.recv();
    term::restore();
    drop(wait_sock);
    match res {
        Ok(Ok(w)) => match w.error {
            Some(e) if !e.message.is_empty() => Err(Fail::new(125, format!("Error waiting for container: {}", e.message))),
            _ => Ok(w.status_code as i32),
        },
        Ok(Err(e)) => Err(Fail::new(125, format!("Error waiting for container: {e}"))),
        Err(_) => Err(Fail::new(125, "Error waiting for container: unexpected EOF")),
    }
}

// ---------------------------------------------------------------------------------
// start / attach / exec

fn inspect_container(client: &mut Client, name: &str) -> Result<ContainerInspect, Fail> {
    Ok(client.get_json(&format!("/containers/{name}/json"))?)
}

pub fn start(ctx: &mut Ctx, o: StartArgs) -> CmdResult {
    ctx.require("start", o.containers.len(), 1, None)?;
    if o.attach || o.interactive {
        if o.containers.len() > 1 {
            return Err(Fail::new(1, "you cannot start and attach multiple containers at once"));
        }
        let c = inspect_container(&mut ctx.client, &o.containers[0])?;
        let id = c.id.clone();
        let tty = c.config.tty;
        let stdin = o.interactive && c.config.open_stdin;
        let (escape, detach_keys) = detach_setup(o.detach_keys.as_deref(), tty, stdin)?;
        let mut params = vec![("stream", "1".to_string()), ("stdout", "1".into()), ("stderr", "1".into())];
        if stdin {
            params.push(("stdin", "1".into()));
        }
        if let Some(k) = &detach_keys {
            params.push(("detachKeys", k.clone()));
        }
        let h = ctx.client.hijack("POST", &query(&format!("/containers/{id}/attach"), &params), Body::None)?;
        let wait = ctx.client.send("POST", &format!("/containers/{id}/wait?condition=next-exit"), &[], Body::Empty)?;
        if tty && stdin && term::isatty(0) {
            let _ = term::set_raw();
        }
        if !c.state.running {
            if let Err(e) = ctx.client.post(&format!("/containers/{id}/start")) {
                term::restore();
                return Err(Fail::new(1, e.to_string()));
            }
        }
        let resize_path = if tty { Some(format!("/containers/{id}/resize")) } else { None };
        if let (Some(p), Some((hh, w))) = (&resize_path, term::tty_size()) {
            let _ = ctx.client.post(&query(p, &[("h", hh.to_string()), ("w", w.to_string())]));
        }
        forward_signals(&ctx.client, &id, resize_path, true);
        let waited = spawn_wait(wait);
        let detached = matches!(stream_hijacked(h, tty, stdin, escape), Ok(true));
        term::restore();
        if detached {
            return Ok(0);
        }
        return match waited.recv() {
            Ok(Ok(w)) => Ok(w.status_code as i32),
            Ok(Err(e)) => Err(Fail::new(1, e)),
            Err(_) => Err(Fail::new(1, "unexpected EOF")),
        };
    }
    let mut failed = Vec::new();
    for c in &o.containers {
        match ctx.client.post(&format!("/containers/{c}/start")) {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("{e}");
                failed.push(c.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, format!("Error: failed to start containers: {}", failed.join(", "))))
    }
}

pub fn attach(ctx: &mut Ctx, o: AttachArgs) -> CmdResult {
    ctx.require("attach", o.names.len(), 1, Some(1))?;
    let name = &o.names[0];
    // Docker's order (trace §4.9): `/wait` first, then inspect, then the attach itself.
    let wait = ctx.client.send("POST", &format!("/containers/{name}/wait"), &[], Body::Empty);
    let mut inspector = ctx.client.fork();
    let c = inspect_container(&mut inspector, name)?;
    let wait = wait?;
    if !c.state.running {
        wait.close();
        return Err(Fail::new(1, "You cannot attach to a stopped container, start it first"));
    }
    if c.state.paused {
        wait.close();
        return Err(Fail::new(1, "You cannot attach to a paused container, unpause it first"));
    }
    let tty = c.config.tty;
    let stdin = !o.no_stdin && c.config.open_stdin;
    if tty && stdin && !term::isatty(0) {
        return Err(Fail::new(1, "the input device is not a TTY"));
    }
    let (escape, detach_keys) = detach_setup(o.detach_keys.as_deref(), tty, stdin)?;
    let mut params = vec![("stream", "1".to_string()), ("stdout", "1".into()), ("stderr", "1".into())];
    if stdin {
        params.push(("stdin", "1".into()));
    }
    if let Some(k) = &detach_keys {
        params.push(("detachKeys", k.clone()));
    }
    let h = inspector.fork().hijack("POST", &query(&format!("/containers/{name}/attach"), &params), Body::None)?;
    let _ = inspect_container(&mut inspector, name);
    if tty && stdin {
        let _ = term::set_raw();
    }
    let resize_path = if tty { Some(format!("/containers/{name}/resize")) } else { None };
    if let (Some(p), Some((hh, w))) = (&resize_path, term::tty_size()) {
        let _ = inspector.post(&query(p, &[("h", hh.to_string()), ("w", w.to_string())]));
    }
    forward_signals(&inspector, name, resize_path, o.sig_proxy);
    let waited = spawn_wait(wait);
    let detached = matches!(stream_hijacked(h, tty, stdin, escape), Ok(true));
    term::restore();
    if detached {
        return Err(Fail::new(1, "read escape sequence"));
    }
    match waited.recv() {
        Ok(Ok(w)) => Ok(w.status_code as i32),
        Ok(Err(e)) => Err(Fail::new(1, e)),
        Err(_) => Ok(0),
    }
}

/// `ConsoleSize` of an exec create: sent from API 1.42 on, only with a TTY.
fn exec_console_size(client: &mut Client, tty: bool) -> Option<Vec<u32>> {
    let v = client.negotiate().ok()?;
    let newer = berth_api::version::ApiVersion::parse(&v)? >= berth_api::version::ApiVersion::parse("1.42")?;
    if !(tty && newer) {
        return None;
    }
    let (h, w) = term::tty_size().unwrap_or((0, 0));
    Some(vec![h as u32, w as u32])
}

pub fn exec(ctx: &mut Ctx, o: ExecArgs) -> CmdResult {
    ctx.require("exec", o.args.len(), 2, None)?;
    reject_flag_positional(ctx, "exec", &o.args[0])?;
    let container = &o.args[0];
    if o.interactive && o.tty && !term::isatty(0) {
        return Err(Fail::new(1, "the input device is not a TTY"));
    }
    let _ = inspect_container(&mut ctx.client, container)?;
    let mut env = read_env_files(&o.env_file)?;
    env.extend(o.env.iter().filter_map(|e| env_lookup(e)));
    let cfg = ExecConfig {
        user: o.user.clone().unwrap_or_default(),
        privileged: o.privileged,
        tty: o.tty,
        console_size: exec_console_size(&mut ctx.client, o.tty),
        attach_stdin: o.interactive && !o.detach,
        attach_stderr: !o.detach,
        attach_stdout: !o.detach,
        detach: o.detach,
        detach_keys: detach::effective(o.detach_keys.as_deref()).unwrap_or_default(),
        env: if env.is_empty() { None } else { Some(env) },
        working_dir: o.workdir.clone().unwrap_or_default(),
        cmd: Some(o.args[1..].to_vec()),
    };
    let created: IdResponse = ctx.client.post_json(&format!("/containers/{container}/exec"), &cfg)?;
    let eid = created.id;
    let start_body = json!({"Detach": o.detach, "Tty": o.tty});
    if o.detach {
        ctx.client.call("POST", &format!("/exec/{eid}/start"), &[], Body::json(&start_body))?;
        return Ok(0);
    }
    let h = ctx.client.hijack("POST", &format!("/exec/{eid}/start"), Body::json(&start_body))?;
    let resize_path = if o.tty { Some(format!("/exec/{eid}/resize")) } else { None };
    if let (Some(p), Some((hh, w))) = (&resize_path, term::tty_size()) {
        let _ = ctx.client.post(&query(p, &[("h", hh.to_string()), ("w", w.to_string())]));
    }
    if o.tty && o.interactive {
        let _ = term::set_raw();
    }
    forward_signals(&ctx.client, container, resize_path, false);
    let (escape, _) = detach_setup(o.detach_keys.as_deref(), o.tty, o.interactive)?;
    let detached = matches!(stream_hijacked(h, o.tty, o.interactive, escape), Ok(true));
    term::restore();
    if detached {
        return Err(Fail::new(1, "read escape sequence"));
    }
    let ins: ExecInspect = ctx.client.get_json(&format!("/exec/{eid}/json"))?;
    Ok(ins.exit_code.unwrap_or(0) as i32)
}

// ---------------------------------------------------------------------------------
// logs

/// docker's `GetTimestamp`: durations become `now - d` (unix seconds), RFC 3339 times
/// become `secs.nanos`, numbers pass through.
pub fn api_timestamp(v: &str, now: i64) -> String {
    if let Some(d) = parse_go_duration(v) {
        if v != "0" {
            return (now - d as i64).to_string();
        }
    }
    if v.parse::<f64>().is_ok() {
        return v.to_string();
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(&v.replace('Z', "+00:00"), fmt) {
            return format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos());
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"] {
        let parsed = chrono::NaiveDateTime::parse_from_str(v, fmt)
            .or_else(|_| chrono::NaiveDate::parse_from_str(v, fmt).map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()));
        if let Ok(t) = parsed {
            let t = t.and_utc();
            return format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos());
        }
    }
    v.to_string()
}

/// Go's `time.ParseDuration` (seconds as f64).
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Some(if neg { -total } else { total })
}

pub fn logs(ctx: &mut Ctx, o: LogsArgs) -> CmdResult {
    ctx.require("logs", o.containers.len(), 1, Some(1))?;
    let c = inspect_container(&mut ctx.client, &o.containers[0])?;
    let now = crate::format::now_secs_f64() as i64;
    let mut params = vec![("stdout", "1".to_string()), ("stderr", "1".into()), ("tail", o.tail.clone())];
    if o.follow {
        params.push(("follow", "1".into()));
    }
    if o.timestamps {
        params.push(("timestamps", "1".into()));
    }
    if o.details {
        params.push(("details", "1".into()));
    }
    if let Some(s) = &o.since {
        params.push(("since", api_timestamp(s, now)));
    }
    if let Some(u) = &o.until {
        params.push(("until", api_timestamp(u, now)));
    }
    let resp = ctx.client.send("GET", &query(&format!("/containers/{}/logs", c.id), &params), &[], Body::None)?;
    let mut out = io::stdout().lock();
    let r = if c.config.tty {
        stream::copy_raw(resp, &mut out)
    } else {
        let mut err = io::stderr();
        stream::demux(resp, &mut out, &mut err)
    };
    r.map_err(|e| Fail::new(1, e.to_string()))?;
    Ok(0)
}

// ---------------------------------------------------------------------------------
// ps

/// Header names of the `ps` formatter fields.
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Platform", "PLATFORM"),
];

/// The CLI formatter's view of one container (`{{.ID}}`, `{{.Names}}`, …).
pub fn ps_context(c: &ContainerSummary, trunc: bool, now: f64) -> Value {
    let id = if trunc { truncate_id(&c.id) } else { c.id.clone() };
    let image = if c.image.is_empty() { "<no image>".to_string() } else if trunc && c.image.starts_with("sha256:") { truncate_id(&c.image) } else { c.image.clone() };
    let command = if trunc { ellipsis(&c.command, 20) } else { c.command.clone() };
    let mut names: Vec<String> = c.names.iter().map(|n| n.strip_prefix('/').unwrap_or(n).to_string()).collect();
    if trunc {
        if let Some(n) = names.iter().find(|n| !n.contains('/')) {
            names = vec![n.clone()];
        }
    }
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let size = {
        let srw = human_size(c.size_rw.unwrap_or(0));
        match c.size_root_fs {
            Some(v) if v > 0 => format!("{srw} (virtual {})", human_size(v)),
            _ => srw,
        }
    };
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            let n = m.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| m.source.clone());
            if trunc { ellipsis(&n, 15) } else { n }
        })
        .collect();
    let local_volumes = c.mounts.iter().filter(|m| m.driver.as_deref() == Some("local")).count();
    let networks: Vec<String> = c.network_settings.networks.keys().cloned().collect();
    let created = c.created;
    json!({
        "__type": "*formatter.ContainerContext",
        "__labels": c.labels,
        "ID": id,
        "Image": image,
        "Command": go_quote(&command),
        "CreatedAt": go_time_string(created),
        "RunningFor": crate::format::human_duration(now - created as f64) + " ago",
        "Ports": display_ports(&c.ports),
        "State": c.state,
        "Status": c.status,
        "Size": size,
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": local_volumes.to_string(),
    })
}

fn header_ctx(headers: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in headers {
        m.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    m.insert("__labels".into(), json!({}));
    Value::Object(m)
}

/// Renders rows with a `--format` value the way docker's formatter does: `table …`
/// (header + tabwriter), `json` (one object per line) or a plain template.
pub fn render_rows(format: &str, rows: &[Value], headers: &[(&str, &str)]) -> Result<String, Fail> {
    let fmt = format.trim();
    let (table, body) = if let Some(rest) = fmt.strip_prefix("table") {
        (true, rest.trim().to_string())
    } else if fmt == "json" {
        (false, "{{json .}}".to_string())
    } else {
        (false, fmt.to_string())
    };
    let body = body.replace("\\t", "\t").replace("\\n", "\n");
    let tpl = Template::parse(&body).map_err(|e| Fail::new(1, e))?;
    let mut out = String::new();
    if table {
        out.push_str(&tpl.execute(&header_ctx(headers), true).map_err(|e| Fail::new(1, e))?);
        out.push('\n');
    }
    for r in rows {
        out.push_str(&tpl.execute(r, false).map_err(|e| Fail::new(1, e))?);
        out.push('\n');
    }
    Ok(if table { tabwrite(&out) } else { out })
}

pub fn ps(ctx: &mut Ctx, o: PsArgs, path: &str) -> CmdResult {
    ctx.require(path, o.rest.len(), 0, Some(0))?;
    let mut format = o.format.clone().unwrap_or_default();
    if o.quiet && !format.is_empty() && format != "table" {
        eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
        format.clear();
    }
    let mut last = o.last;
    if o.latest && last == -1 {
        last = 1;
    }
    let size = o.size || (format.contains(".Size") && !o.quiet);
    let mut params = Vec::new();
    if o.all {
        params.push(("all", "1".to_string()));
    }
    if last > 0 {
        params.push(("limit", last.to_string()));
    }
    if size {
        params.push(("size", "1".into()));
    }
    if let Some(f) = filters_json(&o.filter)? {
        params.push(("filters", f));
    }
    let list: Vec<ContainerSummary> = decode_list(ctx.client.get_json(&query("/containers/json", &params))?)?;
    let now = crate::format::now_secs_f64();
    let rows: Vec<Value> = list.iter().map(|c| ps_context(c, !o.no_trunc, now)).collect();
    let format = if o.quiet {
        "{{.ID}}".to_string()
    } else if format.is_empty() || format == "table" {
        let mut f = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
        if o.size {
            f.push_str("\t{{.Size}}");
        }
        f
    } else {
        format
    };
    print!("{}", render_rows(&format, &rows, PS_HEADERS)?);
    Ok(0)
}

// ---------------------------------------------------------------------------------
// Simple verbs

/// Runs `f` for each name, printing the name on success and errors at the end.
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<Option<String>, berth_client::Error>) -> CmdResult {
    let mut errs = Vec::new();
    for n in names {
        match f(n) {
            Ok(Some(out)) => println!("{out}"),
            Ok(None) => {}
            Err(e) => errs.push(e.to_string()),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, errs.join("\n")))
    }
}

pub fn rm(ctx: &mut Ctx, o: RmArgs) -> CmdResult {
    ctx.require("rm", o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if o.force {
        params.push(("force", "1".to_string()));
    }
    if o.link {
        params.push(("link", "1".to_string()));
    }
    if o.volumes {
        params.push(("v", "1".to_string()));
    }
    let client = &mut ctx.client;
    each(&o.containers, |c| {
        client.delete(&query(&format!("/containers/{c}"), &params))?;
        Ok(Some(c.to_string()))
    })
}

pub fn kill(ctx: &mut Ctx, o: KillArgs) -> CmdResult {
    ctx.require("kill", o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if let Some(s) = &o.signal {
        params.push(("signal", s.clone()));
    }
    let client = &mut ctx.client;
    each(&o.containers, |c| {
        client.post(&query(&format!("/containers/{c}/kill"), &params))?;
        Ok(Some(c.to_string()))
    })
}

pub fn stop(ctx: &mut Ctx, o: StopArgs, verb: &str) -> CmdResult {
    ctx.require(verb, o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if let Some(s) = &o.signal {
        params.push(("signal", s.clone()));
    }
    if let Some(t) = o.time {
        params.push(("t", t.to_string()));
    }
    let client = &mut ctx.client;
    each(&o.containers, |c| {
        client.post(&query(&format!("/containers/{c}/{verb}"), &params))?;
        Ok(Some(c.to_string()))
    })
}

pub fn simple(ctx: &mut Ctx, o: Names, verb: &str) -> CmdResult {
    ctx.require(verb, o.names.len(), 1, None)?;
    let client = &mut ctx.client;
    each(&o.names, |c| {
        client.post(&format!("/containers/{c}/{verb}"))?;
        Ok(Some(c.to_string()))
    })
}

pub fn wait(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("wait", o.names.len(), 1, None)?;
    let client = &mut ctx.client;
    each(&o.names, |c| {
        let (_, data) = client.call("POST", &format!("/containers/{c}/wait"), &[], Body::Empty)?;
        let w: WaitResponse = berth_client::decode(&data)?;
        Ok(Some(w.status_code.to_string()))
    })
}

pub fn rename(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("rename", o.names.len(), 2, Some(2))?;
    let new = o.names[1].trim();
    if new.is_empty() {
        return Err(Fail::new(1, "Error: neither old nor new names may be empty"));
    }
    ctx.client.post(&query(&format!("/containers/{}/rename", o.names[0]), &[("name", new.to_string())]))?;
    Ok(0)
}

pub fn top(ctx: &mut Ctx, o: TopArgs) -> CmdResult {
    ctx.require("top", o.args.len(), 1, None)?;
    let mut params = Vec::new();
    if o.args.len() > 1 {
        params.push(("ps_args", o.args[1..].join(" ")));
    }
    let t: TopResponse = ctx.client.get_json(&query(&format!("/containers/{}/top", o.args[0]), &params))?;
    let mut text = t.titles.join("\t") + "\n";
    for p in &t.processes {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    print!("{}", tabwrite_with(&text, 20, 3));
    Ok(0)
}

fn port_sort_key(k: &str) -> (u32, String) {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    (p.parse().unwrap_or(0), proto.to_string())
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

pub fn port(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("port", o.names.len(), 1, Some(2))?;
    let c = inspect_container(&mut ctx.client, &o.names[0])?;
    let mut keys: Vec<&String> = c.network_settings.ports.keys().collect();
    keys.sort_by_key(|k| port_sort_key(k));
    if let Some(want) = o.names.get(1) {
        let want_key = if want.contains('/') { want.clone() } else { format!("{want}/tcp") };
        if let Some(Some(binds)) = c.network_settings.ports.get(&want_key) {
            if !binds.is_empty() {
                for b in binds {
                    println!("{}", join_host_port(&b.host_ip, &b.host_port));
                }
                return Ok(0);
            }
        }
        return Err(Fail::new(1, format!("Error: No public port '{want_key}' published for {}", o.names[0])));
    }
    for k in keys {
        if let Some(Some(binds)) = c.network_settings.ports.get(k) {
            for b in binds {
                println!("{k} -> {}", join_host_port(&b.host_ip, &b.host_port));
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_args(argv: &str) -> RunArgs {
        #[derive(Parser)]
        struct W {
            #[command(flatten)]
            a: RunArgs,
        }
        let mut v = vec!["berth".to_string()];
        v.extend(shell_split(argv));
        W::try_parse_from(v).expect("parse").a
    }

    fn shell_split(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut q = None;
        let mut any = false;
        for c in s.chars() {
            match (q, c) {
                (Some(qc), c) if c == qc => q = None,
                (Some(_), c) => cur.push(c),
                (None, '\'' | '"') => {
                    q = Some(c);
                    any = true;
                }
                (None, ' ') => {
                    if !cur.is_empty() || any {
                        out.push(std::mem::take(&mut cur));
                    }
                    any = false;
                }
                (None, c) => cur.push(c),
            }
        }
        if !cur.is_empty() || any {
            out.push(cur);
        }
        out
    }

    fn body(argv: &str) -> Value {
        let o = run_args(argv);
        let req = build_create(&o, &o.args[0], &o.args[1..], Some((30, 100))).map_err(|f| f.msg).expect("build");
        serde_json::to_value(&req).expect("json")
    }

    #[test]
    fn create_bodies_like_the_trace() {
        let b = body("busybox echo hi");
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Env"], Value::Null);
        assert_eq!(b["AttachStdout"], json!(true));
        assert_eq!(b["AttachStdin"], json!(false));
        assert_eq!(b["HostConfig"]["NetworkMode"], json!("default"));
        assert_eq!(b["HostConfig"]["ConsoleSize"], json!([0, 0]));
        assert_eq!(b["HostConfig"]["AutoRemove"], json!(false));
        assert_eq!(b["HostConfig"]["RestartPolicy"], json!({"Name": "no", "MaximumRetryCount": 0}));
        assert_eq!(b["Labels"], json!({}));
        assert!(b.get("ExposedPorts").is_none());
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["default"].is_object());

        let b = body("-d --name sleeper busybox sleep 1000");
        assert_eq!(b["AttachStdout"], json!(false));
        assert_eq!(b["AttachStderr"], json!(false));

        let b = body("-it --rm busybox sh");
        assert_eq!((b["Tty"].clone(), b["OpenStdin"].clone(), b["StdinOnce"].clone(), b["AttachStdin"].clone()), (json!(true), json!(true), json!(true), json!(true)));
        assert_eq!(b["HostConfig"]["ConsoleSize"], json!([30, 100]));
        assert_eq!(b["HostConfig"]["AutoRemove"], json!(true));

        let b = body("-p 8080:80 -v /tmp:/data -e A=B -w /data busybox sh -c 'pwd; echo $A'");
        assert_eq!(b["Env"], json!(["A=B"]));
        assert_eq!(b["WorkingDir"], json!("/data"));
        assert_eq!(b["HostConfig"]["Binds"], json!(["/tmp:/data"]));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(b["HostConfig"]["PortBindings"], json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}));
        assert_eq!(b["Cmd"], json!(["sh", "-c", "pwd; echo $A"]));

        let b = body("-l a=b -l c --hostname h --entrypoint /bin/sh -u 1000:1000 --restart on-failure:3 -m 512m --cpus 1.5 --pids-limit 10 --stop-signal SIGINT --stop-timeout 5 --network host busybox");
        assert_eq!(b["Labels"], json!({"a": "b", "c": ""}));
        assert_eq!(b["Hostname"], json!("h"));
        assert_eq!(b["Entrypoint"], json!(["/bin/sh"]));
        assert_eq!(b["User"], json!("1000:1000"));
        assert_eq!(b["Cmd"], Value::Null);
        assert_eq!(b["HostConfig"]["RestartPolicy"], json!({"Name": "on-failure", "MaximumRetryCount": 3}));
        assert_eq!(b["HostConfig"]["Memory"], json!(536870912));
        assert_eq!(b["HostConfig"]["NanoCpus"], json!(1500000000));
        assert_eq!(b["HostConfig"]["PidsLimit"], json!(10));
        assert_eq!(b["StopSignal"], json!("SIGINT"));
        assert_eq!(b["StopTimeout"], json!(5));
        assert_eq!(b["HostConfig"]["NetworkMode"], json!("host"));
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["host"].is_object());
    }

    #[test]
    fn run_flags_sent_like_docker_28() {
        let dir = std::env::temp_dir().join(format!("berth-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (sec, envf, labf) = (dir.join("sec.json"), dir.join("envf"), dir.join("labf"));
        std::fs::write(&sec, "{\"defaultAction\": \"SCMP_ACT_ALLOW\"}\n").expect("sec");
        std::fs::write(&envf, "A=1\n# c\n\nB=2\n").expect("env");
        std::fs::write(&labf, "l1=x\n# c\n").expect("lab");
        let b = body(&format!(
            "--cap-add net_admin --cap-drop CAP_MKNOD --cap-add ALL --security-opt seccomp={} --security-opt no-new-privileges \
             --env-file {} --label-file {} -l l2=y --oom-kill-disable --cidfile /tmp/cid --entrypoint '' --tmpfs /run:rw,size=64m \
             --ulimit nofile=1024:2048 --memory-swap -1 --shm-size 128m --init --read-only busybox",
            sec.display(), envf.display(), labf.display()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let h = &b["HostConfig"];
        assert_eq!(h["CapAdd"], json!(["CAP_NET_ADMIN", "ALL"]));
        assert_eq!(h["CapDrop"], json!(["CAP_MKNOD"]));
        assert_eq!(h["SecurityOpt"], json!(["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}", "no-new-privileges"]));
        assert_eq!(b["Env"], json!(["A=1", "B=2"]));
        assert_eq!(b["Labels"], json!({"l1": "x", "l2": "y"}));
        assert_eq!(h["OomKillDisable"], json!(true));
        assert_eq!(h["ContainerIDFile"], json!("/tmp/cid"));
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(h["Tmpfs"], json!({"/run": "rw,size=64m"}));
        assert_eq!(h["Ulimits"], json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}]));
        assert_eq!(h["MemorySwap"], json!(-1));
        assert_eq!(h["ShmSize"], json!(134217728));
        assert_eq!((h["Init"].clone(), h["ReadonlyRootfs"].clone()), (json!(true), json!(true)));
    }

    #[test]
    fn publish_specs() {
        let pb = |ip: &str, port: &str| PortBinding { host_ip: ip.into(), host_port: port.into() };
        let cases: Vec<(&str, Vec<(String, PortBinding)>)> = vec![
            ("80", vec![("80/tcp".into(), pb("", ""))]),
            ("8080:80", vec![("80/tcp".into(), pb("", "8080"))]),
            ("127.0.0.1:8080:80/udp", vec![("80/udp".into(), pb("127.0.0.1", "8080"))]),
            ("127.0.0.1::80", vec![("80/tcp".into(), pb("127.0.0.1", ""))]),
            ("[::1]:8080:80", vec![("80/tcp".into(), pb("::1", "8080"))]),
            ("8080-8081:80-81", vec![("80/tcp".into(), pb("", "8080")), ("81/tcp".into(), pb("", "8081"))]),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_publish(spec).expect(spec), want, "{spec}");
        }
        assert!(parse_publish("abc").is_err());
    }

    #[test]
    fn sizes_and_codes() {
        for (s, want) in [("512m", 536870912i64), ("1g", 1073741824), ("100k", 102400), ("1024", 1024), ("2GiB", 2147483648), ("64mb", 67108864)] {
            assert_eq!(ram_in_bytes(s).expect(s), want, "{s}");
        }
        let cases = [
            ("failed to create shim task: OCI runtime create failed: exec: \"nosuchcmd\": executable file not found in $PATH: unknown", 127),
            ("exec: /x: no such file or directory", 127),
            ("exec: /etc: permission denied", 126),
            ("something else", 125),
        ];
        for (m, code) in cases {
            assert_eq!(start_error_code(m), code, "{m}");
        }
    }

    #[test]
    fn queries_sorted_like_go() {
        assert_eq!(
            query("/containers/x/attach", &[("stream", "1".into()), ("stdin", "1".into()), ("stdout", "1".into()), ("stderr", "1".into())]),
            "/containers/x/attach?stderr=1&stdin=1&stdout=1&stream=1"
        );
        assert_eq!(
            query("/containers/json", &[("filters", filters_json(&["name=web".into()]).expect("f").expect("some"))]),
            "/containers/json?filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D"
        );
    }

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("42m"), Some(2520.0));
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(api_timestamp("30s", 1000), "970");
        assert_eq!(api_timestamp("1700000000", 1000), "1700000000");
        assert_eq!(api_timestamp("2026-11-23T11:29:54Z", 0), "1795433394.000000000");
    }

    #[test]
    fn ps_rows_and_table() {
        let c: ContainerSummary = serde_json::from_value(json!({
            "Id": "4730254c0111d9efc1050132ff34ae1b85576c79640e5e2c7943f3bbb2eae6af", "Names": ["/web"], "Image": "busybox",
            "Command": "sh -c 'while true; do echo tick; sleep 1; done'", "Created": 1000,
            "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"}],
            "Labels": {"trace": "1"}, "State": "running", "Status": "Up 2 minutes",
            "NetworkSettings": {"Networks": {"bridge": {}}}
        }))
        .expect("summary");
        let row = ps_context(&c, true, 1000.0 + 125.0);
        assert_eq!(row["ID"], json!("4730254c0111"));
        assert_eq!(row["Command"], json!("\"sh -c 'while true; …\""));
        assert_eq!(row["RunningFor"], json!("2 minutes ago"));
        assert_eq!(row["Names"], json!("web"));
        assert_eq!(row["Ports"], json!("0.0.0.0:18080->80/tcp"));
        let table = render_rows("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}", &[row.clone()], PS_HEADERS).expect("render");
        assert_eq!(
            table,
            "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                   NAMES\n\
             4730254c0111   busybox   \"sh -c 'while true; …\"   2 minutes ago   Up 2 minutes   0.0.0.0:18080->80/tcp   web\n"
        );
        assert_eq!(render_rows("{{.Names}}\\t{{.Label \"trace\"}}", &[row.clone()], PS_HEADERS).expect("plain"), "web\t1\n");
        let j = render_rows("json", &[row], PS_HEADERS).expect("json");
        assert!(j.starts_with("{\"Command\":") && !j.contains("__"), "{j}");
        assert_eq!(render_rows("table {{.Names}}", &[], PS_HEADERS).expect("empty"), "NAMES\n");
    }
}
