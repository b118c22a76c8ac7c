//! What a container on a network finds in `/etc/hosts` and `/etc/resolv.conf`, as
//! Docker writes them, and the environment a legacy `--link` adds: pure text from plain
//! values (the engine knows the addresses and writes the files).
//!
//! `/etc/hosts`: Docker's fixed entries, then `--add-host` entries (`host-gateway`
//! replaced by the daemon's gateway address), then one line per `--link` (alias,
//! the linked container's hostname, its name when it differs from the alias), then the
//! container's own addresses with `hostname[.domainname] hostname`.
//! `/etc/resolv.conf`: on a user network the embedded resolver's address is the only
//! name server (the container's `--dns` servers are the resolver's upstreams, not
//! listed here); elsewhere `--dns` or the host's servers. `--dns-search` and `--dns-option`
//! replace the host's `search` and `options` lines (`--dns-search .` empties search).

use std::net::IpAddr;

/// Docker's fixed `/etc/hosts` head.
const HOSTS_HEAD: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// One `--add-host name:ip` (or `name=ip`), parsed; `host-gateway` is resolved to
/// `host_gateway`. Errors in Docker's words.
pub fn parse_extra_host(s: &str, host_gateway: Option<IpAddr>) -> Result<(String, IpAddr), String> {
    // IPv6 addresses contain ':': split on the first '=' or, failing that, the first ':'.
    let (name, ip) = s.split_once('=').or_else(|| s.split_once(':')).ok_or_else(|| format!("bad format for add-host: {s:?}"))?;
    if name.is_empty() {
        return Err(format!("bad format for add-host: {s:?}"));
    }
    if ip == "host-gateway" {
        return host_gateway
            .map(|g| (name.to_string(), g))
            .ok_or_else(|| "unable to derive the IP value for host-gateway".to_string());
    }
    let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
    ip.parse().map(|a| (name.to_string(), a)).map_err(|_| format!("invalid IP address in add-host: {ip:?}"))
}

/// A legacy link as it appears in the parent's hosts file and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHost {
    /// The alias (`--link name:alias`; the name when no alias is given).
    pub alias: String,
    /// The linked container's name, without '/'.
    pub name: String,
    pub hostname: String,
    pub ip: IpAddr,
}

/// Everything `/etc/hosts` is made of.
#[derive(Debug, Clone, Default)]
pub struct HostsSpec {
    pub hostname: String,
    pub domainname: String,
    /// The container's own addresses (none: `--network none`).
    pub ips: Vec<IpAddr>,
    /// `--add-host` entries, parsed.
    pub extra: Vec<(String, IpAddr)>,
    pub links: Vec<LinkHost>,
}

