//! The firewall behind a small trait. [`Iptables`] keeps everything of one daemon in
//! its own chains (`<C>-DNAT`, `<C>-POST` in `nat`; `<C>-FWD`, `<C>-ISO` in `filter`,
//! `<C>` = `BERTH` or `BERTH-<tag>`), reached by one jump each from PREROUTING, OUTPUT,
//! POSTROUTING and FORWARD. [`Iptables::apply`] re-renders all of its chains from the
//! daemon's state in one `iptables-restore --noflush` batch, which the kernel applies
//! atomically: correct after any crash, and nothing to diff. Docker's own chains are
//! never touched. The text is built by the pure [`render`].

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ipam::Cidr4;

/// A bridge network as the firewall sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwNetwork {
    pub bridge: String,
    pub subnet: Cidr4,
    pub internal: bool,
    pub masquerade: bool,
    pub icc: bool,
}

/// One published port (IPv4 side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwPort {
    pub proto: String,
    /// `None`: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
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
        if n.internal {
            filter.push_str(&format!("-A {c}-FWD -i {b} ! -o {b} -j DROP\n-A {c}-FWD ! -i {b} -o {b} -j DROP\n"));
        } else {
            if n.masquerade {
                nat.push_str(&format!("-A {c}-POST -s {} ! -o {b} -j MASQUERADE\n", n.subnet));
            }
            filter.push_str(&format!("-A {c}-FWD -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"));
            filter.push_str(&format!("-A {c}-FWD -i {b} ! -o {b} -j {c}-ISO\n"));
            filter.push_str(&format!("-A {c}-FWD -i {b} ! -o {b} -j ACCEPT\n"));
        }
        // Published ports reach containers from outside only through DNAT; loopback
        // clients need their source rewritten to leave through the bridge.
        nat.push_str(&format!("-A {c}-POST -s 127.0.0.0/8 -o {b} -j MASQUERADE\n"));
        if n.icc {
            filter.push_str(&format!("-A {c}-FWD -i {b} -o {b} -j ACCEPT\n"));
        }
        filter.push_str(&format!("-A {c}-ISO -o {b} -j DROP\n"));
    }
    for p in &st.ports {
        let dst = p.host_ip.map(|ip| format!(" -d {ip}/32")).unwrap_or_default();
        let pr = &p.proto;
        nat.push_str(&format!(
            "-A {c}-DNAT{dst} -p {pr} -m {pr} --dport {} -j DNAT --to-destination {}:{}\n",
            p.host_port, p.container_ip, p.container_port
        ));
        nat.push_str(&format!(
            "-A {c}-POST -s {ip}/32 -d {ip}/32 -p {pr} -m {pr} --dport {} -j MASQUERADE\n",
            p.container_port,
            ip = p.container_ip
        ));
        // Ahead of the bridge's own rules (inserted at the top of the chain).
        filter = filter.replacen(
            &format!(":{c}-ISO - [0:0]\n"),
            &format!(
                ":{c}-ISO - [0:0]\n-A {c}-FWD -d {}/32 ! -i {b} -o {b} -p {pr} -m {pr} --dport {} -j ACCEPT\n",
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
/// daemons may hold).
pub struct Iptables {
    chain: String,
    jumps_ok: AtomicBool,
}

impl Iptables {
    pub fn new(chain: &str) -> Iptables {
        Iptables { chain: chain.to_string(), jumps_ok: AtomicBool::new(false) }
    }

    fn saved(table: &str) -> io::Result<String> {
        let out = Command::new("iptables-save").args(["-t", table]).stderr(Stdio::null()).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn restore(batch: &str) -> io::Result<()> {
        let mut child = Command::new("iptables-restore")
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
            Err(io::Error::other(format!("iptables-restore: {}", String::from_utf8_lossy(&out.stderr).trim())))
        }
    }

    fn missing_jumps(&self) -> io::Result<Vec<(&'static str, String)>> {
        let nat = Self::saved("nat")?;
        let filter = Self::saved("filter")?;
        Ok(jumps(&self.chain)
            .into_iter()
            .filter(|(t, j)| !(if *t == "nat" { &nat } else { &filter }).lines().any(|l| l == j))
            .collect())
    }
}

impl Firewall for Iptables {
    fn apply(&self, st: &FwState) -> io::Result<()> {
        let missing = if self.jumps_ok.load(Ordering::Acquire) { Vec::new() } else { self.missing_jumps()? };
        Self::restore(&render(&self.chain, st, &missing))?;
        self.jumps_ok.store(true, Ordering::Release);
        Ok(())
    }

    fn teardown(&self) -> io::Result<()> {
        let c = &self.chain;
        let mut out = String::new();
        for table in ["nat", "filter"] {
            let saved = Self::saved(table)?;
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
        self.jumps_ok.store(false, Ordering::Release);
        Self::restore(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_networks_ports_and_jumps() {
        let st = FwState {
            networks: vec![
                FwNetwork { bridge: "berth0".into(), subnet: "172.18.0.0/16".parse().unwrap(), internal: false, masquerade: true, icc: true },
                FwNetwork { bridge: "br-1".into(), subnet: "10.1.0.0/24".parse().unwrap(), internal: true, masquerade: true, icc: true },
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
}
