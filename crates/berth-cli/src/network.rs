//! `berth network create|ls|inspect|connect|disconnect|rm|prune`: Docker's flags,
//! request bodies, tables, `--format` fields and texts. Network objects are read as
//! JSON values (the CLI prints what the daemon sends, unknown keys included).

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::cli::JSON_FORMAT_HELP;
use crate::container::{filters_json, query, render_rows};
use crate::format::{go_time_string, truncate_id};
use crate::{CmdResult, Ctx, Fail};

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(NetInspectArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(NetPruneArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(NetRmArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address")]
    pub aux_address: Vec<String>,
    /// The network from which to copy the configuration
    #[arg(long = "config-from")]
    pub config_from: Option<String>,
    /// Create a configuration only network
    #[arg(long = "config-only")]
    pub config_only: bool,
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Create swarm routing-mesh network
    #[arg(long)]
    pub ingress: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    pub ipam_opt: Vec<String>,
    /// Enable or disable IPv6 networking
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ipv6: Option<bool>,
    /// Enable or disable IPv4 address assignment
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ipv4: Option<bool>,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Control the network's scope
    #[arg(long)]
    pub scope: Option<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub rest: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NetInspectArgs {
    #[arg(short = 'f', long, help = JSON_FORMAT_HELP)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    pub verbose: bool,
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt")]
    pub driver_opt: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long)]
    pub link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NetPruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    pub rest: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NetRmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    pub names: Vec<String>,
}

pub fn dispatch(ctx: &mut Ctx, cmd: NetworkCmd) -> CmdResult {
    match cmd {
        NetworkCmd::Create(a) => create(ctx, a),
        NetworkCmd::Ls(a) => ls(ctx, a),
        NetworkCmd::Inspect(a) => inspect(ctx, a),
        NetworkCmd::Connect(a) => connect(ctx, a),
        NetworkCmd::Disconnect(a) => disconnect(ctx, a),
        NetworkCmd::Rm(a) => rm(ctx, a),
        NetworkCmd::Prune(a) => prune(ctx, a),
    }
}

/// `k=v` flags as a JSON object (`--opt`, `--label`, `--aux-address`); a bare `k` is
/// `k=""` as Docker's map options have it.
fn kv_map(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
            (k.to_string(), Value::String(v.to_string()))
        })
        .collect()
}

/// An IP or CIDR: its address bits and the prefix length.
fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: std::net::IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (p <= max).then_some((a, p))
}

fn contains(subnet: &str, addr: &str) -> bool {
    let Some((net, len)) = parse_cidr(subnet) else { return false };
    let a = match parse_cidr(addr) {
        Some((a, l)) if l >= len => a,
        Some(_) => return false,
        None => match addr.parse() {
            Ok(a) => a,
            Err(_) => return false,
        },
    };
    let bits = |ip: std::net::IpAddr| -> Option<u128> {
        match ip {
            std::net::IpAddr::V4(v) => Some(u32::from(v) as u128),
            std::net::IpAddr::V6(v) => Some(u128::from(v)),
        }
    };
    if net.is_ipv4() != a.is_ipv4() {
        return false;
    }
    let width = if net.is_ipv4() { 32 } else { 128 };
    let (Some(n), Some(x)) = (bits(net), bits(a)) else { return false };
    let shift = width - len as u32;
    if shift >= 128 {
        return true;
    }
    (n >> shift) == (x >> shift)
}

