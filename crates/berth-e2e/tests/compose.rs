//! Debian's docker-compose (1.29, docker-py underneath) against berthd: a redis service
//! with a named volume, a busybox web server with a published port, and a client that
//! reaches redis by its service name; `up -d`, `run`, `down -v` leaving nothing behind
//! (the named volume included). Also compose's Python attach path
//! (`COMPOSE_INTERACTIVE_NO_CLI=1`), which attaches only after starting the container.

use berth_e2e::{run_with_timeout, wait_until, Daemon, Run};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Run {
    compose_env(d, dir, args, &[])
}

fn compose_env(d: &Daemon, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new("docker-compose");
    c.envs(env.iter().copied());
    // `run` goes through the docker CLI on PATH (compose's default on Linux), as users
    // have it, unless COMPOSE_INTERACTIVE_NO_CLI=1 is in `env`.
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
    volumes:
      - data:/data
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "127.0.0.1:{port}:80"
  client:
    image: redis
    command: ["redis-cli", "-h", "redis", "ping"]
volumes:
  data: {{}}
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

    // redis keeps its data in the project's named volume.
    let vols = d.berth(&["volume", "ls", "-q"]).ok();
    assert_eq!(vols.lines(), vec!["berthe2e_data"], "{vols:?}");
    let mounts = d.inspect("berthe2e_redis_1")["Mounts"].clone();
    assert_eq!(mounts[0]["Type"], "volume", "{mounts}");
    assert_eq!(mounts[0]["Name"], "berthe2e_data", "{mounts}");
    assert_eq!(mounts[0]["Destination"], "/data", "{mounts}");
    let set = wait_until(Duration::from_secs(30), "redis SET", || {
        let r = d.berth(&["exec", "berthe2e_redis_1", "redis-cli", "set", "k", "kept"]);
        (r.code == 0 && r.out().contains("OK")).then_some(r)
    });
    assert!(set.out().contains("OK"));
    d.berth(&["exec", "berthe2e_redis_1", "redis-cli", "save"]).ok().stdout_has("OK");
    let dump = d.berth(&["run", "--rm", "-v", "berthe2e_data:/d", "busybox", "ls", "/d"]).ok();
    assert!(dump.out().contains("dump.rdb"), "{dump:?}");

    compose(&d, dir.path(), &["down", "-v"]).ok();
    let left = d.berth(&["ps", "-aq"]).ok();
    assert_eq!(left.out(), "", "no containers left");
    let nets = d.berth(&["network", "ls", "--format", "{{.Name}}"]).ok();
    assert_eq!(nets.lines(), vec!["bridge", "host", "none"], "no networks left");
    let vols = d.request("GET", "/volumes", None);
    assert_eq!(vols.status, 200, "{}", vols.text());
    let v = vols.json();
    assert_eq!(v["Volumes"].as_array().map_or(0, |a| a.len()), 0, "no volumes left: {v}");
}

/// compose's Python attach path attaches to a `run` container only after starting it
/// (dockerpty opens its sockets lazily): a container that prints and exits at once has
/// often finished by then. Every run must still print its output and end.
#[test]
fn compose_run_python_attach_path_keeps_output() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let yml = r#"version: "3.7"
services:
  echo:
    image: busybox
    command: ["sh", "-c", "echo out-line; echo err-line >&2"]
"#;
    std::fs::write(dir.path().join("docker-compose.yml"), yml).expect("write compose file");
    d.berth(&["pull", "busybox"]).ok();
    let env = [("COMPOSE_INTERACTIVE_NO_CLI", "1")];
    for i in 0..15 {
        // Alternately with stdin attached (a live stdin attach beside the output ones).
        let args: &[&str] = if i % 2 == 0 { &["run", "--rm", "-T", "echo"] } else { &["run", "--rm", "echo"] };
        let r = compose_env(&d, dir.path(), args, &env);
        assert_eq!(r.code, 0, "run {i}: {r:?}");
        assert_eq!(r.out().trim(), "out-line", "run {i}: {r:?}");
        assert!(r.stderr.contains("err-line"), "run {i}: {r:?}");
    }
    let left = d.berth(&["ps", "-aq"]).ok();
    assert_eq!(left.out(), "", "no containers left");
}

/// `build:` services: `docker-compose build` (through the docker CLI, compose 1.29's
/// default) with build args,
/// a second build from the cache, `up` of the built image, and `down --rmi local`
/// removing it.
#[test]
fn compose_build_then_up() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(app.join("msg.txt"), "built-by-compose\n").expect("write");
    std::fs::write(
        app.join("Dockerfile"),
        "FROM busybox\nARG SUFFIX=none\nCOPY msg.txt /msg.txt\nRUN echo \"$SUFFIX\" >> /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n",
    )
    .expect("write");
    let yml = r#"version: "3.7"
services:
  app:
    build:
      context: ./app
      args:
        SUFFIX: from-args
"#;
    std::fs::write(dir.path().join("docker-compose.yml"), yml).expect("write compose file");
    let b = compose(&d, dir.path(), &["build"]).ok();
    assert!(b.out().contains("Successfully built") && b.out().contains("Successfully tagged berthe2e_app:latest"), "{b:?}");
    let again = compose(&d, dir.path(), &["build"]).ok();
    assert_eq!(again.out().matches("Using cache").count(), 4, "{again:?}");
    // The same build through docker-py's API (compose without the docker CLI).
    let py = compose_env(&d, dir.path(), &["build", "--no-cache"], &[("COMPOSE_DOCKER_CLI_BUILD", "0"), ("DOCKER_BUILDKIT", "0")]).ok();
    assert!(py.out().contains("Successfully built") && !py.out().contains("Using cache"), "{py:?}");
    let run = compose(&d, dir.path(), &["run", "--rm", "app"]).ok();
    assert!(run.out().contains("built-by-compose") && run.out().contains("from-args"), "{run:?}");
    compose(&d, dir.path(), &["up", "-d"]).ok();
    let logs = wait_until(Duration::from_secs(30), "the built service's output", || {
        let r = compose(&d, dir.path(), &["logs", "app"]);
        r.out().contains("from-args").then_some(r)
    });
    assert!(logs.out().contains("built-by-compose"), "{logs:?}");
    compose(&d, dir.path(), &["down", "--rmi", "local"]).ok();
    let left = d.berth(&["images", "-q", "berthe2e_app"]).ok();
    assert_eq!(left.stdout.trim(), "", "down --rmi local removes the built image");
}
