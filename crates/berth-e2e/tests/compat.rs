//! Engine API details that clients depend on (issue 8), each found by docker-py's
//! integration suite or a new user, checked over the raw API and through both CLIs.

use berth_e2e::{Cli, Daemon};

/// `POST /containers/{id}/kill` with SIGKILL answers once the exit is recorded: an
/// inspect right after shows the container stopped with 137, a remove right after works.
#[test]
fn kill_answers_after_the_exit_is_recorded() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    for round in 0..5 {
        let name = format!("k{round}");
        d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]).ok();
        let r = d.request("POST", &format!("/v1.47/containers/{name}/kill"), None);
        assert_eq!(r.status, 204, "{}", r.text());
        let state = d.inspect(&name)["State"].clone();
        assert_eq!(state["Running"], false, "round {round}: {state}");
        assert_eq!(state["Status"], "exited", "round {round}: {state}");
        assert_eq!(state["ExitCode"], 137, "round {round}: {state}");
        let rm = d.request("DELETE", &format!("/v1.47/containers/{name}"), None);
        assert_eq!(rm.status, 204, "round {round}: {}", rm.text());
    }
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "-d", "--name", "kc", "busybox", "sleep", "300"]).ok();
        d.cli(cli, &["kill", "kc"]).ok();
        d.cli(cli, &["rm", "kc"]).ok();
    }
}
