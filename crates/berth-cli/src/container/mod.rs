//! Container commands, one file per command group: run/create/start (`run`), attach and
//! exec (`attach`), logs, ps, the simple verbs (stop, kill, rm, …) and top/port. This
//! file holds the helpers they share with the image and system commands. Call order and
//! connections follow the trace (`engine-api-trace.md` §4): attach before start, `/wait`
//! headers before `/start`.

mod attach;
mod create;
mod health;
mod logs;
mod ps;
mod run;
mod top;
mod verbs;

pub use attach::{attach, exec};
pub use create::{build_create, ram_in_bytes, read_env_files};
pub use logs::{api_timestamp, logs};
pub use ps::{ps, ps_context, render_rows};
pub use run::{run, start};
pub use top::{port, top};
pub use verbs::{kill, rename, rm, simple, stop, wait};

use attach::{attach_params, detach_setup, forward_signals, spawn_wait, stream_hijacked};
use create::env_lookup;
use run::reject_flag_positional;

use std::collections::BTreeMap;
use std::io::{self, Write};

use berth_api::reference::Reference;
use berth_api::ContainerInspect;
use berth_client::{query_escape, stream, Body, Client};
use serde_json::Value;

use crate::Fail;

/// Go's `url.Values.Encode`: keys sorted, values escaped.
pub fn query(path: &str, params: &[(&str, String)]) -> String {
    let mut p: Vec<&(&str, String)> = params.iter().collect();
    p.sort_by(|a, b| a.0.cmp(b.0));
    if p.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = p.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect();
    format!("{path}?{}", q.join("&"))
}

/// Decodes a list answer leniently: `null` fields take their defaults (older daemons and
/// thin answers send `"RepoTags": null`, `"Ports": null`, …).
pub fn decode_list<T: serde::de::DeserializeOwned>(v: Option<Vec<Value>>) -> Result<Vec<T>, Fail> {
    v.unwrap_or_default()
        .into_iter()
        .map(|mut x| {
            if let Value::Object(m) = &mut x {
                m.retain(|_, v| !v.is_null());
            }
            serde_json::from_value(x).map_err(|e| Fail::new(1, format!("error decoding response: {e}")))
        })
        .collect()
}

/// `--filter k=v` flags → `{"k":{"v":true}}` (empty string when no filter).
pub fn filters_json(filters: &[String]) -> Result<Option<String>, Fail> {
    let mut m: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| Fail::new(125, format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)")))?;
        m.entry(k.trim().to_lowercase()).or_default().insert(v.to_string(), true);
    }
    if m.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(&m).unwrap_or_default()))
}

// ---------------------------------------------------------------------------------
// Pull helper shared with `image pull`

/// `POST /images/create` and display its progress. `out` is stdout for `pull`, stderr
/// for the auto-pull in `run`.
pub fn pull_image(client: &mut Client, r: &Reference, platform: Option<&str>, out: &mut dyn Write, out_is_tty: bool, quiet: bool) -> Result<(), Fail> {
    // No tag at all (only `pull -a` passes such a reference) asks for every tag.
    let tag = r.digest.clone().or_else(|| r.tag.clone()).unwrap_or_default();
    let mut params = vec![("fromImage", r.full_name()), ("tag", tag)];
    if let Some(p) = platform {
        params.push(("platform", p.to_string()));
    }
    let path = query("/images/create", &params);
    let auth = crate::login::registry_auth(&r.domain);
    let resp = client.send("POST", &path, &[("X-Registry-Auth", &auth)], Body::Empty)?;
    let mut sink = io::sink();
    let target: &mut dyn Write = if quiet { &mut sink } else { out };
    match stream::display_json_messages(resp, target, out_is_tty && !quiet, |_| {}) {
        Ok(()) => Ok(()),
        Err(stream::DisplayError::Stream(e)) => Err(Fail::new(1, e.message)),
        Err(stream::DisplayError::Io(e)) => Err(Fail::new(1, e.to_string())),
    }
}

fn inspect_container(client: &mut Client, name: &str) -> Result<ContainerInspect, Fail> {
    Ok(client.get_json(&format!("/containers/{name}/json"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_sorted_like_go() {
        assert_eq!(
            query("/containers/x/attach", &[("stream", "1".into()), ("stdin", "1".into()), ("stdout", "1".into()), ("stderr", "1".into())]),
            "/containers/x/attach?stderr=1&stdin=1&stdout=1&stream=1"
        );
        assert_eq!(
            query("/containers/json", &[("filters", filters_json(&["name=web".into()]).expect("f").expect("some"))]),
            "/containers/json?filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D"
        );
    }
}
