//! Image routes: list, pull and import (`/images/create`), inspect, tag, remove.

use berth_api::{ErrorDetail, JsonMessage};
use http::{header, HeaderValue, Response, StatusCode};

use crate::http::{channel_body, error, from_error, json, json_line, status_only, Resp};
use crate::routes::Ctx;
use crate::State;

pub async fn list(state: &State, ctx: &Ctx) -> Resp {
    match state.engine.list_images_filtered(ctx.q("filters"), ctx.flag("all")).await {
        Ok(l) => json(StatusCode::OK, &l),
        Err(e) => from_error(&e),
    }
}

pub async fn inspect(state: &State, name: &str) -> Resp {
    match state.engine.inspect_image(name).await {
        Ok(i) => json(StatusCode::OK, &i),
        Err(e) => from_error(&e),
    }
}

/// `GET /images/get?names=…`, `GET /images/{name}/get`: a docker-archive.
pub async fn save(state: &State, names: Vec<String>) -> Resp {
    match state.engine.save_images(&names).await {
        Ok(t) => crate::archive::tar_response(crate::archive::stream_body(t), None),
        Err(e) => from_error(&e),
    }
}

/// `POST /images/load?quiet=`: Docker's `{"stream":"Loaded image: x:y\n"}` lines; an
/// error ends the stream as `errorDetail` with status 200, as Docker's (docker-py
/// raises `ImageLoadError` from it; the CLIs print its message).
pub async fn load(state: &State, ctx: Ctx) -> Resp {
    let body = crate::archive::upload_stream(ctx.req.into_body());
    let (lines, err) = state.engine.load_images(body).await;
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(&json_line(&JsonMessage { stream: Some(format!("{l}\n")), ..Default::default() }));
    }
    if let Some(e) = err {
        out.extend_from_slice(&json_line(&JsonMessage {
            error: Some(e.message.clone()),
            error_detail: Some(berth_api::ErrorDetail { message: e.message.clone(), ..Default::default() }),
            ..Default::default()
        }));
    }
    let mut r = Response::new(crate::http::full(out));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /images/{name}/history`.
pub async fn history(state: &State, name: &str) -> Resp {
    match state.engine.image_history(name).await {
        Ok(h) => json(StatusCode::OK, &h),
        Err(e) => from_error(&e),
    }
}

/// `POST /images/create?fromImage=&tag=`: errors found before anything was streamed
/// are plain HTTP errors (404 unknown manifest, 500 unreachable registry); later ones
/// travel in the stream as `errorDetail`.
pub async fn create(state: &State, ctx: Ctx) -> Resp {
    let from = ctx.q("fromImage");
    if from.is_empty() {
        return import(state, ctx).await;
    }
    let auth = match crate::registry::registry_auth(&ctx) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut rx = match state.engine.pull(from, ctx.q("tag"), ctx.q("platform"), &auth) {
        Ok(rx) => rx,
        Err(e) => return from_error(&e),
    };
    let first = match rx.recv().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return from_error(&e),
        None => return status_only(StatusCode::OK),
    };
    progress_stream(Some(first), rx)
}

/// `POST /images/{name}/push?tag=`: always a 200 stream once the name parsed; the
/// push's errors (unknown tag, refused credentials, registry failures) travel in it as
/// `errorDetail`, as Docker's.
pub async fn push(state: &State, ctx: &Ctx, name: &str) -> Resp {
    let auth = match crate::registry::registry_auth(ctx) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let rx = match state.engine.push(name, ctx.q("tag"), &auth) {
        Ok(rx) => rx,
        Err(e) => return from_error(&e),
    };
    progress_stream(None, rx)
}

/// `POST /images/create?fromSrc=-&repo=&tag=&message=&changes=&platform=` (`docker
/// import`): the body is the archive, streamed to the store (the JSON body cap does not
/// apply). Like Docker, nothing is written to the client until the import ended, so a
/// failure is a plain HTTP error; success is one progress line with the image id.
async fn import(state: &State, ctx: Ctx) -> Resp {
    let src = ctx.q("fromSrc").to_string();
    if src.is_empty() {
        return error(StatusCode::BAD_REQUEST, "fromImage or fromSrc is required");
    }
    let changes = ctx.q_all("changes");
    let opts = berth_engine::ImportOptions {
        src,
        repo: ctx.q("repo").to_string(),
        tag: ctx.q("tag").to_string(),
        message: ctx.q("message").to_string(),
        changes,
        platform: ctx.q("platform").to_string(),
    };
    if opts.src != "-" {
        return import_url(state, opts).await;
    }
    let body = crate::archive::upload_stream(ctx.req.into_body());
    match state.engine.import_image(opts, body).await {
        Ok(id) => {
            let msg = JsonMessage { status: Some(id), ..Default::default() };
            let mut r = Response::new(crate::http::full(json_line(&msg)));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => from_error(&e),
    }
}

/// `fromSrc=<URL>`: a failed GET is a plain HTTP error; once the archive comes,
/// Docker's `Downloading from <URL>` is sent, and the end (the id or the error) follows
/// in the stream.
async fn import_url(state: &State, opts: berth_engine::ImportOptions) -> Resp {
    let (url, body) = match state.engine.fetch_import_source(&opts.src).await {
        Ok(x) => x,
        Err(e) => return from_error(&e),
    };
    let (tx, out) = channel_body(4);
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let first = JsonMessage { status: Some(format!("Downloading from {url}")), ..Default::default() };
        if tx.send(json_line(&first)).await.is_err() {
            return;
        }
        let last = match engine.import_image(opts, body).await {
            Ok(id) => JsonMessage { status: Some(id), ..Default::default() },
            Err(e) => JsonMessage {
                error_detail: Some(ErrorDetail { code: None, message: e.message.clone() }),
                error: Some(e.message),
                ..Default::default()
            },
        };
        let _ = tx.send(json_line(&last)).await;
    });
    let mut r = Response::new(out);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub async fn tag(state: &State, ctx: &Ctx, name: &str) -> Resp {
    match state.engine.tag_image(name, ctx.q("repo"), ctx.q("tag")).await {
        Ok(()) => status_only(StatusCode::CREATED),
        Err(e) => from_error(&e),
    }
}

