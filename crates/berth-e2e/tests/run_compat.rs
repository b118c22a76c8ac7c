//! Container-runtime details of issue 8, through `berth`, the real `docker` CLI and
//! docker-py: typed mounts (`-v` and `--mount` binds and tmpfs, a missing `--mount`
//! source), bind propagation applied in the container's mount namespace, `--group-add`,
//! the runtime name (`runc` registered when on PATH), `rm` of a restarting container,
//! and `run(remove=True)` never losing the output.

use berth_e2e::{Cli, Daemon};

/// Runs a docker-py script (`CLIENT` low-level, `ENV` high-level) against the daemon.
fn docker_py(d: &Daemon, body: &str) -> berth_e2e::Run {
    let script = format!(
        "import docker\nCLIENT = docker.APIClient(base_url=\"{h}\")\nENV = docker.DockerClient(base_url=\"{h}\")\n{body}",
        h = d.host()
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script);
    berth_e2e::run_with_timeout(cmd, "python3 -c <docker-py script>".into(), std::time::Duration::from_secs(300))
}

fn mount_of(d: &Daemon, name: &str, dst: &str) -> serde_json::Value {
    let i = d.inspect(name);
    let all = i["Mounts"].as_array().cloned().unwrap_or_default();
    all.into_iter().find(|m| m["Destination"] == dst).unwrap_or_else(|| panic!("no mount {dst}: {}", i["Mounts"]))
}

/// `-v` and `--mount` binds and `--mount type=tmpfs` start, are applied as asked and are
/// shown in inspect `Mounts` as Docker shows them; a `--mount` bind whose source is
/// missing is refused at create with Docker's text.
#[test]
fn binds_and_mounts_through_both_clis() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let src = d.dir().join("src");
    std::fs::create_dir_all(&src).expect("test setup");
    std::fs::write(src.join("f"), "in-bind\n").expect("test setup");
    let src = src.to_string_lossy().into_owned();
    for cli in [Cli::Berth, Cli::Docker] {
        let n = format!("m-{cli:?}").to_lowercase();
        let mount_ro = format!("type=bind,src={src},dst=/m,readonly");
        let v_ro = format!("{src}:/v:ro");
        let r = d
            .cli(cli, &["run", "--name", &n, "-v", &v_ro, "--mount", &mount_ro,
                "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox", "sh", "-c",
                "cat /m/f /v/f; touch /m/x 2>/dev/null || echo m-ro; touch /v/x 2>/dev/null || echo v-ro; stat -c %a /t; grep ' /t ' /proc/mounts"])
            .ok();
        assert!(r.stdout.starts_with("in-bind\nin-bind\nm-ro\nv-ro\n1770\n"), "{r:?}");
        assert!(r.stdout.contains("size=1024k") && r.stdout.contains("noexec"), "{r:?}");
        let m = mount_of(&d, &n, "/m");
        assert_eq!((m["Type"].as_str(), m["Source"].as_str(), m["RW"].as_bool()), (Some("bind"), Some(src.as_str()), Some(false)), "{m}");
        assert_eq!((m["Mode"].as_str(), m["Propagation"].as_str()), (Some(""), Some("rprivate")), "{m}");
        let v = mount_of(&d, &n, "/v");
        assert_eq!((v["Mode"].as_str(), v["RW"].as_bool(), v["Propagation"].as_str()), (Some("ro"), Some(false), Some("rprivate")), "{v}");
        let t = mount_of(&d, &n, "/t");
        assert_eq!((t["Type"].as_str(), t["Source"].as_str(), t["RW"].as_bool()), (Some("tmpfs"), Some(""), Some(true)), "{t}");
        // The record keeps HostConfig.Mounts as the client sent it.
        assert_eq!(d.inspect(&n)["HostConfig"]["Mounts"][0]["Type"], "bind");
        d.cli(cli, &["rm", &n]).ok();
        d.cli(cli, &["run", "--rm", "--mount", "type=bind,src=/nope,dst=/x", "busybox", "true"])
            .code(125)
            .stderr_has("invalid mount config for type \"bind\": bind source path does not exist: /nope");
        d.cli(cli, &["run", "--rm", "-v", &format!("{src}:/x:bogus"), "busybox", "true"]).code(125).stderr_has("invalid mode: bogus");
    }
    // docker-py's Mount(type='bind', …) and tmpfs Mounts start (they exited 1 before).
    let r = docker_py(
        &d,
        &format!(
            r#"
from docker.types import Mount
out = ENV.containers.run("busybox", "sh -c 'cat /m/f; touch /m/y 2>/dev/null || echo ro'", remove=True,
    mounts=[Mount(type="bind", source="{src}", target="/m", read_only=True)])
print(out.decode(), end="")
"#
        ),
    )
    .ok();
    assert_eq!(r.stdout, "in-bind\nro\n", "{r:?}");
}

