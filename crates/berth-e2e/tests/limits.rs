//! The daemon's limits at the HTTP edge (docs/security.md "The API socket"), spoken raw
//! over the Unix socket: running out of file descriptors, the connection cap, header,
//! idle and body read timeouts (and the streams they must leave alone), the JSON body
//! cap, Docker's `{"message"}` on requests hyper cannot parse, and handlers abandoned
//! when their client goes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::thread;
use std::time::Duration;

use berth_e2e::{parse_response, wait_until, Cli, Daemon, HttpResponse};

fn connect(d: &Daemon, read_timeout: Duration) -> UnixStream {
    let s = UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(read_timeout)).expect("read timeout");
    s
}

/// Writes `head` then `body` (write errors ignored: the daemon may answer and close
/// before it has read the body) and reads the answer to the end.
fn raw(d: &Daemon, head: &str, body: Vec<u8>) -> HttpResponse {
    let mut s = connect(d, Duration::from_secs(60));
    let mut w = s.try_clone().expect("clone");
    let head = head.to_string();
    let writer = thread::spawn(move || {
        let _ = w.write_all(head.as_bytes()).and_then(|()| w.write_all(&body));
    });
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let _ = writer.join();
    parse_response(&out, false).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&out)))
}

fn post_json(path: &str, len: usize, chunked: bool) -> String {
    let framing = if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {len}") };
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{framing}\r\n\r\n")
}

/// A create body of about `size` bytes: busybox with one padded label.
fn create_body(size: usize) -> Vec<u8> {
    let pad = "x".repeat(size.saturating_sub(60));
    format!(r#"{{"Image":"busybox","Cmd":["true"],"Labels":{{"pad":"{pad}"}}}}"#).into_bytes()
}

fn chunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[track_caller]
fn assert_message(r: &HttpResponse, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.header("Content-Type").unwrap_or_default().starts_with("application/json"), "{r:?}");
    let m = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(m.contains(needle), "message {m:?} should contain {needle:?}");
}

fn accept_error_lines(d: &Daemon) -> usize {
    d.log_text().lines().filter(|l| l.contains("accept:")).count()
}

#[test]
fn out_of_file_descriptors_backs_off_logs_little_and_recovers() {
    let d = Daemon::start();
    // The client needs its own descriptors; the daemon gets very few.
    let me = std::process::id().to_string();
    let ok = Command::new("prlimit").args(["--pid", &me, "--nofile=4096:"]).status().expect("prlimit self");
    assert!(ok.success());
    let ok = Command::new("prlimit").args(["--pid", &d.pid().to_string(), "--nofile=64:64"]).status().expect("prlimit");
    assert!(ok.success());
    // Up to the listen backlog (1024): the daemon runs out of descriptors early on.
    let conns: Vec<UnixStream> = (0..1000).map(|_| UnixStream::connect(&d.sock).expect("connect")).collect();
    wait_until(Duration::from_secs(30), "an accept error in the log", || (accept_error_lines(&d) > 0).then_some(()));
    // A spinning loop logs hundreds of thousands of lines in this time.
    thread::sleep(Duration::from_secs(2));
    let lines = accept_error_lines(&d);
    assert!(lines <= 3, "{lines} accept error lines");
    assert!(d.log_text().contains("Too many open files"), "{}", d.log_text());
    drop(conns);
    let r = d.request("GET", "/_ping", None);
    assert_eq!((r.status, r.text().as_str()), (200, "OK"), "{r:?}");
}

