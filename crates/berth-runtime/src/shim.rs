//! The `berth-shim` monitor: one single-threaded process per container, started by
//! berthd with the spec path. It sets up (setsid, subreaper, cgroup, stdio, socket),
//! clones the init into new namespaces ([`crate::init`]), reports `ready <pid>` or
//! `error <msg>` on stdout, then runs a poll(2) loop serving the socket protocol of
//! docs/process-tree.md, relaying output to the json-file log and attach clients,
//! feeding stdin, and reaping children. When the init exits it records exit.json,
//! answers waiters, closes attach streams, removes cgroup and socket, and exits.

use crate::cgroup::Cgroup;
use crate::frame;
use crate::jsonlog::{LineSplitter, LogFile};
use crate::spec::{ExecSpec, LogFormat, Rlimit, RunSpec};
use crate::{exec, init, start_error_message, ExitInfo};
use berth_api::time as timefmt;
use berth_sys::libc;
use berth_sys::poll::{PollFd, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};
use berth_sys::process::{clone_process, CloneResult};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Stop reading container output while any attach client has this much unsent.
const HIGH_WATER: usize = 1 << 20;
/// After the init exits, how long to wait for output EOF (holders outside the pid ns).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Reads of each output still done at exit, after the drain deadline.
const FINAL_READS: usize = 64;
/// How long an exec may take from fork to execve before the shim gives up on it.
const EXEC_SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Frame stream type carrying an exec's exit code (ASCII decimal) as its last frame.
pub const EXIT_STREAM: u8 = 3;

/// Entry point of the `berth-shim` binary; returns the process exit code.
pub fn main(mut args: impl Iterator<Item = OsString>) -> i32 {
    let Some(spec_path) = args.nth(1) else {
        eprintln!("usage: berth-shim <spec.json>");
        return 2;
    };
    let shim = match Shim::start(Path::new(&spec_path)) {
        Ok(s) => s,
        Err(msg) => {
            let line = format!("error {}\n", msg.replace('\n', " "));
            let _ = io::stdout().write_all(line.as_bytes());
            let _ = io::stdout().flush();
            return 1;
        }
    };
    let told = writeln!(io::stdout(), "ready {}", shim.pid).and_then(|_| io::stdout().flush());
    if let Err(e) = told {
        // berthd died before it learnt of this start (EPIPE): no one will ever send
        // `go`, and the restarted daemon may not see the socket yet. Undo the start
        // rather than leave an init, a cgroup and a socket behind.
        eprintln!("berth-shim: berthd went away before the start was reported ({e}); undoing it");
        shim.abandon();
        return 1;
    }
    // Close berthd's pipe (it reads up to EOF-or-line); fd 1 now points at /dev/null.
    let _ = berth_sys::fd::dup2(shim.devnull.as_fd(), 1);
    shim.run()
}

struct Output {
    file: File,
    stream: u8,
    name: &'static str,
    split: LineSplitter,
    open: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pending,
    Attach { stdin: bool, stdout: bool, stderr: bool },
    Waiter,
    /// The connection of the exec with this id: output frames out, stdin in.
    Exec(u64),
    /// Answered: close once `out` is flushed.
    Closing,
}

/// Where container (or exec) stdin goes: a pipe write end or a dup of the pty master.
#[derive(Default)]
struct Stdin {
    file: Option<File>,
    buf: Vec<u8>,
    close_pending: bool,
    pty: bool,
}

impl Stdin {
    fn feed(&mut self, data: &[u8]) {
        if self.file.is_none() || self.close_pending || data.is_empty() {
            return;
        }
        self.buf.extend_from_slice(data);
        self.flush();
    }

    /// Stdin EOF: closes the pipe once drained. A pty is left open, as Docker does
    /// (`CloseStdin && !TTY`): a TTY client that goes away — the detach keys, a closed
    /// terminal — must not end the session's shell; Ctrl-D typed by the user reaches
    /// the line discipline as a byte instead.
    fn close(&mut self) {
        if self.pty {
            return;
        }
        self.close_pending = true;
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(s) = &mut self.file {
            while !self.buf.is_empty() {
                match s.write(&self.buf) {
                    Ok(n) => {
                        self.buf.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // Reader gone (EPIPE): drop stdin altogether.
                        self.buf.clear();
                        self.file = None;
                        return;
                    }
                }
            }
        }
        if self.close_pending && self.buf.is_empty() {
            self.file = None;
        }
    }

    fn room(&self) -> bool {
        self.buf.len() < HIGH_WATER
    }
}

/// One `docker exec` process and its connection (the client with `Kind::Exec(id)`).
struct Exec {
    id: u64,
    pid: i32,
    outputs: Vec<Output>,
    stdin: Stdin,
    pty: Option<File>,
    exit: Option<i32>,
    deadline: Option<Instant>,
}

struct Client {
    sock: UnixStream,
    kind: Kind,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    rd_open: bool,
    dead: bool,
}

