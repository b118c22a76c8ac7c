//! Minimal network-interface control without an `ip` binary.

use crate::check;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Brings the loopback interface `lo` up in the caller's network namespace
/// (SIOCGIFFLAGS / SIOCSIFFLAGS on a datagram socket).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) returns a fresh fd or -1.
    let raw = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data; zero is a valid initial state.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads/writes exactly one `ifreq`, which we pass by pointer.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) })?;
    // SAFETY: ifru_flags is the union member SIOCGIFFLAGS just filled.
    unsafe { ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above, one `ifreq` by pointer.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) })?;
    Ok(())
}

/// Reserves host port `port` of `proto` (`tcp`, `udp`, `sctp`) on `ip` by binding a
/// socket to it without listening: nothing is accepted on it (the kernel's DNAT carries
/// the traffic), but no other process can bind the port while the fd lives. An IPv6
/// socket is `IPV6_V6ONLY`, so `0.0.0.0:p` and `[::]:p` are two reservations, as
/// Docker's. Port 0 lets the kernel pick one from `ip_local_port_range`; the chosen port
/// is returned.
pub fn reserve_port(proto: &str, ip: std::net::IpAddr, port: u16) -> io::Result<(OwnedFd, u16)> {
    let (ty, p) = match proto {
        "tcp" => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        "udp" => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        "sctp" => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
        _ => return Err(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT)),
    };
    let family = if ip.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) returns a fresh fd or -1.
    let raw = check(unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, p) })?;
    // SAFETY: `raw` is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_storage is plain data; zero is a valid initial state.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        std::net::IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = port.to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.octets()) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::IpAddr::V6(a) => {
            let one: libc::c_int = 1;
            // SAFETY: the option value is one c_int passed by pointer with its size.
            check(unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            })?;
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.octets() };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `ss` holds a valid address of `len` bytes for the socket's family.
    check(unsafe { libc::bind(sock.as_raw_fd(), &ss as *const libc::sockaddr_storage as *const libc::sockaddr, len as libc::socklen_t) })?;
    let mut got = len as libc::socklen_t;
    // SAFETY: getsockname writes at most `got` bytes into `ss`.
    check(unsafe { libc::getsockname(sock.as_raw_fd(), &mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr, &mut got) })?;
    // SAFETY: the port field sits at the same offset in sockaddr_in and sockaddr_in6.
    let bound = unsafe { (*(&ss as *const libc::sockaddr_storage as *const libc::sockaddr_in)).sin_port };
    Ok((sock, u16::from_be(bound)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_block_other_binds() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let (fd, port) = reserve_port("tcp", lo, 0).unwrap();
        assert_ne!(port, 0);
        let e = reserve_port("tcp", lo, port).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        drop(fd);
        assert!(reserve_port("tcp", lo, port).is_ok());
        let (_u, up) = reserve_port("udp", lo, 0).unwrap();
        assert!(std::net::UdpSocket::bind(("127.0.0.1", up)).is_err());
    }
}
