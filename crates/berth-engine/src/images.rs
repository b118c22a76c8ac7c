//! Image operations of the engine: list, inspect, pull (as a progress stream), import
//! (`docker import`), tag, remove — `berth-image` does the storage and registry work.

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

/// `POST /images/create?fromSrc=-&repo=&tag=&message=&changes=&platform=`.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// `-` (the request body) or the URL the archive came from; named in the comment.
    pub src: String,
    pub repo: String,
    pub tag: String,
    pub message: String,
    /// `--change` lines (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL,
    /// USER, VOLUME, WORKDIR).
    pub changes: Vec<String>,
    /// `os[/arch[/variant]]`; empty is the host's.
    pub platform: String,
}

/// The platform an import is recorded for: the host's unless given; only Linux images
/// can be used here (Docker's `image.CheckOS`).
fn import_platform(p: &str) -> std::result::Result<berth_image::manifest::Platform, String> {
    let mut out = berth_image::manifest::Platform::host();
    if p.is_empty() {
        return Ok(out);
    }
    let parts: Vec<String> = p.split('/').map(str::to_ascii_lowercase).collect();
    if parts.len() > 3 || parts.iter().any(String::is_empty) {
        return Err(format!("\"{p}\": unknown operating system or architecture: invalid argument"));
    }
    if parts[0] != "linux" {
        return Err(format!("image operating system \"{}\" cannot be used on this platform", parts[0]));
    }
    if let Some(a) = parts.get(1) {
        out.architecture = match a.as_str() {
            "x86_64" | "x86-64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            "i386" | "i686" => "386".into(),
            other => other.into(),
        };
    }
    out.variant = parts.get(2).cloned();
    Ok(out)
}

/// The config `docker import` writes: the platform, `created`, the `--change` config,
/// the message as comment and one history entry without `created_by`.
fn import_config(
    platform: &berth_image::manifest::Platform,
    cfg: &berth_api::ContainerConfig,
    comment: &str,
    created: &str,
) -> serde_json::Value {
    let mut history = serde_json::json!({ "created": created });
    let mut v = serde_json::json!({
        "architecture": platform.architecture,
        "config": cfg,
        "created": created,
        "docker_version": concat!("berth-", env!("CARGO_PKG_VERSION")),
        "os": platform.os,
    });
    if let Some(var) = &platform.variant {
        v["variant"] = var.as_str().into();
    }
    if !comment.is_empty() {
        v["comment"] = comment.into();
        history["comment"] = comment.into();
    }
    v["history"] = serde_json::json!([history]);
    v
}

