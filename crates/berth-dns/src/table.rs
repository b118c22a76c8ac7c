//! The name table: one records file per network (written by berthd, read by the
//! resolver), and the pure lookup that decides what a query from a given container gets.
//!
//! Scoping: a query is answered from the networks its sender is attached to (its source
//! address is one of their endpoints), or, for a sender the table does not know, from
//! the network whose gateway address received it. A container on network X therefore
//! never resolves names that exist only on network Y.
//!
//! Upstreams: a query the table does not answer goes to the sender's own name servers
//! (its `--dns`, carried in its endpoints) when it has any, else to the host's, as
//! Docker's embedded resolver uses a container's `--dns` servers ([`Table::upstreams`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The directory of records files inside the resolver's state directory.
pub const NETWORKS_DIR: &str = "networks";
/// Largest records file read (a bound on the resolver's memory, not on the input):
/// about 10 000 endpoints.
pub const MAX_FILE: u64 = 4 << 20;
/// Most networks loaded.
pub const MAX_NETWORKS: usize = 1024;

/// One network's records file (`<state>/networks/<network id>.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecords {
    pub id: String,
    pub name: String,
    /// Addresses the resolver listens on for this network (its gateways).
    pub listen: Vec<IpAddr>,
    pub endpoints: Vec<Endpoint>,
}

/// One container on the network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Full container id (its 12-character prefix resolves too).
    pub id: String,
    /// Container name (without '/'), aliases, compose service names.
    pub names: Vec<String>,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// Links of this container on the network (`--link name:alias` with a user
    /// network): alias → the linked container's name, seen by this container only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
    /// The container's own name servers (`HostConfig.Dns`): what it asks that the table
    /// does not answer goes there instead of to the host's servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// The container's network namespace file, given when one of `dns` is a loopback
    /// address: that server is the container's own and is asked from inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
}

/// Most upstream servers tried for one query (Docker's embedded resolver: three).
pub const MAX_UPSTREAMS: usize = 3;

/// A name server a query is forwarded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub addr: IpAddr,
    /// Asked from inside this network namespace (a container's own loopback server);
    /// `None`: from the resolver's namespace, the host's.
    pub netns: Option<PathBuf>,
}

/// All networks, as loaded at one moment; replaced whole on reload.
#[derive(Debug, Default)]
pub struct Table {
    networks: Vec<NetworkRecords>,
    /// listen address → network index
    by_listen: BTreeMap<IpAddr, usize>,
    /// endpoint address → container id
    by_source: BTreeMap<IpAddr, String>,
    /// container id → network indexes (a container on two networks sees both)
    by_id: BTreeMap<String, Vec<usize>>,
    /// container id → its own upstreams (containers with `--dns` only)
    own_upstreams: BTreeMap<String, Vec<Upstream>>,
}

/// What the table says about a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A name of the sender's networks: its addresses of the asked family (may be empty:
    /// the name exists, without an address of that family).
    Addrs(Vec<IpAddr>),
    /// A PTR question for an address of the sender's networks.
    Names(Vec<String>),
    /// A single-label name that no container of the sender's networks has: NXDOMAIN
    /// here. Such names mean nothing to the host's servers, and forwarding them would
    /// send container names off the host.
    NoSuchName,
    /// Not ours: forward upstream.
    Forward,
}

impl Table {
    pub fn new(networks: Vec<NetworkRecords>) -> Table {
        let mut t = Table { networks, ..Table::default() };
        for (i, n) in t.networks.iter().enumerate() {
            for a in &n.listen {
                t.by_listen.insert(*a, i);
            }
            for e in &n.endpoints {
                let addrs = e.ipv4.iter().map(|a| IpAddr::V4(*a)).chain(e.ipv6.iter().map(|a| IpAddr::V6(*a)));
                for a in addrs {
                    t.by_source.insert(a, e.id.clone());
                }
                t.by_id.entry(e.id.clone()).or_default().push(i);
                if !e.dns.is_empty() && !t.own_upstreams.contains_key(&e.id) {
                    t.own_upstreams.insert(e.id.clone(), own_upstreams(e));
                }
            }
        }
        t
    }

