//! Routing: strips and checks the `/vX.Y` prefix, then dispatches by method and path to
//! the handlers of each resource. Image names in paths are not escaped and contain `/`
//! and `:`, so image routes are matched by suffix, not by segments.

use std::collections::HashMap;

use berth_api::version::{check_version, split_version_prefix};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use crate::http::{common_headers, error, Resp};
use crate::{containers, exec, images, networks, registry, system, State};

/// What a handler gets: the request (for its body, headers and upgrade), the path
/// without the version prefix, the decoded query and the negotiated version.
pub struct Ctx {
    pub req: Request<Incoming>,
    pub path: String,
    pub query: HashMap<String, String>,
    pub version: Option<String>,
}

impl Ctx {
    pub fn q(&self, key: &str) -> &str {
        self.query.get(key).map(String::as_str).unwrap_or("")
    }

    /// Docker's booleans: `1`, `true`, `True`; absent or `0`/`false` is false.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), "1" | "true" | "True" | "TRUE")
    }

    /// The whole request body, within the daemon's size and time limits (413/408
    /// answers otherwise); the request stays usable for an upgrade.
    pub async fn body(&mut self, limits: &crate::limits::Limits) -> Result<bytes::Bytes, Resp> {
        let (parts, body) = (self.req.headers().clone(), self.req.body_mut());
        crate::limits::read_body(body, &parts, limits).await
    }

    /// Every non-empty value of a parameter that repeats (`changes`, one per
    /// `--change`): the decoded query map keeps only the last.
    pub fn q_all(&self, key: &str) -> Vec<String> {
        url::form_urlencoded::parse(self.req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// An integer parameter as Go's `strconv.Atoi` reads it; absent or empty is `None`,
    /// anything else that is not a number is Docker's 400.
    pub fn int_q(&self, key: &str) -> Result<Option<i64>, Resp> {
        parse_int_param(self.q(key)).map_err(|m| error(StatusCode::BAD_REQUEST, &m))
    }

    /// A `since`/`until` timestamp: Unix seconds with optional fractional digits, as
    /// Docker's `timetypes.ParseTimestamps`; absent or empty is `None`.
    pub fn timestamp_q(&self, key: &str) -> Result<Option<f64>, Resp> {
        parse_timestamp_param(self.q(key)).map_err(|m| error(StatusCode::BAD_REQUEST, &m))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }
}

fn parse_int_param(v: &str) -> Result<Option<i64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<i64>().map(Some).map_err(|_| format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
}

fn parse_timestamp_param(v: &str) -> Result<Option<f64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let bad = |p: &str| format!("strconv.ParseInt: parsing {p:?}: invalid syntax");
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let s: i64 = secs.parse().map_err(|_| bad(secs))?;
    if v.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad(frac));
    }
    let nanos = if frac.is_empty() { 0.0 } else { format!("0.{frac}").parse::<f64>().map_err(|_| bad(frac))? };
    Ok(Some(s as f64 + nanos))
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect()
}

pub async fn handle(state: State, req: Request<Incoming>) -> Resp {
    let raw_path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let (version, path) = split_version_prefix(&raw_path);
    let version = version.map(str::to_owned);
    let path = path.to_string();
    let mut resp = if let Some(v) = version.as_deref().map(check_version).and_then(Result::err) {
        error(StatusCode::BAD_REQUEST, &v)
    } else {
        let ctx = Ctx { req, path, query, version };
        dispatch(state, ctx).await
    };
    common_headers(&mut resp);
    resp
}

