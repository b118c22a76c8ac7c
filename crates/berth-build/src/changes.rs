//! What a config-only instruction does to a container config, shared by the build
//! executor and by `docker commit --change` / `docker import --change` (Docker's
//! `BuildFromConfig`): CMD, ENTRYPOINT (which clears a CMD not set in the same stage or
//! batch), ENV, LABEL, EXPOSE (ranges expanded, protocols lower-cased), WORKDIR (joined
//! and cleaned), USER, VOLUME, STOPSIGNAL, ONBUILD, SHELL, HEALTHCHECK.

use std::collections::BTreeMap;

use berth_api::ContainerConfig;

use crate::instructions::Instruction;
use crate::parser::parse_line;

/// Docker's shell when the config has none.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// The shell form of `cmd` under `shell`, or the exec form as is.
pub fn with_shell(cfg: &ContainerConfig, cmd: &[String], shell_form: bool) -> Vec<String> {
    if !shell_form {
        return cmd.to_vec();
    }
    let mut v = cfg.shell.clone().filter(|s| !s.is_empty()).unwrap_or_else(default_shell);
    v.push(cmd.join(" "));
    v
}

/// Sets `K=V` in an env list (replacing an existing `K`).
pub fn set_env(env: &mut Vec<String>, k: &str, v: &str) {
    let item = format!("{k}={v}");
    match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |x| x.0) == k) {
        Some(e) => *e = item,
        None => env.push(item),
    }
}

