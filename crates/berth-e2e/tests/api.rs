//! The Engine API edge, spoken raw over the Unix socket: ping and version negotiation,
//! version bounds, unknown routes (docs/engine-api-trace.md §8.1, §9).

use berth_e2e::Daemon;

#[test]
fn ping_head_and_get_carry_api_version() {
    let d = Daemon::start();
    let head = d.request("HEAD", "/_ping", None);
    assert_eq!(head.status, 200, "{head:?}");
    let v = head.header("Api-Version").unwrap_or_else(|| panic!("HEAD /_ping without Api-Version: {head:?}"));
    assert!(v.starts_with("1."), "Api-Version {v:?}");
    assert_eq!(head.header("Ostype"), Some("linux"), "{head:?}");
    assert!(head.body.is_empty());

    let get = d.request("GET", "/_ping", None);
    assert_eq!(get.status, 200, "{get:?}");
    assert_eq!(get.text(), "OK");
    assert_eq!(get.header("Api-Version"), Some(v));

    let versioned = d.request("GET", "/v1.41/_ping", None);
    assert_eq!(versioned.status, 200, "{versioned:?}");
    assert_eq!(versioned.text(), "OK");
}

#[test]
fn version_endpoint_versioned_and_bare() {
    let d = Daemon::start();
    for path in ["/v1.41/version", "/version"] {
        let r = d.request("GET", path, None);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let j = r.json();
        for key in ["Version", "ApiVersion", "MinAPIVersion", "Os", "Arch"] {
            assert!(j.get(key).is_some(), "{path}: no {key} in {j}");
        }
        assert_eq!(j["Os"], "linux");
    }
}

#[test]
fn too_new_api_version_is_400() {
    let d = Daemon::start();
    let max = d.request("HEAD", "/_ping", None).header("Api-Version").map(str::to_string).expect("Api-Version");
    let r = d.request("GET", "/v1.99/version", None);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.header("Content-Type").unwrap_or_default().starts_with("application/json"), "{r:?}");
    assert_eq!(
        r.json()["message"],
        format!("client version 1.99 is too new. Maximum supported API version is {max}")
    );
}

#[test]
fn unknown_route_is_404_page_not_found() {
    let d = Daemon::start();
    for (method, path) in [("GET", "/v1.41/nosuch/route"), ("GET", "/nosuch"), ("PUT", "/v1.41/containers/json")] {
        let r = d.request(method, path, None);
        assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        assert!(r.header("Content-Type").unwrap_or_default().starts_with("application/json"), "{r:?}");
        assert_eq!(r.json(), serde_json::json!({"message": "page not found"}), "{method} {path}");
    }
}

#[test]
fn unknown_container_is_404_json() {
    let d = Daemon::start();
    let r = d.request("GET", "/v1.41/containers/nosuch/json", None);
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json()["message"], "No such container: nosuch");
}
