//! Registry v2 HTTP client: endpoint and scheme choice (mirrors for Docker Hub,
//! insecure registries over plain http), Bearer-token and Basic authentication driven
//! by `WWW-Authenticate` challenges, manifest and blob GETs, and the registry's JSON
//! error bodies, per-registry TLS (`certs.d/<host:port>/` CAs and client certificates,
//! for https mirrors too; insecure registries tried over https without verification,
//! then plain http, as Docker does). Knows nothing about the store; `pull` and `auth::login` drive it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub base: String,
    pub mirror: bool,
    pub tls: Tls,
}

/// How an https endpoint is verified and what it is shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// An insecure registry's https endpoint: any certificate is accepted.
    pub skip_verify: bool,
    /// Extra trusted CAs (PEM), from `certs.d/<host>/*.crt`.
    pub roots: Vec<Vec<u8>>,
    /// A client certificate and its key (PEM), from `certs.d/<host>/*.cert` + `*.key`.
    pub identity: Option<Vec<u8>>,
}

/// Docker's `ReadCertsDirectory`: every `*.crt` is a CA; every `*.cert` needs the
/// `*.key` of the same name and the other way round. A missing directory is no error.
pub fn read_certs_dir(dir: &Path) -> Result<Tls, String> {
    let mut tls = Tls::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(tls);
    };
    let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    for p in &names {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".crt") {
            tls.roots.push(read(p)?);
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = dir.join(format!("{stem}.key"));
            if !key.exists() {
                return Err(format!(
                    "missing key {} for client certificate {}. CA certificates must use the extension .crt",
                    key.display(),
                    p.display()
                ));
            }
            let mut pem = read(p)?;
            pem.push(b'\n');
            pem.extend(read(&key)?);
            tls.identity = Some(pem);
        } else if let Some(stem) = name.strip_suffix(".key") {
            let cert = dir.join(format!("{stem}.cert"));
            if !cert.exists() {
                return Err(format!("missing client certificate {} for key {}", cert.display(), p.display()));
            }
        }
    }
    Ok(tls)
}

/// The TLS settings of a secure registry: every configured certs directory's
/// `<host:port>` subdirectory (Docker's `/etc/docker/certs.d`, Berth's own), merged.
fn secure_tls(domain: &str, cfg: &RegistryConfig) -> Tls {
    let mut tls = Tls::default();
    for dir in &cfg.certs_dirs {
        match read_certs_dir(&dir.join(domain)) {
            Ok(t) => {
                tls.roots.extend(t.roots);
                if t.identity.is_some() {
                    tls.identity = t.identity;
                }
            }
            Err(e) => tracing::warn!(registry = %domain, error = %e, "ignoring certs directory"),
        }
    }
    tls
}

/// The endpoints of a registry other than Docker Hub: https verified with its certs
/// directories; for an insecure one https without verification, then http.
pub fn login_endpoints(domain: &str, cfg: &RegistryConfig) -> Vec<Endpoint> {
    if domain == "docker.io" {
        return vec![Endpoint { base: HUB_REGISTRY.to_string(), ..Default::default() }];
    }
    if scheme_for(domain, &cfg.insecure) == "http" {
        return vec![
            Endpoint {
                base: format!("https://{domain}"),
                tls: Tls { skip_verify: true, ..Default::default() },
                ..Default::default()
            },
            Endpoint { base: format!("http://{domain}"), ..Default::default() },
        ];
    }
    vec![Endpoint { base: format!("https://{domain}"), tls: secure_tls(domain, cfg), ..Default::default() }]
}

/// Where to pull `r` from: for Docker Hub each mirror first, then the Hub itself; for
/// any other registry its domain over https, or http when it is insecure.
pub fn endpoints(r: &Reference, cfg: &RegistryConfig) -> Vec<Endpoint> {
    if r.is_docker_hub() {
        let mut out: Vec<Endpoint> = cfg
            .mirrors
            .iter()
            .filter(|m| !m.trim().is_empty())
            .map(|m| mirror_endpoint(m, cfg))
            .collect();
        out.push(Endpoint { base: HUB_REGISTRY.to_string(), ..Default::default() });
        return out;
    }
    login_endpoints(&r.domain, cfg)
}

