//! The embedded DNS resolver (berth-dns) with real containers on user networks: a
//! redis server reached by container name and by `--network-alias`, names scoped to
//! their network, resolv.conf and /etc/hosts as Docker writes them, and names that
//! keep resolving while berthd is killed and after it restarts.

use berth_e2e::{both, wait_until, Cli, Daemon, Run};
use std::process::Command;
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