#[derive(Clone, Copy)]
enum Tag {
    Sig,
    Listen,
    Out(usize),
    Stdin,
    Client(usize),
    ExecOut(usize, usize),
    ExecStdin(usize),
}

/// What [`Shim::start`] set up before the init existed, handed to [`Shim::ready`].
/// Marks a shim start error as a host port that could not be reserved.
pub const PORT_ERROR_PREFIX: &str = "port reservation: ";

struct Started {
    ports: Vec<OwnedFd>,
    devnull: File,
    sigfd: OwnedFd,
    listener: UnixListener,
    outputs: Vec<Output>,
    stdin: Option<File>,
    log: Option<LogFile>,
    cgroup: Option<Cgroup>,
    rlimits: Vec<Rlimit>,
}

struct Shim {
    /// Reserved host ports (see `RunSpec::ports`), closed when the shim ends.
    _ports: Vec<OwnedFd>,
    spec: RunSpec,
    pid: i32,
    devnull: File,
    sigfd: OwnedFd,
    listener: UnixListener,
    outputs: Vec<Output>,
    stdin: Stdin,
    pty: Option<File>,
    clients: Vec<Client>,
    log: Option<LogFile>,
    logbuf: Vec<u8>,
    cgroup: Option<Cgroup>,
    rlimits: Vec<Rlimit>,
    execs: Vec<Exec>,
    next_exec: u64,
    sync: Option<OwnedFd>,
    /// Set when an OCI runtime created the container (`RunSpec::runtime`).
    runc: Option<crate::runc::Runc>,
    go: Option<Result<(), String>>,
    exit: Option<ExitInfo>,
    drain_deadline: Option<Instant>,
    buf: Vec<u8>,
}

fn errno(what: &str, e: io::Error) -> String {
    format!("{what}: {}", berth_sys::errno_text(&e))
}

fn nonblock(fd: impl AsFd) -> Result<(), String> {
    berth_sys::fd::set_nonblocking(fd.as_fd(), true).map_err(|e| errno("set nonblocking", e))
}

