//! The CLI where users notice it, through `berth` and the real docker CLI side by side:
//! bulk verbs (stop/kill/rm/pause/unpause of several containers) run in parallel and
//! report like Docker's, `berth version` fills its build fields, and help/usage output
//! follows Docker's layout.

use berth_e2e::{Cli, Daemon};

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2026-12-01T04:47:57.123Z`).
fn epoch_secs(ts: &str) -> f64 {
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("timestamp {ts:?}"));
    let (date, time) = ts.trim_end_matches('Z').split_once('T').unwrap_or_else(|| panic!("timestamp {ts:?}"));
    let d: Vec<i64> = date.split('-').map(num).collect();
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    // Days from civil (Howard Hinnant's algorithm).
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let t: Vec<&str> = time.split(':').collect();
    let secs: f64 = t[2].parse().unwrap_or_else(|_| panic!("timestamp {ts:?}"));
    (days * 86_400 + num(t[0]) * 3600 + num(t[1]) * 60) as f64 + secs
}

#[test]
fn bulk_stop_runs_in_parallel_and_prints_names_in_order() {
    let d = Daemon::start();
    for cli in [Cli::Berth, Cli::Docker] {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|n| format!("{cli:?}-{n}").to_lowercase()).collect();
        for n in &names {
            d.berth(&["run", "-d", "--name", n, "alpine", "sh", "-c", "trap '' TERM; sleep 100"]).ok();
        }
        let mut args = vec!["stop", "-t", "2"];
        args.extend(names.iter().map(String::as_str));
        let r = d.cli(cli, &args).ok();
        assert_eq!(r.lines(), names, "{r:?}");
        assert_eq!(r.stderr, "", "{r:?}");
        // Every container was killed after its own 2 s grace, all at about the same
        // moment: one after another they would be ≥ 2 s apart.
        let finished: Vec<f64> = names
            .iter()
            .map(|n| {
                let i = d.inspect(n);
                assert_eq!(i["State"]["Status"], "exited", "{n}: {i}");
                epoch_secs(i["State"]["FinishedAt"].as_str().expect("FinishedAt"))
            })
            .collect();
        let spread = finished.iter().cloned().fold(f64::MIN, f64::max) - finished.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread < 1.5, "{cli:?}: stops were not concurrent, FinishedAt spread {spread:.2}s");
    }
}

#[test]
fn bulk_rm_reports_each_error_and_goes_on() {
    let d = Daemon::start();
    for cli in [Cli::Berth, Cli::Docker] {
        let p = format!("{cli:?}").to_lowercase();
        let (a, b) = (format!("{p}-a"), format!("{p}-b"));
        for n in [&a, &b] {
            d.berth(&["create", "--name", n, "alpine", "true"]).ok();
        }
        let r = d.cli(cli, &["rm", &a, "nosuch", &b]).code(1);
        assert_eq!(r.lines(), vec![a.clone(), b.clone()], "{r:?}");
        assert_eq!(r.stderr, "Error response from daemon: No such container: nosuch\n", "{r:?}");
        for n in [&a, &b] {
            assert_eq!(d.request("GET", &format!("/containers/{n}/json"), None).status, 404, "{cli:?}: {n} not removed");
        }
        // `rm -f` of a missing name is not a failure: Docker prints it and exits 0.
        d.berth(&["create", "--name", &a, "alpine", "true"]).ok();
        let r = d.cli(cli, &["rm", "-f", "nosuch", &a]).ok();
        assert_eq!(r.lines(), vec![a.clone()], "{r:?}");
        assert_eq!(r.stderr, "Error response from daemon: No such container: nosuch\n", "{r:?}");
        // An empty name after trimming slashes is refused without asking the daemon.
        d.cli(cli, &["rm", "/"]).code(1).stderr_has("container name cannot be empty");
    }
}

#[test]
fn bulk_kill_pause_unpause_print_names_in_order() {
    let d = Daemon::start();
    for cli in [Cli::Berth, Cli::Docker] {
        let p = format!("{cli:?}").to_lowercase();
        let names: Vec<String> = (1..=3).map(|i| format!("{p}-{i}")).collect();
        for n in &names {
            d.berth(&["run", "-d", "--name", n, "alpine", "sleep", "100"]).ok();
        }
        for verb in ["pause", "unpause", "kill"] {
            let mut args = vec![verb, names[0].as_str(), "nosuch"];
            args.extend(names[1..].iter().map(String::as_str));
            let r = d.cli(cli, &args).code(1);
            assert_eq!(r.lines(), names, "{r:?}");
            assert_eq!(r.stderr, "Error response from daemon: No such container: nosuch\n", "{r:?}");
        }
        for n in &names {
            assert_eq!(d.inspect(n)["State"]["Status"], "exited", "{n}");
        }
    }
}

/// Runs a CLI without a daemon (help and usage errors need none).
fn offline(cli: Cli, args: &[&str]) -> berth_e2e::Run {
    let (program, name) = match cli {
        Cli::Berth => (berth_e2e::bins().berth.clone(), "berth"),
        Cli::Docker => (berth_e2e::docker_cli().to_path_buf(), "docker"),
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).env("DOCKER_HOST", "unix:///nonexistent.sock").env("DOCKER_CLI_HINTS", "false");
    berth_e2e::run_with_timeout(cmd, format!("{name} {}", args.join(" ")), std::time::Duration::from_secs(30))
}

/// Docker's text with the program name swapped, as berth must print it.
fn as_berth(s: &str) -> String {
    s.replace("docker", "berth").replace("docs.berth.com", "docs.docker.com")
}

#[test]
fn command_help_matches_docker_layout() {
    // Everyday commands whose flags Berth has in full: the whole help text is Docker's.
    for args in [
        &["ps", "--help"][..],
        &["container", "ls", "--help"],
        &["exec", "--help"],
        &["logs", "--help"],
        &["stop", "--help"],
        &["rm", "--help"],
        &["kill", "--help"],
        &["wait", "--help"],
        &["pull", "-h"],
        &["attach", "--help"],
        &["inspect", "--help"],
        &["version", "--help"],
        &["container", "--help"],
        &["container", "ls", "-h"],
        &["system", "--help"],
    ] {
        let docker = offline(Cli::Docker, args).ok();
        let berth = offline(Cli::Berth, args).ok();
        assert_eq!(berth.stdout.replace("Show berth disk usage", "Show docker disk usage"), as_berth(&docker.stdout).replace("Show berth disk usage", "Show docker disk usage"), "{args:?}");
    }
    // run/images: Docker has flags Berth does not; the sections and the flag column
    // layout of the flags both have must still match.
    for cmd in ["run", "images"] {
        let docker = as_berth(&offline(Cli::Docker, &[cmd, "--help"]).ok().stdout);
        let berth = offline(Cli::Berth, &[cmd, "--help"]).ok().stdout;
        let heads = |s: &str| s.lines().filter(|l| !l.starts_with(' ')).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(heads(&berth), heads(&docker), "{cmd}");
        let flag_starts = |s: &str| s.lines().filter(|l| l.starts_with("  -") || l.starts_with("      --")).map(|l| l.split("   ").next().unwrap_or("").trim().to_owned()).collect::<Vec<_>>();
        let docker_flags = flag_starts(&docker);
        for f in flag_starts(&berth) {
            assert!(docker_flags.contains(&f), "{cmd}: berth shows `{f}` that docker shows differently");
        }
    }
}

#[test]
fn root_help_and_no_args_like_docker() {
    let docker = as_berth(&offline(Cli::Docker, &["--help"]).ok().stdout);
    let help = offline(Cli::Berth, &["--help"]).ok();
    // Alone, or a management command alone: the help on stderr, exit 0, as Docker does.
    let bare = offline(Cli::Berth, &[]).ok();
    assert_eq!((bare.stdout.as_str(), bare.stderr.as_str()), ("", help.stdout.as_str()), "`berth` alone");
    let docker_c = offline(Cli::Docker, &["container"]).ok();
    let berth_c = offline(Cli::Berth, &["container"]).ok();
    assert_eq!((berth_c.stdout.as_str(), berth_c.stderr), ("", as_berth(&docker_c.stderr)));
    let docker_h = offline(Cli::Docker, &["-h"]).ok();
    let berth_h = offline(Cli::Berth, &["-h"]).ok();
    assert_eq!((berth_h.stdout, berth_h.stderr), (help.stdout.clone(), docker_h.stderr));
    let heads = |s: &str| s.lines().filter(|l| !l.starts_with(' ') && !l.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    // Docker also lists its Swarm commands and a docs link; Berth has neither.
    let want: Vec<String> = heads(&docker).into_iter().filter(|l| l != "Swarm Commands:" && !l.starts_with("For more help")).collect();
    assert_eq!(heads(&help.stdout), want);
    // Every command line Berth lists is laid out exactly as Docker's line for it.
    for line in help.stdout.lines().filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('-') && l.len() > 14 && &l[2..3] != " ") {
        let name = line.split_whitespace().next().unwrap_or("");
        if ["system", "version", "df"].contains(&name) {
            continue;
        }
        assert!(docker.lines().any(|l| l == line), "`{line}` differs from docker's");
    }
}

#[test]
fn unknown_flags_like_docker() {
    for args in [&["--foo"][..], &["run", "--foo"], &["stop", "--nope", "x"], &["container", "--foo"], &["ps", "-Z"]] {
        let docker = offline(Cli::Docker, args).code(125);
        let berth = offline(Cli::Berth, args).code(125);
        assert_eq!(berth.stderr, as_berth(&docker.stderr), "{args:?}");
        assert_eq!(berth.stdout, "", "{args:?}");
    }
}

#[test]
fn version_fills_build_fields() {
    let d = Daemon::start();
    let r = d.berth(&["version"]).ok();
    let client = r.stdout.split("\nServer").next().unwrap_or_default().to_string();
    let field = |label: &str| client.lines().find_map(|l| l.trim_start().strip_prefix(label)).map(str::trim).map(str::to_owned);
    let commit = field("Git commit:").unwrap_or_default();
    assert!(!commit.is_empty() && commit != "unknown" && commit.chars().all(|c| c.is_ascii_hexdigit()), "{r:?}");
    let rust = field("Rust version:").unwrap_or_default();
    assert!(rust.split('.').count() == 3 && rust.split('.').all(|p| p.parse::<u32>().is_ok()), "{r:?}");
    assert!(field("Built:").is_some_and(|b| !b.is_empty()), "{r:?}");
    assert!(field("Go version:").is_none(), "{r:?}");
    // The JSON shape keeps Docker's field names, with the toolchain under its own key.
    let j = d.berth(&["version", "--format", "{{.Client.GitCommit}} {{.Client.RustVersion}}"]).ok();
    assert_eq!(j.out(), format!("{commit} {rust}"));
}
