//! `search` through both CLIs: a registry offering the v1 search API — a test double
//! (Debian's docker-registry, distribution, has no `/v1/search`; Docker Hub cannot be
//! reached from here) answering with the index's JSON — and a real docker-registry
//! without it, which gets Docker's `Unexpected status code 404`.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;

use berth_e2e::registry::{Auth, TestRegistry};
use berth_e2e::both;

/// Serves `GET /v1/search?q=&n=` on 127.0.0.1 with three results; returns host:port.
fn search_double() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let line = req.lines().next().unwrap_or("").to_string();
            let (status, body) = if line.starts_with("GET /v1/search?") && line.contains("q=busy") {
                ("200 OK", r#"{"num_results":3,"query":"busy","results":[
                    {"name":"me/busybox","description":"a busybox image built from Debian's busybox-static package for tests","star_count":12,"is_official":false,"is_automated":false},
                    {"name":"busybox","description":"Busybox base image.","star_count":3000,"is_official":true,"is_automated":false},
                    {"name":"other/busy","description":"","star_count":0,"is_official":false,"is_automated":true}]}"#)
            } else {
                ("404 Not Found", "{}")
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

both!(fn search_where_offered_and_where_not(d, cli) {
    let addr = search_double();
    let r = d.cli(cli, &["search", &format!("{addr}/busy")]).ok();
    let lines = r.lines();
    assert_eq!(berth_e2e::cells(&lines[0]), ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], "{r:?}");
    assert_eq!(lines.len(), 4, "{r:?}");
    r.stdout_has("a busybox image built from Debian's busybox-…").stdout_has("[OK]");
    let r = d.cli(cli, &["search", "--filter", "is-official=true", "--format", "{{.Name}} {{.StarCount}}", &format!("{addr}/busy")]).ok();
    assert_eq!(r.lines(), ["busybox 3000"]);
    let r = d.cli(cli, &["search", "--filter", "stars=10", "--format", "{{.Name}}", &format!("{addr}/busy")]).ok();
    assert_eq!(r.lines(), ["me/busybox", "busybox"]);
    let r = d.cli(cli, &["search", "--limit", "1", "--format", "{{.Name}}", &format!("{addr}/busy")]).ok();
    assert_eq!(r.lines(), ["me/busybox"]);
    d.cli(cli, &["search", "--filter", "foo=1", &format!("{addr}/busy")]).code(1).stderr_has("invalid filter 'foo'");

    let reg = TestRegistry::start(Auth::None, false, false);
    d.cli(cli, &["search", &format!("{}/busy", reg.addr())]).code(1).stderr_has("Unexpected status code 404");
});