#[test]
fn clients_over_the_connection_cap_wait_for_a_slot() {
    let d = Daemon::start_with_args(&["--max-connections", "3", "--header-read-timeout", "0"]);
    let idle: Vec<UnixStream> = (0..3).map(|_| connect(&d, Duration::from_secs(5))).collect();
    // Make sure the three are being served (a served connection answers).
    let mut first = idle.into_iter();
    let mut served = first.next().expect("one");
    served.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut buf = [0u8; 512];
    assert!(served.read(&mut buf).expect("answer") > 0);
    let rest: Vec<UnixStream> = first.collect();

    let mut waiting = connect(&d, Duration::from_secs(1));
    waiting.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let e = waiting.read(&mut buf).expect_err("a 4th connection is not served while 3 are open");
    assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}");

    drop(served);
    waiting.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut out = Vec::new();
    waiting.read_to_end(&mut out).expect("answer once a slot is free");
    let r = parse_response(&out, false).expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "OK"), "{r:?}");
    drop(rest);
}

#[test]
fn slow_heads_and_idle_connections_are_closed_streams_are_not() {
    let d = Daemon::start_with_args(&["--header-read-timeout", "1s", "--body-read-timeout", "1s"]);
    // Half a request head: closed (EOF) once the timeout passes.
    let mut s = connect(&d, Duration::from_secs(20));
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n").expect("write");
    let mut buf = [0u8; 1024];
    assert_eq!(s.read(&mut buf).expect("EOF, not a read timeout"), 0);

    // An idle keep-alive connection: answered, then closed.
    let mut s = connect(&d, Duration::from_secs(20));
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let n = s.read(&mut buf).expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    assert_eq!(s.read(&mut buf).expect("EOF, not a read timeout"), 0);

    // Half a body: 408 with Docker's error body.
    let r = raw(&d, &post_json("/containers/create", 100, false), b"{\"Image\":".to_vec());
    assert_message(&r, 408, "timed out reading the request body");

    // Streams outlive the timeouts: wait, logs -f, attach, exec.
    d.berth(&["pull", "busybox"]).ok();
    d.berth(&["run", "-d", "--name", "long", "busybox", "sh", "-c", "sleep 4; echo late; sleep 100"]).ok();
    let wait = d.request_in_background("POST", "/containers/long/wait");
    let logs = d.cli_background(Cli::Berth, &["logs", "-f", "long"]);
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["exec", "long", "sh", "-c", "sleep 3; echo exec-done"]).ok().stdout_has("exec-done");
        d.cli(cli, &["run", "--rm", "busybox", "sh", "-c", "sleep 3; echo attach-done"]).ok().stdout_has("attach-done");
    }
    wait_until(Duration::from_secs(30), "late in logs -f", || logs.stdout().contains("late").then_some(()));
    d.berth(&["kill", "long"]).ok();
    let w = wait.join().expect("join").expect("wait answered");
    assert_eq!(w.status, 200, "{w:?}");
    assert_eq!(w.json()["StatusCode"], 137, "{w:?}");
}

