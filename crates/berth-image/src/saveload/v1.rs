//! The legacy v1 metadata of a docker-archive, byte for byte as Docker 20.10's `docker
//! save` writes it: each layer's directory is named by a v1 id and holds a `json` file.
//! Docker's own load ignores both (it reads `manifest.json`), but other readers and
//! people comparing archives see them, and with the same ids a Berth archive of an
//! image has the same member names as Docker's.
//!
//! Docker makes them with Go's `encoding/json` over its `V1Image` and `container.Config`
//! structs (field order, `omitempty`, HTML-safe string escaping, RFC 3339 times with
//! trailing zeros cut), so this module writes JSON the way Go would for those structs
//! rather than through serde. A layer's v1 id is moby's `v1.CreateID`: the sha256 of the
//! layer's V1Image fields (id left out) with `layer_id` (its chain id) and `parent` (the
//! layer below's v1 id) added, keys sorted. Lower layers carry an empty V1Image (created
//! at the Unix epoch); the top layer the image's own (its config re-encoded through
//! those structs). Kept apart from `mod.rs`, which only asks for [`layers`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::store::chain_id;

/// A zero `container.Config` as Go encodes it (Docker 20.10's field set).
const EMPTY_CONFIG: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#;

/// What lower layers say they were created at: `time.Unix(0, 0)` on a UTC host.
const EPOCH: &str = "\"1970-01-01T00:00:00Z\"";

/// One layer's v1 directory: its id (hex, the directory name) and its `json` file.
#[derive(Debug, Clone, PartialEq)]
pub struct V1Layer {
    pub id: String,
    pub json: String,
}

/// The v1 directories of an image whose config is `config`, one per diff id, bottom
/// first.
pub fn layers(config: &Value, diff_ids: &[String]) -> Vec<V1Layer> {
    let empty = Map::new();
    let obj = config.as_object().unwrap_or(&empty);
    let os = field(obj, "os").and_then(Value::as_str).unwrap_or("");
    let chains = chain_id(diff_ids);
    let mut out: Vec<V1Layer> = Vec::with_capacity(chains.len());
    for (i, chain) in chains.iter().enumerate() {
        let top = i + 1 == chains.len();
        let fields: Vec<(&str, String)> = if top {
            image_fields(obj)
        } else {
            vec![("created", EPOCH.to_string()), ("container_config", EMPTY_CONFIG.to_string())]
        };
        let parent = out.last().map(|l| l.id.clone());
        // moby's v1.CreateID: a Go map of the fields, so the keys come out sorted.
        let mut keyed: BTreeMap<&str, String> = fields.iter().cloned().collect();
        keyed.insert("layer_id", go_string(chain));
        if let Some(p) = &parent {
            keyed.insert("parent", go_string(&format!("sha256:{p}")));
        }
        let id = hex::encode(Sha256::digest(object(keyed.iter().map(|(k, v)| (*k, v.as_str()))).as_bytes()));
        let mut json: Vec<(&str, String)> = vec![("id", go_string(&id))];
        if let Some(p) = &parent {
            json.push(("parent", go_string(p)));
        }
        json.extend(fields);
        // Docker sets the lower layers' OS after computing their id.
        if !top && !os.is_empty() {
            json.push(("os", go_string(os)));
        }
        out.push(V1Layer { id, json: object(json.iter().map(|(k, v)| (*k, v.as_str()))) });
    }
    out
}

/// The image's `V1Image` fields in Go's struct order (`id` and `parent` are the
/// caller's): comment, created, container, container_config, docker_version, author,
/// config, architecture, variant, os, Size.
fn image_fields(obj: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let s = |name: &str| field(obj, name).and_then(Value::as_str).filter(|v| !v.is_empty()).map(go_string);
    if let Some(v) = s("comment") {
        out.push(("comment", v));
    }
    out.push(("created", go_time(field(obj, "created"))));
    if let Some(v) = s("container") {
        out.push(("container", v));
    }
    out.push(("container_config", container_config(field(obj, "container_config"))));
    if let Some(v) = s("docker_version") {
        out.push(("docker_version", v));
    }
    if let Some(v) = s("author") {
        out.push(("author", v));
    }
    if let Some(c) = field(obj, "config").filter(|c| c.is_object()) {
        out.push(("config", container_config(Some(c))));
    }
    for name in ["architecture", "variant", "os"] {
        if let Some(v) = s(name) {
            out.push((name, v));
        }
    }
    if let Some(n) = field(obj, "Size").filter(|n| n.as_i64().is_some_and(|n| n != 0)) {
        out.push(("Size", n.to_string()));
    }
    out
}

