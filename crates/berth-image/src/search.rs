//! `docker search`: the registry's v1 search API (`GET /v1/search?q=&n=`), which Docker
//! Hub and some registries offer and the distribution registry does not; Docker's
//! `Unexpected status code N` where it is missing. A term whose first component looks
//! like a host (`127.0.0.1:5000/busy`) searches that registry, anything else Docker Hub.

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::pull::RegistryConfig;
use crate::registry::{login_endpoints, Client};

/// One result, in the Engine API's shape (`GET /images/search`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Deserialize)]
struct SearchBody {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// A failed search: Docker's text and kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SearchError {
    pub kind: ErrorKind,
    pub message: String,
}

/// (registry host, query): Docker's `splitReposSearchTerm`.
pub fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_ascii_lowercase(), rest.to_string())
        }
        _ => ("docker.io".to_string(), term.to_string()),
    }
}

/// Searches the registry `term` names; `limit` is 1..=100 (Docker's range).
pub async fn search(cfg: &RegistryConfig, term: &str, limit: u32) -> Result<Vec<SearchResult>, SearchError> {
    if !(1..=100).contains(&limit) {
        return Err(SearchError { kind: ErrorKind::InvalidArgument, message: format!("limit {limit} is outside the range of [1, 100]") });
    }
    let (host, q) = split_term(term);
    let eps = if host == "docker.io" {
        vec![crate::registry::Endpoint { base: "https://index.docker.io".into(), ..Default::default() }]
    } else {
        login_endpoints(&host, cfg)
    };
    let mut last = None;
    for ep in eps {
        let client = Client::new(&ep, "", None).map_err(|e| SearchError { kind: ErrorKind::Internal, message: e.detail() })?;
        let mut url = match url::Url::parse(&format!("{}/v1/search", ep.base)) {
            Ok(u) => u,
            Err(e) => return Err(SearchError { kind: ErrorKind::InvalidArgument, message: e.to_string() }),
        };
        url.query_pairs_mut().append_pair("q", &q).append_pair("n", &limit.to_string());
        match client.request(reqwest::Method::GET, url.as_str(), &[("Accept", "application/json")]).await {
            Ok(resp) if resp.status().is_success() => {
                let body: SearchBody = resp.json().await.map_err(|e| SearchError {
                    kind: ErrorKind::Internal,
                    message: format!("invalid search answer from {host}: {e}"),
                })?;
                let mut r = body.results;
                r.truncate(limit as usize);
                return Ok(r);
            }
            Ok(resp) => {
                return Err(SearchError {
                    kind: ErrorKind::Internal,
                    message: format!("Unexpected status code {}", resp.status().as_u16()),
                })
            }
            Err(e) => last = Some(SearchError { kind: ErrorKind::Internal, message: e.detail() }),
        }
    }
    Err(last.unwrap_or(SearchError { kind: ErrorKind::Internal, message: format!("no endpoint for {host}") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split_like_docker() {
        for (t, h, q) in [
            ("busybox", "docker.io", "busybox"),
            ("library/busybox", "docker.io", "library/busybox"),
            ("127.0.0.1:5000/busy", "127.0.0.1:5000", "busy"),
            ("localhost/x/y", "localhost", "x/y"),
            ("Reg.Example/z", "reg.example", "z"),
        ] {
            assert_eq!(split_term(t), (h.to_string(), q.to_string()), "{t}");
        }
    }
}