#[test]
fn json_bodies_over_the_cap_are_413_and_the_daemon_stays_healthy() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let big = create_body(20 << 20);
    let r = raw(&d, &post_json("/containers/create?name=big", big.len(), false), big.clone());
    assert_message(&r, 413, "at most 16777216 bytes");
    let r = raw(&d, &post_json("/containers/create?name=big", 0, true), chunk(&big));
    assert_message(&r, 413, "at most 16777216 bytes");
    // Other JSON bodies have the same cap.
    let r = raw(&d, &post_json("/containers/x/update", big.len(), false), big);
    assert_message(&r, 413, "max-request-body");

    let ok = create_body(1 << 20);
    let r = raw(&d, &post_json("/containers/create?name=mib", ok.len(), false), ok.clone());
    assert_eq!(r.status, 201, "{r:?}");
    let r = raw(&d, &post_json("/containers/create?name=mib2", 0, true), chunk(&ok));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(d.inspect("mib")["Config"]["Labels"]["pad"].as_str().map(str::len), Some((1 << 20) - 60));
    d.berth(&["rm", "mib", "mib2"]).ok();
    let r = d.request("GET", "/_ping", None);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn the_body_cap_is_set_by_flag_or_daemon_json() {
    let cfg = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(cfg.path(), r#"{"max-request-body": "1k"}"#).expect("write daemon.json");
    let path = cfg.path().to_str().expect("utf8").to_string();
    for args in [vec!["--max-request-body", "1k"], vec!["--config-file", path.as_str()]] {
        let d = Daemon::start_with_args(&args);
        let body = create_body(2048);
        let r = raw(&d, &post_json("/containers/create", body.len(), false), body);
        assert_message(&r, 413, "at most 1024 bytes");
        let r = raw(&d, &post_json("/exec/x/start", 0, true), chunk(&create_body(2048)));
        assert_message(&r, 413, "at most 1024 bytes");
    }
}

#[test]
fn requests_hyper_cannot_parse_get_json_messages() {
    let d = Daemon::start();
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    // Over Go's (dockerd's) 1 MiB limit on a request head.
    let big_header = format!("GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(1_100_000));
    for (req, status, message) in [
        ("GARBAGE\r\n\r\n".to_string(), 400, "malformed HTTP request"),
        ("GET /_ping HTTP/1.1\r\nBad Header\r\n\r\n".to_string(), 400, "malformed HTTP request"),
        (long_uri, 414, "request URI too long"),
        (big_header, 431, "request header fields too large"),
    ] {
        let r = raw(&d, &req, Vec::new());
        assert_message(&r, status, message);
        assert!(r.header("Api-Version").is_some(), "{r:?}");
    }
    // Under it, a large head is served (as dockerd serves it), however it arrives.
    let fits = format!("GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n", "b".repeat(600_000));
    assert_eq!(raw(&d, &fits, Vec::new()).status, 200);
    // A keep-alive connection that already had an answer still gets the body.
    let mut s = connect(&d, Duration::from_secs(20));
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n").expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let second = text.find("HTTP/1.1 400").map(|i| &out[i..]).unwrap_or_else(|| panic!("no 400 in {text:?}"));
    assert_message(&parse_response(second, false).expect("response"), 400, "malformed HTTP request");
}

#[test]
fn handlers_stop_when_their_client_goes() {
    let d = Daemon::start_with_args(&["--log-level", "debug"]);
    d.berth(&["pull", "busybox"]).ok();
    // PID 1 without a handler ignores SIGTERM: only the stop's SIGKILL ends it.
    d.berth(&["run", "-d", "--name", "deaf", "busybox", "sleep", "1000"]).ok();
    {
        let mut s = connect(&d, Duration::from_secs(5));
        s.write_all(b"POST /containers/deaf/stop?t=3 HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        wait_until(Duration::from_secs(20), "the stop to reach its handler", || {
            d.log_text().contains("Calling POST /containers/deaf/stop").then_some(())
        });
        thread::sleep(Duration::from_millis(300));
    }
    wait_until(Duration::from_secs(20), "the abandoned stop in the log", || {
        d.log_text().contains("client went away: abandoned POST /containers/deaf/stop").then_some(())
    });
    // Well past the 3 s grace: the abandoned stop did not go on to SIGKILL.
    thread::sleep(Duration::from_secs(5));
    assert_eq!(d.inspect("deaf")["State"]["Running"], true);
    // The same stop with its client still there kills it after the grace.
    let r = d.request("POST", "/containers/deaf/stop?t=1", None);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(d.inspect("deaf")["State"]["Running"], false);

    d.berth(&["run", "-d", "--name", "waiter", "busybox", "sleep", "1000"]).ok();
    {
        let mut s = connect(&d, Duration::from_secs(20));
        s.write_all(b"POST /containers/waiter/wait HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut buf = [0u8; 1024];
        assert!(s.read(&mut buf).expect("wait's headers") > 0);
    }
    wait_until(Duration::from_secs(20), "the abandoned wait in the log", || {
        d.log_text().contains("client went away: abandoned wait").then_some(())
    });
    d.berth(&["rm", "-f", "waiter", "deaf"]).ok();
}
