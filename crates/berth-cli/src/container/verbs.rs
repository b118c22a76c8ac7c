//! The simple verbs over one or more names: rm, kill, stop/restart, pause/unpause,
//! wait, rename. As in the docker CLI, rm, kill, stop, pause and unpause send their
//! requests in parallel (Docker's `parallelOperation`: at most 50 at once, one connection
//! each) and print the names in argument order; restart and wait go one by one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use berth_api::WaitResponse;
use berth_client::{Body, Client, Error};

use super::*;
use crate::cli::{KillArgs, Names, RmArgs, StopArgs};
use crate::{CmdResult, Ctx, Fail};

/// Docker's `defaultParallel`: requests in flight at once for the bulk verbs.
const PARALLEL: usize = 50;

/// Docker's `parallelOperation`: runs `op` for every name on up to [`PARALLEL`] threads,
/// each with its own connection, and hands each result to `done` in argument order, as
/// soon as it and all the results before it are in.
fn parallel<T: Send>(
    client: &mut Client,
    names: &[String],
    op: impl Fn(&mut Client, &str) -> Result<T, Error> + Sync,
    mut done: impl FnMut(&str, Result<T, Error>),
) {
    // Negotiate once so the workers' connections reuse the version; a failure here
    // shows again in every request, as Docker's lazy negotiation would.
    let _ = client.negotiate();
    let base = client.fork();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<T, Error>)>();
    thread::scope(|s| {
        for _ in 0..names.len().min(PARALLEL) {
            let tx = tx.clone();
            let (base, next, op) = (&base, &next, &op);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(name) = names.get(i) else { break };
                let mut c = base.fork();
                if tx.send((i, op(&mut c, name))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: Vec<Option<Result<T, Error>>> = names.iter().map(|_| None).collect();
        let mut printed = 0;
        for (i, r) in rx {
            pending[i] = Some(r);
            while let Some(r) = pending.get_mut(printed).and_then(Option::take) {
                done(&names[printed], r);
                printed += 1;
            }
        }
    });
}

/// The bulk verbs' reporting: each name on stdout as its request succeeds, the errors
/// joined on stderr at the end with exit code 1.
#[derive(Default)]
struct Report {
    errs: Vec<String>,
}

impl Report {
    fn add(&mut self, name: &str, r: Result<(), Error>) {
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => self.errs.push(e.to_string()),
        }
    }

    fn finish(self) -> CmdResult {
        if self.errs.is_empty() {
            Ok(0)
        } else {
            Err(Fail::new(1, self.errs.join("\n")))
        }
    }
}

