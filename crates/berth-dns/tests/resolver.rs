//! The real `berth-dns` process on loopback addresses: records files in, DNS answers
//! out over UDP and TCP, scoping between networks, forwarding to an upstream (a small
//! UDP responder in the test standing in for the host's name server, which tests must
//! not reach), a container's own `--dns` servers used as its upstreams instead (also a
//! loopback one inside the container's network namespace), SERVFAIL without one,
//! reload, and the pid-file handshake.

use berth_dns::{control, Endpoint, NetworkRecords};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_berth-dns");

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// (rcode, answer count, the last answer's rdata)
fn parse(r: &[u8]) -> (u8, u16, Vec<u8>) {
    let an = u16::from_be_bytes([r[6], r[7]]);
    let data = if an > 0 {
        // A records only here: the last four bytes are its address.
        r[r.len() - 4..].to_vec()
    } else {
        vec![]
    };
    (r[3] & 0x0f, an, data)
}

fn ask_udp(from: &str, to: SocketAddr, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let s = UdpSocket::bind((from.parse::<IpAddr>().expect("ip"), 0)).expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.send_to(&query(0x4242, name, qtype), to).expect("send");
    let mut buf = [0u8; 1024];
    let n = s.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn records(id: &str, listen: &str, eps: &[(&str, &[&str], &str)]) -> NetworkRecords {
    NetworkRecords {
        id: id.into(),
        name: id.into(),
        listen: vec![listen.parse().expect("ip")],
        endpoints: eps
            .iter()
            .map(|(id, names, ip)| Endpoint {
                id: id.to_string(),
                names: names.iter().map(|s| s.to_string()).collect(),
                ipv4: vec![ip.parse().expect("ip")],
                ipv6: vec![],
                ..Endpoint::default()
            })
            .collect(),
    }
}

struct Resolver {
    pid: i32,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = berth_sys::process::kill(self.pid, libc::SIGKILL);
    }
}

fn start(state: &Path, resolv: &Path, port: u16, upstream_port: u16) -> Resolver {
    let child = std::process::Command::new(BIN)
        .args(["--state-dir", state.to_str().expect("utf8"), "--resolv-conf", resolv.to_str().expect("utf8")])
        .args(["--port", &port.to_string(), "--upstream-port", &upstream_port.to_string()])
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        let mut c = child;
        c.wait()
    });
    for _ in 0..300 {
        if control::running_pid(state) == Some(pid) {
            return Resolver { pid };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("berth-dns did not write its pid file");
}

/// Answers every query with NXDOMAIN and counts them.
fn fake_upstream(addr: &str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let s = UdpSocket::bind((addr.parse::<IpAddr>().expect("ip"), 0)).expect("bind");
    let port = s.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 600];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut r = buf[..n].to_vec();
            r[2] |= 0x80;
            r[3] = 0x80 | 3;
            let _ = s.send_to(&r, peer);
        }
    });
    (port, seen)
}

