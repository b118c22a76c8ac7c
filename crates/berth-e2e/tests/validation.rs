//! What the daemon refuses before doing anything, with Docker's statuses and texts:
//! create bodies Docker rejects (issue 6, D12), query values that are no numbers or
//! timestamps and unknown filter keys, pull `tag` values that are no tags (D10) and
//! tag targets with digests (D11). Nothing refused may leave a container behind.

use berth_e2e::{Cli, Daemon};

/// Every case: (body, status, message).
const CREATE_CASES: &[(&str, u16, &str)] = &[
    (
        r#"{"Image":"busybox","WorkingDir":"rel/dir"}"#,
        400,
        "the working directory 'rel/dir' is invalid, it needs to be an absolute path",
    ),
    (r#"{"Image":"busybox","StopSignal":"SIGFOO"}"#, 400, "Invalid signal: SIGFOO"),
    (r#"{"Image":"busybox","HostConfig":{"NetworkMode":"nope"}}"#, 404, "network nope not found"),
    (
        r#"{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"nope","Target":"/x"}]}}"#,
        400,
        "invalid mount config for type \"nope\": mount type unknown",
    ),
    (r#"{"Image":"busybox","HostConfig":{"NanoCpus":1000000000000000000}}"#, 400, "Range of CPUs is from 0.01 to"),
    (r#"{"Image":"busybox","HostConfig":{"Memory":1048576}}"#, 400, "Minimum memory limit allowed is 6MB"),
    (
        r#"{"Image":"busybox","HostConfig":[]}"#,
        400,
        "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig",
    ),
    (
        r#"{"Image":"busybox","Healthcheck":"x"}"#,
        400,
        "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Healthcheck of type container.HealthConfig",
    ),
    (
        r#"{"Image":"busybox","Healthcheck":{"Test":["CMD","true"],"Interval":5}}"#,
        400,
        "Interval in Healthcheck cannot be less than 1ms",
    ),
];

#[test]
fn create_refuses_what_docker_refuses() {
    let d = Daemon::start();
    for (body, status, message) in CREATE_CASES {
        let r = d.request("POST", "/v1.47/containers/create", Some(body));
        assert_eq!(r.status, *status, "{body}: {}", r.text());
        let m = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(m.starts_with(message), "{body}: message {m:?}, want {message:?}");
    }
    let list = d.request("GET", "/v1.47/containers/json?all=1", None);
    assert_eq!(list.json(), serde_json::json!([]), "a refused create left a container");
}

#[test]
fn run_flags_docker_refuses_exit_125_with_its_text() {
    let d = Daemon::start();
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "--rm", "-w", "rel", "busybox", "true"])
            .code(125)
            .stderr_has("the working directory 'rel' is invalid, it needs to be an absolute path");
        // `create` exits 1 on daemon errors (docker 28), `run` 125.
        d.cli(cli, &["create", "--stop-signal", "SIGFOO", "busybox", "true"])
            .code(1)
            .stderr_has("Invalid signal: SIGFOO");
        d.cli(cli, &["run", "-m", "1m", "busybox", "true"])
            .code(125)
            .stderr_has("Minimum memory limit allowed is 6MB");
        d.cli(cli, &["create", "--network", "nope", "busybox", "true"])
            .code(1)
            .stderr_has("network nope not found");
    }
    d.berth(&["ps", "-aq"]).ok().stdout_lacks("\n");
}

#[test]
fn bad_query_values_are_400() {
    let d = Daemon::start();
    d.berth(&["create", "--name", "qq", "busybox", "sleep", "10"]).ok();
    let cases = [
        ("POST", "/v1.47/containers/qq/stop?t=abc", "strconv.Atoi: parsing \"abc\": invalid syntax"),
        ("POST", "/v1.47/containers/qq/restart?t=1x", "strconv.Atoi: parsing \"1x\": invalid syntax"),
        ("GET", "/v1.47/containers/json?limit=abc", "strconv.Atoi: parsing \"abc\": invalid syntax"),
        ("GET", "/v1.47/containers/qq/logs?stdout=1&since=abc", "strconv.ParseInt: parsing \"abc\": invalid syntax"),
        ("GET", "/v1.47/events?since=abc", "strconv.ParseInt: parsing \"abc\": invalid syntax"),
        ("GET", "/v1.47/containers/json?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D", "invalid filter 'foo'"),
        ("POST", "/v1.47/containers/prune?filters=%7B%22name%22%3A%5B%22x%22%5D%7D", "invalid filter 'name'"),
        ("POST", "/v1.47/images/prune?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", "invalid filter 'bogus'"),
        ("GET", "/v1.47/events?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D", "invalid filter 'nope'"),
    ];
    for (method, path, message) in cases {
        let r = d.request(method, path, None);
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["message"], message, "{method} {path}");
    }
    // Nothing was done by the refused requests; valid values still work.
    assert_eq!(d.inspect("qq")["State"]["Status"], "created");
    assert_eq!(d.request("GET", "/v1.47/containers/json?limit=1&all=1", None).status, 200);
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["ps", "--filter", "foo=bar"]).code(1).stderr_has("invalid filter 'foo'");
    }
}

#[test]
fn pull_and_tag_check_their_references() {
    let d = Daemon::start();
    let r = d.request("POST", "/v1.47/images/create?fromImage=busybox&tag=%00", None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "invalid tag format");
    let r = d.request("POST", "/v1.47/images/create?fromImage=busybox&tag=-bad", None);
    assert_eq!(r.status, 400, "{}", r.text());

    d.berth(&["pull", "busybox"]).ok();
    let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let r = d.request("POST", &format!("/v1.47/images/busybox/tag?repo=busybox@{digest}"), None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "cannot import digest reference");
    let r = d.request("POST", "/v1.47/images/busybox/tag?repo=me/bb&tag=a%20b", None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "invalid tag format");
    // The store holds no malformed reference afterwards, and a good tag works.
    let images = d.request("GET", "/v1.47/images/json", None).json();
    assert_eq!(images[0]["RepoTags"], serde_json::json!(["busybox:latest"]), "{images}");
    assert_eq!(d.request("POST", "/v1.47/images/busybox/tag?repo=me/bb&tag=ok", None).status, 201);
    d.berth(&["images"]).ok().stdout_has("me/bb");
}
