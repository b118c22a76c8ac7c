//! Networks as the engine sees them: the records (through `berth_network::store`), the
//! predefined `bridge`, `host` and `none`, IPAM bookkeeping (which addresses are held,
//! rebuilt from container records at startup), and the operations behind `/networks`:
//! create, remove, list, inspect, prune, connect and disconnect. Kernel work (bridges,
//! veths, firewall) is `berth_network`'s; this file decides and records.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use berth_api::{
    parse_filters, EndpointSettings, Network, NetworkContainer, NetworkCreateRequest, NetworkCreateResponse,
};
use berth_network::ipam::{self, Cidr4};
use berth_network::model::{self, EndpointRecord, Ipam6Config, IpamConfig, NetworkRecord};
use berth_network::store::{self, Store};
use berth_network::{Instance, NetOptions};

use crate::error::{Error, Result};
use crate::record::{Container, Record};
use crate::{lock, timefmt, Engine};

/// The filter keys `GET /networks` and `POST /networks/prune` accept.
const LIST_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];
const PRUNE_FILTERS: &[&str] = &["label", "label!", "until"];

/// The networks and the addresses handed out on them.
pub(crate) struct NetState {
    store: Store,
    pub(crate) instance: Instance,
    pub(crate) opts: NetOptions,
    nets: Mutex<Nets>,
    pub(crate) kernel: crate::netplumb::Kernel,
}

#[derive(Default)]
struct Nets {
    by_id: BTreeMap<String, NetworkRecord>,
    /// Addresses held on each network (by id): gateways and aux addresses are not here.
    used: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// The same for IPv6 addresses.
    used6: BTreeMap<String, BTreeSet<Ipv6Addr>>,
}

impl Nets {
    /// Docker's lookup order: full ID, then name, then a unique ID prefix.
    fn find(&self, key: &str) -> Result<&NetworkRecord> {
        if let Some(n) = self.by_id.get(key) {
            return Ok(n);
        }
        if let Some(n) = self.by_id.values().find(|n| n.name == key) {
            return Ok(n);
        }
        if !key.is_empty() {
            let hits: Vec<&NetworkRecord> = self.by_id.values().filter(|n| n.id.starts_with(key)).collect();
            match hits.len() {
                1 => return Ok(hits[0]),
                0 => {}
                n => return Err(Error::invalid(format!("network {key} is ambiguous ({n} matches found based on ID prefix)"))),
            }
        }
        Err(Error::not_found(format!("network {key} not found")))
    }

    fn subnets(&self) -> Vec<Cidr4> {
        self.by_id.values().flat_map(|n| n.ipam.iter().map(|p| p.subnet)).collect()
    }
}

