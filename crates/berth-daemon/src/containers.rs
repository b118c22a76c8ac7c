//! Container routes. Streaming ones follow the trace: `/wait` flushes its headers at
//! once and writes the body at exit; `/attach` answers 101 and then relays the shim's
//! stream (frames kept for non-TTY containers, stripped for TTY ones); `/logs` frames
//! non-TTY output.

use berth_api::{ContainerCreateRequest, ContainersPruneResponse};
use berth_engine::{AttachOpts, LogOptions, WaitCondition};
use http::{header, HeaderValue, Response, StatusCode};

use crate::hijack;
use crate::http::{channel_body, error, frame, from_error, json, json_line, status_only, Resp};
use crate::routes::Ctx;
use crate::State;

pub async fn create(state: &State, mut ctx: Ctx) -> Resp {
    let name = ctx.q("name").to_string();
    let body = match ctx.body(&state.limits).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let raw: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) if e.is_eof() => return error(StatusCode::BAD_REQUEST, "unexpected EOF"),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    drop(body);
    if let Err(e) = berth_engine::validate::create_body_shape(&raw) {
        return from_error(&e);
    }
    if let Some(r) = crate::volumes::subpath_too_new(&raw, ctx.version.as_deref()) {
        return r;
    }
    let mut req: ContainerCreateRequest = match serde_json::from_value(raw) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let api_1_44 = berth_api::version::ApiVersion { major: 1, minor: 44 };
    if ctx.version.as_deref().and_then(berth_api::version::ApiVersion::parse).is_some_and(|v| v < api_1_44) {
        berth_engine::health::drop_start_interval(&mut req.config.healthcheck);
    }
    match state.engine.create(Some(&name), req).await {
        Ok(r) => json(StatusCode::CREATED, &r),
        Err(e) => from_error(&e),
    }
}

pub fn list(state: &State, ctx: &Ctx) -> Resp {
    let limit = match ctx.int_q("limit") {
        Ok(l) => l,
        Err(r) => return r,
    };
    match state.engine.list(ctx.flag("all"), ctx.q("filters"), ctx.flag("size")) {
        Ok(mut v) => {
            if let Some(n) = limit.filter(|n| *n > 0) {
                v.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            }
            json(StatusCode::OK, &v)
        }
        Err(e) => from_error(&e),
    }
}

pub fn inspect(state: &State, id: &str) -> Resp {
    match state.engine.inspect(id) {
        Ok(i) => json(StatusCode::OK, &i),
        Err(e) => from_error(&e),
    }
}

