//! The embedded DNS resolver (berth-dns) with real containers on user networks: a
//! redis server reached by container name and by `--network-alias`, names scoped to
//! their network, resolv.conf and /etc/hosts as Docker writes them, a container's
//! `--dns` servers used as the resolver's upstreams (not listed in its resolv.conf),
//! and names that keep resolving while berthd is killed and after it restarts.

use berth_e2e::{both, wait_until, Cli, Daemon, Run};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `redis-cli -h <host> ping` from a fresh container on `net`.
fn ping(d: &Daemon, cli: Cli, net: &str, host: &str) -> Run {
    d.cli(cli, &["run", "--rm", "--network", net, "redis", "redis-cli", "-h", host, "ping"])
}

/// Waits until the redis server named `host` on `net` answers PONG.
fn wait_pong(d: &Daemon, cli: Cli, net: &str, host: &str) {
    wait_until(Duration::from_secs(60), &format!("PONG from {host} on {net}"), || {
        let r = ping(d, cli, net, host);
        (r.code == 0 && r.out() == "PONG").then_some(())
    });
}

both!(fn redis_by_name_and_alias(d, cli) {
    d.cli(cli, &["network", "create", "app"]).ok();
    d.cli(cli, &["network", "create", "other"]).ok();
    d.cli(cli, &["run", "-d", "--network", "app", "--name", "db", "--network-alias", "cache", "redis"]).ok();
    wait_pong(&d, cli, "app", "db");
    let r = ping(&d, cli, "app", "cache").ok();
    assert_eq!(r.out(), "PONG");
    // By short id too, as Docker's resolver answers.
    let id = d.inspect("db")["Id"].as_str().unwrap_or_default().to_string();
    assert_eq!(ping(&d, cli, "app", &id[..12]).ok().out(), "PONG");

    // A container on another network does not resolve db.
    let r = d.cli(cli, &["run", "--rm", "--network", "other", "busybox", "nslookup", "db"]);
    assert_ne!(r.code, 0, "db must not resolve on another network: {r:?}");
    // Nor does one on the default bridge (Docker has no names there).
    let r = d.cli(cli, &["run", "--rm", "busybox", "nslookup", "db"]);
    assert_ne!(r.code, 0, "db must not resolve on the default bridge: {r:?}");

    // resolv.conf names the network's gateway; the default bridge keeps the host's.
    let gw = d.inspect("db")["NetworkSettings"]["Networks"]["app"]["Gateway"].as_str().unwrap_or_default().to_string();
    let conf = d.cli(cli, &["run", "--rm", "--network", "app", "busybox", "cat", "/etc/resolv.conf"]).ok();
    assert!(conf.out().lines().next() == Some(&format!("nameserver {gw}")), "{conf:?}");
    let bridge_conf = d.cli(cli, &["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]).ok();
    assert!(!bridge_conf.out().contains(&gw), "{bridge_conf:?}");

    // Connected later, to a second network: reachable there by name too.
    d.cli(cli, &["network", "connect", "--alias", "db2", "other", "db"]).ok();
    wait_pong(&d, cli, "other", "db2");
    d.cli(cli, &["network", "disconnect", "other", "db"]).ok();
    wait_until(Duration::from_secs(10), "db2 gone from other", || {
        let r = d.cli(cli, &["run", "--rm", "--network", "other", "busybox", "nslookup", "db2"]);
        (r.code != 0).then_some(())
    });
});

both!(fn hosts_file_and_dns_flags(d, cli) {
    d.cli(cli, &["network", "create", "app"]).ok();
    let hosts = d
        .cli(cli, &["run", "--rm", "--network", "app", "--hostname", "web", "--domainname", "example.com", "--add-host", "gw:host-gateway", "--add-host", "db.local:10.1.2.3", "busybox", "cat", "/etc/hosts"])
        .ok();
    let lines = hosts.lines();
    assert_eq!(lines[0], "127.0.0.1\tlocalhost", "{hosts:?}");
    assert!(lines.iter().any(|l| l == "10.1.2.3\tdb.local"), "{hosts:?}");
    assert!(lines.iter().any(|l| l.ends_with("\tgw") && !l.starts_with("127.")), "host-gateway resolved: {hosts:?}");
    let last = lines.last().cloned().unwrap_or_default();
    assert!(last.ends_with("\tweb.example.com web") && !last.starts_with("127."), "own address last: {hosts:?}");

    let conf = d
        .cli(cli, &["run", "--rm", "--dns", "10.9.9.9", "--dns-search", "corp.example", "--dns-option", "ndots:2", "busybox", "cat", "/etc/resolv.conf"])
        .ok();
    assert_eq!(conf.lines(), vec!["nameserver 10.9.9.9", "search corp.example", "options ndots:2"]);
    d.cli(cli, &["run", "--rm", "--add-host", "bad:nope", "busybox", "true"]).code(125).stderr_has("invalid IP address in add-host: \"nope\"");
});

both!(fn legacy_link_env_and_hosts(d, cli) {
    d.cli(cli, &["run", "-d", "--name", "db", "-e", "SECRET=s3", "redis"]).ok();
    let ip = d.inspect("db")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"].as_str().unwrap_or_default().to_string();
    let env = d.cli(cli, &["run", "--rm", "--link", "db:cache", "busybox", "env"]).ok();
    for want in [
        format!("CACHE_PORT=tcp://{ip}:6379"),
        format!("CACHE_PORT_6379_TCP_ADDR={ip}"),
        "CACHE_NAME=/".to_string(),
        "CACHE_ENV_SECRET=s3".to_string(),
    ] {
        assert!(env.out().contains(&want), "{want} in {env:?}");
    }
    let hosts = d.cli(cli, &["run", "--rm", "--link", "db:cache", "busybox", "cat", "/etc/hosts"]).ok();
    let hostname = d.inspect("db")["Config"]["Hostname"].as_str().unwrap_or_default().to_string();
    assert!(hosts.lines().iter().any(|l| *l == format!("{ip}\tcache {hostname} db")), "{hosts:?}");
});

/// `busybox nslookup db <gw>` run by the host's busybox inside the network namespace of
/// the container whose init is `pid`: no berthd involved.
fn nslookup_in(pid: &str, name: &str, gw: &str) -> Run {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/proc/{pid}/ns/net")).args(["busybox", "nslookup", name, gw]);
    berth_e2e::run_with_timeout(c, format!("nsenter --net=/proc/{pid}/ns/net busybox nslookup {name} {gw}"), Duration::from_secs(20))
}

/// Names keep resolving while berthd is dead (kill -9), and after it restarts.
#[test]
fn names_resolve_while_berthd_is_down() {
    let mut d = Daemon::start();
    d.berth(&["network", "create", "app"]).ok();
    d.berth(&["run", "-d", "--network", "app", "--name", "db", "redis"]).ok();
    d.berth(&["run", "-d", "--network", "app", "--name", "client", "busybox", "sleep", "600"]).ok();
    wait_pong(&d, Cli::Berth, "app", "db");
    let ep = d.inspect("db")["NetworkSettings"]["Networks"]["app"].clone();
    let (ip, gw) = (ep["IPAddress"].as_str().unwrap_or_default().to_string(), ep["Gateway"].as_str().unwrap_or_default().to_string());
    let pid = d.inspect("client")["State"]["Pid"].as_i64().unwrap_or_default().to_string();
    let r = nslookup_in(&pid, "db", &gw).ok();
    assert!(r.out().contains(&ip), "{r:?}");

    d.kill9();
    let r = nslookup_in(&pid, "db", &gw).ok();
    assert!(r.out().contains(&ip), "resolves while berthd is down: {r:?}");

    d.start_again();
    let r = nslookup_in(&pid, "db", &gw).ok();
    assert!(r.out().contains(&ip), "resolves after the restart: {r:?}");
    assert_eq!(ping(&d, Cli::Berth, "app", "db").ok().out(), "PONG");
    // One resolver per daemon, still the same process.
    let dns: Vec<(u32, String)> = berth_e2e::host_processes()
        .into_iter()
        .filter(|(_, c)| c.contains("berth-dns") && c.contains(&d.dir().to_string_lossy().to_string()))
        .collect();
    assert_eq!(dns.len(), 1, "{dns:?}");
}

/// An alias with dots (docker-py's `pingtarget.docker`, given at `network connect`)
/// resolves like any other name, also from a build's RUN step on that network.
#[test]
fn dotted_alias_resolves() {
    let d = Daemon::start();
    d.berth(&["network", "create", "dotnet"]).ok();
    d.berth(&["run", "-d", "--name", "tgt", "busybox", "top"]).ok();
    d.berth(&["network", "connect", "--alias", "pingtarget.docker", "dotnet", "tgt"]).ok();
    for cli in [Cli::Berth, Cli::Docker] {
        let r = wait_until(Duration::from_secs(20), "ping pingtarget.docker", || {
            let r = d.cli(cli, &["run", "--rm", "--network", "dotnet", "busybox", "ping", "-c1", "-W2", "pingtarget.docker"]);
            (r.code == 0).then_some(r)
        });
        assert!(r.out().contains("1 packets received"), "{r:?}");
    }
    let (mut c, _) = d.cli_command(Cli::Docker, &["build", "--network", "dotnet", "-t", "dotbuild", "-"]);
    c.env("DOCKER_BUILDKIT", "0");
    let script = b"FROM busybox\nRUN ping -c1 -W2 pingtarget.docker\n";
    let r = berth_e2e::run_with_input(c, "docker build --network dotnet -".into(), script, Duration::from_secs(120));
    assert_eq!(r.code, 0, "{r:?}");
}

/// A tiny DNS server for the tests: answers A queries for names ending in
/// `.berth.test` with `addr` (other names and types: no answer records) and records
/// every name asked, so a test can tell which server a query reached.
fn dns_double(sock: UdpSocket, addr: [u8; 4]) -> Arc<Mutex<Vec<String>>> {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 600];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            // The question's name: labels from byte 12 up to the zero byte.
            let (mut i, mut labels) = (12, Vec::new());
            while i < n && q[i] != 0 {
                let l = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[(i + 1).min(n)..(i + 1 + l).min(n)]).to_ascii_lowercase());
                i += 1 + l;
            }
            if i + 5 > n {
                continue;
            }
            let name = labels.join(".");
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let mut r = q[..i + 5].to_vec();
            r[2] |= 0x80;
            r[3] = 0x80;
            if qtype == 1 && name.ends_with(".berth.test") {
                r[7] = 1;
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&addr);
            }
            seen.lock().expect("lock").push(name);
            let _ = sock.send_to(&r, peer);
        }
    });
    asked
}

