//! The on-disk image store: content-addressed blobs, unpacked layers (overlayfs lower
//! directories shared between images by chain id), image records and the reference
//! map. See docs/storage.md for the layout and the crash-safety argument. `pull` writes
//! into it through the crate-private ingest/commit methods; the engine reads it.
//!
//! One file per concern: `blobs` (content-addressed blobs and ingest), `layers`
//! (unpacked layers by chain id), `images` (image records, commit, rmi) and `references`
//! (`repositories.json`, name resolution). This file holds the shared state, `open`
//! with its crash recovery, and the file helpers.

mod blobs;
mod images;
mod layers;
mod build;
mod references;
mod push_source;
mod usage;

pub use images::{Image, RemoveItem};
pub(crate) use images::ImageRecord;
pub use layers::chain_id;
pub use push_source::{PushLayer, PushSource};
pub(crate) use layers::LAYER_BLOB;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::StoreError;

use blobs::live_blobs;
use images::{load_entry, Entry};
use references::{is_id_prefix, is_single_reference, load_repositories, refs_of, resolve_id};

#[derive(Default)]
struct State {
    images: BTreeMap<String, Entry>,
    /// Familiar reference (`alpine:latest`, `alpine@sha256:…`) → image id.
    refs: BTreeMap<String, String>,
    /// Chain ids (hex) that a pull in progress relies on: never garbage-collected.
    pins: HashMap<String, usize>,
}

struct Inner {
    root: PathBuf,
    state: Mutex<State>,
}

/// The image store rooted at `<data-root>/image`. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore").field("root", &self.inner.root).finish()
    }
}

pub(crate) fn digest_hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

fn short(id: &str) -> String {
    digest_hex(id).chars().take(12).collect()
}

/// The mode of the store's root directory (Docker's `image/`).
pub const STORE_ROOT_MODE: u32 = 0o700;

impl ImageStore {
    /// Opens (creating if needed) the store at `root` and recovers from a crash:
    /// partial downloads and incomplete layers are deleted, records whose layers or
    /// config are missing are dropped, and unreferenced layers and blobs are collected.
    pub fn open(root: &Path) -> Result<ImageStore, StoreError> {
        for d in ["blobs/sha256", "ingest", "layers", "images"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| StoreError::io("create", &p, e))?;
        }
        // Docker's `image/` is 0700: image configs can hold build secrets (ENV), and
        // containers reach their layers through overlayfs, which opens the lower dirs
        // with the mounter's (root's) credentials. A store of an older version (0755)
        // is tightened here.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root, fs::Permissions::from_mode(STORE_ROOT_MODE))
                .map_err(|e| StoreError::io("chmod", root, e))?;
        }
        // Temp files of metadata writes a crash interrupted (berth_sys::fs::write_atomic).
        for d in [root.to_path_buf(), root.join("images")] {
            let _ = berth_sys::fs::remove_stale_temps(&d);
        }
        // ingest/*: partial downloads never survive a restart.
        for e in read_dir(&root.join("ingest"))? {
            remove_any(&e)?;
        }
        // layers/*: only directories with an `ok` marker are complete.
        let layers_dir = root.join("layers");
        for e in read_dir(&layers_dir)? {
            if !e.join("ok").is_file() {
                tracing::info!(path = %e.display(), "removing incomplete layer");
                remove_any(&e)?;
            }
        }
        let mut state = State::default();
        let images_dir = root.join("images");
        for p in read_dir(&images_dir)? {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if !name.ends_with(".json") || name.starts_with('.') {
                remove_any(&p)?; // leftovers of an interrupted atomic write
                continue;
            }
            match load_entry(root, &p) {
                Ok(entry) => {
                    state.images.insert(entry.record.id.clone(), entry);
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "dropping broken image record");
                    remove_any(&p)?;
                }
            }
        }
        load_repositories(root, &mut state)?;
        let store = ImageStore { inner: Arc::new(Inner { root: root.to_path_buf(), state: Mutex::new(state) }) };
        {
            let st = store.lock()?;
            store.gc_unreferenced(&st)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.inner
            .state
            .lock()
            .map_err(|_| StoreError::Internal("image store lock poisoned".to_string()))
    }

    fn gc_unreferenced(&self, st: &State) -> Result<(), StoreError> {
        for p in read_dir(&self.inner.root.join("layers"))? {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if self.layer_unused(st, &n) {
                tracing::info!(layer = %n, "removing unreferenced layer");
                self.delete_layer(&n)?;
            }
        }
        let live = live_blobs(st);
        for p in read_dir(&self.inner.root.join("blobs/sha256"))? {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !live.contains(n) {
                remove_any(&p)?;
            }
        }
        Ok(())
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let rd = fs::read_dir(dir).map_err(|e| StoreError::io("read dir", dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| StoreError::io("read dir", dir, e))?;
        out.push(e.path());
    }
    Ok(out)
}

