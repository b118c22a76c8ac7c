//! `attach` and `exec`, and the hijacked-session plumbing they share with `run`/`start`:
//! the `/wait` reader, stdin pump with detach keys, signal proxy and resize.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use berth_api::{ExecConfig, ExecInspect, IdResponse, WaitResponse};
use berth_client::{stream, Body, Client, Hijacked};
use serde_json::json;

use super::*;
use crate::cli::{AttachArgs, ExecArgs};
use crate::detach::{self, Escape, Scan};
use crate::{term, CmdResult, Ctx, Fail};

/// Spawns the thread that reads a `/wait` body; the result arrives on the channel.
pub(super) fn spawn_wait(resp: berth_client::Response) -> mpsc::Receiver<Result<WaitResponse, String>> {
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
pub(super) fn stream_hijacked(h: Hijacked, tty: bool, stdin: bool, escape: Option<Vec<u8>>) -> io::Result<bool> {
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
/// The query of a live `attach` of stdout and stderr (and stdin, with the detach keys).
pub(super) fn attach_params(stdin: bool, detach_keys: &Option<String>) -> Vec<(&'static str, String)> {
    let mut params = vec![("stream", "1".to_string()), ("stdout", "1".into()), ("stderr", "1".into())];
    if stdin {
        params.push(("stdin", "1".into()));
    }
    if let Some(k) = detach_keys {
        params.push(("detachKeys", k.clone()));
    }
    params
}

pub(super) fn detach_setup(flag: Option<&str>, tty: bool, stdin: bool) -> Result<(Option<Vec<u8>>, Option<String>), Fail> {
    let keys = detach::effective(flag);
    if !(tty && stdin) {
        return Ok((None, keys));
    }
    let bytes = detach::keys_bytes(keys.as_deref()).map_err(|e| Fail::new(1, e))?;
    Ok((Some(bytes), keys))
}

/// Forwards signals as `kill?signal=` (sig-proxy) and turns SIGWINCH into a resize.
pub(super) fn forward_signals(client: &Client, id: &str, resize_path: Option<String>, proxy: bool) {
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
    let params = attach_params(stdin, &detach_keys);
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
