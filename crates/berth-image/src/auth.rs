//! Registry credentials as Docker passes them around, and `docker login`'s check.
//!
//! `AuthConfig` is the JSON that the CLI sends base64url-encoded in `X-Registry-Auth`
//! (pull, push) and as the body of `POST /auth`; it becomes the registry client's
//! [`Credentials`]. [`login`] is Docker's `loginV2`: `GET /v2/` on each endpoint of the
//! server, answering its challenge (Basic, or a Bearer token fetched from the realm with
//! `offline_token=true`, whose refresh token is handed back as the identity token).
//! The HTTP work is `registry`'s; the CLI's config file is the CLI's business.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::pull::{Credentials, RegistryConfig};
use crate::registry::{login_endpoints, Client, RegistryError};

/// Docker Hub's key in `~/.docker/config.json` and the server `docker login` uses by
/// default.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// Docker's `registry.AuthConfig`: what `X-Registry-Auth` and `POST /auth` carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64 of `user:password` (what the config file stores).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// A refresh token from an earlier login, used instead of the password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token sent to the registry as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

/// A malformed `X-Registry-Auth` header or `/auth` body (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthDecodeError(pub String);

impl AuthConfig {
    /// Decodes `X-Registry-Auth` (base64url JSON, padded or not; Docker's CLI pads).
    /// An absent or empty header, and `{}` (`e30=`), are anonymous.
    pub fn from_header(h: &str) -> Result<AuthConfig, AuthDecodeError> {
        let h = h.trim();
        if h.is_empty() {
            return Ok(AuthConfig::default());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
            .map_err(|e| AuthDecodeError(format!("invalid X-Registry-Auth header: {e}")))?;
        serde_json::from_slice(&raw).map_err(|e| AuthDecodeError(format!("invalid X-Registry-Auth header: {e}")))
    }

    /// The header value Docker's CLI sends: base64url (padded) of the JSON.
    pub fn to_header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    /// What the registry client can use; `None` when anonymous.
    pub fn credentials(&self) -> Option<Credentials> {
        let (mut username, mut password) = (self.username.clone(), self.password.clone());
        if username.is_empty() && password.is_empty() && !self.auth.is_empty() {
            if let Some((u, p)) = decode_basic(&self.auth) {
                (username, password) = (u, p);
            }
        }
        let c = Credentials {
            username,
            password,
            identity_token: Some(self.identitytoken.clone()).filter(|t| !t.is_empty()),
            registry_token: Some(self.registrytoken.clone()).filter(|t| !t.is_empty()),
        };
        let anonymous =
            c.username.is_empty() && c.password.is_empty() && c.identity_token.is_none() && c.registry_token.is_none();
        (!anonymous).then_some(c)
    }
}

/// `base64(user:password)` → (user, password).
pub fn decode_basic(auth: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.trim_end_matches('\0').to_string()))
}

/// The registry host a login or config-file key names: scheme, path and trailing
/// slash dropped; Docker Hub's aliases become `docker.io`.
pub fn server_host(server: &str) -> String {
    let s = server.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// A failed login: Docker's text and kind (401 for refused credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LoginError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Docker's `loginV2` against `server` (a host, `host:port` or URL; empty is Docker
/// Hub). Returns the identity token the registry issued, if any.
pub async fn login(cfg: &RegistryConfig, server: &str, auth: &AuthConfig) -> Result<Option<String>, LoginError> {
    let host = server_host(if server.is_empty() { &auth.serveraddress } else { server });
    let creds = auth.credentials();
    let eps = login_endpoints(&host, cfg);
    let mut last = None;
    for (i, ep) in eps.iter().enumerate() {
        let client = Client::new(ep, "", creds.as_ref())
            .map_err(|e| LoginError { kind: ErrorKind::Internal, message: e.detail() })?;
        let url = format!("{}/v2/", ep.base);
        match client.ping().await {
            Ok(200) => return Ok(client.refresh_token()),
            Ok(code) => {
                let text = reqwest::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                let kind = if code == 401 { ErrorKind::Unauthorized } else { ErrorKind::Internal };
                return Err(LoginError { kind, message: format!("login attempt to {url} failed with status: {code} {text}") });
            }
            Err(RegistryError::Unauthorized(m)) => {
                return Err(LoginError { kind: ErrorKind::Unauthorized, message: format!("Get \"{url}\": {m}") });
            }
            Err(e) => {
                // Docker falls back to the next endpoint (plain http for an insecure
                // registry) when this one could not be talked to at all.
                last = Some(LoginError { kind: ErrorKind::Internal, message: e.detail() });
                if i + 1 < eps.len() {
                    continue;
                }
            }
        }
    }
    Err(last.unwrap_or(LoginError { kind: ErrorKind::Internal, message: format!("no endpoint for {host}") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decode_like_dockers() {
        let full = AuthConfig {
            username: "u".into(),
            password: "p?>".into(),
            serveraddress: "127.0.0.1:5443".into(),
            ..Default::default()
        };
        let cases: Vec<(String, Result<AuthConfig, ()>)> = vec![
            (String::new(), Ok(AuthConfig::default())),
            ("e30=".into(), Ok(AuthConfig::default())),
            ("e30".into(), Ok(AuthConfig::default())),
            (full.to_header(), Ok(full.clone())),
            (full.to_header().trim_end_matches('=').to_string(), Ok(full.clone())),
            ("!!!".into(), Err(())),
            (base64::engine::general_purpose::URL_SAFE.encode("not json"), Err(())),
        ];
        for (h, want) in cases {
            let got = AuthConfig::from_header(&h);
            match want {
                Ok(w) => assert_eq!(got.as_ref().ok(), Some(&w), "{h}"),
                Err(()) => assert!(got.unwrap_err().0.starts_with("invalid X-Registry-Auth header: "), "{h}"),
            }
        }
    }

    #[test]
    fn credentials_from_each_field() {
        let b = |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        let cases = [
            (AuthConfig::default(), None),
            (AuthConfig { username: "a".into(), password: "b".into(), ..Default::default() }, Some(("a", "b", None))),
            (AuthConfig { auth: b("c", "d:e"), ..Default::default() }, Some(("c", "d:e", None))),
            (
                AuthConfig { username: "a".into(), identitytoken: "tok".into(), ..Default::default() },
                Some(("a", "", Some("tok"))),
            ),
        ];
        for (a, want) in cases {
            let got = a.credentials();
            let got = got.as_ref().map(|c| (c.username.as_str(), c.password.as_str(), c.identity_token.as_deref()));
            assert_eq!(got, want, "{a:?}");
        }
    }

    #[test]
    fn server_hosts() {
        for (s, want) in [
            ("", "docker.io"),
            (INDEX_SERVER, "docker.io"),
            ("docker.io", "docker.io"),
            ("127.0.0.1:5443", "127.0.0.1:5443"),
            ("https://127.0.0.1:5443/", "127.0.0.1:5443"),
            ("http://Reg.Example:5000/v2/", "reg.example:5000"),
        ] {
            assert_eq!(server_host(s), want, "{s}");
        }
    }
}
