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

/// A path segment with its %XX escapes decoded (`test%2001` is the network `test 01`).
fn decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `DELETE /containers/{parent}/{alias}?link=1`: removes a legacy link.
pub async fn remove_link(state: &State, parent: &str, alias: &str) -> Resp {
    match state.engine.remove_link(&decode(parent), &decode(alias)) {
        Ok(()) => status_only(StatusCode::NO_CONTENT),
        Err(e) => from_error(&e),
    }
}

pub fn inspect(state: &State, ctx: &Ctx, id: &str) -> Resp {
    let id = &decode(id);
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
    let id = &decode(id);
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
    let id = &decode(id);
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
    let id = &decode(id);
    let req: NetworkDisconnectRequest = match read_json(state, &mut ctx).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.engine.disconnect_network(id, &req.container, req.force).await {
        Ok(()) => status_only(StatusCode::OK),
        Err(e) => from_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn path_segments_decode() {
        for (raw, want) in [("test%2001", "test 01"), ("plain", "plain"), ("bad%2", "bad%2"), ("%zz", "%zz"), ("a%2F", "a/")] {
            assert_eq!(decode(raw), want, "{raw}");
        }
    }
}
