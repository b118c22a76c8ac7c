//! Container networking (issue 9, the core): the default bridge, published ports served
//! by kernel DNAT (from 127.0.0.1, the bridge address and the host's own address, and
//! while berthd is down), Docker's texts for taken ports, the none/host/container:
//! modes, and what a daemon leaves behind: no veth on its bridge, no netns file, no DNAT
//! rule, no address held, after many cycles and after a kill -9. Through berth and the
//! real docker CLI. Traffic only to 127.0.0.0/8, the host's own address and the test's
//! containers. Each test's daemon has its own bridge, subnet and chains.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_e2e::{wait_until, Cli, Daemon};

/// A TCP port free on every local address now (bound to port 0, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `GET /` over HTTP/1.0; the body, or None when it does not answer.
fn http_get(host: &str, port: u16) -> Option<String> {
    let addr = format!("{host}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn http_get_eventually(host: &str, port: u16) -> String {
    wait_until(Duration::from_secs(10), &format!("http://{host}:{port}/ to answer"), || http_get(host, port))
}

/// The host's first global IPv4 address that is not on a bridge of a test daemon.
fn host_ip() -> Option<String> {
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let dev = *f.get(1)?;
        if dev.starts_with("bth") || dev.starts_with("br-") || dev.starts_with("docker") || dev.starts_with("berth") {
            return None;
        }
        Some(f.get(3)?.split('/').next()?.to_string())
    })
}

/// The bridge interface that holds `gateway`.
fn bridge_of(gateway: &str) -> String {
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr"]).output().expect("ip addr");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&format!(" {gateway}/")))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| panic!("no interface holds {gateway}"))
}

/// The ports (host ends of veths) on `bridge`.
fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// The daemon's nat chain prefix, found from its POSTROUTING jump and its bridge.
fn chain_of(d: &Daemon) -> String {
    let gw = d.berth(&["run", "--rm", "busybox", "sh", "-c", "ip route | awk '/default/ {print $3}'"]).ok().out().trim().to_string();
    let bridge = bridge_of(&gw);
    let tag = bridge.trim_start_matches("bth");
    format!("BERTH-{tag}-DNAT")
}

fn netns_files(d: &Daemon) -> usize {
    std::fs::read_dir(d.exec_root.join("netns")).map(|r| r.count()).unwrap_or(0)
}

fn setup() -> Daemon {
    berth_e2e::require_root();
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    d
}

#[test]
fn published_port_serves_a_bind_mount_on_every_address() {
    let d = setup();
    let site = d.dir().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(site.join("index.html"), "served by berth\n").expect("write");
    let vol = format!("{}:/www:ro", site.display());
    for cli in [Cli::Berth, Cli::Docker] {
        let port = free_port();
        let name = format!("web-{cli:?}").to_lowercase();
        d.cli(cli, &["run", "-d", "--name", &name, "-p", &format!("{port}:80"), "-v", &vol, "busybox", "httpd", "-f", "-p", "80", "-h", "/www"])
            .ok();
        assert_eq!(http_get_eventually("127.0.0.1", port), "served by berth\n");
        let ip = d.inspect(&name)["NetworkSettings"]["IPAddress"].as_str().expect("IPAddress").to_string();
        assert!(!ip.is_empty());
        assert_eq!(http_get(&ip, 80).as_deref(), Some("served by berth\n"), "bridge address {ip}");
        if let Some(h) = host_ip() {
            assert_eq!(http_get(&h, port).as_deref(), Some("served by berth\n"), "host address {h}");
        }
        d.cli(cli, &["ps", "--format", "{{.Ports}}", "--filter", &format!("name={name}")])
            .ok()
            .stdout_has(&format!("0.0.0.0:{port}->80/tcp"));
        d.cli(cli, &["port", &name]).ok().stdout_has(&format!("80/tcp -> 0.0.0.0:{port}"));
        d.cli(cli, &["port", &name, "80/tcp"]).ok().stdout_has(&format!("0.0.0.0:{port}"));
        let ns = d.inspect(&name)["NetworkSettings"].clone();
        assert_eq!(ns["Ports"]["80/tcp"][0]["HostIp"], "0.0.0.0", "{ns}");
        assert_eq!(ns["Ports"]["80/tcp"][0]["HostPort"], port.to_string(), "{ns}");
        assert!(ns["SandboxKey"].as_str().is_some_and(|k| k.ends_with(d.inspect(&name)["Id"].as_str().unwrap_or("?"))), "{ns}");
        let mac = ns["MacAddress"].as_str().unwrap_or_default().to_string();
        let o: Vec<u8> = ip.split('.').filter_map(|x| x.parse().ok()).collect();
        assert_eq!(mac, format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]));
        assert_eq!(ns["Networks"]["bridge"]["IPAddress"], ip.as_str());
        d.cli(cli, &["rm", "-f", &name]).ok();
        assert_eq!(http_get("127.0.0.1", port), None, "port {port} still served after rm");
    }
}

