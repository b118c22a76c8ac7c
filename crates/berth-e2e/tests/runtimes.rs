//! Other OCI runtimes: `berthd --add-runtime runc=/usr/sbin/runc` and `run --runtime
//! runc`, through the real `docker` CLI (and `berth`): output, exit codes, start
//! errors, the unknown-runtime error, `/info` Runtimes and inspect HostConfig.Runtime.

use berth_e2e::{Cli, Daemon};

const RUNC: &str = "/usr/sbin/runc";

fn daemon() -> Daemon {
    assert!(std::path::Path::new(RUNC).is_file(), "{RUNC} is missing: install the `runc` package");
    Daemon::start_with_args(&["--add-runtime", &format!("runc={RUNC}")])
}

#[test]
fn docker_run_with_runc() {
    let d = daemon();
    let r = d.docker(&["run", "--runtime", "runc", "--rm", "alpine", "echo", "hi"]).ok();
    assert_eq!(r.stdout, "hi\n", "{r:?}");
    for cli in [Cli::Docker, Cli::Berth] {
        // pid 1 of its own pid namespace; the exit code comes back.
        let r = d.cli(cli, &["run", "--runtime", "runc", "--rm", "alpine", "sh", "-c", "echo $$; exit 3"]).code(3);
        assert_eq!(r.stdout, "1\n", "{r:?}");
        d.cli(cli, &["run", "--runtime", "runc", "--rm", "-u", "nobody", "alpine", "id", "-u"]).ok().stdout_has("65534\n");
        // A missing command: runc's words, Docker's wrapping, exit 127. (Without --rm:
        // a start error of an auto-remove container leaves `docker run` waiting, on
        // the native path too.)
        let r = d.cli(cli, &["run", "--runtime", "runc", "--name", "missing", "alpine", "nosuchcmd"]).code(127);
        r.stderr_has("OCI runtime create failed").stderr_has("executable file not found in $PATH");
        d.docker(&["rm", "missing"]).ok();
    }
    // Logs and exit code survive for a kept container; exec works in a runc container.
    d.docker(&["run", "--runtime", "runc", "--name", "kept", "alpine", "sh", "-c", "echo out; echo err >&2"]).ok();
    let logs = d.docker(&["logs", "kept"]).ok();
    assert_eq!((logs.stdout.as_str(), logs.stderr.as_str()), ("out\n", "err\n"), "{logs:?}");
    d.docker(&["run", "-d", "--runtime", "runc", "--name", "bg", "alpine", "sleep", "100"]).ok();
    d.docker(&["exec", "bg", "sh", "-c", "echo in-exec"]).ok().stdout_has("in-exec\n");
    d.docker(&["rm", "-f", "bg"]).ok();
}

#[test]
fn runtime_names_info_and_inspect() {
    let d = daemon();
    for cli in [Cli::Docker, Cli::Berth] {
        d.cli(cli, &["run", "--runtime", "nope", "--rm", "alpine", "true"])
            .code(125)
            .stderr_has("unknown or invalid runtime name: nope");
    }
    d.docker(&["create", "--runtime", "runc", "--name", "withrunc", "alpine", "true"]).ok();
    d.docker(&["create", "--name", "plain", "alpine", "true"]).ok();
    assert_eq!(d.inspect("withrunc")["HostConfig"]["Runtime"], "runc");
    assert_eq!(d.inspect("plain")["HostConfig"]["Runtime"], "berth");
    d.docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "withrunc"]).ok().stdout_has("runc\n");
    let info = d.request("GET", "/info", None).json();
    assert_eq!(info["DefaultRuntime"], "berth");
    assert_eq!(info["Runtimes"]["runc"]["path"], RUNC);
    assert!(info["Runtimes"]["berth"]["path"].is_string(), "{}", info["Runtimes"]);
    let r = d.docker(&["info", "-f", "{{json .Runtimes}}"]).ok();
    assert!(r.stdout.contains("\"runc\""), "{r:?}");
}
