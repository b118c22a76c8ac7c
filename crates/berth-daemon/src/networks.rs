//! `/networks`: list (filters), inspect (`verbose`, `scope`), create, remove, prune,
//! connect and disconnect, over the engine's network operations. Status codes come from
//! the engine's error kinds (403 for pre-defined networks and active endpoints, 404,
//! 409 for a taken name); bodies and their errors are read here.

use berth_api::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkPruneResponse};
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::http::{error, from_error, json, status_only, Resp};
use crate::routes::Ctx;
use crate::State;

/// A JSON body, with Docker's 400 texts for an empty or malformed one.
async fn read_json<T: DeserializeOwned>(state: &State, ctx: &mut Ctx) -> Result<T, Resp> {
    let body = ctx.body(&state.limits).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(error(StatusCode::BAD_REQUEST, "invalid JSON: got EOF while reading request body"));
    }
    serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")))
}

pub fn list(state: &State, ctx: &Ctx) -> Resp {
    match state.engine.list_networks(ctx.q("filters")) {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => from_error(&e),
    }
}

pub fn inspect(state: &State, ctx: &Ctx, id: &str) -> Resp {
    // Every Berth network is local: asking for another scope finds nothing.
    let scope = ctx.q("scope");
    if !scope.is_empty() && scope != "local" {
        return error(StatusCode::NOT_FOUND, &format!("network {id} not found"));
    }
    match state.engine.inspect_network(id) {
        Ok(n) => json(StatusCode::OK, &n),
        Err(e) => from_error(&e),
    }
}

pub async fn create(state: &State, mut ctx: Ctx) -> Resp {
    let req: NetworkCreateRequest = match read_json(state, &mut ctx).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.engine.create_network(req).await {
        Ok(r) => json(StatusCode::CREATED, &r),
        Err(e) => from_error(&e),
    }
}

pub async fn remove(state: &State, id: &str) -> Resp {
    match state.engine.remove_network(id).await {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

pub async fn prune(state: &State, ctx: &Ctx) -> Resp {
    match state.engine.prune_networks(ctx.q("filters")).await {
        Ok(deleted) => json(StatusCode::OK, &NetworkPruneResponse { networks_deleted: (!deleted.is_empty()).then_some(deleted) }),
        Err(e) => from_error(&e),
    }
}

pub async fn connect(state: &State, mut ctx: Ctx, id: &str) -> Resp {
    let req: NetworkConnectRequest = match read_json(state, &mut ctx).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.engine.connect_network(id, &req.container, req.endpoint_config).await {
        Ok(()) => status_only(StatusCode::OK),
        Err(e) => from_error(&e),
    }
}

pub async fn disconnect(state: &State, mut ctx: Ctx, id: &str) -> Resp {
    let req: NetworkDisconnectRequest = match read_json(state, &mut ctx).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.engine.disconnect_network(id, &req.container, req.force).await {
        Ok(()) => status_only(StatusCode::OK),
        Err(e) => from_error(&e),
    }
}