impl Shim {
    fn start(spec_path: &Path) -> Result<Shim, String> {
        let raw = std::fs::read(spec_path).map_err(|e| errno(&format!("read spec {}", spec_path.display()), e))?;
        let spec: RunSpec = serde_json::from_slice(&raw).map_err(|e| format!("parse spec: {e}"))?;
        drop(raw);
        let _ = berth_sys::process::setsid(); // EPERM if already a group leader: fine
        berth_sys::process::set_child_subreaper().map_err(|e| errno("set subreaper", e))?;
        berth_sys::signal::block(&[libc::SIGCHLD]).map_err(|e| errno("block SIGCHLD", e))?;
        let sigfd = berth_sys::signal::signalfd(&[libc::SIGCHLD]).map_err(|e| errno("signalfd", e))?;
        let devnull = File::options().read(true).write(true).open("/dev/null").map_err(|e| errno("open /dev/null", e))?;

        // Published ports are reserved first, in the host's network namespace, and held
        // for the shim's life: they outlive a berthd restart, not the container.
        let mut ports = Vec::new();
        for p in &spec.ports {
            let (fd, _) = berth_sys::net::reserve_port(&p.proto, p.ip, p.port).map_err(|e| {
                let fam = if p.ip.is_ipv4() { "4" } else { "6" };
                let addr = std::net::SocketAddr::new(p.ip, p.port);
                format!("{PORT_ERROR_PREFIX}listen {}{fam} {addr}: bind: {}", p.proto, berth_sys::errno_text(&e))
            })?;
            ports.push(fd);
        }
        let cur_hard = |r| berth_sys::process::getrlimit(r).map(|x| x.1).unwrap_or(berth_sys::process::RLIM_INFINITY);
        let (rlimits, warnings) = crate::spec::plan_ulimits(&spec.ulimits, cur_hard)?;
        for w in warnings {
            eprintln!("berth-shim: warning: {w}");
        }
        let cgroup = Cgroup::from_spec(&spec.cgroup);
        // With an OCI runtime, the runtime creates the cgroup (same path) and its limits.
        if let Some(cg) = cgroup.as_ref().filter(|_| spec.runtime.is_none()) {
            cg.create()
                .and_then(|_| cg.apply(&spec.cgroup))
                .and_then(|_| crate::security::apply_devices(cg, &spec.security))
                .map_err(|e| {
                    let _ = cg.remove();
                    format!("cgroup: {e}")
                })?;
        }
        let fail = |cg: &Option<Cgroup>, msg: String| {
            if let Some(cg) = cg {
                let _ = cg.remove();
            }
            msg
        };

        // stdio: pipes (the shim keeps the read ends and the stdin write end).
        let mut outputs = Vec::new();
        let mut stdin = None;
        let mut child_io = None;
        if !spec.tty {
            let (out_r, out_w) = berth_sys::fd::pipe().map_err(|e| fail(&cgroup, errno("pipe", e)))?;
            let (err_r, err_w) = berth_sys::fd::pipe().map_err(|e| fail(&cgroup, errno("pipe", e)))?;
            let child_stdin: OwnedFd = if spec.open_stdin {
                let (r, w) = berth_sys::fd::pipe().map_err(|e| fail(&cgroup, errno("pipe", e)))?;
                nonblock(&w)?;
                stdin = Some(File::from(w));
                r
            } else {
                devnull.try_clone().map_err(|e| fail(&cgroup, errno("dup", e)))?.into()
            };
            nonblock(&out_r)?;
            nonblock(&err_r)?;
            outputs.push(Output { file: out_r.into(), stream: frame::STDOUT, name: "stdout", split: LineSplitter::default(), open: true });
            outputs.push(Output { file: err_r.into(), stream: frame::STDERR, name: "stderr", split: LineSplitter::default(), open: true });
            child_io = Some(init::PipeIo { stdin: child_stdin, stdout: out_w, stderr: err_w });
        }

        let listener = bind(&spec.socket_path).map_err(|e| fail(&cgroup, e))?;
        let log = if spec.log_path.as_os_str().is_empty() {
            None
        } else {
            Some(
                open_log(&spec).map_err(|e| fail(&cgroup, errno(&format!("open log {}", spec.log_path.display()), e)))?,
            )
        };
        if let Some(bin) = &spec.runtime {
            let runc = crate::runc::Runc::new(&spec, bin);
            let (pid, master) = runc.create(&spec, child_io).map_err(|m| {
                let _ = std::fs::remove_file(&spec.socket_path);
                fail(&cgroup, m)
            })?;
            let sync = None;
            return Shim::ready(spec, pid, master, sync, Some(runc), Started { ports, devnull, sigfd, listener, outputs, stdin, log, cgroup, rlimits });
        }
        let (sync, child_sync) = berth_sys::fd::seqpacket_pair().map_err(|e| fail(&cgroup, errno("socketpair", e)))?;

        let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        if spec.network == crate::spec::NetMode::Private {
            flags |= libc::CLONE_NEWNET;
        }
        let pid = match clone_process(flags) {
            Err(e) => {
                let _ = std::fs::remove_file(&spec.socket_path);
                return Err(fail(&cgroup, errno("clone", e)));
            }
            Ok(CloneResult::Child) => {
                drop(sync);
                drop(stdin);
                init::run(&spec, &rlimits, child_sync, child_io)
            }
            Ok(CloneResult::Parent(pid)) => pid,
        };
        drop(child_sync);
        drop(child_io);

        let abort = |msg: String| {
            let _ = berth_sys::process::kill(pid, libc::SIGKILL);
            let _ = berth_sys::process::waitpid_blocking(pid);
            let _ = std::fs::remove_file(&spec.socket_path);
            fail(&cgroup, msg)
        };
        if let Some(cg) = &cgroup {
            if let Err(e) = cg.add_pid(pid) {
                return Err(abort(format!("cgroup: {e}")));
            }
        }
        let mut msg = vec![0u8; 8192];
        let (n, master) = match berth_sys::fd::recv_msg(sync.as_fd(), &mut msg) {
            Ok(x) => x,
            Err(e) => return Err(abort(errno("read from init", e))),
        };
        match msg.first() {
            Some(b'R') if n >= 1 => {}
            Some(b'E') if n >= 1 => {
                let text = String::from_utf8_lossy(&msg[1..n]).into_owned();
                return Err(abort(start_error_message(&text)));
            }
            _ => return Err(abort(start_error_message("container init exited during setup"))),
        }
        if spec.tty && master.is_none() {
            return Err(abort(start_error_message("init did not send the pty master")));
        }
        let master = master.map(File::from);
        Shim::ready(spec, pid, master, Some(sync), None, Started { ports, devnull, sigfd, listener, outputs, stdin, log, cgroup, rlimits })
    }

    /// The init exists and waits for `go`: wires the pty master (TTY) into the relay.
    fn ready(
        spec: RunSpec,
        pid: i32,
        master: Option<File>,
        sync: Option<OwnedFd>,
        runc: Option<crate::runc::Runc>,
        st: Started,
    ) -> Result<Shim, String> {
        let Started { ports, devnull, sigfd, listener, mut outputs, mut stdin, log, cgroup, rlimits } = st;
        let abort = |msg: String| {
            let _ = berth_sys::process::kill(pid, libc::SIGKILL);
            let _ = berth_sys::process::waitpid_blocking(pid);
            if let Some(r) = &runc {
                r.delete();
            }
            let _ = std::fs::remove_file(&spec.socket_path);
            if let Some(cg) = &cgroup {
                remove_cgroup_reaping(cg);
            }
            msg
        };
        let mut pty = None;
        if let Some(master) = master.filter(|_| spec.tty) {
            let r = nonblock(&master).and_then(|_| {
                let dup = master.try_clone().map_err(|e| errno("dup pty", e))?;
                if spec.open_stdin {
                    stdin = Some(master.try_clone().map_err(|e| errno("dup pty", e))?);
                }
                Ok(dup)
            });
            let dup = r.map_err(abort)?;
            outputs.push(Output { file: dup, stream: frame::STDOUT, name: "stdout", split: LineSplitter::default(), open: true });
            pty = Some(master);
        }
        let stdin = Stdin { file: stdin, pty: pty.is_some(), ..Default::default() };
        Ok(Shim {
            _ports: ports,
            spec,
            pid,
            devnull,
            sigfd,
            listener,
            outputs,
            stdin,
            pty,
            clients: Vec::new(),
            log,
            logbuf: Vec::new(),
            cgroup,
            rlimits,
            execs: Vec::new(),
            next_exec: 1,
            sync,
            runc,
            go: None,
            exit: None,
            drain_deadline: None,
            buf: vec![0u8; 32 * 1024],
        })
    }

