//! System-level commands: inspect (typed and untyped), version, info, events, stats and
//! the prune family.

use std::io::{self, BufRead, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use berth_api::version::MAX_API_VERSION;
use berth_api::{ContainerSummary, ContainersPruneResponse, EventMessage, ImagesPruneResponse};
use berth_client::Body;
use serde_json::{json, Value};

use crate::cli::{EventsArgs, FormatArgs, InspectArgs, PruneArgs, StatsArgs};
use crate::container::{api_timestamp, filters_json, query, render_rows};
use crate::format::{bytes_size, human_size_prec, json_indent, tabwrite_with, truncate_id};
use crate::template::{go_print, Template};
use crate::{CmdResult, Ctx, Fail};

pub use berth_buildinfo::GIT_COMMIT;

/// Docker's `reformatDate`: an RFC 3339 build time shown as Go's `time.ANSIC`
/// (`Fri May 30 12:07:14 2025`); anything else as it is.
fn reformat_date(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) => d.format("%a %b %e %H:%M:%S %Y").to_string(),
        Err(_) => t.to_string(),
    }
}

/// The toolchain line of a version block: `Rust version:` when the component says
/// which Rust built it (Berth), else Docker's `Go version:`.
fn toolchain_line(v: &Value) -> String {
    match v.get("RustVersion").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        Some(r) => format!("Rust version:\t{r}"),
        None => format!("Go version:\t{}", v.get("GoVersion").map(go_print).filter(|x| x != "<nil>").unwrap_or_default()),
    }
}

/// The `Client:` block of `berth version` (tab-separated, before tabwriting).
fn client_block(client: &Value) -> String {
    let s = |k: &str| client.get(k).map(go_print).filter(|x| x != "<nil>").unwrap_or_default();
    let mut api = s("ApiVersion");
    if api != MAX_API_VERSION {
        api = format!("{api} (downgraded from {MAX_API_VERSION})");
    }
    format!(
        "Client:\n Version:\t{}\n API version:\t{api}\n {}\n Git commit:\t{}\n Built:\t{}\n OS/Arch:\t{}/{}\n Context:\t{}\n",
        s("Version"),
        toolchain_line(client),
        s("GitCommit"),
        s("BuildTime"),
        s("Os"),
        s("Arch"),
        s("Context"),
    )
}

/// An io error as Go prints it (`no such file or directory`).
pub fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

// ---------------------------------------------------------------------------------
// inspect

/// Prints raw objects like docker's inspector: re-indented JSON array, or a template
/// per element.
pub(crate) fn print_inspected(raws: &[Vec<u8>], format: Option<&str>) -> Result<(), Fail> {
    let mut out = io::stdout().lock();
    match format.map(str::trim).filter(|f| !f.is_empty() && *f != "json") {
        None => {
            if raws.is_empty() {
                let _ = writeln!(out, "[]");
                return Ok(());
            }
            let mut buf = b"[".to_vec();
            for (i, r) in raws.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(r);
            }
            buf.push(b']');
            let _ = out.write_all(&json_indent(&buf, "    "));
            let _ = out.write_all(b"\n");
        }
        Some(f) => {
            let tpl = Template::parse(f).map_err(|e| Fail::new(1, e))?;
            for r in raws {
                let v: Value = serde_json::from_slice(r).unwrap_or(Value::Null);
                let s = tpl.execute(&v, false).map_err(|e| Fail::new(1, e))?;
                let _ = writeln!(out, "{s}");
            }
        }
    }
    Ok(())
}

pub fn inspect(ctx: &mut Ctx, o: InspectArgs, typed: Option<&str>, path: &str) -> CmdResult {
    ctx.require(path, o.names.len(), 1, None)?;
    let kind = typed.map(str::to_owned).or(o.kind.clone());
    if let Some(k) = &kind {
        if !matches!(k.as_str(), "container" | "image" | "network" | "volume" | "plugin" | "node" | "service" | "task" | "secret" | "config") {
            return Err(Fail::new(1, format!("\"{k}\" is not a valid value for --type")));
        }
    }
    let size = if o.size { "?size=1" } else { "" };
    let mut raws = Vec::new();
    let mut errs = Vec::new();
    for name in &o.names {
        let attempts: Vec<String> = match kind.as_deref() {
            Some("container") => vec![format!("/containers/{name}/json{size}")],
            Some("image") => vec![format!("/images/{name}/json")],
            Some("network") => vec![format!("/networks/{name}")],
            Some("volume") => vec![format!("/volumes/{name}")],
            Some("plugin") => vec![format!("/plugins/{name}/json")],
            Some(_) => vec![],
            None => vec![
                format!("/containers/{name}/json{size}"),
                format!("/images/{name}/json"),
                format!("/networks/{name}"),
                format!("/volumes/{name}"),
                format!("/plugins/{name}/json"),
            ],
        };
        let mut found = false;
        let mut last_err = None;
        for p in attempts {
            match ctx.client.get_raw(&p) {
                Ok(raw) => {
                    raws.push(raw);
                    found = true;
                    break;
                }
                Err(e) if e.is_not_found() => last_err = Some(e),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
        if !found {
            match (kind.as_deref(), last_err) {
                (None, Some(e)) if e.is_not_found() => errs.push(format!("Error: No such object: {name}")),
                (_, Some(e)) => errs.push(e.to_string()),
                (_, None) => errs.push(format!("Error: No such object: {name}")),
            }
        }
    }
    print_inspected(&raws, o.format.as_deref())?;
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, errs.join("\n")))
    }
}

