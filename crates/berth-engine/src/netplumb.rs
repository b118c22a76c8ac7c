//! The kernel side of a container's networking, driven by the engine: at start a netns
//! file, a veth pair per bridge endpoint, addresses and routes (berth_network's netlink),
//! host ports checked and handed to the shim to hold, and DNAT rules; at exit all of it
//! released. Also what a daemon start reconciles (bridges, stale netns files, the
//! firewall re-rendered from the running containers) and the `--network-cleanup` of a
//! whole daemon instance.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use berth_network::bridge::{self, BridgeSpec, VethSpec};
use berth_network::firewall::{Firewall, FwNetwork, FwPort, FwState, Iptables, NoFirewall};
use berth_network::model::{self, EndpointRecord, NetworkRecord};
use berth_network::netlink::{self, Netlink};
use berth_network::netns;
use berth_network::ports::{self, Bound};
use berth_runtime::spec::{HostPort, NetMode};

use crate::error::{Error, Result};
use crate::record::Record;
use crate::{lock, Engine};

/// The host-wide lock file for subnet choices (every Berth daemon on the host).
pub(crate) const HOST_LOCK: &str = "/run/berth-network.lock";

/// What a start set up, for the run spec and the record.
pub(crate) struct Plumbed {
    pub endpoints: BTreeMap<String, EndpointRecord>,
    pub bound: Vec<Bound>,
    pub network: NetMode,
    pub host_ports: Vec<HostPort>,
}

/// The kernel-facing part of the network state.
pub(crate) struct Kernel {
    host: std::sync::Mutex<Option<Netlink>>,
    pub(crate) firewall: Box<dyn Firewall>,
    /// Published ports of running containers (IPv4 DNAT), by container id.
    fw_ports: std::sync::Mutex<BTreeMap<String, Vec<FwPort>>>,
    /// Serialises firewall renders.
    fw_lock: std::sync::Mutex<()>,
}

impl Kernel {
    pub(crate) fn new(chain: &str, iptables: bool) -> Kernel {
        let firewall: Box<dyn Firewall> = if iptables { Box::new(Iptables::new(chain)) } else { Box::new(NoFirewall) };
        Kernel {
            host: std::sync::Mutex::new(None),
            firewall,
            fw_ports: std::sync::Mutex::new(BTreeMap::new()),
            fw_lock: std::sync::Mutex::new(()),
        }
    }

    /// Runs `f` with the host's netlink socket (opened on first use).
    pub(crate) fn host<T>(&self, f: impl FnOnce(&mut Netlink) -> io::Result<T>) -> io::Result<T> {
        let mut g = lock(&self.host);
        if g.is_none() {
            *g = Some(Netlink::open()?);
        }
        match g.as_mut() {
            Some(nl) => f(nl),
            None => Err(io::Error::other("no netlink socket")),
        }
    }
}

fn bridge_spec(n: &NetworkRecord) -> Option<BridgeSpec> {
    let p = n.ipam.first()?;
    Some(BridgeSpec {
        name: n.bridge.clone(),
        gateway: p.gateway,
        prefix: p.subnet.prefix,
        gateway6: n.ipam6.first().map(|p| (p.gateway, p.prefix)),
        mtu: n.mtu,
    })
}

fn net_err(what: &str, e: io::Error) -> Error {
    Error::internal(format!("{what}: {}", berth_sys::errno_text(&e)))
}

impl Engine {
    pub(crate) fn kernel(&self) -> &Kernel {
        &self.nets().kernel
    }

    pub(crate) fn netns_path(&self, id: &str) -> PathBuf {
        netns::path(&self.config().exec_root, id)
    }

    /// Brings network `n`'s bridge up (idempotent) and returns its index.
    pub(crate) fn ensure_bridge(&self, n: &NetworkRecord) -> Result<u32> {
        let spec = bridge_spec(n).ok_or_else(|| Error::internal(format!("network {} has no IPv4 pool", n.name)))?;
        self.kernel().host(|nl| bridge::ensure_bridge(nl, &spec)).map_err(|e| net_err(&format!("bridge {}", n.bridge), e))
    }