    /// Kills the (not yet released) init and removes what the start made.
    fn abandon(self) {
        let _ = berth_sys::process::kill(self.pid, libc::SIGKILL);
        let _ = berth_sys::process::waitpid_blocking(self.pid);
        if let Some(r) = &self.runc {
            r.delete();
        }
        let _ = std::fs::remove_file(&self.spec.socket_path);
        if let Some(cg) = &self.cgroup {
            remove_cgroup_reaping(cg);
        }
    }

    fn run(mut self) -> i32 {
        let mut pfds: Vec<PollFd> = Vec::with_capacity(16);
        let mut tags: Vec<Tag> = Vec::with_capacity(16);
        loop {
            let outputs_done = self.outputs.iter().all(|o| !o.open) && self.execs.is_empty();
            if self.exit.is_some() && (outputs_done || self.drain_deadline.is_some_and(|d| Instant::now() >= d)) {
                break;
            }
            pfds.clear();
            tags.clear();
            pfds.push(PollFd::new(self.sigfd.as_raw_fd(), POLLIN));
            tags.push(Tag::Sig);
            pfds.push(PollFd::new(self.listener.as_raw_fd(), POLLIN));
            tags.push(Tag::Listen);
            let pressure = self.clients.iter().any(|c| matches!(c.kind, Kind::Attach { .. }) && c.out.len() > HIGH_WATER);
            if !pressure {
                for (i, o) in self.outputs.iter().enumerate() {
                    if o.open {
                        pfds.push(PollFd::new(o.file.as_raw_fd(), POLLIN));
                        tags.push(Tag::Out(i));
                    }
                }
            }
            if let Some(s) = &self.stdin.file {
                if !self.stdin.buf.is_empty() {
                    pfds.push(PollFd::new(s.as_raw_fd(), POLLOUT));
                    tags.push(Tag::Stdin);
                }
            }
            for (e, x) in self.execs.iter().enumerate() {
                let pressure = self.clients.iter().any(|c| c.kind == Kind::Exec(x.id) && c.out.len() > HIGH_WATER);
                for (i, o) in x.outputs.iter().enumerate() {
                    if o.open && !pressure {
                        pfds.push(PollFd::new(o.file.as_raw_fd(), POLLIN));
                        tags.push(Tag::ExecOut(e, i));
                    }
                }
                if let Some(s) = &x.stdin.file {
                    if !x.stdin.buf.is_empty() {
                        pfds.push(PollFd::new(s.as_raw_fd(), POLLOUT));
                        tags.push(Tag::ExecStdin(e));
                    }
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                let room = match c.kind {
                    Kind::Attach { stdin: true, .. } => self.stdin.room(),
                    Kind::Exec(id) => !self.execs.iter().any(|x| x.id == id && !x.stdin.room()),
                    _ => true,
                };
                let mut ev = 0;
                if c.rd_open && room {
                    ev |= POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= POLLOUT;
                }
                pfds.push(PollFd::new(c.sock.as_raw_fd(), ev));
                tags.push(Tag::Client(i));
            }
            let deadline = self.execs.iter().filter_map(|x| x.deadline).chain(self.drain_deadline).min();
            let timeout = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32 + 1,
                None => -1,
            };
            match berth_sys::poll::poll(&mut pfds, timeout) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("berth-shim: poll: {e}");
                    break;
                }
            }
            for (pfd, tag) in pfds.iter().zip(tags.iter()) {
                let rev = pfd.revents();
                if rev == 0 {
                    continue;
                }
                match *tag {
                    Tag::Sig => self.reap(),
                    Tag::Listen => self.accept(),
                    Tag::Out(i) => {
                        self.read_output(i);
                    }
                    Tag::Stdin => self.stdin.flush(),
                    Tag::ExecOut(e, i) => self.read_exec_output(e, i),
                    Tag::ExecStdin(e) => self.execs[e].stdin.flush(),
                    Tag::Client(i) => {
                        if rev & (POLLERR | POLLNVAL) != 0 {
                            self.clients[i].dead = true;
                            continue;
                        }
                        if rev & POLLOUT != 0 {
                            flush_client(&mut self.clients[i]);
                        }
                        if rev & (POLLIN | POLLHUP) != 0 {
                            if self.clients[i].rd_open {
                                self.read_client(i);
                            } else if rev & POLLHUP != 0 {
                                self.clients[i].dead = true;
                            }
                        }
                    }
                }
            }
            self.finish_execs(false);
            self.clients.retain(|c| !(c.dead || c.kind == Kind::Closing && c.out.is_empty()));
        }
        self.finish()
    }

    fn reap(&mut self) {
        berth_sys::signal::drain_signalfd(self.sigfd.as_fd());
        while let Ok(Some((pid, status))) = berth_sys::process::waitpid_nohang(-1) {
            if pid == self.pid && self.exit.is_none() {
                let oom = self.cgroup.as_ref().is_some_and(|c| c.oom_killed());
                self.exit = Some(ExitInfo {
                    exit_code: status.docker_code(),
                    oom_killed: oom,
                    finished_at: timefmt::now_rfc3339_nano(),
                });
                self.drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
            } else if let Some(x) = self.execs.iter_mut().find(|x| x.pid == pid && x.exit.is_none()) {
                x.exit = Some(status.docker_code());
                x.deadline = Some(Instant::now() + DRAIN_TIMEOUT);
            }
            // Anything else: an exec's intermediate process, or an orphan.
        }
    }

    /// Ends execs whose process exited and whose output is drained (or whose drain
    /// deadline passed; `all` at shim exit): the last frame carries the exit code.
    fn finish_execs(&mut self, all: bool) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.execs.len() {
            let x = &self.execs[i];
            let drained = x.outputs.iter().all(|o| !o.open) || x.deadline.is_some_and(|d| now >= d);
            if !(all || x.exit.is_some() && drained) {
                i += 1;
                continue;
            }
            let x = self.execs.swap_remove(i);
            // Killed with the container's pid namespace when never reaped.
            let code = x.exit.unwrap_or(128 + libc::SIGKILL);
            if let Some(c) = self.clients.iter_mut().find(|c| c.kind == Kind::Exec(x.id)) {
                frame::encode_into(&mut c.out, EXIT_STREAM, code.to_string().as_bytes());
                c.kind = Kind::Closing;
                flush_client(c);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock,
                        kind: Kind::Pending,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        rd_open: true,
                        dead: false,
                    });
                    // Read the request now: an `attach` sent before `go` must be
                    // registered before the init can produce output.
                    let i = self.clients.len() - 1;
                    self.read_client(i);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    /// Stdin for client `i`'s bytes: the init's (attach with stdin) or its exec's.
    fn stdin_of(&mut self, kind: Kind) -> Option<&mut Stdin> {
        match kind {
            Kind::Attach { stdin: true, .. } => Some(&mut self.stdin),
            Kind::Exec(id) => self.execs.iter_mut().find(|x| x.id == id).map(|x| &mut x.stdin),
            _ => None,
        }
    }

    fn read_client(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
            let n = match c.sock.read(&mut self.buf) {
                Ok(0) => {
                    c.rd_open = false;
                    let kind = c.kind;
                    if kind == Kind::Pending {
                        c.dead = true;
                    }
                    let close = matches!(kind, Kind::Exec(_)) || self.spec.stdin_once;
                    if close {
                        if let Some(s) = self.stdin_of(kind) {
                            s.close();
                        }
                    }
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    c.dead = true;
                    return;
                }
            };
            match c.kind {
                Kind::Pending => {
                    c.inbuf.extend_from_slice(&self.buf[..n]);
                    if let Some(pos) = c.inbuf.iter().position(|&b| b == b'\n') {
                        let line = String::from_utf8_lossy(&c.inbuf[..pos]).trim().to_string();
                        let rest = c.inbuf.split_off(pos + 1);
                        c.inbuf = Vec::new();
                        self.request(i, &line);
                        let kind = self.clients[i].kind;
                        if let Some(s) = self.stdin_of(kind) {
                            s.feed(&rest);
                        }
                    } else if c.inbuf.len() > 1 << 20 {
                        c.dead = true;
                        return;
                    }
                }
                kind @ (Kind::Attach { stdin: true, .. } | Kind::Exec(_)) => {
                    let data = self.buf[..n].to_vec();
                    if let Some(s) = self.stdin_of(kind) {
                        s.feed(&data);
                        if !s.room() {
                            return;
                        }
                    }
                }
                _ => {} // input from non-stdin clients is ignored
            }
        }
    }

    fn answer(&mut self, i: usize, text: &str) {
        let c = &mut self.clients[i];
        c.out.extend_from_slice(text.as_bytes());
        c.kind = Kind::Closing;
        flush_client(c);
    }

    fn request(&mut self, i: usize, line: &str) {
        if let Some(json) = line.strip_prefix("exec ") {
            match self.start_exec(json) {
                Ok((id, pid)) => {
                    let c = &mut self.clients[i];
                    c.out.extend_from_slice(format!("ok {pid}\n").as_bytes());
                    c.kind = Kind::Exec(id);
                    flush_client(c);
                }
                Err(m) => self.answer(i, &format!("error {}\n", m.replace('\n', " "))),
            }
            return;
        }
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let nums: Vec<i64> = words.map(|w| w.parse().unwrap_or(-1)).collect();
        match (verb, nums.as_slice()) {
            ("go", []) => {
                let r = self.release();
                match r {
                    Ok(()) => self.answer(i, "ok\n"),
                    Err(m) => self.answer(i, &format!("error {}\n", m.replace('\n', " "))),
                }
            }
            ("attach", [a, b, c]) => {
                // Without container stdin, input is drained and dropped.
                let stdin = *a == 1 && self.stdin.file.is_some();
                self.clients[i].kind = Kind::Attach { stdin, stdout: *b == 1, stderr: *c == 1 };
            }
            ("wait", []) => match &self.exit {
                Some(x) => {
                    let t = wait_line(x);
                    self.answer(i, &t)
                }
                None => self.clients[i].kind = Kind::Waiter,
            },
            ("kill", [sig]) => {
                if self.exit.is_some() {
                    let t = format!("error container {} is not running\n", self.spec.id);
                    self.answer(i, &t);
                } else {
                    match berth_sys::process::kill(self.pid, *sig as i32) {
                        Ok(()) => self.answer(i, "ok\n"),
                        Err(e) => self.answer(i, &format!("error {}\n", errno("kill", e))),
                    }
                }
            }
            ("resize", [rows, cols]) => {
                let r = self.pty.as_ref().map(|p| berth_sys::pty::set_winsize(p.as_fd(), *rows as u16, *cols as u16));
                match r {
                    Some(Err(e)) => self.answer(i, &format!("error {}\n", errno("resize", e))),
                    _ => self.answer(i, "ok\n"),
                }
            }
            ("resize", [rows, cols, pid]) => {
                let Some(x) = self.execs.iter().find(|x| i64::from(x.pid) == *pid) else {
                    self.answer(i, &format!("error no such exec process {pid}\n"));
                    return;
                };
                let r = x.pty.as_ref().map(|p| berth_sys::pty::set_winsize(p.as_fd(), *rows as u16, *cols as u16));
                match r {
                    Some(Err(e)) => self.answer(i, &format!("error {}\n", errno("resize", e))),
                    _ => self.answer(i, "ok\n"),
                }
            }
            _ => self.answer(i, &format!("error unknown request {line:?}\n")),
        }
    }

    /// `exec <json>`: forks the exec (see [`crate::exec`]) and waits, blocking but
    /// bounded, until it has exec'd or failed. Returns (exec id, host pid).
    fn start_exec(&mut self, json: &str) -> Result<(u64, i32), String> {
        let spec: ExecSpec = serde_json::from_str(json).map_err(|e| format!("invalid exec spec: {e}"))?;
        if self.exit.is_some() || !matches!(self.go, Some(Ok(()))) {
            return Err(format!("container {} is not running", self.spec.id));
        }
        if self.cgroup.as_ref().is_some_and(|c| c.is_frozen()) {
            return Err(format!("Container {} is paused, unpause the container before exec", self.spec.id));
        }
        if spec.args.is_empty() {
            return Err("No exec command specified".into());
        }
        let mut outputs = Vec::new();
        let mut stdin = Stdin::default();
        let mut child_io = None;
        if !spec.tty {
            let (out_r, out_w) = berth_sys::fd::pipe().map_err(|e| errno("pipe", e))?;
            let (err_r, err_w) = berth_sys::fd::pipe().map_err(|e| errno("pipe", e))?;
            let child_stdin: OwnedFd = if spec.open_stdin {
                let (r, w) = berth_sys::fd::pipe().map_err(|e| errno("pipe", e))?;
                nonblock(&w)?;
                stdin.file = Some(File::from(w));
                r
            } else {
                self.devnull.try_clone().map_err(|e| errno("dup", e))?.into()
            };
            nonblock(&out_r)?;
            nonblock(&err_r)?;
            outputs.push(Output { file: out_r.into(), stream: frame::STDOUT, name: "stdout", split: LineSplitter::default(), open: true });
            outputs.push(Output { file: err_r.into(), stream: frame::STDERR, name: "stderr", split: LineSplitter::default(), open: true });
            child_io = Some(init::PipeIo { stdin: child_stdin, stdout: out_w, stderr: err_w });
        }
        let (sync, child_sync) = berth_sys::fd::seqpacket_pair().map_err(|e| errno("socketpair", e))?;
        match clone_process(0).map_err(|e| errno("fork", e))? {
            CloneResult::Child => {
                drop(sync);
                let c = exec::Container { init_pid: self.pid, spec: &self.spec, cgroup: self.cgroup.as_ref(), rlimits: &self.rlimits };
                exec::run(&c, &spec, child_sync, child_io)
            }
            CloneResult::Parent(_) => {}
        }
        drop(child_sync);
        drop(child_io);
        let _ = berth_sys::fd::set_recv_timeout(sync.as_fd(), EXEC_SETUP_TIMEOUT);
        // Messages until EOF: `P<pid>` (intermediate), `R` (+ pty master) and `E<msg>`.
        let (mut pid, mut ready, mut failed, mut master) = (None, false, None, None);
        let mut msg = vec![0u8; 8192];
        loop {
            match berth_sys::fd::recv_msg(sync.as_fd(), &mut msg) {
                Ok((0, _)) => break,
                Ok((n, fd)) => match msg[0] {
                    b'P' => pid = String::from_utf8_lossy(&msg[1..n]).parse::<i32>().ok(),
                    b'R' => {
                        ready = true;
                        master = fd;
                    }
                    b'E' => failed = Some(String::from_utf8_lossy(&msg[1..n]).into_owned()),
                    _ => {}
                },
                Err(e) => {
                    if let Some(p) = pid {
                        let _ = berth_sys::process::kill(p, libc::SIGKILL);
                    }
                    return Err(errno("exec setup", e));
                }
            }
        }
        if let Some(m) = failed {
            return Err(exec::exec_error_message(&m));
        }
        let (Some(pid), true) = (pid, ready) else {
            return Err(exec::exec_error_message("exec process exited during setup"));
        };
        let mut pty = None;
        if spec.tty {
            let Some(master) = master else {
                let _ = berth_sys::process::kill(pid, libc::SIGKILL);
                return Err(exec::exec_error_message("exec did not send the pty master"));
            };
            let master = File::from(master);
            nonblock(&master)?;
            let dup = master.try_clone().map_err(|e| errno("dup pty", e))?;
            if spec.open_stdin {
                stdin.file = Some(master.try_clone().map_err(|e| errno("dup pty", e))?);
                stdin.pty = true;
            }
            outputs.push(Output { file: dup, stream: frame::STDOUT, name: "stdout", split: LineSplitter::default(), open: true });
            pty = Some(master);
        }
        let id = self.next_exec;
        self.next_exec += 1;
        self.execs.push(Exec { id, pid, outputs, stdin, pty, exit: None, deadline: None });
        Ok((id, pid))
    }

    /// `go`: release the init and learn whether execve worked (EOF on the CLOEXEC sync
    /// socket) or failed (an `E` message).
    fn release(&mut self) -> Result<(), String> {
        if let Some(r) = &self.go {
            return r.clone();
        }
        if let Some(runc) = &self.runc {
            let r = match self.exit {
                Some(_) => Err(start_error_message("container init exited before start")),
                None => runc.start(),
            };
            self.go = Some(r.clone());
            return r;
        }
        let Some(sync) = self.sync.take() else { return Err("no init".into()) };
        let r = (|| {
            if self.exit.is_some() {
                return Err(start_error_message("container init exited before start"));
            }
            berth_sys::fd::send_msg(sync.as_fd(), b"G", None).map_err(|e| errno("release init", e))?;
            let mut msg = vec![0u8; 8192];
            match berth_sys::fd::recv_msg(sync.as_fd(), &mut msg) {
                Ok((0, _)) => Ok(()),
                Ok((n, _)) if msg[0] == b'E' => Err(start_error_message(&String::from_utf8_lossy(&msg[1..n]))),
                Ok(_) => Err(start_error_message("unexpected message from init")),
                Err(e) => Err(errno("read from init", e)),
            }
        })();
        self.go = Some(r.clone());
        r
    }

    /// One read of output `i` to the log and attach clients; false when nothing was read.
    fn read_output(&mut self, i: usize) -> bool {
        let o = &mut self.outputs[i];
        let Some(n) = read_some(&mut o.file, &mut self.buf, &mut o.open) else { return false };
        let data = &self.buf[..n];
        if let Some(log) = &mut self.log {
            let time = LogTime::now(self.spec.log_format);
            let (logbuf, name) = (&mut self.logbuf, o.name);
            o.split.push(data, |line| {
                time.encode(logbuf, line, name);
                log.push(logbuf);
            });
            log.flush();
        }
        let stream = o.stream;
        for c in &mut self.clients {
            if let Kind::Attach { stdout, stderr, .. } = c.kind {
                if (stream == frame::STDOUT && stdout) || (stream == frame::STDERR && stderr) {
                    frame::encode_into(&mut c.out, stream, data);
                    flush_client(c);
                }
            }
        }
        true
    }

    /// Exec output goes to the exec's connection only (never to the log).
    fn read_exec_output(&mut self, e: usize, i: usize) {
        let x = &mut self.execs[e];
        let o = &mut x.outputs[i];
        let Some(n) = read_some(&mut o.file, &mut self.buf, &mut o.open) else { return };
        if let Some(c) = self.clients.iter_mut().find(|c| c.kind == Kind::Exec(x.id)) {
            frame::encode_into(&mut c.out, o.stream, &self.buf[..n]);
            flush_client(c);
        }
    }

    fn finish(mut self) -> i32 {
        let exit = self.exit.clone().unwrap_or(ExitInfo {
            exit_code: 255,
            oom_killed: false,
            finished_at: timefmt::now_rfc3339_nano(),
        });
        // What the container wrote before the drain deadline and is still in the pipes
        // goes to the log before exit.json and the waiters hear of the exit (a bounded
        // number of reads: a leftover background process may write on).
        for i in 0..self.outputs.len() {
            for _ in 0..FINAL_READS {
                if !self.outputs[i].open || !self.read_output(i) {
                    break;
                }
            }
        }
        // Trailing partial lines.
        if let Some(log) = &mut self.log {
            let time = LogTime::now(self.spec.log_format);
            for o in &mut self.outputs {
                let (logbuf, name) = (&mut self.logbuf, o.name);
                o.split.flush(|line| {
                    time.encode(logbuf, line, name);
                    log.push(logbuf);
                });
            }
            log.flush();
        }
        if let Err(e) = write_exit(&self.spec.exit_path, &exit) {
            eprintln!("berth-shim: write {}: {e}", self.spec.exit_path.display());
        }
        let _ = std::fs::remove_file(&self.spec.socket_path);
        self.reap();
        self.finish_execs(true);
        let line = wait_line(&exit);
        self.stdin = Stdin::default();
        for c in &mut self.clients {
            if c.kind == Kind::Waiter {
                c.out.extend_from_slice(line.as_bytes());
            }
            if c.dead {
                continue;
            }
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = c.sock.write_all(&c.out);
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
        }
        self.clients.clear();
        if let Some(runc) = &self.runc {
            runc.delete();
        }
        if let Some(cg) = &self.cgroup {
            remove_cgroup_reaping(cg);
            if cg.dirs().iter().any(|d| d.exists()) {
                eprintln!("berth-shim: cgroup {} could not be removed", cg.rel_path().display());
            }
        }
        0
    }
}

