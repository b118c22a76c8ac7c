//! The reference map (`repositories.json`: tags and digests → image id) and name
//! resolution: by reference, by full id or by a unique id prefix, with Docker's rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::*;
use crate::error::StoreError;
use crate::reference::{is_full_hex_id, Reference};

/// `repositories.json`, in Docker's shape:
/// `{"Repositories":{"alpine":{"alpine:latest":"sha256:…"}}}`.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct RepositoriesFile {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// Loads `repositories.json` into `state` (references to unknown images are dropped)
/// and removes the temporary files of an interrupted write.
pub(super) fn load_repositories(root: &Path, state: &mut State) -> Result<(), StoreError> {
    let repos_path = root.join("repositories.json");
    if repos_path.exists() {
        let raw = fs::read(&repos_path).map_err(|e| StoreError::io("read", &repos_path, e))?;
        let file: RepositoriesFile = serde_json::from_slice(&raw).map_err(|e| {
            StoreError::Corrupt { path: repos_path.clone(), message: e.to_string() }
        })?;
        for (_, refs) in file.repositories {
            for (r, id) in refs {
                if state.images.contains_key(&id) {
                    state.refs.insert(r, id);
                }
            }
        }
    }
    for p in read_dir(root)? {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if n.starts_with(".repositories.json.") {
            remove_any(&p)?;
        }
    }
    Ok(())
}

impl ImageStore {
    /// Finds an image by reference (`alpine` = `alpine:latest`, `alpine:3`,
    /// `x@sha256:…`) or by id (`sha256:<hex>`, `<hex>`, a unique hex prefix).
    pub fn resolve(&self, name: &str) -> Result<Image, StoreError> {
        let st = self.lock()?;
        let id = resolve_id(&st, name)?;
        self.build(&st, &id)
    }

    /// Points `reference` (tag added if missing) at `image_id`, moving it if it pointed
    /// at another image.
    pub fn tag(&self, image_id: &str, reference: &Reference) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        let id = if st.images.contains_key(image_id) {
            image_id.to_string()
        } else {
            resolve_id(&st, image_id)?
        };
        let r = reference.clone().with_default_tag();
        st.refs.insert(r.familiar(), id);
        self.save_refs(&st)
    }

    pub(super) fn save_refs(&self, st: &State) -> Result<(), StoreError> {
        let mut file = RepositoriesFile::default();
        for (r, id) in &st.refs {
            let repo = match r.find('@') {
                Some(i) => r[..i].to_string(),
                None => match r.rfind(':') {
                    Some(i) if !r[i..].contains('/') => r[..i].to_string(),
                    _ => r.clone(),
                },
            };
            file.repositories.entry(repo).or_default().insert(r.clone(), id.clone());
        }
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| StoreError::Internal(format!("encoding repositories.json: {e}")))?;
        write_atomic(&self.inner.root.join("repositories.json"), &json)
    }
}

pub(super) fn refs_of(st: &State, id: &str) -> Vec<Reference> {
    st.refs
        .iter()
        .filter(|(_, t)| *t == id)
        .filter_map(|(r, _)| Reference::parse(r).ok())
        .collect()
}

/// Docker's isImageIDPrefix.
pub(super) fn is_id_prefix(id: &str, name: &str) -> bool {
    id.starts_with(name) || digest_hex(id).starts_with(name)
}

/// Docker's isSingleReference: at most one tag, and all references in one repository.
pub(super) fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut names = BTreeSet::new();
    for r in refs {
        if r.digest.is_some() {
            names.insert(r.familiar_name());
        } else if single.is_none() {
            names.insert(r.familiar_name());
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    names.len() == 1 && names.contains(&single.familiar_name())
}

pub(super) fn resolve_id(st: &State, name: &str) -> Result<String, StoreError> {
    let not_found = || match Reference::parse(name) {
        Ok(r) => StoreError::NoSuchImage(r.with_default_tag().familiar()),
        Err(_) => StoreError::NoSuchImage(name.to_string()),
    };
    if name.is_empty() {
        return Err(not_found());
    }
    if let Some(hex) = name.strip_prefix("sha256:") {
        let id = format!("sha256:{hex}");
        if st.images.contains_key(&id) {
            return Ok(id);
        }
        return prefix_match(st, hex).ok_or_else(|| StoreError::NoSuchImage(name.to_string()));
    }
    if is_full_hex_id(name) {
        let id = format!("sha256:{name}");
        if st.images.contains_key(&id) {
            return Ok(id);
        }
        return Err(StoreError::NoSuchImage(name.to_string()));
    }
    if let Ok(r) = Reference::parse(name) {
        if let Some(id) = st.refs.get(&r.with_default_tag().familiar()) {
            return Ok(id.clone());
        }
    }
    prefix_match(st, name).ok_or_else(not_found)
}

pub(super) fn prefix_match(st: &State, prefix: &str) -> Option<String> {
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut it = st.images.keys().filter(|id| digest_hex(id).starts_with(prefix));
    let first = it.next()?;
    if it.next().is_some() {
        return None; // ambiguous
    }
    Some(first.clone())
}