    /// Makes the firewall say what the networks and running containers need.
    pub(crate) fn apply_firewall(&self) -> Result<()> {
        let k = self.kernel();
        let _g = lock(&k.fw_lock);
        let networks = self
            .nets()
            .all()
            .into_iter()
            .filter(|n| n.is_bridge())
            .filter_map(|n| {
                let p = n.ipam.first()?;
                Some(FwNetwork {
                    bridge: n.bridge.clone(),
                    subnet: p.subnet,
                    subnet6: n.ipam6.first().map(|p6| (p6.subnet, p6.prefix)),
                    internal: n.internal,
                    masquerade: n.options.get(model::OPT_MASQUERADE).is_none_or(|v| v != "false"),
                    icc: n.options.get(model::OPT_ICC).is_none_or(|v| v != "false"),
                })
            })
            .collect();
        let ports = lock(&k.fw_ports).values().flatten().cloned().collect();
        k.firewall.apply(&FwState { networks, ports }).map_err(|e| Error::internal(format!("firewall: {e}")))
    }

    /// Sets up a container's network for a start (blocking: call off the runtime).
    pub(crate) fn net_setup(&self, rec: &Record) -> Result<Plumbed> {
        let mode = rec.host_config.network_mode.as_str();
        let mut endpoints = rec.endpoints.clone();
        let simple = |network| Plumbed { endpoints: endpoints.clone(), bound: Vec::new(), network, host_ports: Vec::new() };
        if mode == "host" {
            return Ok(simple(NetMode::Host));
        }
        if mode == "none" {
            return Ok(simple(NetMode::Private));
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let c = self.lookup(other)?;
            let r = c.record();
            if !r.state.status.is_running() {
                return Err(Error::conflict(format!("cannot join network of a non running container: {}", c.id)));
            }
            let file = self.netns_path(&c.id);
            let path = if file.exists() { file } else { PathBuf::from(format!("/proc/{}/ns/net", r.state.pid)) };
            return Ok(simple(NetMode::Join(path)));
        }
        if endpoints.is_empty() {
            // A record from before networks: the default bridge.
            let net = self.nets().find("bridge")?;
            endpoints.insert(net.name.clone(), self.plan_endpoint(rec, &net, None)?);
        }
        let path = self.netns_path(&rec.id);
        let mut ns = netns::create(&path).map_err(|e| net_err("create network namespace", e))?;
        let mut done: Vec<(NetworkRecord, EndpointRecord)> = Vec::new();
        let r = (|| -> Result<Vec<Bound>> {
            // The network of the mode first: it gets eth0 and the default route.
            let primary = if mode == "default" { "bridge" } else { mode };
            let mut names: Vec<String> = endpoints.keys().cloned().collect();
            names.sort_by_key(|n| {
                let is_primary = *n == primary || endpoints.get(n.as_str()).is_some_and(|e| e.network_id == primary);
                !is_primary
            });
            for (i, name) in names.iter().enumerate() {
                let Some(e) = endpoints.get_mut(name) else { continue };
                let net = self.nets().find(&e.network_id).map_err(|_| Error::not_found(format!("network {name} not found")))?;
                if !net.is_bridge() {
                    continue;
                }
                self.attach_endpoint(rec, &net, e)?;
                e.ifname = format!("eth{i}");
                let r = self.plumb_endpoint(&mut ns, &path, &net, e, i == 0);
                done.push((net, e.clone()));
                r?;
            }
            self.publish(rec, &endpoints, names.first().map(String::as_str))
        })();
        match r {
            Ok(bound) => {
                let host_ports = bound.iter().map(|b| HostPort { proto: b.proto.clone(), ip: b.host_ip, port: b.host_port }).collect();
                Ok(Plumbed { endpoints, bound, network: NetMode::Join(path), host_ports })
            }
            Err(e) => {
                for (net, mut ep) in done {
                    self.unplumb_endpoint(&net, &mut ep);
                }
                let _ = netns::remove(&path);
                if lock(&self.kernel().fw_ports).remove(&rec.id).is_some() {
                    let _ = self.apply_firewall();
                }
                Err(e)
            }
        }
    }

    /// The veth pair of endpoint `e` (its address already chosen) into the netns at `path`.
    pub(crate) fn plumb_endpoint(&self, ns: &mut Netlink, path: &Path, net: &NetworkRecord, e: &mut EndpointRecord, default_route: bool) -> Result<()> {
        let bridge_index = match self.kernel().host(|nl| nl.link_index(&net.bridge)) {
            Ok(Some(i)) => i,
            _ => self.ensure_bridge(net)?,
        };
        e.host_ifname = bridge::host_ifname(&self.nets().instance.tag, &e.endpoint_id);
        let mac = crate::networks::parse_mac(&e.mac).ok_or_else(|| Error::invalid(format!("invalid MAC address: {}", e.mac)))?;
        let v = VethSpec {
            bridge_index,
            host_ifname: e.host_ifname.clone(),
            ifname: e.ifname.clone(),
            mac,
            mtu: net.mtu,
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            gateway: if default_route && !net.internal { e.gateway } else { None },
            gateway6: if default_route && !net.internal { e.gateway6 } else { None },
        };
        self.kernel()
            .host(|host| bridge::attach(host, ns, path, &v))
            .map_err(|err| net_err(&format!("failed to set up the endpoint on network {}", net.name), err))?;
        // The bridge (and its gateway address, where the resolver listens) is up now.
        let id = e.container_id.clone();
        self.dns_update(net, Some((&id, Some(&*e))));
        Ok(())
    }

