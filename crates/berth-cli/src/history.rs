//! `history` / `image history`: `GET /images/{name}/history` as the docker CLI prints it
//! (IMAGE, CREATED, CREATED BY, SIZE, COMMENT; `--no-trunc`, `-H=false`, `-q`,
//! `--format`).

use berth_api::HistoryResponseItem;
use serde_json::{json, Value};

use crate::cli::HistoryArgs;
use crate::container::render_rows;
use crate::format::{ellipsis, human_size, since, truncate_id};
use crate::{CmdResult, Ctx};

const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// Go's `time.Unix(secs, 0).Format(time.RFC3339)` in the local zone.
fn rfc3339_local(secs: i64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) if t.offset().local_minus_utc() == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => String::new(),
    }
}

/// The template context of one entry (docker's `historyContext`).
pub fn row(h: &HistoryResponseItem, human: bool, trunc: bool) -> Value {
    let created_at = rfc3339_local(h.created);
    let created_by = h.created_by.replace('\t', " ");
    json!({
        "__type": "*image.historyContext",
        "ID": if trunc { truncate_id(&h.id) } else { h.id.clone() },
        "CreatedSince": if human { since(h.created) } else { created_at.clone() },
        "CreatedAt": created_at,
        "CreatedBy": if trunc { ellipsis(&created_by, 45) } else { created_by },
        "Size": if human { human_size(h.size) } else { h.size.to_string() },
        "Comment": h.comment,
    })
}

/// The format docker picks: `-q` and `-H=false` only change the default table.
pub fn format_for(format: Option<&str>, quiet: bool, human: bool) -> String {
    match format.unwrap_or("") {
        "" | "table" if quiet => "{{.ID}}".into(),
        "" | "table" if !human => "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into(),
        "" | "table" => "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into(),
        f => f.to_string(),
    }
}

pub fn history(ctx: &mut Ctx, o: HistoryArgs, path: &str) -> CmdResult {
    ctx.require(path, o.names.len(), 1, Some(1))?;
    let items: Vec<HistoryResponseItem> = ctx.client.get_json(&format!("/images/{}/history", o.names[0]))?;
    let rows: Vec<Value> = items.iter().map(|h| row(h, o.human, !o.no_trunc)).collect();
    let format = format_for(o.format.as_deref(), o.quiet, o.human);
    print!("{}", render_rows(&format, &rows, HEADERS)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, by: &str, size: i64) -> HistoryResponseItem {
        HistoryResponseItem { id: id.into(), created: 1_767_323_045, created_by: by.into(), size, ..Default::default() }
    }

    #[test]
    fn columns_as_docker() {
        let long = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / ";
        let id = format!("sha256:{}", "ab".repeat(32));
        let r = row(&item(&id, long, 7_340_032), true, true);
        assert_eq!(r["ID"], "abababababab");
        assert_eq!(r["CreatedBy"].as_str().map(|s| s.chars().count()), Some(45));
        assert!(r["CreatedBy"].as_str().unwrap_or("").ends_with('…'));
        assert_eq!(r["Size"], "7.34MB");
        assert!(r["CreatedSince"].as_str().unwrap_or("").ends_with(" ago"));
        let r = row(&item("<missing>", "a\tb", 0), false, false);
        assert_eq!((r["ID"].as_str(), r["CreatedBy"].as_str(), r["Size"].as_str()), (Some("<missing>"), Some("a b"), Some("0")));
        assert_eq!(r["CreatedSince"], r["CreatedAt"]);
    }

    #[test]
    fn formats() {
        let table = [
            (None, false, true, "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"),
            (Some("table"), true, true, "{{.ID}}"),
            (None, false, false, "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"),
            // A custom format wins over -q.
            (Some("{{.Size}}"), true, true, "{{.Size}}"),
        ];
        for (f, q, h, want) in table {
            assert_eq!(format_for(f, q, h), want);
        }
    }
}