#[test]
fn answers_scopes_forwards_and_reloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("dns");
    let (up_port, seen) = fake_upstream("127.0.0.1");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\nsearch corp.example\n").expect("write");
    control::write_network(&state, &records("neta", "127.61.0.1", &[("a1a1a1a1a1a1ffff", &["db", "redis"], "127.61.0.2"), ("c1c1c1c1c1c1ffff", &["client"], "127.61.0.3")]))
        .expect("write a");
    control::write_network(&state, &records("netb", "127.61.1.1", &[("b1b1b1b1b1b1ffff", &["secret"], "127.61.1.2")])).expect("write b");
    let port = 20053;
    let _r = start(&state, &resolv, port, up_port);
    let a = SocketAddr::new("127.61.0.1".parse().expect("ip"), port);

    /// (what, name, qtype, rcode, answers, last answer's address)
    type Case = (&'static str, &'static str, u16, u8, u16, Vec<u8>);
    let cases: Vec<Case> = vec![
        ("by name", "db", 1, 0, 1, vec![127, 61, 0, 2]),
        ("by alias", "redis", 1, 0, 1, vec![127, 61, 0, 2]),
        ("short id", "a1a1a1a1a1a1", 1, 0, 1, vec![127, 61, 0, 2]),
        ("search suffix", "db.corp.example", 1, 0, 1, vec![127, 61, 0, 2]),
        ("no AAAA", "db", 28, 0, 0, vec![]),
        ("other network: NXDOMAIN here", "secret", 1, 3, 0, vec![]),
        ("forwarded", "example.com", 1, 3, 0, vec![]),
    ];
    for (what, name, ty, rcode, an, data) in cases {
        let r = ask_udp("127.61.0.3", a, name, ty).unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(&r[0..2], &[0x42, 0x42], "{what}");
        assert_eq!(parse(&r), (rcode, an, data), "{what}");
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1, "only the dotted name reached the upstream");

    // TCP: length-prefixed, same answers.
    let mut t = TcpStream::connect(a).expect("tcp");
    t.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let q = query(7, "client", 1);
    let mut m = (q.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(&q);
    t.write_all(&m).expect("write");
    let mut len = [0u8; 2];
    t.read_exact(&mut len).expect("len");
    let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
    t.read_exact(&mut r).expect("msg");
    assert_eq!(parse(&r), (0, 1, vec![127, 61, 0, 3]));

    // Reload: a container joins network b; it resolves there at once after the
    // write (SIGHUP), and the new listen address of a third network comes up.
    control::write_network(&state, &records("netb", "127.61.1.1", &[("b1b1b1b1b1b1ffff", &["secret"], "127.61.1.2"), ("d1d1d1d1d1d1ffff", &["late"], "127.61.1.3")]))
        .expect("rewrite b");
    control::write_network(&state, &records("netc", "127.61.2.1", &[("e1e1e1e1e1e1ffff", &["cee"], "127.61.2.2")])).expect("write c");
    let b = SocketAddr::new("127.61.1.1".parse().expect("ip"), port);
    let c = SocketAddr::new("127.61.2.1".parse().expect("ip"), port);
    let mut ok = false;
    for _ in 0..50 {
        let late = ask_udp("127.61.1.2", b, "late", 1).map(|r| parse(&r));
        let cee = ask_udp("127.61.2.2", c, "cee", 1).map(|r| parse(&r));
        if late == Some((0, 1, vec![127, 61, 1, 3])) && cee == Some((0, 1, vec![127, 61, 2, 2])) {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "reloaded records are served");

    // A second start for the same state directory does not start another resolver.
    let pid = control::ensure_running(Path::new(BIN), &state, &resolv).expect("ensure");
    assert_eq!(pid, _r.pid);

    // stop: the process goes, and so does its state directory.
    control::stop(&state).expect("stop");
    assert!(!state.exists());
    let mut gone = false;
    for _ in 0..200 {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false);
        if !alive {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone, "berth-dns still running after stop");
}

#[test]
fn servfail_without_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("dns");
    // Nothing listens on the upstream port: the upstream is unreachable.
    let closed = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("write");
    control::write_network(&state, &records("n", "127.62.0.1", &[("a1a1a1a1a1a1ffff", &["db"], "127.62.0.2")])).expect("write");
    let _r = start(&state, &resolv, 20054, closed_port);
    let a = SocketAddr::new("127.62.0.1".parse().expect("ip"), 20054);
    let r = ask_udp("127.62.0.2", a, "example.com", 1).expect("answer");
    assert_eq!(parse(&r).0, 2, "SERVFAIL");
    let r = ask_udp("127.62.0.2", a, "db", 1).expect("answer");
    assert_eq!(parse(&r), (0, 1, vec![127, 62, 0, 2]), "local names still answered");
    // Garbage gets FORMERR or nothing, and the server keeps answering.
    let s = UdpSocket::bind("127.62.0.2:0").expect("bind");
    s.send_to(&[0x12, 0x34, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0xff], a).expect("send");
    let r = ask_udp("127.62.0.2", a, "db", 1).expect("answer after garbage");
    assert_eq!(parse(&r).0, 0);
}

/// Answers A queries with `addr` (other types: no answer) and records the names asked.
fn answering_upstream(sock: UdpSocket, addr: [u8; 4]) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 600];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            // The question's name: labels from byte 12 up to the zero byte.
            let (mut i, mut labels) = (12, Vec::new());
            while i < n && q[i] != 0 {
                let l = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..(i + 1 + l).min(n)]).into_owned());
                i += 1 + l;
            }
            let qtype = q.get(i + 1..i + 3).map(|t| u16::from_be_bytes([t[0], t[1]])).unwrap_or(0);
            seen.lock().expect("lock").push(labels.join("."));
            let mut r = q[..(i + 5).min(n)].to_vec();
            r[2] |= 0x80;
            r[3] = 0x80;
            if qtype == 1 {
                r[7] = 1;
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&addr);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    asked
}