impl Engine {
    /// `docker import`: a single-layer image from the archive in `body` (plain or
    /// gzip tar, read as it arrives), configured by `changes`; returns its id. Errors
    /// in the options are found before the body is read; a broken archive leaves the
    /// store as it was. The rest of the body is drained so the client reads the answer.
    pub async fn import_image(
        &self,
        opts: ImportOptions,
        body: crate::fsops::UploadStream,
    ) -> Result<String> {
        let mut body = body;
        let prepared = (|| -> Result<_> {
            let reference = if opts.repo.is_empty() {
                None
            } else {
                Some(Reference::parse_repo_tag(&opts.repo, &opts.tag).map_err(Error::from)?.with_default_tag())
            };
            let platform = import_platform(&opts.platform).map_err(Error::invalid)?;
            let mut cfg = berth_api::ContainerConfig::default();
            crate::fsops::apply_changes(&mut cfg, &opts.changes).map_err(Error::invalid)?;
            let comment =
                if opts.message.is_empty() { format!("Imported from {}", opts.src) } else { opts.message.clone() };
            Ok((reference, import_config(&platform, &cfg, &comment, &timefmt::now())))
        })();
        let (reference, config) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // Read the archive to its end so that a client that sends the whole
                // body before reading the answer gets the answer, not a reset.
                while body.recv().await.is_some() {}
                return Err(e);
            }
        };
        let store = self.inner.images.clone();
        let image = tokio::task::spawn_blocking(move || {
            let mut reader = crate::fsops::UploadReader::new(body);
            let r = store.import(&mut reader, config, reference.as_ref());
            if r.is_err() {
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            }
            r
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(Error::from)?;
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), image.id.clone());
        self.inner.events.emit("image", "import", &image.id, attrs);
        Ok(image.id)
    }

    /// `docker import URL`: GETs the archive (a source without a scheme is `http://`);
    /// returns the URL as fetched and the body as it arrives. Docker's texts when the URL
    /// cannot be fetched.
    pub async fn fetch_import_source(&self, src: &str) -> Result<(String, crate::fsops::UploadStream)> {
        let url = berth_image::fetch::import_url(src);
        match berth_image::fetch::fetch(&url).await {
            Ok((body, _)) => Ok((url, body)),
            Err(e) => Err(match e.kind {
                berth_image::ErrorKind::NotFound => Error::not_found(e.message),
                berth_image::ErrorKind::InvalidArgument => Error::invalid(e.message),
                _ => Error::internal(e.message),
            }),
        }
    }

    /// An image by reference, id or id prefix; NotFound in Docker's words.
    pub async fn resolve_image(&self, name: &str) -> Result<Image> {
        let store = self.inner.images.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || store.resolve(&name))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::from)
    }

    /// Per image id, the bytes of its layers another image uses too (`system df`'s
    /// SharedSize).
    pub fn image_shared_sizes(&self) -> BTreeMap<String, u64> {
        self.inner.images.shared_sizes()
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
                parent_id: i.parent.clone().unwrap_or_default(),
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
            parent: i.parent.clone().unwrap_or_default(),
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
    /// An empty `tag` with a `from_image` without tag or digest pulls every tag
    /// (Docker's API; `pull -a`); `platform` (`os[/arch[/variant]]`) picks the
    /// manifest out of an index.
    pub fn pull(
        &self,
        from_image: &str,
        tag: &str,
        platform: &str,
        auth: &berth_image::AuthConfig,
    ) -> Result<mpsc::UnboundedReceiver<Result<JsonMessage>>> {
        let creds = auth.credentials();
        let parsed = Reference::parse(from_image).and_then(|r| r.with_tag_param(tag)).map_err(Error::from)?;
        let opts = berth_image::PullOptions {
            platform: if platform.is_empty() {
                None
            } else {
                Some(berth_image::manifest::Platform::parse(platform).map_err(Error::invalid)?)
            },
            all_tags: tag.is_empty() && parsed.tag.is_none() && parsed.digest.is_none(),
        };
        let reference = if opts.all_tags { parsed } else { parsed.with_default_tag() };
        let (tx, rx) = mpsc::unbounded_channel();
        let store = self.inner.images.clone();
        let cfg = self.inner.cfg.registry.clone();
        let engine = self.clone();
        tokio::spawn(async move {
            let ptx = tx.clone();
            let mut progress = move |p: Progress| {
                let _ = ptx.send(Ok(to_message(p)));
            };
            match berth_image::pull_with(&store, &reference, &cfg, creds.as_ref(), &opts, &mut progress).await {
                Ok(img) => engine.image_event("pull", &reference.familiar(), &img),
                Err(e) => {
                    let _ = tx.send(Err(Error::from(e)));
                }
            }
        });
        Ok(rx)
    }

    /// `POST /images/{name}/push?tag=`: the progress stream (`aux` with the digest at
    /// the end); an empty tag pushes every local tag of the repository, as Docker.
    pub fn push(
        &self,
        name: &str,
        tag: &str,
        auth: &berth_image::AuthConfig,
    ) -> Result<mpsc::UnboundedReceiver<Result<JsonMessage>>> {
        let creds = auth.credentials();
        let parsed = Reference::parse(name).and_then(|r| r.with_tag_param(tag)).map_err(Error::from)?;
        if parsed.digest.is_some() {
            return Err(Error::invalid("cannot push a digest reference"));
        }
        let targets: Vec<Reference> = if parsed.tag.is_some() {
            vec![parsed.clone()]
        } else {
            let repo = parsed.familiar_name();
            let mut tags: Vec<Reference> = self
                .inner
                .images
                .list()
                .iter()
                .flat_map(|i| i.repo_tags.clone())
                .filter_map(|t| Reference::parse(&t).ok())
                .filter(|r| r.familiar_name() == repo)
                .collect();
            tags.sort_by_key(|r| r.tag.clone());
            tags.dedup();
            if tags.is_empty() {
                tags.push(parsed.clone().with_default_tag());
            }
            tags
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let store = self.inner.images.clone();
        let cfg = self.inner.cfg.registry.clone();
        let engine = self.clone();
        tokio::spawn(async move {
            let ptx = tx.clone();
            let mut progress = move |e: berth_image::PushEvent| {
                let msg = match e {
                    berth_image::PushEvent::Line(p) => to_message(p),
                    berth_image::PushEvent::Aux { tag, digest, size } => JsonMessage {
                        progress_detail: Some(ProgressDetail::default()),
                        aux: Some(serde_json::json!({"Tag": tag, "Digest": digest, "Size": size})),
                        ..Default::default()
                    },
                };
                let _ = ptx.send(Ok(msg));
            };
            let opts = berth_image::PushOptions::default();
            for r in targets {
                match berth_image::push(&store, &r, &cfg, creds.as_ref(), &opts, &mut progress).await {
                    Ok(_) => {
                        if let Ok(img) = store.resolve(&r.familiar()) {
                            engine.image_event("push", &r.familiar(), &img);
                        }
                    }
                    Err(e) => {
                        let kind = crate::error::ErrorKind::from(e.kind());
                        let _ = tx.send(Err(Error::new(kind, e.to_string())));
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// `POST /auth`: Docker's login check against the registry; the identity token
    /// the registry issued, if any.
    pub async fn login(&self, auth: &berth_image::AuthConfig) -> Result<Option<String>> {
        berth_image::auth::login(&self.inner.cfg.registry, &auth.serveraddress, auth).await.map_err(|e| {
            let kind = crate::error::ErrorKind::from(e.kind);
            Error::new(kind, e.message)
        })
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

    #[test]
    fn import_platforms_like_docker() {
        let host = berth_image::manifest::Platform::host();
        // (platform parameter, Ok(os/arch[/variant]) or Err(Docker's text))
        let cases: [(&str, std::result::Result<String, &str>); 6] = [
            ("", Ok(host.to_string())),
            ("linux", Ok(host.to_string())),
            ("linux/arm64", Ok("linux/arm64".into())),
            ("Linux/x86_64", Ok("linux/amd64".into())),
            ("linux/arm/v7", Ok("linux/arm/v7".into())),
            ("windows/amd64", Err("image operating system \"windows\" cannot be used on this platform")),
        ];
        for (p, want) in cases {
            assert_eq!(import_platform(p).map(|p| p.to_string()).as_ref().map_err(String::as_str), want.as_ref().map_err(|e| *e), "{p}");
        }
    }

    #[test]
    fn import_config_is_dockers() {
        let p = berth_image::manifest::Platform { os: "linux".into(), architecture: "amd64".into(), variant: None };
        let mut cfg = berth_api::ContainerConfig::default();
        crate::fsops::apply_changes(&mut cfg, &["USER foobar".into(), "CMD [\"echo\"]".into()]).expect("changes");
        let v = import_config(&p, &cfg, "Imported from -", "2026-01-01T00:00:00Z");
        assert_eq!(v["architecture"], "amd64");
        assert_eq!(v["os"], "linux");
        assert_eq!(v["created"], "2026-01-01T00:00:00Z");
        assert_eq!(v["comment"], "Imported from -");
        assert_eq!(v["config"]["Cmd"], serde_json::json!(["echo"]));
        assert_eq!(v["config"]["User"], "foobar");
        // One history entry, without created_by (Go's omitempty drops the empty one).
        assert_eq!(v["history"], serde_json::json!([{"created": "2026-01-01T00:00:00Z", "comment": "Imported from -"}]));
        assert!(v.get("variant").is_none() && v.get("container_config").is_none() && v.get("parent").is_none());
    }
}
