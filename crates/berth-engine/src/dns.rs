//! The engine's side of the embedded DNS resolver (`berth-dns`, one process per daemon,
//! see docs/networking.md): one records file per user network, rewritten whenever an
//! endpoint on it gains or loses its address, and the resolver started at daemon start
//! when it is not already running (it outlives berthd, so names keep resolving while
//! berthd restarts). Containers on user networks get the network's gateway as their
//! only name server ([`Engine::container_etc_files`]); their `--dns` servers go into
//! the records instead, as the resolver's upstreams for that container's queries (as
//! Docker's embedded DNS uses them), never into their resolv.conf next to it.

use std::net::IpAddr;
use std::path::PathBuf;

use berth_dns::{Endpoint, NetworkRecords};
use berth_network::etc::{self, HostsSpec, LinkHost, ResolvSpec};
use berth_network::{EndpointRecord, NetworkRecord};

use crate::error::{Error, Result};
use crate::record::Record;
use crate::Engine;

impl Engine {
    /// `<exec-root>/dns`: the resolver's records files, pid file and log.
    pub(crate) fn dns_state_dir(&self) -> PathBuf {
        self.config().exec_root.join("dns")
    }

    /// The resolver binary: next to the shim (both ship beside berthd).
    fn dns_bin(&self) -> PathBuf {
        self.config().shim_bin.with_file_name("berth-dns")
    }

    /// Whether containers on `net` get the embedded resolver: user-defined bridges.
    fn has_dns(net: &NetworkRecord) -> bool {
        !net.is_predefined() && net.is_bridge()
    }

    /// The records of `net` from the containers attached to it; `change` overrides what
    /// the records say about one container (an endpoint being attached, `Some`, or
    /// detached, `None`) for callers that update the record afterwards.
    fn dns_records(&self, net: &NetworkRecord, change: Option<(&str, Option<&EndpointRecord>)>) -> NetworkRecords {
        let mut endpoints = Vec::new();
        let mut seen_changed = false;
        for c in self.all_containers() {
            let r = c.record();
            let e = match change {
                Some((id, e)) if id == r.id => {
                    seen_changed = true;
                    e.cloned()
                }
                _ => r.endpoints.values().find(|e| e.network_id == net.id).cloned(),
            };
            if let Some(e) = e.filter(|e| e.is_attached()) {
                endpoints.push(self.to_dns(&r, &e));
            }
        }
        if let (Some((id, Some(e))), false) = (change, seen_changed) {
            let mut ep = to_dns_endpoint(id, e);
            if let Ok(c) = self.lookup(id) {
                (ep.dns, ep.netns) = self.dns_upstreams(&c.record());
            }
            endpoints.push(ep);
        }
        NetworkRecords {
            id: net.id.clone(),
            name: net.name.clone(),
            listen: net.ipam.iter().map(|p| IpAddr::V4(p.gateway)).collect(),
            endpoints,
        }
    }

    /// `rec`'s endpoint `e` as the resolver sees it: names, addresses, links, and the
    /// container's own name servers.
    fn to_dns(&self, rec: &Record, e: &EndpointRecord) -> Endpoint {
        let mut ep = to_dns_endpoint(&rec.id, e);
        (ep.dns, ep.netns) = self.dns_upstreams(rec);
        ep
    }

    /// The container's `--dns` servers (`HostConfig.Dns`) as the resolver's upstreams
    /// for its queries, and its netns file when one is a loopback address (a server of
    /// the container's own, which the resolver asks from inside). Entries that are not
    /// addresses are skipped (the docker CLI validates them; the API does not).
    fn dns_upstreams(&self, rec: &Record) -> (Vec<IpAddr>, Option<PathBuf>) {
        let mut servers = Vec::new();
        for s in rec.host_config.dns.iter().flatten() {
            match s.trim().parse::<IpAddr>() {
                Ok(a) => servers.push(a),
                Err(_) => tracing::warn!(container = %rec.id, "--dns {s:?} is not an IP address; not used"),
            }
        }
        let netns = servers.iter().any(IpAddr::is_loopback).then(|| self.netns_path(&rec.id));
        (servers, netns)
    }

