//! IPv6 on bridge networks: a `--ipv6` network with an fd00::/64 subnet, its ip6tables
//! rules (masquerade, forward, isolation) and a published port DNATed from the host's
//! IPv6 addresses (`::` bindings) to the container's IPv6 address; the rules go away
//! with the container and the network. Through `berth` and the docker CLI.

use std::process::Command;
use std::time::Duration;

use berth_e2e::{run_with_timeout, wait_until, Cli, Daemon, Run};

fn ip6tables_save() -> String {
    let out = Command::new("ip6tables-save").output().expect("ip6tables-save");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP port free on both 0.0.0.0 and [::] (bound dual-stack, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("[::]:0").expect("bind [::]:0");
    l.local_addr().expect("addr").port()
}

fn curl(url: &str) -> Run {
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "-m", "5", url]);
    run_with_timeout(c, format!("curl {url}"), Duration::from_secs(10))
}

#[test]
fn ipv6_network_publishes_ports_on_ipv6() {
    let d = Daemon::start();
    // A subnet of its own per test process: daemons of other tests run beside this one.
    let tag = std::process::id() & 0xfff0;
    for (i, cli) in [Cli::Berth, Cli::Docker].into_iter().enumerate() {
        let net = format!("v6net{i}");
        let prefix = format!("fd00:{:x}:{}", 0xb000 | tag, i + 1);
        let subnet = format!("{prefix}::/64");
        d.cli(cli, &["network", "create", "--ipv6", "--subnet", &subnet, &net]).ok();
        let port = free_port();
        let publish = format!("{port}:80");
        let name = format!("web6-{i}");
        d.cli(cli, &["run", "-d", "--name", &name, "--network", &net, "-p", &publish, "busybox", "sh", "-c", "echo v6ok > /i.html; exec httpd -f -p 80 -h /"]).ok();
        let ins = d.inspect(&name);
        let ep = &ins["NetworkSettings"]["Networks"][net.as_str()];
        let (cip6, gw6) = (format!("{prefix}::2"), format!("{prefix}::1"));
        assert_eq!(ep["GlobalIPv6Address"], cip6.as_str(), "{ep}");
        assert_eq!(ep["IPv6Gateway"], gw6.as_str(), "{ep}");
        let ports = &ins["NetworkSettings"]["Ports"]["80/tcp"];
        assert!(ports.as_array().is_some_and(|a| a.iter().any(|p| p["HostIp"] == "::")), "{ports}");

        let rules = ip6tables_save();
        let dnat = format!("--dport {port} -j DNAT --to-destination [{cip6}]:80");
        assert!(rules.contains(&dnat), "no IPv6 DNAT rule:\n{rules}");
        assert!(rules.contains(&format!("-s {subnet} ! -o ")), "no IPv6 masquerade rule:\n{rules}");

        // Through the host's own IPv6 address (the network's gateway) and on IPv4.
        let url6 = format!("http://[{gw6}]:{port}/i.html");
        let got = wait_until(Duration::from_secs(20), "httpd on the published IPv6 port", || {
            let r = curl(&url6);
            (r.code == 0 && r.out() == "v6ok").then_some(r)
        });
        assert_eq!(got.out(), "v6ok");
        assert_eq!(curl(&format!("http://127.0.0.1:{port}/i.html")).out(), "v6ok");
        // `::1` is not DNATed (IPv6 has no route_localnet): refused at once, no hang.
        assert_eq!(curl(&format!("http://[::1]:{port}/i.html")).code, 7, "[::1] should be refused");
        // Another container on the network reaches the port through the host over IPv6.
        let r = d.cli(cli, &["run", "--rm", "--network", &net, "busybox", "wget", "-q", "-O", "-", &url6]).ok();
        assert_eq!(r.out(), "v6ok");

        d.cli(cli, &["rm", "-f", &name]).ok();
        let rules = ip6tables_save();
        assert!(!rules.contains(&cip6), "rules of the removed container left:\n{rules}");
        d.cli(cli, &["network", "rm", &net]).ok();
        let rules = ip6tables_save();
        assert!(!rules.contains(&prefix), "rules of the removed network left:\n{rules}");
    }
}