/// A `--registry-mirror` (`https://host:port`, `http://…`, or without a scheme:
/// https unless the host is insecure). An https mirror gets a registry's TLS, as in
/// Docker's `newTLSConfig(mirror host, isSecure)`: verified with its certs
/// directories' `<host:port>/` (CAs, client certificate) when the host is secure,
/// unverified when it is insecure (loopback, `--insecure-registry`).
fn mirror_endpoint(m: &str, cfg: &RegistryConfig) -> Endpoint {
    let m = m.trim().trim_end_matches('/');
    let base = if m.contains("://") { m.to_string() } else { format!("{}://{m}", scheme_for(m, &cfg.insecure)) };
    let tls = match base.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => {
            let host = rest.split('/').next().unwrap_or(rest);
            if scheme_for(host, &cfg.insecure) == "http" {
                Tls { skip_verify: true, ..Default::default() }
            } else {
                secure_tls(host, cfg)
            }
        }
        _ => Tls::default(),
    };
    Endpoint { base, mirror: true, tls }
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
    /// The token server refused the credentials: `unauthorized: <its details>`.
    Unauthorized(String),
}

impl RegistryError {
    /// Docker's rendering of registry errors: `manifest unknown: manifest unknown`.
    pub fn detail(&self) -> String {
        match self {
            RegistryError::Transport(s) | RegistryError::Unauthorized(s) => s.clone(),
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
            RegistryError::Transport(_) | RegistryError::Unauthorized(_) => None,
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
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A token server's refusal: `{"details": "..."}` (Docker Hub) or registry errors.
#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    details: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

/// A client for one repository on one endpoint. Caches the Authorization header it
/// negotiated.
pub struct Client {
    http: reqwest::Client,
    base: String,
    path: String,
    creds: Option<Credentials>,
    auth: Mutex<Option<String>>,
    /// The refresh token a token server issued (`offline_token=true`).
    refresh: Mutex<Option<String>>,
    /// Token scopes asked for instead of the challenge's (a push: `pull,push` on the
    /// repository and `pull` on the repositories blobs may be mounted from).
    scopes: Vec<String>,
}

impl Client {
    pub fn new(endpoint: &Endpoint, path: &str, creds: Option<&Credentials>) -> Result<Client, RegistryError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30));
        if endpoint.tls.skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        for pem in &endpoint.tls.roots {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| RegistryError::Transport(format!("invalid CA certificate: {e}")))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &endpoint.tls.identity {
            let id = reqwest::Identity::from_pem(pem)
                .map_err(|e| RegistryError::Transport(format!("invalid client certificate: {e}")))?;
            b = b.identity(id);
        }
        let http = b.build().map_err(|e| RegistryError::Transport(format!("building http client: {e}")))?;
        Ok(Client {
            http,
            base: endpoint.base.clone(),
            path: path.to_string(),
            creds: creds.cloned(),
            auth: Mutex::new(None),
            refresh: Mutex::new(None),
            scopes: Vec::new(),
        })
    }

    /// For a push: tokens for `pull,push` on this repository and `pull` on `mount_from`.
    pub fn for_push(mut self, mount_from: &[String]) -> Client {
        self.scopes = vec![format!("repository:{}:pull,push", self.path)];
        self.scopes.extend(mount_from.iter().map(|r| format!("repository:{r}:pull")));
        self
    }