    /// Rewrites `net`'s records file (see [`Engine::dns_records`] for `change`).
    /// Failures are logged: name resolution is a service to containers, never a reason
    /// to fail their start.
    pub(crate) fn dns_update(&self, net: &NetworkRecord, change: Option<(&str, Option<&EndpointRecord>)>) {
        if !Self::has_dns(net) {
            return;
        }
        let recs = self.dns_records(net, change);
        let state = self.dns_state_dir();
        if let Err(e) = berth_dns::control::write_network(&state, &recs) {
            tracing::warn!(network = %net.name, "writing DNS records: {e}");
            return;
        }
        // A container being attached queries as soon as it runs: the resolver must
        // listen on the gateway by then (a bridge brought up just now is new to it).
        let attaching = matches!(change, Some((_, Some(_))));
        if attaching && berth_dns::control::running_pid(&state).is_some() && !berth_dns::control::wait_listening(&recs.listen, std::time::Duration::from_secs(2)) {
            tracing::warn!(network = %net.name, "the DNS resolver does not listen on {:?} yet", recs.listen);
        }
    }

    /// Removes `net`'s records file (network removed).
    pub(crate) fn dns_forget(&self, net: &NetworkRecord) {
        if let Err(e) = berth_dns::control::remove_network(&self.dns_state_dir(), &net.id) {
            tracing::warn!(network = %net.name, "removing DNS records: {e}");
        }
    }

    /// At daemon start: records files for every user network from the restored
    /// containers (stale ones removed), then the resolver started unless it runs.
    pub(crate) async fn dns_start(&self) {
        let state = self.dns_state_dir();
        let nets: Vec<NetworkRecord> = self.nets().all().into_iter().filter(Self::has_dns).collect();
        let records: Vec<NetworkRecords> = nets.iter().map(|n| self.dns_records(n, None)).collect();
        let bin = self.dns_bin();
        let resolv_conf = self.config().network.resolv_conf.clone();
        let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let dir = state.join(berth_dns::table::NETWORKS_DIR);
            std::fs::create_dir_all(&dir)?;
            for entry in std::fs::read_dir(&dir)?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let keep = records.iter().any(|r| format!("{}.json", r.id) == name);
                if !keep {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            for r in &records {
                berth_dns::control::write_network(&state, r)?;
            }
            if !bin.is_file() {
                return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} not found", bin.display())));
            }
            berth_dns::control::ensure_running(&bin, &state, &resolv_conf).map(|_| ())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("embedded DNS unavailable: {e}"),
            Err(e) => tracing::warn!("embedded DNS unavailable: {e}"),
        }
    }

    /// `/etc/hosts` and `/etc/resolv.conf` of `rec` from its endpoints as they are now
    /// (addresses known: at start, after the endpoints are attached), `--add-host`,
    /// `--link` and the `--dns*` flags. `host_gateway` is the default bridge's gateway.
    pub(crate) fn container_etc_files(&self, rec: &Record) -> Result<(String, String)> {
        let hc = &rec.host_config;
        let host_gateway = self
            .nets()
            .find("bridge")
            .ok()
            .and_then(|b| b.ipam.first().map(|p| IpAddr::V4(p.gateway)));
        let mut extra = Vec::new();
        for h in hc.extra_hosts.iter().flatten() {
            extra.push(etc::parse_extra_host(h, host_gateway).map_err(Error::invalid)?);
        }
        let mut links = Vec::new();
        for l in hc.links.iter().flatten() {
            let (name, alias) = etc::parse_link(l).map_err(Error::invalid)?;
            let Ok(child) = self.lookup(&name) else { continue };
            let cr = child.record();
            if let Some((ip, _)) = cr.endpoints.get("bridge").and_then(|e| e.ipv4) {
                links.push(LinkHost { alias, name: cr.name.clone(), hostname: cr.config.hostname.clone(), ip: IpAddr::V4(ip) });
            }
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        let mut embedded = None;
        for (name, e) in &rec.endpoints {
            if let Some((ip, _)) = e.ipv4 {
                ips.push(IpAddr::V4(ip));
            }
            if let Some((ip, _)) = e.ipv6 {
                ips.push(IpAddr::V6(ip));
            }
            if embedded.is_none() {
                if let Ok(net) = self.nets().find(name) {
                    if Self::has_dns(&net) {
                        embedded = e.gateway.map(IpAddr::V4);
                    }
                }
            }
        }
        let hosts = etc::hosts(&HostsSpec {
            hostname: rec.config.hostname.clone(),
            domainname: rec.config.domainname.clone(),
            ips,
            extra,
            links,
        });
        let host_resolv = std::fs::read_to_string(&self.config().network.resolv_conf).unwrap_or_default();
        let resolv = etc::resolv(
            &host_resolv,
            &ResolvSpec {
                dns: hc.dns.clone().unwrap_or_default(),
                dns_search: hc.dns_search.clone().unwrap_or_default(),
                dns_options: hc.dns_options.clone().unwrap_or_default(),
                embedded,
            },
        );
        Ok((hosts, resolv))
    }

    /// Writes [`Engine::container_etc_files`] into the container's directory (the
    /// files are bind-mounted, so a running container sees the change).
    pub(crate) fn write_etc_files(&self, rec: &Record) -> Result<()> {
        let (hosts, resolv) = self.container_etc_files(rec)?;
        let dir = self.container_dir(&rec.id);
        for (f, content) in [("hosts", hosts), ("resolv.conf", resolv)] {
            let p = dir.join(f);
            // In place, not by rename: the container's bind mount holds the inode.
            std::fs::write(&p, content).map_err(|e| Error::io("write", &p, e))?;
        }
        Ok(())
    }

    /// Docker's link environment for `rec`'s `--link`s (the parent's side).
    pub(crate) fn link_env(&self, rec: &Record) -> Vec<String> {
        let mut env = Vec::new();
        for l in rec.host_config.links.iter().flatten() {
            let Ok((name, alias)) = etc::parse_link(l) else { continue };
            let Ok(child) = self.lookup(&name) else { continue };
            let cr = child.record();
            let Some((ip, _)) = cr.endpoints.get("bridge").and_then(|e| e.ipv4) else { continue };
            let exposed: Vec<String> = cr.config.exposed_ports.as_ref().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            let link = LinkHost { alias, name: cr.name.clone(), hostname: cr.config.hostname.clone(), ip: IpAddr::V4(ip) };
            env.extend(etc::link_env(&rec.name, &link, &exposed, cr.config.env.as_deref().unwrap_or_default()));
        }
        env
    }
}