    /// Where a query from `source` that the table does not answer goes: the sender's
    /// own servers when it has any (even when none of them is usable: a container
    /// given `--dns` never has its queries sent to the host's servers, as in Docker),
    /// else `host` (the host's resolv.conf servers, asked from the host namespace);
    /// at most [`MAX_UPSTREAMS`], in order.
    pub fn upstreams(&self, source: IpAddr, host: &[IpAddr]) -> Vec<Upstream> {
        let own = self.by_source.get(&source).and_then(|id| self.own_upstreams.get(id));
        let mut v = match own {
            Some(own) => own.clone(),
            None => host.iter().map(|a| Upstream { addr: *a, netns: None }).collect(),
        };
        v.truncate(MAX_UPSTREAMS);
        v
    }

    /// Every address the resolver should listen on.
    pub fn listen_addrs(&self) -> Vec<IpAddr> {
        self.by_listen.keys().copied().collect()
    }

    /// The networks a query from `source` received on `local` is answered from.
    fn scope(&self, source: IpAddr, local: IpAddr) -> Vec<usize> {
        match self.by_source.get(&source).and_then(|id| self.by_id.get(id)) {
            Some(nets) => nets.clone(),
            None => self.by_listen.get(&local).map(|i| vec![*i]).unwrap_or_default(),
        }
    }

    /// Answers `name` (lower case, no trailing dot) of type `qtype` for a query from
    /// `source` received on `local`. `search` are the host's search domains: the
    /// sender's resolver may ask `db.<search domain>` first, which is `db` too.
    pub fn lookup(&self, source: IpAddr, local: IpAddr, name: &str, qtype: u16, search: &[String]) -> Lookup {
        let scope = self.scope(source, local);
        if scope.is_empty() {
            return Lookup::Forward;
        }
        if qtype == crate::wire::TYPE_PTR {
            let Some(addr) = crate::wire::ptr_addr(name) else { return Lookup::Forward };
            let mut names = Vec::new();
            for &i in &scope {
                for e in &self.networks[i].endpoints {
                    let has = e.ipv4.iter().any(|a| IpAddr::V4(*a) == addr) || e.ipv6.iter().any(|a| IpAddr::V6(*a) == addr);
                    if has {
                        if let Some(first) = e.names.first() {
                            let n = first.to_ascii_lowercase();
                            if !names.contains(&n) {
                                names.push(n);
                            }
                        }
                    }
                }
            }
            return if names.is_empty() { Lookup::Forward } else { Lookup::Names(names) };
        }
        let short = search
            .iter()
            .filter_map(|d| name.strip_suffix(d.trim_end_matches('.')).and_then(|s| s.strip_suffix('.')))
            .next();
        // The sender's own link aliases stand for the linked container's name.
        let sender = self.by_source.get(&source);
        let linked = |candidate: &str| -> Option<String> {
            let id = sender?;
            scope.iter().flat_map(|&i| self.networks[i].endpoints.iter()).filter(|e| &e.id == id).find_map(|e| {
                e.links.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(candidate)).map(|(_, target)| target.clone())
            })
        };
        for candidate in std::iter::once(name).chain(short) {
            let target = linked(candidate);
            let candidate = target.as_deref().unwrap_or(candidate);
            // Dotted names are looked up too: an alias may have dots (docker-py's
            // `pingtarget.docker`); a dotted name nobody has is forwarded below.
            if candidate.is_empty() {
                continue;
            }
            let mut found = false;
            let mut addrs = Vec::new();
            for &i in &scope {
                for e in &self.networks[i].endpoints {
                    let hit = e.names.iter().any(|n| n.eq_ignore_ascii_case(candidate))
                        || (candidate.len() == 12 && e.id.len() >= 12 && e.id[..12].eq_ignore_ascii_case(candidate));
                    if !hit {
                        continue;
                    }
                    found = true;
                    match qtype {
                        crate::wire::TYPE_A => addrs.extend(e.ipv4.iter().map(|a| IpAddr::V4(*a))),
                        crate::wire::TYPE_AAAA => addrs.extend(e.ipv6.iter().map(|a| IpAddr::V6(*a))),
                        _ => {}
                    }
                }
            }
            if found {
                addrs.dedup();
                return Lookup::Addrs(addrs);
            }
        }
        if !name.is_empty() && !name.contains('.') {
            return Lookup::NoSuchName;
        }
        Lookup::Forward
    }
}