/// A `container.Config` (Docker 20.10's fields, in order) as Go encodes it after
/// decoding `v`: unknown keys dropped, absent lists and maps `null`, `omitempty`
/// fields left out when empty, a string `Cmd`/`Entrypoint`/`Shell` made a list.
fn container_config(v: Option<&Value>) -> String {
    let empty = Map::new();
    let obj = v.and_then(Value::as_object).unwrap_or(&empty);
    let get = |name: &str| field(obj, name).filter(|v| !v.is_null());
    let string = |name: &str| go_string(get(name).and_then(Value::as_str).unwrap_or(""));
    let boolean = |name: &str| get(name).and_then(Value::as_bool).unwrap_or(false);
    let mut out: Vec<(&str, String)> = Vec::new();
    for name in ["Hostname", "Domainname", "User"] {
        out.push((name, string(name)));
    }
    for name in ["AttachStdin", "AttachStdout", "AttachStderr"] {
        out.push((name, boolean(name).to_string()));
    }
    if let Some(ports) = get("ExposedPorts").and_then(Value::as_object).filter(|m| !m.is_empty()) {
        out.push(("ExposedPorts", set(ports)));
    }
    for name in ["Tty", "OpenStdin", "StdinOnce"] {
        out.push((name, boolean(name).to_string()));
    }
    out.push(("Env", strings(get("Env"))));
    out.push(("Cmd", str_slice(get("Cmd"))));
    if let Some(h) = get("Healthcheck").and_then(Value::as_object) {
        out.push(("Healthcheck", health(h)));
    }
    if boolean("ArgsEscaped") {
        out.push(("ArgsEscaped", "true".into()));
    }
    out.push(("Image", string("Image")));
    out.push(("Volumes", get("Volumes").and_then(Value::as_object).map_or_else(|| "null".into(), set)));
    out.push(("WorkingDir", string("WorkingDir")));
    out.push(("Entrypoint", str_slice(get("Entrypoint"))));
    if boolean("NetworkDisabled") {
        out.push(("NetworkDisabled", "true".into()));
    }
    if let Some(m) = get("MacAddress").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        out.push(("MacAddress", go_string(m)));
    }
    out.push(("OnBuild", strings(get("OnBuild"))));
    out.push((
        "Labels",
        get("Labels").and_then(Value::as_object).map_or_else(
            || "null".into(),
            |m| {
                let sorted: BTreeMap<&str, String> =
                    m.iter().map(|(k, v)| (k.as_str(), go_string(v.as_str().unwrap_or("")))).collect();
                object(sorted.iter().map(|(k, v)| (*k, v.as_str())))
            },
        ),
    ));
    if let Some(s) = get("StopSignal").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        out.push(("StopSignal", go_string(s)));
    }
    if let Some(n) = get("StopTimeout").filter(|n| n.is_number()) {
        out.push(("StopTimeout", n.to_string()));
    }
    if get("Shell").is_some_and(|s| s.as_array().is_none_or(|a| !a.is_empty())) {
        out.push(("Shell", str_slice(get("Shell"))));
    }
    object(out.iter().map(|(k, v)| (*k, v.as_str())))
}

/// A `HealthConfig`: Test, Interval, Timeout, StartPeriod, Retries, each `omitempty`.
fn health(h: &Map<String, Value>) -> String {
    let mut out: Vec<(&str, String)> = Vec::new();
    if let Some(t) = field(h, "Test").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        out.push(("Test", strings(Some(&Value::Array(t.clone())))));
    }
    for name in ["Interval", "Timeout", "StartPeriod", "Retries"] {
        if let Some(n) = field(h, name).filter(|n| n.as_i64().is_some_and(|n| n != 0)) {
            out.push((name, n.to_string()));
        }
    }
    object(out.iter().map(|(k, v)| (*k, v.as_str())))
}

