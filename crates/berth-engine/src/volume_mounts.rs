//! Volumes as containers use them: create-time resolution of a container's mounts
//! (`-v`, `--mount`, `--volumes-from`, image `VOLUME`s; anonymous volumes named and
//! made), Docker's copy-up of the image's content into an empty volume, start-time
//! preparation (missing `-v` bind sources, the local driver's `type/device/o` mounts),
//! which containers use a volume, and the `/volumes` operations over
//! [`crate::volumes::VolumeStore`].

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_api::{parse_filters, ContainerConfig, HostConfig, Volume, VolumeCreateBody, VolumesPruneResponse};
use berth_archive::path::clean_abs;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::fsops::{jailed, Jail};
use crate::mounts::{MountSpec, MountType};
use crate::record::Record;
use crate::volumes::{self, VolumeMeta, ANONYMOUS_LABEL};
use crate::Engine;

/// Is `p` a mount point (per /proc/self/mountinfo)?
pub fn is_mount_point(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| unescape_mountinfo(m) == want))
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Splits a `--volumes-from` entry `ctr[:ro|rw]`.
pub fn parse_volumes_from(spec: &str) -> Result<(&str, Option<bool>)> {
    match spec.rsplit_once(':') {
        Some((c, "ro")) => Ok((c, Some(true))),
        Some((c, "rw")) => Ok((c, Some(false))),
        Some((_, m)) => Err(Error::invalid(format!("invalid mode: {m}"))),
        None => Ok((spec, None)),
    }
}

/// The volume names among `specs`.
fn pinned_names(specs: &[MountSpec]) -> Vec<String> {
    specs.iter().filter(|m| m.kind == MountType::Volume && !m.name.is_empty()).map(|m| m.name.clone()).collect()
}

/// The names of the volumes `r` uses.
fn volume_names(r: &Record) -> impl Iterator<Item = String> {
    r.mounts().into_iter().filter(|m| m.kind == MountType::Volume && !m.name.is_empty()).map(|m| m.name)
}

impl Engine {
    pub fn volumes(&self) -> &volumes::VolumeStore {
        &self.inner.volumes
    }