impl NetState {
    /// Loads the records under `<data-root>/network` and makes sure the predefined
    /// networks exist (the default bridge's subnet chosen now, once, if new).
    pub(crate) fn open(cfg: &crate::EngineConfig) -> Result<NetState> {
        let dir = cfg.data_root.join("network");
        let store = Store::open(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let instance = Instance::for_exec_root(&cfg.exec_root, &cfg.network);
        let mut nets = Nets::default();
        for r in store.load_all() {
            nets.by_id.insert(r.id.clone(), r);
        }
        let now = timefmt::now();
        for name in ["host", "none"] {
            if nets.find(name).is_err() {
                let r = store::special(name, &instance.bridge, &now);
                store.save(&r).map_err(|e| Error::internal(format!("saving network {name}: {e}")))?;
                nets.by_id.insert(r.id.clone(), r);
            }
        }
        // Held while a subnet may be chosen and until its bridge exists (the route the
        // next daemon's choice avoids).
        let _host_lock = berth_network::netlink::host_lock(std::path::Path::new(crate::netplumb::HOST_LOCK))
            .map_err(|e| Error::internal(format!("locking {}: {e}", crate::netplumb::HOST_LOCK)))?;
        let kernel = crate::netplumb::Kernel::new(&instance.chain, cfg.network.iptables);
        let want = default_bridge_plan(&cfg.network, &instance, &nets)?;
        let current = nets.find("bridge").ok().cloned();
        let keep = current.as_ref().is_some_and(|c| {
            c.bridge == instance.bridge
                && c.mtu == cfg.network.mtu
                && (cfg.network.bip.is_none() || c.ipam.first().map(|p| (p.subnet, p.gateway)) == want.as_ref().map(|w| (w.0, w.1)))
                && c.ipam.first().and_then(|p| p.ip_range) == want.as_ref().and_then(|w| w.2)
        });
        if !keep {
            if let Some(c) = current {
                nets.by_id.remove(&c.id);
            }
            let (subnet, gw, range) = match want {
                Some(w) => w,
                None => {
                    let mut taken = ipam::host_routes(std::path::Path::new("/proc/net/route"));
                    taken.extend(nets.subnets());
                    let s = ipam::choose_subnet(&taken).ok_or_else(|| {
                        Error::internal("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
                    })?;
                    (s, ipam::default_gateway(&s), None)
                }
            };
            let r = store::default_bridge(&instance.bridge, subnet, gw, range, cfg.network.mtu, &now);
            store.save(&r).map_err(|e| Error::internal(format!("saving network bridge: {e}")))?;
            nets.by_id.insert(r.id.clone(), r);
        }
        if let Ok(b) = nets.find("bridge") {
            if let Some(p) = b.ipam.first() {
                let spec = berth_network::bridge::BridgeSpec { name: b.bridge.clone(), gateway: p.gateway, prefix: p.subnet.prefix, gateway6: None, mtu: b.mtu };
                kernel
                    .host(|nl| berth_network::bridge::ensure_bridge(nl, &spec))
                    .map_err(|e| Error::internal(format!("bridge {}: {e}", b.bridge)))?;
            }
        }
        Ok(NetState { store, instance, opts: cfg.network.clone(), nets: Mutex::new(nets), kernel })
    }

    pub(crate) fn find(&self, key: &str) -> Result<NetworkRecord> {
        lock(&self.nets).find(key).cloned()
    }

    pub(crate) fn all(&self) -> Vec<NetworkRecord> {
        lock(&self.nets).by_id.values().cloned().collect()
    }

    /// Marks `ip` held on network `id` (restore of a running container's endpoint);
    /// false when it already was.
    pub(crate) fn hold(&self, id: &str, ip: Ipv4Addr) -> bool {
        lock(&self.nets).used.entry(id.to_string()).or_default().insert(ip)
    }

    /// [`NetState::hold`] for an IPv6 address.
    pub(crate) fn hold6(&self, id: &str, ip: Ipv6Addr) {
        lock(&self.nets).used6.entry(id.to_string()).or_default().insert(ip);
    }

    pub(crate) fn release6(&self, id: &str, ip: Ipv6Addr) {
        if let Some(s) = lock(&self.nets).used6.get_mut(id) {
            s.remove(&ip);
        }
    }

    /// The endpoint's IPv6 address on `net`: the static one, else the lowest free one
    /// after the gateway (Docker's sequential allocation), held.
    pub(crate) fn allocate6(&self, net: &NetworkRecord, want: Option<Ipv6Addr>) -> Result<Option<(Ipv6Addr, u8, Ipv6Addr)>> {
        let Some(p) = net.ipam6.first() else { return Ok(None) };
        let mut nets = lock(&self.nets);
        let used = nets.used6.entry(net.id.clone()).or_default();
        let mask = if p.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(p.prefix)) };
        let base = u128::from(p.subnet) & mask;
        let ip = match want {
            Some(ip) => {
                if u128::from(ip) & mask != base {
                    return Err(Error::invalid(format!("Invalid address {ip}: It does not belong to any of this network's subnets")));
                }
                if used.contains(&ip) || ip == p.gateway {
                    return Err(Error::forbidden("Address already in use"));
                }
                ip
            }
            None => {
                let mut cand = base + 1;
                loop {
                    let ip = Ipv6Addr::from(cand);
                    if ip != p.gateway && !used.contains(&ip) {
                        break ip;
                    }
                    cand += 1;
                    if cand & mask != base || cand - base > 1 << 20 {
                        return Err(Error::internal(format!("no available IPv6 addresses on network {}", net.name)));
                    }
                }
            }
        };
        used.insert(ip);
        Ok(Some((ip, p.prefix, p.gateway)))
    }

    pub(crate) fn release(&self, id: &str, ip: Ipv4Addr) {
        if let Some(s) = lock(&self.nets).used.get_mut(id) {
            s.remove(&ip);
        }
    }

    /// Picks the endpoint's IPv4 address on `net` (the static one if asked, else the
    /// lowest free) and holds it. Docker's texts for a taken or foreign address.
    pub(crate) fn allocate(&self, net: &NetworkRecord, want: Option<Ipv4Addr>) -> Result<Option<(Ipv4Addr, u8, Ipv4Addr)>> {
        let Some(pool) = net.ipam.first() else { return Ok(None) };
        let mut nets = lock(&self.nets);
        let used = nets.used.entry(net.id.clone()).or_default();
        let mut taken: BTreeSet<Ipv4Addr> = used.clone();
        taken.insert(pool.gateway);
        taken.extend(pool.aux.values().copied());
        let ip = match want {
            Some(ip) => {
                if !pool.subnet.contains(ip) {
                    return Err(Error::invalid(format!(
                        "Invalid address {ip}: It does not belong to any of this network's subnets"
                    )));
                }
                if taken.contains(&ip) {
                    return Err(Error::forbidden("Address already in use"));
                }
                ip
            }
            None => ipam::next_free(&pool.subnet, pool.ip_range.as_ref(), &taken).ok_or_else(|| {
                Error::internal(format!("no available IPv4 addresses on this network's address pools: {} ({})", net.name, net.id))
            })?,
        };
        used.insert(ip);
        Ok(Some((ip, pool.subnet.prefix, pool.gateway)))
    }
}

/// The default bridge's (subnet, gateway, fixed range) from `--bip`/`--fixed-cidr`;
/// `None` leaves the choice to the pools.
fn default_bridge_plan(opts: &NetOptions, _inst: &Instance, _nets: &Nets) -> Result<Option<(Cidr4, Ipv4Addr, Option<Cidr4>)>> {
    let range = opts
        .fixed_cidr
        .as_deref()
        .map(|s| s.parse::<Cidr4>().map(|c| c.network()).map_err(Error::invalid))
        .transpose()?;
    match opts.bip.as_deref() {
        Some(bip) => {
            let c: Cidr4 = bip.parse().map_err(Error::invalid)?;
            Ok(Some((c.network(), c.addr, range)))
        }
        None => match range {
            Some(r) => Ok(Some((r, ipam::default_gateway(&r), Some(r)))),
            None => Ok(None),
        },
    }
}

/// The sandbox (network namespace) ID inspect shows: derived from the container's.
fn sandbox_id(id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("berth sandbox {id}").as_bytes()))
}