/// A `map[string]struct{}` (ports, volumes): sorted keys, `{}` values.
fn set(m: &Map<String, Value>) -> String {
    let keys: std::collections::BTreeSet<&str> = m.keys().map(String::as_str).collect();
    object(keys.into_iter().map(|k| (k, "{}")))
}

/// A `[]string`: `null` when absent or null.
fn strings(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        Some(a) => format!("[{}]", a.iter().map(|s| go_string(s.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")),
        None => "null".into(),
    }
}

/// A `strslice.StrSlice`: a list, or a single string taken as a list of one.
fn str_slice(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("[{}]", go_string(s)),
        other => strings(other),
    }
}

/// `{"k":v,...}` from already-encoded values, in the order given.
fn object<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&go_string(k));
        s.push(':');
        s.push_str(v);
    }
    s.push('}');
    s
}

/// Go's `encoding/json` field lookup: the exact key, else one equal ignoring ASCII case.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A Go `time.Time` as `encoding/json` writes it (RFC 3339, nanoseconds without
/// trailing zeros, `Z` for a zero offset); the zero time when absent or unparsable.
fn go_time(v: Option<&Value>) -> String {
    let Some(t) = v.and_then(Value::as_str).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else {
        return "\"0001-01-01T00:00:00Z\"".into();
    };
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    let off = t.offset().local_minus_utc();
    if off == 0 {
        s.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.abs();
        s.push_str(&format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60));
    }
    format!("\"{s}\"")
}

