//! Registry v2 HTTP client: endpoint and scheme choice (mirrors for Docker Hub,
//! insecure registries over plain http), Bearer-token and Basic authentication driven
//! by `WWW-Authenticate` challenges, manifest and blob GETs, and the registry's JSON
//! error bodies. Knows nothing about the store; `pull` drives it.

use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde::Deserialize;

use crate::manifest::MANIFEST_ACCEPT;
use crate::pull::{Credentials, RegistryConfig};
use crate::reference::Reference;

/// Docker Hub's registry API host.
pub const HUB_REGISTRY: &str = "https://registry-1.docker.io";

/// A registry base URL to try, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub base: String,
    pub mirror: bool,
}

/// Where to pull `r` from: for Docker Hub each mirror first, then the Hub itself; for
/// any other registry its domain over https, or http when it is insecure.
pub fn endpoints(r: &Reference, cfg: &RegistryConfig) -> Vec<Endpoint> {
    if r.is_docker_hub() {
        let mut out: Vec<Endpoint> = cfg
            .mirrors
            .iter()
            .filter(|m| !m.trim().is_empty())
            .map(|m| {
                let m = m.trim().trim_end_matches('/');
                let base = if m.contains("://") {
                    m.to_string()
                } else {
                    format!("{}://{m}", scheme_for(m, &cfg.insecure))
                };
                Endpoint { base, mirror: true }
            })
            .collect();
        out.push(Endpoint { base: HUB_REGISTRY.to_string(), mirror: false });
        return out;
    }
    vec![Endpoint { base: format!("{}://{}", scheme_for(&r.domain, &cfg.insecure), r.domain), mirror: false }]
}

/// `http` for insecure registries (listed as `host:port`, `host`, or a CIDR containing
/// the host's IP) and for loopback hosts, which Docker always treats as insecure.
pub fn scheme_for(domain: &str, insecure: &[String]) -> &'static str {
    let host = host_of(domain);
    let ip: Option<IpAddr> = host.parse().ok();
    if host == "localhost" || ip.is_some_and(|i| i.is_loopback()) {
        return "http";
    }
    for entry in insecure {
        let e = entry.trim();
        let e = e.split_once("://").map(|(_, rest)| rest).unwrap_or(e).trim_end_matches('/');
        if e == domain || e == host {
            return "http";
        }
        if let (Some(ip), Some((net, bits))) = (ip, e.split_once('/')) {
            if let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) {
                if cidr_contains(net, bits, ip) {
                    return "http";
                }
            }
        }
    }
    "https"
}

/// The host part of `host[:port]` / `[v6][:port]`.
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.split(':').next().unwrap_or(domain)
}

