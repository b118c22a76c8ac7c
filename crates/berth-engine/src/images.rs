//! Image operations of the engine: list, inspect, pull (as a progress stream), tag,
//! remove — `berth-image` does the storage and registry work.

use std::collections::BTreeMap;

use berth_api::{GraphDriver, ImageDeleteItem, ImageInspect, ImageSummary, JsonMessage, ProgressDetail, RootFs};
use berth_image::{Image, Progress, Reference, RemoveItem};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::{timefmt, Engine};

fn created_unix(img: &Image) -> i64 {
    img.created.as_deref().and_then(timefmt::parse).map_or(0, |t| t.timestamp())
}

/// Docker's progress bar: `[=====>      ]  1.2MB/3.4MB`.
fn progress_bar(current: u64, total: u64) -> String {
    let width = 50u64;
    let filled = (current.min(total) * width).checked_div(total).unwrap_or(0) as usize;
    let mut bar = String::with_capacity(64);
    bar.push('[');
    for i in 0..width as usize {
        bar.push(if i < filled { '=' } else if i == filled { '>' } else { ' ' });
    }
    bar.push(']');
    format!("{bar} {:>8}/{}", human_size(current), human_size(total))
}

/// Decimal sizes with four significant digits, as Docker's progress bars print them.
fn human_size(n: u64) -> String {
    berth_api::units::human_size_prec(n as f64, 4)
}

fn to_message(p: Progress) -> JsonMessage {
    let has_id = p.id.is_some();
    let detail = match (p.current, p.total) {
        (Some(c), t) => Some(ProgressDetail { current: Some(c), total: t }),
        _ if has_id => Some(ProgressDetail::default()),
        _ => None,
    };
    let progress = match (p.current, p.total) {
        (Some(c), Some(t)) if t > 0 => Some(progress_bar(c, t)),
        _ => None,
    };
    JsonMessage { status: Some(p.status), progress_detail: detail, progress, id: p.id, ..Default::default() }
}