    /// Removes endpoint `e`'s veth and releases its address.
    pub(crate) fn unplumb_endpoint(&self, net: &NetworkRecord, e: &mut EndpointRecord) {
        if !e.host_ifname.is_empty() {
            if let Err(err) = self.kernel().host(|nl| nl.delete_link(&e.host_ifname)) {
                tracing::warn!("removing {}: {err}", e.host_ifname);
            }
        }
        if let Some((ip, _)) = e.ipv4 {
            self.nets().release(&net.id, ip);
        }
        if let Some((ip, _)) = e.ipv6 {
            self.nets().release6(&net.id, ip);
        }
        e.detach();
        self.dns_update(net, Some((&e.container_id, None)));
    }

    /// Reserves the container's published ports (checked here, held by the shim) and
    /// adds their DNAT rules. Docker's texts for ports taken.
    fn publish(&self, rec: &Record, endpoints: &BTreeMap<String, EndpointRecord>, primary: Option<&str>) -> Result<Vec<Bound>> {
        let hc = &rec.host_config;
        let wanted = ports::plan(hc.port_bindings.as_ref(), rec.config.exposed_ports.as_ref(), hc.publish_all_ports)
            .map_err(Error::invalid)?;
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let Some(ep) = primary.and_then(|p| endpoints.get(p)) else { return Ok(Vec::new()) };
        let (Some((cip, _)), Ok(net)) = (ep.ipv4, self.nets().find(&ep.network_id)) else { return Ok(Vec::new()) };
        if net.internal {
            return Ok(Vec::new());
        }
        let prefix = format!("driver failed programming external connectivity on endpoint {} ({})", rec.name, ep.endpoint_id);
        let mut bound: Vec<Bound> = Vec::new();
        let taken_by_others = |proto: &str, ip: IpAddr, port: u16| {
            lock(&self.kernel().fw_ports).iter().any(|(id, v)| {
                id != &rec.id
                    && v.iter().any(|p| {
                        p.proto == proto && p.host_port == port && (p.host_ip.is_none() || ip.is_unspecified() || p.host_ip == Some(ip))
                    })
            })
        };
        for w in &wanted {
            let addrs = ports::host_addrs(w);
            let candidates: Vec<u16> = if w.host_lo == 0 { vec![0] } else { (w.host_lo..=w.host_hi).collect() };
            let mut last_err = None;
            let mut got = None;
            'cand: for cand in candidates {
                for _attempt in 0..16 {
                    let mut port = cand;
                    let mut probes = Vec::new();
                    let mut ok = true;
                    for &a in &addrs {
                        if port != 0 && (taken_by_others(&w.proto, a, port) || bound.iter().any(|b| b.proto == w.proto && b.host_port == port && (b.host_ip == a || a.is_unspecified() || b.host_ip.is_unspecified()))) {
                            last_err = Some(format!("{prefix}: Bind for {}:{port} failed: port is already allocated", fmt_ip(a)));
                            ok = false;
                            break;
                        }
                        match berth_sys::net::reserve_port(&w.proto, a, port) {
                            Ok((fd, p)) => {
                                port = p;
                                probes.push((a, fd));
                            }
                            // No IPv6 on this host: the IPv4 reservation is enough.
                            Err(e) if a.is_ipv6() && w.host_ip.is_none() && matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)) => {}
                            Err(e) => {
                                let fam = if a.is_ipv4() { "4" } else { "6" };
                                last_err = Some(format!(
                                    "{prefix}: listen {}{fam} {}: bind: {}",
                                    w.proto,
                                    std::net::SocketAddr::new(a, port),
                                    berth_sys::errno_text(&e)
                                ));
                                ok = false;
                                break;
                            }
                        }
                    }
                    if ok {
                        got = Some((port, probes.into_iter().map(|(a, _)| a).collect::<Vec<_>>()));
                        break 'cand;
                    }
                    if cand != 0 {
                        break;
                    }
                }
            }
            let Some((port, addrs)) = got else {
                return Err(Error::internal(last_err.unwrap_or_else(|| format!("{prefix}: no free host port"))));
            };
            for a in addrs {
                bound.push(Bound { proto: w.proto.clone(), container_port: w.container_port, host_ip: a, host_port: port });
            }
        }
        let fw = fw_ports(&bound, cip, ep.ipv6.map(|(a, _)| a), &net.bridge);
        lock(&self.kernel().fw_ports).insert(rec.id.clone(), fw);
        self.apply_firewall()?;
        Ok(bound)
    }

    /// Releases what [`Engine::net_setup`] made (blocking): veths, addresses, the netns
    /// file, DNAT rules. Returns the endpoints as a stopped container keeps them.
    pub(crate) fn net_teardown(&self, id: &str, endpoints: &BTreeMap<String, EndpointRecord>) -> BTreeMap<String, EndpointRecord> {
        let mut out = endpoints.clone();
        // The veths are not deleted one by one (15–35 ms each here, an RCU grace
        // period): the container's processes are gone, so unmounting the netns file
        // drops its last reference and the kernel destroys the namespace with its
        // veth peers, and the host ends with them, in the background.
        for e in out.values_mut() {
            if let Some((ip, _)) = e.ipv4 {
                self.nets().release(&e.network_id, ip);
            }
            if let Some((ip, _)) = e.ipv6 {
                self.nets().release6(&e.network_id, ip);
            }
            e.detach();
        }
        let path = self.netns_path(id);
        if let Err(e) = netns::remove(&path) {
            tracing::warn!(container = %id, "removing {}: {e}", path.display());
        }
        if lock(&self.kernel().fw_ports).remove(id).is_some() {
            if let Err(e) = self.apply_firewall() {
                tracing::warn!(container = %id, "{e}");
            }
        }
        out
    }

    /// Connect of a running container: the endpoint plumbed into its netns now.
    pub(crate) fn net_connect_running(&self, rec: &Record, net: &NetworkRecord, e: &mut EndpointRecord) -> Result<()> {
        let path = self.netns_path(&rec.id);
        if !path.exists() {
            return Err(Error::invalid(format!("container {} has no network namespace of its own", rec.id)));
        }
        let used: Vec<&str> = rec.endpoints.values().map(|e| e.ifname.as_str()).collect();
        let n = (0..).find(|i| !used.contains(&format!("eth{i}").as_str())).unwrap_or(0);
        e.ifname = format!("eth{n}");
        let mut ns = netns::open_in(&path).map_err(|err| net_err("open network namespace", err))?;
        let default_route = !rec.endpoints.values().any(|x| x.is_attached() && x.gateway.is_some());
        if let Err(err) = self.plumb_endpoint(&mut ns, &path, net, e, default_route) {
            self.unplumb_endpoint(net, e);
            return Err(err);
        }
        Ok(())
    }

    /// At daemon start: bridges of every network up, netns files of containers that do
    /// not run removed, published ports of running containers back in the firewall.
    pub(crate) fn net_reconcile(&self) {
        if self.nets().opts.ip_forward {
            if let Err(e) = netlink::sysctl("net/ipv4/ip_forward", "1") {
                tracing::warn!("enabling ip_forward: {e}");
            }
        }
        for n in self.nets().all().iter().filter(|n| n.is_bridge()) {
            if let Err(e) = self.ensure_bridge(n) {
                tracing::warn!(network = %n.name, "{e}");
            }
        }
        let running: std::collections::BTreeSet<String> =
            self.all_containers().iter().filter(|c| c.is_running()).map(|c| c.id.clone()).collect();
        for id in netns::list(&self.config().exec_root) {
            if !running.contains(&id) {
                let _ = netns::remove(&self.netns_path(&id));
            }
        }
        for c in self.all_containers() {
            let r = c.record();
            if !r.state.status.is_running() || r.ports.is_empty() {
                continue;
            }
            let Some(ep) = r.endpoints.values().find(|e| e.ifname == "eth0" && e.is_attached()) else { continue };
            let (Some((cip, _)), Ok(net)) = (ep.ipv4, self.nets().find(&ep.network_id)) else { continue };
            let fw = fw_ports(&r.ports, cip, ep.ipv6.map(|(a, _)| a), &net.bridge);
            lock(&self.kernel().fw_ports).insert(r.id.clone(), fw);
        }
        if let Err(e) = self.apply_firewall() {
            tracing::warn!("{e}");
        }
    }
}

