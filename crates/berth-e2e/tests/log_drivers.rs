//! Log drivers (issue 8): `none` (no log; `logs` answers Docker's 501 text, while
//! attached clients still get the output), `local` (Docker's framed protobuf files,
//! rotated and gzipped) read by `logs` with tail and follow, and an unknown driver
//! refused with Docker's text. Through both CLIs, the raw API and docker-py.

use std::time::Duration;

use berth_e2e::{both, Daemon};

both!(fn log_driver_none_has_no_log(d, cli) {
    // The attached client still gets the output.
    let r = d.cli(cli, &["run", "--name", "nolog", "--log-driver", "none", "busybox", "sh", "-c", "echo out; echo err >&2"]).ok();
    assert_eq!(r.stdout, "out\n", "{r:?}");
    assert!(r.stderr.contains("err"), "{r:?}");
    // Docker's CLI: the daemon's 501 text, exit 1.
    d.cli(cli, &["logs", "nolog"]).code(1).stderr_has("Error response from daemon: configured logging driver does not support reading");
    let i = d.inspect("nolog");
    assert_eq!(i["HostConfig"]["LogConfig"]["Type"], "none", "{i}");
    assert_eq!(i["LogPath"], "", "{i}");
    let id = i["Id"].as_str().expect("id").to_string();
    let dir = d.data_root.join("containers").join(&id);
    let files: Vec<String> = std::fs::read_dir(&dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(files.iter().any(|f| f == "config.v2.json"), "{files:?}");
    assert!(!files.iter().any(|f| f.contains("log")), "a log was written: {files:?}");
    let api = d.request("GET", "/v1.47/containers/nolog/logs?stdout=1", None);
    assert_eq!(api.status, 501, "{}", api.text());
    assert_eq!(api.json()["message"], "configured logging driver does not support reading");
});

both!(fn log_driver_local_logs_tail_and_follow(d, cli) {
    d.cli(cli, &["run", "--name", "loc", "--log-driver", "local", "busybox", "sh", "-c", "for i in 1 2 3 4; do echo line$i; done; echo oops >&2"]).ok();
    let i = d.inspect("loc");
    assert_eq!(i["HostConfig"]["LogConfig"]["Type"], "local", "{i}");
    assert_eq!(i["LogPath"], "", "{i}");
    let r = d.cli(cli, &["logs", "loc"]).ok();
    assert_eq!(r.stdout, "line1\nline2\nline3\nline4\n", "{r:?}");
    assert_eq!(r.stderr, "oops\n", "{r:?}");
    let r = d.cli(cli, &["logs", "--tail", "2", "loc"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("line4\n", "oops\n"), "{r:?}");
    let t = d.cli(cli, &["logs", "-t", "--tail", "1", "loc"]).ok();
    let (ts, rest) = t.stderr.split_once(' ').unwrap_or_else(|| panic!("{t:?}"));
    assert!(ts.len() == 30 && ts.ends_with('Z'), "{t:?}");
    assert_eq!(rest, "oops\n");
    // Follow a running container until it exits.
    d.cli(cli, &["run", "-d", "--name", "fol", "--log-driver", "local", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c", "echo first; sleep 2; i=0; while [ $i -lt 100 ]; do echo more-$i-abcdefghijklmnopqrstuvwxyz; i=$((i+1)); done"]).ok();
    let mut bg = d.cli_background(cli, &["logs", "-f", "fol"]);
    bg.expect_stdout("first\n", Duration::from_secs(20));
    let done = bg.wait_timeout(Duration::from_secs(30)).unwrap_or_else(|| panic!("logs -f did not end: {}", bg.stdout()));
    assert_eq!(done.code, 0, "{done:?}");
    assert!(done.stdout.starts_with("first\n") && done.stdout.ends_with("more-99-abcdefghijklmnopqrstuvwxyz\n"), "{done:?}");
    // 1k files, 3 kept, gzipped: the rotated files are there and the log reads back in order.
    let id = d.inspect("fol")["Id"].as_str().expect("id").to_string();
    let logs = d.data_root.join("containers").join(&id).join("local-logs");
    assert!(logs.join("container.log.1.gz").exists(), "{:?}", std::fs::read_dir(&logs).map(|r| r.count()));
    let r = d.cli(cli, &["logs", "fol"]).ok();
    let nums: Vec<usize> = r.stdout.lines().filter_map(|l| l.strip_prefix("more-")?.split('-').next()?.parse().ok()).collect();
    assert_eq!(nums.last(), Some(&99), "{r:?}");
    assert_eq!(nums, (nums[0]..100).collect::<Vec<_>>(), "{r:?}");
    let r = d.cli(cli, &["logs", "--tail", "2", "fol"]).ok();
    assert_eq!(r.stdout, "more-98-abcdefghijklmnopqrstuvwxyz\nmore-99-abcdefghijklmnopqrstuvwxyz\n", "{r:?}");
    // Unknown options are refused with Docker's text (`create` exits 1, as Docker's).
    d.cli(cli, &["create", "--log-driver", "local", "--log-opt", "x=1", "busybox"])
        .code(1)
        .stderr_has("unknown log opt 'x' for log driver local");
});

both!(fn log_driver_unknown_is_refused(d, cli) {
    d.cli(cli, &["run", "--log-driver", "asdf", "busybox", "true"])
        .code(125)
        .stderr_has("Error response from daemon: logger: no log driver named 'asdf' is registered");
    let body = r#"{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"asdf","Config":{}}}}"#;
    let r = d.request("POST", "/v1.47/containers/create", Some(body));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "logger: no log driver named 'asdf' is registered");
});

/// docker-py's `test_run_with_none_driver` and `test_invalid_log_driver_raises_exception`.
#[test]
fn docker_py_log_drivers() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let script = format!(
        r#"
import docker
client = docker.DockerClient(base_url="{}")
print(repr(client.containers.run("busybox", "echo hello", log_config={{"type": "none"}})))
c = client.containers.run("busybox", "echo hello", log_config={{"type": "local"}}, detach=True)
c.wait()
print(repr(c.logs()))
try:
    client.api.create_container("busybox", ["true"], host_config=client.api.create_host_config(
        log_config=docker.types.LogConfig(type="asdf", config={{}})))
    print("created")
except docker.errors.APIError as e:
    print(e.status_code, e.explanation)
"#,
        d.host()
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script);
    let r = berth_e2e::run_with_timeout(cmd, "python3 -c <docker-py script>".into(), Duration::from_secs(120)).ok();
    assert_eq!(r.lines(), ["None", "b'hello\\n'", "400 logger: no log driver named 'asdf' is registered"], "{r:?}");
}