/// `-v src:dst:rshared|rslave` is applied in the container's mount namespace: a mount
/// made on the host under a shared source after the start reaches the container (it
/// does not with the default `rprivate`), and inspect shows the propagation asked.
#[test]
fn bind_propagation_is_applied_and_shown() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let shared = d.dir().join("shared");
    std::fs::create_dir_all(&shared).expect("test setup");
    let s = shared.to_string_lossy().into_owned();
    let sh = |args: &[&str]| {
        let st = std::process::Command::new(args[0]).args(&args[1..]).status().expect("test setup");
        assert!(st.success(), "{args:?}");
    };
    sh(&["mount", "--bind", &s, &s]);
    sh(&["mount", "--make-rshared", &s]);
    let cases = [(Cli::Docker, "rshared", true), (Cli::Berth, "rslave", true), (Cli::Docker, "rprivate", false)];
    for (cli, p, _) in cases {
        d.cli(cli, &["run", "-d", "--name", &format!("p-{p}"), "-v", &format!("{s}:/data:{p}"), "busybox", "sleep", "300"]).ok();
    }
    let sub = shared.join("sub");
    std::fs::create_dir_all(&sub).expect("test setup");
    let subs = sub.to_string_lossy().into_owned();
    sh(&["mount", "-t", "tmpfs", "tmpfs", &subs]);
    std::fs::write(sub.join("file"), "seen\n").expect("test setup");
    let mut results = Vec::new();
    for (cli, p, want_seen) in cases {
        let r = d.cli(cli, &["exec", &format!("p-{p}"), "cat", "/data/sub/file"]);
        results.push((p, r.stdout.clone(), want_seen));
        let m = mount_of(&d, &format!("p-{p}"), "/data");
        assert_eq!((m["Propagation"].as_str(), m["Mode"].as_str()), (Some(p), Some(p)), "{m}");
        d.cli(cli, &["rm", "-f", &format!("p-{p}")]).ok();
    }
    sh(&["umount", &subs]);
    sh(&["umount", &s]);
    for (p, out, want_seen) in results {
        assert_eq!(out == "seen\n", want_seen, "{p}: {out:?}");
    }
    // An rshared bind is a shared mount inside the container.
    sh(&["mount", "--bind", &s, &s]);
    sh(&["mount", "--make-rshared", &s]);
    let r = d.docker(&["run", "--rm", "-v", &format!("{s}:/data:rshared"), "busybox", "grep", " /data ", "/proc/self/mountinfo"]);
    sh(&["umount", &s]);
    r.ok().stdout_has("shared:");
}

/// `--group-add` (numbers and names of the container's /etc/group) reaches the init
/// and execs, as `id -G` shows in Docker; an unknown name fails the start.
#[test]
fn group_add_sets_supplementary_groups() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    for cli in [Cli::Berth, Cli::Docker] {
        let r = d.cli(cli, &["run", "--rm", "--group-add", "1000", "--group-add", "nogroup", "busybox", "id", "-G"]).ok();
        assert_eq!(r.stdout, "0 1000 65534\n", "{r:?}");
        let n = format!("g-{cli:?}").to_lowercase();
        d.cli(cli, &["run", "-d", "--name", &n, "--group-add", "4242", "-u", "65534", "busybox", "sleep", "300"]).ok();
        let r = d.cli(cli, &["exec", &n, "id", "-G"]).ok();
        assert_eq!(r.stdout, "65534 4242\n", "{r:?}");
        d.cli(cli, &["rm", "-f", &n]).ok();
        d.cli(cli, &["run", "--rm", "--group-add", "ghosts", "busybox", "true"])
            .stderr_has("Unable to find group ghosts: no matching entries in group file");
    }
    let r = docker_py(
        &d,
        r#"
for groups in ([1000, 1001], ["1000", "nogroup"]):
    c = CLIENT.create_container("busybox", "id -G", host_config=CLIENT.create_host_config(group_add=groups))
    CLIENT.start(c); CLIENT.wait(c)
    print(CLIENT.logs(c).decode().strip()); CLIENT.remove_container(c)
"#,
    )
    .ok();
    assert_eq!(r.stdout, "0 1000 1001\n0 1000 65534\n", "{r:?}");
}

