//! `GET /images/{name}/history` (Docker's `ImageHistory`): one entry per history entry
//! of the image's config, newest first, with the size of the layer each non-empty entry
//! made; the image's id (and its tags) on its own newest entry, then its `Parent`'s
//! (a committed image's) on the next, and `<missing>` where no image in the store owns
//! the entry — the base layers of a pulled image.

use berth_api::HistoryResponseItem;
use berth_image::manifest::History;

use crate::error::{Error, Result};
use crate::Engine;

/// The entries of one config's history, newest first, ids `<missing>`. `size_of(n)` is
/// the size of the layer made by the n-th non-empty entry (0 if unknown).
pub fn entries(history: &[History], layers: usize, size_of: impl Fn(usize) -> u64) -> Result<Vec<HistoryResponseItem>> {
    let mut out = Vec::with_capacity(history.len());
    let mut n = 0;
    for h in history {
        let mut size = 0;
        if !h.empty_layer.unwrap_or(false) {
            if n >= layers {
                return Err(Error::internal("too many non-empty layers in History section"));
            }
            size = size_of(n) as i64;
            n += 1;
        }
        out.push(HistoryResponseItem {
            id: "<missing>".into(),
            created: h.created.as_deref().and_then(crate::timefmt::parse).map_or(0, |t| t.timestamp()),
            created_by: h.created_by.clone().unwrap_or_default(),
            tags: None,
            size,
            comment: h.comment.clone().unwrap_or_default(),
        });
    }
    out.reverse();
    Ok(out)
}

impl Engine {
    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryResponseItem>> {
        let img = self.resolve_image(name).await?;
        let chains = berth_image::store::chain_id(&img.layers);
        let store = self.images();
        let mut items = entries(&img.config.history, chains.len(), |n| store.layer_size(&chains[n]).unwrap_or(0))?;
        // Ids and tags: this image, then its parent chain, one entry each.
        let mut cur = Some(img);
        for item in items.iter_mut() {
            let Some(i) = cur.take() else { break };
            item.id = i.id.clone();
            item.tags = (!i.repo_tags.is_empty()).then(|| i.repo_tags.clone());
            cur = i.parent.as_deref().and_then(|p| store.get(p).ok());
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(created_by: &str, empty: bool) -> History {
        History {
            created: Some("2026-01-02T03:04:05Z".into()),
            created_by: Some(created_by.into()),
            empty_layer: empty.then_some(true),
            ..Default::default()
        }
    }

    #[test]
    fn newest_first_with_layer_sizes() {
        let hist = [h("ADD rootfs", false), h("CMD [\"sh\"]", true), h("RUN make", false)];
        let v = entries(&hist, 2, |n| [100, 7][n]).unwrap();
        let got: Vec<(&str, i64, &str)> = v.iter().map(|i| (i.created_by.as_str(), i.size, i.id.as_str())).collect();
        assert_eq!(got, [("RUN make", 7, "<missing>"), ("CMD [\"sh\"]", 0, "<missing>"), ("ADD rootfs", 100, "<missing>")]);
        assert_eq!(v[0].created, 1_767_323_045);
        assert_eq!(v[0].tags, None);
    }

    #[test]
    fn more_layer_entries_than_layers_is_docker_error() {
        let e = entries(&[h("a", false), h("b", false)], 1, |_| 0).unwrap_err();
        assert_eq!(e.message, "too many non-empty layers in History section");
        assert!(entries(&[], 0, |_| 0).unwrap().is_empty());
    }
}
