//! `--cache-from` matching by history, as Docker's classic builder does it for images
//! that carry no local cache entries (pulled or loaded ones): a source image serves a
//! step when the current image is a prefix of it (the same history entries and the same
//! layer diff ids, in order) and the source's next history entry was created by the
//! same instruction text (`created_by`). Pure: the executor turns a match into an image.

use serde_json::Value;

/// What a source image offers for one step.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceStep {
    /// The source's history entry for this step, copied verbatim into the new image.
    pub entry: Value,
    /// The layer diff id the step adds (None: an `empty_layer` step).
    pub layer: Option<String>,
    /// The step is the source's last one: the source image itself is the result.
    pub last: bool,
}

fn history(raw: &Value) -> &[Value] {
    raw.get("history").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn diff_ids(raw: &Value) -> Vec<&str> {
    raw.get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn empty_layer(entry: &Value) -> bool {
    entry.get("empty_layer").and_then(Value::as_bool).unwrap_or(false)
}

/// Whether `parent` (an image config; `Value::Null` for `scratch`) is a prefix of
/// `source`: Docker's `isValidParent`.
pub fn is_prefix(parent: &Value, source: &Value) -> bool {
    let (sh, ph) = (history(source), history(parent));
    if sh.is_empty() {
        return false;
    }
    let (sd, pd) = (diff_ids(source), diff_ids(parent));
    if ph.is_empty() && pd.is_empty() {
        return true;
    }
    if ph.len() >= sh.len() || pd.len() > sd.len() {
        return false;
    }
    ph.iter().zip(sh).all(|(a, b)| a == b) && pd.iter().zip(&sd).all(|(a, b)| a == b)
}

/// The step `source` offers on top of `parent` for an instruction whose history text is
/// `created_by`, if any.
pub fn match_step(parent: &Value, source: &Value, created_by: &str) -> Option<SourceStep> {
    if !is_prefix(parent, source) {
        return None;
    }
    let sh = history(source);
    let n = history(parent).len();
    let entry = sh.get(n)?;
    if entry.get("created_by").and_then(Value::as_str) != Some(created_by) {
        return None;
    }
    let layer = if empty_layer(entry) {
        None
    } else {
        let index = sh[..n].iter().filter(|e| !empty_layer(e)).count();
        Some(diff_ids(source).get(index)?.to_string())
    };
    Some(SourceStep { entry: entry.clone(), layer, last: n + 1 == sh.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn img(hist: &[(&str, bool)], diffs: &[&str]) -> Value {
        let h: Vec<Value> = hist
            .iter()
            .map(|(c, e)| if *e { json!({"created_by": c, "empty_layer": true}) } else { json!({"created_by": c}) })
            .collect();
        json!({"history": h, "rootfs": {"type": "layers", "diff_ids": diffs}})
    }

    #[test]
    fn matches_like_dockers_image_cache() {
        let base = img(&[("ADD rootfs", false), ("CMD sh", true)], &["d0"]);
        let src = img(&[("ADD rootfs", false), ("CMD sh", true), ("RUN a", false), ("ENV x", true), ("RUN b", false)], &["d0", "d1", "d2"]);
        let after_a = img(&[("ADD rootfs", false), ("CMD sh", true), ("RUN a", false)], &["d0", "d1"]);
        let after_env = img(&[("ADD rootfs", false), ("CMD sh", true), ("RUN a", false), ("ENV x", true)], &["d0", "d1"]);
        let other_base = img(&[("ADD other", false)], &["o0"]);
        let (null, no_history) = (Value::Null, json!({}));
        let other_diffs = img(&[("ADD rootfs", false), ("CMD sh", true)], &["dX"]);
        let short_src = img(&[("ADD rootfs", false), ("CMD sh", true), ("RUN a", false)], &["d0"]);
        let step = |layer: Option<&str>, last: bool, c: &str| {
            Some(SourceStep {
                entry: if layer.is_none() { json!({"created_by": c, "empty_layer": true}) } else { json!({"created_by": c}) },
                layer: layer.map(String::from),
                last,
            })
        };
        let cases: Vec<(&str, &Value, &Value, &str, Option<SourceStep>)> = vec![
            ("first RUN after the base", &base, &src, "RUN a", step(Some("d1"), false, "RUN a")),
            ("config-only step", &after_a, &src, "ENV x", step(None, false, "ENV x")),
            ("last step is the source itself", &after_env, &src, "RUN b", step(Some("d2"), true, "RUN b")),
            ("other instruction text", &base, &src, "RUN z", None),
            ("other base image", &other_base, &src, "RUN a", None),
            ("parent as long as the source", &src, &src, "RUN a", None),
            ("scratch parent, first entry", &null, &src, "ADD rootfs", step(Some("d0"), false, "ADD rootfs")),
            ("source without history", &base, &no_history, "RUN a", None),
            ("diff ids differ", &other_diffs, &src, "RUN a", None),
            ("layer missing from the source", &base, &short_src, "RUN a", None),
        ];
        for (name, parent, source, created_by, want) in cases {
            assert_eq!(match_step(parent, source, created_by), want, "{name}");
        }
    }
}
