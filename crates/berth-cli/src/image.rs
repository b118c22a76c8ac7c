//! Image commands: images, pull, tag, rmi.

use std::io;

use berth_api::reference::Reference;
use berth_api::{ImageDeleteItem, ImageSummary};
use serde_json::{json, Value};

use crate::cli::{ImagesArgs, Names, PullArgs, RmiArgs};
use crate::container::{decode_list, filters_json, pull_image, query, render_rows};
use crate::format::{go_time_string, human_size, since, truncate_id};
use crate::{term, CmdResult, Ctx, Fail};

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "VIRTUAL SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

fn image_ctx(i: &ImageSummary, repo: &str, tag: &str, digest: &str, trunc: bool) -> Value {
    let containers = if i.containers < 0 { "N/A".to_string() } else { i.containers.to_string() };
    let shared = if i.shared_size < 0 { "N/A".to_string() } else { human_size(i.shared_size) };
    let unique = if i.shared_size < 0 { "N/A".to_string() } else { human_size(i.size - i.shared_size) };
    json!({
        "__type": "*formatter.imageContext",
        "ID": if trunc { truncate_id(&i.id) } else { i.id.clone() },
        "Repository": repo,
        "Tag": tag,
        "Digest": digest,
        "CreatedSince": since(i.created),
        "CreatedAt": go_time_string(i.created),
        "Size": human_size(i.size),
        "VirtualSize": human_size(if i.virtual_size > 0 { i.virtual_size } else { i.size }),
        "Containers": containers,
        "SharedSize": shared,
        "UniqueSize": unique,
    })
}

fn split_ref(r: &str) -> Option<(String, String)> {
    let p = Reference::parse(r).ok()?;
    Some((p.familiar_name(), p.tag.or(p.digest)?))
}

/// One row per (repository, tag), like docker's `imageFormatTaggedAndDigest`.
pub fn image_rows(images: &[ImageSummary], digests: bool, trunc: bool) -> Vec<Value> {
    let mut rows = Vec::new();
    for i in images {
        let dangling = (i.repo_tags.is_empty() && i.repo_digests.is_empty())
            || (i.repo_tags == ["<none>:<none>"] && i.repo_digests.iter().all(|d| d == "<none>@<none>"));
        if dangling {
            rows.push(image_ctx(i, "<none>", "<none>", "<none>", trunc));
            continue;
        }
        let mut repo_tags: Vec<(String, Vec<String>)> = Vec::new();
        for t in &i.repo_tags {
            if let Some((repo, tag)) = split_ref(t) {
                match repo_tags.iter_mut().find(|(r, _)| *r == repo) {
                    Some((_, v)) => v.push(tag),
                    None => repo_tags.push((repo, vec![tag])),
                }
            }
        }
        let mut repo_digests: Vec<(String, Vec<String>)> = Vec::new();
        for d in &i.repo_digests {
            if let Some((repo, dg)) = d.split_once('@').and_then(|(r, dg)| Reference::parse(r).ok().map(|p| (p.familiar_name(), dg.to_string()))) {
                match repo_digests.iter_mut().find(|(r, _)| *r == repo) {
                    Some((_, v)) => v.push(dg),
                    None => repo_digests.push((repo, vec![dg])),
                }
            }
        }
        for (repo, tags) in &repo_tags {
            let ds = repo_digests.iter().position(|(r, _)| r == repo).map(|p| repo_digests.remove(p).1).unwrap_or_default();
            for tag in tags {
                if !digests || ds.is_empty() {
                    rows.push(image_ctx(i, repo, tag, "<none>", trunc));
                } else {
                    for d in &ds {
                        rows.push(image_ctx(i, repo, tag, d, trunc));
                    }
                }
            }
        }
        for (repo, ds) in &repo_digests {
            if digests {
                for d in ds {
                    rows.push(image_ctx(i, repo, "<none>", d, trunc));
                }
            } else {
                rows.push(image_ctx(i, repo, "<none>", "", trunc));
            }
        }
    }
    rows
}

