//! `top` and `port`: what runs in a container and what it publishes.

use berth_api::TopResponse;

use super::*;
use crate::cli::{Names, TopArgs};
use crate::format::tabwrite_with;
use crate::{CmdResult, Ctx, Fail};

pub fn top(ctx: &mut Ctx, o: TopArgs) -> CmdResult {
    ctx.require("top", o.args.len(), 1, None)?;
    let mut params = Vec::new();
    if o.args.len() > 1 {
        params.push(("ps_args", o.args[1..].join(" ")));
    }
    let t: TopResponse = ctx.client.get_json(&query(&format!("/containers/{}/top", o.args[0]), &params))?;
    let mut text = t.titles.join("\t") + "\n";
    for p in &t.processes {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    print!("{}", tabwrite_with(&text, 20, 3));
    Ok(0)
}

fn port_sort_key(k: &str) -> (u32, String) {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    (p.parse().unwrap_or(0), proto.to_string())
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

pub fn port(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("port", o.names.len(), 1, Some(2))?;
    let c = inspect_container(&mut ctx.client, &o.names[0])?;
    let mut keys: Vec<&String> = c.network_settings.ports.keys().collect();
    keys.sort_by_key(|k| port_sort_key(k));
    if let Some(want) = o.names.get(1) {
        let want_key = if want.contains('/') { want.clone() } else { format!("{want}/tcp") };
        if let Some(Some(binds)) = c.network_settings.ports.get(&want_key) {
            if !binds.is_empty() {
                for b in binds {
                    println!("{}", join_host_port(&b.host_ip, &b.host_port));
                }
                return Ok(0);
            }
        }
        return Err(Fail::new(1, format!("Error: No public port '{want_key}' published for {}", o.names[0])));
    }
    for k in keys {
        if let Some(Some(binds)) = c.network_settings.ports.get(k) {
            for b in binds {
                println!("{k} -> {}", join_host_port(&b.host_ip, &b.host_port));
            }
        }
    }
    Ok(0)
}