    /// `<base>/v2/<path>/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.path)
    }

    /// A bodiless request whose 401 is answered once; the final response whatever its
    /// status.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, RegistryError> {
        let mut resp = self.send_with(method.clone(), url, headers, None).await?;
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
                resp = self.send_with(method, url, headers, None).await?;
            }
        }
        Ok(resp)
    }

    /// A request with a body, sent with the Authorization negotiated before (a body
    /// cannot be sent twice; callers make a bodiless request first).
    pub async fn request_body(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: reqwest::Body,
    ) -> Result<Response, RegistryError> {
        self.send_with(method, url, headers, Some(body)).await
    }

    async fn send_with(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<reqwest::Body>,
    ) -> Result<Response, RegistryError> {
        let mut req = self.http.request(method.clone(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let auth = self.auth.lock().ok().and_then(|a| a.clone());
        if let Some(a) = auth {
            if let Ok(v) = HeaderValue::from_str(&a) {
                req = req.header(AUTHORIZATION, v);
            }
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.map_err(|e| transport_m(method.as_str(), url, &e))
    }

    /// `GET /v2/` with the challenge answered: the final status (200 when the
    /// credentials were accepted). A token server's refusal is `Unauthorized`.
    pub async fn ping(&self) -> Result<u16, RegistryError> {
        let url = format!("{}/v2/", self.base);
        let resp = self.get_any(&url, None).await?;
        Ok(resp.status().as_u16())
    }

    /// The refresh token a login obtained (Docker's identity token).
    pub fn refresh_token(&self) -> Option<String> {
        self.refresh.lock().ok().and_then(|r| r.clone())
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

    /// `GET /v2/<path>/tags/list`, every page (`Link: <…>; rel="next"`), at most
    /// 100 pages so that a registry cannot keep us listing forever.
    pub async fn tags(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = format!("{}/v2/{}/tags/list", self.base, self.path);
        let mut out = Vec::new();
        for _ in 0..100 {
            let resp = self.get(&url, Some("application/json")).await?;
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(u, _)| u.to_string()));
            let body: Tags = resp.json().await.map_err(|e| RegistryError::Transport(format!("invalid tags list from {url}: {e}")))?;
            out.extend(body.tags.unwrap_or_default());
            match next {
                Some(n) if n.starts_with('/') => url = format!("{}{n}", self.base),
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// `GET /v2/<path>/blobs/<digest>`; the caller streams the body.
    pub async fn blob(&self, digest: &str) -> Result<(Response, String), RegistryError> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.path, digest);
        let resp = self.get(&url, None).await?;
        Ok((resp, url))
    }

    /// `GET /v2/<path>/blobs/<digest>` from byte `offset` on: with `Range:
    /// bytes=<offset>-` unless it is 0. Any success is returned (a registry may answer
    /// a range with the whole blob, 200: the caller checks for 206).
    pub async fn blob_from(&self, digest: &str, offset: u64) -> Result<(Response, String), RegistryError> {
        if offset == 0 {
            return self.blob(digest).await;
        }
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.path, digest);
        let range = format!("bytes={offset}-");
        let resp = self.request(reqwest::Method::GET, &url, &[("Range", &range)]).await?;
        if !resp.status().is_success() {
            return Err(status_error(&url, resp).await);
        }
        Ok((resp, url))
    }

    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Response, RegistryError> {
        let resp = self.get_any(url, accept).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(url, resp).await)
    }

    /// A GET whose 401 is answered once; the final response whatever its status.
    async fn get_any(&self, url: &str, accept: Option<&str>) -> Result<Response, RegistryError> {
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
        Ok(resp)
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
                    if let Some(t) = self.creds.as_ref().and_then(|c| c.registry_token.clone()) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                    let service = params.iter().find(|(k, _)| k == "service").map(|(_, v)| v.clone());
                    let scopes: Vec<String> = if !self.scopes.is_empty() {
                        self.scopes.clone()
                    } else {
                        match params.iter().find(|(k, _)| k == "scope") {
                            Some((_, s)) => vec![s.clone()],
                            None if !self.path.is_empty() => vec![format!("repository:{}:pull", self.path)],
                            None => Vec::new(),
                        }
                    };
                    return self.fetch_token(&realm, service.as_deref(), &scopes).await;
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

impl Client {
    /// A token from the realm: with an identity (refresh) token Docker's OAuth2 POST,
    /// otherwise a GET, with basic credentials when there are some (asking for a
    /// refresh token as Docker's login does).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Option<String>, RegistryError> {
        let mut url = url::Url::parse(realm)
            .map_err(|e| RegistryError::Transport(format!("invalid auth realm {realm:?}: {e}")))?;
        let refresh = self.creds.as_ref().and_then(|c| c.identity_token.clone());
        let resp = if let Some(rt) = refresh {
            let mut form: Vec<(&str, &str)> =
                vec![("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", "docker")];
            if let Some(s) = service {
                form.push(("service", s));
            }
            // OAuth2 takes the scopes space-separated.
            let joined = scopes.join(" ");
            if !scopes.is_empty() {
                form.push(("scope", &joined));
            }
            self.http.post(url.as_str()).form(&form).send().await
        } else {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
                if self.creds.is_some() {
                    q.append_pair("offline_token", "true");
                    q.append_pair("client_id", "docker");
                }
            }
            let mut req = self.http.get(url.as_str());
            if let Some(cr) = &self.creds {
                req = req.basic_auth(&cr.username, Some(&cr.password));
            }
            req.send().await
        };
        let resp = resp.map_err(|e| transport(url.as_str(), &e))?;
        let status = resp.status();
        // With credentials a refusal is theirs (`unauthorized: incorrect username or
        // password`); without, it is the registry's access denial as any other 401.
        if self.creds.is_some() && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) {
            let body = resp.bytes().await.unwrap_or_default();
            let detail = match serde_json::from_slice::<TokenError>(&body) {
                Ok(e) if !e.details.is_empty() => e.details,
                Ok(e) if !e.errors.is_empty() => {
                    e.errors.into_iter().map(|i| i.message).collect::<Vec<_>>().join(", ")
                }
                _ => "authentication required".to_string(),
            };
            return Err(RegistryError::Unauthorized(format!("unauthorized: {detail}")));
        }
        if !status.is_success() {
            return Err(status_error(url.as_str(), resp).await);
        }
        let body: TokenBody = resp
            .json()
            .await
            .map_err(|e| RegistryError::Transport(format!("invalid token response from {realm}: {e}")))?;
        if let Some(rt) = body.refresh_token.filter(|t| !t.is_empty()) {
            if let Ok(mut r) = self.refresh.lock() {
                *r = Some(rt);
            }
        }
        match body.token.or(body.access_token) {
            Some(t) if !t.is_empty() => Ok(Some(format!("Bearer {t}"))),
            _ => Ok(None),
        }
    }
}

