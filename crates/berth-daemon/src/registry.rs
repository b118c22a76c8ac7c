//! Registry-facing routes: `POST /auth` (Docker's login check) and the
//! `X-Registry-Auth` header that pull and push carry. The registry work is the
//! engine's (berth-image's client); this file only decodes and answers.

use berth_image::AuthConfig;
use http::StatusCode;

use crate::http::{error, from_error, json, Resp};
use crate::routes::Ctx;
use crate::State;

/// The credentials of `X-Registry-Auth` (anonymous when absent); Docker's 400 when the
/// header is not base64url JSON.
pub fn registry_auth(ctx: &Ctx) -> Result<AuthConfig, Resp> {
    AuthConfig::from_header(ctx.header("X-Registry-Auth").unwrap_or(""))
        .map_err(|e| error(StatusCode::BAD_REQUEST, &e.to_string()))
}

/// `POST /auth`: `{"Status":"Login Succeeded","IdentityToken":"…"}` or Docker's
/// error (401 when the registry refused the credentials).
pub async fn auth(state: &State, mut ctx: Ctx) -> Resp {
    let body = match ctx.body(&state.limits).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let cfg: AuthConfig = if body.iter().all(u8::is_ascii_whitespace) {
        AuthConfig::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
        }
    };
    match state.engine.login(&cfg).await {
        Ok(token) => json(
            StatusCode::OK,
            &serde_json::json!({"Status": "Login Succeeded", "IdentityToken": token.unwrap_or_default()}),
        ),
        Err(e) => from_error(&e),
    }
}

/// `GET /images/search?term=&limit=&filters=`.
pub async fn search(state: &State, ctx: &Ctx) -> Resp {
    match state.engine.search_images(ctx.q("term"), ctx.q("limit"), ctx.q("filters")).await {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => from_error(&e),
    }
}

/// `GET /distribution/{name}/json`.
pub async fn distribution(state: &State, ctx: &Ctx, name: &str) -> Resp {
    let auth = match registry_auth(ctx) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match state.engine.inspect_distribution(name, &auth).await {
        Ok(d) => json(StatusCode::OK, &d),
        Err(e) => from_error(&e),
    }
}