/// Docker CLI's `consolidateIpam`: one pool per subnet, with the range, gateway and
/// auxiliary addresses that fall inside it.
pub fn ipam_config(subnets: &[String], ranges: &[String], gateways: &[String], aux: &[String]) -> Result<Vec<Value>, String> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut pools: Vec<Map<String, Value>> = Vec::new();
    for (i, s) in subnets.iter().enumerate() {
        for other in &subnets[..i] {
            if contains(other, s) || contains(s, other) {
                return Err("multiple overlapping subnet configuration is not supported".to_string());
            }
        }
        let mut m = Map::new();
        m.insert("Subnet".into(), json!(s));
        pools.push(m);
    }
    for r in ranges {
        let mut matched = false;
        for (p, s) in pools.iter_mut().zip(subnets) {
            if !contains(s, r) {
                continue;
            }
            if let Some(prev) = p.get("IPRange").and_then(Value::as_str) {
                return Err(format!("cannot configure multiple ranges ({r}, {prev}) on the same subnet ({s})"));
            }
            p.insert("IPRange".into(), json!(r));
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in gateways {
        let mut matched = false;
        for (p, s) in pools.iter_mut().zip(subnets) {
            if !contains(s, g) {
                continue;
            }
            if let Some(prev) = p.get("Gateway").and_then(Value::as_str) {
                return Err(format!("cannot configure multiple gateways ({g}, {prev}) for the same subnet ({s})"));
            }
            p.insert("Gateway".into(), json!(g));
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (k, v) in kv_map(aux) {
        let addr = v.as_str().unwrap_or_default();
        let mut matched = false;
        for (p, s) in pools.iter_mut().zip(subnets) {
            if contains(s, addr) {
                let e = p.entry("AuxiliaryAddresses").or_insert_with(|| json!({}));
                e[&k] = json!(addr);
                matched = true;
            }
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {addr}"));
        }
    }
    Ok(pools.into_iter().map(Value::Object).collect())
}

/// The body the docker CLI sends for `network create`.
pub fn create_body(o: &CreateArgs, name: &str) -> Result<Value, String> {
    let config = ipam_config(&o.subnet, &o.ip_range, &o.gateway, &o.aux_address)?;
    let mut body = json!({
        "Name": name,
        "CheckDuplicate": true,
        "Driver": o.driver,
        "Scope": o.scope.clone().unwrap_or_default(),
        "IPAM": {"Driver": o.ipam_driver, "Options": kv_map(&o.ipam_opt), "Config": config},
        "Internal": o.internal,
        "Attachable": o.attachable,
        "Ingress": o.ingress,
        "ConfigOnly": o.config_only,
        "ConfigFrom": o.config_from.as_ref().map(|n| json!({"Network": n})),
        "Options": kv_map(&o.opt),
        "Labels": kv_map(&o.label),
    });
    if let Some(v6) = o.ipv6 {
        body["EnableIPv6"] = json!(v6);
    }
    if let Some(v4) = o.ipv4 {
        body["EnableIPv4"] = json!(v4);
    }
    Ok(body)
}

fn create(ctx: &mut Ctx, o: CreateArgs) -> CmdResult {
    ctx.require("network create", o.names.len(), 1, Some(1))?;
    let body = create_body(&o, &o.names[0]).map_err(|e| Fail::new(1, e))?;
    let r: Value = ctx.client.post_json("/networks/create", &body)?;
    if let Some(w) = r.get("Warning").and_then(Value::as_str).filter(|w| !w.is_empty()) {
        eprintln!("{w}");
    }
    println!("{}", r.get("Id").and_then(Value::as_str).unwrap_or_default());
    Ok(0)
}

const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("IPv4", "IPV4"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// One `network ls` row: the fields of Docker's `networkContext`.
pub fn network_row(n: &Value, trunc: bool) -> Value {
    let s = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let b = |k: &str| n.get(k).and_then(Value::as_bool).unwrap_or(false).to_string();
    let id = s("Id");
    let labels = n.get("Labels").and_then(Value::as_object).cloned().unwrap_or_default();
    let label_text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    let created = berth_api::time::parse_rfc3339(&s("Created")).map(|(secs, _)| go_time_string(secs)).unwrap_or_default();
    json!({
        "__type": "*formatter.networkContext",
        "ID": if trunc { truncate_id(&id) } else { id },
        "Name": s("Name"),
        "Driver": s("Driver"),
        "Scope": s("Scope"),
        "IPv6": b("EnableIPv6"),
        "IPv4": n.get("EnableIPv4").and_then(Value::as_bool).unwrap_or(true).to_string(),
        "Internal": b("Internal"),
        "Labels": label_text.join(","),
        "__labels": labels,
        "CreatedAt": created,
    })
}

fn ls(ctx: &mut Ctx, o: LsArgs) -> CmdResult {
    ctx.require("network ls", o.rest.len(), 0, Some(0))?;
    let mut params = Vec::new();
    if let Some(f) = filters_json(&o.filter)? {
        params.push(("filters", f));
    }
    let mut list: Vec<Value> = ctx.client.get_json::<Option<Vec<Value>>>(&query("/networks", &params))?.unwrap_or_default();
    // The docker CLI sorts by name.
    list.sort_by(|a, b| a["Name"].as_str().unwrap_or_default().cmp(b["Name"].as_str().unwrap_or_default()));
    let rows: Vec<Value> = list.iter().map(|n| network_row(n, !o.no_trunc)).collect();
    let format = o.format.clone().unwrap_or_default();
    let format = if o.quiet {
        "{{.ID}}".to_string()
    } else if format.is_empty() || format == "table" {
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_string()
    } else {
        format
    };
    print!("{}", render_rows(&format, &rows, NETWORK_HEADERS)?);
    Ok(0)
}

fn inspect(ctx: &mut Ctx, o: NetInspectArgs) -> CmdResult {
    ctx.require("network inspect", o.names.len(), 1, None)?;
    let mut raws = Vec::new();
    let mut errs = Vec::new();
    for name in &o.names {
        let path = if o.verbose { format!("/networks/{name}?verbose=true") } else { format!("/networks/{name}") };
        match ctx.client.get_raw(&path) {
            Ok(raw) => raws.push(raw),
            Err(e) => errs.push(e.to_string()),
        }
    }
    crate::system::print_inspected(&raws, o.format.as_deref())?;
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, errs.join("\n")))
    }
}

/// The `EndpointConfig` of `network connect` (and of `run --network` with flags).
pub fn endpoint_config(aliases: &[String], ip: Option<&str>, ip6: Option<&str>, links: &[String], link_local: &[String], driver_opts: &[String]) -> Value {
    let mut ep = json!({});
    if ip.is_some() || ip6.is_some() || !link_local.is_empty() {
        let mut ipam = json!({});
        if let Some(a) = ip {
            ipam["IPv4Address"] = json!(a);
        }
        if let Some(a) = ip6 {
            ipam["IPv6Address"] = json!(a);
        }
        if !link_local.is_empty() {
            ipam["LinkLocalIPs"] = json!(link_local);
        }
        ep["IPAMConfig"] = ipam;
    }
    if !links.is_empty() {
        ep["Links"] = json!(links);
    }
    if !aliases.is_empty() {
        ep["Aliases"] = json!(aliases);
    }
    if !driver_opts.is_empty() {
        ep["DriverOpts"] = Value::Object(kv_map(driver_opts));
    }
    ep
}

fn connect(ctx: &mut Ctx, o: ConnectArgs) -> CmdResult {
    ctx.require("network connect", o.names.len(), 2, Some(2))?;
    let ep = endpoint_config(&o.alias, o.ip.as_deref(), o.ip6.as_deref(), &o.link, &o.link_local_ip, &o.driver_opt);
    let body = json!({"Container": o.names[1], "EndpointConfig": ep});
    ctx.client.call("POST", &format!("/networks/{}/connect", o.names[0]), &[], berth_client::Body::json(&body))?;
    Ok(0)
}

fn disconnect(ctx: &mut Ctx, o: DisconnectArgs) -> CmdResult {
    ctx.require("network disconnect", o.names.len(), 2, Some(2))?;
    let body = json!({"Container": o.names[1], "Force": o.force});
    ctx.client.call("POST", &format!("/networks/{}/disconnect", o.names[0]), &[], berth_client::Body::json(&body))?;
    Ok(0)
}

fn rm(ctx: &mut Ctx, o: NetRmArgs) -> CmdResult {
    ctx.require("network rm", o.names.len(), 1, None)?;
    let mut failed = false;
    for name in &o.names {
        // The docker CLI inspects first (the trace shows it); the answer decides nothing.
        let _ = ctx.client.get_raw(&format!("/networks/{name}"));
        match ctx.client.delete(&format!("/networks/{name}")) {
            Ok(_) => println!("{name}"),
            Err(e) if o.force && e.is_not_found() => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn prune(ctx: &mut Ctx, o: NetPruneArgs) -> CmdResult {
    ctx.require("network prune", o.rest.len(), 0, Some(0))?;
    if !o.force && !crate::system::confirm("WARNING! This will remove all custom networks not used by at least one container.") {
        return Ok(0);
    }
    let (_, out) = crate::system::prune_networks(ctx, &o.filter)?;
    // Docker prints the report with Println: a blank line after the list.
    if !out.is_empty() {
        println!("{out}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ipam_config_table() {
        let cases: Vec<(Vec<String>, Vec<String>, Vec<String>, Result<Value, &str>)> = vec![
            (v(&[]), v(&[]), v(&[]), Ok(json!([]))),
            (v(&["10.5.0.0/16"]), v(&["10.5.1.0/24"]), v(&["10.5.0.254"]), Ok(json!([{"Subnet": "10.5.0.0/16", "IPRange": "10.5.1.0/24", "Gateway": "10.5.0.254"}]))),
            (v(&["10.5.0.0/16", "2001:db8::/64"]), v(&[]), v(&["2001:db8::1"]), Ok(json!([{"Subnet": "10.5.0.0/16"}, {"Subnet": "2001:db8::/64", "Gateway": "2001:db8::1"}]))),
            (v(&[]), v(&[]), v(&["10.0.0.1"]), Err("every ip-range or gateway must have a corresponding subnet")),
            (v(&["10.5.0.0/16"]), v(&[]), v(&["10.6.0.1"]), Err("no matching subnet for gateway 10.6.0.1")),
            (v(&["10.5.0.0/16"]), v(&["10.7.0.0/24"]), v(&[]), Err("no matching subnet for range 10.7.0.0/24")),
            (v(&["10.5.0.0/16", "10.6.0.0/16"]), v(&[]), v(&["10.5.0.1", "10.5.0.2"]), Err("cannot configure multiple gateways (10.5.0.2, 10.5.0.1) for the same subnet (10.5.0.0/16)")),
        ];
        for (s, r, g, want) in cases {
            let got = ipam_config(&s, &r, &g, &[]).map(Value::Array);
            assert_eq!(got.as_ref().map_err(String::as_str), want.as_ref().map_err(|e| *e), "{s:?} {r:?} {g:?}");
        }
    }

    #[test]
    fn rows_and_table() {
        let n = json!({"Name": "app", "Id": "8ae1a22a9c3f0b6d1e2f", "Driver": "bridge", "Scope": "local", "EnableIPv6": false,
                       "Internal": true, "Labels": {"a": "1"}, "Created": "2026-11-23T11:32:38.123456789Z"});
        let row = network_row(&n, true);
        assert_eq!(row["ID"], json!("8ae1a22a9c3f"));
        assert_eq!(row["Internal"], json!("true"));
        assert_eq!(row["Labels"], json!("a=1"));
        let t = render_rows("table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", &[row], NETWORK_HEADERS).expect("table");
        assert_eq!(t, "NETWORK ID     NAME      DRIVER    SCOPE\n8ae1a22a9c3f   app       bridge    local\n");
    }

    #[test]
    fn endpoint_config_shapes() {
        assert_eq!(endpoint_config(&[], None, None, &[], &[], &[]), json!({}));
        assert_eq!(
            endpoint_config(&v(&["db"]), Some("10.5.0.9"), None, &v(&["x:y"]), &[], &[]),
            json!({"IPAMConfig": {"IPv4Address": "10.5.0.9"}, "Links": ["x:y"], "Aliases": ["db"]})
        );
    }
}
