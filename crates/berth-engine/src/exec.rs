//! `docker exec`: exec instances are created against a running container, started
//! through the container's shim (which joins its namespaces and cgroup), and keep their
//! exit code for `GET /exec/{id}/json`.

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use berth_api::{ExecConfig, ExecInspect, ExecProcessConfig};
use berth_runtime::client;
use berth_runtime::spec::ExecSpec;

use crate::error::{Error, Result};
use crate::{lock, Engine};

#[derive(Debug, Default)]
struct ExecState {
    running: bool,
    started: bool,
    exit_code: Option<i64>,
    pid: i32,
    console: Option<(u16, u16)>,
}

pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
}

/// A started exec: the shim stream (output frames, then a stream-3 frame with the exit
/// code) and whether output is a TTY.
pub struct ExecStream {
    pub exec: Arc<Exec>,
    pub stream: UnixStream,
    pub tty: bool,
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, name_or_id: &str, config: ExecConfig) -> Result<String> {
        let c = self.lookup(name_or_id)?;
        let r = c.record();
        exec_allowed(&r)?;
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::invalid("No exec command specified"));
        }
        let bytes: [u8; 32] = rand::random();
        let id = hex::encode(bytes);
        let console = match config.console_size.as_deref() {
            Some([h, w]) if *h > 0 && *w > 0 => Some((*h as u16, *w as u16)),
            _ => None,
        };
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: r.id.clone(),
            config,
            state: Mutex::new(ExecState { console, ..Default::default() }),
        });
        lock(&self.inner.execs).insert(id.clone(), exec.clone());
        let cmd = exec.config.cmd.clone().unwrap_or_default().join(" ");
        self.container_event(&r, &format!("exec_create: {cmd}"), &[("execID", id.clone())]);
        Ok(id)
    }

    fn exec_get(&self, id: &str) -> Result<Arc<Exec>> {
        lock(&self.inner.execs)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))
    }

    /// What `exec_start` would refuse, checked without starting anything: the daemon
    /// answers these with a status before it hijacks the connection, and starts the
    /// process only once the client holds the upgraded stream (as Docker does; a client
    /// that reads the 101 through a buffered reader would otherwise swallow the first
    /// output).
    pub fn exec_check(&self, id: &str) -> Result<()> {
        let exec = self.exec_get(id)?;
        let c = self.lookup(&exec.container_id)?;
        let r = c.record();
        exec_allowed(&r)?;
        if lock(&exec.state).started {
            return Err(Error::conflict(format!("Error: Exec command {id} has already run")));
        }
        Ok(())
    }

    /// `POST /exec/{id}/start`: runs the process and returns its stream.
    pub async fn exec_start(&self, id: &str) -> Result<ExecStream> {
        let exec = self.exec_get(id)?;
        let c = self.lookup(&exec.container_id)?;
        let r = c.record();
        exec_allowed(&r)?;
        let console = {
            let mut st = lock(&exec.state);
            if st.started {
                return Err(Error::conflict(format!("Error: Exec command {id} has already run")));
            }
            st.started = true;
            st.running = true;
            st.console
        };
        let cfg = &exec.config;
        let spec = ExecSpec {
            args: cfg.cmd.clone().unwrap_or_default(),
            // The shim adds these to the container's env; "" cwd/user mean the container's.
            env: cfg.env.clone().unwrap_or_default(),
            cwd: cfg.working_dir.clone(),
            user: cfg.user.clone(),
            tty: cfg.tty,
            open_stdin: cfg.attach_stdin,
            privileged: cfg.privileged || r.host_config.privileged,
            console_size: console,
        };
        let socket = self.socket_path(&r.id);
        let started = tokio::task::spawn_blocking(move || client::exec(&socket, &spec))
            .await
            .map_err(|e| Error::internal(e.to_string()))?;
        let (stream, pid) = match started {
            Ok(x) => x,
            Err(e) => {
                let mut st = lock(&exec.state);
                st.running = false;
                st.exit_code = Some(e.start_exit_code().map_or(126, i64::from));
                return Err(crate::containers::start_error(e));
            }
        };
        lock(&exec.state).pid = pid;
        let cmd = cfg.cmd.clone().unwrap_or_default().join(" ");
        self.container_event(&r, &format!("exec_start: {cmd}"), &[("execID", exec.id.clone())]);
        Ok(ExecStream { tty: cfg.tty, exec, stream })
    }

    /// Records the exit code the shim reported at the end of an exec stream.
    pub fn exec_finished(&self, exec: &Exec, code: i64) {
        {
            let mut st = lock(&exec.state);
            st.running = false;
            st.exit_code = Some(code);
        }
        if let Ok(c) = self.lookup(&exec.container_id) {
            self.container_event(&c.record(), "exec_die", &[("execID", exec.id.clone()), ("exitCode", code.to_string())]);
        }
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspect> {
        let exec = self.exec_get(id)?;
        let st = lock(&exec.state);
        let cfg = &exec.config;
        let mut args = cfg.cmd.clone().unwrap_or_default();
        let entrypoint = if args.is_empty() { String::new() } else { args.remove(0) };
        Ok(ExecInspect {
            id: exec.id.clone(),
            running: st.running,
            exit_code: st.exit_code,
            process_config: ExecProcessConfig {
                tty: cfg.tty,
                entrypoint,
                arguments: args,
                privileged: cfg.privileged,
                user: (!cfg.user.is_empty()).then(|| cfg.user.clone()),
            },
            open_stdin: cfg.attach_stdin,
            open_stderr: cfg.attach_stderr,
            open_stdout: cfg.attach_stdout,
            can_remove: !st.running,
            container_id: exec.container_id.clone(),
            detach_keys: cfg.detach_keys.clone(),
            pid: i64::from(st.pid),
        })
    }

    /// `POST /exec/{id}/resize`: before start it sets the initial size.
    pub async fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let exec = self.exec_get(id)?;
        let pid = {
            let mut st = lock(&exec.state);
            if !st.running || st.pid == 0 {
                st.console = Some((rows, cols));
                return Ok(());
            }
            st.pid
        };
        let socket = self.socket_path(&exec.container_id);
        tokio::task::spawn_blocking(move || client::resize_exec(&socket, pid, rows, cols))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)
    }

    /// `POST /containers/{id}/resize`.
    pub async fn resize(&self, name_or_id: &str, rows: u16, cols: u16) -> Result<()> {
        let c = self.lookup(name_or_id)?;
        if !c.is_running() {
            return Err(Error::conflict(format!("Container {} is not running", c.id)));
        }
        let socket = self.socket_path(&c.id);
        tokio::task::spawn_blocking(move || client::resize(&socket, rows, cols))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)
    }

    /// Drops the exec instances of a removed container.
    pub(crate) fn forget_execs(&self, container_id: &str) {
        lock(&self.inner.execs).retain(|_, e| e.container_id != container_id);
    }
}

/// Docker's refusals of an exec in a container that is not running or is paused.
fn exec_allowed(r: &crate::record::Record) -> Result<()> {
    if !r.state.status.is_running() {
        return Err(Error::conflict(format!("Container {} is not running", r.id)));
    }
    if !r.state.status.can_exec() {
        return Err(Error::conflict(format!("Container {} is paused, unpause the container before exec", r.id)));
    }
    Ok(())
}