fn cidr_contains(net: IpAddr, bits: u32, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// A failed registry request.
#[derive(Debug)]
pub enum RegistryError {
    /// Could not talk to the registry at all: `Get "<url>": <cause>`.
    Transport(String),
    /// The registry answered with an error status; `errors` are its `{code, message}`.
    Status { status: StatusCode, errors: Vec<(String, String)>, url: String },
}

impl RegistryError {
    /// Docker's rendering of registry errors: `manifest unknown: manifest unknown`.
    pub fn detail(&self) -> String {
        match self {
            RegistryError::Transport(s) => s.clone(),
            RegistryError::Status { status, errors, url } => {
                if errors.is_empty() {
                    format!("unexpected status from GET request to {url}: {status}")
                } else {
                    errors
                        .iter()
                        .map(|(code, msg)| format!("{}: {msg}", code.to_lowercase().replace('_', " ")))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            }
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            RegistryError::Transport(_) => None,
        }
    }

    pub fn has_code(&self, code: &str) -> bool {
        matches!(self, RegistryError::Status { errors, .. } if errors.iter().any(|(c, _)| c == code))
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// A client for one repository on one endpoint. Caches the Authorization header it
/// negotiated.
pub struct Client {
    http: reqwest::Client,
    base: String,
    path: String,
    creds: Option<Credentials>,
    auth: Mutex<Option<String>>,
}

impl Client {
    pub fn new(endpoint: &Endpoint, path: &str, creds: Option<&Credentials>) -> Result<Client, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| RegistryError::Transport(format!("building http client: {e}")))?;
        Ok(Client {
            http,
            base: endpoint.base.clone(),
            path: path.to_string(),
            creds: creds.cloned(),
            auth: Mutex::new(None),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /v2/<path>/manifests/<tag|digest>` → (body, content type).
    pub async fn manifest(&self, tag_or_digest: &str) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, self.path, tag_or_digest);
        let resp = self.get(&url, Some(MANIFEST_ACCEPT)).await?;
        let ct = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.bytes().await.map_err(|e| transport(&url, &e))?;
        Ok((body.to_vec(), ct))
    }

    /// `GET /v2/<path>/blobs/<digest>`; the caller streams the body.
    pub async fn blob(&self, digest: &str) -> Result<(Response, String), RegistryError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.path, digest);
        let resp = self.get(&url, None).await?;
        Ok((resp, url))
    }

    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Response, RegistryError> {
        let mut resp = self.send(url, accept).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let challenge = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect::<Vec<_>>();
            if let Some(header) = self.authenticate(&challenge).await? {
                if let Ok(mut a) = self.auth.lock() {
                    *a = Some(header);
                }
                resp = self.send(url, accept).await?;
            }
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(url, resp).await)
    }

    async fn send(&self, url: &str, accept: Option<&str>) -> Result<Response, RegistryError> {
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let auth = self.auth.lock().ok().and_then(|a| a.clone());
        if let Some(a) = auth {
            if let Ok(v) = HeaderValue::from_str(&a) {
                req = req.header(AUTHORIZATION, v);
            }
        }
        req.send().await.map_err(|e| transport(url, &e))
    }

    /// Answers a 401's challenges: a Bearer token from the realm (anonymous or with
    /// basic credentials), or Basic credentials. `None` when nothing can be tried.
    async fn authenticate(&self, challenges: &[String]) -> Result<Option<String>, RegistryError> {
        for c in challenges {
            let (scheme, params) = parse_challenge(c);
            match scheme.to_ascii_lowercase().as_str() {
                "bearer" => {
                    let Some(realm) = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()) else {
                        continue;
                    };
                    let mut url = url::Url::parse(&realm)
                        .map_err(|e| RegistryError::Transport(format!("invalid auth realm {realm:?}: {e}")))?;
                    {
                        let mut q = url.query_pairs_mut();
                        if let Some((_, s)) = params.iter().find(|(k, _)| k == "service") {
                            q.append_pair("service", s);
                        }
                        match params.iter().find(|(k, _)| k == "scope") {
                            Some((_, s)) => q.append_pair("scope", s),
                            None => q.append_pair("scope", &format!("repository:{}:pull", self.path)),
                        };
                    }
                    let mut req = self.http.get(url.as_str());
                    if let Some(cr) = &self.creds {
                        req = req.basic_auth(&cr.username, Some(&cr.password));
                    }
                    let resp = req.send().await.map_err(|e| transport(url.as_str(), &e))?;
                    if !resp.status().is_success() {
                        return Err(status_error(url.as_str(), resp).await);
                    }
                    let body: TokenBody = resp
                        .json()
                        .await
                        .map_err(|e| RegistryError::Transport(format!("invalid token response from {realm}: {e}")))?;
                    return match body.token.or(body.access_token) {
                        Some(t) if !t.is_empty() => Ok(Some(format!("Bearer {t}"))),
                        _ => Ok(None),
                    };
                }
                "basic" => {
                    if let Some(cr) = &self.creds {
                        let enc = base64::engine::general_purpose::STANDARD
                            .encode(format!("{}:{}", cr.username, cr.password));
                        return Ok(Some(format!("Basic {enc}")));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

fn transport(url: &str, e: &reqwest::Error) -> RegistryError {
    let mut msg = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&t);
        }
        src = s.source();
    }
    if msg.is_empty() {
        msg = e.to_string();
    }
    RegistryError::Transport(format!("Get \"{url}\": {msg}"))
}

async fn status_error(url: &str, resp: Response) -> RegistryError {
    let status = resp.status();
    let errors = match resp.bytes().await {
        Ok(b) => serde_json::from_slice::<ErrorBody>(&b)
            .map(|e| e.errors.into_iter().map(|i| (i.code, i.message)).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    RegistryError::Status { status, errors, url: url.to_string() }
}

/// `Bearer realm="…",service="…",scope="…"` → ("Bearer", [(realm, …), …]).
pub fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, rest) = match h.find(' ') {
        Some(i) => (&h[..i], &h[i + 1..]),
        None => (h, ""),
    };
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), val.trim().to_string()));
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            vec![
                ("realm".to_string(), "https://auth.docker.io/token".to_string()),
                ("service".to_string(), "registry.docker.io".to_string()),
                ("scope".to_string(), "repository:library/alpine:pull,push".to_string()),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((s.as_str(), p[0].1.as_str()), ("Basic", "Registry Realm"));
    }

    #[test]
    fn schemes() {
        let insecure = vec!["myreg:5000".to_string(), "plain.example".to_string(), "10.1.0.0/16".to_string()];
        let cases = [
            ("localhost:5000", "http"),
            ("localhost", "http"),
            ("127.0.0.1:5000", "http"),
            ("127.3.2.1", "http"),
            ("[::1]:5000", "http"),
            ("myreg:5000", "http"),
            ("myreg:5001", "https"),
            ("plain.example:443", "http"),
            ("10.1.2.3:5000", "http"),
            ("10.2.0.1:5000", "https"),
            ("quay.io", "https"),
        ];
        for (d, want) in cases {
            assert_eq!(scheme_for(d, &insecure), want, "{d}");
        }
    }

    #[test]
    fn hub_endpoints_mirrors_first() {
        let cfg = RegistryConfig {
            mirrors: vec!["http://127.0.0.1:5000/".into(), "mirror.example".into()],
            insecure: vec![],
        };
        let hub = Reference::parse("alpine").unwrap();
        let eps: Vec<String> = endpoints(&hub, &cfg).into_iter().map(|e| e.base).collect();
        assert_eq!(eps, ["http://127.0.0.1:5000", "https://mirror.example", HUB_REGISTRY]);
        let other = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(endpoints(&other, &cfg), vec![Endpoint { base: "http://localhost:5000".into(), mirror: false }]);
    }
}
