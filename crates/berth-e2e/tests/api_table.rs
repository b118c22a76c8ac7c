//! The Engine API routes the stock CLI and docker-py call for containers, exec, images and
//! the system, as one table of (method, path, body) → Docker's status, error text and JSON
//! keys, taken from real Docker traces (`shared/docs/engine-api-trace.md` §2–4, §7.4, §8.2).
//! Shapes beyond the keys are checked against Docker's swagger in
//! `berth-api/tests/swagger_shapes.rs`.

use berth_e2e::Daemon;

/// What an answer must be: a status, and either a substring of the error message or
/// JSON keys that must be present at the top level (of the first element, for lists).
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    status: u16,
    message: Option<&'static str>,
    keys: &'static [&'static str],
    content_type: Option<&'static str>,
}

const fn ok(method: &'static str, path: &'static str, status: u16, keys: &'static [&'static str]) -> Row {
    Row { method, path, body: None, status, message: None, keys, content_type: None }
}

const fn err(method: &'static str, path: &'static str, status: u16, message: &'static str) -> Row {
    Row { method, path, body: None, status, message: Some(message), keys: &[], content_type: None }
}

const ROWS: &[Row] = &[
    // System (§2).
    ok("GET", "/v1.47/version", 200, &["Version", "ApiVersion", "MinAPIVersion", "Os", "Arch", "Components"]),
    ok("GET", "/v1.47/info", 200, &["ID", "Containers", "ContainersRunning", "Images", "Driver", "OSType", "Runtimes", "DefaultRuntime", "CgroupVersion"]),
    ok("GET", "/v1.47/system/df", 200, &["LayersSize", "Images", "Containers"]),
    ok("GET", "/_ping", 200, &[]),
    // Containers (§4).
    ok("GET", "/v1.47/containers/json", 200, &["Id", "Names", "Image", "ImageID", "Command", "Created", "State", "Status", "Ports", "Labels", "HostConfig", "NetworkSettings", "Mounts"]),
    ok("GET", "/v1.47/containers/json?all=1&size=1", 200, &["SizeRw", "SizeRootFs"]),
    ok("GET", "/v1.47/containers/sleeper/json", 200, &["Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath", "LogPath", "Name", "RestartCount", "Driver", "Platform", "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings"]),
    ok("GET", "/v1.47/containers/sleeper/top", 200, &["Titles", "Processes"]),
    ok("GET", "/v1.47/containers/sleeper/stats?stream=0", 200, &["read", "cpu_stats", "memory_stats", "pids_stats"]),
    ok("GET", "/v1.47/containers/sleeper/changes", 200, &[]),
    Row { method: "POST", path: "/v1.47/containers/sleeper/exec", body: Some(r#"{"Cmd":["true"],"AttachStdout":true}"#), status: 201, message: None, keys: &["Id"], content_type: None },
    Row { method: "GET", path: "/v1.47/containers/exited1/logs?stdout=1&stderr=1", body: None, status: 200, message: None, keys: &[], content_type: None },
    Row { method: "GET", path: "/v1.47/containers/exited1/archive?path=/etc/hostname", body: None, status: 200, message: None, keys: &[], content_type: Some("application/x-tar") },
    // Errors captured from the real daemon (§8.2).
    err("DELETE", "/v1.47/containers/sleeper", 409, "You cannot remove a running container"),
    Row { method: "POST", path: "/v1.47/containers/create?name=sleeper", body: Some(r#"{"Image":"busybox","Cmd":["true"]}"#), status: 409, message: Some("Conflict. The container name \"/sleeper\" is already in use by container"), keys: &[], content_type: None },
    Row { method: "POST", path: "/v1.47/containers/create?name=x", body: Some(r#"{"Image":"busybox"}"#), status: 400, message: Some("Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"), keys: &[], content_type: None },
    Row { method: "POST", path: "/v1.47/containers/exited1/exec", body: Some(r#"{"Cmd":["echo","hi"]}"#), status: 409, message: Some("is not running"), keys: &[], content_type: None },
    err("POST", "/v1.47/containers/nosuchctr/stop", 404, "No such container: nosuchctr"),
    err("POST", "/v1.47/containers/nosuchctr/start", 404, "No such container: nosuchctr"),
    err("GET", "/v1.47/containers/nosuchctr/json", 404, "No such container: nosuchctr"),
    err("POST", "/v1.47/containers/exited1/kill", 409, "Cannot kill container: exited1: Container"),
    err("POST", "/v1.47/containers/exited1/pause", 409, "is not running"),
    err("GET", "/v1.47/containers/exited1/archive?path=/nope", 404, "Could not find the file /nope in container exited1"),
    err("POST", "/v1.47/containers/sleeper/wait?condition=bogus", 400, "invalid condition: \"bogus\""),
    err("GET", "/v1.47/containers/exited1/logs", 400, "Bad parameters: you must choose at least one stream"),
    err("POST", "/v1.47/exec/nosuchexec/start", 404, "No such exec instance: nosuchexec"),
    err("GET", "/v1.47/exec/nosuchexec/json", 404, "No such exec instance: nosuchexec"),
    // Images (§3).
    ok("GET", "/v1.47/images/json", 200, &["Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize", "Labels", "Containers"]),
    ok("GET", "/v1.47/images/busybox/json", 200, &["Id", "RepoTags", "RepoDigests", "Parent", "Created", "Config", "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata"]),
    err("DELETE", "/v1.47/images/nosuchimage_trace", 404, "No such image: nosuchimage_trace:latest"),
    err("GET", "/v1.47/images/nosuchimage_trace/json", 404, "No such image: nosuchimage_trace:latest"),
    err("DELETE", "/v1.47/images/busybox", 409, "conflict: unable to remove repository reference \"busybox\" (must force) - container"),
    // Routes that do not exist.
    err("GET", "/v1.47/nosuchroute", 404, "page not found"),
];

#[test]
fn routes_answer_as_docker_does() {
    let d = Daemon::start();
    d.berth(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"]).ok();
    d.berth(&["run", "--name", "exited1", "busybox", "true"]).ok();
    let mut failures = Vec::new();
    for row in ROWS {
        let r = d.request(row.method, row.path, row.body);
        let what = format!("{} {}", row.method, row.path);
        if r.status != row.status {
            failures.push(format!("{what}: status {} (want {}): {}", r.status, row.status, r.text()));
            continue;
        }
        if let Some(ct) = row.content_type {
            if r.header("Content-Type") != Some(ct) {
                failures.push(format!("{what}: Content-Type {:?} (want {ct})", r.header("Content-Type")));
            }
        }
        if let Some(m) = row.message {
            let got = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned));
            if !got.as_deref().is_some_and(|g| g.contains(m)) {
                failures.push(format!("{what}: message {got:?} lacks {m:?}"));
            }
        }
        if !row.keys.is_empty() {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let obj = if v.is_array() { v[0].clone() } else { v };
            for k in row.keys {
                if obj.get(*k).is_none() {
                    failures.push(format!("{what}: no key {k} in {obj}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} rows differ from Docker:\n{}", failures.len(), ROWS.len(), failures.join("\n"));
}