fn names(asked: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    asked.lock().expect("lock").clone()
}

/// A network namespace of the test's own with `lo` up: a thread of ours moves into it
/// and stays until the returned sender is dropped (its /proc path names the
/// namespace). Returns the path and a UDP socket bound inside on 127.0.0.1; `None`
/// without the privilege to make one.
fn namespace_with_socket() -> Option<(String, UdpSocket, std::sync::mpsc::Sender<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let made = (|| -> std::io::Result<(String, UdpSocket)> {
            berth_sys::process::unshare(libc::CLONE_NEWNET)?;
            // A child inherits the calling thread's namespaces.
            let st = std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status()?;
            if !st.success() {
                return Err(std::io::Error::other("ip link set lo up failed"));
            }
            let sock = UdpSocket::bind("127.0.0.1:0")?;
            let me = std::fs::read_link("/proc/thread-self")?;
            Ok((format!("/proc/{}/ns/net", me.display()), sock))
        })();
        let _ = tx.send(made);
        let _ = stop_rx.recv();
    });
    match rx.recv().expect("thread") {
        Ok((path, sock)) => Some((path, sock, stop_tx)),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("skipped: a network namespace needs root ({e})");
            None
        }
        Err(e) => panic!("namespace: {e}"),
    }
}

/// A container given `--dns` has what the table does not answer forwarded to its own
/// servers, never to the host's; a container without goes to the host's; container
/// names never leave the resolver. The container's server is on its own loopback
/// (`--dns 127.0.0.1`), so it is asked inside the container's network namespace (here
/// one the test makes); the host's server listens on the host's 127.0.0.1 on the same
/// port and must see only the query of the container without `--dns`. (Tests reach no
/// other address; the choice of non-loopback servers is table-tested in `table.rs`.)
#[test]
fn own_dns_servers_are_the_upstreams() {
    let Some((netns, inside, _stop)) = namespace_with_socket() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("dns");
    let port = inside.local_addr().expect("addr").port();
    let own_asked = answering_upstream(inside, [10, 0, 0, 2]);
    let host_lo = UdpSocket::bind(("127.0.0.1", port)).expect("bind host double");
    let host_asked = answering_upstream(host_lo, [10, 0, 0, 1]);
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("write");
    let mut recs = records(
        "n",
        "127.63.0.1",
        &[("a1a1a1a1a1a1ffff", &["plain"], "127.63.0.2"), ("b1b1b1b1b1b1ffff", &["own"], "127.63.0.3"), ("c1c1c1c1c1c1ffff", &["nons"], "127.63.0.4")],
    );
    recs.endpoints[1].dns = vec!["127.0.0.1".parse().expect("ip")];
    recs.endpoints[1].netns = Some(netns.into());
    // A loopback server without the container's namespace cannot be reached: that
    // container's query gets SERVFAIL, and the host's server sees nothing of it.
    recs.endpoints[2].dns = vec!["127.0.0.1".parse().expect("ip")];
    control::write_network(&state, &recs).expect("write");
    let _r = start(&state, &resolv, 20055, port);
    let a = SocketAddr::new("127.63.0.1".parse().expect("ip"), 20055);

    let r = ask_udp("127.63.0.3", a, "only.upstream.test", 1).expect("answer");
    assert_eq!(parse(&r), (0, 1, vec![10, 0, 0, 2]), "answered by the container's own server, inside its namespace");
    let r = ask_udp("127.63.0.2", a, "other.upstream.test", 1).expect("answer");
    assert_eq!(parse(&r), (0, 1, vec![10, 0, 0, 1]), "no --dns: answered by the host's server");
    let r = ask_udp("127.63.0.3", a, "plain", 1).expect("answer");
    assert_eq!(parse(&r), (0, 1, vec![127, 63, 0, 2]), "container names from the table");
    let r = ask_udp("127.63.0.3", a, "nobody", 1).expect("answer");
    assert_eq!(parse(&r).0, 3, "unknown single labels stay NXDOMAIN here");
    let r = ask_udp("127.63.0.4", a, "lost.upstream.test", 1).expect("answer");
    assert_eq!(parse(&r).0, 2, "no usable server of its own: SERVFAIL");
    assert_eq!(names(&own_asked), vec!["only.upstream.test"]);
    assert_eq!(names(&host_asked), vec!["other.upstream.test"]);
}
