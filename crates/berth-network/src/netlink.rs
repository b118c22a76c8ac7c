//! A small rtnetlink client, written by hand over nix's safe socket calls: links
//! (bridges, veth pairs, up/down, delete), IPv4/IPv6 addresses and routes. Every request
//! asks for an ACK and waits for it, so one call is one round trip. A socket works in
//! the network namespace it was created in: [`Netlink::open`] in the caller's, and
//! `netns.rs` opens one inside a container's namespace from a thread that joined it.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const IFF_UP: u32 = 1;

/// A netlink message under construction: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
    /// Open nested attributes: their offsets.
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set at send
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel's
        Msg { buf, nests: Vec::new() }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// `struct ifinfomsg`.
    fn ifinfo(mut self, family: u8, index: i32, flags: u32, change: u32) -> Msg {
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        self.pad();
        self.buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn attr_str(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(ty, &d)
    }

    fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Msg {
        self.attr(ty, &v.to_ne_bytes())
    }

    fn begin(&mut self, ty: u16) -> &mut Msg {
        self.pad();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        if let Some(off) = self.nests.pop() {
            let len = (self.buf.len() - off) as u16;
            self.buf[off..off + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        self.pad();
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A link to create or change, in plain values.
#[derive(Clone, Debug, Default)]
pub struct LinkAttrs {
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    pub master: Option<u32>,
    /// A network namespace to put the link in (an fd of its nsfs file).
    pub netns_fd: Option<RawFd>,
    pub up: bool,
}

/// A route-netlink socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)
            .map_err(nix_err)?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(nix_err)?;
        Ok(Netlink { fd, seq: 1 })
    }

    /// Sends `m` and waits for its ACK; with `reply`, the first answer message's
    /// payload (after the netlink header) is returned too.
    fn request(&mut self, m: Msg) -> io::Result<Option<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let data = m.finish(seq);
        socket::send(self.fd.as_raw_fd(), &data, MsgFlags::empty()).map_err(nix_err)?;
        let mut buf = vec![0u8; 32 * 1024];
        let mut reply = None;
        loop {
            let n = socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(nix_err)?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
                let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let mseq = u32::from_ne_bytes([buf[off + 8], buf[off + 9], buf[off + 10], buf[off + 11]]);
                if len < 16 || off + len > n {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "short netlink message"));
                }
                if mseq == seq {
                    match ty {
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
                            return if code == 0 { Ok(reply) } else { Err(io::Error::from_raw_os_error(-code)) };
                        }
                        NLMSG_DONE => return Ok(reply),
                        _ => {
                            if reply.is_none() {
                                reply = Some(buf[off + 16..off + len].to_vec());
                            }
                        }
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// The index of link `name`, `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut m = Msg::new(RTM_GETLINK, 0).ifinfo(0, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.request(m) {
            Ok(Some(p)) if p.len() >= 8 => Ok(Some(u32::from_ne_bytes([p[4], p[5], p[6], p[7]]))),
            Ok(_) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link_common(m: &mut Msg, a: &LinkAttrs) {
        if a.mtu > 0 {
            m.attr_u32(IFLA_MTU, a.mtu);
        }
        if let Some(mac) = a.mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        if let Some(master) = a.master {
            m.attr_u32(IFLA_MASTER, master);
        }
        if let Some(fd) = a.netns_fd {
            m.attr_u32(IFLA_NET_NS_FD, fd as u32);
        }
    }

    /// Creates bridge `name` (EEXIST when it exists).
    pub fn create_bridge(&mut self, name: &str, a: &LinkAttrs) -> io::Result<()> {
        let up = if a.up { IFF_UP } else { 0 };
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, up, up);
        m.attr_str(IFLA_IFNAME, name);
        Self::link_common(&mut m, a);
        m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, "bridge").end();
        self.request(m).map(|_| ())
    }

    /// Creates the veth pair `host` / `peer` in one request: `host` with `ha`
    /// (master, up, MTU), `peer` with `pa` (typically moved into a container's netns,
    /// its name, MAC and MTU set there).
    pub fn create_veth(&mut self, host: &str, ha: &LinkAttrs, peer: &str, pa: &LinkAttrs) -> io::Result<()> {
        let up = if ha.up { IFF_UP } else { 0 };
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, up, up);
        m.attr_str(IFLA_IFNAME, host);
        Self::link_common(&mut m, ha);
        m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, "veth").begin(IFLA_INFO_DATA).begin(VETH_INFO_PEER);
        // The peer's attributes follow its own ifinfomsg.
        let pup = if pa.up { IFF_UP } else { 0 };
        m.buf.extend_from_slice(&[0, 0]);
        m.buf.extend_from_slice(&0u16.to_ne_bytes());
        m.buf.extend_from_slice(&0i32.to_ne_bytes());
        m.buf.extend_from_slice(&pup.to_ne_bytes());
        m.buf.extend_from_slice(&pup.to_ne_bytes());
        m.attr_str(IFLA_IFNAME, peer);
        Self::link_common(&mut m, pa);
        m.end().end().end();
        self.request(m).map(|_| ())
    }

    /// Sets link `name` up (or down).
    pub fn set_up(&mut self, name: &str, up: bool) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0).ifinfo(0, 0, if up { IFF_UP } else { 0 }, IFF_UP);
        m.attr_str(IFLA_IFNAME, name);
        self.request(m).map(|_| ())
    }

    /// Deletes link `name`; a missing link is not an error.
    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_DELLINK, 0).ifinfo(0, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.request(m) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Adds `ip/prefix` to link `index` (EEXIST when it is there).
    pub fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        let (family, bytes, flags) = match ip {
            IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec(), 0),
            IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec(), IFA_F_NODAD),
        };
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        m.buf.extend_from_slice(&[family, prefix, flags, 0]);
        m.buf.extend_from_slice(&index.to_ne_bytes());
        m.attr(IFA_LOCAL, &bytes);
        m.attr(IFA_ADDRESS, &bytes);
        self.request(m).map(|_| ())
    }

    /// Adds the default route via `gw` out of link `index`.
    pub fn add_default_route(&mut self, index: u32, gw: IpAddr) -> io::Result<()> {
        let (family, bytes) = match gw {
            IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
            IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
        };
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // family, dst_len, src_len, tos, table main, proto boot, scope universe, unicast
        m.buf.extend_from_slice(&[family, 0, 0, 0, 254, 3, 0, 1]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &bytes);
        m.attr_u32(RTA_OIF, index);
        let _ = RTA_DST;
        self.request(m).map(|_| ())
    }
}