// ---------------------------------------------------------------------------------
// version / info

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub fn version(ctx: &mut Ctx, o: FormatArgs) -> CmdResult {
    ctx.require("version", o.rest.len(), 0, Some(0))?;
    let server: Result<Value, berth_client::Error> = ctx.client.get_json("/version");
    let negotiated = ctx.client.negotiate().unwrap_or_else(|_| MAX_API_VERSION.to_string());
    let client = json!({
        "Platform": {"Name": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": negotiated,
        "DefaultAPIVersion": MAX_API_VERSION,
        "GitCommit": GIT_COMMIT,
        "RustVersion": berth_buildinfo::RUST_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "BuildTime": reformat_date(berth_buildinfo::BUILD_TIME),
        "Context": "default",
    });
    if let Some(f) = o.format.as_deref().filter(|f| !f.trim().is_empty()) {
        let data = json!({"Client": client, "Server": server.as_ref().ok().cloned().unwrap_or(Value::Null)});
        let f = if f.trim() == "json" { "{{json .}}" } else { f };
        let tpl = Template::parse(f).map_err(|e| Fail::new(1, e))?;
        let s = tpl.execute(&data, false).map_err(|e| Fail::new(1, e))?;
        println!("{s}");
        return match server {
            Ok(_) => Ok(0),
            Err(e) => Err(Fail::new(1, e.to_string())),
        };
    }
    let s = |v: &Value, k: &str| v.get(k).map(go_print).filter(|x| x != "<nil>").unwrap_or_default();
    let mut text = client_block(&client);
    let server = match server {
        Ok(v) => v,
        Err(e) => {
            print!("{}", tabwrite_with(&text, 20, 1));
            let _ = io::stdout().flush();
            return Err(Fail::new(1, e.to_string()));
        }
    };
    let pname = server.get("Platform").and_then(|p| p.get("Name")).and_then(Value::as_str).unwrap_or("");
    text.push_str(&format!("\nServer:{}{pname}\n", if pname.is_empty() { "" } else { " " }));
    let comps = server.get("Components").and_then(Value::as_array).cloned().unwrap_or_default();
    let engine_block = |t: &mut String, d: &Value| {
        t.push_str(&format!(
            "  Version:\t{}\n  API version:\t{} (minimum version {})\n  {}\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Experimental:\t{}\n",
            s(d, "Version"),
            s(d, "ApiVersion"),
            s(d, "MinAPIVersion"),
            toolchain_line(d),
            s(d, "GitCommit"),
            reformat_date(&s(d, "BuildTime")),
            s(d, "Os"),
            s(d, "Arch"),
            d.get("Experimental").map(go_print).unwrap_or_else(|| "false".into()),
        ));
    };
    if comps.is_empty() {
        text.push_str(" Engine:\n");
        engine_block(&mut text, &server);
    }
    for c in &comps {
        let name = s(c, "Name");
        text.push_str(&format!(" {name}:\n"));
        let details = c.get("Details").cloned().unwrap_or(json!({}));
        if name == "Engine" {
            let mut d = details.clone();
            if let Some(m) = d.as_object_mut() {
                m.insert("Version".into(), c.get("Version").cloned().unwrap_or(Value::Null));
            }
            engine_block(&mut text, &d);
        } else {
            text.push_str(&format!("  Version:\t{}\n", s(c, "Version")));
            if let Some(m) = details.as_object() {
                for (k, v) in m {
                    text.push_str(&format!("  {k}:\t{}\n", go_print(v)));
                }
            }
        }
    }
    print!("{}", tabwrite_with(&text, 20, 1));
    Ok(0)
}

pub fn info(ctx: &mut Ctx, o: FormatArgs) -> CmdResult {
    ctx.require("info", o.rest.len(), 0, Some(0))?;
    let server: Result<Value, _> = ctx.client.get_json("/info");
    if let Some(f) = o.format.as_deref().filter(|f| !f.trim().is_empty()) {
        let v = server.map_err(Fail::from)?;
        let data = json!({
            "ClientInfo": {"Debug": false, "Context": "default", "Plugins": [], "Warnings": null},
        });
        let mut merged = v.clone();
        if let (Some(m), Some(extra)) = (merged.as_object_mut(), data.as_object()) {
            for (k, x) in extra {
                m.insert(k.clone(), x.clone());
            }
        }
        let f = if f.trim() == "json" { "{{json .}}" } else { f };
        let tpl = Template::parse(f).map_err(|e| Fail::new(1, e))?;
        println!("{}", tpl.execute(&merged, false).map_err(|e| Fail::new(1, e))?);
        return Ok(0);
    }
    let mut out = String::new();
    out.push_str(&format!("Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n\n", env!("CARGO_PKG_VERSION")));
    let v = match server {
        Ok(v) => v,
        Err(e) => {
            println!("{out}Server:");
            let _ = io::stdout().flush();
            return Err(Fail::new(1, e.to_string()));
        }
    };
    let s = |k: &str| v.get(k).map(go_print).filter(|x| x != "<nil>").unwrap_or_default();
    let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    out.push_str("Server:\n");
    out.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n Images: {}\n Server Version: {}\n Storage Driver: {}\n",
        n("Containers"),
        n("ContainersRunning"),
        n("ContainersPaused"),
        n("ContainersStopped"),
        n("Images"),
        s("ServerVersion"),
        s("Driver")
    ));
    if let Some(ds) = v.get("DriverStatus").and_then(Value::as_array) {
        for kv in ds {
            if let Some(a) = kv.as_array() {
                out.push_str(&format!("  {}: {}\n", a.first().map(go_print).unwrap_or_default(), a.get(1).map(go_print).unwrap_or_default()));
            }
        }
    }
    out.push_str(&format!(" Logging Driver: {}\n Cgroup Driver: {}\n Cgroup Version: {}\n", s("LoggingDriver"), s("CgroupDriver"), s("CgroupVersion")));
    if let Some(p) = v.get("Plugins").and_then(Value::as_object) {
        out.push_str(" Plugins:\n");
        for (k, label) in [("Volume", "Volume"), ("Network", "Network"), ("Log", "Log")] {
            let items: Vec<String> = p.get(k).and_then(Value::as_array).map(|a| a.iter().map(go_print).collect()).unwrap_or_default();
            out.push_str(&format!("  {label}: {}\n", items.join(" ")));
        }
    }
    let swarm = v.get("Swarm").and_then(|s| s.get("LocalNodeState")).and_then(Value::as_str).unwrap_or("inactive");
    out.push_str(&format!(" Swarm: {swarm}\n"));
    if let Some(r) = v.get("Runtimes").and_then(Value::as_object) {
        out.push_str(&format!(" Runtimes: {}\n", r.keys().cloned().collect::<Vec<_>>().join(" ")));
    }
    out.push_str(&format!(" Default Runtime: {}\n", s("DefaultRuntime")));
    if let Some(so) = v.get("SecurityOptions").and_then(Value::as_array) {
        if !so.is_empty() {
            out.push_str(" Security Options:\n");
            for opt in so {
                let opt = go_print(opt);
                let mut parts = opt.split(',');
                let name = parts.next().unwrap_or("").trim_start_matches("name=");
                out.push_str(&format!("  {name}\n"));
                for p in parts {
                    if let Some((k, val)) = p.split_once('=') {
                        let mut k = k.to_string();
                        if let Some(f) = k.get(0..1) {
                            k = f.to_uppercase() + &k[1..];
                        }
                        out.push_str(&format!("   {k}: {val}\n"));
                    }
                }
            }
        }
    }
    let mem = v.get("MemTotal").and_then(Value::as_f64).unwrap_or(0.0);
    out.push_str(&format!(
        " Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n Total Memory: {}\n Name: {}\n ID: {}\n Docker Root Dir: {}\n Debug Mode: {}\n Experimental: {}\n",
        s("KernelVersion"),
        s("OperatingSystem"),
        s("OSType"),
        s("Architecture"),
        n("NCPU"),
        bytes_size(mem),
        s("Name"),
        s("ID"),
        s("DockerRootDir"),
        v.get("Debug").map(go_print).unwrap_or_else(|| "false".into()),
        v.get("ExperimentalBuild").map(go_print).unwrap_or_else(|| "false".into()),
    ));
    if let Some(cidrs) = v.get("RegistryConfig").and_then(|r| r.get("InsecureRegistryCIDRs")).and_then(Value::as_array) {
        if !cidrs.is_empty() {
            out.push_str(" Insecure Registries:\n");
            for c in cidrs {
                out.push_str(&format!("  {}\n", go_print(c)));
            }
        }
    }
    out.push_str(&format!(" Live Restore Enabled: {}\n", v.get("LiveRestoreEnabled").map(go_print).unwrap_or_else(|| "false".into())));
    print!("{out}");
    if let Some(w) = v.get("Warnings").and_then(Value::as_array) {
        let _ = io::stdout().flush();
        for x in w {
            eprintln!("{}", go_print(x));
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------
// events

/// Docker's default event line.
pub fn event_line(e: &EventMessage) -> String {
    let mut s = String::new();
    if e.time_nano != 0 {
        s.push_str(&rfc3339_fixed(e.time_nano));
        s.push(' ');
    } else if e.time != 0 {
        s.push_str(&rfc3339_fixed(e.time * 1_000_000_000));
        s.push(' ');
    }
    s.push_str(&format!("{} {} {}", e.kind, e.action, e.actor.id));
    if !e.actor.attributes.is_empty() {
        let attrs: Vec<String> = e.actor.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

/// `jsonmessage.RFC3339NanoFixed` in the local zone (always 9 fractional digits).
fn rfc3339_fixed(nanos: i64) -> String {
    use chrono::{Offset, TimeZone};
    let (secs, sub) = (nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000) as u32);
    let offset = chrono::Local.timestamp_nanos(nanos).offset().fix().local_minus_utc();
    berth_api::time::rfc3339_nano_fixed(secs, sub, offset)
}

pub fn events(ctx: &mut Ctx, o: EventsArgs) -> CmdResult {
    ctx.require("events", o.rest.len(), 0, Some(0))?;
    let now = crate::format::now_secs_f64() as i64;
    let mut params = Vec::new();
    if let Some(f) = filters_json(&o.filter)? {
        params.push(("filters", f));
    }
    if let Some(s) = &o.since {
        params.push(("since", api_timestamp(s, now)));
    }
    if let Some(u) = &o.until {
        params.push(("until", api_timestamp(u, now)));
    }
    let tpl = match o.format.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}").map_err(|e| Fail::new(1, e))?),
        Some(f) => Some(Template::parse(f).map_err(|e| Fail::new(1, e))?),
    };
    let resp = ctx.client.send("GET", &query("/events", &params), &[], Body::None)?;
    let mut out = io::stdout();
    for v in serde_json::Deserializer::from_reader(resp).into_iter::<Value>() {
        // The daemon went away mid-stream: Docker's CLI says so and exits 1.
        let v = match v {
            Ok(v) => v,
            Err(e) if e.is_io() || e.is_eof() => return Err(Fail::new(1, berth_client::UNEXPECTED_EOF)),
            Err(_) => break,
        };
        let line = match &tpl {
            Some(t) => t.execute(&v, false).map_err(|e| Fail::new(1, e))?,
            None => match serde_json::from_value::<EventMessage>(v) {
                Ok(e) => event_line(&e),
                Err(_) => continue,
            },
        };
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------
// stats (basic, --no-stream)

const STATS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return 0.0,
        }
    }
    cur.as_f64().unwrap_or(0.0)
}