impl Engine {
    /// An image by reference, id or id prefix; NotFound in Docker's words.
    pub async fn resolve_image(&self, name: &str) -> Result<Image> {
        let store = self.inner.images.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || store.resolve(&name))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)
    }

    /// `GET /images/json`.
    pub fn list_images(&self) -> Vec<ImageSummary> {
        let mut imgs = self.inner.images.list();
        imgs.sort_by_key(|i| std::cmp::Reverse(created_unix(i)));
        imgs.into_iter()
            .map(|i| ImageSummary {
                containers: -1,
                created: created_unix(&i),
                id: i.id.clone(),
                labels: i.config.config.as_ref().and_then(|c| c.labels.clone()),
                parent_id: String::new(),
                repo_digests: i.repo_digests.clone(),
                repo_tags: i.repo_tags.clone(),
                shared_size: -1,
                size: i.size as i64,
                virtual_size: i.size as i64,
            })
            .collect()
    }

    /// `GET /images/{name}/json`.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        let i = self.resolve_image(name).await?;
        let config: berth_api::ContainerConfig = i
            .config
            .config
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let mut gd = BTreeMap::new();
        if let Ok(dirs) = self.inner.images.layer_dirs(&i) {
            let v: Vec<String> = dirs.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            gd.insert("LowerDir".to_string(), v.join(":"));
        }
        Ok(ImageInspect {
            id: i.id.clone(),
            repo_tags: i.repo_tags.clone(),
            repo_digests: i.repo_digests.clone(),
            parent: String::new(),
            comment: i.config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
            created: i.created.clone().unwrap_or_default(),
            docker_version: String::new(),
            author: i.config.author.clone().unwrap_or_default(),
            config,
            architecture: i.config.architecture.clone(),
            variant: i.config.variant.clone(),
            os: i.config.os.clone(),
            size: i.size as i64,
            virtual_size: i.size as i64,
            graph_driver: GraphDriver { data: Some(gd), name: "overlay2".into() },
            root_fs: RootFs { kind: "layers".into(), layers: i.layers.clone() },
            metadata: Some(serde_json::json!({ "LastTagTime": "0001-01-01T00:00:00Z" })),
        })
    }

    /// `POST /images/create?fromImage=&tag=`: a stream of progress messages; an error
    /// as the first item means nothing was streamed yet (answer with its status).
    pub fn pull(&self, from_image: &str, tag: &str) -> Result<mpsc::UnboundedReceiver<Result<JsonMessage>>> {
        let reference = Reference::parse(from_image)
            .and_then(|r| r.with_tag_param(tag))
            .map_err(Error::from)?
            .with_default_tag();
        let (tx, rx) = mpsc::unbounded_channel();
        let store = self.inner.images.clone();
        let cfg = self.inner.cfg.registry.clone();
        let engine = self.clone();
        tokio::spawn(async move {
            let ptx = tx.clone();
            let mut progress = move |p: Progress| {
                let _ = ptx.send(Ok(to_message(p)));
            };
            match berth_image::pull(&store, &reference, &cfg, None, &mut progress).await {
                Ok(img) => engine.image_event("pull", &reference.familiar(), &img),
                Err(e) => {
                    let _ = tx.send(Err(Error::from(e)));
                }
            }
        });
        Ok(rx)
    }

    /// `POST /images/{name}/tag?repo=&tag=`.
    pub async fn tag_image(&self, name: &str, repo: &str, tag: &str) -> Result<()> {
        let image = self.resolve_image(name).await?;
        let r = Reference::parse_repo_tag(repo, tag).map_err(Error::from)?.with_default_tag();
        self.inner.images.tag(&image.id, &r).map_err(Error::from)?;
        self.image_event("tag", &image.id, &image);
        Ok(())
    }

    fn image_event(&self, action: &str, id: &str, img: &Image) {
        let mut attrs: std::collections::BTreeMap<String, String> =
            img.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default().into_iter().collect();
        attrs.insert("name".into(), img.repo_tags.first().cloned().unwrap_or_else(|| id.to_string()));
        self.inner.events.emit("image", action, id, attrs);
    }

    /// `DELETE /images/{name}`.
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteItem>> {
        let engine = self.clone();
        let name = name.to_string();
        let items = tokio::task::spawn_blocking(move || {
            let used_by = |id: &str| engine.image_users(id);
            engine.inner.images.remove(&name, force, &used_by)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(Error::from)?;
        for i in &items {
            let (action, id) = match i {
                RemoveItem::Untagged(s) => ("untag", s),
                RemoveItem::Deleted(s) => ("delete", s),
            };
            let mut attrs = std::collections::BTreeMap::new();
            attrs.insert("name".to_string(), id.clone());
            self.inner.events.emit("image", action, id, attrs);
        }
        Ok(items
            .into_iter()
            .map(|i| match i {
                RemoveItem::Untagged(s) => ImageDeleteItem { untagged: Some(s), deleted: None },
                RemoveItem::Deleted(s) => ImageDeleteItem { untagged: None, deleted: Some(s) },
            })
            .collect())
    }
}

impl Engine {
    /// `POST /images/prune`: removes dangling images (untagged), or with
    /// `dangling=false` every image no container uses. The space reclaimed is what the
    /// freed layer directories held.
    pub async fn prune_images(&self, filters: &str) -> Result<(Vec<ImageDeleteItem>, u64)> {
        let filters = berth_api::parse_filters(filters).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&filters, berth_api::filter_keys::IMAGE_PRUNE).map_err(Error::invalid)?;
        let dangling_only = filters
            .get("dangling")
            .and_then(|v| v.first())
            .is_none_or(|v| v == "true" || v == "1");
        let mut items = Vec::new();
        let mut reclaimed = 0;
        for img in self.inner.images.list() {
            if dangling_only && !img.repo_tags.is_empty() {
                continue;
            }
            if self.image_users(&img.id).is_some() {
                continue;
            }
            if let Some(labels) = filters.get("label") {
                let mine = img.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
                let ok = labels.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => mine.get(k).is_some_and(|x| x == val),
                    None => mine.contains_key(v.as_str()),
                });
                if !ok {
                    continue;
                }
            }
            let layers = self.inner.images.layer_dirs(&img).unwrap_or_default();
            let sizes: Vec<(std::path::PathBuf, u64)> =
                layers.into_iter().map(|d| { let s = crate::containers::dir_size(&d); (d, s) }).collect();
            match self.remove_image(&img.id, true).await {
                Ok(mut removed) => {
                    reclaimed += sizes.iter().filter(|(d, _)| !d.exists()).map(|(_, s)| s).sum::<u64>();
                    items.append(&mut removed);
                }
                Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok((items, reclaimed))
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        for (n, want) in [
            (0, "0B"),
            (999, "999B"),
            (36_445, "36.45kB"),
            (3_073_128, "3.073MB"),
            (1_984_172, "1.984MB"),
            (1_000_000, "1MB"),
        ] {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn progress_messages() {
        let m = to_message(Progress { id: Some("abc".into()), status: "Pull complete".into(), current: None, total: None });
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#
        );
        let m = to_message(Progress { id: None, status: "Digest: sha256:x".into(), current: None, total: None });
        assert_eq!(serde_json::to_string(&m).expect("json"), r#"{"status":"Digest: sha256:x"}"#);
    }
}
