//! Debian's docker-compose (1.29, docker-py underneath) against berthd: a redis service
//! with a named volume, a busybox web server with a published port, and a client that
//! reaches redis by its service name; `up -d`, `run`, `down -v` leaving nothing behind.

use berth_e2e::{run_with_timeout, wait_until, Daemon, Run};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Run {
    let mut c = Command::new("docker-compose");
    // `run` goes through the docker CLI on PATH (compose's default on Linux), as users
    // have it. Its Python attach path (COMPOSE_INTERACTIVE_NO_CLI=1) sometimes misses a
    // short-lived container's output against berthd: see docs/networking.md.
    let path = format!("{}:{}", berth_e2e::docker_cli().parent().map(|p| p.display().to_string()).unwrap_or_default(), std::env::var("PATH").unwrap_or_default());
    c.env("PATH", path).current_dir(dir).env("DOCKER_HOST", d.host()).args(["-p", "berthe2e"]).args(args);
    let shown = format!("docker-compose -p berthe2e {}", args.join(" "));
    run_with_timeout(c, shown, Duration::from_secs(180))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the web service).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn compose_up_run_down() {
    assert!(
        Command::new("docker-compose").arg("version").output().is_ok_and(|o| o.status.success()),
        "docker-compose is not installed (scripts/test.sh installs Debian's docker-compose)"
    );
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let yml = format!(
        r#"version: "3.7"
services:
  redis:
    image: redis
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "127.0.0.1:{port}:80"
  client:
    image: redis
    command: ["redis-cli", "-h", "redis", "ping"]
"#
    );
    std::fs::write(dir.path().join("docker-compose.yml"), yml).expect("write compose file");

    compose(&d, dir.path(), &["up", "-d", "redis", "web"]).ok();
    let ps = compose(&d, dir.path(), &["ps"]).ok();
    assert!(ps.out().contains("berthe2e_redis_1") && ps.out().contains("berthe2e_web_1"), "{ps:?}");

    // The client service reaches redis by its service name on the project network.
    let pong = wait_until(Duration::from_secs(60), "redis-cli -h redis ping", || {
        let r = compose(&d, dir.path(), &["run", "--rm", "client"]);
        (r.code == 0 && r.out().contains("PONG")).then_some(r)
    });
    assert!(pong.out().contains("PONG"), "{pong:?}");

    // The web service is served on its published port.
    let body = wait_until(Duration::from_secs(30), "web on its published port", || {
        let mut c = Command::new("curl");
        c.args(["-s", "-m", "5", &format!("http://127.0.0.1:{port}/")]);
        let r = run_with_timeout(c, "curl".into(), Duration::from_secs(10));
        (r.code == 0 && r.out() == "hello-compose").then_some(r)
    });
    assert_eq!(body.out(), "hello-compose");

    compose(&d, dir.path(), &["down", "-v"]).ok();
    let left = d.berth(&["ps", "-aq"]).ok();
    assert_eq!(left.out(), "", "no containers left");
    let nets = d.berth(&["network", "ls", "--format", "{{.Name}}"]).ok();
    assert_eq!(nets.lines(), vec!["bridge", "host", "none"], "no networks left");
    let vols = d.request("GET", "/volumes", None);
    if vols.status == 200 {
        let v = vols.json();
        let n = v["Volumes"].as_array().map_or(0, |a| a.len());
        assert_eq!(n, 0, "no volumes left: {v}");
    }
}