fn transport(url: &str, e: &reqwest::Error) -> RegistryError {
    transport_m("GET", url, e)
}

/// Go's `url.Error` text: `Put "<url>": <cause>`.
fn transport_m(method: &str, url: &str, e: &reqwest::Error) -> RegistryError {
    let m = method.to_ascii_lowercase();
    let verb: String = m.chars().take(1).flat_map(char::to_uppercase).chain(m.chars().skip(1)).collect();
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
    RegistryError::Transport(format!("{verb} \"{url}\": {msg}"))
}

pub(crate) async fn status_error(url: &str, resp: Response) -> RegistryError {
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
            ..Default::default()
        };
        let hub = Reference::parse("alpine").unwrap();
        let eps: Vec<String> = endpoints(&hub, &cfg).into_iter().map(|e| e.base).collect();
        assert_eq!(eps, ["http://127.0.0.1:5000", "https://mirror.example", HUB_REGISTRY]);
        let other = Reference::parse("localhost:5000/x").unwrap();
        let eps: Vec<(String, bool)> = endpoints(&other, &cfg).into_iter().map(|e| (e.base, e.tls.skip_verify)).collect();
        assert_eq!(eps, [("https://localhost:5000".to_string(), true), ("http://localhost:5000".to_string(), false)]);
        let secure = Reference::parse("reg.example:5000/x").unwrap();
        let eps: Vec<(String, bool)> = endpoints(&secure, &cfg).into_iter().map(|e| (e.base, e.tls.skip_verify)).collect();
        assert_eq!(eps, [("https://reg.example:5000".to_string(), false)]);
    }

    #[test]
    fn https_mirrors_get_a_registrys_tls() {
        let certs = tempfile::tempdir().unwrap();
        for host in ["mirror.example:5443", "127.0.0.1:5443"] {
            let d = certs.path().join(host);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("ca.crt"), format!("CA of {host}")).unwrap();
            std::fs::write(d.join("client.cert"), "CERT").unwrap();
            std::fs::write(d.join("client.key"), "KEY").unwrap();
        }
        let verified = Tls {
            skip_verify: false,
            roots: vec![b"CA of mirror.example:5443".to_vec()],
            identity: Some(b"CERT\nKEY".to_vec()),
        };
        let unverified = Tls { skip_verify: true, ..Default::default() };
        let cases = [
            ("https://mirror.example:5443", "https://mirror.example:5443", verified.clone()),
            ("https://mirror.example:5443/", "https://mirror.example:5443", verified.clone()),
            ("mirror.example:5443", "https://mirror.example:5443", verified.clone()),
            // A certs directory is per host:port: the same host on another port has none.
            ("https://mirror.example:6000", "https://mirror.example:6000", Tls::default()),
            // Insecure hosts (loopback, listed) are not verified, as Docker's mirrors.
            ("https://127.0.0.1:5443", "https://127.0.0.1:5443", unverified.clone()),
            ("https://plain.example", "https://plain.example", unverified.clone()),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000", Tls::default()),
            ("127.0.0.1:5000", "http://127.0.0.1:5000", Tls::default()),
        ];
        for (mirror, base, tls) in cases {
            let cfg = RegistryConfig {
                mirrors: vec![mirror.to_string()],
                insecure: vec!["plain.example".to_string()],
                certs_dirs: vec![certs.path().to_path_buf()],
                ..Default::default()
            };
            let eps = endpoints(&Reference::parse("alpine").unwrap(), &cfg);
            assert_eq!(eps[0], Endpoint { base: base.to_string(), mirror: true, tls }, "{mirror}");
            assert_eq!(eps[1].base, HUB_REGISTRY, "{mirror}");
        }
    }
}