/// A string as Go's `encoding/json` writes it: HTML-safe (`<`, `>`, `&` as `\u003c`…),
/// `\n` `\r` `\t` short, other control characters and U+2028/2029 as `\u00XX`/`\u20XX`.
pub fn go_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_strings_and_times() {
        let table = [
            ("plain", r##""plain""##),
            ("a<b>&c", r##""a\u003cb\u003e\u0026c""##),
            ("q\"\\", r##""q\"\\""##),
            ("\n\t\r\u{8}\u{1f}", r##""\n\t\r\u0008\u001f""##),
            ("é\u{2028}", "\"é\\u2028\""),
        ];
        for (raw, want) in table {
            assert_eq!(go_string(raw), want, "{raw:?}");
        }
        let times = [
            ("2026-12-01T11:04:55.607986743Z", "2026-12-01T11:04:55.607986743Z"),
            ("2024-01-01T00:00:00.500000000Z", "2024-01-01T00:00:00.5Z"),
            ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00Z"),
            ("2024-01-01T02:00:00+02:00", "2024-01-01T02:00:00+02:00"),
            ("not a time", "0001-01-01T00:00:00Z"),
        ];
        for (raw, want) in times {
            assert_eq!(go_time(Some(&Value::String(raw.into()))), format!("\"{want}\""), "{raw}");
        }
        assert_eq!(go_time(None), "\"0001-01-01T00:00:00Z\"");
    }

    /// Docker 20.10 saved an image built with its classic builder (`FROM` an imported
    /// base, `COPY`, `ENV`, `WORKDIR`, `LABEL`, `CMD`); these are its directory names
    /// and `json` files, taken from that archive.
    #[test]
    fn v1_ids_and_json_are_dockers() {
        let config: Value = serde_json::from_str(
            r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/bin","GREETING=hello","APP=/srv/app"],"Cmd":["/greeting.txt"],"Image":"sha256:6a86d085ec6c6b68d74c337644cea74b896f8bc78b1369daac849a1989ad5512","Volumes":null,"WorkingDir":"/srv/app","Entrypoint":null,"OnBuild":null,"Labels":{"org.example.fixture":"interop"}},"container":"c016a8b371e8daa1682910bd4b154b128c3f9b7d9c2f135b471142d94e632885","container_config":{"Hostname":"c016a8b371e8","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/bin","GREETING=hello","APP=/srv/app"],"Cmd":["/bin/sh","-c","#(nop) ","CMD [\"/greeting.txt\"]"],"Image":"sha256:6a86d085ec6c6b68d74c337644cea74b896f8bc78b1369daac849a1989ad5512","Volumes":null,"WorkingDir":"/srv/app","Entrypoint":null,"OnBuild":null,"Labels":{"org.example.fixture":"interop"}},"created":"2026-12-01T11:04:55.607986743Z","docker_version":"20.10.24+dfsg1","history":[],"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"##,
        )
        .unwrap();
        let diff_ids: Vec<String> = [
            "133188066fe9f0a592f3357ba82c73f365e4d5d0ec5206d84976aab015139e61",
            "7354b82bf658ceddd661fb989f00db483ba5ffd7eac3a71f902e08ebff9e3487",
            "3f49e42a8f2f866057b965b14d485b9334fda17f6886c411b545701251d6d291",
            "74304bf5370d1ee0d3907a3907c2fdbd6fffb9644f8abdec554f521db672f207",
            "7354b82bf658ceddd661fb989f00db483ba5ffd7eac3a71f902e08ebff9e3487",
        ]
        .iter()
        .map(|h| format!("sha256:{h}"))
        .collect();
        let got = layers(&config, &diff_ids);
        let ids: Vec<&str> = got.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "65fbf84645f581158e3180ffc4221ea679ab89c44c94c008c8696b2e94a2e9ae",
                "77ef64e27aa43c1b07be3348f05555ff70d30150ba1ea36783cbb17e44de3404",
                "5f6e42ab0a22f36096bb25cb61aa21f286ded85b2610ba07d1e59694b88d0f55",
                "babcc14e67a4e802ab75059ec5af193583ef256838769d5192e37553485cd83d",
                "540d8f2279439b1ce2b5ffc1c4b56d4cc6ff4c68381a2a8981c4cb6662a55896",
            ]
        );
        assert_eq!(
            got[0].json,
            format!(r##"{{"id":"65fbf84645f581158e3180ffc4221ea679ab89c44c94c008c8696b2e94a2e9ae","created":"1970-01-01T00:00:00Z","container_config":{EMPTY_CONFIG},"os":"linux"}}"##)
        );
        assert_eq!(
            got[4].json,
            r##"{"id":"540d8f2279439b1ce2b5ffc1c4b56d4cc6ff4c68381a2a8981c4cb6662a55896","parent":"babcc14e67a4e802ab75059ec5af193583ef256838769d5192e37553485cd83d","created":"2026-12-01T11:04:55.607986743Z","container":"c016a8b371e8daa1682910bd4b154b128c3f9b7d9c2f135b471142d94e632885","container_config":{"Hostname":"c016a8b371e8","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/bin","GREETING=hello","APP=/srv/app"],"Cmd":["/bin/sh","-c","#(nop) ","CMD [\"/greeting.txt\"]"],"Image":"sha256:6a86d085ec6c6b68d74c337644cea74b896f8bc78b1369daac849a1989ad5512","Volumes":null,"WorkingDir":"/srv/app","Entrypoint":null,"OnBuild":null,"Labels":{"org.example.fixture":"interop"}},"docker_version":"20.10.24+dfsg1","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/bin","GREETING=hello","APP=/srv/app"],"Cmd":["/greeting.txt"],"Image":"sha256:6a86d085ec6c6b68d74c337644cea74b896f8bc78b1369daac849a1989ad5512","Volumes":null,"WorkingDir":"/srv/app","Entrypoint":null,"OnBuild":null,"Labels":{"org.example.fixture":"interop"}},"architecture":"amd64","os":"linux"}"##
        );
    }

    /// An OCI config (a pulled image's: only some keys, a string Cmd, ports, volumes,
    /// a healthcheck) goes through Go's structs: absent fields appear zero, the
    /// `omitempty` ones only when set.
    #[test]
    fn an_oci_config_is_reencoded_like_go() {
        let c: Value = serde_json::from_str(
            r##"{"User":"app","ExposedPorts":{"443/tcp":{},"80/tcp":{"x":1}},"Cmd":"run <it>","Volumes":{},"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"Retries":0},"StopSignal":"SIGINT","Shell":[],"Labels":{"b":"2","a":"1"},"Unknown":1}"##,
        )
        .unwrap();
        assert_eq!(
            container_config(Some(&c)),
            r##"{"Hostname":"","Domainname":"","User":"app","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["run \u003cit\u003e"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"Image":"","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"a":"1","b":"2"},"StopSignal":"SIGINT"}"##
        );
        assert_eq!(container_config(None), EMPTY_CONFIG);
        assert_eq!(container_config(Some(&Value::Null)), EMPTY_CONFIG);
    }
}
