//! The resolver process: UDP and TCP listeners on every network's gateway address, the
//! answer path (table lookup, or forwarding to the asking container's own `--dns`
//! servers, else to the host's name servers), and the reload loop (SIGHUP, or a change
//! of the records directory seen by a one-second poll).
//!
//! Blocking std code, one thread per listening socket and per forwarded query or TCP
//! connection; both are capped, so memory is bounded whatever clients send. Queries
//! are at most 512 bytes over UDP (larger datagrams are cut by the receive buffer) and
//! 65535 over TCP (the length prefix); a forwarded answer at most [`FORWARD_MAX`].

use crate::table::{self, Lookup, Table, Upstream};
use crate::wire::{self, Answer, ParseError, Query};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Queries being forwarded at once; more get SERVFAIL at once.
pub const MAX_FORWARDS: usize = 128;
/// TCP connections served at once; more are closed at once.
pub const MAX_TCP: usize = 64;
/// Largest forwarded answer relayed.
pub const FORWARD_MAX: usize = 4096;
/// Time an upstream server has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle time before a TCP client is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// How the process was started.
#[derive(Debug, Clone)]
pub struct Config {
    /// State directory: `networks/*.json`, the pid file.
    pub state_dir: PathBuf,
    /// The host's resolv.conf (upstream name servers and search domains).
    pub resolv_conf: PathBuf,
    /// Port served on every listen address (53).
    pub port: u16,
    /// Port of the upstream servers (53; other values for tests).
    pub upstream_port: u16,
}

/// What queries are answered from; replaced whole on reload.
#[derive(Debug, Default)]
struct View {
    table: Table,
    upstreams: Vec<IpAddr>,
    search: Vec<String>,
}

struct Shared {
    view: RwLock<Arc<View>>,
    forwards: AtomicUsize,
    tcp: AtomicUsize,
    upstream_port: u16,
}