/// A container's `--dns` servers as upstreams: loopback ones are its own, asked inside
/// its namespace; without a namespace file they cannot be reached and are left out
/// (the host's loopback servers are not what the container named).
fn own_upstreams(e: &Endpoint) -> Vec<Upstream> {
    e.dns
        .iter()
        .filter_map(|a| match (a.is_loopback(), &e.netns) {
            (false, _) => Some(Upstream { addr: *a, netns: None }),
            (true, Some(ns)) => Some(Upstream { addr: *a, netns: Some(ns.clone()) }),
            (true, None) => None,
        })
        .collect()
}

/// Reads every `*.json` records file of `dir` (`<state>/networks`). A file that cannot
/// be read or parsed is skipped and reported in the returned messages: one bad file
/// does not take the other networks' names away.
pub fn load_dir(dir: &Path) -> (Table, Vec<String>) {
    let mut nets = Vec::new();
    let mut errors = Vec::new();
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json") && !is_temp(p))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            errors.push(format!("read {}: {e}", dir.display()));
            Vec::new()
        }
    };
    paths.sort();
    for p in paths.into_iter().take(MAX_NETWORKS) {
        match read_records(&p) {
            Ok(n) => nets.push(n),
            Err(e) => errors.push(e),
        }
    }
    (Table::new(nets), errors)
}

fn is_temp(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn read_records(p: &Path) -> Result<NetworkRecords, String> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut buf).map_err(|e| format!("read {}: {e}", p.display()))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(format!("{}: larger than {MAX_FILE} bytes, skipped", p.display()));
    }
    serde_json::from_slice(&buf).map_err(|e| format!("parse {}: {e}", p.display()))
}

