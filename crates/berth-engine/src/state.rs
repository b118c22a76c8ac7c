//! A container's state as one typed [`Status`] with transition guards (as youki's
//! `ContainerStatus`), and the one place that maps it to Docker's status strings and to
//! the API's `State` flags. The record on disk keeps Docker's JSON shape
//! (`State.Status` + `Running`/`Paused`/`Restarting`/`Dead`), so older records load.

use berth_api::ContainerState;
use serde::{Deserialize, Serialize};

/// Where a container is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    /// Exited, waiting out the restart policy's back-off.
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    /// Docker's `State.Status` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// From Docker's `State.Status` string; anything else reads as `created`.
    pub fn from_docker(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "removing" => Status::Removing,
            "exited" => Status::Exited,
            "dead" => Status::Dead,
            _ => Status::Created,
        }
    }

    /// The API's `State.Running`: the process is alive (a paused one too).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// Alive or about to be started again by its restart policy.
    pub fn is_active(self) -> bool {
        self.is_running() || self == Status::Restarting
    }

    /// `start` may run (a restarting container is started by its policy).
    pub fn can_start(self) -> bool {
        !self.is_running()
    }

    pub fn can_pause(self) -> bool {
        self == Status::Running
    }

    pub fn can_unpause(self) -> bool {
        self == Status::Paused
    }

    /// `exec` needs a running, unpaused process.
    pub fn can_exec(self) -> bool {
        self == Status::Running
    }

    /// `rm` without `-f` refuses a running, paused or restarting container.
    pub fn can_remove(self, force: bool) -> bool {
        force || !self.is_active()
    }
}

impl From<&str> for Status {
    fn from(s: &str) -> Status {
        Status::from_docker(s)
    }
}

/// The container's state in the record: the typed status plus what Docker keeps beside
/// it. Serialized as [`ContainerState`] (Docker's shape), through [`State::to_api`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ContainerState", into = "ContainerState")]
pub struct State {
    pub status: Status,
    pub oom_killed: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// The healthcheck's state (crate::health), absent without a healthcheck.
    pub health: Option<berth_api::Health>,
}

impl Default for State {
    fn default() -> Self {
        State::from(ContainerState::default())
    }
}

impl State {
    /// The API's `State`: the one mapping from [`Status`] to Docker's string and flags.
    pub fn to_api(&self) -> ContainerState {
        let s = self.status;
        ContainerState {
            status: s.as_str().to_string(),
            running: s.is_running(),
            paused: s == Status::Paused,
            restarting: s == Status::Restarting,
            oom_killed: self.oom_killed,
            dead: s == Status::Dead,
            pid: self.pid,
            exit_code: self.exit_code,
            error: self.error.clone(),
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            health: self.health.clone(),
        }
    }
}

impl From<ContainerState> for State {
    fn from(c: ContainerState) -> State {
        State {
            status: Status::from_docker(&c.status),
            oom_killed: c.oom_killed,
            pid: c.pid,
            exit_code: c.exit_code,
            error: c.error,
            started_at: c.started_at,
            finished_at: c.finished_at,
            health: c.health,
        }
    }
}

impl From<State> for ContainerState {
    fn from(s: State) -> ContainerState {
        s.to_api()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 7] = [
        Status::Created,
        Status::Running,
        Status::Paused,
        Status::Restarting,
        Status::Removing,
        Status::Exited,
        Status::Dead,
    ];

    #[test]
    fn guards() {
        // (status, start, pause, unpause, exec, rm, rm -f)
        let table = [
            (Status::Created, true, false, false, false, true, true),
            (Status::Running, false, true, false, true, false, true),
            (Status::Paused, false, false, true, false, false, true),
            (Status::Restarting, true, false, false, false, false, true),
            (Status::Removing, true, false, false, false, true, true),
            (Status::Exited, true, false, false, false, true, true),
            (Status::Dead, true, false, false, false, true, true),
        ];
        assert_eq!(table.len(), ALL.len());
        for (s, start, pause, unpause, exec, rm, rm_f) in table {
            assert_eq!(s.can_start(), start, "{s:?} start");
            assert_eq!(s.can_pause(), pause, "{s:?} pause");
            assert_eq!(s.can_unpause(), unpause, "{s:?} unpause");
            assert_eq!(s.can_exec(), exec, "{s:?} exec");
            assert_eq!(s.can_remove(false), rm, "{s:?} rm");
            assert_eq!(s.can_remove(true), rm_f, "{s:?} rm -f");
        }
    }

    #[test]
    fn maps_to_dockers_strings_and_flags() {
        // (status, string, Running, Paused, Restarting, Dead)
        let table = [
            (Status::Created, "created", false, false, false, false),
            (Status::Running, "running", true, false, false, false),
            (Status::Paused, "paused", true, true, false, false),
            (Status::Restarting, "restarting", false, false, true, false),
            (Status::Removing, "removing", false, false, false, false),
            (Status::Exited, "exited", false, false, false, false),
            (Status::Dead, "dead", false, false, false, true),
        ];
        assert_eq!(table.len(), ALL.len());
        for (s, name, running, paused, restarting, dead) in table {
            let st = State { status: s, ..State::default() };
            let api = st.to_api();
            assert_eq!(
                (api.status.as_str(), api.running, api.paused, api.restarting, api.dead),
                (name, running, paused, restarting, dead),
                "{s:?}"
            );
            assert_eq!(Status::from_docker(name), s);
            // Through JSON as the record holds it, and back.
            let json = serde_json::to_value(&st).expect("serialize");
            assert_eq!(json["Status"], name);
            assert_eq!(json["Running"], running);
            assert_eq!(serde_json::from_value::<State>(json).expect("deserialize"), st);
        }
    }

    #[test]
    fn an_older_record_loads() {
        // `State` as config.v2.json of an earlier version holds it.
        let old = serde_json::json!({
            "Status": "paused", "Running": true, "Paused": true, "Restarting": false,
            "OOMKilled": true, "Dead": false, "Pid": 42, "ExitCode": 0, "Error": "",
            "StartedAt": "2026-11-23T11:29:54.177021719Z", "FinishedAt": "0001-01-01T00:00:00Z"
        });
        let st: State = serde_json::from_value(old.clone()).expect("deserialize");
        assert_eq!((st.status, st.oom_killed, st.pid), (Status::Paused, true, 42));
        assert_eq!(serde_json::to_value(&st).expect("serialize"), old);
        // A record without a state is a created container.
        let st: State = serde_json::from_value(serde_json::json!({})).expect("deserialize");
        assert_eq!(st, State::default());
        assert_eq!(st.status, Status::Created);
    }
}