/// A random 64-hex ID.
pub(crate) fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn labels_match(mine: &BTreeMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|v| match v.split_once('=') {
        Some((k, val)) => mine.get(k).is_some_and(|x| x == val),
        None => mine.contains_key(v.as_str()),
    })
}

/// The parsed IPAM of a create request: IPv4 pools and IPv6 pools.
fn parse_ipam(req: &NetworkCreateRequest) -> Result<(Vec<IpamConfig>, Vec<Ipam6Config>)> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in req.ipam.as_ref().and_then(|i| i.config.as_ref()).into_iter().flatten() {
        if p.subnet.contains(':') {
            let (a, l) = p.subnet.split_once('/').ok_or_else(|| Error::invalid(format!("invalid CIDR address: {}", p.subnet)))?;
            let addr: Ipv6Addr = a.parse().map_err(|_| Error::invalid(format!("invalid CIDR address: {}", p.subnet)))?;
            let prefix: u8 = l.parse().ok().filter(|l| *l <= 128).ok_or_else(|| Error::invalid(format!("invalid CIDR address: {}", p.subnet)))?;
            let gateway = if p.gateway.is_empty() {
                Ipv6Addr::from(u128::from(addr) + 1)
            } else {
                p.gateway.parse().map_err(|_| Error::invalid(format!("invalid gateway address: {}", p.gateway)))?
            };
            v6.push(Ipam6Config { subnet: addr, prefix, gateway });
            continue;
        }
        if p.subnet.is_empty() {
            if !p.ip_range.is_empty() || !p.gateway.is_empty() {
                return Err(Error::invalid("ipam config: a subnet is required with a gateway or an ip range"));
            }
            continue;
        }
        let subnet = Cidr4::parse_network(&p.subnet).map_err(Error::invalid)?;
        let gateway = if p.gateway.is_empty() {
            ipam::default_gateway(&subnet)
        } else {
            let g: Ipv4Addr = p.gateway.parse().map_err(|_| Error::invalid(format!("invalid gateway address: {}", p.gateway)))?;
            if !subnet.contains(g) {
                return Err(Error::forbidden(format!("Invalid address {g}: It does not belong to any of this network's subnets")));
            }
            g
        };
        let ip_range = if p.ip_range.is_empty() {
            None
        } else {
            let r: Cidr4 = p.ip_range.parse().map_err(Error::invalid)?;
            if !subnet.contains(r.addr) || r.prefix < subnet.prefix {
                return Err(Error::forbidden(format!("Invalid address {}: It does not belong to any of this network's subnets", r.addr)));
            }
            Some(r.network())
        };
        let mut aux = BTreeMap::new();
        for (k, v) in p.aux_addresses.iter().flatten() {
            let a: Ipv4Addr = v.parse().map_err(|_| Error::invalid(format!("invalid auxiliary address: {v}")))?;
            if !subnet.contains(a) {
                return Err(Error::forbidden(format!("Invalid address {a}: It does not belong to any of this network's subnets")));
            }
            aux.insert(k.clone(), a);
        }
        v4.push(IpamConfig { subnet, gateway, ip_range, aux });
    }
    Ok((v4, v6))
}

impl Engine {
    pub(crate) fn nets(&self) -> &NetState {
        &self.inner.net
    }

    /// `POST /networks/create`.
    pub async fn create_network(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let name = req.name.trim().to_string();
        if name.is_empty() {
            return Err(Error::invalid("invalid name: name is empty"));
        }
        if model::PREDEFINED.contains(&name.as_str()) {
            return Err(Error::forbidden(format!("{name} is a pre-defined network and cannot be created")));
        }
        let driver = if req.driver.is_empty() { "bridge".to_string() } else { req.driver.clone() };
        match driver.as_str() {
            "bridge" => {}
            "host" | "null" => return Err(Error::forbidden(format!("only one instance of \"{driver}\" network is allowed"))),
            other => return Err(Error::not_found(format!("could not find plugin {other} in v1 plugin registry: plugin not found"))),
        }
        if !req.scope.is_empty() && req.scope != "local" {
            return Err(Error::invalid(format!("invalid scope value {}", req.scope)));
        }
        let (mut v4, v6) = parse_ipam(&req)?;
        let options = req.options.clone().unwrap_or_default();
        let mtu = match options.get(model::OPT_MTU) {
            Some(m) => m.parse::<u32>().map_err(|_| Error::invalid(format!("invalid MTU value {m:?}")))?,
            None => 0,
        };
        let id = random_id();
        let bridge = options.get(model::OPT_BRIDGE_NAME).cloned().unwrap_or_else(|| store::bridge_name(&id));
        let st = self.nets();
        let _host_lock = berth_network::netlink::host_lock(std::path::Path::new(crate::netplumb::HOST_LOCK))
            .map_err(|e| Error::internal(format!("locking {}: {e}", crate::netplumb::HOST_LOCK)))?;
        let rec = {
            let mut nets = lock(&st.nets);
            if nets.by_id.values().any(|n| n.name == name) {
                return Err(Error::conflict(format!("network with name {name} already exists")));
            }
            if nets.by_id.values().any(|n| n.bridge == bridge) {
                return Err(Error::conflict(format!("bridge name {bridge} is already in use by another network")));
            }
            let others = nets.subnets();
            for p in &v4 {
                if others.iter().any(|o| o.overlaps(&p.subnet)) {
                    return Err(Error::forbidden("Pool overlaps with other one on this address space"));
                }
            }
            if v4.is_empty() {
                let mut taken = ipam::host_routes(std::path::Path::new("/proc/net/route"));
                taken.extend(others);
                let s = ipam::choose_subnet(&taken).ok_or_else(|| {
                    Error::forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
                })?;
                v4.push(IpamConfig { subnet: s, gateway: ipam::default_gateway(&s), ip_range: None, aux: BTreeMap::new() });
            }
            let rec = NetworkRecord {
                id: id.clone(),
                name: name.clone(),
                driver,
                created: timefmt::now(),
                internal: req.internal,
                attachable: req.attachable,
                enable_ipv6: req.enable_ipv6.unwrap_or(false),
                ipam: v4,
                ipam6: v6,
                ipam_options: req.ipam.as_ref().and_then(|i| i.options.clone()),
                options,
                labels: req.labels.clone().unwrap_or_default(),
                bridge,
                mtu,
            };
            st.store.save(&rec).map_err(|e| Error::internal(format!("saving network {name}: {e}")))?;
            nets.by_id.insert(id.clone(), rec.clone());
            rec
        };
        if let Err(e) = self.net_up(&rec) {
            let mut nets = lock(&st.nets);
            nets.by_id.remove(&rec.id);
            let _ = st.store.remove(&rec.id);
            return Err(e);
        }
        self.dns_update(&rec, None);
        self.network_event(&rec, "create", &[]);
        Ok(NetworkCreateResponse { id, warning: String::new() })
    }