impl Shared {
    fn view(&self) -> Arc<View> {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

struct Listener {
    stop: Arc<AtomicBool>,
    tcp_addr: Option<SocketAddr>,
}

/// Runs the resolver until killed.
pub fn run(cfg: Config) -> io::Result<()> {
    // SIGHUP is taken by the signalfd; blocked before any thread starts, so every
    // thread inherits the mask and none dies of it.
    berth_sys::signal::block(&[libc::SIGHUP])?;
    let sigfd = berth_sys::signal::signalfd(&[libc::SIGHUP])?;
    let shared = Arc::new(Shared {
        view: RwLock::new(Arc::new(View::default())),
        forwards: AtomicUsize::new(0),
        tcp: AtomicUsize::new(0),
        upstream_port: cfg.upstream_port,
    });
    let dir = cfg.state_dir.join(table::NETWORKS_DIR);
    std::fs::create_dir_all(&dir)?;
    let mut listeners: BTreeMap<IpAddr, Listener> = BTreeMap::new();
    let mut failing = BTreeSet::new();
    let mut last_stamp = None;
    let mut reload = true;
    let mut pid_written = false;
    loop {
        let stamp = dir_stamp(&dir);
        if reload || stamp != last_stamp {
            last_stamp = stamp;
            let (table, errors) = table::load_dir(&dir);
            for e in errors {
                eprintln!("berth-dns: {e}");
            }
            let text = std::fs::read_to_string(&cfg.resolv_conf).unwrap_or_default();
            let (upstreams, search) = table::parse_resolv_conf(&text);
            let view = View { table, upstreams, search };
            match shared.view.write() {
                Ok(mut v) => *v = Arc::new(view),
                Err(p) => *p.into_inner() = Arc::new(view),
            }
        }
        reload = false;
        reconcile(&shared, &mut listeners, &mut failing, cfg.port);
        if !pid_written {
            // Written once the records are loaded and the listeners that can start
            // have: from then on berthd only signals this process.
            crate::control::write_pid_file(&cfg.state_dir)?;
            pid_written = true;
        }
        let mut fds = [berth_sys::poll::PollFd::new(sigfd.as_raw_fd(), berth_sys::poll::POLLIN)];
        match berth_sys::poll::poll(&mut fds, 1000) {
            Ok(n) if n > 0 => {
                if berth_sys::signal::drain_signalfd(sigfd.as_fd()) > 0 {
                    reload = true;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The records directory's modification time and entry count: an atomic rename or a
/// removal changes it, so a missed SIGHUP is caught within a second.
fn dir_stamp(dir: &std::path::Path) -> Option<(SystemTime, usize)> {
    let m = std::fs::metadata(dir).ok()?.modified().ok()?;
    let n = std::fs::read_dir(dir).ok()?.count();
    Some((m, n))
}

/// Starts listeners for new addresses (retrying those whose address is not up yet)
/// and stops those no network has any more.
fn reconcile(shared: &Arc<Shared>, listeners: &mut BTreeMap<IpAddr, Listener>, failing: &mut BTreeSet<IpAddr>, port: u16) {
    let want = shared.view().table.listen_addrs();
    failing.retain(|a| want.contains(a));
    let gone: Vec<IpAddr> = listeners.keys().filter(|a| !want.contains(a)).copied().collect();
    for a in gone {
        if let Some(l) = listeners.remove(&a) {
            l.stop.store(true, Ordering::SeqCst);
            if let Some(t) = l.tcp_addr {
                // Wakes the accept loop, which then sees the stop flag.
                let _ = TcpStream::connect_timeout(&t, Duration::from_millis(200));
            }
        }
    }
    for a in want {
        if listeners.contains_key(&a) {
            continue;
        }
        match start_listener(shared, SocketAddr::new(a, port)) {
            Ok(l) => {
                failing.remove(&a);
                listeners.insert(a, l);
            }
            // Logged once per address: the bridge may come up a moment later.
            Err(e) if failing.insert(a) => eprintln!("berth-dns: listen on {a} port {port}: {e} (retrying every second)"),
            Err(_) => {}
        }
    }
}

fn start_listener(shared: &Arc<Shared>, addr: SocketAddr) -> io::Result<Listener> {
    let udp = UdpSocket::bind(addr)?;
    let tcp = TcpListener::bind(addr)?;
    udp.set_read_timeout(Some(Duration::from_secs(1)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let tcp_addr = tcp.local_addr().ok();
    {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::Builder::new().name(format!("udp {addr}")).spawn(move || serve_udp(&shared, udp, &stop))?;
    }
    {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::Builder::new().name(format!("tcp {addr}")).spawn(move || serve_tcp(&shared, tcp, &stop))?;
    }
    Ok(Listener { stop, tcp_addr })
}

fn serve_udp(shared: &Arc<Shared>, sock: UdpSocket, stop: &AtomicBool) {
    let sock = Arc::new(sock);
    let mut buf = [0u8; wire::UDP_MAX];
    while !stop.load(Ordering::SeqCst) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => continue,
            Err(e) => {
                eprintln!("berth-dns: udp receive: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let local = sock.local_addr().map(|a| a.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let msg = buf[..n].to_vec();
        match answer_local(shared, &msg, peer.ip(), local, wire::UDP_MAX) {
            Step::Reply(r) => {
                let _ = sock.send_to(&r, peer);
            }
            Step::None => {}
            Step::Forward(q, ups) => {
                let Some(_slot) = Slot::take(shared, false) else {
                    let _ = sock.send_to(&wire::reply(&q, wire::RCODE_SERVFAIL, &[], wire::UDP_MAX), peer);
                    continue;
                };
                let sock = sock.clone();
                let spawned = std::thread::Builder::new().name("forward".into()).spawn(move || {
                    let slot = _slot;
                    let r = forward(&slot.shared, &q, &msg, &ups);
                    let _ = sock.send_to(&r, peer);
                });
                if let Err(e) = spawned {
                    eprintln!("berth-dns: spawn: {e}");
                }
            }
        }
    }
}

fn serve_tcp(shared: &Arc<Shared>, listener: TcpListener, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let Some(slot) = Slot::take(shared, true) else { continue };
        let _ = std::thread::Builder::new().name("tcp conn".into()).spawn(move || {
            let _ = serve_tcp_conn(&slot.shared, conn);
        });
    }
}

fn serve_tcp_conn(shared: &Arc<Shared>, mut conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(TCP_IDLE))?;
    conn.set_write_timeout(Some(TCP_IDLE))?;
    let peer = conn.peer_addr()?.ip();
    let local = conn.local_addr()?.ip();
    loop {
        let mut len = [0u8; 2];
        conn.read_exact(&mut len)?;
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        conn.read_exact(&mut msg)?;
        let r = match answer_local(shared, &msg, peer, local, 65535) {
            Step::Reply(r) => r,
            Step::None => return Ok(()),
            Step::Forward(q, ups) => forward(shared, &q, &msg, &ups),
        };
        let mut out = Vec::with_capacity(r.len() + 2);
        out.extend_from_slice(&(r.len() as u16).to_be_bytes());
        out.extend_from_slice(&r);
        conn.write_all(&out)?;
    }
}

/// A counted place among `max` forwards or TCP connections; released on drop. Holds
/// the shared state so it can move into the thread that uses it.
struct Slot {
    shared: Arc<Shared>,
    tcp: bool,
}

impl Slot {
    fn take(shared: &Arc<Shared>, tcp: bool) -> Option<Slot> {
        let slot = Slot { shared: shared.clone(), tcp };
        let max = if tcp { MAX_TCP } else { MAX_FORWARDS };
        if slot.counter().fetch_add(1, Ordering::SeqCst) >= max {
            return None; // dropping `slot` gives the place back
        }
        Some(slot)
    }

    fn counter(&self) -> &AtomicUsize {
        if self.tcp {
            &self.shared.tcp
        } else {
            &self.shared.forwards
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter().fetch_sub(1, Ordering::SeqCst);
    }
}

enum Step {
    Reply(Vec<u8>),
    None,
    /// Not ours: ask these servers (never empty).
    Forward(Query, Vec<Upstream>),
}

/// Answers from the table what it can; says when the query must go upstream.
fn answer_local(shared: &Shared, msg: &[u8], peer: IpAddr, local: IpAddr, max: usize) -> Step {
    let q = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(ParseError::Drop) => return Step::None,
        Err(ParseError::Format(id)) => return Step::Reply(wire::error_reply(id, wire::RCODE_FORMERR)),
    };
    if q.opcode != 0 {
        return Step::Reply(wire::reply(&q, wire::RCODE_NOTIMP, &[], max));
    }
    let view = shared.view();
    let (peer, local) = (unmap(peer), unmap(local));
    match view.table.lookup(peer, local, &q.name, q.qtype, &view.search) {
        Lookup::Addrs(a) => Step::Reply(wire::reply(&q, wire::RCODE_NOERROR, &a.into_iter().map(Answer::Addr).collect::<Vec<_>>(), max)),
        Lookup::Names(n) => Step::Reply(wire::reply(&q, wire::RCODE_NOERROR, &n.into_iter().map(Answer::Ptr).collect::<Vec<_>>(), max)),
        Lookup::NoSuchName => Step::Reply(wire::reply(&q, wire::RCODE_NXDOMAIN, &[], max)),
        Lookup::Forward => {
            // The asker's own `--dns` servers, else the host's.
            let ups = view.table.upstreams(peer, &view.upstreams);
            if ups.is_empty() {
                Step::Reply(wire::reply(&q, wire::RCODE_SERVFAIL, &[], max))
            } else {
                Step::Forward(q, ups)
            }
        }
    }
}

fn unmap(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

/// Asks `ups` (chosen by [`Table::upstreams`]) in order; SERVFAIL when none answers.
fn forward(shared: &Shared, q: &Query, msg: &[u8], ups: &[Upstream]) -> Vec<u8> {
    for up in ups {
        if let Ok(r) = ask(up, shared.upstream_port, q.id, msg) {
            return r;
        }
    }
    wire::reply(q, wire::RCODE_SERVFAIL, &[], wire::UDP_MAX)
}

fn ask(up: &Upstream, port: u16, id: u16, msg: &[u8]) -> io::Result<Vec<u8>> {
    let to = SocketAddr::new(up.addr, port);
    let bind: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = match &up.netns {
        None => UdpSocket::bind(bind)?,
        Some(ns) => socket_in(ns, bind)?,
    };
    s.connect(to)?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    s.send(msg)?;
    let mut buf = vec![0u8; FORWARD_MAX];
    loop {
        let n = s.recv(&mut buf)?;
        if wire::message_id(&buf[..n]) == Some(id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// A UDP socket bound to `bind` inside the network namespace at `netns` (a container's
/// netns file), for a server on the container's own loopback. A socket stays in the
/// namespace it was made in, so only a short-lived thread of ours changes namespace.
fn socket_in(netns: &Path, bind: SocketAddr) -> io::Result<UdpSocket> {
    let f = std::fs::File::open(netns)?;
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("netns socket".into())
            .spawn_scoped(s, move || {
                berth_sys::process::setns(f.as_fd(), libc::CLONE_NEWNET)?;
                UdpSocket::bind(bind)
            })?
            .join()
            .map_err(|_| io::Error::other("netns thread panicked"))?
    })
}
