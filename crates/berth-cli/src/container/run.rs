//! `run`, `create` and `start`: create (with auto-pull), attach before start, `/wait`
//! headers before `/start` (trace §4), exit codes from start errors.

use std::io::{self, Write};

use berth_api::reference::{is_full_hex_id, Reference};
use berth_api::ContainerCreateResponse;
use berth_client::Body;

use super::*;
use crate::cli::{RunArgs, StartArgs};
use crate::{term, CmdResult, Ctx, Fail};

/// With trailing var args clap takes an unknown `--foo` before the image as the image;
/// docker rejects it as an unknown flag.
pub(super) fn reject_flag_positional(ctx: &Ctx, path: &str, first: &str) -> Result<(), Fail> {
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
    // docker's ParseAnyReference: a full hex id names a local image and is never pulled.
    let named = if is_full_hex_id(&image) { None } else { Some(Reference::parse(&image).map_err(|e| Fail::new(125, e.to_string()).with_help(cmd_name))?.with_default_tag()) };
    let mut stderr = io::stderr();
    let stderr_tty = term::isatty(2);
    if let (Some(r), "always") = (&named, o.pull.as_str()) {
        pull_image(&mut ctx.client, r, o.platform.as_deref(), &mut stderr, stderr_tty, o.quiet).map_err(|f| daemon_fail(f.msg, cmd_name))?;
    }
    let resp: ContainerCreateResponse = match (ctx.client.post_json(&path, &body), &named) {
        (Ok(r), _) => r,
        (Err(e), Some(r)) if e.is_not_found() && o.pull != "never" => {
            let _ = writeln!(stderr, "Unable to find image '{}' locally", r.familiar());
            pull_image(&mut ctx.client, r, o.platform.as_deref(), &mut stderr, stderr_tty, o.quiet).map_err(|f| daemon_fail(f.msg, cmd_name))?;
            ctx.client.post_json(&path, &body).map_err(|e| daemon_fail(e.to_string(), cmd_name))?
        }
        (Err(e), _) => return Err(daemon_fail(e.to_string(), cmd_name)),
    };
    for w in &resp.warnings {
        let _ = writeln!(stderr, "WARNING: {w}");
    }
    if let Some(f) = &o.cidfile {
        std::fs::write(f, &resp.id).map_err(|e| Fail::new(125, format!("failed to write the container ID to the file: {e}")).with_help(cmd_name))?;
    }
    Ok((resp.id, o.tty))
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
// start

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
        let params = attach_params(stdin, &detach_keys);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