/// Removes a file, symlink or directory tree without following symlinks.
pub(crate) fn remove_any(p: &Path) -> Result<(), StoreError> {
    let md = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("stat", p, e)),
    };
    let r = if md.is_dir() { fs::remove_dir_all(p) } else { fs::remove_file(p) };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", p, e)),
    }
}

pub(crate) fn write_synced(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let mut f = fs::File::create(path).map_err(|e| StoreError::io("create", path, e))?;
    f.write_all(data).map_err(|e| StoreError::io("write", path, e))?;
    f.sync_all().map_err(|e| StoreError::io("fsync", path, e))
}

/// tmp + fsync + rename + fsync(dir): [`berth_sys::fs::write_atomic`], 0644 as
/// `File::create` under the usual umask gave.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    berth_sys::fs::write_atomic(path, data, 0o644).map_err(|e| StoreError::io(e.op, e.path, e.source))
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let f = fs::File::open(dir).map_err(|e| StoreError::io("open", dir, e))?;
    f.sync_all().map_err(|e| StoreError::io("fsync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;
    use sha2::{Digest as _, Sha256};
    use crate::unpack::unpack;
    use std::cell::RefCell;

    #[test]
    fn store_root_is_private_and_an_older_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("test setup");
        let root = tmp.path().join("image");
        let mode = |p: &Path| fs::metadata(p).expect("test setup").permissions().mode() & 0o7777;
        ImageStore::open(&root).expect("test setup");
        assert_eq!(mode(&root), STORE_ROOT_MODE);
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("test setup");
        ImageStore::open(&root).expect("test setup");
        assert_eq!(mode(&root), 0o700);
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_path(p).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Imports an image built from `layers` the way pull does; returns its id.
    fn import(store: &ImageStore, layers: &[&[(&str, &[u8])]], created: &str, refs: &[&str]) -> String {
        let mut diff_ids = Vec::new();
        for files in layers {
            let tar = tar_of(files);
            diff_ids.push(format!("sha256:{}", hex::encode(Sha256::digest(&tar))));
            let chains = chain_id(&diff_ids);
            let chain = chains.last().unwrap();
            if store.has_layer(chain) {
                continue;
            }
            let tmp = store.layer_tmp();
            fs::create_dir(&tmp).unwrap();
            let stats = unpack(&tar[..], &tmp.join("diff")).unwrap();
            // Kept as a pull keeps it: the compressed blob.
            fs::write(tmp.join(LAYER_BLOB), gzip(&tar)).unwrap();
            store.commit_layer(&tmp, chain, &stats).unwrap();
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": created,
            "config": {"Cmd": ["sh"], "Env": null},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let bytes = serde_json::to_vec(&config).unwrap();
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        store.write_blob(&id, &bytes).unwrap();
        let manifest = format!("manifest-of-{id}");
        let mdigest = format!("sha256:{}", hex::encode(Sha256::digest(manifest.as_bytes())));
        store.write_blob(&mdigest, manifest.as_bytes()).unwrap();
        let record = ImageRecord {
            id: id.clone(),
            layers: diff_ids.clone(),
            chain_ids: chain_id(&diff_ids),
            manifest_digest: Some(mdigest.clone()),
            blobs: vec![mdigest.clone()],
            parent: None,
        };
        let mut rs: Vec<Reference> = refs.iter().map(|r| Reference::parse(r).unwrap().with_default_tag()).collect();
        if let Some(first) = rs.first().cloned() {
            rs.push(Reference { tag: None, digest: Some(mdigest), ..first });
        }
        store.commit_image(record, &rs).unwrap();
        id
    }

    fn no_container(_: &str) -> Option<String> {
        None
    }

    fn names(items: &[RemoveItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                RemoveItem::Untagged(s) => format!("Untagged: {s}"),
                RemoveItem::Deleted(s) => format!("Deleted: {s}"),
            })
            .collect()
    }

    #[test]
    fn chain_ids_follow_the_oci_spec() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_id(&d);
        assert_eq!(c[0], "sha256:aa");
        assert_eq!(c[1], format!("sha256:{}", hex::encode(Sha256::digest(b"sha256:aa sha256:bb"))));
        assert!(chain_id(&[]).is_empty());
    }

    #[test]
    fn resolve_list_tag_and_layer_dirs() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"12345")], &[("b", b"xy")]], "2024-01-02T03:04:05Z", &["alpine"]);
        let img = store.resolve("alpine").unwrap();
        assert_eq!(img.id, id);
        assert_eq!(img.repo_tags, vec!["alpine:latest"]);
        assert_eq!(img.repo_digests.len(), 1);
        assert!(img.repo_digests[0].starts_with("alpine@sha256:"));
        assert_eq!(img.size, 7);
        assert_eq!(img.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(img.config.config.as_ref().unwrap().cmd, Some(vec!["sh".to_string()]));
        for name in ["alpine:latest", "docker.io/library/alpine", &id, digest_hex(&id), &digest_hex(&id)[..5], &img.repo_digests[0]] {
            assert_eq!(store.resolve(name).unwrap().id, id, "{name}");
        }
        assert_eq!(store.get(&id).unwrap().id, id);
        for (name, msg) in [
            ("alpine:3", "No such image: alpine:3"),
            ("nosuch", "No such image: nosuch:latest"),
            ("localhost:5000/x", "No such image: localhost:5000/x:latest"),
            ("sha256:0000", "No such image: sha256:0000"),
        ] {
            let e = store.resolve(name).unwrap_err();
            assert_eq!(e.to_string(), msg);
            assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        }
        store.tag(&id, &Reference::parse("localhost:5000/x:v1").unwrap()).unwrap();
        assert_eq!(store.resolve("alpine").unwrap().repo_tags, vec!["alpine:latest", "localhost:5000/x:v1"]);

        let dirs = store.layer_dirs(&img).unwrap();
        assert_eq!(dirs.len(), 2);
        assert!(dirs[0].join("b").is_file(), "top layer first");
        assert!(dirs[1].join("a").is_file());

        // Moving a tag to another image.
        let id2 = import(&store, &[&[("a", b"12345")]], "2025-01-01T00:00:00Z", &["other"]);
        store.tag(&id2, &Reference::parse("localhost:5000/x:v1").unwrap()).unwrap();
        assert_eq!(store.resolve("localhost:5000/x:v1").unwrap().id, id2);
        let list = store.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].id, id2, "newest first");

        // Everything survives a reopen.
        drop(store);
        let store = ImageStore::open(t.path()).unwrap();
        assert_eq!(store.resolve("localhost:5000/x:v1").unwrap().id, id2);
        assert_eq!(store.resolve("alpine").unwrap().repo_tags, vec!["alpine:latest"]);
        assert_eq!(store.list().len(), 2);
    }

    #[test]
    fn rmi_untag_then_delete() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let base = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["base"]);
        let id = import(&store, &[&[("a", b"1")], &[("b", b"2")]], "2024-01-01T00:00:00Z", &["localhost:5000/myb"]);
        store.tag(&id, &Reference::parse("myimg:v1").unwrap()).unwrap();
        let digest_ref = store.get(&id).unwrap().repo_digests[0].clone();

        let r = store.remove("myimg:v1", false, &no_container).unwrap();
        assert_eq!(names(&r), vec!["Untagged: myimg:v1"]);

        // A container uses it: the last tag may not go without force.
        let used = |i: &str| (i == id).then(|| "2193b0430448aaaaaaaaaaaa".to_string());
        let e = store.remove("localhost:5000/myb", false, &used).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            format!(
                "conflict: unable to remove repository reference \"localhost:5000/myb\" (must force) - container 2193b0430448 is using its referenced image {}",
                &digest_hex(&id)[..12]
            )
        );

        let r = store.remove("localhost:5000/myb", false, &no_container).unwrap();
        let top_chain = chain_id(&store_diff_ids(&t, &id))[1].clone();
        assert_eq!(
            names(&r),
            vec![
                "Untagged: localhost:5000/myb:latest".to_string(),
                format!("Untagged: {digest_ref}"),
                format!("Deleted: {id}"),
                format!("Deleted: {top_chain}"),
            ]
        );
        // The shared bottom layer stays for `base`.
        let b = store.resolve("base").unwrap();
        assert!(store.layer_dirs(&b).unwrap()[0].join("a").is_file());
        assert!(!t.path().join("layers").join(digest_hex(&top_chain)).exists());
        assert!(!t.path().join("images").join(format!("{}.json", digest_hex(&id))).exists());
        assert!(!t.path().join("blobs/sha256").join(digest_hex(&id)).exists());
        assert!(t.path().join("blobs/sha256").join(digest_hex(&base)).exists());

        let e = store.remove("nosuchimage_trace", false, &no_container).unwrap_err();
        assert_eq!(e.to_string(), "No such image: nosuchimage_trace:latest");
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
    }

    fn store_diff_ids(_t: &tempfile::TempDir, _id: &str) -> Vec<String> {
        let a = tar_of(&[("a", b"1")]);
        let b = tar_of(&[("b", b"2")]);
        vec![
            format!("sha256:{}", hex::encode(Sha256::digest(&a))),
            format!("sha256:{}", hex::encode(Sha256::digest(&b))),
        ]
    }

    #[test]
    fn rmi_by_id() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["one"]);
        store.tag(&id, &Reference::parse("two:latest").unwrap()).unwrap();
        let short = &digest_hex(&id)[..12];
        let e = store.remove(short, false, &no_container).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            format!("conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
        );
        let used = |_: &str| Some("c0ffee000000".to_string());
        let e = store.remove(short, true, &used).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        let r = store.remove(short, true, &no_container).unwrap();
        let n = names(&r);
        assert!(n.contains(&"Untagged: one:latest".to_string()), "{n:?}");
        assert!(n.contains(&"Untagged: two:latest".to_string()), "{n:?}");
        assert!(n.contains(&format!("Deleted: {id}")), "{n:?}");
        assert!(store.list().is_empty());
        assert!(fs::read_dir(t.path().join("layers")).unwrap().next().is_none());

        // Single repository (tag + digest) by id without force: removes both.
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["one"]);
        let r = store.remove(&id, false, &no_container).unwrap();
        assert_eq!(names(&r).len(), 4, "{:?}", names(&r));
        assert!(names(&r)[1].starts_with("Untagged: one@sha256:"));

        // Used by a container and removed by tag with force: untagged, kept on disk.
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["one"]);
        let used = |_: &str| Some("c0ffee000000".to_string());
        let r = store.remove("one", true, &used).unwrap();
        assert_eq!(names(&r).len(), 2);
        let img = store.get(&id).unwrap();
        assert!(img.repo_tags.is_empty());
        assert!(store.layer_dirs(&img).is_ok());
    }

    #[test]
    fn open_recovers_from_a_crash() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["keep"]);
        drop(store);
        let root = t.path();
        // A partial download, a half-unpacked layer, a layer that was renamed into
        // place but never got its `ok`, a tmp record and a tmp repositories file.
        fs::write(root.join("ingest/partial"), b"xx").unwrap();
        fs::create_dir_all(root.join("layers/.tmp-0001/diff")).unwrap();
        fs::create_dir_all(root.join("layers/abcd/diff")).unwrap();
        fs::write(root.join("images/.x.json.123"), b"{").unwrap();
        fs::write(root.join(".repositories.json.1234"), b"{").unwrap();
        // A complete layer no image refers to (crash before the record was written).
        fs::create_dir_all(root.join("layers/beef/diff")).unwrap();
        fs::write(root.join("layers/beef/ok"), b"").unwrap();
        // A record whose layer vanished.
        let orphan = ImageRecord {
            id: "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            layers: vec!["sha256:2222".into()],
            chain_ids: vec!["sha256:2222".into()],
            manifest_digest: None,
            blobs: vec![],
            parent: None,
        };
        fs::write(root.join("images/1111111111111111111111111111111111111111111111111111111111111111.json"), serde_json::to_vec(&orphan).unwrap()).unwrap();
        let store = ImageStore::open(root).unwrap();
        assert!(fs::read_dir(root.join("ingest")).unwrap().next().is_none());
        for gone in ["layers/.tmp-0001", "layers/abcd", "layers/beef", "images/.x.json.123", ".repositories.json.1234"] {
            assert!(!root.join(gone).exists(), "{gone}");
        }
        assert_eq!(store.list().len(), 1);
        assert_eq!(store.resolve("keep").unwrap().id, id);
    }

    #[test]
    fn commit_stacks_a_layer_on_its_parent() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let base = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["base"]);
        let parent = store.get(&base).unwrap();
        let layer = tar_of(&[("new", b"hello")]);
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2025-01-01T00:00:00Z",
            "config": {"Cmd": ["cat", "/new"]},
            "history": [{"created_by": "sh"}],
        });
        let r = Reference::parse("committed:v1").unwrap();
        let img = store.commit(Some(&parent), &layer[..], config, Some(&r)).unwrap();
        assert_eq!(img.repo_tags, vec!["committed:v1"]);
        assert_eq!(img.parent.as_deref(), Some(base.as_str()), "Docker's Parent: the image committed from");
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layers[0], parent.layers[0]);
        assert_eq!(img.layers[1], format!("sha256:{}", hex::encode(Sha256::digest(&layer))));
        assert_eq!(img.config.config.as_ref().unwrap().cmd, Some(vec!["cat".to_string(), "/new".to_string()]));
        assert_eq!(img.config.rootfs.diff_ids, img.layers);
        let dirs = store.layer_dirs(&img).unwrap();
        assert_eq!(fs::read(dirs[0].join("new")).unwrap(), b"hello");
        assert!(dirs[1].join("a").is_file());
        // Survives a reopen; removing it keeps the parent's layer.
        drop(store);
        let store = ImageStore::open(t.path()).unwrap();
        assert_eq!(store.resolve("committed:v1").unwrap().id, img.id);
        assert_eq!(store.resolve("committed:v1").unwrap().parent.as_deref(), Some(base.as_str()));
        assert_eq!(store.get(&base).unwrap().parent, None);
        store.remove("committed:v1", false, &no_container).unwrap();
        assert!(store.layer_dirs(&store.get(&base).unwrap()).is_ok());
        // Without a parent or a reference: a dangling single-layer image.
        let img = store.commit(None, &tar_of(&[("x", b"1")])[..], serde_json::json!({"os": "linux"}), None).unwrap();
        assert!(img.repo_tags.is_empty());
        assert_eq!(img.layers.len(), 1);
    }

    #[test]
    fn pins_protect_layers_from_removal() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let id = import(&store, &[&[("a", b"1")]], "2024-01-01T00:00:00Z", &["x"]);
        let img = store.get(&id).unwrap();
        let chains = chain_id(&img.layers);
        let seen = RefCell::new(0);
        {
            let _pin = store.pin(&chains);
            let r = store.remove("x", false, &|_| {
                *seen.borrow_mut() += 1;
                None
            }).unwrap();
            assert_eq!(r.len(), 3, "{r:?}"); // untag, untag digest, delete image; layer pinned
            assert!(store.has_layer(&chains[0]));
        }
        assert!(*seen.borrow() > 0);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// The store's directories as a sorted listing (what a failed import must not change).
    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for d in ["layers", "images", "blobs/sha256", "ingest"] {
            for p in read_dir(&root.join(d)).unwrap() {
                out.push(format!("{d}/{}", p.file_name().unwrap().to_string_lossy()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn import_takes_plain_and_gzip_tars_and_refuses_broken_ones_cleanly() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let tar = tar_of(&[("etc/hello", b"hi\n"), ("bin/sh", b"#!")]);
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
        let cfg = || serde_json::json!({"os": "linux", "architecture": "amd64", "config": {"Cmd": ["sh"]}});
        // (body, reference): the diff id is the uncompressed tar's, however it came.
        for (body, name) in [(tar.clone(), "me/plain:1"), (gzip(&tar), "me/gz:1")] {
            let r = Reference::parse(name).unwrap();
            let img = store.import(&body[..], cfg(), Some(&r)).unwrap();
            assert_eq!(img.layers, vec![diff_id.clone()], "{name}");
            assert_eq!(img.parent, None);
            assert!(img.repo_tags.contains(&name.to_string()), "{:?}", img.repo_tags);
            assert_eq!(fs::read(store.layer_dirs(&img).unwrap()[0].join("etc/hello")).unwrap(), b"hi\n");
        }
        let before = listing(t.path());
        let mut garbage = vec![0x5au8; 3000];
        garbage[0] = b'x';
        let gz = gzip(&tar);
        // (body, Docker's text): nothing may be left behind by any of them.
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (garbage, "archive/tar: invalid tar header"),
            (b"not a tar\n".to_vec(), "unexpected EOF"),
            (gz[..gz.len() / 2].to_vec(), "unexpected EOF"),
            (tar[..700].to_vec(), "unexpected EOF"),
            // Broken bzip2 and xz streams: the decoder's error (the formats are taken).
            (b"BZh91AY&SY".to_vec(), "bzip2"),
            (vec![0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1], "xz"),
        ];
        for (body, text) in cases {
            let r = Reference::parse("me/bad").unwrap();
            let e = store.import(&body[..], cfg(), Some(&r)).unwrap_err();
            if text == "bzip2" || text == "xz" {
                assert!(!e.to_string().is_empty() && !e.to_string().contains("not supported"), "{text}: {e}");
            } else {
                assert_eq!(e.to_string(), text);
            }
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{text}");
            assert_eq!(listing(t.path()), before, "{text}: the store changed");
            assert!(store.resolve("me/bad").is_err());
        }
        // A body cut by the client (a read error) is the client's error as well.
        struct Cut(usize);
        impl std::io::Read for Cut {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection reset"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(0);
                self.0 -= n;
                Ok(n)
            }
        }
        let e = store.import(Cut(100), cfg(), None).unwrap_err();
        assert_eq!(e.to_string(), "unexpected EOF");
        assert_eq!(listing(t.path()), before);
        // An empty body is an empty layer, as Go's tar reader sees it.
        let img = store.import(&b""[..], cfg(), None).unwrap();
        assert_eq!(img.layers, vec![format!("sha256:{}", hex::encode(Sha256::digest(b"")))]);
    }

    #[test]
    fn save_then_load_gives_the_same_image_and_byte_exact_layers() {
        use std::io::Read;
        let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = ImageStore::open(t1.path()).unwrap();
        let id = import(&a, &[&[("etc/a", b"one")], &[("etc/b", b"two")]], "2026-01-01T00:00:00Z", &["x/y:1"]);
        let img = a.resolve("x/y:1").unwrap();
        let chains = chain_id(&img.layers);
        for (c, d) in chains.iter().zip(&img.layers) {
            let (size, mut r) = a.layer_tar(c, d).unwrap();
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            assert_eq!((v.len() as u64, format!("sha256:{}", hex::encode(Sha256::digest(&v)))), (size, d.clone()));
        }
        let mut archive = Vec::new();
        a.save(&[crate::saveload::SaveItem { image: img.clone(), tags: vec!["x/y:1".into()] }], &mut archive).unwrap();
        let b = ImageStore::open(t2.path()).unwrap();
        let mut lines = Vec::new();
        b.load(&archive[..], &mut |n| if let crate::saveload::LoadNote::Line(l) = n { lines.push(l) }).unwrap();
        assert_eq!(lines, ["Loaded image: x/y:1"]);
        let got = b.resolve("x/y:1").unwrap();
        assert_eq!((got.id.as_str(), &got.layers), (id.as_str(), &img.layers));
        // The loaded store saves the same archive again (its layers kept their tars).
        let mut again = Vec::new();
        b.save(&[crate::saveload::SaveItem { image: got, tags: vec!["x/y:1".into()] }], &mut again).unwrap();
        assert_eq!(again, archive);
        assert!(!listing(t2.path()).iter().any(|p| p.starts_with("ingest/")));
    }

    #[test]
    fn a_lying_archive_leaves_the_store_as_it_was() {
        use std::io::Read;
        let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = ImageStore::open(t1.path()).unwrap();
        import(&a, &[&[("f", b"1")], &[("g", b"2")]], "2026-01-01T00:00:00Z", &["z:1"]);
        let img = a.resolve("z:1").unwrap();
        let mut archive = Vec::new();
        a.save(&[crate::saveload::SaveItem { image: img, tags: vec!["z:1".into()] }], &mut archive).unwrap();
        // Swap the second layer for another tar: its diff id no longer matches.
        let manifest: serde_json::Value =
            serde_json::from_slice(&members(&archive).into_iter().find(|m| m.0 == "manifest.json").unwrap().3).unwrap();
        let second = manifest[0]["Layers"][1].as_str().unwrap().to_string();
        let mut ar = tar::Archive::new(&archive[..]);
        let mut out = tar::Builder::new(Vec::new());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            if path == second {
                data = tar_of(&[("evil", b"x")]);
            }
            let mut h = e.header().clone();
            h.set_size(data.len() as u64);
            h.set_cksum();
            out.append(&h, &data[..]).unwrap();
        }
        let bad = out.into_inner().unwrap();
        let b = ImageStore::open(t2.path()).unwrap();
        let e = b.load(&bad[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().starts_with("invalid diffID for layer 1: expected"), "{e}");
        assert!(b.list().is_empty());
        // The first layer, committed before the second failed, is gone again; no
        // ingest file, blob or record is left.
        assert!(listing(t2.path()).is_empty(), "{:?}", listing(t2.path()));
        // Names that leave the archive, and no manifest at all.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../../x/a.tar");
        h.set_cksum();
        evil.append(&h, &b"x"[..]).unwrap();
        let e = b.load(&evil.into_inner().unwrap()[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("leaves the archive"), "{e}");
        let e = b.load(&tar_of(&[("x", b"y")])[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("open manifest.json: no such file or directory"), "{e}");
        assert!(listing(t2.path()).is_empty(), "{:?}", listing(t2.path()));
    }

    /// The members of a tar: (name, kind, link target, content).
    fn members(archive: &[u8]) -> Vec<(String, tar::EntryType, String, Vec<u8>)> {
        use std::io::Read;
        let mut ar = tar::Archive::new(archive);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((name, kind, link, data));
        }
        out
    }

    fn load_lines(store: &ImageStore, archive: &[u8]) -> Result<Vec<String>, StoreError> {
        let mut lines = Vec::new();
        store.load(archive, &mut |n| if let crate::saveload::LoadNote::Line(l) = n { lines.push(l) })?;
        Ok(lines)
    }

    /// Docker's archive layout: v1 directories in name order, each before its files; a
    /// diff id met again is a symlink to its first `layer.tar`; the child's `Parent` is
    /// in manifest.json when its parent is saved too, and a load restores it.
    #[test]
    fn save_writes_dockers_layout_and_load_restores_parents() {
        let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = ImageStore::open(t1.path()).unwrap();
        let same: &[(&str, &[u8])] = &[("etc/a", b"one")];
        import(&a, &[same, &[("etc/b", b"two")], same], "2026-01-01T00:00:00Z", &["dup:1"]);
        let base = a.resolve("dup:1").unwrap();
        let config = serde_json::json!({"architecture": "amd64", "os": "linux", "created": "2026-01-02T00:00:00Z",
            "config": {"Env": ["X=1"]}, "history": []});
        let r = Reference::parse("child:1").unwrap();
        let child = a.commit_config(Some(&base), config, Some(&r)).unwrap();
        assert_eq!(child.parent.as_deref(), Some(base.id.as_str()));
        let items = [
            crate::saveload::SaveItem { image: child.clone(), tags: vec!["child:1".into()] },
            crate::saveload::SaveItem { image: base.clone(), tags: vec!["dup:1".into()] },
        ];
        let mut archive = Vec::new();
        a.save(&items, &mut archive).unwrap();
        let m = members(&archive);
        let names: Vec<&str> = m.iter().map(|(n, ..)| n.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "Docker's order: sorted, each directory before its files");
        let manifest: serde_json::Value = serde_json::from_slice(&m.iter().find(|x| x.0 == "manifest.json").unwrap().3).unwrap();
        assert_eq!(manifest[0]["Parent"], serde_json::json!(base.id));
        assert!(manifest[1].get("Parent").is_none());
        let layers = |i: usize| -> Vec<String> {
            manifest[i]["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
        };
        let v1 = crate::saveload::v1_layers(&base.config_raw, &base.layers);
        assert_eq!(layers(1), v1.iter().map(|l| format!("{}/layer.tar", l.id)).collect::<Vec<_>>());
        // The base's third layer repeats its first: a symlink, as Docker writes it.
        let third = m.iter().find(|x| x.0 == layers(1)[2]).unwrap();
        assert_eq!((third.1, third.2.as_str()), (tar::EntryType::Symlink, format!("../{}", layers(1)[0]).as_str()));
        // The child (same layers, another config) has its own top directory, whose
        // layer.tar links to the base's copy of that diff id.
        assert_eq!(layers(0)[..2], layers(1)[..2]);
        assert_ne!(layers(0)[2], layers(1)[2]);
        let child_top = m.iter().find(|x| x.0 == layers(0)[2]).unwrap();
        assert_eq!(child_top.1, tar::EntryType::Symlink);
        for dir in [&layers(0)[2], &layers(1)[0]] {
            let d = dir.trim_end_matches("/layer.tar");
            assert!(m.iter().any(|x| x.0 == format!("{d}/") && x.1 == tar::EntryType::Directory), "{d}");
            assert_eq!(m.iter().find(|x| x.0 == format!("{d}/VERSION")).unwrap().3, b"1.0");
            let json: serde_json::Value = serde_json::from_slice(&m.iter().find(|x| x.0 == format!("{d}/json")).unwrap().3).unwrap();
            assert_eq!(json["id"], serde_json::json!(d));
        }
        let repos: serde_json::Value = serde_json::from_slice(&m.iter().find(|x| x.0 == "repositories").unwrap().3).unwrap();
        assert_eq!(repos["dup"]["1"], serde_json::json!(layers(1)[2].trim_end_matches("/layer.tar")));

        // Loaded into an empty store: same ids, the parent link restored.
        let b = ImageStore::open(t2.path()).unwrap();
        assert_eq!(load_lines(&b, &archive).unwrap(), ["Loaded image: child:1", "Loaded image: dup:1"]);
        assert_eq!(b.resolve("child:1").unwrap().id, child.id);
        assert_eq!(b.resolve("child:1").unwrap().parent.as_deref(), Some(base.id.as_str()));
        assert_eq!(b.resolve("dup:1").unwrap().layers, base.layers);
        // `docker save | gzip` (or zstd) loads as it is, as with Docker.
        assert_eq!(load_lines(&b, &gzip(&archive)).unwrap(), ["Loaded image: child:1", "Loaded image: dup:1"]);
        let zst = ruzstd::encoding::compress_to_vec(&archive[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert_eq!(load_lines(&b, &zst).unwrap().len(), 2);
        // Saved again from there: the same archive.
        let again_items = [
            crate::saveload::SaveItem { image: b.resolve("child:1").unwrap(), tags: vec!["child:1".into()] },
            crate::saveload::SaveItem { image: b.resolve("dup:1").unwrap(), tags: vec!["dup:1".into()] },
        ];
        let mut again = Vec::new();
        b.save(&again_items, &mut again).unwrap();
        assert_eq!(again, archive);
    }

    /// Docker's texts and rules for what an archive's manifest says: RepoTags must be
    /// tags, Windows images are refused, a null manifest is an error, a cut one is Go's
    /// "unexpected EOF", a missing member is an `open` error; `Loaded image ID` lines
    /// come at the end, for all images, only when the last image has no tag.
    #[test]
    fn load_follows_dockers_rules_and_texts() {
        let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = ImageStore::open(t1.path()).unwrap();
        let id1 = import(&a, &[&[("f", b"1")]], "2026-01-01T00:00:00Z", &["one:1"]);
        let id2 = import(&a, &[&[("g", b"2")]], "2026-01-01T00:00:00Z", &["two:1"]);
        let mut archive = Vec::new();
        let items = [
            crate::saveload::SaveItem { image: a.resolve("one:1").unwrap(), tags: vec!["one:1".into()] },
            crate::saveload::SaveItem { image: a.resolve("two:1").unwrap(), tags: vec!["two:1".into()] },
        ];
        a.save(&items, &mut archive).unwrap();
        // The archive with its manifest.json replaced by `f(manifest)`.
        let with_manifest = |f: &dyn Fn(&mut serde_json::Value) -> Vec<u8>| -> Vec<u8> {
            let mut out = tar::Builder::new(Vec::new());
            for (name, kind, link, mut data) in members(&archive) {
                if name == "manifest.json" {
                    let mut v: serde_json::Value = serde_json::from_slice(&data).unwrap();
                    data = f(&mut v);
                }
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(kind);
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                if kind == tar::EntryType::Symlink {
                    out.append_link(&mut h, &name, &link).unwrap();
                } else {
                    out.append_data(&mut h, &name, &data[..]).unwrap();
                }
            }
            out.into_inner().unwrap()
        };
        let json = |v: &serde_json::Value| serde_json::to_vec(v).unwrap();
        let b = ImageStore::open(t2.path()).unwrap();

        let untag_first = with_manifest(&|m| {
            m[0]["RepoTags"] = serde_json::Value::Null;
            json(m)
        });
        assert_eq!(load_lines(&b, &untag_first).unwrap(), ["Loaded image: two:1"]);
        let untag_last = with_manifest(&|m| {
            m[1]["RepoTags"] = serde_json::Value::Null;
            json(m)
        });
        assert_eq!(
            load_lines(&b, &untag_last).unwrap(),
            ["Loaded image: one:1".to_string(), format!("Loaded image ID: {id1}"), format!("Loaded image ID: {id2}")]
        );
        assert_eq!(load_lines(&b, &with_manifest(&|_| b"[]".to_vec())).unwrap(), Vec::<String>::new());

        let before = listing(t2.path());
        let cases: Vec<(Vec<u8>, String)> = vec![
            (with_manifest(&|m| { m[0]["RepoTags"] = serde_json::json!(["one"]); json(m) }), "invalid tag \"one\"".into()),
            (
                with_manifest(&|m| { m[0]["RepoTags"] = serde_json::json!([format!("one@{id1}")]); json(m) }),
                format!("invalid tag \"one@{id1}\""),
            ),
            (with_manifest(&|_| b"null".to_vec()), "invalid manifest, manifest cannot be null (but can be [])".into()),
            (with_manifest(&|_| b"[{\"Config\": ".to_vec()), "unexpected EOF".into()),
            (
                with_manifest(&|m| { m[0]["Config"] = "nope.json".into(); json(m) }),
                "open nope.json: no such file or directory".into(),
            ),
            (
                with_manifest(&|m| { m[0]["Layers"][0] = "nope/layer.tar".into(); json(m) }),
                "open nope/layer.tar: no such file or directory".into(),
            ),
        ];
        let t3 = tempfile::tempdir().unwrap();
        let c = ImageStore::open(t3.path()).unwrap();
        for (archive, want) in cases {
            assert_eq!(load_lines(&c, &archive).unwrap_err().to_string(), want);
            assert!(c.list().is_empty(), "{want}");
        }
        assert_eq!(listing(t2.path()), before);
        // A Windows image.
        let win = serde_json::to_vec(&serde_json::json!({"os": "windows", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": []}})).unwrap();
        let archive = tar_of(&[("w.json", &win), ("manifest.json", br#"[{"Config":"w.json","RepoTags":["w:1"],"Layers":[]}]"#)]);
        assert_eq!(load_lines(&c, &archive).unwrap_err().to_string(), "cannot load windows image on linux");
    }

    #[test]
    fn load_reads_an_oci_layout_with_gzip_layers() {
        let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = ImageStore::open(t1.path()).unwrap();
        let id = import(&a, &[&[("etc/a", b"one")], &[("etc/b", b"two")]], "2026-01-01T00:00:00Z", &["oci/img:2"]);
        let img = a.resolve("oci/img:2").unwrap();
        let sha = |d: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(d)));
        let config = fs::read(a.blob_path(&id)).unwrap();
        let mut blobs: Vec<(String, Vec<u8>)> = vec![(id.clone(), config.clone())];
        let mut layers = Vec::new();
        for (chain, d) in chain_id(&img.layers).iter().zip(&img.layers) {
            let (_, mut r) = a.layer_tar(chain, d).unwrap();
            let mut tar = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut tar).unwrap();
            let gz = gzip(&tar);
            layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&gz), "size": gz.len()}));
            blobs.push((sha(&gz), gz));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": id, "size": config.len()},
            "layers": layers,
        })).unwrap();
        blobs.push((sha(&manifest), manifest.clone()));
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&manifest), "size": manifest.len(),
                "annotations": {"io.containerd.image.name": "docker.io/oci/img:2", "org.opencontainers.image.ref.name": "2"}}],
        })).unwrap();
        let mut files: Vec<(String, Vec<u8>)> = vec![("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()), ("index.json".into(), index)];
        files.extend(blobs.into_iter().map(|(d, v)| (format!("blobs/sha256/{}", digest_hex(&d)), v)));
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let archive = tar_of(&refs);
        let b = ImageStore::open(t2.path()).unwrap();
        let mut lines = Vec::new();
        b.load(&archive[..], &mut |n| if let crate::saveload::LoadNote::Line(l) = n { lines.push(l) }).unwrap();
        assert_eq!(lines, ["Loaded image: oci/img:2"]);
        let got = b.resolve("oci/img:2").unwrap();
        assert_eq!((got.id, got.layers), (id, img.layers));
    }
}
