//! berthd's side of the shim: spawning it and the socket protocol of
//! docs/process-tree.md. Blocking std code; the engine calls it from
//! `tokio::task::spawn_blocking`.

use crate::spec::{ExecSpec, RunSpec};
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
    let finished_at = w.next().map(str::to_string).unwrap_or_else(berth_api::time::now_rfc3339_nano);
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

/// Frame stream type of an exec's last frame: its exit code in ASCII decimal.
pub const EXEC_EXIT_STREAM: u8 = crate::shim::EXIT_STREAM;

/// Starts `docker exec` in the running container. On success returns the connection
/// and the exec's host pid: the stream then carries output frames (8-byte Docker
/// header; stream 1 stdout — also for a TTY —, 2 stderr) and ends with one frame of
/// stream [`EXEC_EXIT_STREAM`] holding the exit code, after which the shim closes it.
/// Bytes written to it are the exec's stdin (when `open_stdin`); `shutdown(Write)` is
/// stdin EOF. The exec's output is not written to the container's log.
///
/// Errors: `Start(msg)` with Docker's words when the process could not be started
/// (`OCI runtime exec failed: exec failed: unable to start container process: exec:
/// "x": executable file not found in $PATH: unknown`; `start_exit_code()` gives the
/// exec's exit code 126/127), `NotRunning` when the container is not running,
/// `Protocol` for anything else the shim refused (e.g. a paused container).
pub fn exec(socket: &Path, spec: &ExecSpec) -> Result<(UnixStream, i32), RuntimeError> {
    let mut s = connect(socket)?;
    let json = serde_json::to_string(spec).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
    s.write_all(format!("exec {json}\n").as_bytes()).map_err(|e| RuntimeError::io("write", socket, e))?;
    // Byte by byte: frames follow the answer line on the same stream.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err(RuntimeError::NotRunning),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) if line.len() < 64 * 1024 => line.push(b[0]),
            Ok(_) => return Err(RuntimeError::Protocol("answer line too long".into())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(RuntimeError::NotRunning),
            Err(e) => return Err(RuntimeError::io("read", socket, e)),
        }
    }
    let ans = String::from_utf8_lossy(&line).into_owned();
    if let Some(pid) = ans.strip_prefix("ok ") {
        let pid = pid.trim().parse().map_err(|_| RuntimeError::Protocol(format!("bad exec answer {ans:?}")))?;
        return Ok((s, pid));
    }
    match ans.strip_prefix("error ") {
        Some(m) if m.contains("is not running") => Err(RuntimeError::NotRunning),
        Some(m) if m.starts_with("OCI runtime exec failed") => Err(RuntimeError::Start(m.to_string())),
        Some(m) => Err(RuntimeError::Protocol(m.to_string())),
        None => Err(RuntimeError::Protocol(format!("unexpected answer {ans:?}"))),
    }
}

/// Parses the payload of an exec's [`EXEC_EXIT_STREAM`] frame.
pub fn exec_exit_code(payload: &[u8]) -> Option<i32> {
    std::str::from_utf8(payload).ok()?.trim().parse().ok()
}

/// Resizes an exec's pty (no-op for an exec without a TTY).
pub fn resize_exec(socket: &Path, pid: i32, rows: u16, cols: u16) -> Result<(), RuntimeError> {
    ok_or(request(socket, &format!("resize {rows} {cols} {pid}\n"))?, RuntimeError::Protocol)
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