/// One stats row, computed like the docker CLI does from a `stream=0` sample.
pub fn stats_row(container: &str, s: &Value, trunc: bool) -> Value {
    let cpu_delta = f(s, &["cpu_stats", "cpu_usage", "total_usage"]) - f(s, &["precpu_stats", "cpu_usage", "total_usage"]);
    let sys_delta = f(s, &["cpu_stats", "system_cpu_usage"]) - f(s, &["precpu_stats", "system_cpu_usage"]);
    let mut cpus = f(s, &["cpu_stats", "online_cpus"]);
    if cpus == 0.0 {
        cpus = s.pointer("/cpu_stats/cpu_usage/percpu_usage").and_then(Value::as_array).map(|a| a.len() as f64).unwrap_or(0.0);
    }
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 { cpu_delta / sys_delta * cpus * 100.0 } else { 0.0 };
    let stats_map = s.pointer("/memory_stats/stats");
    let inactive = stats_map
        .and_then(|m| m.get("total_inactive_file").or_else(|| m.get("inactive_file")))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let usage = f(s, &["memory_stats", "usage"]);
    let mem = if inactive < usage { usage - inactive } else { usage };
    let limit = f(s, &["memory_stats", "limit"]);
    let mem_perc = if limit > 0.0 { mem / limit * 100.0 } else { 0.0 };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(n) = s.get("networks").and_then(Value::as_object) {
        for v in n.values() {
            rx += f(v, &["rx_bytes"]);
            tx += f(v, &["tx_bytes"]);
        }
    }
    let (mut br, mut bw) = (0.0, 0.0);
    if let Some(a) = s.pointer("/blkio_stats/io_service_bytes_recursive").and_then(Value::as_array) {
        for e in a {
            match e.get("op").and_then(Value::as_str).map(str::to_lowercase).as_deref() {
                Some("read") => br += f(e, &["value"]),
                Some("write") => bw += f(e, &["value"]),
                _ => {}
            }
        }
    }
    let id = s.get("id").and_then(Value::as_str).unwrap_or("");
    let name = s.get("name").and_then(Value::as_str).map(|n| n.trim_start_matches('/').to_string()).filter(|n| !n.is_empty()).unwrap_or_else(|| "--".into());
    json!({
        "__type": "formatter.containerStatsContext",
        "Container": container,
        "ID": if trunc { truncate_id(id) } else { id.to_string() },
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(mem), bytes_size(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human_size_prec(rx, 3), human_size_prec(tx, 3)),
        "BlockIO": format!("{} / {}", human_size_prec(br, 3), human_size_prec(bw, 3)),
        "PIDs": s.pointer("/pids_stats/current").and_then(Value::as_u64).unwrap_or(0).to_string(),
    })
}

