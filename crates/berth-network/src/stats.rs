//! Per-interface counters for `docker stats` (`networks`): `/proc/<pid>/net/dev` of the
//! container's init, read in its network namespace by the kernel, parsed here.

use serde_json::{json, Map, Value};

/// `{"eth0": {"rx_bytes": …, "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", …}}`
/// for every interface but `lo`, from the text of a `/proc/<pid>/net/dev`.
pub fn parse_net_dev(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
            }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_per_interface_without_lo() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
            eth0:    1296      12    1    2    0     0          0         0      516       6    3    4    0     0       0          0\n";
        let v = parse_net_dev(text);
        assert_eq!(v, json!({"eth0": {"rx_bytes": 1296, "rx_packets": 12, "rx_errors": 1, "rx_dropped": 2, "tx_bytes": 516, "tx_packets": 6, "tx_errors": 3, "tx_dropped": 4}}));
    }
}