pub async fn start(state: &State, id: &str) -> Resp {
    match state.engine.start(id).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

/// `t` (or the older `timeout`) in seconds; a value that is no integer is a 400.
fn timeout(ctx: &Ctx) -> Result<Option<i64>, Resp> {
    match ctx.int_q("t")? {
        Some(t) => Ok(Some(t)),
        None => ctx.int_q("timeout"),
    }
}

pub async fn stop(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let t = match timeout(ctx) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match state.engine.stop(id, t, Some(ctx.q("signal"))).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

pub async fn restart(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let t = match timeout(ctx) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match state.engine.restart(id, t, Some(ctx.q("signal"))).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

pub async fn kill(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let sig = ctx.q("signal");
    match state.engine.kill(id, Some(sig)).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

pub async fn remove(state: &State, ctx: &Ctx, id: &str) -> Resp {
    match state.engine.remove_container(id, ctx.flag("force"), ctx.flag("v")).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

pub fn rename(state: &State, ctx: &Ctx, id: &str) -> Resp {
    match state.engine.rename(id, ctx.q("name")) {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

/// Headers now, `{"StatusCode":N}` when the condition is met.
pub fn wait(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let cond = match WaitCondition::parse(ctx.q("condition")) {
        Ok(c) => c,
        Err(e) => return from_error(&e),
    };
    let fut = match state.engine.wait(id, cond) {
        Ok(f) => f,
        Err(e) => return from_error(&e),
    };
    let (tx, body) = channel_body(1);
    tokio::spawn(async move {
        tokio::select! {
            r = fut => { let _ = tx.send(json_line(&r)).await; }
            _ = tx.closed() => tracing::debug!("client went away: abandoned wait"),
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn attach(state: &State, mut ctx: Ctx, id: &str) -> Resp {
    let opts = AttachOpts {
        stdin: ctx.flag("stdin"),
        stdout: ctx.flag("stdout"),
        stderr: ctx.flag("stderr"),
    };
    // As Docker: `logs=1` replays the whole log first; `stream=0` ends after that
    // (without registering for the live output at all).
    let (logs, live) = (ctx.flag("logs"), ctx.flag("stream"));
    let tty = match state.engine.inspect(id) {
        Ok(i) => i.config.tty,
        Err(e) => return from_error(&e),
    };
    let log_opts = LogOptions { stdout: opts.stdout, stderr: opts.stderr, ..Default::default() };
    // The replay first: a log that cannot be read is refused before registering.
    let mut prelude = if logs && (opts.stdout || opts.stderr) {
        match log_prelude(state, id, tty, log_opts.clone()) {
            Ok(p) => Some(p),
            Err(r) => return r,
        }
    } else {
        None
    };
    let ticket = if live {
        match state.engine.attach(id, opts) {
            Ok((_, t)) => Some(t),
            Err(e) => return from_error(&e),
        }
    } else {
        None
    };
    if let Some(berth_engine::AttachTicket::Replay { since }) = &ticket {
        // A late attach: this run's output (the whole log with `logs=1`) from the log,
        // followed until the container exits.
        let o = LogOptions { follow: true, since: (!logs).then_some(*since), ..log_opts };
        match log_prelude(state, id, tty, o) {
            Ok(p) => prelude = Some(p),
            Err(r) => return r,
        }
    }
    let relay = |stdin: bool| hijack::Relay {
        tty,
        stdin,
        detach_keys: ctx.q("detachKeys").to_string(),
        on_exit: None,
        prelude,
    };
    let Some(ticket) = ticket else {
        let relay = relay(false);
        return hijack::relay(&mut ctx, relay, async { None });
    };
    let relay = relay(opts.stdin);
    hijack::relay(&mut ctx, relay, async move { ticket.stream().await.map(|(s, g)| (s, Some(g))) })
}

/// The container's log as frames (raw bytes for a TTY) on a channel: attach's replay.
fn log_prelude(
    state: &State,
    id: &str,
    tty: bool,
    log_opts: LogOptions,
) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>, Resp> {
    let (_, mut rx) = state.engine.logs(id, log_opts).map_err(|e| from_error(&e))?;
    let (tx, out) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(entry) = rx.recv().await {
            let b = if tty { bytes::Bytes::from(entry.data) } else { frame(entry.stream, &entry.data) };
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
    Ok(out)
}

pub async fn pause(state: &State, id: &str) -> Resp {
    match state.engine.pause(id).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

pub async fn unpause(state: &State, id: &str) -> Resp {
    match state.engine.unpause(id).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

/// `h` and `w` of a resize request.
pub fn size(ctx: &Ctx) -> Result<(u16, u16), Resp> {
    match (ctx.q("h").parse::<u16>(), ctx.q("w").parse::<u16>()) {
        (Ok(h), Ok(w)) => Ok((h, w)),
        _ => Err(error(StatusCode::BAD_REQUEST, "invalid resize parameters")),
    }
}

pub async fn resize(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let (h, w) = match size(ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.engine.resize(id, h, w).await {
        Ok(()) => status_only(StatusCode::OK),
        Err(e) => from_error(&e),
    }
}

pub async fn top(state: &State, ctx: &Ctx, id: &str) -> Resp {
    match state.engine.top(id, ctx.q("ps_args")).await {
        Ok(t) => json(StatusCode::OK, &t),
        Err(e) => from_error(&e),
    }
}

/// One sample (`stream=0`, taken twice 1 s apart so precpu is filled, as Docker does
/// unless `one-shot=1`) or one per second until the client goes.
pub fn stats(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let stream = ctx.query.get("stream").is_none_or(|v| v == "1" || v == "true");
    let one_shot = ctx.flag("one-shot");
    let first = match state.engine.stats_sample(id, None) {
        Ok(s) => s,
        Err(e) => return from_error(&e),
    };
    let engine = state.engine.clone();
    let id = id.to_string();
    if !stream {
        let (tx, body) = channel_body(1);
        tokio::spawn(async move {
            let sample = if one_shot {
                first
            } else {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                engine.stats_sample(&id, Some(&first)).unwrap_or(first)
            };
            let _ = tx.send(json_line(&sample)).await;
        });
        let mut r = Response::new(body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    }
    let (tx, body) = channel_body(1);
    tokio::spawn(async move {
        let mut prev = first;
        if tx.send(json_line(&prev)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = tx.closed() => return,
            }
            let Ok(next) = engine.stats_sample(&id, Some(&prev)) else { return };
            if tx.send(json_line(&next)).await.is_err() {
                return;
            }
            prev = next;
        }
    });
    Response::new(body)
}

pub async fn update(state: &State, mut ctx: Ctx, id: &str) -> Resp {
    let body = match ctx.body(&state.limits).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut upd: berth_api::HostConfig = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    // An update without a RestartPolicy keeps the container's.
    let has_policy = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .is_some_and(|v| v.get("RestartPolicy").is_some_and(|p| !p.is_null()));
    if !has_policy {
        upd.restart_policy.name.clear();
    }
    match state.engine.update(id, upd).await {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({"Warnings": []})),
        Err(e) => from_error(&e),
    }
}

pub fn logs(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let stdout = ctx.flag("stdout");
    let stderr = ctx.flag("stderr");
    if !stdout && !stderr {
        return error(StatusCode::BAD_REQUEST, "Bad parameters: you must choose at least one stream");
    }
    // Zero means "no bound", as in Docker; a value that is no timestamp is a 400.
    let (since, until) = match (ctx.timestamp_q("since"), ctx.timestamp_q("until")) {
        (Ok(s), Ok(u)) => (s.filter(|t| *t > 0.0), u.filter(|t| *t > 0.0)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let opts = LogOptions {
        stdout,
        stderr,
        follow: ctx.flag("follow"),
        // Docker reads a tail that is no number ("all") as everything.
        tail: ctx.q("tail").parse().ok(),
        since,
        until,
        timestamps: ctx.flag("timestamps"),
    };
    let (tty, mut rx) = match state.engine.logs(id, opts) {
        Ok(x) => x,
        Err(e) => return from_error(&e),
    };
    let (tx, body) = channel_body(64);
    tokio::spawn(async move {
        while let Some(entry) = rx.recv().await {
            let b = if tty { bytes::Bytes::from(entry.data) } else { frame(entry.stream, &entry.data) };
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
    Response::new(body)
}

/// `POST /containers/prune`: removes stopped containers.
pub async fn prune(state: &State, ctx: &Ctx) -> Resp {
    match state.engine.prune_containers(ctx.q("filters")).await {
        Ok((deleted, reclaimed)) => json(
            StatusCode::OK,
            &ContainersPruneResponse {
                containers_deleted: (!deleted.is_empty()).then_some(deleted),
                space_reclaimed: reclaimed,
            },
        ),
        Err(e) => from_error(&e),
    }
}
