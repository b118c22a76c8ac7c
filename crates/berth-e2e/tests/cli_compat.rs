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