/// Removes a cgroup whose init was just killed: processes the init left behind are
/// reparented to the shim (the subreaper) and keep the cgroup busy until reaped.
fn remove_cgroup_reaping(cg: &Cgroup) {
    for _ in 0..100 {
        while let Ok(Some(_)) = berth_sys::process::waitpid_nohang(-1) {}
        if cg.remove().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One non-blocking read of an output fd: `Some(n)` with data, `None` when nothing is
/// ready or at EOF (then `open` becomes false; EIO on a pty master = slave side gone).
fn read_some(f: &mut File, buf: &mut [u8], open: &mut bool) -> Option<usize> {
    loop {
        match f.read(buf) {
            Ok(0) => {
                *open = false;
                return None;
            }
            Ok(n) => return Some(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(_) => {
                *open = false;
                return None;
            }
        }
    }
}

fn wait_line(x: &ExitInfo) -> String {
    format!("exit {} {} {}\n", x.exit_code, u8::from(x.oom_killed), x.finished_at)
}

fn flush_client(c: &mut Client) {
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.dead = true;
                c.out.clear();
                return;
            }
        }
    }
}

fn bind(path: &Path) -> Result<UnixListener, String> {
    let _ = std::fs::remove_file(path);
    let l = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(d) = path.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            UnixListener::bind(path).map_err(|e| errno(&format!("listen {}", path.display()), e))?
        }
        Err(e) => return Err(errno(&format!("listen {}", path.display()), e)),
    };
    l.set_nonblocking(true).map_err(|e| errno("set nonblocking", e))?;
    Ok(l)
}

