//! `berth search [--limit N] [-f k=v] [--format] [--no-trunc] TERM`: Docker's table
//! (NAME, DESCRIPTION, STARS, OFFICIAL; descriptions cut at 45 characters) over
//! `GET /images/search`.

use serde_json::{json, Value};

use crate::container::{filters_json, query, render_rows};
use crate::{CmdResult, Ctx, Fail};

const HEADERS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
    ("IsAutomated", "AUTOMATED"),
];

/// Docker's `formatter.Ellipsis(desc, 45)` (on runes) after joining lines.
fn cut(desc: &str, trunc: bool) -> String {
    let d = desc.replace('\n', " ");
    if !trunc || d.chars().count() <= 45 {
        return d;
    }
    let mut s: String = d.chars().take(44).collect();
    s.push('…');
    s
}

pub fn search(ctx: &mut Ctx, o: crate::cli::SearchArgs) -> CmdResult {
    ctx.require("search", o.terms.len(), 1, Some(1))?;
    let mut params = vec![("term", o.terms[0].clone())];
    if let Some(l) = o.limit {
        params.push(("limit", l.to_string()));
    }
    if let Some(f) = filters_json(&o.filter)? {
        params.push(("filters", f));
    }
    let results: Vec<Value> = ctx.client.get_json(&query("/images/search", &params)).map_err(Fail::from)?;
    let ok = |b: bool| if b { "[OK]" } else { "" };
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "Name": r["name"].as_str().unwrap_or(""),
                "Description": cut(r["description"].as_str().unwrap_or(""), !o.no_trunc),
                "StarCount": r["star_count"].as_u64().unwrap_or(0).to_string(),
                "IsOfficial": ok(r["is_official"].as_bool().unwrap_or(false)),
                "IsAutomated": ok(r["is_automated"].as_bool().unwrap_or(false)),
            })
        })
        .collect();
    let format = match o.format.as_deref() {
        None | Some("") | Some("table") => "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}".to_string(),
        Some(f) => f.to_string(),
    };
    print!("{}", render_rows(&format, &rows, HEADERS)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_cut_like_docker() {
        assert_eq!(cut("short", true), "short");
        let long = "a".repeat(50);
        assert_eq!(cut(&long, true), format!("{}…", "a".repeat(44)));
        assert_eq!(cut(&long, false), long);
        assert_eq!(cut("two\nlines", true), "two lines");
    }
}