pub fn images(ctx: &mut Ctx, o: ImagesArgs, path: &str) -> CmdResult {
    ctx.require(path, o.repo.len(), 0, Some(1))?;
    let mut filters = o.filter.clone();
    if let Some(r) = o.repo.first() {
        filters.push(format!("reference={r}"));
    }
    let mut params = Vec::new();
    if o.all {
        params.push(("all", "1".to_string()));
    }
    if let Some(f) = filters_json(&filters)? {
        params.push(("filters", f));
    }
    let list: Vec<ImageSummary> = decode_list(ctx.client.get_json(&query("/images/json", &params))?)?;
    let format = o.format.clone().unwrap_or_default();
    let rows = image_rows(&list, o.digests, !o.no_trunc);
    let format = if o.quiet {
        "{{.ID}}".to_string()
    } else if format.is_empty() || format == "table" {
        if o.digests {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_string()
        } else {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_string()
        }
    } else {
        format
    };
    print!("{}", render_rows(&format, &rows, IMAGE_HEADERS)?);
    Ok(0)
}

pub fn pull(ctx: &mut Ctx, o: PullArgs) -> CmdResult {
    ctx.require("pull", o.names.len(), 1, Some(1))?;
    let r = Reference::parse(&o.names[0]).map_err(|e| Fail::new(1, e.to_string()))?;
    if o.all_tags {
        if r.tag.is_some() || r.digest.is_some() {
            return Err(Fail::new(1, "tag can't be used with --all-tags/-a"));
        }
        let mut out = io::stdout();
        pull_image(&mut ctx.client, &r, o.platform.as_deref(), &mut out, term::isatty(1), o.quiet)?;
        println!("{}", r.full_name());
        return Ok(0);
    }
    if r.tag.is_none() && r.digest.is_none() && !o.quiet {
        println!("Using default tag: latest");
    }
    let r = r.with_default_tag();
    let mut out = io::stdout();
    pull_image(&mut ctx.client, &r, o.platform.as_deref(), &mut out, term::isatty(1), o.quiet)?;
    println!("{}", r.full());
    Ok(0)
}

/// `berth push [-a] [-q] NAME[:TAG]`: Docker's progress display of the daemon's stream
/// (`X-Registry-Auth` from the config file); an in-stream error exits 1.
pub fn push(ctx: &mut Ctx, o: crate::cli::PushArgs) -> CmdResult {
    ctx.require("push", o.names.len(), 1, Some(1))?;
    let r = Reference::parse(&o.names[0]).map_err(|e| Fail::new(1, e.to_string()))?;
    if r.digest.is_some() {
        return Err(Fail::new(1, "cannot push a digest reference"));
    }
    let tag = if o.all_tags {
        if r.tag.is_some() {
            return Err(Fail::new(1, "tag can't be used with --all-tags/-a"));
        }
        String::new()
    } else {
        if r.tag.is_none() && !o.quiet {
            println!("Using default tag: latest");
        }
        r.tag.clone().unwrap_or_else(|| "latest".into())
    };
    let path = query(&format!("/images/{}/push", r.full_name()), &[("tag", tag.clone())]);
    let auth = crate::login::registry_auth(&r.domain);
    let resp = ctx.client.send("POST", &path, &[("X-Registry-Auth", &auth)], berth_client::Body::Empty)?;
    let mut sink = io::sink();
    let mut out = io::stdout();
    let target: &mut dyn std::io::Write = if o.quiet { &mut sink } else { &mut out };
    match berth_client::stream::display_json_messages(resp, target, term::isatty(1) && !o.quiet, |_| {}) {
        Ok(()) => {}
        Err(berth_client::stream::DisplayError::Stream(e)) => return Err(Fail::new(1, e.message)),
        Err(berth_client::stream::DisplayError::Io(e)) => return Err(Fail::new(1, e.to_string())),
    }
    if o.quiet {
        println!("{}", if tag.is_empty() { r.full_name() } else { format!("{}:{tag}", r.full_name()) });
    }
    Ok(0)
}