/// One container followed by `stats`: the name or short ID it is known by, and the
/// latest computed row (or the error that ended its stream).
struct StatsEntry {
    container: String,
    row: Option<Value>,
    err: Option<String>,
}

type StatsTable = Arc<Mutex<Vec<StatsEntry>>>;

/// The row docker shows for a container without valid data.
fn invalid_stats_row(container: &str) -> Value {
    json!({
        "__type": "formatter.containerStatsContext",
        "Container": container, "ID": container, "Name": "--", "CPUPerc": "--", "MemUsage": "-- / --",
        "MemPerc": "--", "NetIO": "--", "BlockIO": "--", "PIDs": "--",
    })
}

/// Adds a container and starts its collector thread; false if already followed.
fn stats_add(table: &StatsTable, client: &berth_client::Client, container: &str, stream: bool, trunc: bool, first: &mpsc::Sender<()>) -> bool {
    {
        let Ok(mut t) = table.lock() else { return false };
        if t.iter().any(|e| e.container == container) {
            return false;
        }
        t.push(StatsEntry { container: container.to_string(), row: None, err: None });
    }
    let mut client = client.fork();
    let table = table.clone();
    let first = first.clone();
    let name = container.to_string();
    thread::spawn(move || {
        let update = |row: Option<Value>, err: Option<String>| -> bool {
            let Ok(mut t) = table.lock() else { return false };
            match t.iter_mut().find(|e| e.container == name) {
                Some(e) => {
                    if row.is_some() {
                        e.row = row;
                    }
                    e.err = err;
                    true
                }
                None => false,
            }
        };
        let mut sent_first = false;
        let path = format!("/containers/{name}/stats?stream={}", if stream { 1 } else { 0 });
        match client.send("GET", &path, &[], Body::None) {
            Ok(resp) => {
                for v in serde_json::Deserializer::from_reader(resp).into_iter::<Value>() {
                    let Ok(v) = v else { break };
                    if !update(Some(stats_row(&name, &v, trunc)), None) {
                        break;
                    }
                    if !sent_first {
                        sent_first = true;
                        let _ = first.send(());
                    }
                    if !stream {
                        break;
                    }
                }
            }
            Err(e) => {
                update(None, Some(e.to_string()));
            }
        }
        if !sent_first {
            let _ = first.send(());
        }
    });
    true
}