/// Root only, as every state file in the container's directory (Docker's 0600), and
/// durable: [`berth_sys::fs::write_atomic`].
fn write_exit(path: &Path, x: &ExitInfo) -> io::Result<()> {
    let data = serde_json::to_vec(x).map_err(io::Error::other)?;
    // Volatile: berthd records the exit in the container's record (synced); exit.json
    // only bridges a berthd that is down, and a machine crash ends the container anyway.
    berth_sys::fs::write_atomic_with(path, &data, 0o600, berth_sys::fs::Durability::Volatile)
        .map_err(|e| io::Error::new(e.source.kind(), e))
}

/// Opens the log file in the spec's format (`local` keeps its files in their own dir).
fn open_log(spec: &RunSpec) -> io::Result<LogFile> {
    if spec.log_format == LogFormat::Local {
        if let Some(dir) = spec.log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    Ok(LogFile::open(&spec.log_path, spec.log_max_size, spec.log_max_file)?.compressed(spec.log_compress))
}

/// The time stamp of one read of output, in the log format's own form.
enum LogTime {
    Json(String),
    Local(i64),
}

impl LogTime {
    fn now(format: LogFormat) -> LogTime {
        match format {
            LogFormat::JsonFile => LogTime::Json(timefmt::now_rfc3339_nano()),
            LogFormat::Local => {
                let (secs, nanos) = timefmt::now_unix();
                LogTime::Local(secs.saturating_mul(1_000_000_000).saturating_add(i64::from(nanos)))
            }
        }
    }

    /// Replaces `buf` with the encoded entry of `line`.
    fn encode(&self, buf: &mut Vec<u8>, line: &[u8], stream: &str) {
        buf.clear();
        match self {
            LogTime::Json(t) => crate::jsonlog::encode_entry(buf, line, stream, t),
            LogTime::Local(t) => crate::locallog::encode_entry(buf, line, stream, *t),
        }
    }
}
