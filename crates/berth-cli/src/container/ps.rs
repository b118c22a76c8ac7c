//! `ps` / `container ls`, and the `--format` row renderer shared by the list commands.

use berth_api::ContainerSummary;
use serde_json::{json, Value};

use super::*;
use crate::cli::PsArgs;
use crate::format::{display_ports, ellipsis, go_time_string, human_size, tabwrite, truncate_id};
use crate::template::{go_quote, Template};
use crate::{CmdResult, Ctx, Fail};

/// Header names of the `ps` formatter fields.
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Platform", "PLATFORM"),
];

/// The CLI formatter's view of one container (`{{.ID}}`, `{{.Names}}`, …).
pub fn ps_context(c: &ContainerSummary, trunc: bool, now: f64) -> Value {
    let id = if trunc { truncate_id(&c.id) } else { c.id.clone() };
    let image = if c.image.is_empty() { "<no image>".to_string() } else if trunc && c.image.starts_with("sha256:") { truncate_id(&c.image) } else { c.image.clone() };
    let command = if trunc { ellipsis(&c.command, 20) } else { c.command.clone() };
    let mut names: Vec<String> = c.names.iter().map(|n| n.strip_prefix('/').unwrap_or(n).to_string()).collect();
    if trunc {
        if let Some(n) = names.iter().find(|n| !n.contains('/')) {
            names = vec![n.clone()];
        }
    }
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let size = {
        let srw = human_size(c.size_rw.unwrap_or(0));
        match c.size_root_fs {
            Some(v) if v > 0 => format!("{srw} (virtual {})", human_size(v)),
            _ => srw,
        }
    };
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            let n = m.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| m.source.clone());
            if trunc { ellipsis(&n, 15) } else { n }
        })
        .collect();
    let local_volumes = c.mounts.iter().filter(|m| m.driver.as_deref() == Some("local")).count();
    let networks: Vec<String> = c.network_settings.networks.keys().cloned().collect();
    let created = c.created;
    json!({
        "__type": "*formatter.ContainerContext",
        "__labels": c.labels,
        "ID": id,
        "Image": image,
        "Command": go_quote(&command),
        "CreatedAt": go_time_string(created),
        "RunningFor": crate::format::human_duration(now - created as f64) + " ago",
        "Ports": display_ports(&c.ports),
        "State": c.state,
        "Status": c.status,
        "Size": size,
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": local_volumes.to_string(),
    })
}

fn header_ctx(headers: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in headers {
        m.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    m.insert("__labels".into(), json!({}));
    Value::Object(m)
}

/// Renders rows with a `--format` value the way docker's formatter does: `table …`
/// (header + tabwriter), `json` (one object per line) or a plain template.
pub fn render_rows(format: &str, rows: &[Value], headers: &[(&str, &str)]) -> Result<String, Fail> {
    let fmt = format.trim();
    let (table, body) = if let Some(rest) = fmt.strip_prefix("table") {
        (true, rest.trim().to_string())
    } else if fmt == "json" {
        (false, "{{json .}}".to_string())
    } else {
        (false, fmt.to_string())
    };
    let body = body.replace("\\t", "\t").replace("\\n", "\n");
    let tpl = Template::parse(&body).map_err(|e| Fail::new(1, e))?;
    let mut out = String::new();
    if table {
        out.push_str(&tpl.execute(&header_ctx(headers), true).map_err(|e| Fail::new(1, e))?);
        out.push('\n');
    }
    for r in rows {
        out.push_str(&tpl.execute(r, false).map_err(|e| Fail::new(1, e))?);
        out.push('\n');
    }
    Ok(if table { tabwrite(&out) } else { out })
}

pub fn ps(ctx: &mut Ctx, o: PsArgs, path: &str) -> CmdResult {
    ctx.require(path, o.rest.len(), 0, Some(0))?;
    let mut format = o.format.clone().unwrap_or_default();
    if o.quiet && !format.is_empty() && format != "table" {
        eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
        format.clear();
    }
    let mut last = o.last;
    if o.latest && last == -1 {
        last = 1;
    }
    let size = o.size || (format.contains(".Size") && !o.quiet);
    let mut params = Vec::new();
    if o.all {
        params.push(("all", "1".to_string()));
    }
    if last > 0 {
        params.push(("limit", last.to_string()));
    }
    if size {
        params.push(("size", "1".into()));
    }
    if let Some(f) = filters_json(&o.filter)? {
        params.push(("filters", f));
    }
    let list: Vec<ContainerSummary> = decode_list(ctx.client.get_json(&query("/containers/json", &params))?)?;
    let now = crate::format::now_secs_f64();
    let rows: Vec<Value> = list.iter().map(|c| ps_context(c, !o.no_trunc, now)).collect();
    let format = if o.quiet {
        "{{.ID}}".to_string()
    } else if format.is_empty() || format == "table" {
        let mut f = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
        if o.size {
            f.push_str("\t{{.Size}}");
        }
        f
    } else {
        format
    };
    print!("{}", render_rows(&format, &rows, PS_HEADERS)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_and_table() {
        let c: ContainerSummary = serde_json::from_value(json!({
            "Id": "4730254c0111d9efc1050132ff34ae1b85576c79640e5e2c7943f3bbb2eae6af", "Names": ["/web"], "Image": "busybox",
            "Command": "sh -c 'while true; do echo tick; sleep 1; done'", "Created": 1000,
            "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"}],
            "Labels": {"trace": "1"}, "State": "running", "Status": "Up 2 minutes",
            "NetworkSettings": {"Networks": {"bridge": {}}}
        }))
        .expect("summary");
        let row = ps_context(&c, true, 1000.0 + 125.0);
        assert_eq!(row["ID"], json!("4730254c0111"));
        assert_eq!(row["Command"], json!("\"sh -c 'while true; …\""));
        assert_eq!(row["RunningFor"], json!("2 minutes ago"));
        assert_eq!(row["Names"], json!("web"));
        assert_eq!(row["Ports"], json!("0.0.0.0:18080->80/tcp"));
        let table = render_rows("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}", std::slice::from_ref(&row), PS_HEADERS).expect("render");
        assert_eq!(
            table,
            "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                   NAMES\n\
             4730254c0111   busybox   \"sh -c 'while true; …\"   2 minutes ago   Up 2 minutes   0.0.0.0:18080->80/tcp   web\n"
        );
        assert_eq!(render_rows("{{.Names}}\\t{{.Label \"trace\"}}", std::slice::from_ref(&row), PS_HEADERS).expect("plain"), "web\t1\n");
        let j = render_rows("json", &[row], PS_HEADERS).expect("json");
        assert!(j.starts_with("{\"Command\":") && !j.contains("__"), "{j}");
        assert_eq!(render_rows("table {{.Names}}", &[], PS_HEADERS).expect("empty"), "NAMES\n");
    }
}