    /// Sets a network up on the host: its bridge, then the firewall with it.
    pub(crate) fn net_up(&self, rec: &NetworkRecord) -> Result<()> {
        if !rec.is_bridge() {
            return Ok(());
        }
        self.ensure_bridge(rec)?;
        if let Err(e) = self.apply_firewall() {
            let _ = self.kernel().host(|nl| nl.delete_link(&rec.bridge));
            return Err(e);
        }
        Ok(())
    }

    /// Takes a network down on the host; errors are logged, not returned.
    pub(crate) fn net_down(&self, rec: &NetworkRecord) {
        if !rec.is_bridge() {
            return;
        }
        if let Err(e) = self.kernel().host(|nl| nl.delete_link(&rec.bridge)) {
            tracing::warn!(network = %rec.name, "removing bridge {}: {e}", rec.bridge);
        }
        if let Err(e) = self.apply_firewall() {
            tracing::warn!(network = %rec.name, "{e}");
        }
    }

    /// Containers with an attached endpoint on network `id`: (container, endpoint).
    fn attached(&self, id: &str) -> Vec<(Arc<Container>, EndpointRecord)> {
        let mut out = Vec::new();
        for c in self.all_containers() {
            let r = c.record();
            if let Some(e) = r.endpoints.values().find(|e| e.network_id == id && e.is_attached()) {
                out.push((c.clone(), e.clone()));
            }
        }
        out
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, key: &str) -> Result<()> {
        let rec = self.nets().find(key)?;
        if rec.is_predefined() {
            return Err(Error::forbidden(format!("{} is a pre-defined network and cannot be removed", rec.name)));
        }
        if !self.attached(&rec.id).is_empty() {
            return Err(Error::forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                rec.name, rec.id
            )));
        }
        self.drop_network(&rec)
    }

    fn drop_network(&self, rec: &NetworkRecord) -> Result<()> {
        let st = self.nets();
        {
            let mut nets = lock(&st.nets);
            st.store.remove(&rec.id).map_err(|e| Error::internal(format!("removing network {}: {e}", rec.name)))?;
            nets.by_id.remove(&rec.id);
            nets.used.remove(&rec.id);
            nets.used6.remove(&rec.id);
        }
        self.net_down(rec);
        self.dns_forget(rec);
        self.network_event(rec, "destroy", &[]);
        Ok(())
    }

    /// `GET /networks/{id}`: with the attached containers.
    pub fn inspect_network(&self, key: &str) -> Result<Network> {
        let rec = self.nets().find(key)?;
        Ok(self.network_view(&rec))
    }

    fn network_view(&self, rec: &NetworkRecord) -> Network {
        let mut containers = BTreeMap::new();
        for (c, e) in self.attached(&rec.id) {
            containers.insert(
                c.id.clone(),
                NetworkContainer {
                    name: c.name(),
                    endpoint_id: e.endpoint_id.clone(),
                    mac_address: e.mac.clone(),
                    ipv4_address: e.ipv4.map(|(a, l)| format!("{a}/{l}")).unwrap_or_default(),
                    ipv6_address: e.ipv6.map(|(a, l)| format!("{a}/{l}")).unwrap_or_default(),
                },
            );
        }
        rec.to_api(containers)
    }

    /// `GET /networks`: Docker lists `Containers` empty; filters as Docker's.
    pub fn list_networks(&self, filters: &str) -> Result<Vec<Network>> {
        let f = parse_filters(filters).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&f, LIST_FILTERS).map_err(Error::invalid)?;
        if let Some(t) = f.get("type") {
            if let Some(bad) = t.iter().find(|t| *t != "custom" && *t != "builtin") {
                return Err(Error::invalid(format!("invalid filter: 'type'='{bad}'")));
            }
        }
        let dangling = match f.get("dangling").and_then(|v| v.first()).map(String::as_str) {
            None => None,
            Some("true") | Some("1") => Some(true),
            Some("false") | Some("0") => Some(false),
            Some(v) => return Err(Error::invalid(format!("invalid filter 'dangling={v}'"))),
        };
        let mut out = Vec::new();
        let mut all = self.nets().all();
        all.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        for rec in all {
            let any = |k: &str, m: &dyn Fn(&str) -> bool| f.get(k).unset_or_any(m);
            if !any("driver", &|v| rec.driver == v)
                || !any("id", &|v| rec.id.starts_with(v))
                || !any("name", &|v| rec.name.contains(v))
                || !any("scope", &|v| v == "local")
                || !any("type", &|v| (v == "builtin") == rec.is_predefined())
                || !f.get("label").unset_or_all(&|v| labels_match(&rec.labels, &[v.to_string()]))
            {
                continue;
            }
            if let Some(d) = dangling {
                let used = rec.is_predefined() || self.all_containers().iter().any(|c| c.record().endpoints.values().any(|e| e.network_id == rec.id));
                if d == used {
                    continue;
                }
            }
            let mut n = rec.to_api(BTreeMap::new());
            if !rec.is_predefined() || rec.driver == "bridge" {
                n.containers = BTreeMap::new();
            }
            out.push(n);
        }
        Ok(out)
    }

    /// `POST /networks/prune`: every user network without an active endpoint.
    pub async fn prune_networks(&self, filters: &str) -> Result<Vec<String>> {
        let f = parse_filters(filters).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&f, PRUNE_FILTERS).map_err(Error::invalid)?;
        let until = match f.get("until").and_then(|v| v.first()) {
            Some(u) => Some(crate::containers::parse_until(u)?),
            None => None,
        };
        let mut deleted = Vec::new();
        for rec in self.nets().all() {
            if rec.is_predefined() || !self.attached(&rec.id).is_empty() {
                continue;
            }
            if let Some(l) = f.get("label") {
                if !labels_match(&rec.labels, l) {
                    continue;
                }
            }
            if let Some(l) = f.get("label!") {
                if l.iter().any(|v| labels_match(&rec.labels, std::slice::from_ref(v))) {
                    continue;
                }
            }
            if let Some(until) = until {
                if timefmt::parse(&rec.created).is_some_and(|t| t.timestamp() >= until) {
                    continue;
                }
            }
            if self.drop_network(&rec).is_ok() {
                deleted.push(rec.name.clone());
            }
        }
        Ok(deleted)
    }

    /// The endpoint a container gets on `net` from what create or connect asked for.
    pub(crate) fn plan_endpoint(&self, rec: &Record, net: &NetworkRecord, cfg: Option<&EndpointSettings>) -> Result<EndpointRecord> {
        let mut e = EndpointRecord { container_id: rec.id.clone(), network_id: net.id.clone(), ..Default::default() };
        if let Some(cfg) = cfg {
            e.aliases = cfg.aliases.clone().unwrap_or_default();
            e.links = cfg.links.clone().unwrap_or_default();
            e.driver_opts = cfg.driver_opts.clone().unwrap_or_default();
            e.mac_config = cfg.mac_address.clone();
            if let Some(ipam) = &cfg.ipam_config {
                e.static_ipam = ipam.clone();
            }
        }
        let user_net = !net.is_predefined();
        // Link-local addresses are allowed anywhere; only IPv4/IPv6 addresses are "user
        // specified" (Docker's hasUserDefinedIPAddress).
        if !e.static_ipam.ipv4_address.is_empty() || !e.static_ipam.ipv6_address.is_empty() {
            if !user_net || !net.is_bridge() {
                return Err(Error::invalid("user specified IP address is supported on user defined networks only"));
            }
            if !e.static_ipam.ipv4_address.is_empty() {
                let ip: Ipv4Addr = e
                    .static_ipam
                    .ipv4_address
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid IPv4 address: {}", e.static_ipam.ipv4_address)))?;
                if !net.ipam.iter().any(|p| p.subnet.contains(ip)) {
                    return Err(Error::invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
            }
            if !e.static_ipam.ipv6_address.is_empty() && e.static_ipam.ipv6_address.parse::<Ipv6Addr>().is_err() {
                return Err(Error::invalid(format!("invalid IPv6 address: {}", e.static_ipam.ipv6_address)));
            }
        }
        if !e.aliases.is_empty() && !user_net {
            return Err(Error::invalid("network-scoped alias is supported only for containers in user defined networks"));
        }
        if !e.mac_config.is_empty() && parse_mac(&e.mac_config).is_none() {
            return Err(Error::invalid(format!("invalid MAC address: {}", e.mac_config)));
        }
        if user_net {
            let mut names = vec![rec.name.clone()];
            names.extend(e.aliases.iter().cloned());
            names.push(rec.id[..12].to_string());
            names.dedup();
            e.dns_names = names;
        }
        Ok(e)
    }

    /// The endpoints a new container starts with: its network mode's network and
    /// every other entry of `EndpointsConfig` (API 1.44+ allows several).
    pub(crate) fn plan_endpoints(
        &self,
        rec: &Record,
        cfg: Option<&BTreeMap<String, EndpointSettings>>,
    ) -> Result<BTreeMap<String, EndpointRecord>> {
        let mode = rec.host_config.network_mode.as_str();
        let mut out = BTreeMap::new();
        if let Some(other) = mode.strip_prefix("container:") {
            // Docker resolves the other container at create: 404 when it is unknown.
            self.lookup(other)?;
            return Ok(out);
        }
        let primary = self.nets().find(resolve(mode))?;
        let key_of = |k: &str| -> Option<&EndpointSettings> {
            cfg.and_then(|m| m.iter().find(|(n, _)| resolve(n) == primary.name || **n == primary.id || (k == "default" && *n == "default")).map(|(_, v)| v))
        };
        let mut first = self.plan_endpoint(rec, &primary, key_of(mode))?;
        // The deprecated `Config.MacAddress` (docker-py, API < 1.44) is the primary
        // endpoint's, as Docker migrates it.
        if first.mac_config.is_empty() && primary.is_bridge() {
            if let Some(mac) = rec.config.mac_address.as_deref().filter(|m| !m.is_empty()) {
                if parse_mac(mac).is_none() {
                    return Err(Error::invalid(format!("invalid MAC address: {mac}")));
                }
                first.mac_config = mac.to_string();
            }
        }
        out.insert(primary.name.clone(), first);
        for (k, v) in cfg.into_iter().flatten() {
            let net = self.nets().find(resolve(k))?;
            if out.contains_key(&net.name) {
                continue;
            }
            if !primary.is_bridge() || !net.is_bridge() {
                return Err(Error::invalid(
                    "Container cannot be connected to network endpoints: conflicting options: a container on a host or none network cannot join other networks",
                ));
            }
            let e = self.plan_endpoint(rec, &net, Some(v))?;
            out.insert(net.name.clone(), e);
        }
        Ok(out)
    }

    /// `POST /networks/{id}/connect`: records the endpoint; a running container is
    /// attached at once, a stopped one at its next start.
    pub async fn connect_network(&self, net_key: &str, container: &str, cfg: Option<EndpointSettings>) -> Result<()> {
        let c = self.lookup(container)?;
        let net = self.nets().find(net_key)?;
        let _op = self.op_lock(&c, container).await?;
        let rec = c.record();
        let mode = rec.host_config.network_mode.as_str();
        if mode == "host" || net.driver == "host" {
            return Err(Error::invalid("container cannot be disconnected from host network or connected to host network"));
        }
        if mode.starts_with("container:") {
            return Err(Error::invalid(
                "container sharing network namespace with another container or host cannot be connected to any other network",
            ));
        }
        if mode == "none" || net.driver == "null" {
            return Err(Error::invalid(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode",
            ));
        }
        if rec.endpoints.contains_key(&net.name) {
            return Err(Error::forbidden(format!("endpoint with name {} already exists in network {}", rec.name, net.name)));
        }
        let mut e = self.plan_endpoint(&rec, &net, cfg.as_ref())?;
        if rec.state.status.is_running() {
            self.attach_endpoint(&rec, &net, &mut e)?;
            self.net_connect_running(&rec, &net, &mut e)?;
        }
        let dir = self.container_dir(&c.id);
        let name = net.name.clone();
        let saved = c.update(&dir, |r| {
            r.endpoints.insert(name.clone(), e.clone());
        });
        if let Err(err) = saved {
            self.unplumb_endpoint(&net, &mut e);
            return Err(err);
        }
        if rec.state.status.is_running() {
            // Docker adds the new address to a running container's /etc/hosts.
            let _ = self.write_etc_files(&c.record());
        }
        self.network_event(&net, "connect", &[("container", c.id.clone())]);
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(&self, net_key: &str, container: &str, force: bool) -> Result<()> {
        let c = self.lookup(container)?;
        let net = match self.nets().find(net_key) {
            Ok(n) => n,
            // A forced disconnect from a network that is gone still drops the entry.
            Err(e) if force => {
                let dir = self.container_dir(&c.id);
                let mut found = false;
                c.update(&dir, |r| {
                    let before = r.endpoints.len();
                    r.endpoints.retain(|k, v| k != net_key && !v.network_id.starts_with(net_key));
                    found = before != r.endpoints.len();
                })?;
                return if found { Ok(()) } else { Err(e) };
            }
            Err(e) => return Err(e),
        };
        let _op = self.op_lock(&c, container).await?;
        let rec = c.record();
        if rec.host_config.network_mode == "host" && net.driver == "host" {
            return Err(Error::invalid("container cannot be disconnected from host network or connected to host network"));
        }
        let Some(mut e) = rec.endpoints.get(&net.name).cloned() else {
            return Err(Error::forbidden(format!("container {} is not connected to network {}", c.id, net.name)));
        };
        if e.is_attached() {
            self.unplumb_endpoint(&net, &mut e);
        }
        let dir = self.container_dir(&c.id);
        c.update(&dir, |r| {
            r.endpoints.remove(&net.name);
        })?;
        self.network_event(&net, "disconnect", &[("container", c.id.clone())]);
        Ok(())
    }

    /// Gives endpoint `e` its addresses (and, with the kernel side, its interface in the
    /// container's namespace).
    pub(crate) fn attach_endpoint(&self, rec: &Record, net: &NetworkRecord, e: &mut EndpointRecord) -> Result<()> {
        let want = if e.static_ipam.ipv4_address.is_empty() {
            None
        } else {
            e.static_ipam.ipv4_address.parse().ok()
        };
        let Some((ip, prefix, gw)) = self.nets().allocate(net, want)? else {
            return Ok(());
        };
        e.endpoint_id = random_id();
        e.ipv4 = Some((ip, prefix));
        e.gateway = Some(gw);
        e.mac = if e.mac_config.is_empty() { model::mac_for(ip) } else { e.mac_config.clone() };
        if net.enable_ipv6 {
            let want6 = e.static_ipam.ipv6_address.parse::<Ipv6Addr>().ok();
            match self.nets().allocate6(net, want6) {
                Ok(Some((a, p, gw))) => {
                    e.ipv6 = Some((a, p));
                    e.gateway6 = Some(gw);
                }
                Ok(None) => {}
                Err(err) => {
                    self.nets().release(&net.id, ip);
                    e.detach();
                    return Err(err);
                }
            }
        }
        let _ = rec;
        Ok(())
    }

    /// Holds the addresses of a running container's endpoints again (daemon restart).
    pub(crate) fn hold_endpoints(&self, r: &Record) {
        for e in r.endpoints.values() {
            if let Some((ip6, _)) = e.ipv6.filter(|_| e.is_attached()) {
                self.nets().hold6(&e.network_id, ip6);
            }
            if let Some((ip, _)) = e.ipv4.filter(|_| e.is_attached()) {
                if !self.nets().hold(&e.network_id, ip) {
                    tracing::warn!(container = %r.id, "address {ip} is held twice on network {}", e.network_id);
                }
            }
        }
    }

    /// The host-level names of this daemon (bridge, firewall chains).
    pub fn network_instance(&self) -> &Instance {
        &self.nets().instance
    }

    /// The daemon's network options.
    pub fn network_options(&self) -> &NetOptions {
        &self.nets().opts
    }

    /// `NetworkSettings` of inspect.
    pub(crate) fn network_settings(&self, r: &Record) -> berth_api::NetworkSettings {
        let running = r.state.status.is_running();
        let netns = berth_network::netns::path(&self.config().exec_root, &r.id);
        let own_ns = running && r.endpoints.values().any(|e| e.is_attached() && !e.host_ifname.is_empty());
        berth_api::NetworkSettings {
            ports: if running {
                berth_network::ports::settings_ports(r.config.exposed_ports.as_ref(), &r.ports)
            } else {
                BTreeMap::new()
            },
            networks: self.endpoint_settings(r),
            sandbox_key: if own_ns { netns.to_string_lossy().into_owned() } else { String::new() },
            sandbox_id: if own_ns { sandbox_id(&r.id) } else { String::new() },
            ..self.primary_endpoint(r)
        }
    }

    /// `NetworkSettings.Networks` of inspect and list.
    pub(crate) fn endpoint_settings(&self, r: &Record) -> BTreeMap<String, EndpointSettings> {
        if r.endpoints.is_empty() && !r.host_config.network_mode.starts_with("container:") {
            return berth_network::endpoints(&r.host_config.network_mode);
        }
        r.endpoints.iter().map(|(k, e)| (k.clone(), e.to_api())).collect()
    }

    /// The top-level (deprecated, still read) fields of `NetworkSettings`: Docker fills
    /// them from the default bridge's endpoint only.
    pub(crate) fn primary_endpoint(&self, r: &Record) -> berth_api::NetworkSettings {
        let mut ns = berth_api::NetworkSettings::default();
        if let Some(e) = r.endpoints.get("bridge").filter(|e| e.is_attached()) {
            let api = e.to_api();
            ns.endpoint_id = api.endpoint_id;
            ns.gateway = api.gateway;
            ns.ip_address = api.ip_address;
            ns.ip_prefix_len = api.ip_prefix_len;
            ns.ipv6_gateway = api.ipv6_gateway;
            ns.global_ipv6_address = api.global_ipv6_address;
            ns.global_ipv6_prefix_len = api.global_ipv6_prefix_len;
            ns.mac_address = api.mac_address;
        }
        ns
    }

    pub(crate) fn network_event(&self, rec: &NetworkRecord, action: &str, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), rec.name.clone());
        attrs.insert("type".to_string(), rec.driver.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        self.events().emit("network", action, &rec.id, attrs);
    }
}

/// `default` (the CLI's name for the daemon's default network) is `bridge`.
fn resolve(k: &str) -> &str {
    if k == "default" {
        "bridge"
    } else {
        k
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// Filter helpers: a missing key matches; a present one needs any/all values to.
trait FilterValues {
    fn unset_or_any(self, m: &dyn Fn(&str) -> bool) -> bool;
    fn unset_or_all(self, m: &dyn Fn(&str) -> bool) -> bool;
}

impl FilterValues for Option<&Vec<String>> {
    fn unset_or_any(self, m: &dyn Fn(&str) -> bool) -> bool {
        self.is_none_or(|v| v.iter().any(|x| m(x)))
    }
    fn unset_or_all(self, m: &dyn Fn(&str) -> bool) -> bool {
        self.is_none_or(|v| v.iter().all(|x| m(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::{Ipam, IpamPool};

    fn req(subnet: &str, gw: &str, range: &str) -> NetworkCreateRequest {
        NetworkCreateRequest {
            name: "n".into(),
            ipam: Some(Ipam {
                config: Some(vec![IpamPool { subnet: subnet.into(), gateway: gw.into(), ip_range: range.into(), aux_addresses: None }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ipam_requests_parse_or_fail_in_dockers_words() {
        let (v4, _) = parse_ipam(&req("10.5.0.0/16", "", "")).unwrap();
        assert_eq!(v4[0].gateway, Ipv4Addr::new(10, 5, 0, 1));
        let (v4, _) = parse_ipam(&req("10.5.0.0/16", "10.5.0.254", "10.5.1.0/24")).unwrap();
        assert_eq!((v4[0].gateway.to_string(), v4[0].ip_range.unwrap().to_string()), ("10.5.0.254".into(), "10.5.1.0/24".into()));
        let (_, v6) = parse_ipam(&req("fd00:1::/64", "", "")).unwrap();
        assert_eq!(v6[0].gateway.to_string(), "fd00:1::1");
        for (s, g, r, msg) in [
            ("10.5.0.1/16", "", "", "invalid subnet 10.5.0.1/16 : it should be 10.5.0.0/16"),
            ("10.5.0.0/16", "10.6.0.1", "", "Invalid address 10.6.0.1: It does not belong to any of this network's subnets"),
            ("bogus", "", "", "invalid CIDR address: bogus"),
        ] {
            assert_eq!(parse_ipam(&req(s, g, r)).unwrap_err().message, msg, "{s}");
        }
    }

    /// Removes a test engine's bridges whatever the test's outcome (the host is shared).
    struct Cleanup(std::path::PathBuf, NetOptions);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            crate::netplumb::cleanup_instance(&self.0.join("root"), &self.0.join("run"), &self.1);
        }
    }

    /// A real engine on a temp root (root only: it creates bridges; no firewall).
    #[tokio::test]
    async fn network_operations_answer_in_dockers_words() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let opts = NetOptions { iptables: false, ..Default::default() };
        let _cleanup = Cleanup(dir.path().to_path_buf(), opts.clone());
        let cfg = crate::EngineConfig {
            data_root: dir.path().join("root"),
            exec_root: dir.path().join("run"),
            shim_bin: "/nonexistent".into(),
            cgroup_root: dir.path().join("cg"),
            cgroup_parent: "berth-test".into(),
            registry: Default::default(),
            init_path: "/nonexistent".into(),
            runtimes: Default::default(),
            network: opts,
        };
        let e = Engine::open(cfg.clone()).await.unwrap();
        let names: Vec<String> = e.list_networks("").unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let bridge = e.inspect_network("bridge").unwrap();
        assert_eq!(bridge.driver, "bridge");
        assert_eq!(bridge.options.get(model::OPT_DEFAULT_BRIDGE).map(String::as_str), Some("true"));
        assert_eq!(e.inspect_network("none").unwrap().driver, "null");

        let id = e.create_network(req("10.251.7.0/24", "", "")).await.unwrap().id;
        assert_eq!(id.len(), 64);
        let n = e.inspect_network("n").unwrap();
        assert_eq!(n.ipam.config.as_ref().unwrap()[0].gateway, "10.251.7.1");
        assert!(std::path::Path::new(&format!("/sys/class/net/{}", store::bridge_name(&id))).exists());
        assert_eq!(e.inspect_network(&id[..12]).unwrap().id, id);
        let auto = e.create_network(NetworkCreateRequest { name: "auto".into(), ..Default::default() }).await.unwrap().id;
        let sub = e.inspect_network(&auto).unwrap().ipam.config.unwrap()[0].subnet.clone();
        assert_ne!(sub, bridge.ipam.config.as_ref().unwrap()[0].subnet, "a pool of its own");

        let err = |r: Result<NetworkCreateResponse>| r.unwrap_err();
        let cases: Vec<(NetworkCreateRequest, crate::ErrorKind, &str)> = vec![
            (req("10.251.7.0/24", "", ""), crate::ErrorKind::Conflict, "network with name n already exists"),
            (NetworkCreateRequest { name: "bridge".into(), ..Default::default() }, crate::ErrorKind::Forbidden, "bridge is a pre-defined network and cannot be created"),
            (NetworkCreateRequest { name: "x".into(), driver: "weird".into(), ..Default::default() }, crate::ErrorKind::NotFound, "could not find plugin weird in v1 plugin registry: plugin not found"),
            (NetworkCreateRequest { name: "y".into(), ..req("10.251.7.128/25", "", "") }, crate::ErrorKind::Forbidden, "Pool overlaps with other one on this address space"),
        ];
        for (r, kind, msg) in cases {
            let e2 = err(e.create_network(r).await);
            assert_eq!((e2.kind, e2.message.as_str()), (kind, msg));
        }
        let f = |s: &str| e.list_networks(s).unwrap().into_iter().map(|n| n.name).collect::<Vec<_>>();
        assert_eq!(f(r#"{"type":["custom"]}"#), ["n", "auto"]);
        assert_eq!(f(r#"{"name":{"aut":true}}"#).len(), 1);
        assert_eq!(f(r#"{"driver":["null"]}"#), ["none"]);
        assert!(e.list_networks(r#"{"bogus":["x"]}"#).is_err());

        let r = e.remove_network("host").await.unwrap_err();
        assert_eq!((r.kind, r.message.as_str()), (crate::ErrorKind::Forbidden, "host is a pre-defined network and cannot be removed"));
        let r = e.remove_network("nosuch").await.unwrap_err();
        assert_eq!((r.kind, r.message.as_str()), (crate::ErrorKind::NotFound, "network nosuch not found"));
        e.remove_network("n").await.unwrap();
        assert!(!std::path::Path::new(&format!("/sys/class/net/{}", store::bridge_name(&id))).exists());
        assert_eq!(e.prune_networks("").await.unwrap(), ["auto"]);
        assert_eq!(e.list_networks("").unwrap().len(), 3);

        // A restart keeps the predefined networks' IDs and the default bridge's subnet.
        drop(e);
        let e = Engine::open(cfg).await.unwrap();
        assert_eq!(e.inspect_network("bridge").unwrap(), bridge);
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:42:ac:11:00:04"), Some([2, 0x42, 0xac, 0x11, 0, 4]));
        for bad in ["", "02:42:ac:11:00", "02:42:ac:11:00:4", "zz:42:ac:11:00:04"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