fn stats_remove(table: &StatsTable, container: &str) {
    if let Ok(mut t) = table.lock() {
        t.retain(|e| e.container != container);
    }
}

/// Renders the current rows with `format`.
fn stats_render(table: &StatsTable, format: &str) -> Result<String, Fail> {
    let rows: Vec<Value> = match table.lock() {
        Ok(t) => t.iter().map(|e| e.row.clone().filter(|_| e.err.is_none()).unwrap_or_else(|| invalid_stats_row(&e.container))).collect(),
        Err(_) => Vec::new(),
    };
    render_rows(format, &rows, STATS_HEADERS)
}

/// One streaming frame exactly as docker 28 writes it: the table after `ESC[H`, then
/// again with every line (and the empty tail) ending in ` ESC[K`, then `ESC[J`.
pub fn stats_frame(text: &str) -> String {
    let mut out = format!("\x1b[H{text}\x1b[H");
    for line in text.split('\n') {
        out.push_str(line);
        out.push_str(" \x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

pub fn stats(ctx: &mut Ctx, o: StatsArgs) -> CmdResult {
    let stream = !o.no_stream;
    let trunc = !o.no_trunc;
    let show_all = o.containers.is_empty();
    let table: StatsTable = Arc::new(Mutex::new(Vec::new()));
    let (first_tx, first_rx) = mpsc::channel::<()>();
    let mut expected = 0usize;
    if show_all {
        // Docker subscribes to container events before listing (trace §4.15), so
        // containers started meanwhile are not missed.
        let events = ctx.client.fork().send("GET", &query("/events", &[("filters", r#"{"type":{"container":true}}"#.to_string())]), &[], Body::None)?;
        let q = if o.all { "/containers/json?all=1" } else { "/containers/json" };
        let list: Vec<ContainerSummary> = crate::container::decode_list(ctx.client.get_json(q)?)?;
        for c in &list {
            if stats_add(&table, &ctx.client, &truncate_id(&c.id), stream, trunc, &first_tx) {
                expected += 1;
            }
        }
        let (client, table, first_tx, all) = (ctx.client.fork(), table.clone(), first_tx.clone(), o.all);
        thread::spawn(move || {
            for ev in serde_json::Deserializer::from_reader(events).into_iter::<EventMessage>() {
                let Ok(ev) = ev else { break };
                let id = truncate_id(&ev.actor.id);
                match ev.action.as_str() {
                    "create" if all => {
                        stats_add(&table, &client, &id, stream, trunc, &first_tx);
                    }
                    "start" => {
                        stats_add(&table, &client, &id, stream, trunc, &first_tx);
                    }
                    "die" if !all => stats_remove(&table, &id),
                    "destroy" => stats_remove(&table, &id),
                    _ => {}
                }
            }
        });
    } else {
        for n in &o.containers {
            if stats_add(&table, &ctx.client, n, stream, trunc, &first_tx) {
                expected += 1;
            }
        }
    }
    // Every container gets at least one sample (or an error) before the first frame.
    for _ in 0..expected {
        if first_rx.recv().is_err() {
            break;
        }
    }
    if !show_all {
        let errs: Vec<String> = table.lock().map(|t| t.iter().filter_map(|e| e.err.clone()).collect()).unwrap_or_default();
        if !errs.is_empty() {
            return Err(Fail::new(1, errs.join("\n")));
        }
    }
    let format = match o.format.as_deref() {
        None | Some("") | Some("table") => "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".to_string(),
        Some(f) => f.to_string(),
    };
    let mut out = io::stdout();
    loop {
        thread::sleep(Duration::from_millis(500));
        let text = stats_render(&table, &format)?;
        if !stream {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            return Ok(0);
        }
        if out.write_all(stats_frame(&text).as_bytes()).and_then(|_| out.flush()).is_err() {
            return Ok(0);
        }
        let empty = table.lock().map(|t| t.is_empty()).unwrap_or(true);
        if empty && !show_all {
            return Ok(0);
        }
    }
}

// ---------------------------------------------------------------------------------
// prune

pub(crate) fn confirm(warning: &str) -> bool {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = io::stdout().flush();
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

fn prune_containers(ctx: &mut Ctx, filters: &[String]) -> Result<(u64, String), Fail> {
    let mut params = Vec::new();
    if let Some(f) = filters_json(filters)? {
        params.push(("filters", f));
    }
    let (_, data) = ctx.client.call("POST", &query("/containers/prune", &params), &[], Body::Empty)?;
    let r: ContainersPruneResponse = berth_client::decode(&data)?;
    let mut out = String::new();
    if let Some(ids) = r.containers_deleted.filter(|v| !v.is_empty()) {
        out.push_str("Deleted Containers:\n");
        for id in ids {
            out.push_str(&id);
            out.push('\n');
        }
    }
    Ok((r.space_reclaimed, out))
}

fn prune_images(ctx: &mut Ctx, all: bool, filters: &[String]) -> Result<(u64, String), Fail> {
    let mut f = filters.to_vec();
    f.push(format!("dangling={}", !all));
    let params = vec![("filters", filters_json(&f)?.unwrap_or_default())];
    let (_, data) = ctx.client.call("POST", &query("/images/prune", &params), &[], Body::Empty)?;
    let r: ImagesPruneResponse = berth_client::decode(&data)?;
    let mut out = String::new();
    if let Some(items) = r.images_deleted.filter(|v| !v.is_empty()) {
        out.push_str("Deleted Images:\n");
        for it in items {
            if let Some(u) = it.untagged {
                out.push_str(&format!("untagged: {u}\n"));
            }
            if let Some(d) = it.deleted {
                out.push_str(&format!("deleted: {d}\n"));
            }
        }
    }
    Ok((r.space_reclaimed, out))
}

pub(crate) fn prune_networks(ctx: &mut Ctx, filters: &[String]) -> Result<(u64, String), Fail> {
    let mut params = Vec::new();
    if let Some(f) = filters_json(filters)? {
        params.push(("filters", f));
    }
    let (_, data) = ctx.client.call("POST", &query("/networks/prune", &params), &[], Body::Empty)?;
    let v: Value = berth_client::decode(&data)?;
    let mut out = String::new();
    if let Some(n) = v.get("NetworksDeleted").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        out.push_str("Deleted Networks:\n");
        for x in n {
            out.push_str(&go_print(x));
            out.push('\n');
        }
    }
    Ok((0, out))
}

fn prune_build(ctx: &mut Ctx, all: bool, filters: &[String]) -> Result<(u64, String), Fail> {
    let mut params = vec![("filters", filters_json(filters)?.unwrap_or_default())];
    if all {
        params.push(("all", "1".into()));
    }
    let (_, data) = ctx.client.call("POST", &query("/build/prune", &params), &[], Body::Empty)?;
    let v: Value = berth_client::decode(&data)?;
    let mut out = String::new();
    if let Some(n) = v.get("CachesDeleted").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        out.push_str("Deleted build cache objects:\n");
        for x in n {
            out.push_str(&go_print(x));
            out.push('\n');
        }
    }
    Ok((v.get("SpaceReclaimed").and_then(Value::as_u64).unwrap_or(0), out))
}

/// The filter list `system prune` adds to its warning (sorted like docker).
pub fn filter_notice(filters: &[String]) -> String {
    if filters.is_empty() {
        return String::new();
    }
    let mut f = filters.to_vec();
    f.sort();
    let mut s = String::from("\n  Items to be pruned will be filtered with:\n");
    for x in f {
        s.push_str(&format!("  - {x}\n"));
    }
    s
}

fn prune_volumes(ctx: &mut Ctx, filters: &[String]) -> Result<(u64, String), Fail> {
    let mut params = Vec::new();
    if let Some(f) = filters_json(filters)? {
        params.push(("filters", f));
    }
    let (_, data) = ctx.client.call("POST", &query("/volumes/prune", &params), &[], Body::Empty)?;
    let v: Value = berth_client::decode(&data)?;
    let mut out = String::new();
    if let Some(n) = v.get("VolumesDeleted").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        out.push_str("Deleted Volumes:\n");
        for x in n {
            out.push_str(&go_print(x));
            out.push('\n');
        }
    }
    Ok((v.get("SpaceReclaimed").and_then(Value::as_u64).unwrap_or(0), out))
}

fn print_report(sections: &[String], total: u64) {
    for s in sections {
        if !s.is_empty() {
            println!("{s}");
        }
    }
    println!("Total reclaimed space: {}", human_size_prec(total as f64, 4));
}

pub fn container_prune(ctx: &mut Ctx, o: PruneArgs) -> CmdResult {
    ctx.require("container prune", o.rest.len(), 0, Some(0))?;
    if !o.force && !confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    let (space, out) = prune_containers(ctx, &o.filter)?;
    print_report(&[out], space);
    Ok(0)
}

pub fn image_prune(ctx: &mut Ctx, o: PruneArgs) -> CmdResult {
    ctx.require("image prune", o.rest.len(), 0, Some(0))?;
    let warning = if o.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !o.force && !confirm(warning) {
        return Ok(0);
    }
    let (space, out) = prune_images(ctx, o.all, &o.filter)?;
    print_report(&[out], space);
    Ok(0)
}

/// `builder prune`: the build cache (Docker's warning, its report).
pub fn builder_prune(ctx: &mut Ctx, o: PruneArgs) -> CmdResult {
    ctx.require("builder prune", o.rest.len(), 0, Some(0))?;
    let warning = if o.all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    if !o.force && !confirm(warning) {
        return Ok(0);
    }
    let (space, out) = prune_build(ctx, o.all, &o.filter)?;
    print_report(&[out], space);
    Ok(0)
}

pub fn system_prune(ctx: &mut Ctx, o: PruneArgs) -> CmdResult {
    ctx.require("system prune", o.rest.len(), 0, Some(0))?;
    if !o.force {
        let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
        if o.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        if o.all {
            w.push_str("  - all images without at least one container associated to them\n  - all build cache\n");
        } else {
            w.push_str("  - all dangling images\n  - unused build cache\n");
        }
        w.push_str(&filter_notice(&o.filter));
        if !confirm(&w) {
            return Ok(0);
        }
    }
    let mut total = 0;
    let mut sections = Vec::new();
    let (s, out) = prune_containers(ctx, &o.filter)?;
    total += s;
    sections.push(out);
    let (s, out) = prune_networks(ctx, &o.filter)?;
    total += s;
    sections.push(out);
    if o.volumes {
        let (s, out) = prune_volumes(ctx, &o.filter)?;
        total += s;
        sections.push(out);
    }
    let (s, out) = prune_images(ctx, o.all, &o.filter)?;
    total += s;
    sections.push(out);
    let (s, out) = prune_build(ctx, o.all, &o.filter)?;
    total += s;
    sections.push(out);
    print_report(&sections, total);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_build_fields() {
        let cases: &[(&str, &str)] = &[
            ("2025-05-30T12:07:14.000000000+00:00", "Fri May 30 12:07:14 2025"),
            ("2026-12-01T04:05:06Z", "Tue Dec  1 04:05:06 2026"),
            ("", ""),
            ("yesterday", "yesterday"),
        ];
        for (raw, want) in cases {
            assert_eq!(reformat_date(raw), *want, "{raw}");
        }
        assert_eq!(toolchain_line(&json!({"GoVersion": "go1.24.3"})), "Go version:\tgo1.24.3");
        assert_eq!(toolchain_line(&json!({"GoVersion": "", "RustVersion": "1.89.0"})), "Rust version:\t1.89.0");
        let block = client_block(&json!({
            "Version": "0.1.0", "ApiVersion": MAX_API_VERSION, "GitCommit": GIT_COMMIT,
            "RustVersion": berth_buildinfo::RUST_VERSION, "BuildTime": reformat_date(berth_buildinfo::BUILD_TIME),
            "Os": "linux", "Arch": "amd64", "Context": "default",
        }));
        let get = |label: &str| block.lines().find_map(|l| l.trim_start().strip_prefix(label)).map(str::trim).unwrap_or_default().to_string();
        assert!(!get("Git commit:").is_empty(), "{block}");
        assert!(!get("Rust version:").is_empty(), "{block}");
        assert!(!get("Built:").is_empty() && !get("Built:").contains("+00:00"), "{block}");
        assert!(!block.contains("Go version"), "{block}");
    }

    #[test]
    fn event_lines() {
        let e: EventMessage = serde_json::from_value(json!({
            "status": "die", "id": "48decb73", "from": "busybox", "Type": "container", "Action": "die",
            "Actor": {"ID": "48decb73", "Attributes": {"name": "evtc", "exitCode": "0", "image": "busybox"}},
            "scope": "local", "time": 1795433566, "timeNano": 1795433566021718928i64
        }))
        .expect("event");
        let line = event_line(&e);
        assert!(line.ends_with(" container die 48decb73 (exitCode=0, image=busybox, name=evtc)"), "{line}");
        if std::env::var("TZ").map(|t| t == "UTC").unwrap_or(false) {
            assert!(line.starts_with("2026-11-23T11:32:46.021718928Z "), "{line}");
        }
    }

    #[test]
    fn stats_row_from_the_trace() {
        let s = json!({"id": "0123456789abcdef", "name": "/c1",
            "cpu_stats": {"cpu_usage": {"total_usage": 2000000}, "system_cpu_usage": 20000000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1000000}, "system_cpu_usage": 10000000},
            "memory_stats": {"usage": 1048576, "limit": 1073741824}, "pids_stats": {"current": 3}});
        let row = stats_row("c1", &s, true);
        let out = render_rows("{{.ID}} {{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.NetIO}} {{.BlockIO}} {{.PIDs}}", &[row], STATS_HEADERS).expect("render");
        assert_eq!(out, "0123456789ab c1 20.00% 1MiB / 1GiB 0.10% 0B / 0B 0B / 0B 3\n");
    }

    #[test]
    fn prune_filter_notice() {
        assert_eq!(filter_notice(&[]), "");
        let got = filter_notice(&["until=1h".into(), "label=b=2".into(), "label=a".into(), "label!=c".into()]);
        assert_eq!(got, "\n  Items to be pruned will be filtered with:\n  - label!=c\n  - label=a\n  - label=b=2\n  - until=1h\n");
    }

    #[test]
    fn stats_frames_like_docker_28() {
        let t = "A   B\n1   2\n";
        assert_eq!(stats_frame(t), "\x1b[HA   B\n1   2\n\x1b[HA   B \x1b[K\n1   2 \x1b[K\n \x1b[K\n\x1b[J");
        let row = invalid_stats_row("abc");
        let out = render_rows("{{.Container}} {{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", &[row], STATS_HEADERS).expect("render");
        assert_eq!(out, "abc -- -- -- / -- --\n");
    }

    #[test]
    fn io_errors_like_go() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(io_text(&e), "no such file or directory");
    }
}
