//! The build executor: Docker's classic builder loop over a parsed Dockerfile, driving
//! an engine through [`Backend`].
//!
//! Per step: print `Step n/m : <instruction>`; compute the cache key (parent image,
//! the expanded instruction as history records it, the build args in scope, and for
//! COPY/ADD the content hash of every source); on a hit print ` ---> Using cache` and
//! move on (no container, no layer); otherwise RUN runs a real container and commits
//! its changes, COPY/ADD/WORKDIR commit a layer written from a plan (no container
//! at all), and every other instruction commits a config-only image (`empty_layer` in
//! its history). Multi-stage builds run only the stages the target needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use berth_api::{ContainerConfig, HostConfig};
use sha2::{Digest, Sha256};

use crate::cachefrom;
use crate::changes;
use crate::context::{self, Entry, EntryData, Owner, SourceRoot};
use crate::expand::expand;
use crate::ignore::Matcher;
use crate::instructions::{CopySpec, Instruction};
use crate::parser::{self, parse_line, Node};

/// A build failure: Docker's message and, for a failed RUN, its exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    pub message: String,
    pub code: Option<i64>,
}

impl BuildError {
    pub fn new(m: impl Into<String>) -> BuildError {
        BuildError { message: m.into(), code: None }
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

type R<T> = Result<T, BuildError>;

/// An image as the builder needs it.
#[derive(Clone, Debug, Default)]
pub struct ImageInfo {
    /// `sha256:…`; empty for `scratch`.
    pub id: String,
    /// The whole image config (the store's JSON: `config`, `history`, `os`, …).
    pub raw: serde_json::Value,
    /// The image it was built or committed from (Docker's `Parent`).
    pub parent: Option<String>,
}

impl ImageInfo {
    fn config(&self) -> ContainerConfig {
        self.raw
            .get("config")
            .cloned()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default()
    }
}

/// What a new image's top layer is.
#[derive(Debug)]
pub enum Layer<'a> {
    /// None: a config-only image on top of its parent.
    None,
    /// The changes of a (stopped) container.
    Container(&'a str),
    /// A layer tar on disk.
    Tar(&'a Path),
    /// Exactly these layers (diff ids, bottom first), all already in the store: an
    /// image restored from a `--cache-from` source's history.
    Layers(&'a [String]),
}

/// Where build output goes.
pub trait Output {
    /// A `stream` item, printed verbatim by the client.
    fn stream(&mut self, s: &str);
}

/// What the engine does for the builder. Calls block; the daemon runs the executor on
/// a blocking thread.
pub trait Backend {
    /// Resolves a base image, pulling it when missing or when `pull` is set
    /// (progress goes to `out`).
    fn resolve(&mut self, name: &str, pull: bool, out: &mut dyn Output) -> R<ImageInfo>;
    /// An image by id, if it still exists.
    fn image(&mut self, id: &str) -> Option<ImageInfo>;
    /// Creates a container (not started); returns its id.
    fn create(&mut self, config: &ContainerConfig, host: &HostConfig) -> R<String>;
    /// Starts it, relays its output (`stderr` true for stderr chunks) and returns its
    /// exit code.
    fn run(&mut self, id: &str, out: &mut dyn FnMut(bool, &[u8])) -> R<i64>;
    fn remove(&mut self, id: &str) -> R<()>;
    /// A new image from `parent` (none: no parent) and `layer`, with `config` as its
    /// whole image config (its `rootfs` is the store's job). Returns the image id.
    fn commit(&mut self, parent: Option<&str>, layer: Layer<'_>, config: serde_json::Value) -> R<String>;
    /// A file of an image's filesystem (`/etc/passwd`), if it is a regular file.
    fn read_file(&mut self, image: &str, path: &str) -> Option<Vec<u8>>;
    /// Whether `path` is a directory (Some(true)), something else (Some(false)) or
    /// absent (None) in the image.
    fn stat(&mut self, image: &str, path: &str) -> Option<bool>;
    /// Copies `path` of an image (a directory or a file) to `dest` on the host.
    fn export_path(&mut self, image: &str, path: &str, dest: &Path) -> R<()>;
    /// Downloads `url` to `dest`.
    fn fetch(&mut self, url: &str, dest: &Path) -> R<()>;
    fn cache_get(&mut self, key: &str) -> Option<String>;
    fn cache_put(&mut self, key: &str, image: &str);
    fn tag(&mut self, image: &str, reference: &str) -> R<()>;
    /// `Created` time stamp (RFC 3339) for new images.
    fn now(&mut self) -> String;
}

/// Query parameters of `POST /build` that the executor uses.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, Option<String>>,
    pub no_cache: bool,
    pub pull: bool,
    pub target: String,
    pub labels: BTreeMap<String, String>,
    pub rm: bool,
    pub force_rm: bool,
    pub cache_from: Vec<String>,
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    pub shm_size: i64,
    pub memory: i64,
    pub memswap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub platform: String,
}

/// Build args Docker allows without an ARG (and keeps out of history).
pub const BUILTIN_ARGS: &[&str] = &[
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
    "no_proxy", "ALL_PROXY", "all_proxy",
];

struct Stage {
    name: Option<String>,
    from: Node,
    nodes: Vec<Node>,
}

/// The state of the stage being built.
struct State {
    image: ImageInfo,
    config: ContainerConfig,
    cmd_set: bool,
    /// ARGs declared in this stage, with their values (build arg or default).
    args: Vec<(String, Option<String>)>,
    author: Option<String>,
}

impl State {
    fn vars(&self, meta: &[(String, Option<String>)]) -> Vec<String> {
        let _ = meta;
        let mut v: Vec<String> = Vec::new();
        for (k, val) in &self.args {
            if let Some(val) = val {
                v.push(format!("{k}={val}"));
            }
        }
        // The config's env wins over build args (pushed last, looked up last-first).
        v.extend(self.config.env.clone().unwrap_or_default());
        v
    }
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Go's `%q` of a string slice: `["cat" "/greeting"]`.
fn go_q(v: &[String]) -> String {
    let parts: Vec<String> = v.iter().map(|s| serde_json::to_string(s).unwrap_or_default()).collect();
    format!("[{}]", parts.join(" "))
}

/// Runs a build: `dockerfile` (text) over the context at `ctx` (already filtered
/// by the daemon? no: the `.dockerignore` applies here), with `scratch` as a private
/// temp dir. Returns the final image id.
pub struct Executor<'a> {
    pub backend: &'a mut dyn Backend,
    pub out: &'a mut dyn Output,
    pub opts: BuildOptions,
    pub context: PathBuf,
    pub scratch: PathBuf,
    ignore: Matcher,
    escape: char,
    step: usize,
    total: usize,
    used_args: HashSet<String>,
    stage_images: HashMap<String, ImageInfo>,
    cache_from: Option<HashSet<String>>,
    /// `--cache-from` images, matched by history when no local entry serves a step.
    sources: Vec<ImageInfo>,
    containers: Vec<String>,
    tmp_seq: usize,
    /// The container of the step being committed (see `step_container`).
    step_ctr: Option<String>,
}

impl<'a> Executor<'a> {
    pub fn new(
        backend: &'a mut dyn Backend,
        out: &'a mut dyn Output,
        opts: BuildOptions,
        context: PathBuf,
        scratch: PathBuf,
    ) -> Executor<'a> {
        Executor {
            backend,
            out,
            opts,
            context,
            scratch,
            ignore: Matcher::default(),
            escape: '\\',
            step: 0,
            total: 0,
            used_args: HashSet::new(),
            stage_images: HashMap::new(),
            cache_from: None,
            sources: Vec::new(),
            containers: Vec::new(),
            tmp_seq: 0,
            step_ctr: None,
        }
    }

    fn say(&mut self, s: &str) {
        self.out.stream(s);
    }

    /// Builds and tags; returns the image id.
    pub fn build(&mut self, dockerfile: &str, dockerignore: Option<&str>) -> R<String> {
        if let Some(text) = dockerignore {
            self.ignore = Matcher::new(text).map_err(BuildError::new)?;
        }
        let df = parser::parse(dockerfile).map_err(|e| BuildError::new(e.to_string()))?;
        if df.nodes.is_empty() {
            return Err(BuildError::new("the Dockerfile (Dockerfile) cannot be empty"));
        }
        for w in &df.warnings {
            self.say(&format!("{w}\n"));
        }
        self.escape = df.escape;
        // Meta ARGs, then stages.
        let mut meta: Vec<(String, Option<String>)> = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for node in df.nodes {
            if node.cmd == "from" {
                let name = match node.args.as_slice() {
                    [_, a, n] if a.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
                    _ => None,
                };
                stages.push(Stage { name, from: node, nodes: Vec::new() });
            } else if let Some(s) = stages.last_mut() {
                s.nodes.push(node);
            } else if node.cmd == "arg" {
                let inst = Instruction::from_node(&node, &Vec::<String>::new(), self.escape).map_err(BuildError::new)?;
                if let Instruction::Arg(kvs) = inst {
                    for (k, v) in kvs {
                        let val = match self.opts.build_args.get(&k) {
                            Some(Some(b)) => Some(b.clone()),
                            _ => v,
                        };
                        self.used_args.insert(k.clone());
                        meta.push((k, val));
                    }
                }
            } else {
                return Err(BuildError::new("no build stage in current context"));
            }
        }
        if stages.is_empty() {
            return Err(BuildError::new("no build stage in current context"));
        }
        // The target and the stages it needs.
        let target = if self.opts.target.is_empty() {
            stages.len() - 1
        } else {
            let t = self.opts.target.to_ascii_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
                .ok_or_else(|| BuildError::new(format!("failed to reach build target {} in Dockerfile", self.opts.target)))?
        };
        stages.truncate(target + 1);
        if !self.opts.labels.is_empty() {
            // Docker adds `--label`s as a last LABEL instruction.
            let mut line = String::from("LABEL");
            for (k, v) in &self.opts.labels {
                line.push_str(&format!(" {}={}", serde_json::to_string(k).unwrap_or_default(), serde_json::to_string(v).unwrap_or_default()));
            }
            let n = parse_line(&line, 0, '\\').map_err(|e| BuildError::new(e.to_string()))?;
            if let Some(s) = stages.last_mut() {
                s.nodes.push(n);
            }
        }
        let needed = needed_stages(&stages, target);
        self.total = stages.iter().enumerate().filter(|(i, _)| needed.contains(i)).map(|(_, s)| s.nodes.len() + 1).sum();
        if !self.opts.cache_from.is_empty() {
            let mut set = HashSet::new();
            for c in self.opts.cache_from.clone() {
                let Ok(img) = self.backend.resolve(&c, false, &mut NullOut) else { continue };
                let mut id = img.id.clone();
                self.sources.push(img);
                let mut guard = 0;
                while !id.is_empty() && guard < 10_000 {
                    set.insert(id.clone());
                    id = self
                        .backend
                        .image(&id)
                        .and_then(|i| i.parent)
                        .unwrap_or_default();
                    guard += 1;
                }
            }
            self.cache_from = Some(set);
        }
        let result = self.run_stages(&stages, &needed, &meta);
        self.cleanup(result.is_ok());
        let image = result?;
        let unused: Vec<String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !BUILTIN_ARGS.contains(&k.as_str()))
            .cloned()
            .collect();
        if !unused.is_empty() {
            self.say(&format!("[Warning] One or more build-args [{}] were not consumed\n", unused.join(" ")));
        }
        Ok(image)
    }

    /// Removes intermediate containers per `rm`/`forcerm` (a failed RUN's container
    /// stays unless `forcerm`).
    fn cleanup(&mut self, ok: bool) {
        let ids = std::mem::take(&mut self.containers);
        if !(self.opts.force_rm || (self.opts.rm && ok)) {
            return;
        }
        for id in ids {
            if self.backend.remove(&id).is_ok() {
                self.say(&format!("Removing intermediate container {}\n", short(&id)));
            }
        }
    }

    fn run_stages(&mut self, stages: &[Stage], needed: &HashSet<usize>, meta: &[(String, Option<String>)]) -> R<String> {
        let mut last = String::new();
        for (i, stage) in stages.iter().enumerate() {
            if !needed.contains(&i) {
                continue;
            }
            let img = self.run_stage(stage, meta)?;
            if let Some(n) = &stage.name {
                self.stage_images.insert(n.clone(), img.clone());
            }
            self.stage_images.insert(i.to_string(), img.clone());
            last = img.id;
        }
        if last.is_empty() {
            return Err(BuildError::new("No image was generated. Is your Dockerfile empty?"));
        }
        Ok(last)
    }

    fn step_line(&mut self, original: &str) {
        self.step += 1;
        let s = format!("Step {}/{} : {}", self.step, self.total, original);
        self.say(&s);
        self.say("\n");
    }

    fn run_stage(&mut self, stage: &Stage, meta: &[(String, Option<String>)]) -> R<ImageInfo> {
        self.step_line(&stage.from.original);
        let meta_env: Vec<String> = meta.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
        let inst = Instruction::from_node(&stage.from, &meta_env, self.escape).map_err(BuildError::new)?;
        let Instruction::From { image, .. } = inst else {
            return Err(BuildError::new("FROM requires either one or three arguments"));
        };
        let base = if let Some(img) = self.stage_images.get(&image.to_ascii_lowercase()) {
            img.clone()
        } else if image.eq_ignore_ascii_case("scratch") {
            ImageInfo::default()
        } else {
            let pull = self.opts.pull;
            let mut out = OutRef(&mut *self.out);
            self.backend.resolve(&image, pull, &mut out)?
        };
        if base.id.is_empty() {
            self.say(" ---> \n");
        } else {
            self.say(&format!(" ---> {}\n", short(&base.id)));
        }
        let mut config = base.config();
        let triggers = config.on_build.take().unwrap_or_default();
        let mut st = State { image: base, config, cmd_set: false, args: Vec::new(), author: None };
        if !triggers.is_empty() {
            self.say(&format!("# Executing {} build trigger{}\n", triggers.len(), if triggers.len() == 1 { "" } else { "s" }));
            for t in &triggers {
                let node = parse_line(t, 0, '\\').map_err(|e| BuildError::new(e.to_string()))?;
                let upper = node.cmd.to_ascii_uppercase();
                if matches!(upper.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(BuildError::new(format!("{upper} isn't allowed as an ONBUILD trigger")));
                }
                self.dispatch(&mut st, &node, meta, true)?;
            }
        }
        for node in &stage.nodes {
            self.step_line(&node.original);
            self.dispatch(&mut st, node, meta, false)?;
        }
        Ok(st.image)
    }

    fn cache_key(&self, st: &State, created_by: &str, extra: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"berth-build-cache-v1\0");
        h.update(st.image.id.as_bytes());
        h.update([0]);
        h.update(created_by.as_bytes());
        h.update([0]);
        for (k, v) in &st.args {
            h.update(format!("{k}={}\0", v.clone().unwrap_or_default()).as_bytes());
        }
        h.update([0]);
        h.update(extra.as_bytes());
        hex::encode(h.finalize())
    }

    /// A cached image for `key`, if allowed and still present; else, with
    /// `--cache-from`, a step restored from a source image's history.
    fn probe(&mut self, st: &State, key: &str, created_by: &str) -> R<Option<ImageInfo>> {
        if self.opts.no_cache {
            return Ok(None);
        }
        if let Some(id) = self.backend.cache_get(key) {
            let allowed = self.cache_from.as_ref().is_none_or(|set| set.contains(&id));
            if allowed {
                if let Some(img) = self.backend.image(&id) {
                    return Ok(Some(img));
                }
            }
        }
        self.probe_sources(st, key, created_by)
    }

    /// Docker's `ImageCache.GetCache` for cache-from images: the first source that
    /// has the current image as a prefix and this instruction next serves the step;
    /// an intermediate step becomes a new image (the source's history entry and layer
    /// on top of the current image), the last one is the source itself. After a
    /// match only that source is considered (as Docker does).
    fn probe_sources(&mut self, st: &State, key: &str, created_by: &str) -> R<Option<ImageInfo>> {
        let parent = if st.image.id.is_empty() { serde_json::Value::Null } else { st.image.raw.clone() };
        let found = self
            .sources
            .iter()
            .find_map(|s| cachefrom::match_step(&parent, &s.raw, created_by).map(|m| (s.clone(), m)));
        let Some((source, m)) = found else { return Ok(None) };
        self.sources = vec![source.clone()];
        if m.last {
            self.backend.cache_put(key, &source.id);
            return Ok(Some(source));
        }
        let mut layers: Vec<String> = st
            .image
            .raw
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default();
        layers.extend(m.layer.clone());
        let ccfg = container_cfg(st, created_by);
        let mut config = self.image_config(st, created_by, m.layer.is_none(), &ccfg);
        let mut history = st.image.raw.get("history").and_then(|h| h.as_array().cloned()).unwrap_or_default();
        history.push(m.entry.clone());
        if let Some(obj) = config.as_object_mut() {
            if let Some(c) = m.entry.get("created") {
                obj.insert("created".into(), c.clone());
            }
            obj.insert("history".into(), serde_json::Value::Array(history));
        }
        let parent_id = (!st.image.id.is_empty()).then(|| st.image.id.clone());
        let id = self.backend.commit(parent_id.as_deref(), Layer::Layers(&layers), config)?;
        self.backend.cache_put(key, &id);
        if let Some(set) = &mut self.cache_from {
            set.insert(id.clone());
        }
        Ok(self.backend.image(&id))
    }

    fn hit(&mut self, st: &mut State, img: ImageInfo) {
        self.say(" ---> Using cache\n");
        self.say(&format!(" ---> {}\n", short(&img.id)));
        // The cached image's config is what this step produced.
        let on_build_cleared = img.config();
        st.config = on_build_cleared;
        st.image = img;
    }

    /// The image config of a new step: the parent's, with the stage's config and one
    /// more history entry.
    fn image_config(&mut self, st: &State, created_by: &str, empty_layer: bool, container_cfg: &ContainerConfig) -> serde_json::Value {
        let now = self.backend.now();
        let mut v = match &st.image.raw {
            serde_json::Value::Object(m) => serde_json::Value::Object(m.clone()),
            _ => serde_json::json!({ "architecture": "amd64", "os": "linux" }),
        };
        let mut history = v.get("history").and_then(|h| h.as_array().cloned()).unwrap_or_default();
        let mut entry = serde_json::json!({ "created": now, "created_by": created_by });
        if let Some(a) = &st.author {
            entry["author"] = a.clone().into();
        }
        if empty_layer {
            entry["empty_layer"] = true.into();
        }
        history.push(entry);
        let mut cfg = st.config.clone();
        cfg.image = st.image.id.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("id");
            m.remove("parent");
            m.remove("comment");
            m.insert("config".into(), serde_json::to_value(&cfg).unwrap_or_default());
            m.insert("container_config".into(), serde_json::to_value(container_cfg).unwrap_or_default());
            m.insert("created".into(), now.into());
            m.insert("docker_version".into(), concat!("berth-", env!("CARGO_PKG_VERSION")).into());
            m.insert("history".into(), serde_json::Value::Array(history));
            if let Some(a) = &st.author {
                m.insert("author".into(), a.clone().into());
            }
            m.entry("os").or_insert_with(|| "linux".into());
            m.entry("architecture").or_insert_with(|| "amd64".into());
        }
        v
    }