#[test]
fn publish_all_takes_random_ports_for_exposed_ones() {
    let d = setup();
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "-d", "--name", "pall", "-P", "--expose", "80", "busybox", "httpd", "-f", "-p", "80"]).ok();
        let ports = d.inspect("pall")["NetworkSettings"]["Ports"]["80/tcp"].clone();
        let hp: u16 = ports[0]["HostPort"].as_str().and_then(|p| p.parse().ok()).expect("a host port");
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("range");
        let r: Vec<u16> = range.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        assert!(hp >= r[0] && hp <= r[1], "{hp} outside {range}");
        // httpd answers 404 for a missing index: any HTTP answer proves the path.
        wait_until(Duration::from_secs(10), "the random port to answer", || http_get("127.0.0.1", hp));
        d.cli(cli, &["port", "pall"]).ok().stdout_has(&format!("80/tcp -> 0.0.0.0:{hp}"));
        d.cli(cli, &["rm", "-f", "pall"]).ok();
    }
}

#[test]
fn taken_ports_fail_the_start_with_dockers_text() {
    let d = setup();
    let port = free_port();
    let p = format!("{port}:80");
    d.berth(&["run", "-d", "--name", "first", "-p", &p, "busybox", "httpd", "-f", "-p", "80"]).ok();
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "-d", "--name", "second", "-p", &p, "busybox", "httpd", "-f", "-p", "80"])
            .code(125)
            .stderr_has("driver failed programming external connectivity on endpoint second (")
            .stderr_has(&format!("Bind for 0.0.0.0:{port} failed: port is already allocated"));
        assert_eq!(d.inspect("second")["State"]["Status"], "created");
        d.cli(cli, &["rm", "second"]).ok();
    }
    // A host process holding the port.
    let other = free_port();
    let _held = std::net::TcpListener::bind(("0.0.0.0", other)).expect("bind");
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "-d", "--name", "third", "-p", &format!("{other}:80"), "busybox", "httpd", "-f", "-p", "80"])
            .code(125)
            .stderr_has(&format!("listen tcp4 0.0.0.0:{other}: bind: address already in use"));
        d.cli(cli, &["rm", "third"]).ok();
    }
    // Nothing was left configured by the failed starts: one netns, one veth.
    assert_eq!(netns_files(&d), 1);
    let gw = d.inspect("first")["NetworkSettings"]["Gateway"].as_str().expect("gw").to_string();
    assert_eq!(bridge_ports(&bridge_of(&gw)).len(), 1);
    d.berth(&["rm", "-f", "first"]).ok();
}

#[test]
fn none_host_and_container_modes() {
    let d = setup();
    for cli in [Cli::Berth, Cli::Docker] {
        let out = d.cli(cli, &["run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev"]).ok().out().to_string();
        let ifaces: Vec<&str> = out.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
        assert_eq!(ifaces, ["lo"], "{out}");
        // host: the host's interfaces, the same network namespace as this test.
        let mine = std::fs::read_link("/proc/self/ns/net").expect("ns");
        let theirs = d.cli(cli, &["run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net"]).ok().out().trim().to_string();
        assert_eq!(theirs, mine.to_string_lossy());
        d.cli(cli, &["run", "-d", "--name", "owner", "busybox", "httpd", "-f", "-p", "8000"]).ok();
        let ip = d.inspect("owner")["NetworkSettings"]["IPAddress"].as_str().expect("ip").to_string();
        let seen = d
            .cli(cli, &["run", "--rm", "--network", "container:owner", "busybox", "sh", "-c", "ip -4 addr show eth0 | awk '/inet/ {print $2}'"])
            .ok()
            .out()
            .trim()
            .to_string();
        assert!(seen.starts_with(&format!("{ip}/")), "{seen} vs {ip}");
        // The owner's httpd answers on the shared loopback.
        d.cli(cli, &["run", "--rm", "--network", "container:owner", "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8000/"])
            .stderr_has("404");
        d.cli(cli, &["run", "--rm", "--network", "container:nosuch", "busybox", "true"]).code(125).stderr_has("No such container: nosuch");
        d.cli(cli, &["rm", "-f", "owner"]).ok();
    }
}

