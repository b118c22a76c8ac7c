//! The firewall behind a small trait. [`Iptables`] keeps everything of one daemon in
//! its own chains (`<C>-DNAT`, `<C>-POST` in `nat`; `<C>-FWD`, `<C>-ISO` in `filter`,
//! `<C>` = `BERTH` or `BERTH-<tag>`), reached by one jump each from PREROUTING, OUTPUT,
//! POSTROUTING and FORWARD. [`Iptables::apply`] re-renders all of its chains from the
//! daemon's state in one `iptables-restore --noflush` batch, which the kernel applies
//! atomically: correct after any crash, and nothing to diff. Docker's own chains are
//! never touched. The text is built by the pure [`render`]. Networks with an IPv6
//! subnet get the same chains in ip6tables ([`render6`]: masquerade, forward,
//! isolation, DNAT of `::`/IPv6 host bindings to the containers' IPv6 addresses);
//! ip6tables is only touched once a network has IPv6.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ipam::Cidr4;

/// A bridge network as the firewall sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwNetwork {
    pub bridge: String,
    pub subnet: Cidr4,
    /// The IPv6 subnet (`--ipv6 --subnet`), address and prefix length.
    pub subnet6: Option<(Ipv6Addr, u8)>,
    pub internal: bool,
    pub masquerade: bool,
    pub icc: bool,
}

/// One published port of one address family: rendered by [`render`] when the
/// container address is IPv4, by [`render6`] when it is IPv6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwPort {
    pub proto: String,
    /// `None`: every local address (of the container address's family).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
    pub bridge: String,
}

/// Everything the firewall must express.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FwState {
    pub networks: Vec<FwNetwork>,
    pub ports: Vec<FwPort>,
}

pub trait Firewall: Send + Sync {
    /// Makes the daemon's chains say exactly `state`.
    fn apply(&self, state: &FwState) -> io::Result<()>;
    /// Removes the daemon's chains and jumps.
    fn teardown(&self) -> io::Result<()>;
}

/// `--iptables=false`: nothing is configured.
pub struct NoFirewall;

