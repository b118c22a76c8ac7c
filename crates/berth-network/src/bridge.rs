//! The bridge driver's kernel work: a network's bridge (created idempotently, its
//! gateway address, `route_localnet` for published ports on 127.0.0.1), and one veth
//! pair per endpoint: the host end enslaved to the bridge, the peer created directly in
//! the container's namespace under its final name (`eth0`…) with its MAC and MTU, then
//! its address and default route. All through netlink; nothing is spawned.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::netlink::{sysctl, LinkAttrs, Netlink};

/// A bridge as the host should have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub gateway6: Option<(Ipv6Addr, u8)>,
    pub mtu: u32,
}

fn exists_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Creates (or completes) the bridge: link, addresses, up, `route_localnet`.
pub fn ensure_bridge(nl: &mut Netlink, b: &BridgeSpec) -> io::Result<u32> {
    exists_ok(nl.create_bridge(&b.name, &LinkAttrs { mtu: b.mtu, up: true, ..Default::default() }))?;
    let index = nl.link_index(&b.name)?.ok_or_else(|| io::Error::other(format!("bridge {} vanished", b.name)))?;
    exists_ok(nl.add_address(index, IpAddr::V4(b.gateway), b.prefix))?;
    if let Some((g6, p6)) = b.gateway6 {
        let _ = sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", b.name), "0");
        exists_ok(nl.add_address(index, IpAddr::V6(g6), p6))?;
    }
    nl.set_up(&b.name, true)?;
    // DNAT of 127.0.0.1 to a container needs loopback sources routable out the bridge.
    sysctl(&format!("net/ipv4/conf/{}/route_localnet", b.name), "1")?;
    Ok(index)
}

/// One endpoint to plumb.
#[derive(Clone, Debug)]
pub struct VethSpec {
    pub bridge_index: u32,
    pub host_ifname: String,
    /// `eth0`, `eth1`… inside the container.
    pub ifname: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub ipv4: Option<(Ipv4Addr, u8)>,
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// Set for the endpoint that carries the default route (not on internal networks).
    pub gateway: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
}

/// Creates the veth pair of `v`, the peer inside the namespace at `netns` (configured
/// through `ns`, a socket in that namespace). On failure the host end is removed.
pub fn attach(host: &mut Netlink, ns: &mut Netlink, netns: &Path, v: &VethSpec) -> io::Result<()> {
    let nsf = std::fs::File::open(netns)?;
    host.create_veth(
        &v.host_ifname,
        &LinkAttrs { mtu: v.mtu, master: Some(v.bridge_index), ..Default::default() },
        &v.ifname,
        &LinkAttrs { mtu: v.mtu, mac: Some(v.mac), netns_fd: Some(nsf.as_raw_fd()), ..Default::default() },
    )?;
    // Up only once both ends exist: a veth opened while its peer is being created
    // fails with ENOTCONN.
    let r = (|| {
        host.set_up(&v.host_ifname, true)?;
        let idx = ns.link_index(&v.ifname)?.ok_or_else(|| io::Error::other(format!("{} missing in the container", v.ifname)))?;
        ns.set_up(&v.ifname, true)?;
        if let Some((ip, p)) = v.ipv4 {
            ns.add_address(idx, IpAddr::V4(ip), p)?;
        }
        if let Some((ip, p)) = v.ipv6 {
            ns.add_address(idx, IpAddr::V6(ip), p)?;
        }
        if let Some(gw) = v.gateway {
            ns.add_default_route(idx, IpAddr::V4(gw))?;
        }
        if let Some(gw) = v.gateway6 {
            let _ = ns.add_default_route(idx, IpAddr::V6(gw));
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = host.delete_link(&v.host_ifname);
    }
    r
}

/// The host end's name: `veth` + 8 hex digits of the endpoint for the default daemon,
/// `vb<tag4><8 hex>` for others (interface names have at most 15 bytes).
pub fn host_ifname(tag: &str, endpoint_id: &str) -> String {
    let e = &endpoint_id[..8.min(endpoint_id.len())];
    if tag.is_empty() {
        format!("veth{e}")
    } else {
        format!("vb{}{e}", &tag[..4.min(tag.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_and_differ_per_daemon() {
        let a = host_ifname("", "0123456789abcdef");
        let b = host_ifname("deadbeef", "0123456789abcdef");
        assert_eq!(a, "veth01234567");
        assert_eq!(b, "vbdead01234567");
        assert!(b.len() <= 15);
    }
}

/// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): real bridge, namespace and veth pair,
/// removed at the end. Uses 10.250.<pid-derived>.0/30, a range nothing else here uses.
#[cfg(test)]
mod kernel_tests {
    use super::*;

    #[test]
    fn bridge_veth_and_namespace_are_real_and_cleaned_up() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let pid = std::process::id();
        let name = format!("bt{:x}", pid & 0xffffff);
        let dir = tempfile::tempdir().unwrap();
        let nsp = dir.path().join("ns");
        let mut host = Netlink::open().unwrap();
        let third = (pid % 250) as u8;
        let spec = BridgeSpec { name: name.clone(), gateway: Ipv4Addr::new(10, 250, third, 1), prefix: 30, gateway6: None, mtu: 1400 };
        let idx = ensure_bridge(&mut host, &spec).unwrap();
        assert_eq!(ensure_bridge(&mut host, &spec).unwrap(), idx, "idempotent");
        let mut ns = crate::netns::create(&nsp).unwrap();
        let hv = format!("vt{:x}", pid & 0xffffff);
        let v = VethSpec {
            bridge_index: idx,
            host_ifname: hv.clone(),
            ifname: "eth0".into(),
            mac: [2, 0x42, 10, 250, third, 2],
            mtu: 1400,
            ipv4: Some((Ipv4Addr::new(10, 250, third, 2), 30)),
            ipv6: None,
            gateway: Some(spec.gateway),
            gateway6: None,
        };
        attach(&mut host, &mut ns, &nsp, &v).unwrap();
        assert!(host.link_index(&hv).unwrap().is_some());
        assert!(ns.link_index("eth0").unwrap().is_some());
        // The gateway answers from inside the namespace: a TCP connect to a closed port
        // on it is refused (not unreachable), which proves routing and ARP over the veth.
        let gw = spec.gateway;
        let p2 = nsp.clone();
        let res = std::thread::spawn(move || {
            let f = std::fs::File::open(&p2).unwrap();
            berth_sys::process::setns(std::os::fd::AsFd::as_fd(&f), libc::CLONE_NEWNET).unwrap();
            std::net::TcpStream::connect_timeout(&(gw, 9).into(), std::time::Duration::from_secs(3)).map(|_| ()).map_err(|e| e.kind())
        })
        .join()
        .unwrap();
        assert_eq!(res, Err(io::ErrorKind::ConnectionRefused));
        drop(ns);
        host.delete_link(&hv).unwrap();
        crate::netns::remove(&nsp).unwrap();
        assert!(!nsp.exists());
        host.delete_link(&name).unwrap();
        assert!(host.link_index(&name).unwrap().is_none());
    }
}