/// The DNAT entries of a container's bound host ports: IPv4 host addresses to its IPv4
/// address; IPv6 ones (`::` included) to its IPv6 address when it has one (none: the
/// binding only holds the port, as before IPv6 rules existed).
fn fw_ports(bound: &[Bound], cip: Ipv4Addr, cip6: Option<std::net::Ipv6Addr>, bridge: &str) -> Vec<FwPort> {
    bound
        .iter()
        .filter_map(|b| {
            let container_ip = match b.host_ip {
                IpAddr::V4(_) => IpAddr::V4(cip),
                IpAddr::V6(_) => IpAddr::V6(cip6?),
            };
            Some(FwPort {
                proto: b.proto.clone(),
                host_ip: (!b.host_ip.is_unspecified()).then_some(b.host_ip),
                host_port: b.host_port,
                container_ip,
                container_port: b.container_port,
                bridge: bridge.to_string(),
            })
        })
        .collect()
}

fn fmt_ip(a: IpAddr) -> String {
    match a {
        IpAddr::V6(v) => format!("[{v}]"),
        IpAddr::V4(v) => v.to_string(),
    }
}

/// Removes everything a daemon instance made on the host (`berthd --network-cleanup`,
/// used by the e2e harness): every container's netns file under the exec root, the
/// bridges of its networks, its firewall chains.
pub fn cleanup_instance(data_root: &Path, exec_root: &Path, opts: &berth_network::NetOptions) -> Vec<String> {
    let mut errors = Vec::new();
    let inst = berth_network::Instance::for_exec_root(exec_root, opts);
    for id in netns::list(exec_root) {
        if let Err(e) = netns::remove(&netns::path(exec_root, &id)) {
            errors.push(format!("netns {id}: {e}"));
        }
    }
    let mut bridges = vec![inst.bridge.clone()];
    if let Ok(store) = berth_network::store::Store::open(&data_root.join("network")) {
        bridges.extend(store.load_all().into_iter().filter(|n| n.is_bridge()).map(|n| n.bridge));
    }
    bridges.sort();
    bridges.dedup();
    match Netlink::open() {
        Ok(mut nl) => {
            for b in bridges {
                if let Err(e) = nl.delete_link(&b) {
                    errors.push(format!("bridge {b}: {e}"));
                }
            }
        }
        Err(e) => errors.push(format!("netlink: {e}")),
    }
    if opts.iptables {
        if let Err(e) = Iptables::new(&inst.chain).teardown() {
            errors.push(format!("firewall: {e}"));
        }
    }
    // The embedded DNS resolver of this instance (it outlives berthd by design).
    if let Err(e) = berth_dns::control::stop(&exec_root.join("dns")) {
        errors.push(format!("dns resolver: {e}"));
    }
    let _ = Ipv4Addr::UNSPECIFIED;
    errors
}

