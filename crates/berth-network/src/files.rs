//! The `hosts` and `resolv.conf` files bind-mounted into a container: pure text
//! generation; the engine writes them into the container's directory.

/// `/etc/hosts` of a container without a network of its own yet.
pub fn hosts_file(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
    )
}

/// The host's resolv.conf without loopback name servers (unreachable from the
/// container's network namespace); Docker's public fallback when none remain.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("nameserver") {
            let addr = addr.trim();
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let r = resolv_conf("nameserver 127.0.0.53\nsearch x\n");
        assert!(!r.contains("127.0.0.53"));
        assert!(r.contains("nameserver 8.8.8.8"));
        let r = resolv_conf("nameserver 10.1.2.3\n");
        assert_eq!(r, "nameserver 10.1.2.3\n");
    }
}
