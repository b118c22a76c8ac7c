//! Published ports, pure: `PortBindings` (and `-P` over the exposed ports) planned into
//! concrete host reservations, and the views Docker shows of them (`NetworkSettings.
//! Ports`, the `Ports` of `/containers/json`). Which host port a random or ranged
//! binding gets is decided by the caller through a probe (it binds sockets).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_api::{Port, PortBinding};

/// `80/tcp`, `8000-8010/udp` → (proto, first, last).
pub fn parse_port_key(key: &str) -> Result<(String, u16, u16), String> {
    let (ports, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = if proto.is_empty() { "tcp" } else { proto }.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let (lo, hi) = parse_range(ports).map_err(|_| format!("invalid containerPort: {ports}"))?;
    if lo == 0 {
        return Err(format!("invalid containerPort: {ports}"));
    }
    Ok((proto, lo, hi))
}

/// `8080` or `8000-8010`; empty → (0, 0) (random).
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let lo: u16 = a.parse().map_err(|_| format!("invalid port range: {s}"))?;
    let hi: u16 = b.parse().map_err(|_| format!("invalid port range: {s}"))?;
    if hi < lo {
        return Err(format!("invalid port range: {s}"));
    }
    Ok((lo, hi))
}

/// One wanted binding: a container port and where on the host it may go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub proto: String,
    pub container_port: u16,
    /// `None`: every address, IPv4 and IPv6 (Docker reports `0.0.0.0` and `::`).
    pub host_ip: Option<IpAddr>,
    /// Candidate host ports, tried in order; (0, 0) = any.
    pub host_lo: u16,
    pub host_hi: u16,
}

/// The bindings to make, from `PortBindings` and, with `publish_all`, every exposed
/// port without one. Docker's texts for bad specs.
pub fn plan(
    bindings: Option<&BTreeMap<String, Option<Vec<PortBinding>>>>,
    exposed: Option<&BTreeMap<String, serde_json::Value>>,
    publish_all: bool,
) -> Result<Vec<Wanted>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (key, list) in bindings.into_iter().flatten() {
        let (proto, lo, hi) = parse_port_key(key)?;
        let list = list.clone().unwrap_or_default();
        let list = if list.is_empty() { vec![PortBinding::default()] } else { list };
        for b in list {
            let host_ip = if b.host_ip.is_empty() {
                None
            } else {
                Some(b.host_ip.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>().map_err(|_| format!("invalid host IP: {}", b.host_ip))?)
            };
            let (hlo, hhi) = parse_range(&b.host_port).map_err(|_| format!("invalid hostPort: {}", b.host_port))?;
            for (i, cp) in (lo..=hi).enumerate() {
                // A container range maps one-to-one onto a host range of the same size.
                let (l, h) = if hi > lo && hlo != 0 {
                    if hhi - hlo != hi - lo {
                        return Err(format!("invalid ranges specified for container and host Ports: {}-{} and {}-{}", lo, hi, hlo, hhi));
                    }
                    (hlo + i as u16, hlo + i as u16)
                } else {
                    (hlo, hhi)
                };
                seen.insert((proto.clone(), cp));
                out.push(Wanted { proto: proto.clone(), container_port: cp, host_ip, host_lo: l, host_hi: h });
            }
        }
    }
    if publish_all {
        for key in exposed.into_iter().flat_map(|e| e.keys()) {
            let (proto, lo, hi) = parse_port_key(key)?;
            for cp in lo..=hi {
                if seen.insert((proto.clone(), cp)) {
                    out.push(Wanted { proto: proto.clone(), container_port: cp, host_ip: None, host_lo: 0, host_hi: 0 });
                }
            }
        }
    }
    Ok(out)
}

/// A binding made: one reserved host address and port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bound {
    pub proto: String,
    pub container_port: u16,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

/// The host addresses a wanted binding reserves: its own, or `0.0.0.0` and `::`.
pub fn host_addrs(w: &Wanted) -> Vec<IpAddr> {
    match w.host_ip {
        Some(ip) => vec![ip],
        None => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)],
    }
}

