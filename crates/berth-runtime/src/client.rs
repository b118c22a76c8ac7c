//! berthd's side of the shim: spawning it and the socket protocol of
//! docs/process-tree.md. Blocking std code; the engine calls it from
//! `tokio::task::spawn_blocking`.

use crate::spec::RunSpec;
use crate::{ExitInfo, RuntimeError};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

/// A started shim with its init blocked before execve (release it with [`go`]).
#[derive(Debug)]
pub struct Started {
    /// Host pid of the container's init.
    pub pid: i32,
    /// The shim process; the caller must eventually `wait()` it to reap it (it exits
    /// after the container does).
    pub shim: std::process::Child,
}

/// Spawns `berth-shim <spec_path>` (stdin null, stdout piped, stderr to the spec's
/// `shim_log_path` or null) and reads its single status line.
pub fn spawn(shim_bin: &Path, spec_path: &Path) -> Result<Started, RuntimeError> {
    let raw = std::fs::read(spec_path).map_err(|e| RuntimeError::io("read", spec_path, e))?;
    let spec: RunSpec = serde_json::from_slice(&raw).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
    let stderr = match &spec.shim_log_path {
        Some(p) => Stdio::from(
            std::fs::File::options()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(p)
                .map_err(|e| RuntimeError::io("open", p, e))?,
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(shim_bin)
        .arg(spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| RuntimeError::io("spawn", shim_bin, e))?;
    let mut line = String::new();
    let read = match child.stdout.take() {
        Some(out) => BufReader::new(out).read_line(&mut line),
        None => Ok(0),
    };
    let line = line.trim_end();
    if let Some(pid) = line.strip_prefix("ready ") {
        let pid = pid.parse().map_err(|_| RuntimeError::Protocol(format!("bad ready line {line:?}")))?;
        return Ok(Started { pid, shim: child });
    }
    let status = child.wait();
    if let Some(msg) = line.strip_prefix("error ") {
        return Err(RuntimeError::Start(msg.to_string()));
    }
    Err(RuntimeError::Start(format!(
        "berth-shim exited without reporting ({}): {:?}",
        status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
        read.err()
    )))
}

fn connect(socket: &Path) -> Result<UnixStream, RuntimeError> {
    UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => RuntimeError::NotRunning,
        _ => RuntimeError::io("connect", socket, e),
    })
}

/// Sends one request line and reads one answer line. EOF without an answer means the
/// shim went away → `NotRunning`.
fn request(socket: &Path, line: &str) -> Result<String, RuntimeError> {
    let mut s = connect(socket)?;
    s.write_all(line.as_bytes()).map_err(|e| RuntimeError::io("write", socket, e))?;
    let mut r = BufReader::new(s);
    let mut ans = String::new();
    match r.read_line(&mut ans) {
        Ok(0) => Err(RuntimeError::NotRunning),
        Ok(_) => Ok(ans.trim_end().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(RuntimeError::NotRunning),
        Err(e) => Err(RuntimeError::io("read", socket, e)),
    }
}

fn ok_or(ans: String, to_err: impl FnOnce(String) -> RuntimeError) -> Result<(), RuntimeError> {
    if ans == "ok" {
        Ok(())
    } else if let Some(m) = ans.strip_prefix("error ") {
        Err(to_err(m.to_string()))
    } else {
        Err(RuntimeError::Protocol(format!("unexpected answer {ans:?}")))
    }
}

/// Releases the init to execve. `Err(Start(msg))` if execve failed.
pub fn go(socket: &Path) -> Result<(), RuntimeError> {
    ok_or(request(socket, "go\n")?, RuntimeError::Start)
}

/// Opens an attach stream. After this returns, the stream carries output frames
/// shim→client (8-byte Docker header + payload, stream 1 also for TTY) and raw stdin
/// client→shim; `shutdown(Write)` is stdin EOF.
pub fn attach(socket: &Path, stdin: bool, stdout: bool, stderr: bool) -> Result<UnixStream, RuntimeError> {
    let mut s = connect(socket)?;
    let line = format!("attach {} {} {}\n", u8::from(stdin), u8::from(stdout), u8::from(stderr));
    s.write_all(line.as_bytes()).map_err(|e| RuntimeError::io("write", socket, e))?;
    Ok(s)
}

/// Parses `exit <code> <oom 0/1> [finished_at]`.
fn parse_exit(ans: &str) -> Option<ExitInfo> {
    let mut w = ans.strip_prefix("exit ")?.split_whitespace();
    let exit_code = w.next()?.parse().ok()?;
    let oom_killed = w.next()? == "1";
    let finished_at = w.next().map(str::to_string).unwrap_or_else(crate::timefmt::now_rfc3339_nano);
    Some(ExitInfo { exit_code, oom_killed, finished_at })
}

/// Blocks until the init exits.
pub fn wait(socket: &Path) -> Result<ExitInfo, RuntimeError> {
    let ans = request(socket, "wait\n")?;
    parse_exit(&ans).ok_or_else(|| RuntimeError::Protocol(format!("unexpected answer {ans:?}")))
}

/// Signals the init. `NotRunning` once it has exited.
pub fn kill(socket: &Path, signal: i32) -> Result<(), RuntimeError> {
    ok_or(request(socket, &format!("kill {signal}\n"))?, |m| {
        if m.contains("is not running") {
            RuntimeError::NotRunning
        } else {
            RuntimeError::Protocol(m)
        }
    })
}

/// Resizes the container's pty (no-op without a TTY).
pub fn resize(socket: &Path, rows: u16, cols: u16) -> Result<(), RuntimeError> {
    ok_or(request(socket, &format!("resize {rows} {cols}\n"))?, RuntimeError::Protocol)
}

/// Reads `exit.json` (written by the shim when the init exited).
pub fn read_exit(exit_path: &Path) -> Option<ExitInfo> {
    let mut s = String::new();
    std::fs::File::open(exit_path).ok()?.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wait_answers() {
        let x = parse_exit("exit 137 1 2026-11-23T11:29:54.177021719Z").unwrap();
        assert_eq!((x.exit_code, x.oom_killed, x.finished_at.as_str()), (137, true, "2026-11-23T11:29:54.177021719Z"));
        assert_eq!(parse_exit("exit 3 0").unwrap().exit_code, 3);
        assert!(parse_exit("error x").is_none());
    }

    #[test]
    fn missing_socket_is_not_running() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(wait(&t.path().join("nope.sock")), Err(RuntimeError::NotRunning)));
    }
}