    /// The ids of the containers that use volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = crate::lock(&self.inner.containers)
            .values()
            .filter(|c| volume_names(&c.record()).any(|n| n == name))
            .map(|c| c.id.clone())
            .collect();
        v.sort();
        v
    }

    /// Every volume in use, with how many containers use it.
    fn volume_ref_counts(&self) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for c in crate::lock(&self.inner.containers).values() {
            let names: HashSet<String> = volume_names(&c.record()).collect();
            for n in names {
                *m.entry(n).or_insert(0) += 1;
            }
        }
        m
    }

    /// Resolves a new container's mounts: parses `-v`/`--mount`, adds `--volumes-from`
    /// and the config's `Volumes` (image `VOLUME`s, `-v /path`) as anonymous volumes,
    /// names anonymous volumes and creates missing ones. Returns the mounts and the
    /// volumes made here (to remove again should the create fail).
    pub(crate) async fn resolve_mounts(
        &self,
        hc: &HostConfig,
        cfg: &ContainerConfig,
    ) -> Result<(Vec<MountSpec>, Vec<String>)> {
        let mut specs = crate::mounts::of(hc)?;
        crate::mounts::check_sources(&specs)?;
        let mut taken: HashSet<PathBuf> = specs.iter().map(|m| clean_abs(&m.destination)).collect();
        for tmpfs in hc.tmpfs.iter().flatten().map(|(d, _)| clean_abs(d)) {
            taken.insert(tmpfs);
        }
        for from in hc.volumes_from.iter().flatten() {
            let (name, ro) = parse_volumes_from(from)?;
            let other = self.lookup(name)?.record();
            for mut m in other.mounts() {
                if taken.insert(clean_abs(&m.destination)) {
                    if let Some(ro) = ro {
                        m.read_only = ro;
                        m.mode = if ro { "ro".into() } else { "rw".into() };
                    }
                    specs.push(m);
                }
            }
        }
        for dst in cfg.volumes.iter().flat_map(|v| v.keys()) {
            if !dst.starts_with('/') {
                return Err(Error::invalid(format!("invalid volume specification: '{dst}'")));
            }
            if taken.insert(clean_abs(dst)) {
                specs.push(MountSpec::anonymous(dst));
            }
        }
        let mut made = Vec::new();
        for m in specs.iter_mut().filter(|m| m.kind == MountType::Volume && m.source.is_empty()) {
            let mut labels = m.volume_labels.clone();
            if m.name.is_empty() {
                m.name = volumes::anonymous_name();
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
            }
            let (eng, name, opts) = (self.clone(), m.name.clone(), m.volume_opts.clone());
            let driver = if m.volume_driver.is_empty() { hc.volume_driver.clone() } else { m.volume_driver.clone() };
            let (meta, now) = tokio::task::spawn_blocking(move || eng.volumes().create(&name, &driver, &opts, &labels))
                .await
                .map_err(|e| Error::internal(e.to_string()))??;
            if now {
                made.push(meta.name.clone());
                self.volume_event(&meta.name, "create");
            }
            m.source = self.volumes().data_dir(&meta.name).to_string_lossy().into_owned();
        }
        let names = pinned_names(&specs);
        if let Err(e) = self.volumes().pin(&names) {
            self.forget_volumes(&made);
            return Err(e);
        }
        Ok((specs, made))
    }

    /// Ends the pins [`Engine::resolve_mounts`] took, once the create is recorded or failed.
    pub(crate) fn unpin_mounts(&self, specs: &[MountSpec]) {
        self.volumes().unpin(&pinned_names(specs));
    }

    /// Removes volumes a failed create made.
    pub(crate) fn forget_volumes(&self, names: &[String]) {
        for n in names {
            let _ = self.volumes().remove(n, true, |_| Vec::new());
        }
    }

    /// Docker's copy-up: each volume mount (not `nocopy`) whose volume is empty gets
    /// the image's content at its destination, the directory's owner and mode included.
    /// `dir` is the new container's directory: its (still empty) `fs/upper` tops the
    /// image's layers (a read-only overlay needs two lower dirs), `fs/merged` shows them.
    pub(crate) async fn copy_up(&self, image_id: &str, specs: &[MountSpec], dir: &Path) -> Result<()> {
        // A volume with driver options is mounted first: the copy goes into what
        // the container will see.
        for m in specs.iter().filter(|m| m.kind == MountType::Volume && !m.nocopy) {
            if let Some(meta) = self.volumes().get(&m.name) {
                self.mount_volume(&meta)?;
            }
        }
        let todo: Vec<&MountSpec> = specs
            .iter()
            .filter(|m| m.kind == MountType::Volume && !m.nocopy && m.subpath.is_empty())
            .filter(|m| std::fs::read_dir(&m.source).is_ok_and(|mut d| d.next().is_none()))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let mut lower = vec![dir.join("fs/upper")];
        lower.extend(self.lower_dirs(image_id)?);
        for m in todo {
            copy_one(lower.clone(), dir.join("fs/merged"), m.destination.clone(), PathBuf::from(&m.source)).await?;
        }
        Ok(())
    }

    /// Start-time work for a container's mounts: missing `-v` bind sources are made
    /// (Docker's `-v` creates them, `--mount` refused them at create) and volumes with
    /// the local driver's `type`/`device`/`o` options are mounted on their data dir.
    pub(crate) fn prepare_mounts(&self, rec: &Record) -> Result<()> {
        for m in rec.mounts() {
            match m.kind {
                MountType::Bind if !m.from_mounts && std::fs::symlink_metadata(&m.source).is_err() => {
                    std::fs::create_dir_all(&m.source).map_err(|e| Error::io("mkdir", Path::new(&m.source), e))?;
                }
                MountType::Volume => {
                    let Some(meta) = self.volumes().get(&m.name) else {
                        return Err(Error::not_found(format!("get {}: no such volume", m.name)));
                    };
                    self.mount_volume(&meta)?;
                    if !m.subpath.is_empty() {
                        let p = Path::new(&m.source).join(&m.subpath);
                        if let Err(e) = std::fs::symlink_metadata(&p) {
                            return Err(Error::invalid(format!(
                                "cannot access path {}: {}",
                                p.display(),
                                berth_sys::errno_text(&e)
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The local driver's mount for a volume with `type`/`device`/`o` (once; it stays
    /// until the volume is removed).
    fn mount_volume(&self, meta: &VolumeMeta) -> Result<()> {
        let Some(opts) = meta.options.as_ref().filter(|o| o.contains_key("type")) else { return Ok(()) };
        let data = self.volumes().data_dir(&meta.name);
        if is_mount_point(&data) {
            return Ok(());
        }
        let (flags, mdata) = volumes::mount_flags(opts.get("o").map_or("", String::as_str));
        let fstype = opts.get("type").map_or("", String::as_str);
        let device = opts.get("device").map_or("", String::as_str);
        let is_bind = flags & berth_sys::libc::MS_BIND != 0;
        berth_sys::mount::mount(
            Some(Path::new(device)),
            &data,
            (!is_bind).then_some(fstype),
            flags,
            (!mdata.is_empty()).then_some(mdata.as_str()),
        )
        .map_err(|e| {
            Error::internal(format!(
                "error while mounting volume '{}': failed to mount local volume: mount {device}:{} , flags: {flags:#x}, data: {mdata}: {}",
                data.display(),
                data.display(),
                berth_sys::errno_text(&e)
            ))
        })
    }

    /// Docker's `volume mount` (at start) / `volume unmount` (at exit) events, one per
    /// volume of the container.
    pub(crate) fn volume_mount_events(&self, rec: &Record, action: &str) {
        for m in rec.mounts().iter().filter(|m| m.kind == MountType::Volume) {
            let mut attrs = BTreeMap::new();
            attrs.insert("driver".to_string(), "local".to_string());
            if action == "mount" {
                attrs.insert("container".to_string(), rec.id.clone());
                attrs.insert("destination".to_string(), m.destination.clone());
                attrs.insert("propagation".to_string(), String::new());
                attrs.insert("read/write".to_string(), (!m.read_only).to_string());
            } else {
                attrs.insert("container".to_string(), rec.id.clone());
            }
            self.events().emit("volume", action, &m.name, attrs);
        }
    }

    fn volume_event(&self, name: &str, action: &str) {
        let mut attrs = BTreeMap::new();
        attrs.insert("driver".to_string(), "local".to_string());
        self.events().emit("volume", action, name, attrs);
    }

    // ----- the /volumes API -----

    /// `POST /volumes/create` (idempotent for an existing name, as Docker's).
    /// Without a name the volume is anonymous (named and labelled as such), as Docker's.
    pub async fn create_volume(&self, mut body: VolumeCreateBody) -> Result<Volume> {
        let name = if body.name.is_empty() {
            if matches!(body.driver.as_str(), "" | "local") {
                body.labels.insert(ANONYMOUS_LABEL.into(), String::new());
            }
            volumes::anonymous_name()
        } else {
            body.name.clone()
        };
        let eng = self.clone();
        let (meta, now) = tokio::task::spawn_blocking(move || {
            eng.volumes().create(&name, &body.driver, &body.driver_opts, &body.labels)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        if now {
            self.volume_event(&meta.name, "create");
        }
        Ok(self.volumes().api(&meta))
    }

    /// `GET /volumes/{name}`.
    pub fn inspect_volume(&self, name: &str) -> Result<Volume> {
        self.volumes()
            .get(name)
            .map(|m| self.volumes().api(&m))
            .ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))
    }

    /// `GET /volumes?filters=`.
    pub fn list_volumes(&self, filters: &str) -> Result<Vec<Volume>> {
        let f = parse_filters(filters).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&f, &["dangling", "driver", "label", "label!", "name"]).map_err(Error::invalid)?;
        volumes::check_dangling(&f).map_err(Error::invalid)?;
        let used = self.volume_ref_counts();
        Ok(self
            .volumes()
            .list()
            .iter()
            .filter(|m| volumes::matches(m, &f, used.contains_key(&m.name)))
            .map(|m| self.volumes().api(m))
            .collect())
    }

    /// `DELETE /volumes/{name}?force=`: 409 while a container uses it (force does not
    /// override that, as Docker's; it only makes a missing volume a success).
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let (eng, n) = (self.clone(), name.to_string());
        tokio::task::spawn_blocking(move || eng.volumes().remove(&n, force, |v| eng.volume_users(v)))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        self.volume_event(name, "destroy");
        Ok(())
    }

    /// `POST /volumes/prune`: unused volumes matching the `label` filters; only
    /// anonymous ones unless `all=true` (API ≥ 1.42) or the API is older.
    pub async fn prune_volumes(&self, filters: &str, all_by_default: bool) -> Result<VolumesPruneResponse> {
        let mut f = parse_filters(filters).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&f, &["label", "label!", "all"]).map_err(Error::invalid)?;
        let all = match f.remove("all").unwrap_or_default().first().map(String::as_str) {
            None => all_by_default,
            Some("1" | "true" | "True" | "TRUE") => true,
            Some("0" | "false" | "False" | "FALSE") => false,
            Some(v) => return Err(Error::invalid(format!("invalid filter 'all={v}'"))),
        };
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for m in self.volumes().list() {
            let anonymous = m.labels.as_ref().is_some_and(|l| l.contains_key(ANONYMOUS_LABEL));
            if (!all && !anonymous) || !volumes::matches(&m, &f, false) {
                continue;
            }
            let size = crate::dir_size(&self.volumes().data_dir(&m.name));
            let (eng, n) = (self.clone(), m.name.clone());
            let r = tokio::task::spawn_blocking(move || eng.volumes().remove(&n, false, |v| eng.volume_users(v)))
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
            if r.is_ok() {
                self.volume_event(&m.name, "destroy");
                reclaimed += size;
                deleted.push(m.name);
            }
        }
        Ok(VolumesPruneResponse { volumes_deleted: Some(deleted), space_reclaimed: reclaimed })
    }

    /// `system df`'s volumes: with sizes and how many containers use each.
    pub fn volumes_usage(&self) -> Vec<Volume> {
        let used = self.volume_ref_counts();
        self.volumes()
            .list()
            .iter()
            .map(|m| {
                let mut v = self.volumes().api(m);
                v.usage_data = Some(berth_api::UsageData {
                    size: crate::dir_size(&self.volumes().data_dir(&m.name)) as i64,
                    ref_count: used.get(&m.name).copied().unwrap_or(0),
                });
                v
            })
            .collect()
    }

    /// `rm -v`: the anonymous volumes of a removed container (a volume another
    /// container still uses stays, as Docker's).
    pub(crate) async fn remove_anonymous_volumes(&self, rec: &Record) {
        for m in rec.mounts() {
            if m.kind == MountType::Volume && !m.named && !m.name.is_empty() {
                let _ = self.remove_volume(&m.name, false).await;
            }
        }
    }
}

/// Copies the image's `dst` (seen through a read-only overlay of `lower` on `at`) into
/// the volume directory `vol`: a tar writer in the image's jail, the copy-mode
/// extractor chrooted in the volume, a bounded pipe between them.
async fn copy_one(lower: Vec<PathBuf>, at: PathBuf, dst: String, vol: PathBuf) -> Result<()> {
    let (tx, rx) = mpsc::channel(8);
    let (root_tx, root_rx) = oneshot::channel::<Option<(u32, u32, u32)>>();
    let reader = jailed(Jail::Overlay { lower, upper: None, at, binds: Vec::new() }, move || {
        let host = match berth_sys::fs::secure_join(Path::new("/"), &dst) {
            Ok(h) => h,
            Err(_) => {
                let _ = root_tx.send(None);
                return Ok(());
            }
        };
        let md = match std::fs::symlink_metadata(&host) {
            Ok(md) if md.is_dir() => md,
            _ => {
                let _ = root_tx.send(None);
                return Ok(());
            }
        };
        let _ = root_tx.send(Some((md.uid(), md.gid(), md.mode() & 0o7777)));
        let mut out = berth_archive::TarOut::new(crate::fsops::chan_writer(tx), false);
        out.add_tree(&host, "")
            .and_then(|()| out.finish())
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::internal(format!("copying image content of {dst}: {e}")))
    });
    let reader = tokio::spawn(reader);
    let Ok(Some((uid, gid, mode))) = root_rx.await else {
        return reader.await.map_err(|e| Error::internal(e.to_string()))?;
    };
    let vol2 = vol.clone();
    let writer = jailed(Jail::Chroot(vol2), move || {
        let r = crate::fsops::chan_reader(rx);
        let opts = berth_archive::ExtractOptions { layer: false, no_overwrite_dir_non_dir: false, owner: None };
        berth_archive::extract(r, Path::new("/"), &opts)
            .map(|_| ())
            .map_err(|e| Error::internal(format!("copy-up: {e}")))
    })
    .await;
    reader.await.map_err(|e| Error::internal(e.to_string()))??;
    writer?;
    let chown = nix::unistd::chown(&vol, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)));
    chown.map_err(|e| Error::io("chown", &vol, io::Error::from_raw_os_error(e as i32)))?;
    crate::set_mode(&vol, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_from_entries() {
        let cases: &[(&str, std::result::Result<(&str, Option<bool>), &str>)] = &[
            ("db", Ok(("db", None))),
            ("db:ro", Ok(("db", Some(true)))),
            ("db:rw", Ok(("db", Some(false)))),
            ("db:rx", Err("invalid mode: rx")),
        ];
        for (spec, want) in cases {
            match (parse_volumes_from(spec), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{spec}"),
                (Err(e), Err(w)) => assert_eq!(e.to_string(), *w, "{spec}"),
                (got, want) => panic!("{spec}: {got:?} vs {want:?}"),
            }
        }
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }
}