fn asked(d: &Mutex<Vec<String>>) -> Vec<String> {
    d.lock().expect("lock").clone()
}

/// `nslookup name` from a fresh busybox container on `net` with `extra` run flags.
fn nslookup(d: &Daemon, net: &str, extra: &[&str], name: &str) -> Run {
    let mut args = vec!["run", "--rm", "--network", net];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "nslookup", name]);
    d.berth(&args)
}

/// A container's `--dns` servers on a user network are the resolver's upstreams, as
/// Docker's embedded DNS uses them: its resolv.conf lists the resolver alone, container
/// names still resolve, other names go to its `--dns` server, and a container without
/// `--dns` has them forwarded to the host's servers instead.
///
/// No query may leave the host, so every server here is a double of the test's:
/// * the "host's" server: the daemon reads a resolv.conf of the test's
///   (`berthd --resolv-conf`) naming a double on a 127.0.0.0/8 address (the resolver
///   runs in the host namespace and asks loopback host servers there);
/// * the `--dns` server: a double on port 53 of this daemon's default bridge gateway.
///   The test's daemon made that address, containers can route to it, and the resolver
///   listens only on user networks' gateways, so port 53 is free there (a second user
///   network's gateway would be taken by the resolver itself);
/// * a `--dns 127.0.0.1`: a double bound inside that container's network namespace,
///   which the resolver asks there (the container's own loopback, as in Docker).
#[test]
fn dns_servers_are_the_resolvers_upstreams() {
    // The host's server: an address of 127.0.0.0/8 of this test run's own.
    let pid = std::process::id();
    let host_ip = format!("127.53.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
    let host_sock = UdpSocket::bind((host_ip.parse::<IpAddr>().expect("ip"), 53)).expect("bind the host's double");
    let host_asked = dns_double(host_sock, [10, 88, 0, 1]);
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let conf = conf_dir.path().join("resolv.conf");
    std::fs::write(&conf, format!("nameserver {host_ip}\n")).expect("write resolv.conf");
    let d = Daemon::start_with_args(&["--resolv-conf", conf.to_str().expect("utf8")]);

    let bridge = d.request("GET", "/networks/bridge", None).json();
    let bridge_gw = bridge["IPAM"]["Config"][0]["Gateway"].as_str().unwrap_or_default().to_string();
    assert!(!bridge_gw.is_empty(), "{bridge}");
    let up_sock = UdpSocket::bind((bridge_gw.parse::<IpAddr>().expect("ip"), 53)).expect("bind the --dns double");
    let up_asked = dns_double(up_sock, [10, 77, 0, 1]);

    d.berth(&["network", "create", "app"]).ok();
    d.berth(&["run", "-d", "--network", "app", "--name", "db", "busybox", "sleep", "600"]).ok();
    let ep = d.inspect("db")["NetworkSettings"]["Networks"]["app"].clone();
    let (db_ip, gw) = (ep["IPAddress"].as_str().unwrap_or_default().to_string(), ep["Gateway"].as_str().unwrap_or_default().to_string());
    let dns = ["--dns", bridge_gw.as_str()];

    // (1) One name server: the resolver (the test's resolv.conf has no search/options).
    let conf = d.berth(&["run", "--rm", "--network", "app", "--dns", &bridge_gw, "busybox", "cat", "/etc/resolv.conf"]).ok();
    assert_eq!(conf.lines(), vec![format!("nameserver {gw}")], "{conf:?}");
    // HostConfig.Dns is kept as given.
    d.berth(&["create", "--name", "withdns", "--network", "app", "--dns", &bridge_gw, "busybox"]).ok();
    assert_eq!(d.inspect("withdns")["HostConfig"]["Dns"], serde_json::json!([bridge_gw]));

    // (2) Container names are the resolver's, never asked upstream.
    let r = nslookup(&d, "app", &dns, "db").ok();
    assert!(r.out().contains(&db_ip), "{r:?}");

    // (3) Other names go to the container's --dns server.
    let r = nslookup(&d, "app", &dns, "only-upstream.berth.test").ok();
    assert!(r.out().contains("10.77.0.1"), "answered by the --dns server: {r:?}");

    // (4) Without --dns: to the host's servers.
    let r = nslookup(&d, "app", &[], "host-path.berth.test").ok();
    assert!(r.out().contains("10.88.0.1"), "answered by the host's server: {r:?}");

    let up = asked(&up_asked);
    assert!(up.iter().all(|n| n == "only-upstream.berth.test"), "the --dns server saw only its container's name: {up:?}");
    assert!(!up.is_empty());
    let host = asked(&host_asked);
    assert!(host.iter().all(|n| n == "host-path.berth.test"), "the host's server saw only the other container's name: {host:?}");
    assert!(!host.is_empty());

    // A loopback --dns is the container's own server: asked inside its namespace.
    d.berth(&["run", "-d", "--network", "app", "--dns", "127.0.0.1", "--name", "selfdns", "busybox", "sleep", "600"]).ok();
    let pid = d.inspect("selfdns")["State"]["Pid"].as_i64().unwrap_or_default();
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("open the container's netns");
    // A thread of ours joins the container's namespace only to make the socket there
    // (a socket stays in the namespace it was made in) and then ends.
    let inside = std::thread::spawn(move || -> std::io::Result<UdpSocket> {
        berth_sys::process::setns(ns.as_fd(), libc::CLONE_NEWNET)?;
        UdpSocket::bind("127.0.0.1:53")
    })
    .join()
    .expect("thread")
    .expect("bind inside the container");
    let inside_asked = dns_double(inside, [10, 99, 0, 1]);
    let conf = d.berth(&["exec", "selfdns", "cat", "/etc/resolv.conf"]).ok();
    assert_eq!(conf.lines(), vec![format!("nameserver {gw}")], "{conf:?}");
    let r = d.berth(&["exec", "selfdns", "nslookup", "self.berth.test"]).ok();
    assert!(r.out().contains("10.99.0.1"), "answered by the container's own server: {r:?}");
    let r = d.berth(&["exec", "selfdns", "nslookup", "db"]).ok();
    assert!(r.out().contains(&db_ip), "{r:?}");
    let inside = asked(&inside_asked);
    assert!(!inside.is_empty() && inside.iter().all(|n| n == "self.berth.test"), "{inside:?}");
    assert!(!asked(&host_asked).iter().any(|n| n == "self.berth.test"), "not the host's server");
}
