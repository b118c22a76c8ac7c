//! The `/networks` API and `network` commands through berth and the docker CLI: tables,
//! `-q`, `--format`, filters, inspect, connect/disconnect, rm and prune, and Docker's
//! 400/403/404/409 answers.

use berth_e2e::{both, cells, Daemon};

both!(fn network_create_ls_inspect_rm(d, cli) {
    let id = d.cli(cli, &["network", "create", "--label", "tier=web", "--subnet", "10.231.0.0/24", "--gateway", "10.231.0.254", "appnet"]).ok();
    let id = id.out().to_string();
    assert!(berth_e2e::is_hex(&id, 64), "{id}");

    let ls = d.cli(cli, &["network", "ls"]).ok();
    let lines = ls.lines();
    assert_eq!(cells(&lines[0]), vec!["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    let names: Vec<String> = lines[1..].iter().map(|l| cells(l)[1].clone()).collect();
    assert_eq!(names, vec!["appnet", "bridge", "host", "none"], "sorted by name: {ls:?}");
    assert!(lines.iter().any(|l| cells(l) == vec![id[..12].to_string(), "appnet".into(), "bridge".into(), "local".into()]), "{ls:?}");

    let q = d.cli(cli, &["network", "ls", "-q", "--filter", "label=tier=web"]).ok();
    assert_eq!(q.out(), &id[..12]);
    let f = d.cli(cli, &["network", "ls", "--no-trunc", "--filter", "name=app", "--format", "{{.ID}} {{.Name}} {{.Driver}} {{.Internal}} {{.Labels}}"]).ok();
    assert_eq!(f.out(), format!("{id} appnet bridge false tier=web"));
    let custom = d.cli(cli, &["network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"]).ok();
    assert_eq!(custom.out(), "appnet");

    let i = d.cli(cli, &["network", "inspect", "-f", "{{.Name}} {{.Driver}} {{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}} {{.Labels.tier}}", "appnet"]).ok();
    assert_eq!(i.out(), "appnet bridge 10.231.0.0/24 10.231.0.254 web");
    let json = d.cli(cli, &["network", "inspect", &id[..12]]).ok();
    let v: serde_json::Value = serde_json::from_str(json.out()).expect("inspect JSON");
    assert_eq!(v[0]["Id"], serde_json::json!(id));
    assert_eq!(v[0]["Containers"], serde_json::json!({}));

    d.cli(cli, &["network", "create", "appnet"]).code(1).stderr_has("Error response from daemon: network with name appnet already exists");
    d.cli(cli, &["network", "rm", "bridge"]).code(1).stderr_has("Error response from daemon: bridge is a pre-defined network and cannot be removed");
    d.cli(cli, &["network", "rm", "nosuchnet"]).code(1).stderr_has("Error response from daemon: network nosuchnet not found");
    d.cli(cli, &["network", "inspect", "nosuchnet"]).code(1).stderr_has("network nosuchnet not found");

    let rm = d.cli(cli, &["network", "rm", "appnet"]).ok();
    assert_eq!(rm.out(), "appnet");
    let after = d.cli(cli, &["network", "ls", "--format", "{{.Name}}"]).ok();
    assert_eq!(after.lines(), vec!["bridge", "host", "none"]);
});

both!(fn network_connect_disconnect_and_prune(d, cli) {
    d.cli(cli, &["network", "create", "n1"]).ok();
    d.cli(cli, &["network", "create", "--label", "keep=1", "n2"]).ok();
    d.cli(cli, &["run", "-d", "--name", "c1", "busybox", "sleep", "300"]).ok();
    d.cli(cli, &["network", "connect", "--alias", "web", "n1", "c1"]).ok();
    let c = d.inspect("c1");
    let ep = &c["NetworkSettings"]["Networks"]["n1"];
    assert!(!ep["IPAddress"].as_str().unwrap_or_default().is_empty(), "{ep}");
    assert_eq!(ep["Aliases"], serde_json::json!(["web"]), "{ep}");
    let members = d.cli(cli, &["network", "inspect", "-f", "{{range .Containers}}{{.Name}}{{end}}", "n1"]).ok();
    assert_eq!(members.out(), "c1");
    d.cli(cli, &["network", "connect", "n1", "c1"]).code(1).stderr_has("endpoint with name c1 already exists in network n1");
    // A network with an active endpoint is not removed (403) and not pruned.
    d.cli(cli, &["network", "rm", "n1"]).code(1).stderr_has("has active endpoints");
    d.cli(cli, &["network", "disconnect", "n1", "c1"]).ok();
    assert!(d.inspect("c1")["NetworkSettings"]["Networks"].get("n1").is_none());
    d.cli(cli, &["network", "disconnect", "n1", "c1"]).code(1).stderr_has("is not connected to network n1");
    d.cli(cli, &["network", "connect", "n1", "c1"]).ok();

    // n1 is in use, n2 is kept by the label filter: nothing... then n2 goes.
    let p = d.cli(cli, &["network", "prune", "-f", "--filter", "label!=keep=1"]).ok();
    assert_eq!(p.out(), "");
    let p = d.cli(cli, &["network", "prune", "-f"]).ok();
    assert_eq!(p.lines(), vec!["Deleted Networks:", "n2", ""]);
    d.cli(cli, &["rm", "-f", "c1"]).ok();
    let p = d.cli(cli, &["network", "prune", "-f"]).ok();
    assert_eq!(p.lines(), vec!["Deleted Networks:", "n1", ""]);
});

#[test]
fn network_api_status_codes() {
    let d = Daemon::start();
    let create = |body: &str| d.request("POST", "/v1.47/networks/create", Some(body));
    let r = create(r#"{"Name":"api1","CheckDuplicate":true}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["Id"].as_str().unwrap_or_default().to_string();
    assert_eq!(r.json()["Warning"], serde_json::json!(""));
    let r = create(r#"{"Name":"api1"}"#);
    assert_eq!((r.status, r.json()["message"].clone()), (409, serde_json::json!("network with name api1 already exists")));
    let r = create(r#"{"Name":"bridge"}"#);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = create("{not json");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = create(r#"{"Name":"x","Driver":"nosuchdriver"}"#);
    assert_eq!(r.status, 404, "{}", r.text());

    let r = d.request("GET", "/v1.47/networks/api1", None);
    assert_eq!((r.status, r.json()["Id"].clone()), (200, serde_json::json!(id)));
    let r = d.request("GET", "/v1.47/networks/api1?scope=swarm", None);
    assert_eq!(r.status, 404, "{}", r.text());
    let r = d.request("GET", "/v1.47/networks/nope", None);
    assert_eq!((r.status, r.json()["message"].clone()), (404, serde_json::json!("network nope not found")));
    let r = d.request("GET", "/v1.47/networks?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D", None);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = d.request("GET", "/v1.47/networks?filters=%7B%22driver%22%3A%7B%22null%22%3Atrue%7D%7D", None);
    let names: Vec<String> = r.json().as_array().cloned().unwrap_or_default().iter().map(|n| n["Name"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(names, vec!["none"]);

    let r = d.request("POST", "/v1.47/networks/api1/connect", Some(r#"{"Container":"nosuch"}"#));
    assert_eq!(r.status, 404, "{}", r.text());
    let r = d.request("DELETE", "/v1.47/networks/none", None);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = d.request("DELETE", "/v1.47/networks/api1", None);
    assert_eq!(r.status, 204, "{}", r.text());
    let r = d.request("DELETE", "/v1.47/networks/api1", None);
    assert_eq!(r.status, 404, "{}", r.text());
    let r = d.request("POST", "/v1.47/networks/prune", None);
    assert_eq!((r.status, r.json()), (200, serde_json::json!({"NetworksDeleted": null})));
}