/// `NetworkSettings.Ports`: every exposed port (unpublished ones `null`), each bound one
/// with its host addresses.
pub fn settings_ports(
    exposed: Option<&BTreeMap<String, serde_json::Value>>,
    bound: &[Bound],
) -> BTreeMap<String, Option<Vec<PortBinding>>> {
    let mut m: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for k in exposed.into_iter().flat_map(|e| e.keys()) {
        if let Ok((proto, lo, hi)) = parse_port_key(k) {
            for p in lo..=hi {
                m.entry(format!("{p}/{proto}")).or_insert(None);
            }
        }
    }
    for b in bound {
        m.entry(format!("{}/{}", b.container_port, b.proto))
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding { host_ip: b.host_ip.to_string(), host_port: b.host_port.to_string() });
    }
    m
}

/// The `Ports` of `/containers/json` for a running container, in Docker's order.
pub fn summary_ports(ports: &BTreeMap<String, Option<Vec<PortBinding>>>) -> Vec<Port> {
    let mut out = Vec::new();
    for (k, v) in ports {
        let Ok((proto, p, _)) = parse_port_key(k) else { continue };
        match v {
            Some(list) if !list.is_empty() => {
                for b in list {
                    out.push(Port {
                        ip: Some(b.host_ip.clone()),
                        private_port: p,
                        public_port: b.host_port.parse().ok(),
                        kind: proto.clone(),
                    });
                }
            }
            _ => out.push(Port { ip: None, private_port: p, public_port: None, kind: proto.clone() }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pb(ip: &str, port: &str) -> PortBinding {
        PortBinding { host_ip: ip.into(), host_port: port.into() }
    }

    #[test]
    fn plans_bindings_ranges_and_publish_all() {
        let mut b = BTreeMap::new();
        b.insert("80/tcp".to_string(), Some(vec![pb("", "8080")]));
        b.insert("53/udp".to_string(), Some(vec![pb("127.0.0.1", "")]));
        b.insert("7000-7001/tcp".to_string(), Some(vec![pb("", "9000-9001")]));
        let mut e = BTreeMap::new();
        e.insert("80/tcp".to_string(), json!({}));
        e.insert("443/tcp".to_string(), json!({}));
        let w = plan(Some(&b), Some(&e), true).unwrap();
        let got: Vec<(String, u16, Option<String>, u16, u16)> =
            w.iter().map(|w| (w.proto.clone(), w.container_port, w.host_ip.map(|i| i.to_string()), w.host_lo, w.host_hi)).collect();
        assert_eq!(
            got,
            vec![
                ("udp".into(), 53, Some("127.0.0.1".into()), 0, 0),
                ("tcp".into(), 7000, None, 9000, 9000),
                ("tcp".into(), 7001, None, 9001, 9001),
                ("tcp".into(), 80, None, 8080, 8080),
                ("tcp".into(), 443, None, 0, 0),
            ]
        );
        let mut bad = BTreeMap::new();
        bad.insert("7000-7001/tcp".to_string(), Some(vec![pb("", "9000-9005")]));
        assert!(plan(Some(&bad), None, false).unwrap_err().starts_with("invalid ranges specified"));
        for k in ["x/tcp", "80/icmp", "0/tcp"] {
            assert!(parse_port_key(k).is_err(), "{k}");
        }
    }

    #[test]
    fn views_match_dockers() {
        let mut e = BTreeMap::new();
        e.insert("80/tcp".to_string(), json!({}));
        e.insert("443/tcp".to_string(), json!({}));
        let bound = vec![
            Bound { proto: "tcp".into(), container_port: 80, host_ip: "0.0.0.0".parse().unwrap(), host_port: 8080 },
            Bound { proto: "tcp".into(), container_port: 80, host_ip: "::".parse().unwrap(), host_port: 8080 },
        ];
        let s = settings_ports(Some(&e), &bound);
        assert_eq!(serde_json::to_value(&s).unwrap(), json!({"443/tcp": null, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}]}));
        let p = summary_ports(&s);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].private_port, p[0].public_port), (443, None));
        assert_eq!((p[1].ip.as_deref(), p[1].public_port), (Some("0.0.0.0"), Some(8080)));
    }
}
