//! Image routes: list, pull (`/images/create`), inspect, tag, remove.

use berth_api::{ErrorDetail, JsonMessage};
use http::{header, HeaderValue, Response, StatusCode};

use crate::http::{channel_body, error, from_error, json, json_line, status_only, Resp};
use crate::routes::Ctx;
use crate::State;

pub fn list(state: &State) -> Resp {
    json(StatusCode::OK, &state.engine.list_images())
}

pub async fn inspect(state: &State, name: &str) -> Resp {
    match state.engine.inspect_image(name).await {
        Ok(i) => json(StatusCode::OK, &i),
        Err(e) => from_error(&e),
    }
}

/// `POST /images/create?fromImage=&tag=`: errors found before anything was streamed
/// are plain HTTP errors (404 unknown manifest, 500 unreachable registry); later ones
/// travel in the stream as `errorDetail`.
pub async fn create(state: &State, ctx: &Ctx) -> Resp {
    let from = ctx.q("fromImage");
    if from.is_empty() {
        return error(StatusCode::BAD_REQUEST, "fromImage or fromSrc is required (import is not supported yet)");
    }
    let mut rx = match state.engine.pull(from, ctx.q("tag")) {
        Ok(rx) => rx,
        Err(e) => return from_error(&e),
    };
    let first = match rx.recv().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return from_error(&e),
        None => return status_only(StatusCode::OK),
    };
    let (tx, body) = channel_body(64);
    tokio::spawn(async move {
        if tx.send(json_line(&first)).await.is_err() {
            return;
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