pub async fn remove(state: &State, ctx: &Ctx, name: &str) -> Resp {
    match state.engine.remove_image(name, ctx.flag("force")).await {
        Ok(items) => json(StatusCode::OK, &items),
        Err(e) => from_error(&e),
    }
}

pub async fn prune(state: &State, ctx: &Ctx) -> Resp {
    match state.engine.prune_images(ctx.q("filters")).await {
        Ok((items, reclaimed)) => json(
            StatusCode::OK,
            &berth_api::ImagesPruneResponse {
                images_deleted: (!items.is_empty()).then_some(items),
                space_reclaimed: reclaimed,
            },
        ),
        Err(e) => from_error(&e),
    }
}

/// A 200 `application/json` stream of pull/push progress: `first` (already taken off
/// the channel to choose the status), then each message; an error becomes Docker's
/// `errorDetail` line.
fn progress_stream(
    first: Option<JsonMessage>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<berth_engine::Result<JsonMessage>>,
) -> Resp {
    let (tx, body) = channel_body(64);
    tokio::spawn(async move {
        if let Some(first) = first {
            if tx.send(json_line(&first)).await.is_err() {
                return;
            }
        }
        while let Some(item) = rx.recv().await {
            let msg = match item {
                Ok(m) => m,
                Err(e) => JsonMessage {
                    error_detail: Some(ErrorDetail { code: None, message: e.message.clone() }),
                    error: Some(e.message),
                    ..Default::default()
                },
            };
            if tx.send(json_line(&msg)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