impl Firewall for NoFirewall {
    fn apply(&self, _: &FwState) -> io::Result<()> {
        Ok(())
    }
    fn teardown(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The jump rules into the daemon's chains: (table, rule as iptables-save prints it).
pub fn jumps(c: &str) -> Vec<(&'static str, String)> {
    vec![
        ("nat", format!("-A PREROUTING -m addrtype --dst-type LOCAL -j {c}-DNAT")),
        ("nat", format!("-A OUTPUT -m addrtype --dst-type LOCAL -j {c}-DNAT")),
        ("nat", format!("-A POSTROUTING -j {c}-POST")),
        ("filter", format!("-A FORWARD -j {c}-FWD")),
    ]
}

/// The `iptables-restore --noflush` batch for `st`: each chain declared (so created or
/// flushed), then its rules; `missing_jumps` are inserted too.
pub fn render(c: &str, st: &FwState, missing_jumps: &[(&str, String)]) -> String {
    render_for(c, st, missing_jumps, false)
}

/// The `ip6tables-restore --noflush` batch: [`render`]'s rules for the networks that
/// have an IPv6 subnet and the ports published to IPv6 container addresses. There is
/// no loopback rule: IPv6 has no `route_localnet`, `::1` cannot be DNATed out of the
/// host (see docs/networking.md).
pub fn render6(c: &str, st: &FwState, missing_jumps: &[(&str, String)]) -> String {
    render_for(c, st, missing_jumps, true)
}

/// Whether `st` needs ip6tables at all.
pub fn wants_v6(st: &FwState) -> bool {
    st.networks.iter().any(|n| n.subnet6.is_some()) || st.ports.iter().any(|p| p.container_ip.is_ipv6())
}

fn render_for(c: &str, st: &FwState, missing_jumps: &[(&str, String)], v6: bool) -> String {
    let mut nat = format!("*nat\n:{c}-DNAT - [0:0]\n:{c}-POST - [0:0]\n");
    let mut filter = format!("*filter\n:{c}-FWD - [0:0]\n:{c}-ISO - [0:0]\n");
    for (table, j) in missing_jumps {
        let ins = j.replacen("-A ", "-I ", 1);
        if *table == "nat" {
            nat.push_str(&ins);
            nat.push('\n');
        } else {
            filter.push_str(&ins);
            filter.push('\n');
        }
    }
    for n in &st.networks {
        let b = &n.bridge;
        let subnet = match (v6, n.subnet6) {
            (false, _) => n.subnet.to_string(),
            (true, Some((a, l))) => format!("{a}/{l}"),
            (true, None) => continue,
        };
        if n.internal {
            filter.push_str(&format!("-A {c}-FWD -i {b} ! -o {b} -j DROP\n-A {c}-FWD ! -i {b} -o {b} -j DROP\n"));
        } else {
            if n.masquerade {
                nat.push_str(&format!("-A {c}-POST -s {subnet} ! -o {b} -j MASQUERADE\n"));
            }
            filter.push_str(&format!("-A {c}-FWD -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"));
            filter.push_str(&format!("-A {c}-FWD -i {b} ! -o {b} -j {c}-ISO\n"));
            filter.push_str(&format!("-A {c}-FWD -i {b} ! -o {b} -j ACCEPT\n"));
        }
        // Published ports reach containers from outside only through DNAT; loopback
        // clients need their source rewritten to leave through the bridge.
        if !v6 {
            nat.push_str(&format!("-A {c}-POST -s 127.0.0.0/8 -o {b} -j MASQUERADE\n"));
        }
        if n.icc {
            filter.push_str(&format!("-A {c}-FWD -i {b} -o {b} -j ACCEPT\n"));
        }
        filter.push_str(&format!("-A {c}-ISO -o {b} -j DROP\n"));
    }
    let host_len = if v6 { 128 } else { 32 };
    let to = |ip: IpAddr| match ip {
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    };
    for p in st.ports.iter().filter(|p| p.container_ip.is_ipv6() == v6) {
        // A host address of the other family never matches this table.
        if p.host_ip.is_some_and(|h| h.is_ipv6() != v6) {
            continue;
        }
        // `::1` cannot be DNATed out of the host: leave it out so that a client gets a
        // refusal at once rather than a connection that never completes.
        let any = if v6 { " ! -d ::1/128" } else { "" };
        let dst = p.host_ip.map_or_else(|| any.to_string(), |ip| format!(" -d {ip}/{host_len}"));
        let pr = &p.proto;
        nat.push_str(&format!(
            "-A {c}-DNAT{dst} -p {pr} -m {pr} --dport {} -j DNAT --to-destination {}:{}\n",
            p.host_port,
            to(p.container_ip),
            p.container_port
        ));
        nat.push_str(&format!(
            "-A {c}-POST -s {ip}/{host_len} -d {ip}/{host_len} -p {pr} -m {pr} --dport {} -j MASQUERADE\n",
            p.container_port,
            ip = p.container_ip
        ));
        // Ahead of the bridge's own rules (inserted at the top of the chain).
        filter = filter.replacen(
            &format!(":{c}-ISO - [0:0]\n"),
            &format!(
                ":{c}-ISO - [0:0]\n-A {c}-FWD -d {}/{host_len} ! -i {b} -o {b} -p {pr} -m {pr} --dport {} -j ACCEPT\n",
                p.container_ip,
                p.container_port,
                b = p.bridge
            ),
            1,
        );
    }
    nat.push_str("COMMIT\n");
    filter.push_str("COMMIT\n");
    nat + &filter
}

/// iptables through `iptables-restore` batches (`-w`: waits for the xtables lock other
/// daemons may hold), and ip6tables the same way once IPv6 is wanted.
pub struct Iptables {
    chain: String,
    jumps_ok: AtomicBool,
    jumps6_ok: AtomicBool,
    /// ip6tables has (or may have) this daemon's chains: re-rendered on every apply.
    v6_used: AtomicBool,
}

/// The `iptables` or `ip6tables` tool family.
#[derive(Clone, Copy)]
struct Tool(&'static str);

const V4: Tool = Tool("iptables");
const V6: Tool = Tool("ip6tables");

impl Tool {
    fn saved(self, table: &str) -> io::Result<String> {
        let out = Command::new(format!("{}-save", self.0)).args(["-t", table]).stderr(Stdio::null()).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn restore(self, batch: &str) -> io::Result<()> {
        let mut child = Command::new(format!("{}-restore", self.0))
            .args(["-w", "--noflush"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(batch.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("{}-restore: {}", self.0, String::from_utf8_lossy(&out.stderr).trim())))
        }
    }

    fn missing_jumps(self, c: &str) -> io::Result<Vec<(&'static str, String)>> {
        let nat = self.saved("nat")?;
        let filter = self.saved("filter")?;
        Ok(jumps(c)
            .into_iter()
            .filter(|(t, j)| !(if *t == "nat" { &nat } else { &filter }).lines().any(|l| l == j))
            .collect())
    }

    /// Removes chain `c`'s jumps and chains from this family's tables.
    fn teardown(self, c: &str) -> io::Result<()> {
        let mut out = String::new();
        for table in ["nat", "filter"] {
            let saved = self.saved(table)?;
            let mine: Vec<String> = match table {
                "nat" => vec![format!("{c}-DNAT"), format!("{c}-POST")],
                _ => vec![format!("{c}-FWD"), format!("{c}-ISO")],
            };
            out.push_str(&format!("*{table}\n"));
            for (t, j) in jumps(c) {
                if t == table && saved.lines().any(|l| l == j) {
                    out.push_str(&j.replacen("-A ", "-D ", 1));
                    out.push('\n');
                }
            }
            let present: Vec<&String> = mine.iter().filter(|m| saved.lines().any(|l| l == format!(":{m} - [0:0]") || l.starts_with(&format!(":{m} ")))).collect();
            for m in &present {
                out.push_str(&format!("-F {m}\n"));
            }
            for m in &present {
                out.push_str(&format!("-X {m}\n"));
            }
            out.push_str("COMMIT\n");
        }
        self.restore(&out)
    }
}

impl Iptables {
    pub fn new(chain: &str) -> Iptables {
        Iptables {
            chain: chain.to_string(),
            jumps_ok: AtomicBool::new(false),
            jumps6_ok: AtomicBool::new(false),
            v6_used: AtomicBool::new(false),
        }
    }
}

impl Firewall for Iptables {
    fn apply(&self, st: &FwState) -> io::Result<()> {
        let missing = if self.jumps_ok.load(Ordering::Acquire) { Vec::new() } else { V4.missing_jumps(&self.chain)? };
        V4.restore(&render(&self.chain, st, &missing))?;
        self.jumps_ok.store(true, Ordering::Release);
        // Once a network had IPv6 the v6 chains are kept in step (emptied when no longer
        // needed); a daemon that never saw IPv6 runs no ip6tables process.
        if wants_v6(st) || self.v6_used.load(Ordering::Acquire) {
            self.v6_used.store(true, Ordering::Release);
            let missing = if self.jumps6_ok.load(Ordering::Acquire) { Vec::new() } else { V6.missing_jumps(&self.chain)? };
            V6.restore(&render6(&self.chain, st, &missing))?;
            self.jumps6_ok.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn teardown(&self) -> io::Result<()> {
        self.jumps_ok.store(false, Ordering::Release);
        self.jumps6_ok.store(false, Ordering::Release);
        let r4 = V4.teardown(&self.chain);
        // Chains of an earlier daemon process may be there even if this one saw no IPv6;
        // a host without ip6tables has none to remove.
        let r6 = match V6.teardown(&self.chain) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        r4.and(r6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_networks_ports_and_jumps() {
        let st = FwState {
            networks: vec![
                FwNetwork { bridge: "berth0".into(), subnet: "172.18.0.0/16".parse().unwrap(), subnet6: None, internal: false, masquerade: true, icc: true },
                FwNetwork { bridge: "br-1".into(), subnet: "10.1.0.0/24".parse().unwrap(), subnet6: Some(("fd00:1::".parse().unwrap(), 64)), internal: true, masquerade: true, icc: true },
            ],
            ports: vec![FwPort {
                proto: "tcp".into(),
                host_ip: None,
                host_port: 8080,
                container_ip: "172.18.0.2".parse().unwrap(),
                container_port: 80,
                bridge: "berth0".into(),
            }],
        };
        let j = jumps("B");
        let text = render("B", &st, &j[3..]);
        let want = "*nat\n:B-DNAT - [0:0]\n:B-POST - [0:0]\n\
            -A B-POST -s 172.18.0.0/16 ! -o berth0 -j MASQUERADE\n\
            -A B-POST -s 127.0.0.0/8 -o berth0 -j MASQUERADE\n\
            -A B-POST -s 127.0.0.0/8 -o br-1 -j MASQUERADE\n\
            -A B-DNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80\n\
            -A B-POST -s 172.18.0.2/32 -d 172.18.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE\n\
            COMMIT\n\
            *filter\n:B-FWD - [0:0]\n:B-ISO - [0:0]\n\
            -A B-FWD -d 172.18.0.2/32 ! -i berth0 -o berth0 -p tcp -m tcp --dport 80 -j ACCEPT\n\
            -I FORWARD -j B-FWD\n\
            -A B-FWD -o berth0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
            -A B-FWD -i berth0 ! -o berth0 -j B-ISO\n\
            -A B-FWD -i berth0 ! -o berth0 -j ACCEPT\n\
            -A B-FWD -i berth0 -o berth0 -j ACCEPT\n\
            -A B-ISO -o berth0 -j DROP\n\
            -A B-FWD -i br-1 ! -o br-1 -j DROP\n\
            -A B-FWD ! -i br-1 -o br-1 -j DROP\n\
            -A B-FWD -i br-1 -o br-1 -j ACCEPT\n\
            -A B-ISO -o br-1 -j DROP\n\
            COMMIT\n";
        assert_eq!(text, want);
    }

    #[test]
    fn renders_ipv6_networks_and_ports() {
        let net = |bridge: &str, v6: Option<&str>, internal: bool| FwNetwork {
            bridge: bridge.into(),
            subnet: "10.9.0.0/24".parse().unwrap(),
            subnet6: v6.map(|s| (s.parse().unwrap(), 64)),
            internal,
            masquerade: true,
            icc: false,
        };
        let port = |host_ip: Option<&str>, cip: &str| FwPort {
            proto: "tcp".into(),
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port: 8080,
            container_ip: cip.parse().unwrap(),
            container_port: 80,
            bridge: "br-6".into(),
        };
        let st = FwState {
            networks: vec![net("br-6", Some("fd00:6::"), false), net("br-4", None, false), net("br-i", Some("fd00:7::"), true)],
            ports: vec![
                port(None, "fd00:6::2"),
                port(Some("fd00:6::1"), "fd00:6::2"),
                // IPv4 ports and a v4 host address with a v6 container address stay out.
                port(None, "10.9.0.2"),
                port(Some("127.0.0.1"), "fd00:6::2"),
            ],
        };
        assert!(wants_v6(&st));
        assert!(!wants_v6(&FwState { networks: vec![net("br-4", None, false)], ports: vec![port(None, "10.9.0.2")] }));
        let text = render6("B", &st, &jumps("B")[2..3]);
        let want = "*nat\n:B-DNAT - [0:0]\n:B-POST - [0:0]\n\
            -I POSTROUTING -j B-POST\n\
            -A B-POST -s fd00:6::/64 ! -o br-6 -j MASQUERADE\n\
            -A B-DNAT ! -d ::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:6::2]:80\n\
            -A B-POST -s fd00:6::2/128 -d fd00:6::2/128 -p tcp -m tcp --dport 80 -j MASQUERADE\n\
            -A B-DNAT -d fd00:6::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:6::2]:80\n\
            -A B-POST -s fd00:6::2/128 -d fd00:6::2/128 -p tcp -m tcp --dport 80 -j MASQUERADE\n\
            COMMIT\n\
            *filter\n:B-FWD - [0:0]\n:B-ISO - [0:0]\n\
            -A B-FWD -d fd00:6::2/128 ! -i br-6 -o br-6 -p tcp -m tcp --dport 80 -j ACCEPT\n\
            -A B-FWD -d fd00:6::2/128 ! -i br-6 -o br-6 -p tcp -m tcp --dport 80 -j ACCEPT\n\
            -A B-FWD -o br-6 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
            -A B-FWD -i br-6 ! -o br-6 -j B-ISO\n\
            -A B-FWD -i br-6 ! -o br-6 -j ACCEPT\n\
            -A B-ISO -o br-6 -j DROP\n\
            -A B-FWD -i br-i ! -o br-i -j DROP\n\
            -A B-FWD ! -i br-i -o br-i -j DROP\n\
            -A B-ISO -o br-i -j DROP\n\
            COMMIT\n";
        assert_eq!(text, want);
    }
}
