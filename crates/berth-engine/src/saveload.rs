//! `docker save` and `docker load` over the image store (`berth_image::saveload`):
//! which images and tags a list of names means (Docker's rules), the archive streamed
//! from a worker thread, and the load's messages.

use std::collections::BTreeMap;

use berth_api::reference::Reference;
use berth_image::saveload::{LoadNote, SaveItem};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::fsops::{ChanWriter, TarStream, UploadReader, UploadStream};
use crate::Engine;

/// The tags `save` records for `name`: the tag it names; every tag of the repository
/// for a bare repository name (Docker saves them all); none for an id or a digest.
fn tags_for(name: &str, image_tags: &[String]) -> Vec<String> {
    let Ok(r) = Reference::parse(name) else { return Vec::new() };
    if r.digest.is_some() {
        return Vec::new();
    }
    match &r.tag {
        Some(_) => vec![r.familiar()],
        None => image_tags
            .iter()
            .filter(|t| Reference::parse(t).is_ok_and(|x| x.familiar_name() == r.familiar_name()))
            .cloned()
            .collect(),
    }
}

impl Engine {
    /// `GET /images/get?names=…` and `GET /images/{name}/get`: every name is resolved
    /// first (an unknown one is Docker's 404 before any byte is sent), then the archive
    /// streams.
    pub async fn save_images(&self, names: &[String]) -> Result<TarStream> {
        if names.is_empty() {
            return Err(Error::invalid("no images specified"));
        }
        // Keyed by image id, in the order first named.
        let mut order: Vec<String> = Vec::new();
        let mut items: BTreeMap<String, SaveItem> = BTreeMap::new();
        let all = self.images().list();
        for name in names {
            let bare_repo = Reference::parse(name).is_ok_and(|r| r.tag.is_none() && r.digest.is_none());
            let mut found: Vec<(berth_image::store::Image, Vec<String>)> = Vec::new();
            if bare_repo {
                for img in &all {
                    let tags = tags_for(name, &img.repo_tags);
                    if !tags.is_empty() {
                        found.push((img.clone(), tags));
                    }
                }
            }
            if found.is_empty() {
                let img = self.resolve_image(name).await?;
                let tags = tags_for(name, &img.repo_tags).into_iter().filter(|t| img.repo_tags.contains(t)).collect();
                found.push((img, tags));
            }
            for (img, tags) in found {
                let e = items.entry(img.id.clone()).or_insert_with(|| {
                    order.push(img.id.clone());
                    SaveItem { image: img, tags: Vec::new() }
                });
                for t in tags {
                    if !e.tags.contains(&t) {
                        e.tags.push(t);
                    }
                }
            }
        }
        let list: Vec<SaveItem> = order.iter().filter_map(|id| items.remove(id)).collect();
        // Docker writes the whole archive to a temp dir before sending a byte, so its
        // `save` events (one per image, by id, with the image's labels) come first.
        for item in &list {
            self.image_id_event("save", &item.image);
        }
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, done_rx) = oneshot::channel();
        let store = self.images().clone();
        tokio::task::spawn_blocking(move || {
            let r = store.save(&list, ChanWriter::new(tx)).map_err(|e| e.to_string());
            let _ = done_tx.send(r);
        });
        Ok(TarStream { data: rx, done: done_rx })
    }

    /// `POST /images/load`: the archive as it arrives; returns Docker's lines
    /// (`Loaded image: x:y`…) and, if a later image failed, the error after them. Each
    /// image recorded is a `load` event (by id, with its labels), as Docker's.
    pub async fn load_images(&self, body: UploadStream) -> (Vec<String>, Option<Error>) {
        let store = self.images().clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut reader = UploadReader::new(body);
            let mut lines = Vec::new();
            let mut loaded = Vec::new();
            let r = store.load(&mut reader, &mut |n| match n {
                LoadNote::Line(l) => lines.push(l),
                LoadNote::Loaded(id) => loaded.push(id),
            });
            // Drain what is left so a client still sending gets the answer.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            (lines, loaded, r.err())
        })
        .await;
        match r {
            Ok((lines, loaded, err)) => {
                for id in loaded {
                    if let Ok(img) = self.images().get(&id) {
                        self.image_id_event("load", &img);
                    }
                }
                (lines, err.map(Error::from))
            }
            Err(e) => (Vec::new(), Some(Error::internal(e.to_string()))),
        }
    }

    /// Docker's image events named by id (save, load): `name` is the id, beside the
    /// image's labels.
    fn image_id_event(&self, action: &str, img: &berth_image::store::Image) {
        let mut attrs: BTreeMap<String, String> =
            img.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default().into_iter().collect();
        attrs.insert("name".to_string(), img.id.clone());
        self.events().emit("image", action, &img.id, attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_saved_for_a_name() {
        let tags: Vec<String> = ["busybox:latest", "busybox:1", "me/busybox:x"].iter().map(|s| s.to_string()).collect();
        let table: [(&str, &[&str]); 5] = [
            ("busybox", &["busybox:latest", "busybox:1"]),
            ("busybox:1", &["busybox:1"]),
            ("me/busybox", &["me/busybox:x"]),
            ("busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000", &[]),
            ("Not A Ref", &[]),
        ];
        for (name, want) in table {
            assert_eq!(tags_for(name, &tags), want, "{name}");
        }
    }
}