pub fn rm(ctx: &mut Ctx, o: RmArgs) -> CmdResult {
    ctx.require("rm", o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if o.force {
        params.push(("force", "1".to_string()));
    }
    if o.link {
        params.push(("link", "1".to_string()));
    }
    if o.volumes {
        params.push(("v", "1".to_string()));
    }
    let mut report = Report::default();
    let op = |c: &mut Client, name: &str| {
        let name = name.trim_matches('/');
        if name.is_empty() {
            return Err(Error::Bare("container name cannot be empty".into()));
        }
        c.delete(&query(&format!("/containers/{name}"), &params)).map(drop)
    };
    parallel(&mut ctx.client, &o.containers, op, |name, r| match r {
        // `rm -f` of a missing container is not a failure (Docker prints and goes on).
        Err(e) if o.force && e.is_not_found() => eprintln!("{e}"),
        r => report.add(name, r),
    });
    report.finish()
}

pub fn kill(ctx: &mut Ctx, o: KillArgs) -> CmdResult {
    ctx.require("kill", o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if let Some(s) = &o.signal {
        params.push(("signal", s.clone()));
    }
    let mut report = Report::default();
    let op = |c: &mut Client, name: &str| c.post(&query(&format!("/containers/{name}/kill"), &params)).map(drop);
    parallel(&mut ctx.client, &o.containers, op, |name, r| report.add(name, r));
    report.finish()
}

/// `stop` (parallel) and `restart` (one after another, as Docker does).
pub fn stop(ctx: &mut Ctx, o: StopArgs, verb: &str) -> CmdResult {
    ctx.require(verb, o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if let Some(s) = &o.signal {
        params.push(("signal", s.clone()));
    }
    if let Some(t) = o.time {
        params.push(("t", t.to_string()));
    }
    let mut report = Report::default();
    let op = |c: &mut Client, name: &str| c.post(&query(&format!("/containers/{name}/{verb}"), &params)).map(drop);
    if verb == "stop" {
        parallel(&mut ctx.client, &o.containers, op, |name, r| report.add(name, r));
    } else {
        for name in &o.containers {
            let r = op(&mut ctx.client, name);
            report.add(name, r);
        }
    }
    report.finish()
}

/// pause and unpause (parallel).
pub fn simple(ctx: &mut Ctx, o: Names, verb: &str) -> CmdResult {
    ctx.require(verb, o.names.len(), 1, None)?;
    let mut report = Report::default();
    let op = |c: &mut Client, name: &str| c.post(&format!("/containers/{name}/{verb}")).map(drop);
    parallel(&mut ctx.client, &o.names, op, |name, r| report.add(name, r));
    report.finish()
}

/// One container after another, each exit code on its own line (Docker's order).
pub fn wait(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("wait", o.names.len(), 1, None)?;
    let mut errs = Vec::new();
    for c in &o.names {
        let r = ctx
            .client
            .call("POST", &format!("/containers/{c}/wait"), &[], Body::Empty)
            .and_then(|(_, data)| berth_client::decode::<WaitResponse>(&data));
        match r {
            Ok(w) => println!("{}", w.status_code),
            Err(e) => errs.push(e.to_string()),
        }
    }
    Report { errs }.finish()
}

pub fn rename(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("rename", o.names.len(), 2, Some(2))?;
    let new = o.names[1].trim();
    if new.is_empty() {
        return Err(Fail::new(1, "Error: neither old nor new names may be empty"));
    }
    ctx.client.post(&query(&format!("/containers/{}/rename", o.names[0]), &[("name", new.to_string())]))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    /// A daemon stand-in that answers a container request only once `n` of them are in
    /// flight at the same time (500 if they never are), and 404 for `nosuch`.
    fn barrier_daemon(dir: &std::path::Path, n: usize) -> String {
        let sock = dir.join("d.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let arrived = arrived.clone();
                thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().expect("clone"));
                    let mut w = conn;
                    loop {
                        let mut first = String::new();
                        if r.read_line(&mut first).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut line = String::new();
                        while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                            line.clear();
                        }
                        let resp = if first.contains("/_ping") {
                            "HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nContent-Length: 0\r\n\r\n".to_string()
                        } else if first.contains("nosuch") {
                            let body = r#"{"message":"No such container: nosuch"}"#;
                            format!("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                        } else {
                            let (m, cv) = &*arrived;
                            let mut k = m.lock().expect("lock");
                            *k += 1;
                            cv.notify_all();
                            let (k, _) = cv.wait_timeout_while(k, Duration::from_secs(20), |k| *k < n).expect("wait");
                            if *k >= n {
                                "HTTP/1.1 204 No Content\r\n\r\n".to_string()
                            } else {
                                let body = r#"{"message":"requests not in parallel"}"#;
                                format!("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                            }
                        };
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("unix://{}", sock.display())
    }

    #[test]
    fn bulk_requests_run_together_and_report_in_argument_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let names: Vec<String> = ["a", "nosuch", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let mut client = Client::new(&barrier_daemon(dir.path(), 4)).expect("client");
        let mut seen = Vec::new();
        parallel(&mut client, &names, |c, n| c.post(&format!("/containers/{n}/stop")).map(drop), |n, r| {
            seen.push((n.to_string(), r.map_err(|e| e.to_string())));
        });
        let want: Vec<(String, Result<(), String>)> = vec![
            ("a".into(), Ok(())),
            ("nosuch".into(), Err("Error response from daemon: No such container: nosuch".into())),
            ("b".into(), Ok(())),
            ("c".into(), Ok(())),
            ("d".into(), Ok(())),
        ];
        assert_eq!(seen, want);
    }
}