/// Sets a sysctl under `/proc/sys` (`net/ipv4/ip_forward`) if it differs.
pub fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let p = std::path::Path::new("/proc/sys").join(key);
    if std::fs::read_to_string(&p).map(|v| v.trim() == value).unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(&p, value)
}

/// A host-wide lock (flock on `path`) held while a daemon picks a subnet and brings its
/// bridge up, so two daemons never pick the same free range: the second sees the first's
/// route once it gets the lock.
pub fn host_lock(path: &std::path::Path) -> io::Result<nix::fcntl::Flock<std::fs::File>> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| nix_err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE).ifinfo(0, 0, IFF_UP, IFF_UP);
        m.attr_str(IFLA_IFNAME, "br0");
        m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, "bridge").end();
        let b = m.finish(7);
        assert!(b.len().is_multiple_of(4));
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize, b.len());
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 7);
        // header 16 + ifinfomsg 16, then IFLA_IFNAME (4 + "br0\0")
        assert_eq!(u16::from_ne_bytes([b[32], b[33]]), 8);
        assert_eq!(&b[36..40], b"br0\0");
        // LINKINFO nest covers its kind attribute: 4 + (4 + "bridge\0" padded to 8)
        assert_eq!(u16::from_ne_bytes([b[40], b[41]]), 4 + 4 + 8);
        assert_eq!(u16::from_ne_bytes([b[42], b[43]]), IFLA_LINKINFO);
    }
}

