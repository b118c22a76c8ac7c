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
    let started = state.engine.exec_start(id).await;
    let started = match started {
        Ok(s) => s,
        Err(e) if e.kind() == berth_engine::ErrorKind::InvalidArgument && !cfg.detach => {
            // The process could not be started (command not found, …): Docker hijacks
            // anyway and writes the runtime's message into the stream.
            let msg = format!("{}\r\n", e.message);
            let tty = inspect.process_config.tty;
            let (a, b) = match std::os::unix::net::UnixStream::pair() {
                Ok(p) => p,
                Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
            };
            tokio::spawn(async move {
                if let Ok(b) = to_tokio(b) {
                    let mut b = b;
                    let payload = frame(1, msg.as_bytes());
                    let _ = b.write_all(&payload).await;
                    let _ = b.shutdown().await;
                }
            });
            let relay = Relay { tty, stdin: false, detach_keys: String::new(), on_exit: None };
            return hijack::relay(&mut ctx, relay, async move { Some(a) });
        }
        Err(e) => return from_error(&e),
    };
    let engine = state.engine.clone();
    let exec = started.exec.clone();
    let on_exit: hijack::OnExit = Box::new(move |code| engine.exec_finished(&exec, code));
    if cfg.detach {
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
    let relay = Relay {
        tty: started.tty,
        stdin: inspect.open_stdin,
        detach_keys: inspect.detach_keys.clone(),
        on_exit: Some(on_exit),
    };
    let stream = started.stream;
    hijack::relay(&mut ctx, relay, async move { Some(stream) })
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