/// `runc` is a known runtime when its binary is on PATH, without `--add-runtime`;
/// inspect shows the runtime asked (docker-py puts it at the top level of the create
/// body), `berth` when none was; `/info` lists both and keeps `berth` the default.
#[test]
fn runc_is_registered_and_the_asked_runtime_shown() {
    assert!(std::path::Path::new("/usr/sbin/runc").is_file(), "/usr/sbin/runc is missing: install the `runc` package");
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let info = d.request("GET", "/info", None).json();
    assert_eq!(info["DefaultRuntime"], "berth");
    assert_eq!(info["Runtimes"]["runc"]["path"], "/usr/sbin/runc", "{}", info["Runtimes"]);
    for cli in [Cli::Berth, Cli::Docker] {
        let n = format!("rt-{cli:?}").to_lowercase();
        d.cli(cli, &["create", "--runtime", "runc", "--name", &n, "busybox", "echo", "via-runc"]).ok();
        assert_eq!(d.inspect(&n)["HostConfig"]["Runtime"], "runc");
        d.cli(cli, &["start", "-a", &n]).ok().stdout_has("via-runc");
        d.cli(cli, &["rm", &n]).ok();
    }
    d.docker(&["create", "--name", "plain", "busybox", "true"]).ok();
    assert_eq!(d.inspect("plain")["HostConfig"]["Runtime"], "berth");
    let r = docker_py(
        &d,
        r#"
c = CLIENT.create_container("busybox", ["echo", "test"], runtime="runc")
print(CLIENT.inspect_container(c)["HostConfig"]["Runtime"])
"#,
    )
    .ok();
    assert_eq!(r.stdout, "runc\n", "{r:?}");
}

/// A container its `always` policy is restarting cannot be removed without force
/// (Docker's 409), right after `wait` too; with force it is stopped and removed.
#[test]
fn rm_of_a_restarting_container_needs_force() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let r = docker_py(
        &d,
        r#"
c = CLIENT.create_container("busybox", ["sleep", "1"],
    host_config=CLIENT.create_host_config(restart_policy={"Name": "always", "MaximumRetryCount": 0}))
CLIENT.start(c)
CLIENT.wait(c)
try:
    CLIENT.remove_container(c)
    print("removed")
except docker.errors.APIError as e:
    # Restarting (or, after the 100 ms back-off, running again): refused either way.
    print(e.status_code, "stop the container before" in e.explanation.lower())
CLIENT.remove_container(c, force=True)
print(len(CLIENT.containers(all=True)))
"#,
    )
    .ok();
    assert_eq!(r.stdout, "409 True\n0\n", "{r:?}");
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "-d", "--name", "bouncy", "--restart", "always", "busybox", "false"]).ok();
        // Quick failures double the back-off: after a few, it is restarting long enough
        // (a rm that meets one of its millisecond runs is refused as running: again).
        let mut refused = String::new();
        for _ in 0..5 {
            d.wait_inspect("bouncy", std::time::Duration::from_secs(60), "restarting with a long back-off", |i| {
                i["State"]["Restarting"] == true && i["RestartCount"].as_i64().unwrap_or(0) >= 5
            });
            refused = d.cli(cli, &["rm", "bouncy"]).code(1).stderr;
            if !refused.contains("running container") {
                break;
            }
        }
        assert!(refused.contains("You cannot remove a restarting container "), "{refused}");
        assert!(refused.contains("Stop the container before attempting removal or force remove"), "{refused}");
        assert_eq!(d.inspect("bouncy")["State"]["Status"], "restarting");
        d.cli(cli, &["rm", "-f", "bouncy"]).ok();
        d.cli(cli, &["inspect", "bouncy"]).code(1);
    }
}

/// docker-py's `containers.run(..., remove=True)` reads a `logs(follow=True)` stream
/// opened before `wait` and consumed after `remove`: never empty, six at a time.
#[test]
fn run_remove_returns_the_output_every_time() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let r = docker_py(
        &d,
        r#"
from concurrent.futures import ThreadPoolExecutor
# Six at a time: the load under which the output used to go missing.
with ThreadPoolExecutor(6) as pool:
    outs = list(pool.map(lambda _: ENV.containers.run("busybox", "echo hi", remove=True), range(30)))
print(sum(o == b"hi\n" for o in outs), [o for o in outs if o != b"hi\n"])
print(len(CLIENT.containers(all=True)))
"#,
    )
    .ok();
    assert_eq!(r.stdout, "30 []\n0\n", "{r:?}");
}