async fn dispatch(state: State, ctx: Ctx) -> Resp {
    let method = ctx.req.method().clone();
    let path = ctx.path.clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => system::ping(&ctx),
        (&Method::GET, ["version"]) => system::version(&state),
        (&Method::GET, ["info"]) => system::info(&state),
        (&Method::POST, ["auth"]) => registry::auth(&state, ctx).await,
        (&Method::GET, ["system", "df"]) => system::disk_usage(&state),
        (&Method::POST, ["build", "prune"]) => crate::build::prune(&state),
        (&Method::POST, ["build"]) => crate::build::build(&state, ctx).await,

        (&Method::GET, ["containers", "json"]) => containers::list(&state, &ctx),
        (&Method::POST, ["containers", "create"]) => containers::create(&state, ctx).await,
        (&Method::POST, ["containers", "prune"]) => containers::prune(&state, &ctx).await,
        (&Method::GET, ["containers", id, "json"]) => containers::inspect(&state, id),
        (&Method::GET, ["containers", id, "logs"]) => containers::logs(&state, &ctx, id),
        (&Method::POST, ["containers", id, "start"]) => containers::start(&state, id).await,
        (&Method::POST, ["containers", id, "stop"]) => containers::stop(&state, &ctx, id).await,
        (&Method::POST, ["containers", id, "restart"]) => containers::restart(&state, &ctx, id).await,
        (&Method::POST, ["containers", id, "kill"]) => containers::kill(&state, &ctx, id).await,
        (&Method::POST, ["containers", id, "wait"]) => containers::wait(&state, &ctx, id),
        (&Method::POST, ["containers", id, "rename"]) => containers::rename(&state, &ctx, id),
        (&Method::POST, ["containers", id, "attach"]) => {
            let id = id.to_string();
            containers::attach(&state, ctx, &id)
        }
        (&Method::DELETE, ["containers", id]) => containers::remove(&state, &ctx, id).await,
        (&Method::POST, ["containers", id, "pause"]) => containers::pause(&state, id).await,
        (&Method::POST, ["containers", id, "unpause"]) => containers::unpause(&state, id).await,
        (&Method::POST, ["containers", id, "resize"]) => containers::resize(&state, &ctx, id).await,
        (&Method::GET, ["containers", id, "top"]) => containers::top(&state, &ctx, id).await,
        (&Method::GET, ["containers", id, "stats"]) => containers::stats(&state, &ctx, id),
        (&Method::POST, ["containers", id, "update"]) => {
            let id = id.to_string();
            containers::update(&state, ctx, &id).await
        }
        (&Method::POST, ["containers", id, "exec"]) => {
            let id = id.to_string();
            exec::create(&state, ctx, &id).await
        }
        (&Method::POST, ["exec", id, "start"]) => {
            let id = id.to_string();
            exec::start(&state, ctx, &id).await
        }
        (&Method::POST, ["exec", id, "resize"]) => exec::resize(&state, &ctx, id).await,
        (&Method::GET, ["exec", id, "json"]) => exec::inspect(&state, id),
        (&Method::GET, ["events"]) => system::events(&state, &ctx),

        (&Method::GET | &Method::HEAD, ["containers", id, "archive"]) => {
            let id = id.to_string();
            crate::archive::get(&state, ctx, &id).await
        }
        (&Method::PUT, ["containers", id, "archive"]) => {
            let id = id.to_string();
            crate::archive::put(&state, ctx, &id).await
        }
        (&Method::GET, ["containers", id, "changes"]) => crate::archive::changes(&state, id).await,
        (&Method::GET, ["containers", id, "export"]) => crate::archive::export(&state, id).await,
        (&Method::POST, ["commit"]) => crate::archive::commit(&state, ctx).await,

        (&Method::GET, ["images", "json"]) => images::list(&state, &ctx).await,
        (&Method::POST, ["images", "create"]) => images::create(&state, ctx).await,
        (&Method::GET, ["images", "search"]) => registry::search(&state, &ctx).await,
        (&Method::POST, ["images", "prune"]) => images::prune(&state, &ctx).await,
        (&Method::GET, ["images", "get"]) => images::save(&state, ctx.q_all("names")).await,
        (&Method::POST, ["images", "load"]) => images::load(&state, ctx).await,
        (&Method::GET, ["swarm"]) => crate::swarm::inspect(),
        (&Method::POST, ["swarm", "leave"]) => crate::swarm::leave(),
        (&Method::DELETE, ["containers", parent, alias]) if ctx.flag("link") => networks::remove_link(&state, parent, alias).await,
        (&Method::GET, ["networks"]) => networks::list(&state, &ctx),
        (&Method::POST, ["networks", "create"]) => networks::create(&state, ctx).await,
        (&Method::POST, ["networks", "prune"]) => networks::prune(&state, &ctx).await,
        (&Method::GET, ["networks", id]) => networks::inspect(&state, &ctx, id),
        (&Method::DELETE, ["networks", id]) => networks::remove(&state, id).await,
        (&Method::POST, ["networks", id, "connect"]) => {
            let id = id.to_string();
            networks::connect(&state, ctx, &id).await
        }
        (&Method::POST, ["networks", id, "disconnect"]) => {
            let id = id.to_string();
            networks::disconnect(&state, ctx, &id).await
        }
        _ if path == "/volumes" || path.starts_with("/volumes/") => crate::volumes::route(&state, ctx).await,
        _ if path.starts_with("/images/") => image_route(state, ctx).await,
        (&Method::GET, _) if path.starts_with("/distribution/") && path.ends_with("/json") => {
            let name = path["/distribution/".len()..path.len() - "/json".len()].to_string();
            registry::distribution(&state, &ctx, &name).await
        }
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
}

/// `/images/{name:.+}/json|tag|history` and `DELETE /images/{name:.+}`.
async fn image_route(state: State, ctx: Ctx) -> Resp {
    let rest = &ctx.path["/images/".len()..];
    let method = ctx.req.method().clone();
    if method == Method::GET {
        if let Some(name) = rest.strip_suffix("/json") {
            return images::inspect(&state, name).await;
        }
        if let Some(name) = rest.strip_suffix("/history") {
            return images::history(&state, name).await;
        }
        if let Some(name) = rest.strip_suffix("/get") {
            return images::save(&state, vec![name.to_string()]).await;
        }
    }
    if method == Method::POST {
        if let Some(name) = rest.strip_suffix("/tag") {
            return images::tag(&state, &ctx, name).await;
        }
        if let Some(name) = rest.strip_suffix("/push") {
            return images::push(&state, &ctx, name).await;
        }
    }
    if method == Method::DELETE && !rest.is_empty() {
        return images::remove(&state, &ctx, rest).await;
    }
    error(StatusCode::NOT_FOUND, "page not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_and_timestamp_params_like_go() {
        assert_eq!(parse_int_param(""), Ok(None));
        assert_eq!(parse_int_param("-1"), Ok(Some(-1)));
        assert_eq!(parse_int_param("abc"), Err("strconv.Atoi: parsing \"abc\": invalid syntax".into()));
        assert_eq!(parse_int_param("1.5"), Err("strconv.Atoi: parsing \"1.5\": invalid syntax".into()));
        assert_eq!(parse_timestamp_param(""), Ok(None));
        assert_eq!(parse_timestamp_param("1700000000"), Ok(Some(1_700_000_000.0)));
        assert_eq!(parse_timestamp_param("10.5"), Ok(Some(10.5)));
        assert_eq!(parse_timestamp_param("abc"), Err("strconv.ParseInt: parsing \"abc\": invalid syntax".into()));
        assert_eq!(parse_timestamp_param("1.x"), Err("strconv.ParseInt: parsing \"x\": invalid syntax".into()));
    }
}
