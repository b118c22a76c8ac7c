//! Volume routes: `GET /volumes`, `POST /volumes/create`, `GET|DELETE /volumes/{name}`,
//! `POST /volumes/prune`. The engine (`berth_engine::volumes`, `volume_mounts`) does
//! the work; this is the HTTP edge.

use berth_api::version::ApiVersion;
use berth_api::{VolumeCreateBody, VolumeListResponse};
use http::{Method, StatusCode};

use crate::http::{error, from_error, json, status_only, Resp};
use crate::routes::Ctx;
use crate::State;

/// Dispatches `/volumes…`.
pub async fn route(state: &State, mut ctx: Ctx) -> Resp {
    let path = ctx.path.clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = ctx.req.method().clone();
    match (&method, segs.as_slice()) {
        (&Method::GET, ["volumes"]) => list(state, &ctx),
        (&Method::POST, ["volumes", "create"]) => create(state, &mut ctx).await,
        (&Method::POST, ["volumes", "prune"]) => prune(state, &ctx).await,
        (&Method::GET, ["volumes", name]) => match state.engine.inspect_volume(name) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => from_error(&e),
        },
        (&Method::DELETE, ["volumes", name]) => match state.engine.remove_volume(name, ctx.flag("force")).await {
            Ok(()) => status_only(StatusCode::NO_CONTENT),
            Err(e) => from_error(&e),
        },
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
}

fn list(state: &State, ctx: &Ctx) -> Resp {
    match state.engine.list_volumes(ctx.q("filters")) {
        Ok(volumes) => json(StatusCode::OK, &VolumeListResponse { volumes, warnings: None }),
        Err(e) => from_error(&e),
    }
}

async fn create(state: &State, ctx: &mut Ctx) -> Resp {
    let body = match ctx.body(&state.limits).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: VolumeCreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        VolumeCreateBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    };
    match state.engine.create_volume(req).await {
        Ok(v) => json(StatusCode::CREATED, &v),
        Err(e) => from_error(&e),
    }
}

/// Before API 1.42 a prune removed every unused volume; since, only anonymous ones
/// unless the `all` filter says otherwise.
async fn prune(state: &State, ctx: &Ctx) -> Resp {
    let old_api = ctx
        .version
        .as_deref()
        .and_then(ApiVersion::parse)
        .is_some_and(|v| v < ApiVersion { major: 1, minor: 42 });
    match state.engine.prune_volumes(ctx.q("filters"), old_api).await {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => from_error(&e),
    }
}

/// Docker refuses `VolumeOptions.Subpath` from clients older than API 1.45 (the field
/// did not exist for them); the 400 for a create body that has one.
pub fn subpath_too_new(raw: &serde_json::Value, version: Option<&str>) -> Option<Resp> {
    let old = version.and_then(ApiVersion::parse).is_some_and(|v| v < ApiVersion { major: 1, minor: 45 });
    let mounts = raw.pointer("/HostConfig/Mounts").and_then(serde_json::Value::as_array)?;
    let has = mounts.iter().any(|m| {
        m.pointer("/VolumeOptions/Subpath").and_then(serde_json::Value::as_str).is_some_and(|s| !s.is_empty())
    });
    (old && has).then(|| error(StatusCode::BAD_REQUEST, "VolumeOptions.Subpath needs API v1.45 or newer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpath_needs_api_1_45() {
        let body = serde_json::json!({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x",
            "VolumeOptions": {"Subpath": "a"}}]}});
        let plain = serde_json::json!({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x"}]}});
        let cases: &[(&serde_json::Value, Option<&str>, bool)] = &[
            (&body, Some("1.44"), true),
            (&body, Some("1.45"), false),
            (&body, None, false),
            (&plain, Some("1.41"), false),
        ];
        for (b, v, refused) in cases {
            assert_eq!(subpath_too_new(b, *v).is_some(), *refused, "{v:?} {b}");
        }
    }
}
