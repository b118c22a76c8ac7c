//! berthd's side of the resolver: one state directory per daemon
//! (`<exec-root>/dns`): `networks/<network id>.json` records files written atomically,
//! `berth-dns.pid`, `berth-dns.log`. The resolver outlives berthd; a starting berthd
//! finds it by its pid file and only tells it to reload.

use crate::table::{NetworkRecords, NETWORKS_DIR};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The pid file inside the state directory.
pub const PID_FILE: &str = "berth-dns.pid";
/// The resolver's log (its stderr) inside the state directory.
pub const LOG_FILE: &str = "berth-dns.log";

/// The records file of network `id`.
pub fn records_path(state: &Path, id: &str) -> PathBuf {
    state.join(NETWORKS_DIR).join(format!("{id}.json"))
}

/// Writes network `r`'s records (atomically: the resolver reads the old or the new
/// file, never a part) and tells a running resolver to reload.
pub fn write_network(state: &Path, r: &NetworkRecords) -> io::Result<()> {
    let dir = state.join(NETWORKS_DIR);
    std::fs::create_dir_all(&dir)?;
    let data = serde_json::to_vec(r).map_err(io::Error::other)?;
    berth_sys::fs::write_atomic_with(&records_path(state, &r.id), &data, 0o644, berth_sys::fs::Durability::Volatile)
        .map_err(io::Error::other)?;
    reload(state);
    Ok(())
}

/// Removes network `id`'s records (gone already is fine) and tells the resolver.
pub fn remove_network(state: &Path, id: &str) -> io::Result<()> {
    match std::fs::remove_file(records_path(state, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    reload(state);
    Ok(())
}

/// The pid of the resolver serving `state`, if one runs: the pid file names a live
/// `berth-dns` process whose command line names this state directory.
pub fn running_pid(state: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(state.join(PID_FILE)).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_dns = args.first().is_some_and(|a| a.ends_with(b"berth-dns"));
    let ours = args.contains(&state.as_os_str().as_encoded_bytes());
    (is_dns && ours).then_some(pid)
}

/// Sends SIGHUP to the running resolver, if any (a missed signal is caught by its
/// one-second poll of the records directory).
pub fn reload(state: &Path) {
    if let Some(pid) = running_pid(state) {
        let _ = berth_sys::process::kill(pid, libc::SIGHUP);
    }
}

/// Starts `bin` for `state` unless a resolver already serves it (then it is told to
/// reload). The child is reaped by a thread; it detaches itself (setsid) so that it
/// outlives berthd. Returns the resolver's pid.
pub fn ensure_running(bin: &Path, state: &Path, resolv_conf: &Path) -> io::Result<i32> {
    if let Some(pid) = running_pid(state) {
        let _ = berth_sys::process::kill(pid, libc::SIGHUP);
        return Ok(pid);
    }
    std::fs::create_dir_all(state.join(NETWORKS_DIR))?;
    let log = std::fs::File::options().create(true).append(true).open(state.join(LOG_FILE))?;
    let mut child = Command::new(bin)
        .arg("--state-dir")
        .arg(state)
        .arg("--resolv-conf")
        .arg(resolv_conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("start {}: {e}", bin.display())))?;
    let pid = child.id() as i32;
    std::thread::spawn(move || child.wait());
    // The resolver writes its pid file once its records are loaded.
    for _ in 0..100 {
        if running_pid(state) == Some(pid) {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(pid)
}

/// Writes the pid file (the resolver's own side).
pub fn write_pid_file(state: &Path) -> io::Result<()> {
    berth_sys::fs::write_atomic_with(
        &state.join(PID_FILE),
        format!("{}\n", std::process::id()).as_bytes(),
        0o644,
        berth_sys::fs::Durability::Volatile,
    )
    .map_err(io::Error::other)
}

/// Waits until something accepts TCP connections on port 53 of every address in
/// `addrs` (the resolver, after a reload that added them), at most `timeout`; false
/// if it did not happen. Used so that a container's first query, sent as soon as it
/// starts, finds the resolver listening on a gateway that came up a moment ago.
pub fn wait_listening(addrs: &[std::net::IpAddr], timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    addrs.iter().all(|a| loop {
        let sa = std::net::SocketAddr::new(*a, 53);
        if std::net::TcpStream::connect_timeout(&sa, Duration::from_millis(100)).is_ok() {
            break true;
        }
        if std::time::Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    })
}

/// Stops the resolver serving `state` (SIGTERM) and removes its state directory: for a
/// daemon instance being cleaned up for good (`berthd --network-cleanup`).
pub fn stop(state: &Path) -> io::Result<()> {
    if let Some(pid) = running_pid(state) {
        berth_sys::process::kill(pid, libc::SIGTERM)?;
    }
    match std::fs::remove_dir_all(state) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
