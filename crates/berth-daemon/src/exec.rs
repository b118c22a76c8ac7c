//! Exec routes: create, start (hijacked, or detached), resize, inspect.

use berth_api::{ExecConfig, ExecStartConfig, IdResponse};
use http::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::hijack::{self, pump_output, to_tokio, Relay};
use crate::limits::Limits;
use crate::http::{error, frame, from_error, json, status_only, Resp};
use crate::routes::Ctx;
use crate::State;

/// Reads a JSON body (empty = default) without consuming the request, which a hijack
/// still needs for its upgrade.
async fn body_json<T: serde::de::DeserializeOwned + Default>(ctx: &mut Ctx, limits: &Limits) -> Result<T, Resp> {
    let bytes = ctx.body(limits).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &e.to_string()))
}

pub async fn create(state: &State, mut ctx: Ctx, id: &str) -> Resp {
    let cfg: ExecConfig = match body_json(&mut ctx, &state.limits).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.engine.exec_create(id, cfg) {
        Ok(exec_id) => json(StatusCode::CREATED, &IdResponse { id: exec_id }),
        Err(e) => from_error(&e),
    }
}

pub async fn start(state: &State, mut ctx: Ctx, id: &str) -> Resp {
    let cfg: ExecStartConfig = match body_json(&mut ctx, &state.limits).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let inspect = match state.engine.exec_inspect(id) {
        Ok(i) => i,
        Err(e) => return from_error(&e),
    };
    if cfg.detach {
        let started = match state.engine.exec_start(id).await {
            Ok(s) => s,
            Err(e) => return from_error(&e),
        };
        let engine = state.engine.clone();
        let exec = started.exec.clone();
        let on_exit: hijack::OnExit = Box::new(move |code| engine.exec_finished(&exec, code));
        // Nobody listens: drain the stream to learn the exit code.
        let tty = started.tty;
        tokio::spawn(async move {
            if let Ok(s) = to_tokio(started.stream) {
                let (r, mut w) = s.into_split();
                let _ = w.shutdown().await;
                let _ = pump_output(r, tokio::io::sink(), tty, Some(on_exit)).await;
            }
        });
        return status_only(StatusCode::OK);
    }
    if let Err(e) = state.engine.exec_check(id) {
        return from_error(&e);
    }
    // The process starts once the client holds the stream (after the 101 for an
    // upgrade); its exit code comes back through `on_exit`.
    let engine = state.engine.clone();
    let on_exit_engine = state.engine.clone();
    let exec_id = id.to_string();
    let started_exec: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<berth_engine::Exec>>>> = Default::default();
    let slot = started_exec.clone();
    let on_exit: hijack::OnExit = Box::new(move |code| {
        let exec = slot.lock().ok().and_then(|mut s| s.take());
        if let Some(exec) = exec {
            on_exit_engine.exec_finished(&exec, code);
        }
    });
    // As Docker: the stream is multiplexed unless the *start* request asks for a TTY,
    // whatever the exec was created with (docker-py creates with a TTY and starts
    // without one, then reads frames).
    let relay = Relay {
        tty: cfg.tty,
        stdin: inspect.open_stdin,
        detach_keys: inspect.detach_keys.clone(),
        on_exit: Some(on_exit),
        prelude: None,
    };
    hijack::relay(&mut ctx, relay, async move {
        match engine.exec_start(&exec_id).await {
            Ok(started) => {
                if let Ok(mut s) = started_exec.lock() {
                    *s = Some(started.exec.clone());
                }
                Some((started.stream, None))
            }
            // The process could not be started (command not found, …): Docker has
            // hijacked already and writes the runtime's message into the stream.
            Err(e) => error_stream(&format!("{}\r\n", e.message)).map(|s| (s, None)),
        }
    })
}

/// A stream that carries one stdout frame with `msg` and then ends.
fn error_stream(msg: &str) -> Option<std::os::unix::net::UnixStream> {
    let (a, b) = std::os::unix::net::UnixStream::pair().ok()?;
    let payload = frame(1, msg.as_bytes());
    tokio::spawn(async move {
        if let Ok(mut b) = to_tokio(b) {
            let _ = b.write_all(&payload).await;
            let _ = b.shutdown().await;
        }
    });
    Some(a)
}

pub async fn resize(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let (h, w) = match crate::containers::size(ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.engine.exec_resize(id, h, w).await {
        Ok(()) => status_only(StatusCode::OK),
        Err(e) => from_error(&e),
    }
}

pub fn inspect(state: &State, id: &str) -> Resp {
    match state.engine.exec_inspect(id) {
        Ok(i) => json(StatusCode::OK, &i),
        Err(e) => from_error(&e),
    }
}
