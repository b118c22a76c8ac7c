//! The `filters` query parameter: both JSON forms, and the keys each endpoint takes.

use serde_json::Value;
use std::collections::BTreeMap;

/// The filter keys each endpoint accepts, as Docker's daemon lists them; any other key
/// is refused with [`check_filter_keys`].
pub mod filter_keys {
    pub const CONTAINER_LIST: &[&str] = &[
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "is-task",
        "isolation",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    ];
    pub const CONTAINER_PRUNE: &[&str] = &["label", "label!", "until"];
    pub const IMAGE_PRUNE: &[&str] = &["dangling", "label", "label!", "until"];
    pub const EVENTS: &[&str] = &[
        "config",
        "container",
        "daemon",
        "event",
        "image",
        "label",
        "network",
        "node",
        "plugin",
        "scope",
        "secret",
        "service",
        "type",
        "volume",
    ];
}

/// Refuses a filter key the endpoint does not know: Docker's `invalid filter 'foo'`.
pub fn check_filter_keys(
    filters: &BTreeMap<String, Vec<String>>,
    accepted: &[&str],
) -> Result<(), String> {
    match filters.keys().find(|k| !accepted.contains(&k.as_str())) {
        Some(k) => Err(format!("invalid filter '{k}'")),
        None => Ok(()),
    }
}

/// Filters travel as JSON in the query: `{"name":{"web":true}}` (map form) or
/// `{"name":["web"]}` (list form, older clients). Both decode to name → values.
pub fn parse_filters(raw: &str) -> Result<BTreeMap<String, Vec<String>>, serde_json::Error> {
    let mut out = BTreeMap::new();
    if raw.trim().is_empty() {
        return Ok(out);
    }
    let v: BTreeMap<String, Value> = serde_json::from_str(raw)?;
    for (k, v) in v {
        let vals: Vec<String> = match v {
            Value::Object(m) => m
                .into_iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(true))
                .map(|(s, _)| s)
                .collect(),
            Value::Array(a) => a
                .into_iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            Value::String(s) => vec![s],
            _ => Vec::new(),
        };
        out.insert(k, vals);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn filters_in_both_forms() {
        let f = parse_filters(r#"{"name":{"web":true},"status":["exited"]}"#).expect("parse");
        assert_eq!(f["name"], vec!["web"]);
        assert_eq!(f["status"], vec!["exited"]);
        assert!(parse_filters("").expect("empty").is_empty());
        assert_eq!(check_filter_keys(&f, filter_keys::CONTAINER_LIST), Ok(()));
        assert_eq!(
            check_filter_keys(&f, filter_keys::CONTAINER_PRUNE),
            Err("invalid filter 'name'".to_string())
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
            /// Any query text: parsed or refused, never a panic; a parsed one has only
            /// string values and key checks answer in Docker's words.
            #[test]
            fn filters_never_panic(raw in "\\PC{0,64}") {
                if let Ok(f) = parse_filters(&raw) {
                    if let Err(m) = check_filter_keys(&f, filter_keys::CONTAINER_PRUNE) {
                        prop_assert!(m.starts_with("invalid filter '"));
                    }
                }
            }

            /// Filters shaped like the real ones, in both the map and the list forms.
            #[test]
            fn filter_forms_agree(key in "[a-z!]{1,8}", vals in prop::collection::btree_set("[ -~]{0,10}", 0..4)) {
                let vals: Vec<String> = vals.into_iter().collect();
                let map: serde_json::Map<String, Value> = vals.iter().map(|v| (v.clone(), Value::Bool(true))).collect();
                let as_map = serde_json::json!({ key.clone(): map }).to_string();
                let as_list = serde_json::json!({ key.clone(): vals.clone() }).to_string();
                let a = parse_filters(&as_map).expect("map form");
                let b = parse_filters(&as_list).expect("list form");
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(a.get(&key).cloned().unwrap_or_default(), vals);
            }
        }
    }
}
