//! Container lifecycle through the CLI: run -d, ps (and its formats), create/start -a,
//! logs, inspect, rm. Every case runs through both `berth` and the real `docker` CLI.

use berth_e2e::{both, cells, is_hex, Cli, Daemon};

fn run_web(d: &Daemon, cli: Cli) -> String {
    let r = d.cli(cli, &["run", "-d", "--name", "web", "alpine", "sleep", "300"]).ok();
    let id = r.out().to_string();
    assert!(is_hex(&id, 64), "run -d must print the full 64-hex id: {r:?}");
    id
}

both!(fn ps_shows_running_container(d, cli) {
    let id = run_web(&d, cli);
    let ps = d.cli(cli, &["ps"]).ok();
    let lines = ps.lines();
    assert_eq!(
        cells(&lines[0]),
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
        "{ps:?}"
    );
    let row = lines.iter().find(|l| l.ends_with(" web")).unwrap_or_else(|| panic!("no web row: {ps:?}"));
    assert!(row.starts_with(&id[..12]), "{ps:?}");
    assert!(row.contains("   alpine   "), "{ps:?}");
    assert!(row.contains(r#""sleep 300""#), "{ps:?}");
    assert!(row.contains("   Up "), "{ps:?}");

    let q = d.cli(cli, &["ps", "-a", "-q"]).ok();
    assert_eq!(q.lines(), vec![id[..12].to_string()], "{q:?}");
    d.cli(cli, &["ps", "--no-trunc", "-q"]).ok().stdout_has(&id);
    d.cli(cli, &["rm", "-f", "web"]).ok();
});

both!(fn ps_format_table_is_tabwriter_aligned(d, cli) {
    run_web(&d, cli);
    let r = d.cli(cli, &["ps", "--format", "table {{.Names}}\t{{.Image}}"]).ok();
    let lines = r.lines();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert_eq!(cells(&lines[0]), ["NAMES", "IMAGE"], "{r:?}");
    assert_eq!(cells(&lines[1]), ["web", "alpine"], "{r:?}");
    // Docker's tabwriter: both columns start at the same offset, padded by >= 3 spaces.
    let col = lines[0].find("IMAGE").expect("IMAGE column");
    assert_eq!(lines[1].find("alpine"), Some(col), "{r:?}");
    assert!(lines[1][3..col].chars().all(|c| c == ' ') && col >= "NAMES".len() + 3, "{r:?}");
    // Client-side formatting must match the reference CLI byte for byte.
    let reference = d.docker(&["ps", "--format", "table {{.Names}}\t{{.Image}}"]).ok();
    assert_eq!(r.stdout, reference.stdout);
    let plain = d.cli(cli, &["ps", "--format", "{{.Names}} {{.Image}} {{.Command}}"]).ok();
    assert_eq!(plain.stdout, "web alpine \"sleep 300\"\n", "{plain:?}");
    d.cli(cli, &["rm", "-f", "web"]).ok();
});

both!(fn create_then_start_attached_by_prefix(d, cli) {
    let r = d.cli(cli, &["create", "hello-world"]).ok();
    let id = r.out().to_string();
    assert!(is_hex(&id, 64), "create must print the full id: {r:?}");
    let ps = d.cli(cli, &["ps", "-a"]).ok();
    let row = ps.lines().into_iter().find(|l| l.starts_with(&id[..12])).unwrap_or_else(|| panic!("{ps:?}"));
    assert!(row.contains("   Created   "), "{ps:?}");
    assert!(d.cli(cli, &["ps", "-q"]).ok().out().is_empty(), "created is not running");

    d.cli(cli, &["start", "-a", &id[..12]]).ok().stdout_has("\nHello from Docker!\n");
    let ps = d.cli(cli, &["ps", "-a"]).ok();
    let row = ps.lines().into_iter().find(|l| l.starts_with(&id[..12])).unwrap_or_else(|| panic!("{ps:?}"));
    assert!(row.contains("Exited (0) "), "{ps:?}");
    // rm of a stopped container by id prints what was typed.
    let rm = d.cli(cli, &["rm", &id]).ok();
    assert_eq!(rm.out(), id);
    assert!(d.cli(cli, &["ps", "-a", "-q"]).ok().out().is_empty());
});

both!(fn start_attached_returns_container_exit_code(d, cli) {
    d.cli(cli, &["create", "--name", "c1", "alpine", "sh", "-c", "echo out1; echo err1 >&2; exit 5"]).ok();
    let r = d.cli(cli, &["start", "-a", "c1"]).code(5);
    assert_eq!(r.stdout, "out1\n", "{r:?}");
    assert_eq!(r.stderr, "err1\n", "{r:?}");
});

both!(fn logs_of_stopped_and_running(d, cli) {
    d.cli(cli, &["run", "--name", "lg", "alpine", "sh", "-c", "echo out1; echo err1 >&2; sleep 0.2; echo out2"]).ok();
    let r = d.cli(cli, &["logs", "lg"]).ok();
    assert_eq!(r.stdout, "out1\nout2\n", "{r:?}");
    assert_eq!(r.stderr, "err1\n", "{r:?}");
    let t = d.cli(cli, &["logs", "--tail", "1", "lg"]).ok();
    assert_eq!(t.stdout, "out2\n", "{t:?}");

    d.cli(cli, &["run", "-d", "--name", "web", "alpine", "sh", "-c", "echo hello-from-web; exec sleep 300"]).ok();
    let mut seen = String::new();
    for _ in 0..100 {
        seen = d.cli(cli, &["logs", "web"]).ok().stdout;
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(seen, "hello-from-web\n");
    d.cli(cli, &["logs", "nosuch"]).code(1).stderr_has("No such container: nosuch");
    d.cli(cli, &["rm", "-f", "web"]).ok();
});

both!(fn inspect_running_container(d, cli) {
    let id = run_web(&d, cli);
    let r = d.cli(cli, &["inspect", "web"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let c = &v.as_array().expect("inspect prints an array")[0];
    assert_eq!(c["Id"], id.as_str());
    assert_eq!(c["Name"], "/web");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_u64().unwrap_or(0) > 0, "{c}");
    assert_eq!(c["Config"]["Image"], "alpine");
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sleep", "300"]));
    assert!(c["HostConfig"].is_object(), "{c}");
    assert!(c["NetworkSettings"].is_object(), "{c}");
    assert!(c["Mounts"].is_array(), "{c}");
    let image = c["Image"].as_str().unwrap_or_default();
    assert!(image.starts_with("sha256:") && is_hex(&image[7..], 64), "{c}");
    assert!(c["Created"].as_str().unwrap_or_default().contains('T'), "{c}");

    let f = d.cli(cli, &["inspect", "-f", "{{.State.Status}} {{.Name}} {{.Config.Image}}", "web"]).ok();
    assert_eq!(f.stdout, "running /web alpine\n");
    d.cli(cli, &["inspect", "nosuch"]).code(1).stderr_has("No such object: nosuch");
    d.cli(cli, &["rm", "-f", "web"]).ok();
});

both!(fn rm_running_needs_force(d, cli) {
    let id = run_web(&d, cli);
    d.cli(cli, &["rm", "web"])
        .code(1)
        .stderr_has(&format!("You cannot remove a running container {id}. Stop the container before attempting removal or force remove"));
    let r = d.cli(cli, &["rm", "-f", "web"]).ok();
    assert_eq!(r.out(), "web");
    assert!(d.cli(cli, &["ps", "-a", "-q"]).ok().out().is_empty());
    // The container's processes are gone too.
    d.cli(cli, &["rm", "nosuch"]).code(1).stderr_has("Error response from daemon: No such container: nosuch");
});

both!(fn stop_kill_wait(d, cli) {
    run_web(&d, cli);
    assert_eq!(d.cli(cli, &["stop", "-t", "1", "web"]).ok().out(), "web");
    let ps = d.cli(cli, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"]).ok();
    assert!(ps.stdout.starts_with("web Exited (137) ") || ps.stdout.starts_with("web Exited (143) "), "{ps:?}");
    d.cli(cli, &["run", "-d", "--name", "w2", "alpine", "sh", "-c", "exit 7"]).ok();
    assert_eq!(d.cli(cli, &["wait", "w2"]).ok().out(), "7");
    d.cli(cli, &["stop", "nosuch"]).code(1).stderr_has("No such container: nosuch");
});
