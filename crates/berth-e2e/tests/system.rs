//! `version`, `info`, and compatibility with a real SDK (docker-py).

use berth_e2e::{both, run_with_timeout, Daemon};
use std::process::Command;
use std::time::Duration;

both!(fn version_has_client_and_server(d, cli) {
    let r = d.cli(cli, &["version"]).ok();
    let r = r.stdout_has("Client:").stdout_has("Server:").stdout_has(" API version:");
    assert!(r.stdout.find("Client:") < r.stdout.find("Server:"), "{r:?}");
    let f = d.cli(cli, &["version", "--format", "{{.Server.Os}}"]).ok();
    assert_eq!(f.out(), "linux");
});

both!(fn info_succeeds(d, cli) {
    d.cli(cli, &["info"]).ok();
    d.cli(cli, &["pull", "busybox"]).ok();
    let r = d.cli(cli, &["info", "--format", "{{.Images}} {{.OSType}}"]).ok();
    assert_eq!(r.out(), "1 linux");
});

#[test]
fn docker_py_runs_a_container() {
    let d = Daemon::start();
    let script = format!(
        r#"import docker
c = docker.DockerClient(base_url="{}")
print(c.version()["ApiVersion"])
print(c.containers.run("alpine", "echo hi", remove=True))
print(len(c.containers.list(all=True)))
"#,
        d.host()
    );
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(&script);
    let r = run_with_timeout(cmd, "python3 -c <docker-py script>".into(), Duration::from_secs(120));
    assert!(
        !r.stderr.contains("No module named 'docker'"),
        "docker-py is not installed (scripts/test.sh installs it): {r:?}"
    );
    let r = r.ok();
    let lines = r.lines();
    assert!(lines[0].starts_with("1."), "{r:?}");
    assert_eq!(lines[1], "b'hi\\n'", "{r:?}");
    assert_eq!(lines[2], "0", "remove=True must remove the container: {r:?}");
}
