//! IPAM, pure: IPv4 prefixes, the choice of a free subnet from Docker's default pools
//! (avoiding every range routed on the host and every other network), and the choice of
//! a free address in a network. Who holds which address is the caller's (the engine
//! rebuilds it from the container records at startup); nothing here touches the system
//! except [`host_routes`], which reads a `/proc/net/route`-format file given by path.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 prefix `a.b.c.d/len`, kept with its host bits (Docker keeps what was given for
/// `--subnet` only when the host bits are zero; [`Cidr4::parse_network`] checks that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr4 {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr4 {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Cidr4 {
        Cidr4 { addr, prefix: prefix.min(32) }
    }

    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The prefix with its host bits cleared.
    pub fn network(&self) -> Cidr4 {
        Cidr4 { addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()), prefix: self.prefix }
    }

    pub fn first(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    pub fn overlaps(&self, other: &Cidr4) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// `s` must be a network address (`10.1.0.0/16`, not `10.1.0.1/16`), as Docker's
    /// `--subnet` must.
    pub fn parse_network(s: &str) -> Result<Cidr4, String> {
        let c: Cidr4 = s.parse()?;
        if c.network() != c {
            return Err(format!("invalid subnet {s} : it should be {}", c.network()));
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr4 {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr4, String> {
        let bad = || format!("invalid CIDR address: {s}");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 || p.starts_with('+') || (p.len() > 1 && p.starts_with('0')) {
            return Err(bad());
        }
        Ok(Cidr4 { addr, prefix })
    }
}

impl Serialize for Cidr4 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Cidr4 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr4, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Docker's default address pools (`172.17-31.0.0/16`, then `192.168.0.0/16` cut into
/// /20s), in the order Docker tries them.
pub fn default_pools() -> impl Iterator<Item = Cidr4> {
    let sixteens = (17u8..=31).map(|b| Cidr4::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0u8..16).map(|i| Cidr4::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    sixteens.chain(twenties)
}

/// The first default pool that overlaps none of `taken` (host routes, other networks).
pub fn choose_subnet(taken: &[Cidr4]) -> Option<Cidr4> {
    default_pools().find(|p| !taken.iter().any(|t| t.prefix > 0 && t.overlaps(p)))
}

/// The IPv4 destinations routed on the host, from a file in `/proc/net/route`'s format
/// (hex, little-endian destination and mask); the default route (mask 0) is left out.
pub fn parse_routes(text: &str) -> Vec<Cidr4> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16)) else {
            continue;
        };
        // The kernel prints the address's bytes as a host-order (little-endian) u32.
        if mask == 0 {
            continue;
        }
        out.push(Cidr4::new(Ipv4Addr::from(dst.to_le_bytes()), mask.count_ones() as u8));
    }
    out
}

/// [`parse_routes`] of the file at `path` (`/proc/net/route`); unreadable means none.
pub fn host_routes(path: &Path) -> Vec<Cidr4> {
    std::fs::read_to_string(path).map(|t| parse_routes(&t)).unwrap_or_default()
}

/// The gateway Docker gives a subnet: its first address.
pub fn default_gateway(subnet: &Cidr4) -> Ipv4Addr {
    Ipv4Addr::from(subnet.first().saturating_add(1))
}

/// The lowest address of `range` (or of `subnet`) that is neither the network nor the
/// broadcast address, nor in `used` (the gateway, aux addresses and every address handed
/// out). Docker's allocator hands out the lowest free address too.
pub fn next_free(subnet: &Cidr4, range: Option<&Cidr4>, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let pool = range.unwrap_or(subnet);
    let (lo, hi) = (pool.first().max(subnet.first()), pool.last().min(subnet.last()));
    let mut a = lo;
    loop {
        let ip = Ipv4Addr::from(a);
        let edge = subnet.prefix < 31 && (a == subnet.first() || a == subnet.last());
        if !edge && !used.contains(&ip) {
            return Some(ip);
        }
        if a >= hi {
            return None;
        }
        a += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr4 {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_display() {
        for (s, ok) in [("10.0.0.0/8", true), ("10.0.0.0/33", false), ("10.0.0/8", false), ("10.0.0.0", false), ("1.2.3.4/01", false)] {
            assert_eq!(s.parse::<Cidr4>().is_ok(), ok, "{s}");
        }
        assert_eq!(c("10.1.2.3/16").network().to_string(), "10.1.0.0/16");
        assert_eq!(Cidr4::parse_network("10.1.2.3/16").unwrap_err(), "invalid subnet 10.1.2.3/16 : it should be 10.1.0.0/16");
        assert!(c("10.0.0.0/8").overlaps(&c("10.5.0.0/16")));
        assert!(!c("10.0.0.0/16").overlaps(&c("10.1.0.0/16")));
    }

    #[test]
    fn subnet_avoids_routes_and_networks() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "172.17.0.0/16"),
            (&["172.17.0.0/16"], "172.18.0.0/16"),
            (&["172.16.0.0/12"], "192.168.0.0/20"),
            (&["172.16.0.0/12", "192.168.0.0/24"], "192.168.16.0/20"),
            (&["0.0.0.0/0"], "172.17.0.0/16"),
        ];
        for (taken, want) in cases {
            let t: Vec<Cidr4> = taken.iter().map(|s| c(s)).collect();
            assert_eq!(choose_subnet(&t).unwrap().to_string(), *want, "{taken:?}");
        }
    }

    #[test]
    fn proc_net_route_parses() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r: Vec<String> = parse_routes(text).iter().map(|c| c.to_string()).collect();
        assert_eq!(r, ["172.17.0.0/16", "10.0.0.0/24"]);
    }

    #[test]
    fn addresses_lowest_free() {
        let s = c("10.0.0.0/29");
        let mut used: BTreeSet<Ipv4Addr> = [Ipv4Addr::new(10, 0, 0, 1)].into();
        let mut got = Vec::new();
        while let Some(ip) = next_free(&s, None, &used) {
            used.insert(ip);
            got.push(ip.to_string());
        }
        assert_eq!(got, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        let r = c("10.0.0.4/30");
        assert_eq!(next_free(&s, Some(&r), &BTreeSet::new()), Some(Ipv4Addr::new(10, 0, 0, 4)));
        assert_eq!(default_gateway(&c("172.18.0.0/16")), Ipv4Addr::new(172, 18, 0, 1));
    }
}