/// `/etc/hosts` as Docker writes it.
pub fn hosts(spec: &HostsSpec) -> String {
    let mut out = String::from(HOSTS_HEAD);
    for (name, ip) in &spec.extra {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    for l in &spec.links {
        let mut names = format!("{} {}", l.alias, l.hostname);
        if l.alias != l.name {
            names.push(' ');
            names.push_str(&l.name);
        }
        out.push_str(&format!("{}\t{names}\n", l.ip));
    }
    let names = if spec.domainname.is_empty() {
        spec.hostname.clone()
    } else {
        format!("{}.{} {}", spec.hostname, spec.domainname, spec.hostname)
    };
    if spec.ips.is_empty() {
        // Without an address of its own the hostname still resolves (Docker leaves it
        // out; programs that look themselves up then fail).
        out.push_str(&format!("127.0.1.1\t{names}\n"));
    }
    for ip in &spec.ips {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    out
}

/// The DNS settings of a container (`HostConfig.Dns`, `DnsSearch`, `DnsOptions`) and
/// the embedded resolver's address when it is on a user network.
#[derive(Debug, Clone, Default)]
pub struct ResolvSpec {
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub embedded: Option<IpAddr>,
}

/// `/etc/resolv.conf` for a container, from the host's `host` text.
pub fn resolv(host: &str, spec: &ResolvSpec) -> String {
    let (mut servers, mut search, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in host.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => servers.extend(w.next().map(str::to_string)),
            Some("search") | Some("domain") => search = w.map(str::to_string).collect(),
            Some("options") => options.extend(w.map(str::to_string)),
            _ => {}
        }
    }
    // Loopback servers of the host are unreachable from a container's namespace.
    servers.retain(|s| !(s.starts_with("127.") || s == "::1"));
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    if !spec.dns.is_empty() {
        servers = spec.dns.clone();
    }
    if let Some(e) = spec.embedded {
        // The resolver alone: it forwards what is not a container name to the
        // container's `--dns` servers (else the host's). Listing those here too would
        // let them race it: musl asks every name server at once and takes the first
        // answer, so an outside server's NXDOMAIN for a container name could win.
        servers = vec![e.to_string()];
    }
    if !spec.dns_search.is_empty() {
        search = spec.dns_search.iter().filter(|s| s.as_str() != ".").cloned().collect();
    }
    if !spec.dns_options.is_empty() {
        options = spec.dns_options.clone();
    }
    let mut out = String::new();
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The environment a legacy `--link` gives the parent (Docker's `links.Link.ToEnv`):
/// `ALIAS_NAME`, `ALIAS_PORT*` for each exposed port of the child (lowest first, tcp
/// before udp), and `ALIAS_ENV_*` for the child's environment except HOME and PATH.
/// `exposed` are `"6379/tcp"` keys.
pub fn link_env(parent: &str, link: &LinkHost, exposed: &[String], child_env: &[String]) -> Vec<String> {
    let prefix: String = link.alias.to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed
        .iter()
        .filter_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            Some((n.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect();
    ports.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| (a.1 != "tcp").cmp(&(b.1 != "tcp"))));
    let ip = match link.ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let mut env = Vec::new();
    if let Some((n, proto)) = ports.first() {
        env.push(format!("{prefix}_PORT={proto}://{ip}:{n}"));
    }
    for (n, proto) in &ports {
        let p = format!("{prefix}_PORT_{n}_{}", proto.to_ascii_uppercase());
        env.push(format!("{p}={proto}://{ip}:{n}"));
        env.push(format!("{p}_ADDR={}", link.ip));
        env.push(format!("{p}_PORT={n}"));
        env.push(format!("{p}_PROTO={proto}"));
    }
    env.push(format!("{prefix}_NAME=/{}/{}", parent.trim_start_matches('/'), link.alias));
    for kv in child_env {
        let Some((k, v)) = kv.split_once('=') else { continue };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{prefix}_ENV_{k}={v}"));
    }
    env
}

/// `--link name[:alias]` split into (name, alias); the alias defaults to the name.
pub fn parse_link(s: &str) -> Result<(String, String), String> {
    let (name, alias) = match s.split_once(':') {
        Some((n, a)) => (n.trim_start_matches('/'), a),
        None => (s.trim_start_matches('/'), s.trim_start_matches('/')),
    };
    if name.is_empty() || alias.is_empty() {
        return Err(format!("invalid link format: {s}"));
    }
    // Docker stores links as `/child:/parent/alias`: the alias is the last element.
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if alias.is_empty() {
        return Err(format!("invalid link format: {s}"));
    }
    Ok((name.to_string(), alias.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn extra_host_table() {
        let gw = Some(ip("172.17.0.1"));
        type Case = (&'static str, Option<IpAddr>, Result<(&'static str, &'static str), &'static str>);
        let cases: Vec<Case> = vec![
            ("db:10.0.0.2", gw, Ok(("db", "10.0.0.2"))),
            ("db=10.0.0.2", gw, Ok(("db", "10.0.0.2"))),
            ("v6:2001:db8::1", gw, Ok(("v6", "2001:db8::1"))),
            ("v6=[2001:db8::1]", gw, Ok(("v6", "2001:db8::1"))),
            ("gw:host-gateway", gw, Ok(("gw", "172.17.0.1"))),
            ("gw:host-gateway", None, Err("unable to derive the IP value for host-gateway")),
            ("db:nope", gw, Err("invalid IP address in add-host: \"nope\"")),
            ("nocolon", gw, Err("bad format for add-host: \"nocolon\"")),
        ];
        for (s, g, want) in cases {
            let got = parse_extra_host(s, g);
            let want = want.map(|(n, a)| (n.to_string(), ip(a))).map_err(str::to_string);
            assert_eq!(got, want, "{s}");
        }
    }

    #[test]
    fn hosts_as_docker() {
        let spec = HostsSpec {
            hostname: "web".into(),
            domainname: "example.com".into(),
            ips: vec![ip("172.17.0.3")],
            extra: vec![("gw".into(), ip("172.17.0.1"))],
            links: vec![
                LinkHost { alias: "db".into(), name: "redis1".into(), hostname: "a1b2c3d4e5f6".into(), ip: ip("172.17.0.2") },
                LinkHost { alias: "cache".into(), name: "cache".into(), hostname: "cachehost".into(), ip: ip("172.17.0.4") },
            ],
        };
        let want = format!(
            "{HOSTS_HEAD}172.17.0.1\tgw\n172.17.0.2\tdb a1b2c3d4e5f6 redis1\n172.17.0.4\tcache cachehost\n172.17.0.3\tweb.example.com web\n"
        );
        assert_eq!(hosts(&spec), want);
        let none = HostsSpec { hostname: "h".into(), ..Default::default() };
        assert_eq!(hosts(&none), format!("{HOSTS_HEAD}127.0.1.1\th\n"));
    }

    #[test]
    fn resolv_table() {
        let host = "nameserver 127.0.0.53\nnameserver 10.0.0.53\nsearch corp.example\noptions edns0\n";
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: Vec<(&str, ResolvSpec, &str)> = vec![
            ("host's, loopback dropped", ResolvSpec::default(), "nameserver 10.0.0.53\nsearch corp.example\noptions edns0\n"),
            (
                "--dns/--dns-search/--dns-option",
                ResolvSpec { dns: s(&["1.1.1.1"]), dns_search: s(&["a.example"]), dns_options: s(&["ndots:2"]), embedded: None },
                "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n",
            ),
            ("--dns-search .", ResolvSpec { dns_search: s(&["."]), ..Default::default() }, "nameserver 10.0.0.53\noptions edns0\n"),
            (
                "user network",
                ResolvSpec { embedded: Some(ip("172.19.0.1")), ..Default::default() },
                "nameserver 172.19.0.1\nsearch corp.example\noptions edns0\n",
            ),
            (
                "user network with --dns: the resolver only (--dns are its upstreams)",
                ResolvSpec { embedded: Some(ip("172.19.0.1")), dns: s(&["9.9.9.9", "127.0.0.1"]), ..Default::default() },
                "nameserver 172.19.0.1\nsearch corp.example\noptions edns0\n",
            ),
        ];
        for (what, spec, want) in cases {
            assert_eq!(resolv(host, &spec), want, "{what}");
        }
        assert_eq!(resolv("nameserver 127.0.0.53\n", &ResolvSpec::default()), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn link_env_as_docker() {
        let l = LinkHost { alias: "my-db".into(), name: "redis1".into(), hostname: "h".into(), ip: ip("172.17.0.2") };
        let env = link_env("/web", &l, &["6379/tcp".into(), "53/udp".into(), "53/tcp".into()], &["PATH=/bin".into(), "REDIS_VERSION=7".into()]);
        assert_eq!(
            env,
            vec![
                "MY_DB_PORT=tcp://172.17.0.2:53",
                "MY_DB_PORT_53_TCP=tcp://172.17.0.2:53",
                "MY_DB_PORT_53_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_TCP_PORT=53",
                "MY_DB_PORT_53_TCP_PROTO=tcp",
                "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_6379_TCP=tcp://172.17.0.2:6379",
                "MY_DB_PORT_6379_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_6379_TCP_PORT=6379",
                "MY_DB_PORT_6379_TCP_PROTO=tcp",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_REDIS_VERSION=7",
            ]
        );
    }

    #[test]
    fn parse_link_table() {
        let cases = [
            ("db", Ok(("db", "db"))),
            ("db:alias", Ok(("db", "alias"))),
            ("/db:/alias", Ok(("db", "alias"))),
            ("/db:/web/alias", Ok(("db", "alias"))),
            ("db:", Err("invalid link format: db:")),
        ];
        for (s, want) in cases {
            let want = want.map(|(a, b)| (a.to_string(), b.to_string())).map_err(str::to_string);
            assert_eq!(parse_link(s), want, "{s}");
        }
    }
}
