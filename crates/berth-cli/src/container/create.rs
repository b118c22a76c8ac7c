//! The body of `POST /containers/create` built from `run`/`create` flags, as docker 28
//! sends it: ports, env and label files, capabilities, security options, resources.

use std::collections::BTreeMap;

use berth_api::{
    ContainerConfig, ContainerCreateRequest, EndpointSettings, HostConfig, LogConfig, NetworkingConfig, PortBinding, RestartPolicy, Ulimit,
};
use serde_json::{json, Value};

use crate::cli::RunArgs;
use crate::Fail;

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

pub(super) fn env_lookup(e: &str) -> Option<String> {
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
        RestartPolicy { name: if name.is_empty() { "no".into() } else { name.into() }, maximum_retry_count: count.parse().map_err(|_| bad("invalid restart policy format: maximum retry count must be an integer".to_string()))? }
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
    let mounts = o.mount.iter().map(|m| mount_spec(m)).collect::<Result<Vec<_>, _>>().map_err(bad)?;
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
        healthcheck: super::health::healthcheck(o)?,
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
        mounts: if mounts.is_empty() { None } else { Some(mounts) },
        ..Default::default()
    };
    Ok(ContainerCreateRequest { config, host_config: Some(host), networking_config: Some(NetworkingConfig { endpoints_config: Some(endpoints) }), runtime: None })
}

/// One `--mount` value (`type=bind,src=/a,dst=/b,readonly`) as the docker CLI's
/// `opts.MountOpt` makes it a `HostConfig.Mounts` entry, with its texts.
fn mount_spec(value: &str) -> Result<Value, String> {
    let mut m = serde_json::Map::new();
    let mut kind = "volume".to_string();
    let (mut bind, mut tmpfs) = (serde_json::Map::new(), serde_json::Map::new());
    let flag = |k: &str, v: Option<&str>| -> Result<bool, String> {
        match v.unwrap_or("true") {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(format!("invalid value for {k}: {other}")),
        }
    };
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || val.ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"));
        match key.as_str() {
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(flag(&key, val)?));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(flag(&key, val)?));
            }
            "type" => kind = need()?.to_string(),
            "source" | "src" => {
                m.insert("Source".into(), json!(need()?));
            }
            "target" | "dst" | "destination" => {
                m.insert("Target".into(), json!(need()?));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(need()?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(need()?.to_ascii_lowercase()));
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(ram_in_bytes(need()?)?));
            }
            "tmpfs-mode" => {
                let v = need()?;
                let mode = u32::from_str_radix(v, 8).map_err(|_| format!("invalid value for {key}: {v}"))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if !m.contains_key("Target") {
        return Err("target is required".into());
    }
    if !bind.is_empty() {
        if kind != "bind" {
            return Err(format!("cannot mix 'bind-*' options with mount type '{kind}'"));
        }
        m.insert("BindOptions".into(), Value::Object(bind));
    }
    if !tmpfs.is_empty() {
        if kind != "tmpfs" {
            return Err(format!("cannot mix 'tmpfs-*' options with mount type '{kind}'"));
        }
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    m.insert("Type".into(), json!(kind));
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn mount_values_as_the_docker_cli_sends_them() {
        let cases: &[(&str, Result<Value, &str>)] = &[
            (
                "type=bind,src=/a,dst=/b,readonly",
                Ok(json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})),
            ),
            (
                "type=bind,source=/a,target=/b,bind-propagation=rshared,bind-nonrecursive",
                Ok(json!({"Type": "bind", "Source": "/a", "Target": "/b",
                          "BindOptions": {"Propagation": "rshared", "NonRecursive": true}})),
            ),
            (
                "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
                Ok(json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770}})),
            ),
            ("src=v,dst=/d", Ok(json!({"Type": "volume", "Source": "v", "Target": "/d"}))),
            ("type=bind,src=/a", Err("target is required")),
            ("type=bind,src=/a,dst=/b,bogus=1", Err("unexpected key 'bogus' in 'bogus=1'")),
            ("type=tmpfs,dst=/t,bind-propagation=shared", Err("cannot mix 'bind-*' options with mount type 'tmpfs'")),
            ("type=bind,src", Err("invalid field 'src' must be a key=value pair")),
        ];
        for (v, want) in cases {
            assert_eq!(mount_spec(v), want.clone().map_err(str::to_string), "{v}");
        }
    }

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
}
