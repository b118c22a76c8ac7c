//! Disk usage by image, as `docker system df -v` shows it: an image's layers that at
//! least one other image also uses are its SHARED SIZE (Docker counts, per chain id,
//! how many images reference it; layers referenced more than once are shared); the
//! rest of its size is its UNIQUE SIZE.

use std::collections::BTreeMap;

use super::*;

/// Per image id, the bytes of its layers that another image uses too.
pub(crate) fn shared_sizes(records: &[(String, Vec<String>)], layer_size: &dyn Fn(&str) -> u64) -> BTreeMap<String, u64> {
    let mut refs: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, chains) in records {
        for c in chains {
            *refs.entry(c.as_str()).or_insert(0) += 1;
        }
    }
    records
        .iter()
        .map(|(id, chains)| {
            let shared = chains.iter().filter(|c| refs.get(c.as_str()).copied().unwrap_or(0) > 1).map(|c| layer_size(c)).sum();
            (id.clone(), shared)
        })
        .collect()
}

impl ImageStore {
    /// `SharedSize` of every image (`GET /system/df`), by image id.
    pub fn shared_sizes(&self) -> BTreeMap<String, u64> {
        // The records under the lock; the layers' size files read outside it.
        let records: Vec<(String, Vec<String>)> = match self.lock() {
            Ok(st) => st.images.iter().map(|(id, e)| (id.clone(), e.record.chain_ids.clone())).collect(),
            Err(_) => return BTreeMap::new(),
        };
        shared_sizes(&records, &|c| self.layer_size(c).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_is_what_another_image_uses() {
        let rec = |id: &str, cs: &[&str]| (id.to_string(), cs.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        let size = |c: &str| match c {
            "base" => 100,
            "mid" => 10,
            "a" => 1,
            "b" => 2,
            _ => 1000,
        };
        struct Case {
            name: &'static str,
            records: Vec<(String, Vec<String>)>,
            want: &'static [(&'static str, u64)],
        }
        let cases = [
            Case { name: "alone", records: vec![rec("x", &["base", "a"])], want: &[("x", 0)] },
            Case {
                name: "common base",
                records: vec![rec("x", &["base", "a"]), rec("y", &["base", "b"])],
                want: &[("x", 100), ("y", 100)],
            },
            Case {
                name: "three images, two share more",
                records: vec![rec("x", &["base", "mid", "a"]), rec("y", &["base", "mid", "b"]), rec("z", &["base"])],
                want: &[("x", 110), ("y", 110), ("z", 100)],
            },
            Case { name: "none", records: vec![], want: &[] },
        ];
        for c in cases {
            let got = shared_sizes(&c.records, &size);
            let want: BTreeMap<String, u64> = c.want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            assert_eq!(got, want, "{}", c.name);
        }
    }
}