pub fn tag(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("tag", o.names.len(), 2, Some(2))?;
    let target = Reference::parse(&o.names[1]).map_err(|e| Fail::new(1, e.to_string()))?;
    if target.digest.is_some() {
        return Err(Fail::new(1, "refusing to create a tag with a digest reference"));
    }
    let target = target.with_default_tag();
    let path = query(&format!("/images/{}/tag", o.names[0]), &[("repo", target.full_name()), ("tag", target.tag.clone().unwrap_or_default())]);
    ctx.client.post(&path)?;
    Ok(0)
}

pub fn rmi(ctx: &mut Ctx, o: RmiArgs) -> CmdResult {
    ctx.require("rmi", o.images.len(), 1, None)?;
    let mut params = Vec::new();
    if o.force {
        params.push(("force", "1".to_string()));
    }
    if o.no_prune {
        params.push(("noprune", "1".to_string()));
    }
    let mut errs = Vec::new();
    for img in &o.images {
        match ctx.client.call("DELETE", &query(&format!("/images/{img}"), &params), &[], berth_client::Body::None) {
            Ok((_, data)) => {
                let items: Option<Vec<ImageDeleteItem>> = berth_client::decode(&data).map_err(Fail::from)?;
                for it in items.unwrap_or_default() {
                    if let Some(u) = it.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = it.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => errs.push(e.to_string()),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, errs.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_per_tag() {
        let imgs: Vec<ImageSummary> = decode_list(serde_json::from_value(json!([
            {"Id": "sha256:54b748a9fe39aa724c7476a0ed238f50e59d0699a0a4270cc8950377e9ee7b68", "Created": 0, "Size": 1984172,
             "RepoTags": ["busybox:latest", "localhost:5000/busybox:latest", "busybox:1.36"],
             "RepoDigests": ["localhost:5000/busybox@sha256:2bd8"], "Containers": -1, "SharedSize": -1},
            {"Id": "sha256:aaaaaaaaaaaabbbb", "Created": 0, "Size": 0, "RepoTags": null, "RepoDigests": null},
            {"Id": "sha256:cccccccccccc", "Created": 0, "Size": 12345, "RepoTags": [], "RepoDigests": ["x@sha256:1"]}
        ])).expect("json"))
        .map_err(|f| f.msg)
        .expect("images");
        let rows = image_rows(&imgs, false, true);
        let got: Vec<(String, String, String, String)> = rows
            .iter()
            .map(|r| (r["Repository"].as_str().unwrap_or("").into(), r["Tag"].as_str().unwrap_or("").into(), r["ID"].as_str().unwrap_or("").into(), r["Size"].as_str().unwrap_or("").into()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("busybox".into(), "latest".into(), "54b748a9fe39".into(), "1.98MB".into()),
                ("busybox".into(), "1.36".into(), "54b748a9fe39".into(), "1.98MB".into()),
                ("localhost:5000/busybox".into(), "latest".into(), "54b748a9fe39".into(), "1.98MB".into()),
                ("<none>".into(), "<none>".into(), "aaaaaaaaaaaa".into(), "0B".into()),
                ("x".into(), "<none>".into(), "cccccccccccc".into(), "12.3kB".into()),
            ]
        );
        let with_digests = image_rows(&imgs, true, true);
        assert_eq!(with_digests[2]["Digest"], json!("sha256:2bd8"));
        let table = render_rows("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}", &rows[..1], IMAGE_HEADERS).expect("table");
        assert_eq!(table, "REPOSITORY   TAG       IMAGE ID       SIZE\nbusybox      latest    54b748a9fe39   1.98MB\n");
    }
}
