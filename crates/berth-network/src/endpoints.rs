//! The endpoint settings a container reports (`NetworkSettings.Networks`) while Berth
//! has no networks of its own: one empty endpoint named after the network mode.

use std::collections::BTreeMap;

use berth_api::EndpointSettings;

/// `{"<mode>": {}}`, the mode defaulting to `bridge` as Docker's does.
pub fn endpoints(network_mode: &str) -> BTreeMap<String, EndpointSettings> {
    let mut m = BTreeMap::new();
    let mode = if network_mode.is_empty() { "bridge" } else { network_mode };
    m.insert(mode.to_string(), EndpointSettings::default());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_endpoint_named_after_the_mode() {
        for (mode, want) in [("", "bridge"), ("bridge", "bridge"), ("host", "host"), ("none", "none")] {
            let m = endpoints(mode);
            assert_eq!(m.keys().collect::<Vec<_>>(), [want], "{mode:?}");
        }
    }
}