#[test]
fn containers_on_the_bridge_reach_each_other_and_the_outside_rules_hold() {
    let d = setup();
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["run", "-d", "--name", "srv", "busybox", "sh", "-c", "echo pong > /tmp/index.html; httpd -f -p 80 -h /tmp"]).ok();
        let ip = d.inspect("srv")["NetworkSettings"]["IPAddress"].as_str().expect("ip").to_string();
        let got = d.cli(cli, &["run", "--rm", "busybox", "wget", "-q", "-O", "-", &format!("http://{ip}/")]).ok().out().to_string();
        assert_eq!(got.trim(), "pong");
        // `stats` counts the traffic on the container's eth0.
        let st = d.request("GET", "/v1.41/containers/srv/stats?stream=false", None).json();
        assert!(st["networks"]["eth0"]["rx_bytes"].as_u64().is_some_and(|b| b > 0), "{}", st["networks"]);
        assert!(st["networks"].get("lo").is_none());
        d.cli(cli, &["rm", "-f", "srv"]).ok();
    }
}

#[test]
fn published_port_keeps_serving_while_berthd_is_down() {
    let mut d = setup();
    let port = free_port();
    d.berth(&["run", "-d", "--name", "survivor", "-p", &format!("{port}:80"), "busybox", "sh", "-c", "echo alive > /tmp/index.html; httpd -f -p 80 -h /tmp"])
        .ok();
    assert_eq!(http_get_eventually("127.0.0.1", port), "alive\n");
    d.kill9();
    assert_eq!(http_get("127.0.0.1", port).as_deref(), Some("alive\n"), "served while berthd is down");
    // And the host port stays reserved (the shim holds it).
    assert!(std::net::TcpListener::bind(("0.0.0.0", port)).is_err());
    d.start_again();
    assert_eq!(http_get("127.0.0.1", port).as_deref(), Some("alive\n"), "served after the restart");
    d.docker(&["port", "survivor"]).ok().stdout_has(&format!("0.0.0.0:{port}"));
    d.berth(&["rm", "-f", "survivor"]).ok();
    assert_eq!(http_get("127.0.0.1", port), None);
    assert_eq!(netns_files(&d), 0);
}

#[test]
fn nothing_leaks_after_many_cycles_or_a_kill9() {
    let mut d = setup();
    d.berth(&["run", "-d", "--name", "probe", "busybox", "sleep", "300"]).ok();
    let first_ip = d.inspect("probe")["NetworkSettings"]["IPAddress"].as_str().expect("ip").to_string();
    let gw = d.inspect("probe")["NetworkSettings"]["Gateway"].as_str().expect("gw").to_string();
    d.berth(&["rm", "-f", "probe"]).ok();
    let bridge = bridge_of(&gw);
    let chain = chain_of(&d);
    for i in 0..50 {
        let name = format!("cyc{i}");
        let port = free_port();
        d.berth(&["create", "--name", &name, "-p", &format!("{port}:80"), "busybox", "sleep", "300"]).ok();
        d.berth(&["start", &name]).ok();
        d.berth(&["rm", "-f", &name]).ok();
    }
    let clean = |d: &Daemon, when: &str| {
        wait_until(Duration::from_secs(10), &format!("veths gone from {bridge} ({when})"), || bridge_ports(&bridge).is_empty().then_some(()));
        assert_eq!(netns_files(d), 0, "{when}");
        let rules: Vec<String> = {
            let out = std::process::Command::new("iptables-save").args(["-t", "nat"]).output().expect("iptables-save");
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(&chain) && l.contains("-j DNAT")).map(str::to_string).collect()
        };
        assert!(rules.is_empty(), "{when}: {rules:?}");
        // IPAM: the lowest address is free again.
        d.berth(&["run", "-d", "--name", "again", "busybox", "sleep", "300"]).ok();
        assert_eq!(d.inspect("again")["NetworkSettings"]["IPAddress"], first_ip.as_str(), "{when}");
        d.berth(&["rm", "-f", "again"]).ok();
    };
    clean(&d, "after 50 cycles");
    // kill -9 with a running published container, which then exits while berthd is
    // down; the restart cleans up after it.
    let port = free_port();
    d.berth(&["run", "-d", "--name", "orphan", "-p", &format!("{port}:80"), "busybox", "sleep", "2"]).ok();
    d.kill9();
    std::thread::sleep(Duration::from_millis(2500));
    d.start_again();
    d.wait_inspect("orphan", Duration::from_secs(10), "exited", |v| v["State"]["Status"] == "exited");
    clean(&d, "after kill -9 and restart");
    d.berth(&["rm", "orphan"]).ok();
}