/// `80`, `53/UDP`, `8000-8002/tcp` → `80/tcp`, `53/udp`, `8000/tcp` `8001/tcp` `8002/tcp`.
pub fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    // `ip:host:container` forms: only the container part counts.
    let spec = spec.rsplit(':').next().unwrap_or(spec);
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    let parse = |s: &str| s.parse::<u16>().map_err(|_| format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!("invalid range specified for container port: {ports}"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Joins WORKDIR `w` onto the current one and cleans it.
pub fn join_workdir(current: &str, w: &str) -> String {
    let joined = if w.starts_with('/') {
        w.to_string()
    } else {
        format!("{}/{w}", if current.is_empty() { "" } else { current.trim_end_matches('/') })
    };
    let mut out: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

/// Applies one config-only instruction. `cmd_set`: a CMD was set earlier in this stage
/// (or batch), so ENTRYPOINT keeps it.
pub fn apply(cfg: &mut ContainerConfig, inst: &Instruction, cmd_set: &mut bool) -> Result<(), String> {
    match inst {
        Instruction::Cmd { cmd, shell } => {
            cfg.cmd = Some(with_shell(cfg, cmd, *shell));
            *cmd_set = true;
        }
        Instruction::Entrypoint { cmd, shell } => {
            cfg.entrypoint = if *shell && cmd.is_empty() {
                // `ENTRYPOINT ""` / no argument: cleared.
                None
            } else {
                Some(with_shell(cfg, cmd, *shell))
            };
            if !*cmd_set {
                cfg.cmd = None;
            }
        }
        Instruction::Env(kvs) => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in kvs {
                set_env(env, k, v);
            }
        }
        Instruction::Label(kvs) => {
            let labels = cfg.labels.get_or_insert_with(Default::default);
            for (k, v) in kvs {
                labels.insert(k.clone(), v.clone());
            }
        }
        Instruction::Expose(ports) => {
            let map = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                for port in expose_ports(p)? {
                    map.insert(port, serde_json::json!({}));
                }
            }
        }
        Instruction::Workdir(w) => cfg.working_dir = join_workdir(&cfg.working_dir, w),
        Instruction::User(u) => cfg.user = u.clone(),
        Instruction::Volume(vs) => {
            let map = cfg.volumes.get_or_insert_with(BTreeMap::new);
            for v in vs {
                map.insert(v.clone(), serde_json::json!({}));
            }
        }
        Instruction::StopSignal(s) => cfg.stop_signal = Some(s.clone()),
        Instruction::Onbuild(t) => cfg.on_build.get_or_insert_with(Vec::new).push(t.clone()),
        Instruction::Shell(s) => cfg.shell = Some(s.clone()),
        Instruction::Healthcheck(h) => {
            cfg.healthcheck = Some(match h {
                Some(h) => h.to_json(),
                None => serde_json::json!({ "Test": ["NONE"] }),
            })
        }
        _ => return Err("not a config instruction".into()),
    }
    Ok(())
}

/// Applies `docker commit --change` / `docker import --change` instructions (one or
/// more per item, one per line), with the config's own environment for expansion.
pub fn apply_changes(cfg: &mut ContainerConfig, changes: &[String]) -> Result<(), String> {
    let mut cmd_set = false;
    for line in changes.iter().flat_map(|c| c.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let node = parse_line(line, 1, '\\').map_err(|e| e.to_string())?;
        let upper = node.cmd.to_ascii_uppercase();
        if !matches!(
            node.cmd.as_str(),
            "cmd" | "entrypoint" | "env" | "expose" | "label" | "onbuild" | "stopsignal" | "user" | "volume" | "workdir"
        ) {
            return Err(format!("{upper} is not a valid change command"));
        }
        let env = cfg.env.clone().unwrap_or_default();
        let inst = Instruction::from_node(&node, &env, '\\')?;
        apply(cfg, &inst, &mut cmd_set)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            working_dir: "/srv".into(),
            ..Default::default()
        }
    }

    #[test]
    fn change_instructions() {
        let mut c = cfg();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["cat", "/newfile"]"#.into(),
                "ENV A=2 B=\"two words\"".into(),
                "env LEGACY some value".into(),
                "WORKDIR app".into(),
                "EXPOSE 80 53/UDP 7000-7001".into(),
                "LABEL k=v \"x y\"=z".into(),
                "USER nobody".into(),
                "VOLUME /data".into(),
                "STOPSIGNAL SIGINT".into(),
                "ONBUILD RUN echo hi".into(),
                "ENV C=$A".into(),
            ],
        )
        .expect("changes");
        assert_eq!(c.cmd, Some(vec!["cat".to_string(), "/newfile".to_string()]));
        assert_eq!(
            c.env,
            Some(vec![
                "PATH=/bin".into(),
                "A=2".into(),
                "B=two words".into(),
                "LEGACY=some value".into(),
                "C=2".into()
            ])
        );
        assert_eq!(c.working_dir, "/srv/app");
        let ports: Vec<&String> = c.exposed_ports.as_ref().map(|p| p.keys().collect()).unwrap_or_default();
        assert_eq!(ports, ["53/udp", "7000/tcp", "7001/tcp", "80/tcp"]);
        let labels = c.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(labels.get("x y").map(String::as_str), Some("z"));
        assert_eq!(c.user, "nobody");
        assert!(c.volumes.as_ref().is_some_and(|v| v.contains_key("/data")));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.on_build, Some(vec!["RUN echo hi".to_string()]));
    }

    #[test]
    fn entrypoint_and_cmd() {
        let mut c = cfg();
        apply_changes(&mut c, &["ENTRYPOINT echo hi".into()]).expect("changes");
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".to_string(), "-c".to_string(), "echo hi".to_string()]));
        assert_eq!(c.cmd, None);
        let mut c = cfg();
        apply_changes(&mut c, &["CMD [\"x\"]\nENTRYPOINT [\"/e\"]".into()]).expect("changes");
        assert_eq!(c.cmd, Some(vec!["x".to_string()]));
        assert_eq!(c.entrypoint, Some(vec!["/e".to_string()]));
        let mut c = cfg();
        c.shell = Some(vec!["/bin/bash".into(), "-xc".into()]);
        apply_changes(&mut c, &["CMD run me".into()]).expect("changes");
        assert_eq!(c.cmd, Some(vec!["/bin/bash".to_string(), "-xc".to_string(), "run me".to_string()]));
    }

    #[test]
    fn change_errors() {
        for (bad, msg) in [
            ("RUN echo", "RUN is not a valid change command"),
            ("FOO bar", "dockerfile parse error on line 1: unknown instruction: FOO"),
            ("EXPOSE abc", "invalid containerPort: abc"),
            ("ENV A=1 B", "Syntax error - can't find = in \"B\". Must be of the form: name=value"),
            ("ENV =x", "ENV names can not be blank"),
            ("WORKDIR", "WORKDIR requires exactly one argument"),
        ] {
            let e = apply_changes(&mut cfg(), &[bad.into()]).expect_err(bad);
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn workdirs() {
        for (cur, w, want) in [("", "app", "/app"), ("/srv", "app", "/srv/app"), ("/srv", "/x/../y", "/y"), ("/", "a/./b/", "/a/b")] {
            assert_eq!(join_workdir(cur, w), want, "{cur} {w}");
        }
    }
}