/// A real engine, container and shim (root only; needs `cargo build` to have made
/// `target/debug/berth-shim`): connect and disconnect of a running container put an
/// interface into its namespace and take it out again. The image is imported from the
/// host's static busybox, so no registry is needed. No firewall (`iptables: false`).
#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::{ContainerCreateRequest, EndpointIpamConfig, EndpointSettings, Ipam, IpamPool, NetworkCreateRequest};

    struct Cleanup(PathBuf, berth_network::NetOptions);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            cleanup_instance(&self.0.join("root"), &self.0.join("run"), &self.1);
        }
    }

    fn busybox_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_path_with_name("/bin/busybox", "bin/busybox").unwrap();
        b.into_inner().unwrap()
    }

    #[tokio::test]
    async fn connect_and_disconnect_a_running_container() {
        let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/berth-shim");
        if !nix::unistd::Uid::effective().is_root() || !shim.exists() || !Path::new("/bin/busybox").exists() {
            eprintln!("skipped: needs root, /bin/busybox and a built berth-shim");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let opts = berth_network::NetOptions { iptables: false, ..Default::default() };
        let _cleanup = Cleanup(dir.path().to_path_buf(), opts.clone());
        let cfg = crate::EngineConfig {
            data_root: dir.path().join("root"),
            exec_root: dir.path().join("run"),
            shim_bin: shim,
            cgroup_root: "/sys/fs/cgroup".into(),
            cgroup_parent: "berth".into(),
            registry: Default::default(),
            init_path: "/nonexistent".into(),
            runtimes: Default::default(),
            network: opts,
        };
        let e = Engine::open(cfg).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(Ok(bytes::Bytes::from(busybox_tar()))).await.unwrap();
        drop(tx);
        let opts = crate::ImportOptions { src: "-".into(), repo: "nettest".into(), tag: "latest".into(), ..Default::default() };
        e.import_image(opts, rx).await.unwrap();
        let mut req = ContainerCreateRequest::default();
        req.config.image = "nettest".into();
        req.config.cmd = Some(vec!["/bin/busybox".into(), "sleep".into(), "60".into()]);
        let id = e.create(Some("netc"), req).await.unwrap().id;
        e.start("netc").await.unwrap();
        let ins = e.inspect("netc").unwrap();
        let ns = ins.network_settings.clone();
        assert!(!ns.ip_address.is_empty(), "{ns:?}");
        assert!(Path::new(&ns.sandbox_key).exists());

        let pool = IpamPool { subnet: "10.251.9.0/24".into(), ..Default::default() };
        let nreq = NetworkCreateRequest {
            name: "n2".into(),
            ipam: Some(Ipam { config: Some(vec![pool]), ..Default::default() }),
            ..Default::default()
        };
        e.create_network(nreq).await.unwrap();
        let ep = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig { ipv4_address: "10.251.9.50".into(), ..Default::default() }),
            aliases: Some(vec!["db".into()]),
            ..Default::default()
        };
        e.connect_network("n2", "netc", Some(ep.clone())).await.unwrap();
        let again = e.connect_network("n2", "netc", Some(ep)).await.unwrap_err();
        assert_eq!(again.message, "endpoint with name netc already exists in network n2");
        let n2 = &e.inspect("netc").unwrap().network_settings.networks["n2"];
        assert_eq!((n2.ip_address.as_str(), n2.ip_prefix_len), ("10.251.9.50", 24));
        assert_eq!(n2.mac_address, "02:42:0a:fb:09:32");
        assert_eq!(n2.dns_names.as_deref().unwrap_or_default()[..2], ["netc".to_string(), "db".to_string()]);
        let mut inside = netns::open_in(Path::new(&ns.sandbox_key)).unwrap();
        assert!(inside.link_index("eth1").unwrap().is_some());
        let net = e.inspect_network("n2").unwrap();
        assert_eq!(net.containers[&id].ipv4_address, "10.251.9.50/24");
        let busy = e.remove_network("n2").await.unwrap_err();
        assert!(busy.message.ends_with("has active endpoints"), "{busy}");

        e.disconnect_network("n2", "netc", false).await.unwrap();
        assert!(inside.link_index("eth1").unwrap().is_none());
        assert!(!e.inspect("netc").unwrap().network_settings.networks.contains_key("n2"));
        let not = e.disconnect_network("n2", "netc", false).await.unwrap_err();
        assert_eq!(not.message, format!("container {id} is not connected to network n2"));
        // Connect while stopped: recorded, attached at the next start.
        e.kill("netc", None).await.unwrap();
        e.connect_network("n2", "netc", None).await.unwrap();
        assert!(e.inspect("netc").unwrap().network_settings.networks["n2"].ip_address.is_empty());
        e.start("netc").await.unwrap();
        let n2 = &e.inspect("netc").unwrap().network_settings.networks["n2"];
        assert_eq!(n2.ip_address, "10.251.9.2");
        // IPv6: the next address after the gateway, configured inside.
        let v6 = NetworkCreateRequest {
            name: "n6".into(),
            enable_ipv6: Some(true),
            ipam: Some(Ipam {
                config: Some(vec![
                    IpamPool { subnet: "10.251.10.0/24".into(), ..Default::default() },
                    IpamPool { subnet: "fd00:beef:9::/64".into(), ..Default::default() },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        e.create_network(v6).await.unwrap();
        e.connect_network("n6", "netc", None).await.unwrap();
        let n6 = &e.inspect("netc").unwrap().network_settings.networks["n6"];
        assert_eq!((n6.global_ipv6_address.as_str(), n6.global_ipv6_prefix_len, n6.ipv6_gateway.as_str()), ("fd00:beef:9::2", 64, "fd00:beef:9::1"));
        e.disconnect_network("n6", "netc", false).await.unwrap();
        e.remove_network("n6").await.unwrap();
        e.remove("netc", true).await.unwrap();
        e.remove_network("n2").await.unwrap();
    }
}