    fn commit(&mut self, st: &mut State, key: &str, created_by: &str, layer: Layer<'_>, container_cfg: &ContainerConfig) -> R<()> {
        let empty = matches!(layer, Layer::None);
        let config = self.image_config(st, created_by, empty, container_cfg);
        let parent = (!st.image.id.is_empty()).then(|| st.image.id.clone());
        let id = self.backend.commit(parent.as_deref(), layer, config)?;
        self.backend.cache_put(key, &id);
        self.finish_step_container();
        let img = self.backend.image(&id).ok_or_else(|| BuildError::new(format!("No such image: {id}")))?;
        self.say(&format!(" ---> {}\n", short(&id)));
        st.config = img.config();
        st.image = img;
        Ok(())
    }

    fn shell(st: &State) -> Vec<String> {
        st.config.shell.clone().filter(|s| !s.is_empty()).unwrap_or_else(changes::default_shell)
    }

    /// Build args in scope for RUN: declared in the stage (and not overridden by the
    /// config's env) plus the proxy builtins given on the command line.
    fn run_args(&self, st: &State) -> Vec<String> {
        let env = st.config.env.clone().unwrap_or_default();
        let env_keys: HashSet<&str> = env.iter().map(|e| e.split_once('=').map_or(e.as_str(), |x| x.0)).collect();
        let mut out: Vec<String> = Vec::new();
        for (k, v) in &st.args {
            if let Some(v) = v {
                if !env_keys.contains(k.as_str()) {
                    out.push(format!("{k}={v}"));
                }
            }
        }
        for b in BUILTIN_ARGS {
            if let Some(Some(v)) = self.opts.build_args.get(*b) {
                if !st.args.iter().any(|(k, _)| k == b) {
                    out.push(format!("{b}={v}"));
                }
            }
        }
        out
    }

