//! `POST /build` (the classic builder's API) and `POST /build/prune`: the query
//! parameters read into the engine's build request, the context body handed over as
//! it arrives, and the engine's build messages written as Docker's JSON stream
//! (`stream`, pull progress, `aux {"ID"}`, `errorDetail` with a failed RUN's code).

use std::collections::BTreeMap;

use berth_api::{ErrorDetail, JsonMessage};
use berth_build::executor::BuildOptions;
use berth_engine::build::{BuildMsg, BuildRequest};
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::http::{channel_body, error, json, json_line, Resp};
use crate::routes::Ctx;
use crate::State;

/// A JSON map parameter (`buildargs`, `labels`); values may be null.
fn json_map(ctx: &Ctx, key: &str) -> Result<BTreeMap<String, Option<String>>, Resp> {
    let v = ctx.q(key);
    if v.is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str(v).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid {key} parameter: {e}")))
}

fn int(ctx: &Ctx, key: &str) -> Result<i64, Resp> {
    Ok(ctx.int_q(key)?.unwrap_or(0))
}

/// The build's options from the query, Docker's defaults (rm true).
fn options(ctx: &Ctx) -> Result<BuildRequest, Resp> {
    let tags = ctx.q_all("t");
    berth_engine::Engine::check_build_tags(&tags).map_err(|e| crate::http::from_error(&e))?;
    let cache_from = match ctx.q("cachefrom") {
        "" => Vec::new(),
        v => serde_json::from_str::<Vec<String>>(v)
            .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid cachefrom parameter: {e}")))?,
    };
    let mut extra_hosts = Vec::new();
    for h in ctx.q_all("extrahosts") {
        extra_hosts.extend(h.split(',').filter(|s| !s.is_empty()).map(String::from));
    }
    if ctx.q("version") == "2" {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BuildKit is not supported by this daemon: use the classic builder (DOCKER_BUILDKIT=0)",
        ));
    }
    if !ctx.q("remote").is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "remote build contexts are not supported by this daemon"));
    }
    let labels = json_map(ctx, "labels")?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
    let opts = BuildOptions {
        tags,
        build_args: json_map(ctx, "buildargs")?,
        no_cache: ctx.flag("nocache"),
        pull: ctx.flag("pull"),
        target: ctx.q("target").to_string(),
        labels,
        rm: ctx.q("rm").is_empty() || ctx.flag("rm"),
        force_rm: ctx.flag("forcerm"),
        cache_from,
        network_mode: ctx.q("networkmode").to_string(),
        extra_hosts,
        shm_size: int(ctx, "shmsize")?,
        memory: int(ctx, "memory")?,
        memswap: int(ctx, "memswap")?,
        cpu_shares: int(ctx, "cpushares")?,
        cpu_period: int(ctx, "cpuperiod")?,
        cpu_quota: int(ctx, "cpuquota")?,
        cpuset_cpus: ctx.q("cpusetcpus").to_string(),
        cpuset_mems: ctx.q("cpusetmems").to_string(),
        platform: ctx.q("platform").to_string(),
    };
    // Go's FormValue: the first of repeated values. docker-py sends an out-of-context
    // Dockerfile as `dockerfile=<name in the tar>&dockerfile=<its contents>`.
    let dockerfile = ctx.q_all("dockerfile").into_iter().next().unwrap_or_default();
    Ok(BuildRequest { opts, dockerfile, quiet: ctx.flag("q"), max_context: 0 })
}

fn message(m: BuildMsg) -> JsonMessage {
    match m {
        BuildMsg::Stream(s) => JsonMessage { stream: Some(s), ..Default::default() },
        BuildMsg::Progress(p) => p,
        BuildMsg::Aux(id) => JsonMessage { aux: Some(json!({ "ID": id })), ..Default::default() },
        BuildMsg::Error { message, code } => JsonMessage {
            error_detail: Some(ErrorDetail { code, message: message.clone() }),
            error: Some(message),
            ..Default::default()
        },
    }
}

/// `POST /build`.
pub async fn build(state: &State, ctx: Ctx) -> Resp {
    let mut req = match options(&ctx) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    req.max_context = state.limits.max_build_context;
    let body = crate::archive::upload_stream(ctx.req.into_body());
    let mut rx = state.engine.build(req, body);
    let (tx, out) = channel_body(64);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if tx.send(json_line(&message(m))).await.is_err() {
                // The client went away; the build goes on to its end so that nothing
                // is left half-made (its containers are removed as usual).
                continue;
            }
        }
    });
    let mut r = Response::new(out);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `POST /build/prune`: the cache entries forgotten (Docker's shape).
pub fn prune(state: &State) -> Resp {
    let removed = state.engine.prune_build_cache();
    json(
        StatusCode::OK,
        &json!({
            "CachesDeleted": if removed.is_empty() { serde_json::Value::Null } else { json!(removed) },
            "SpaceReclaimed": 0,
        }),
    )
}

/// `system df`'s `BuildCache` items.
pub fn disk_usage(state: &State) -> Vec<serde_json::Value> {
    state
        .engine
        .build_cache()
        .into_iter()
        .map(|e| {
            let t = chrono::DateTime::from_timestamp(e.created, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            json!({
                "ID": &e.key[..e.key.len().min(25)],
                "Parent": "",
                "Parents": null,
                "Type": "regular",
                "Description": format!("image {}", e.image),
                "InUse": false,
                "Shared": false,
                "Size": 0,
                "CreatedAt": t,
                "LastUsedAt": t,
                "UsageCount": 1,
            })
        })
        .collect()
}