fn to_dns_endpoint(container_id: &str, e: &EndpointRecord) -> Endpoint {
    Endpoint {
        id: container_id.to_string(),
        names: e.dns_names.clone(),
        ipv4: e.ipv4.map(|(a, _)| a).into_iter().collect(),
        ipv6: e.ipv6.map(|(a, _)| a).into_iter().collect(),
        links: e.links.iter().filter_map(|l| etc::parse_link(l).ok()).map(|(name, alias)| (alias, name)).collect(),
        dns: Vec::new(),
        netns: None,
    }
}

impl Engine {
    /// `DELETE /containers/{parent}/{alias}?link=1`: drops the legacy link `alias` from
    /// `parent`'s links. The link name is what Docker looks up, so a missing one is its
    /// 404 for that name.
    pub fn remove_link(&self, parent: &str, alias: &str) -> Result<()> {
        let name = format!("{parent}/{alias}");
        let not_found = || Error::not_found(format!("No such container: {name}"));
        let c = self.lookup(parent).map_err(|_| not_found())?;
        let r = c.record();
        let keep: Vec<String> = r
            .host_config
            .links
            .iter()
            .flatten()
            .filter(|l| etc::parse_link(l).map(|(_, a)| a != alias).unwrap_or(true))
            .cloned()
            .collect();
        if keep.len() == r.host_config.links.as_ref().map_or(0, Vec::len) {
            return Err(not_found());
        }
        let dir = self.container_dir(&c.id);
        c.update(&dir, |r| r.host_config.links = if keep.is_empty() { None } else { Some(keep.clone()) })?;
        if r.state.status.is_running() {
            let _ = self.write_etc_files(&c.record());
        }
        Ok(())
    }
}