/// The name servers and search domains of a resolv.conf text (for forwarding and for
/// the search-suffix rule of [`Table::lookup`]).
pub fn parse_resolv_conf(text: &str) -> (Vec<IpAddr>, Vec<String>) {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(a) = words.next().and_then(|a| a.split('%').next()).and_then(|a| a.parse().ok()) {
                    servers.push(a);
                }
            }
            Some("search") | Some("domain") => {
                search = words.map(|w| w.trim_end_matches('.').to_ascii_lowercase()).collect();
            }
            _ => {}
        }
    }
    (servers, search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TYPE_A, TYPE_AAAA, TYPE_PTR};

    fn ep(id: &str, names: &[&str], v4: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ipv4: vec![v4.parse().expect("ip")],
            ipv6: vec![],
            ..Endpoint::default()
        }
    }

    fn table() -> Table {
        Table::new(vec![
            NetworkRecords {
                id: "n1".into(),
                name: "app".into(),
                listen: vec!["10.1.0.1".parse().expect("ip")],
                endpoints: vec![
                    ep("aaaaaaaaaaaaffff", &["db", "redis", "cache.internal"], "10.1.0.2"),
                    Endpoint { links: [("bar".to_string(), "db".to_string())].into(), ..ep("bbbbbbbbbbbbffff", &["web"], "10.1.0.3") },
                ],
            },
            NetworkRecords {
                id: "n2".into(),
                name: "other".into(),
                listen: vec!["10.2.0.1".parse().expect("ip")],
                endpoints: vec![ep("cccccccccccc0000", &["secret"], "10.2.0.2"), ep("bbbbbbbbbbbbffff", &["web"], "10.2.0.3")],
            },
        ])
    }

    #[test]
    fn lookup_table() {
        let t = table();
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let search = vec!["corp.example".to_string()];
        let cases: Vec<(&str, &str, &str, &str, u16, Lookup)> = vec![
            ("by name", "10.1.0.3", "10.1.0.1", "db", TYPE_A, Lookup::Addrs(vec![ip("10.1.0.2")])),
            ("by alias, any case", "10.1.0.3", "10.1.0.1", "REDIS", TYPE_A, Lookup::Addrs(vec![ip("10.1.0.2")])),
            ("short id", "10.1.0.3", "10.1.0.1", "aaaaaaaaaaaa", TYPE_A, Lookup::Addrs(vec![ip("10.1.0.2")])),
            ("search suffix", "10.1.0.3", "10.1.0.1", "db.corp.example", TYPE_A, Lookup::Addrs(vec![ip("10.1.0.2")])),
            ("no AAAA: empty", "10.1.0.3", "10.1.0.1", "db", TYPE_AAAA, Lookup::Addrs(vec![])),
            ("other network hidden", "10.1.0.2", "10.1.0.1", "secret", TYPE_A, Lookup::NoSuchName),
            ("other network hidden, even asked there", "10.1.0.2", "10.2.0.1", "secret", TYPE_A, Lookup::NoSuchName),
            ("both networks", "10.1.0.3", "10.1.0.1", "secret", TYPE_A, Lookup::Addrs(vec![ip("10.2.0.2")])),
            ("unknown sender: listen net", "10.9.9.9", "10.2.0.1", "secret", TYPE_A, Lookup::Addrs(vec![ip("10.2.0.2")])),
            ("unknown sender elsewhere", "10.9.9.9", "127.0.0.1", "db", TYPE_A, Lookup::Forward),
            ("dotted alias", "10.1.0.3", "10.1.0.1", "Cache.Internal", TYPE_A, Lookup::Addrs(vec![ip("10.1.0.2")])),
            ("dotted alias, other network", "10.2.0.2", "10.2.0.1", "cache.internal", TYPE_A, Lookup::Forward),
            ("dotted names forward", "10.1.0.3", "10.1.0.1", "db.example.com", TYPE_A, Lookup::Forward),
            ("link alias, for the linking container", "10.1.0.3", "10.1.0.1", "bar", TYPE_A, Lookup::Addrs(vec![ip("10.1.0.2")])),
            ("link alias, not for others", "10.1.0.2", "10.1.0.1", "bar", TYPE_A, Lookup::NoSuchName),
            ("ptr", "10.1.0.3", "10.1.0.1", "2.0.1.10.in-addr.arpa", TYPE_PTR, Lookup::Names(vec!["db".into()])),
            ("ptr elsewhere", "10.1.0.3", "10.1.0.1", "9.0.1.10.in-addr.arpa", TYPE_PTR, Lookup::Forward),
        ];
        for (what, src, local, name, ty, want) in cases {
            assert_eq!(t.lookup(ip(src), ip(local), name, ty, &search), want, "{what}");
        }
        assert_eq!(t.listen_addrs(), vec![ip("10.1.0.1"), ip("10.2.0.1")]);
    }

    #[test]
    fn upstream_choice() {
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let ns = PathBuf::from("/run/berth/netns/dddd");
        let up = |a: &str, ns: Option<&PathBuf>| Upstream { addr: ip(a), netns: ns.cloned() };
        let t = Table::new(vec![
            NetworkRecords {
                id: "n1".into(),
                name: "app".into(),
                listen: vec![ip("10.1.0.1")],
                endpoints: vec![
                    ep("aaaaaaaaaaaaffff", &["plain"], "10.1.0.2"),
                    Endpoint { dns: vec![ip("192.0.2.53"), ip("2001:db8::53")], ..ep("bbbbbbbbbbbbffff", &["own"], "10.1.0.3") },
                    Endpoint {
                        dns: vec![ip("127.0.0.1"), ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")],
                        netns: Some(ns.clone()),
                        ..ep("dddddddddddd0000", &["local"], "10.1.0.4")
                    },
                    Endpoint { dns: vec![ip("127.0.0.1")], ..ep("eeeeeeeeeeee0000", &["nons"], "10.1.0.5") },
                ],
            },
            // The container with its own servers is on a second network too: its
            // queries arriving from that network's address get the same upstreams.
            NetworkRecords {
                id: "n2".into(),
                name: "other".into(),
                listen: vec![ip("10.2.0.1")],
                endpoints: vec![Endpoint { dns: vec![ip("192.0.2.53"), ip("2001:db8::53")], ..ep("bbbbbbbbbbbbffff", &["own"], "10.2.0.3") }],
            },
        ]);
        let host = vec![ip("10.255.0.53"), ip("127.0.0.53"), ip("10.255.0.54"), ip("10.255.0.55")];
        let host_ups: Vec<Upstream> = host[..3].iter().map(|a| Upstream { addr: *a, netns: None }).collect();
        let cases: Vec<(&str, &str, &[IpAddr], Vec<Upstream>)> = vec![
            ("no --dns: the host's, three at most", "10.1.0.2", &host, host_ups.clone()),
            ("unknown sender: the host's", "10.9.9.9", &host, host_ups.clone()),
            ("--dns: its own, never the host's", "10.1.0.3", &host, vec![up("192.0.2.53", None), up("2001:db8::53", None)]),
            ("--dns, from its other network", "10.2.0.3", &host, vec![up("192.0.2.53", None), up("2001:db8::53", None)]),
            ("--dns, no host servers at all", "10.1.0.3", &[], vec![up("192.0.2.53", None), up("2001:db8::53", None)]),
            (
                "loopback --dns: asked in its namespace; three at most",
                "10.1.0.4",
                &host,
                vec![up("127.0.0.1", Some(&ns)), up("192.0.2.1", None), up("192.0.2.2", None)],
            ),
            ("loopback --dns without a namespace: none usable, still not the host's", "10.1.0.5", &host, vec![]),
            ("no --dns, no host servers", "10.1.0.2", &[], vec![]),
        ];
        for (what, src, host, want) in cases {
            assert_eq!(t.upstreams(ip(src), host), want, "{what}");
        }
    }

    #[test]
    fn records_file_format() {
        // Endpoints without --dns are written as before; ones with it carry `dns` (and
        // `netns` for a loopback server), and older files without them still load.
        let plain = ep("aaaaaaaaaaaaffff", &["db"], "10.1.0.2");
        let j = serde_json::to_value(&plain).expect("json");
        assert!(j.get("dns").is_none() && j.get("netns").is_none(), "{j}");
        let own = Endpoint { dns: vec!["127.0.0.1".parse().expect("ip")], netns: Some("/run/berth/netns/x".into()), ..plain.clone() };
        let j = serde_json::to_value(&own).expect("json");
        assert_eq!(j["dns"], serde_json::json!(["127.0.0.1"]));
        assert_eq!(j["netns"], serde_json::json!("/run/berth/netns/x"));
        let back: Endpoint = serde_json::from_value(j).expect("parse");
        assert_eq!(back, own);
        let old: Endpoint = serde_json::from_str(r#"{"id":"aaaaaaaaaaaaffff","names":["db"],"ipv4":["10.1.0.2"],"ipv6":[]}"#).expect("parse");
        assert_eq!(old, plain);
    }

    #[test]
    fn resolv_conf_parsing() {
        let (s, d) = parse_resolv_conf("# c\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nsearch A.example b.example.\noptions ndots:2\n");
        assert_eq!(s, vec!["10.0.0.53".parse::<IpAddr>().expect("ip"), "fe80::1".parse().expect("ip")]);
        assert_eq!(d, vec!["a.example".to_string(), "b.example".to_string()]);
    }

    #[test]
    fn load_dir_skips_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = NetworkRecords { id: "n1".into(), name: "app".into(), listen: vec!["10.1.0.1".parse().expect("ip")], endpoints: vec![] };
        std::fs::write(dir.path().join("n1.json"), serde_json::to_vec(&good).expect("json")).expect("write");
        std::fs::write(dir.path().join("n2.json"), b"{not json").expect("write");
        std::fs::write(dir.path().join(".n3.json.1.tmp"), b"partial").expect("write");
        let (t, errs) = load_dir(dir.path());
        assert_eq!(t.listen_addrs().len(), 1);
        assert_eq!(errs.len(), 1, "{errs:?}");
        let (t, errs) = load_dir(&dir.path().join("missing"));
        assert!(t.listen_addrs().is_empty() && errs.is_empty());
    }
}
