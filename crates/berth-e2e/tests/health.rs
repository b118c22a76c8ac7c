//! Healthchecks at run time: `--health-*` flags and `Config.Healthcheck`, the monitor's
//! transitions (starting → healthy ↔ unhealthy) driven by a file the test creates and
//! removes with `exec`, a probe's timeout, the start period, `NONE`/`--no-healthcheck`
//! over an image's HEALTHCHECK (made by commit), `ps` STATUS and `--filter health=`,
//! `health_status` events, and the monitor across pause, stop and a daemon restart.
//! Short intervals (200–300 ms) keep the tests quick; every wait is a poll on
//! `inspect`, never a sleep that decides the outcome.

use berth_e2e::{both, Daemon};
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn health(v: &Value) -> &Value {
    &v["State"]["Health"]
}

fn status_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| health(v)["Status"] == s
}

/// `ps` STATUS of `name`.
fn ps_status(d: &Daemon, cli: berth_e2e::Cli, name: &str) -> String {
    let r = d.cli(cli, &["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]).ok();
    r.lines().iter().find_map(|l| l.strip_prefix(&format!("{name}|")).map(str::to_string)).unwrap_or_default()
}

fn ps_names(d: &Daemon, cli: berth_e2e::Cli, filter: &str) -> Vec<String> {
    let mut v = d.cli(cli, &["ps", "-a", "--filter", filter, "--format", "{{.Names}}"]).ok().lines();
    v.sort();
    v
}

both!(fn healthy_then_unhealthy_through_a_file(d, cli) {
    d.cli(cli, &[
        "run", "-d", "--name", "web", "--health-cmd", "cat /ok", "--health-interval", "300ms",
        "--health-retries", "2", "--health-timeout", "5s", "busybox", "sleep", "300",
    ]).ok();
    let v = d.inspect("web");
    assert_eq!(
        v["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "cat /ok"], "Interval": 300_000_000, "Timeout": 5_000_000_000i64, "Retries": 2})
    );
    // No /ok yet: two failures in a row make it unhealthy.
    let v = d.wait_inspect("web", T, "unhealthy", status_is("unhealthy"));
    let h = health(&v);
    assert!(h["FailingStreak"].as_i64().unwrap_or(0) >= 2, "{h}");
    let last = h["Log"].as_array().and_then(|l| l.last()).cloned().unwrap_or_default();
    assert_eq!(last["ExitCode"], 1, "{h}");
    assert!(last["Output"].as_str().unwrap_or("").contains("No such file"), "{h}");
    for k in ["Start", "End"] {
        assert!(last[k].as_str().unwrap_or("").ends_with('Z'), "{h}");
    }
    assert!(ps_status(&d, cli, "web").ends_with(" (unhealthy)"), "{}", ps_status(&d, cli, "web"));
    assert_eq!(ps_names(&d, cli, "health=unhealthy"), ["web"]);

    d.cli(cli, &["exec", "web", "sh", "-c", "echo fine > /ok"]).ok();
    let v = d.wait_inspect("web", T, "healthy", status_is("healthy"));
    let h = health(&v);
    assert_eq!(h["FailingStreak"], 0);
    let last = h["Log"].as_array().and_then(|l| l.last()).cloned().unwrap_or_default();
    assert_eq!((last["ExitCode"].as_i64(), last["Output"].as_str()), (Some(0), Some("fine\n")), "{h}");
    let s = ps_status(&d, cli, "web");
    assert!(s.starts_with("Up ") && s.ends_with(" (healthy)"), "{s}");
    assert_eq!(ps_names(&d, cli, "health=healthy"), ["web"]);
    assert!(ps_names(&d, cli, "health=unhealthy").is_empty());

    d.cli(cli, &["exec", "web", "rm", "/ok"]).ok();
    let v = d.wait_inspect("web", T, "unhealthy again", status_is("unhealthy"));
    // The log keeps the last five results.
    d.wait_inspect("web", T, "five log entries", |v| health(v)["Log"].as_array().map_or(0, Vec::len) == 5);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(health(&d.inspect("web"))["Log"].as_array().map_or(0, Vec::len), 5, "{}", health(&v));

    // Each change was an event.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs() + 1;
    let ev = d.request("GET", &format!("/events?since=0&until={now}"), None).text();
    let actions: Vec<String> = ev
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["Action"].as_str().map(str::to_string))
        .filter(|a| a.starts_with("health_status"))
        .collect();
    assert_eq!(actions, ["health_status: unhealthy", "health_status: healthy", "health_status: unhealthy"]);

    // A bad filter value is Docker's error.
    d.cli(cli, &["ps", "--filter", "health=fine"]).code(1).stderr_has("Unrecognised filter value for health: fine");
});

both!(fn a_probe_past_its_timeout_fails_and_is_killed(d, cli) {
    d.cli(cli, &[
        "run", "-d", "--name", "slow", "--health-cmd", "sleep 60", "--health-timeout", "300ms",
        "--health-interval", "200ms", "--health-retries", "1", "busybox", "sleep", "300",
    ]).ok();
    let v = d.wait_inspect("slow", T, "unhealthy", status_is("unhealthy"));
    let last = health(&v)["Log"].as_array().and_then(|l| l.first()).cloned().unwrap_or_default();
    assert_eq!(last["ExitCode"], -1);
    assert_eq!(last["Output"], "Health check exceeded timeout (300ms)");
    // The timed-out probes were killed: at most the current one is left.
    let ps = d.cli(cli, &["exec", "slow", "ps", "-o", "args"]).ok();
    let n = ps.lines().iter().filter(|l| l.trim() == "sleep 60").count();
    assert!(n <= 1, "{}", ps.out());
});

both!(fn start_period_keeps_starting_and_stop_ends_the_monitor(d, cli) {
    // Failures inside the start period do not count; probes come every start interval.
    d.cli(cli, &[
        "run", "-d", "--name", "boot", "--health-cmd", "false", "--health-interval", "1h",
        "--health-start-period", "1h", "--health-start-interval", "200ms", "--health-retries", "1",
        "busybox", "sleep", "300",
    ]).ok();
    let v = d.wait_inspect("boot", T, "two probes", |v| health(v)["Log"].as_array().map_or(0, Vec::len) >= 2);
    assert_eq!((health(&v)["Status"].as_str(), health(&v)["FailingStreak"].as_i64()), (Some("starting"), Some(0)), "{}", health(&v));
    let s = ps_status(&d, cli, "boot");
    assert!(s.ends_with(" (health: starting)"), "{s}");
    assert_eq!(ps_names(&d, cli, "health=starting"), ["boot"]);

    // A stopped container's monitor is closed: Docker reports it unhealthy.
    d.cli(cli, &["stop", "-t", "0", "boot"]).ok();
    let v = d.inspect("boot");
    assert_eq!(health(&v)["Status"], "unhealthy", "{}", v["State"]);
    let n = health(&v)["Log"].as_array().map_or(0, Vec::len);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(health(&d.inspect("boot"))["Log"].as_array().map_or(0, Vec::len), n, "no probe after stop");
    assert!(ps_status(&d, cli, "boot").starts_with("Exited (137)"));
    // A new start resets it to starting.
    d.cli(cli, &["start", "boot"]).ok();
    assert_eq!(health(&d.inspect("boot"))["Status"], "starting");
});

both!(fn image_healthcheck_is_inherited_merged_or_disabled(d, cli) {
    // An image with a HEALTHCHECK: commit keeps the container's Config.Healthcheck.
    d.cli(cli, &["create", "--name", "src", "--health-cmd", "true", "--health-interval", "200ms", "--health-retries", "1", "busybox"]).ok();
    d.cli(cli, &["commit", "src", "hc:1"]).ok();
    let img = d.request("GET", "/images/hc:1/json", None).json();
    assert_eq!(img["Config"]["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "true"]), "{}", img["Config"]);

    d.cli(cli, &["run", "-d", "--name", "inherit", "hc:1", "sleep", "300"]).ok();
    d.wait_inspect("inherit", T, "healthy", status_is("healthy"));
    // The request's test wins; what it leaves out comes from the image.
    d.cli(cli, &["run", "-d", "--name", "override", "--health-cmd", "exit 3", "hc:1", "sleep", "300"]).ok();
    let v = d.wait_inspect("override", T, "unhealthy", status_is("unhealthy"));
    assert_eq!(
        v["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "exit 3"], "Interval": 200_000_000, "Retries": 1})
    );
    // --no-healthcheck: Test NONE, no monitor, no Health in State, no suffix.
    d.cli(cli, &["run", "-d", "--name", "off", "--no-healthcheck", "hc:1", "sleep", "300"]).ok();
    let v = d.inspect("off");
    assert_eq!(v["Config"]["Healthcheck"]["Test"], serde_json::json!(["NONE"]));
    assert!(v["State"].get("Health").is_none(), "{}", v["State"]);
    let s = ps_status(&d, cli, "off");
    assert!(s.starts_with("Up ") && !s.contains('('), "{s}");
    // A plain image: no Healthcheck in Config, no Health.
    d.cli(cli, &["run", "-d", "--name", "plain", "busybox", "sleep", "300"]).ok();
    let v = d.inspect("plain");
    assert!(v["Config"].get("Healthcheck").is_none() && v["State"].get("Health").is_none(), "{v}");
    assert_eq!(ps_names(&d, cli, "health=none"), ["off", "plain", "src"]);
    d.cli(cli, &["run", "--rm", "--no-healthcheck", "--health-cmd", "x", "busybox", "true"])
        .code(125)
        .stderr_has("--no-healthcheck conflicts with --health-* options");
});

/// Pause closes the monitor (unhealthy), unpause opens it again; containers outlive a
/// killed berthd and the restarted daemon watches their health again.
#[test]
fn monitor_follows_pause_and_a_daemon_restart() {
    let mut d = Daemon::start();
    d.docker(&[
        "run", "-d", "--name", "svc", "--health-cmd", "test -f /ok", "--health-interval", "200ms",
        "--health-retries", "1", "busybox", "sleep", "300",
    ])
    .ok();
    d.docker(&["exec", "svc", "touch", "/ok"]).ok();
    d.wait_inspect("svc", T, "healthy", status_is("healthy"));
    d.docker(&["pause", "svc"]).ok();
    let v = d.inspect("svc");
    assert_eq!(health(&v)["Status"], "unhealthy", "{}", v["State"]);
    assert!(ps_status(&d, berth_e2e::Cli::Docker, "svc").ends_with("(Paused)"));
    d.docker(&["unpause", "svc"]).ok();
    d.wait_inspect("svc", T, "healthy after unpause", status_is("healthy"));

    d.restart();
    d.wait_inspect("svc", T, "still healthy", |v| v["State"]["Running"] == true && health(v)["Status"] == "healthy");
    d.docker(&["exec", "svc", "rm", "/ok"]).ok();
    d.wait_inspect("svc", T, "unhealthy after the daemon restart", status_is("unhealthy"));
    d.docker(&["exec", "svc", "touch", "/ok"]).ok();
    d.wait_inspect("svc", T, "healthy again", status_is("healthy"));
}

/// `StartInterval` exists from API 1.44: an older client's is ignored, as Docker does.
#[test]
fn start_interval_needs_api_1_44() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let body = r#"{"Image":"busybox","Cmd":["true"],"Healthcheck":{"Test":["CMD","true"],"StartInterval":2000000000}}"#;
    for (version, want) in [("1.43", None), ("1.44", Some(2_000_000_000i64))] {
        let r = d.request("POST", &format!("/v{version}/containers/create"), Some(body));
        assert_eq!(r.status, 201, "{r:?}");
        let id = r.json()["Id"].as_str().unwrap_or_default().to_string();
        let hc = d.inspect(&id)["Config"]["Healthcheck"].clone();
        assert_eq!(hc["StartInterval"].as_i64(), want, "{version}: {hc}");
        assert_eq!(hc["Test"], serde_json::json!(["CMD", "true"]));
    }
    // Docker's validation texts.
    let r = d.request("POST", "/containers/create", Some(r#"{"Image":"busybox","Healthcheck":{"Interval":10}}"#));
    assert_eq!((r.status, r.json()["message"].as_str()), (400, Some("Interval in Healthcheck cannot be less than 1ms")));
}
