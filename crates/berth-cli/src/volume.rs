//! `berth volume create|ls|inspect|rm|prune`: Docker's flags, tables (`DRIVER  VOLUME
//! NAME`), `--format`, `-q` and `--filter`, over the `/volumes` API.

use berth_api::{Volume, VolumeCreateBody, VolumeListResponse, VolumesPruneResponse};
use berth_client::Body;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::cli::InspectArgs;
use crate::container::{filters_json, query, render_rows};
use crate::format::human_size_prec;
use crate::{CmdResult, Ctx, Fail};

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
}

#[derive(Args, Debug)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long)]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long)]
    pub name: Option<String>,
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumeLsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub rest: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    pub rest: Vec<String>,
}

/// `--format` field → table header, as Docker's volume formatter names them.
const HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("CreatedAt", "CREATED AT"),
];

/// `key=value` list flags (`--label`, `--opt`) as a map; a bare key has an empty value.
fn kv_map(items: &[String]) -> berth_api::Map {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (s.clone(), String::new()),
        })
        .collect()
}

/// A volume as `--format` sees it (Docker's `volumeContext`).
pub fn volume_row(v: &Volume) -> Value {
    let labels: Vec<String> = v.labels.iter().flatten().map(|(k, val)| format!("{k}={val}")).collect();
    let (links, size) = match v.usage_data {
        Some(u) if u.size >= 0 => (u.ref_count.to_string(), human_size_prec(u.size as f64, 3)),
        Some(u) => (u.ref_count.to_string(), "N/A".to_string()),
        None => ("N/A".to_string(), "N/A".to_string()),
    };
    json!({
        "Name": v.name, "Driver": v.driver, "Scope": v.scope, "Mountpoint": v.mountpoint,
        "Labels": labels.join(","), "Links": links, "Size": size, "CreatedAt": v.created_at,
        "__labels": v.labels.clone().unwrap_or_default(),
    })
}

pub fn dispatch(ctx: &mut Ctx, cmd: VolumeCmd) -> CmdResult {
    match cmd {
        VolumeCmd::Create(a) => create(ctx, a),
        VolumeCmd::Ls(a) => ls(ctx, a),
        VolumeCmd::Inspect(a) => crate::system::inspect(ctx, a, Some("volume"), "volume inspect"),
        VolumeCmd::Rm(a) => rm(ctx, a),
        VolumeCmd::Prune(a) => prune(ctx, a),
    }
}

fn create(ctx: &mut Ctx, o: VolumeCreateArgs) -> CmdResult {
    ctx.require("volume create", o.names.len(), 0, Some(1))?;
    let name = match (o.names.first(), &o.name) {
        (Some(a), Some(b)) if a != b => {
            return Err(Fail::new(1, "conflicting options: either specify --name or provide positional arg, not both"))
        }
        (Some(a), _) => a.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => String::new(),
    };
    let body = VolumeCreateBody { name, driver: o.driver, driver_opts: kv_map(&o.opt), labels: kv_map(&o.label) };
    let v: Volume = ctx.client.post_json("/volumes/create", &body)?;
    println!("{}", v.name);
    Ok(0)
}

fn ls(ctx: &mut Ctx, o: VolumeLsArgs) -> CmdResult {
    ctx.require("volume ls", o.rest.len(), 0, Some(0))?;
    let mut params = Vec::new();
    if let Some(f) = filters_json(&o.filter)? {
        params.push(("filters", f));
    }
    let mut r: VolumeListResponse = ctx.client.get_json(&query("/volumes", &params))?;
    r.volumes.sort_by(|a, b| a.name.cmp(&b.name));
    for w in r.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    let rows: Vec<Value> = r.volumes.iter().map(volume_row).collect();
    let format = match o.format.as_deref() {
        _ if o.quiet => "{{.Name}}".to_string(),
        None | Some("") | Some("table") => "table {{.Driver}}\t{{.Name}}".to_string(),
        Some(f) => f.to_string(),
    };
    print!("{}", render_rows(&format, &rows, HEADERS)?);
    Ok(0)
}

fn rm(ctx: &mut Ctx, o: VolumeRmArgs) -> CmdResult {
    ctx.require("volume rm", o.names.len(), 1, None)?;
    let params = if o.force { vec![("force", "1".to_string())] } else { Vec::new() };
    let mut errs = Vec::new();
    for n in &o.names {
        match ctx.client.delete(&query(&format!("/volumes/{n}"), &params)) {
            Ok(_) => println!("{n}"),
            Err(e) => errs.push(e.to_string()),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, errs.join("\n")))
    }
}

fn prune(ctx: &mut Ctx, o: VolumePruneArgs) -> CmdResult {
    ctx.require("volume prune", o.rest.len(), 0, Some(0))?;
    let warning = if o.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !o.force && !crate::system::confirm(warning) {
        return Ok(0);
    }
    let mut filters = o.filter.clone();
    if o.all {
        filters.push("all=true".into());
    }
    let mut params = Vec::new();
    if let Some(f) = filters_json(&filters)? {
        params.push(("filters", f));
    }
    let (_, data) = ctx.client.call("POST", &query("/volumes/prune", &params), &[], Body::Empty)?;
    let r: VolumesPruneResponse = berth_client::decode(&data)?;
    if let Some(d) = r.volumes_deleted.filter(|d| !d.is_empty()) {
        println!("Deleted Volumes:");
        for n in d {
            println!("{n}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size_prec(r.space_reclaimed as f64, 4));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_rows_and_table() {
        let v = Volume {
            name: "data".into(),
            driver: "local".into(),
            scope: "local".into(),
            labels: Some([("a".to_string(), "b".to_string())].into()),
            usage_data: Some(berth_api::UsageData { size: 2048, ref_count: 1 }),
            ..Default::default()
        };
        let rows = vec![volume_row(&v)];
        assert_eq!(
            render_rows("table {{.Driver}}\t{{.Name}}", &rows, HEADERS).unwrap(),
            "DRIVER    VOLUME NAME\nlocal     data\n"
        );
        assert_eq!(render_rows("{{.Name}} {{.Labels}} {{.Links}} {{.Size}}", &rows, HEADERS).unwrap(), "data a=b 1 2.05kB\n");
        assert_eq!(kv_map(&["a=b".into(), "c".into()]), [("a".to_string(), "b".to_string()), ("c".to_string(), String::new())].into());
    }
}