    fn dispatch(&mut self, st: &mut State, node: &Node, meta: &[(String, Option<String>)], trigger: bool) -> R<()> {
        let vars = st.vars(meta);
        let inst = Instruction::from_node(node, &vars, self.escape).map_err(BuildError::new)?;
        let _ = trigger;
        match inst {
            Instruction::From { .. } => Err(BuildError::new("FROM isn't allowed here")),
            Instruction::Run { cmd, shell, network, heredocs } => self.run(st, cmd, shell, network, &heredocs, &vars),
            Instruction::Copy(spec) => self.copy(st, spec, &vars),
            Instruction::Workdir(w) => {
                st.config.working_dir = changes::join_workdir(&st.config.working_dir, &w);
                let wd = st.config.working_dir.clone();
                let created_by = nop(st, &format!("WORKDIR {wd}"));
                let key = self.cache_key(st, &created_by, "");
                if let Some(img) = self.probe(st, &key, &created_by)? {
                    self.hit(st, img);
                    return Ok(());
                }
                // Create what is missing (Docker's ContainerCreateWorkdir).
                let mut plan = Vec::new();
                if !st.image.id.is_empty() || wd != "/" {
                    missing_dirs(self.backend, &st.image.id, &wd, Owner::default(), &mut plan, true);
                }
                let ccfg = container_cfg(st, &created_by);
                self.step_container(st, &ccfg)?;
                if plan.is_empty() {
                    self.commit(st, &key, &created_by, Layer::None, &ccfg)
                } else {
                    let tar = self.write_plan(&plan)?;
                    let r = self.commit(st, &key, &created_by, Layer::Tar(&tar), &ccfg);
                    let _ = std::fs::remove_file(&tar);
                    r
                }
            }
            Instruction::Arg(kvs) => {
                let mut text = String::from("ARG");
                for (k, default) in kvs {
                    self.used_args.insert(k.clone());
                    let meta_v = meta.iter().find(|(m, _)| *m == k).and_then(|(_, v)| v.clone());
                    let val = match self.opts.build_args.get(&k) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => default.clone().or(meta_v),
                    };
                    match &default {
                        Some(d) => text.push_str(&format!(" {k}={d}")),
                        None => text.push_str(&format!(" {k}")),
                    }
                    st.args.retain(|(a, _)| *a != k);
                    st.args.push((k, val));
                }
                self.config_step(st, &text, |_| Ok(()))
            }
            Instruction::Maintainer(m) => {
                st.author = Some(m.clone());
                self.config_step(st, &format!("MAINTAINER {m}"), |_| Ok(()))
            }
            other => {
                let text = nop_text(&other, st);
                let mut cmd_set = st.cmd_set;
                let r = self.config_step(st, &text, |cfg| changes::apply(cfg, &other, &mut cmd_set));
                st.cmd_set = cmd_set;
                r
            }
        }
    }

    /// Docker's classic builder makes a container for every step it commits from one
    /// (config-only steps and WORKDIR, not COPY/ADD): ` ---> Running in <id>`, then
    /// `Removing intermediate container <id>` after the commit. The container is
    /// created (never started) from the parent image with the step's config; the
    /// image is committed from the config alone, which is what committing the
    /// untouched container would give. Not on `scratch` (no image to create it from).
    fn step_container(&mut self, st: &State, ccfg: &ContainerConfig) -> R<()> {
        if st.image.id.is_empty() {
            return Ok(());
        }
        let mut host = HostConfig::default();
        host.log_config.kind = "json-file".into();
        let id = self.backend.create(ccfg, &host)?;
        self.containers.push(id.clone());
        self.step_ctr = Some(id.clone());
        self.say(&format!(" ---> Running in {}\n", short(&id)));
        Ok(())
    }

    /// Removes the step's container (with `rm`), in Docker's order: before the new
    /// image's id is shown.
    fn finish_step_container(&mut self) {
        let Some(id) = self.step_ctr.take() else { return };
        if self.opts.rm && self.backend.remove(&id).is_ok() {
            self.containers.retain(|c| *c != id);
            self.say(&format!("Removing intermediate container {}\n", short(&id)));
        }
    }

    /// A config-only step: apply `f`, then commit (or take the cache).
    fn config_step(&mut self, st: &mut State, text: &str, f: impl FnOnce(&mut ContainerConfig) -> Result<(), String>) -> R<()> {
        f(&mut st.config).map_err(BuildError::new)?;
        let created_by = nop(st, text);
        let key = self.cache_key(st, &created_by, &serde_json::to_string(&st.config).unwrap_or_default());
        if let Some(img) = self.probe(st, &key, &created_by)? {
            self.hit(st, img);
            return Ok(());
        }
        let ccfg = container_cfg(st, &created_by);
        self.step_container(st, &ccfg)?;
        self.commit(st, &key, &created_by, Layer::None, &ccfg)
    }

    fn run(&mut self, st: &mut State, cmd: Vec<String>, shell: bool, network: Option<String>, heredocs: &[parser::Heredoc], vars: &[String]) -> R<()> {
        let mut argv = if shell {
            let mut line = cmd.join(" ");
            // A heredoc RUN: the shell reads the body from the heredoc itself, which the
            // shell handles natively (`<<EOF` stays in the script); a bare `RUN <<EOF`
            // runs the body as the script.
            if !heredocs.is_empty() {
                let bare = line.trim().starts_with("<<") && heredocs.len() == 1;
                if bare {
                    line = heredocs[0].content.clone();
                } else {
                    for h in heredocs {
                        line.push('\n');
                        line.push_str(&h.content);
                        line.push_str(&h.name);
                    }
                }
            }
            let mut a = Self::shell(st);
            a.push(line);
            a
        } else {
            cmd.clone()
        };
        if argv.is_empty() {
            argv = Self::shell(st);
        }
        let _ = vars;
        let args = self.run_args(st);
        let mut history_args: Vec<String> = args
            .iter()
            .filter(|a| {
                let k = a.split_once('=').map_or(a.as_str(), |x| x.0);
                !BUILTIN_ARGS.contains(&k) || st.args.iter().any(|(n, _)| n == k)
            })
            .cloned()
            .collect();
        history_args.sort();
        let created_by = if history_args.is_empty() {
            argv.join(" ")
        } else {
            format!("|{} {} {}", history_args.len(), history_args.join(" "), argv.join(" "))
        };
        let key = self.cache_key(st, &created_by, "");
        if let Some(img) = self.probe(st, &key, &created_by)? {
            self.hit(st, img);
            return Ok(());
        }
        let mut run_cfg = st.config.clone();
        run_cfg.image = st.image.id.clone();
        run_cfg.cmd = Some(argv.clone());
        run_cfg.entrypoint = Some(Vec::new());
        run_cfg.healthcheck = None;
        run_cfg.args_escaped = None;
        run_cfg.on_build = None;
        let mut env = run_cfg.env.take().unwrap_or_default();
        env.extend(args);
        run_cfg.env = Some(env);
        run_cfg.attach_stdout = true;
        run_cfg.attach_stderr = true;
        let mut host = HostConfig {
            network_mode: network.unwrap_or_else(|| self.opts.network_mode.clone()),
            shm_size: self.opts.shm_size,
            memory: self.opts.memory,
            cpu_shares: self.opts.cpu_shares,
            cpu_period: self.opts.cpu_period,
            cpu_quota: self.opts.cpu_quota,
            cpuset_cpus: self.opts.cpuset_cpus.clone(),
            cpuset_mems: self.opts.cpuset_mems.clone(),
            ..Default::default()
        };
        if host.network_mode.is_empty() || host.network_mode == "default" {
            host.network_mode = String::new();
        }
        if !self.opts.extra_hosts.is_empty() {
            host.extra_hosts = Some(self.opts.extra_hosts.clone());
        }
        if self.opts.memswap != 0 {
            host.memory_swap = self.opts.memswap;
        }
        host.log_config.kind = "json-file".into();
        let id = self.backend.create(&run_cfg, &host)?;
        self.containers.push(id.clone());
        self.say(&format!(" ---> Running in {}\n", short(&id)));
        let code = {
            let out = &mut *self.out;
            let mut relay = |stderr: bool, data: &[u8]| {
                let s = String::from_utf8_lossy(data);
                if stderr {
                    out.stream(&format!("\u{1b}[91m{s}\u{1b}[0m"));
                } else {
                    out.stream(&s);
                }
            };
            self.backend.run(&id, &mut relay)?
        };
        if code != 0 {
            return Err(BuildError {
                message: format!("The command '{}' returned a non-zero code: {code}", argv.join(" ")),
                code: Some(code),
            });
        }
        let mut ccfg = st.config.clone();
        ccfg.cmd = Some(vec![created_by.clone()]);
        ccfg.image = st.image.id.clone();
        let config = self.image_config(st, &created_by, false, &ccfg);
        let new_id = self.backend.commit(Some(&st.image.id.clone()), Layer::Container(&id), config)?;
        self.backend.cache_put(&key, &new_id);
        // Docker's order: the container goes, then the new image is shown.
        if self.opts.rm && self.backend.remove(&id).is_ok() {
            self.containers.retain(|c| *c != id);
            self.say(&format!("Removing intermediate container {}\n", short(&id)));
        }
        let img = self.backend.image(&new_id).ok_or_else(|| BuildError::new(format!("No such image: {new_id}")))?;
        self.say(&format!(" ---> {}\n", short(&new_id)));
        st.config = img.config();
        st.image = img;
        Ok(())
    }

    /// A new path in the scratch directory (made on first use: most cached steps need
    /// none).
    fn tmp_path(&mut self, what: &str) -> PathBuf {
        if self.tmp_seq == 0 {
            let _ = std::fs::create_dir_all(&self.scratch);
        }
        self.tmp_seq += 1;
        self.scratch.join(format!("{what}-{}", self.tmp_seq))
    }

    fn write_plan(&mut self, plan: &[Entry]) -> R<PathBuf> {
        let path = self.tmp_path("layer.tar");
        let f = std::fs::File::create(&path).map_err(|e| BuildError::new(format!("creating the layer: {e}")))?;
        context::write_tar(plan, std::io::BufWriter::new(f)).map_err(|e| BuildError::new(format!("writing the layer: {e}")))?;
        Ok(path)
    }

    fn resolve_owner(&mut self, st: &State, chown: Option<&str>, chmod: Option<&str>) -> R<Owner> {
        let chmod = match chmod {
            Some(m) if !m.is_empty() => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| BuildError::new(format!("invalid chmod parameter: {m}")))?,
            ),
            _ => None,
        };
        let Some(chown) = chown.filter(|c| !c.is_empty()) else {
            return Ok(Owner { uid: 0, gid: 0, chmod });
        };
        let (u, g) = match chown.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (chown, None),
        };
        let lookup = |file: &str, name: &str, backend: &mut dyn Backend| -> Option<(u32, u32)> {
            let data = backend.read_file(&st.image.id, file)?;
            String::from_utf8_lossy(&data).lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok())).and_then(|(a, b)| Some((a?, b.unwrap_or(0))))
            })
        };
        let (uid, ugid) = match u.parse::<u32>() {
            Ok(n) => (n, n),
            Err(_) => lookup("/etc/passwd", u, self.backend).ok_or_else(|| {
                BuildError::new(format!("unable to convert uid/gid chown string to host mapping: can't find uid for user {u}: no such user: {u}"))
            })?,
        };
        let gid = match g {
            None => if u.parse::<u32>().is_ok() { uid } else { ugid },
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => lookup("/etc/group", g, self.backend).map(|(gid, _)| gid).ok_or_else(|| {
                    BuildError::new(format!("unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}"))
                })?,
            },
        };
        Ok(Owner { uid, gid, chmod })
    }

    fn copy(&mut self, st: &mut State, spec: CopySpec, vars: &[String]) -> R<()> {
        let what = if spec.add { "ADD" } else { "COPY" };
        let fail = |m: String| BuildError::new(format!("{what} failed: {m}"));
        let own = self.resolve_owner(st, spec.chown.as_deref(), spec.chmod.as_deref())?;
        // The destination, relative to WORKDIR.
        let mut dest = spec.dest.clone();
        let dest_dir_syntax = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
        if !dest.starts_with('/') {
            let wd = if st.config.working_dir.is_empty() { "/".to_string() } else { st.config.working_dir.clone() };
            dest = format!("{}/{dest}", wd.trim_end_matches('/'));
        }
        let dest = context::clean_abs(&dest);
        // Source roots.
        let root = match &spec.from {
            Some(from) => {
                let from_l = from.to_ascii_lowercase();
                let img = match self.stage_images.get(&from_l) {
                    Some(i) => i.clone(),
                    None => {
                        let pull = self.opts.pull;
                        let mut out = OutRef(&mut *self.out);
                        self.backend.resolve(from, pull, &mut out)?
                    }
                };
                let dir = self.tmp_path("from");
                std::fs::create_dir_all(&dir).map_err(|e| BuildError::new(e.to_string()))?;
                // Export the non-glob prefix of every source.
                for s in &spec.sources {
                    let rel = context::clean_rel(s);
                    let prefix: Vec<&str> = rel.split('/').take_while(|e| !e.contains(['*', '?', '['])).collect();
                    let p = format!("/{}", prefix.join("/"));
                    self.backend.export_path(&img.id, &p, &dir.join(prefix.join("/")))?;
                }
                SourceRoot { root: dir, ignore: Matcher::default() }
            }
            None => SourceRoot { root: self.context.clone(), ignore: self.ignore.clone() },
        };
        // Resolve every source.
        let mut items: Vec<(String, Option<PathBuf>, Option<Vec<u8>>)> = Vec::new();
        for s in &spec.sources {
            if let Some(h) = spec.heredocs.iter().find(|h| s.starts_with("<<") && s.trim_matches(['<', '-', '"', '\'']) == h.name) {
                let body = if h.quoted { h.content.clone() } else { expand_heredoc(&h.content, vars, self.escape) };
                items.push((h.name.clone(), None, Some(body.into_bytes())));
                continue;
            }
            if spec.add && (s.starts_with("http://") || s.starts_with("https://")) {
                let tmp = self.tmp_path("url");
                self.backend.fetch(s, &tmp)?;
                let name = s.trim_end_matches('/').rsplit('/').next().unwrap_or("download").to_string();
                let name = name.split(['?', '#']).next().unwrap_or("download").to_string();
                items.push((name, Some(tmp), None));
                continue;
            }
            for rel in root.resolve(s).map_err(fail)? {
                items.push((rel, None, None));
            }
        }
        let many = items.len() > 1;
        let dest_is_dir = dest_dir_syntax || self.backend.stat(&st.image.id, &dest) == Some(true);
        if many && !dest_dir_syntax {
            return Err(BuildError::new(format!(
                "When using {what} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let mut plan: Vec<Entry> = Vec::new();
        let parent_of_dest = if dest_is_dir { dest.clone() } else { parent_dir(&dest) };
        missing_dirs(self.backend, &st.image.id, &parent_of_dest, own_dirs(own), &mut plan, true);
        for (rel, fetched, bytes) in &items {
            let base = rel.rsplit('/').next().unwrap_or(rel).to_string();
            let target = if dest_is_dir { context::clean_abs(&format!("{dest}/{base}")) } else { dest.clone() };
            if let Some(b) = bytes {
                plan.push(Entry { path: target, data: EntryData::Bytes(b.clone()), mode: own.chmod.unwrap_or(0o644), uid: own.uid, gid: own.gid, mtime: now_secs() });
                continue;
            }
            if let Some(f) = fetched {
                let md = std::fs::metadata(f).map_err(|e| BuildError::new(e.to_string()))?;
                let mut e = own.entry(&target, EntryData::File(f.clone()), &md);
                e.mode = own.chmod.unwrap_or(0o600);
                plan.push(e);
                continue;
            }
            let host = root.root.join(rel);
            if spec.add {
                if let Some(kind) = context::archive_kind(&host).filter(|_| host.is_file()) {
                    let scratch = self.tmp_path("archive");
                    std::fs::create_dir_all(&scratch).map_err(|e| BuildError::new(e.to_string()))?;
                    context::plan_archive(&host, kind, &dest, &scratch, &mut plan).map_err(fail)?;
                    continue;
                }
            }
            let is_dir = std::fs::symlink_metadata(&host).map(|m| m.is_dir()).unwrap_or(false);
            let at = if is_dir { dest.clone() } else { target };
            root.plan(rel, &at, own, &mut plan).map_err(fail)?;
        }
        let hash = context::hash_plan(&plan).map_err(fail)?;
        let created_by = nop(st, &format!("{what} {}:{hash} in {dest} ", if spec.from.is_some() { "multi" } else { "file" }));
        let key = self.cache_key(st, &created_by, &hash);
        if let Some(img) = self.probe(st, &key, &created_by)? {
            self.hit(st, img);
            return Ok(());
        }
        let tar = self.write_plan(&plan)?;
        let ccfg = container_cfg(st, &created_by);
        let r = self.commit(st, &key, &created_by, Layer::Tar(&tar), &ccfg);
        let _ = std::fs::remove_file(&tar);
        r
    }
}

/// Directories created for COPY are owned like the copied files.
fn own_dirs(own: Owner) -> Owner {
    Owner { chmod: None, ..own }
}

fn parent_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => p[..i].to_string(),
    }
}

/// Adds directory entries (0755) for the components of `dir` the image lacks.
fn missing_dirs(backend: &mut dyn Backend, image: &str, dir: &str, own: Owner, plan: &mut Vec<Entry>, _root_owned_parents: bool) {
    let mut cur = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        let exists = !image.is_empty() && backend.stat(image, &cur).is_some();
        if !exists {
            plan.push(Entry { path: cur.clone(), data: EntryData::Dir, mode: 0o755, uid: own.uid, gid: own.gid, mtime: now_secs() });
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn expand_heredoc(body: &str, vars: &[String], escape: char) -> String {
    // Only `$` expansions: quotes in a heredoc body are literal.
    let mut out = String::new();
    for line in body.split_inclusive('\n') {
        let protected = line.replace('"', "\u{0}").replace('\'', "\u{1}");
        let v: Vec<String> = vars.to_vec();
        match expand(&protected, &v, escape) {
            Ok(s) => out.push_str(&s.replace('\u{0}', "\"").replace('\u{1}', "'")),
            Err(_) => out.push_str(line),
        }
    }
    out
}

/// Docker's `[shell…, "#(nop) ", text]`: the container config's Cmd of a config-only
/// step; joined by spaces it is the history's `/bin/sh -c #(nop)  <text>`.
fn nop_argv(st: &State, text: &str) -> Vec<String> {
    let mut v = Executor::shell(st);
    v.push("#(nop) ".to_string());
    v.push(text.to_string());
    v
}

fn nop(st: &State, text: &str) -> String {
    nop_argv(st, text).join(" ")
}

/// The `container_config` of a step: the stage's config with the step as its Cmd.
fn container_cfg(st: &State, created_by: &str) -> ContainerConfig {
    let mut c = st.config.clone();
    c.image = st.image.id.clone();
    let shell = Executor::shell(st);
    let prefix = format!("{} #(nop)  ", shell.join(" "));
    c.cmd = Some(match created_by.strip_prefix(&prefix) {
        Some(text) => nop_argv(st, text),
        None => vec![created_by.to_string()],
    });
    c
}

/// The history text of a config-only instruction, as Docker writes it.
fn nop_text(inst: &Instruction, st: &State) -> String {
    let with_shell = |cmd: &[String], shell: bool| -> Vec<String> {
        if shell {
            let mut v = Executor::shell(st);
            v.push(cmd.join(" "));
            v
        } else {
            cmd.to_vec()
        }
    };
    match inst {
        Instruction::Cmd { cmd, shell } => format!("CMD {}", go_q(&with_shell(cmd, *shell))),
        Instruction::Entrypoint { cmd, shell } => format!("ENTRYPOINT {}", go_q(&with_shell(cmd, *shell))),
        Instruction::Env(kvs) => {
            let parts: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("ENV {}", parts.join(" "))
        }
        Instruction::Label(kvs) => {
            let parts: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("LABEL {}", parts.join(" "))
        }
        Instruction::Expose(ports) => {
            let mut all: Vec<String> = ports.iter().flat_map(|p| changes::expose_ports(p).unwrap_or_default()).collect();
            all.sort();
            format!("EXPOSE {}", all.join(" "))
        }
        Instruction::User(u) => format!("USER {u}"),
        Instruction::Volume(v) => format!("VOLUME {}", go_q(v)),
        Instruction::StopSignal(s) => format!("STOPSIGNAL {s}"),
        Instruction::Onbuild(t) => format!("ONBUILD {t}"),
        Instruction::Shell(s) => format!("SHELL {}", go_q(s)),
        Instruction::Healthcheck(h) => match h {
            None => "HEALTHCHECK NONE".into(),
            Some(h) => format!(
                "HEALTHCHECK &{{{} \"{}\" \"{}\" \"{}\" \"{}\" '\\x{:02x}'}}",
                go_q(&h.test),
                go_dur(h.interval),
                go_dur(h.timeout),
                go_dur(h.start_period),
                go_dur(h.start_interval),
                h.retries
            ),
        },
        _ => String::new(),
    }
}

/// Go's `time.Duration` String (`0s`, `1.5ms`, `30s`, `1m30.5s`, `1h0m0s`).
fn go_dur(ns: i64) -> String {
    fn frac(whole: i64, rem: i64, digits: usize) -> String {
        let f = format!("{rem:0digits$}");
        let f = f.trim_end_matches('0');
        if f.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{f}")
        }
    }
    if ns == 0 {
        return "0s".into();
    }
    let (sign, ns) = if ns < 0 { ("-", -ns) } else { ("", ns) };
    if ns < 1_000 {
        return format!("{sign}{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{sign}{}µs", frac(ns / 1_000, ns % 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{sign}{}ms", frac(ns / 1_000_000, ns % 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let (h, m, sec) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", frac(sec, ns % 1_000_000_000, 9)));
    out
}

/// The stages `target` needs: its FROM chain and every `COPY --from` it reaches.
fn needed_stages(stages: &[Stage], target: usize) -> HashSet<usize> {
    let index = |r: &str| -> Option<usize> {
        let r = r.to_ascii_lowercase();
        if let Ok(i) = r.parse::<usize>() {
            return (i < stages.len()).then_some(i);
        }
        stages.iter().position(|s| s.name.as_deref() == Some(r.as_str()))
    };
    let mut needed = HashSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !needed.insert(i) {
            continue;
        }
        let s = &stages[i];
        if let Some(base) = s.from.args.first() {
            if let Some(j) = index(base).filter(|j| *j < i && base.parse::<usize>().is_err()) {
                todo.push(j);
            }
        }
        for n in &s.nodes {
            for f in &n.flags {
                if let Some(v) = f.strip_prefix("--from=") {
                    if let Some(j) = index(v).filter(|j| *j < i) {
                        todo.push(j);
                    }
                }
            }
        }
    }
    needed
}

struct NullOut;

impl Output for NullOut {
    fn stream(&mut self, _: &str) {}
}

struct OutRef<'b>(&'b mut dyn Output);

impl Output for OutRef<'_> {
    fn stream(&mut self, s: &str) {
        self.0.stream(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(src: &str) -> Vec<Stage> {
        let d = parser::parse(src).expect("parse");
        let mut out: Vec<Stage> = Vec::new();
        for n in d.nodes {
            if n.cmd == "from" {
                let name = match n.args.as_slice() {
                    [_, a, s] if a.eq_ignore_ascii_case("as") => Some(s.to_ascii_lowercase()),
                    _ => None,
                };
                out.push(Stage { name, from: n, nodes: Vec::new() });
            } else if let Some(s) = out.last_mut() {
                s.nodes.push(n);
            }
        }
        out
    }

    #[test]
    fn only_the_stages_the_target_needs() {
        let src = "FROM busybox AS a\nRUN x\nFROM busybox AS b\nRUN y\nFROM a AS c\nCOPY --from=1 /f /f\nFROM busybox\nCOPY --from=a /g /g\n";
        let s = stages(src);
        let want = |t: usize| {
            let mut v: Vec<usize> = needed_stages(&s, t).into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(want(3), vec![0, 3]);
        assert_eq!(want(2), vec![0, 1, 2]);
        assert_eq!(want(1), vec![1]);
    }

    #[test]
    fn history_texts_like_docker() {
        let st = State { image: ImageInfo::default(), config: ContainerConfig::default(), cmd_set: false, args: Vec::new(), author: None };
        let cases: Vec<(Instruction, &str)> = vec![
            (Instruction::Cmd { cmd: vec!["cat".into(), "/greeting".into()], shell: false }, "CMD [\"cat\" \"/greeting\"]"),
            (Instruction::Cmd { cmd: vec!["echo hi".into()], shell: true }, "CMD [\"/bin/sh\" \"-c\" \"echo hi\"]"),
            (Instruction::Env(vec![("A".into(), "1".into()), ("B".into(), "x y".into())]), "ENV A=1 B=x y"),
            (Instruction::Expose(vec!["80".into(), "53/udp".into()]), "EXPOSE 53/udp 80/tcp"),
            (Instruction::Volume(vec!["/data".into()]), "VOLUME [\"/data\"]"),
            (Instruction::Healthcheck(None), "HEALTHCHECK NONE"),
        ];
        for (inst, want) in cases {
            assert_eq!(nop_text(&inst, &st), want);
        }
        assert_eq!(nop(&st, "CMD [\"x\"]"), "/bin/sh -c #(nop)  CMD [\"x\"]");
        let c = container_cfg(&st, &nop(&st, "ENV A=1"));
        assert_eq!(c.cmd, Some(vec!["/bin/sh".to_string(), "-c".to_string(), "#(nop) ".to_string(), "ENV A=1".to_string()]));
        for (ns, want) in [(0, "0s"), (5_000_000_000, "5s"), (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"), (1_500_000, "1.5ms"), (90_500_000_000, "1m30.5s"), (1_500, "1.5µs")] {
            assert_eq!(go_dur(ns), want, "{ns}");
        }
    }
}
