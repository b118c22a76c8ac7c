//! Container filesystem commands: `cp` (both directions, trace §4.19), `diff`, `export`,
//! `commit`, `update`, and `system df`. Path handling follows docker's `pkg/archive`
//! copy rules (split into dir + entry, rebase the archive's top entry to the target's
//! name), computed as plain data so it can be unit-tested.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use berth_client::Body;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cli::{CommitArgs, CpArgs, DfArgs, ExportArgs, ImportArgs, Names, UpdateArgs};
use crate::container::{query, ram_in_bytes, render_rows};
use crate::format::{human_size, human_size_prec, since, truncate_id};
use crate::{term, CmdResult, Ctx, Fail};

use berth_archive::mode::{MODE_DIR, MODE_SYMLINK};

/// The decoded `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u64,
    pub mtime: String,
    pub link_target: String,
}

impl PathStat {
    pub fn is_dir(&self) -> bool {
        self.mode & u64::from(MODE_DIR) != 0
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & u64::from(MODE_SYMLINK) != 0
    }
}

pub fn decode_path_stat(header: &str) -> Option<PathStat> {
    let raw = base64::engine::general_purpose::STANDARD.decode(header.trim()).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// `container:path` → (container, path); a local path otherwise. Like docker, a colon
/// after a `/` or at the start (`./a:b`, `/x:y`) is part of a local path.
pub fn split_cp_arg(arg: &str) -> (Option<String>, String) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.contains('/') && !c.is_empty() => (Some(c.to_string()), p.to_string()),
        _ => (None, arg.to_string()),
    }
}

/// Go's `filepath.Clean`.
pub fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let joined = out.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn specifies_current_dir(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

fn asserts_directory(p: &str) -> bool {
    p.ends_with('/') || specifies_current_dir(p)
}

/// docker's `archive.SplitPathDirEntry`.
pub fn split_dir_entry(p: &str) -> (String, String) {
    let mut cleaned = clean(p);
    if specifies_current_dir(p) && cleaned != "." {
        cleaned.push_str("/.");
    }
    if cleaned == "/" {
        return ("/".into(), "/".into());
    }
    match cleaned.rsplit_once('/') {
        Some(("", base)) => ("/".into(), base.into()),
        Some((dir, base)) => (dir.into(), base.into()),
        None => (".".into(), cleaned),
    }
}

/// How an archive is placed at the destination (docker's `PrepareArchiveCopy`): the
/// directory to extract into and, when needed, the rename of the top entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    pub dir: String,
    pub rebase: Option<(String, String)>,
}

pub fn prepare_copy(src_path: &str, src_is_dir: bool, src_rebase: Option<&str>, dst_path: &str, dst_exists: bool, dst_is_dir: bool) -> Result<Placement, String> {
    let (_, mut src_base) = split_dir_entry(src_path);
    if let Some(r) = src_rebase.filter(|r| !r.is_empty()) {
        src_base = r.to_string();
    }
    let (dst_dir, dst_base) = split_dir_entry(dst_path);
    let rebased = || Placement { dir: dst_dir.clone(), rebase: Some((src_base.clone(), dst_base.clone())) };
    if dst_exists && dst_is_dir {
        return Ok(Placement { dir: dst_path.to_string(), rebase: None });
    }
    if dst_exists && src_is_dir {
        return Err("cannot copy directory".into());
    }
    if dst_exists || src_is_dir {
        return Ok(rebased());
    }
    if asserts_directory(dst_path) {
        return Err("no such directory".into());
    }
    Ok(rebased())
}

/// docker's `RebaseArchiveEntries` for one name: a name that starts with `from`
/// gets `to` instead of that prefix (`from` = `/` replaces nothing, so the daemon's
/// `/bin` for an archive of `/` becomes `to/bin`); `None` when it does not start so.
pub fn rebase_entry(path: &str, from: &str, to: &str) -> Option<String> {
    let from = if from == "/" { "" } else { from };
    path.strip_prefix(from).map(|rest| format!("{to}{rest}"))
}

/// docker's `CopyInfoDestinationPath`: the local destination with symlinks at its end
/// followed (the copy replaces what a link points at, not the link); a missing one
/// needs an existing parent directory. Returns (path, exists, is_dir).
pub fn copy_info_destination(path: &str) -> Result<(String, bool, bool), String> {
    let mut path = path.to_string();
    let mut md = std::fs::symlink_metadata(&path);
    let mut n = 0;
    while let Ok(m) = &md {
        if !m.file_type().is_symlink() {
            break;
        }
        if n > 10 {
            return Err(format!("too many symlinks in {path}"));
        }
        let target = std::fs::read_link(&path).map_err(|e| format!("readlink {path}: {}", crate::system::io_text(&e)))?.to_string_lossy().into_owned();
        path = if target.starts_with('/') { target } else { clean(&format!("{}/{target}", split_dir_entry(&path).0)) };
        md = std::fs::symlink_metadata(&path);
        n += 1;
    }
    match md {
        Ok(m) => Ok((path, true, m.is_dir())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (parent, _) = split_dir_entry(&path);
            let pm = std::fs::metadata(&parent).map_err(|e| format!("stat {parent}: {}", crate::system::io_text(&e)))?;
            if !pm.is_dir() {
                return Err("not a directory".into());
            }
            Ok((path, false, false))
        }
        Err(e) => Err(format!("lstat {path}: {}", crate::system::io_text(&e))),
    }
}

fn stat_container_path(ctx: &mut Ctx, container: &str, path: &str) -> Result<PathStat, berth_client::Error> {
    let (head, _) = ctx.client.call("HEAD", &query(&format!("/containers/{container}/archive"), &[("path", path.to_string())]), &[], Body::None)?;
    Ok(head.header("X-Docker-Container-Path-Stat").and_then(decode_path_stat).unwrap_or_default())
}

/// A closed stdout ends the command quietly, as SIGPIPE ends the docker CLI.
pub(crate) fn pipe_fail(e: io::Error) -> Fail {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Fail::silent(141)
    } else {
        Fail::new(1, e.to_string())
    }
}

/// A `Read` that counts the bytes passing through (for "Successfully copied …").
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

pub fn cp(ctx: &mut Ctx, o: CpArgs) -> CmdResult {
    ctx.require("cp", o.paths.len(), 2, Some(2))?;
    let (src_c, src_p) = split_cp_arg(&o.paths[0]);
    let (dst_c, dst_p) = split_cp_arg(&o.paths[1]);
    // Progress goes to stderr, and only when stdout is a terminal (as docker 28).
    let quiet = o.quiet || !term::isatty(1);
    match (src_c, dst_c) {
        (None, None) => Err(Fail::new(1, "must specify at least one container source")),
        (Some(_), Some(_)) => Err(Fail::new(1, "copying between containers is not supported")),
        (Some(c), None) => {
            if src_p.is_empty() {
                return Err(Fail::new(1, "source can not be empty"));
            }
            copy_from_container(ctx, &c, &src_p, &dst_p, o.follow_link, quiet)
        }
        (None, Some(c)) => {
            if dst_p.is_empty() {
                return Err(Fail::new(1, "destination can not be empty"));
            }
            copy_to_container(ctx, &src_p, &c, &dst_p, o.archive, o.follow_link, quiet, &o.paths[1])
        }
    }
}

/// docker's `GetRebaseName`: keep the name the user typed when a link was resolved.
fn rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let base = |p: &str| split_dir_entry(p).1;
    if base(path) != base(&resolved) {
        let b = base(path);
        return (resolved, Some(b));
    }
    (resolved, None)
}

fn copy_from_container(ctx: &mut Ctx, container: &str, src: &str, dst: &str, follow: bool, quiet: bool) -> CmdResult {
    let mut src = src.to_string();
    let mut rebase = None;
    if follow {
        if let Ok(st) = stat_container_path(ctx, container, &src) {
            if !st.link_target.is_empty() {
                let mut target = st.link_target.clone();
                if !target.starts_with('/') {
                    target = format!("{}/{target}", split_dir_entry(&src).0);
                }
                let (t, r) = rebase_name(&src, &target);
                src = t;
                rebase = r;
            }
        }
    }
    let resp = ctx.client.send("GET", &query(&format!("/containers/{container}/archive"), &[("path", src.clone())]), &[], Body::None)?;
    let stat = resp.head.header("X-Docker-Container-Path-Stat").and_then(decode_path_stat).unwrap_or_default();
    let mut counted = Counting { inner: resp, n: 0 };
    if dst == "-" {
        let mut out = io::stdout().lock();
        io::copy(&mut counted, &mut out).map_err(pipe_fail)?;
        return Ok(0);
    }
    let (dst_path, dst_exists, dst_is_dir) = copy_info_destination(dst).map_err(|e| Fail::new(1, e))?;
    let place = prepare_copy(&src, stat.is_dir(), rebase.as_deref(), &dst_path, dst_exists, dst_is_dir).map_err(|e| Fail::new(1, e))?;
    // A resolved link is archived under its target's name: first back to the name the
    // user typed, then to the destination's (docker's two RebaseArchiveEntries).
    let link_rebase = rebase.as_ref().map(|r| (split_dir_entry(&src).1, r.clone()));
    let rename = |name: &str| -> Result<String, String> {
        let mut name = name.to_string();
        if let Some((from, to)) = &link_rebase {
            name = rebase_entry(&name, from, to).unwrap_or(name);
        }
        match &place.rebase {
            // The archive must hold only the copied resource: anything else would land
            // beside the destination instead of in it.
            Some((from, to)) => rebase_entry(&name, from, to)
                .filter(|n| n == to || n.starts_with(&format!("{to}/")))
                .ok_or_else(|| format!("archive entry {name:?} is not under {from:?}")),
            None => Ok(name),
        }
    };
    crate::untar::unpack(&mut counted, Path::new(&place.dir), &rename).map_err(|e| Fail::new(1, e))?;
    let mut rest = Vec::new();
    let _ = counted.read_to_end(&mut rest);
    if !quiet {
        eprintln!("Successfully copied {} to {dst}", human_size_prec(counted.n as f64, 3));
    }
    Ok(0)
}

/// docker's `ResolveHostSourcePath`: the local path to archive and its rebase name.
fn resolve_local_source(path: &str, follow: bool) -> Result<(PathBuf, Option<String>), Fail> {
    if follow {
        let resolved = std::fs::canonicalize(path).map_err(|e| Fail::new(1, format!("lstat {path}: {}", crate::system::io_text(&e))))?;
        let (r, rebase) = rebase_name(path, &resolved.to_string_lossy());
        return Ok((PathBuf::from(r), rebase));
    }
    let (dir, base) = match path.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b.to_string()),
        None => ("./".to_string(), path.to_string()),
    };
    let rdir = std::fs::canonicalize(&dir).map(|p| p.to_string_lossy().into_owned()).unwrap_or(dir.trim_end_matches('/').to_string());
    let resolved = format!("{rdir}/{base}");
    std::fs::symlink_metadata(&resolved).map_err(|e| Fail::new(1, format!("lstat {resolved}: {}", crate::system::io_text(&e))))?;
    Ok((PathBuf::from(resolved), None))
}

/// Tars `path` with its top entry named `name` (`.` = the directory's contents).
fn tar_local(path: &Path, name: &str, out: &mut dyn Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let meta = std::fs::symlink_metadata(path)?;
    if name == "." && meta.is_dir() {
        for e in std::fs::read_dir(path)? {
            let e = e?;
            let child = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() {
                b.append_dir_all(&child, e.path())?;
            } else {
                b.append_path_with_name(e.path(), &child)?;
            }
        }
    } else if meta.is_dir() {
        b.append_dir_all(name, path)?;
    } else {
        b.append_path_with_name(path, name)?;
    }
    b.finish()
}

#[allow(clippy::too_many_arguments)]
fn copy_to_container(ctx: &mut Ctx, src: &str, container: &str, dst: &str, archive: bool, follow: bool, quiet: bool, dst_arg: &str) -> CmdResult {
    let mut dst_path = dst.to_string();
    let mut stat = stat_container_path(ctx, container, &dst_path);
    if let Err(e) = &stat {
        // A missing container is an error here; a missing path is not.
        if !matches!(e, berth_client::Error::Bare(_)) && !e.is_not_found() {
            return Err(Fail::from(stat.err().unwrap_or_else(|| berth_client::Error::Protocol(String::new()))));
        }
        if let berth_client::Error::Bare(m) = e {
            if m.contains(" 404 ") {
                // HEAD answers carry no body; tell a missing container from a missing path.
                let probe = ctx.client.get_raw(&format!("/containers/{container}/json"));
                if let Err(pe) = probe {
                    return Err(Fail::from(pe));
                }
            }
        }
    }
    if let Ok(st) = &stat {
        if st.is_symlink() {
            let mut target = st.link_target.clone();
            if !target.starts_with('/') {
                target = format!("{}/{target}", split_dir_entry(&dst_path).0);
            }
            dst_path = target;
            stat = stat_container_path(ctx, container, &dst_path);
        }
    }
    let (exists, is_dir) = match &stat {
        Ok(st) => (true, st.is_dir()),
        Err(_) => (false, false),
    };
    // The tar is streamed to the daemon as it is read (stdin) or written (a local
    // path, on a thread), never held whole in memory.
    let (resolved_dst, mut reader): (String, Box<dyn Read>) = if src == "-" {
        if !is_dir {
            return Err(Fail::new(1, format!("destination \"{container}:{dst}\" must be a directory")));
        }
        (dst_path.clone(), Box::new(io::stdin().lock()))
    } else {
        let (local, rebase) = resolve_local_source(src, follow)?;
        let local_s = local.to_string_lossy().into_owned();
        let src_is_dir = std::fs::metadata(&local).map(|m| m.is_dir()).unwrap_or(false);
        let place = prepare_copy(&local_s, src_is_dir, rebase.as_deref(), &dst_path, exists, is_dir).map_err(|e| Fail::new(1, e))?;
        let (_, src_base) = split_dir_entry(&local_s);
        let name = match &place.rebase {
            Some((_, to)) => to.clone(),
            None => src_base,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        std::thread::spawn(move || {
            let mut w = ChanWriter { tx: tx.clone() };
            if let Err(e) = tar_local(&local, &name, &mut w) {
                let _ = tx.send(Err(e));
            }
        });
        (place.dir, Box::new(ChanReader { rx, cur: Vec::new(), pos: 0 }))
    };
    let mut params = vec![("path", resolved_dst), ("noOverwriteDirNonDir", "true".to_string())];
    if archive {
        params.push(("copyUIDGID", "true".into()));
    }
    let mut counted = Counting { inner: &mut reader, n: 0 };
    ctx.client.call("PUT", &query(&format!("/containers/{container}/archive"), &params), &[], Body::Chunked { content_type: "text/plain", reader: &mut counted })?;
    if !quiet {
        eprintln!("Successfully copied {} to {dst_arg}", human_size_prec(counted.n as f64, 3));
    }
    Ok(0)
}

/// The writing end of the local tar's pipe to the upload.
struct ChanWriter {
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
}

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.send(Ok(buf.to_vec())).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload ended"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end: an error from the tar thread fails the upload (the chunked body
/// is cut, so the daemon never takes a partial archive for a whole one).
struct ChanReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------
// diff / export / commit

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Change {
    path: String,
    kind: u8,
}

fn change_line(c: &Change) -> String {
    let k = match c.kind {
        0 => "C",
        1 => "A",
        2 => "D",
        _ => "?",
    };
    format!("{k} {}", c.path)
}

pub fn diff(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("diff", o.names.len(), 1, Some(1))?;
    let changes: Option<Vec<Change>> = ctx.client.get_json(&format!("/containers/{}/changes", o.names[0]))?;
    let mut out = io::stdout().lock();
    for c in changes.unwrap_or_default() {
        let _ = writeln!(out, "{}", change_line(&c));
    }
    Ok(0)
}

pub fn export(ctx: &mut Ctx, o: ExportArgs) -> CmdResult {
    ctx.require("export", o.names.len(), 1, Some(1))?;
    if o.output.is_none() && term::isatty(1) {
        return Err(Fail::new(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect"));
    }
    let mut resp = ctx.client.send("GET", &format!("/containers/{}/export", o.names[0]), &[], Body::None)?;
    match &o.output {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(|e| Fail::new(1, format!("failed to export container: open {path}: {}", crate::system::io_text(&e))))?;
            io::copy(&mut resp, &mut f)?;
        }
        None => {
            io::copy(&mut resp, &mut io::stdout().lock()).map_err(pipe_fail)?;
        }
    }
    Ok(0)
}

/// The optional `REPOSITORY[:TAG]` of `commit` and `import`, split as the query wants it;
/// a digest is refused as the docker CLI refuses it.
fn repo_and_tag(arg: Option<&String>) -> Result<(String, String), Fail> {
    let Some(r) = arg else { return Ok((String::new(), String::new())) };
    let r = berth_api::reference::Reference::parse(r).map_err(|e| Fail::new(1, e.to_string()))?;
    if r.digest.is_some() {
        return Err(Fail::new(1, "refusing to create a tag with a digest reference"));
    }
    Ok((r.full_name(), r.tag.clone().unwrap_or_default()))
}

pub fn commit(ctx: &mut Ctx, o: CommitArgs) -> CmdResult {
    ctx.require("commit", o.names.len(), 1, Some(2))?;
    let (repo, tag) = repo_and_tag(o.names.get(1))?;
    let mut params = vec![
        ("container", o.names[0].clone()),
        ("repo", repo),
        ("tag", tag),
        ("comment", o.message.clone().unwrap_or_default()),
        ("author", o.author.clone().unwrap_or_default()),
    ];
    for c in &o.change {
        params.push(("changes", c.clone()));
    }
    if !o.pause {
        params.push(("pause", "0".into()));
    }
    let (_, data) = ctx.client.call("POST", &query("/commit", &params), &[], Body::Empty)?;
    let r: berth_api::IdResponse = berth_client::decode(&data)?;
    println!("{}", r.id);
    Ok(0)
}

/// `docker import file|URL|- [REPOSITORY[:TAG]]`: the file (or stdin) is streamed as
/// the request body; a URL is left for the daemon to fetch. Prints the new image id.
pub fn import(ctx: &mut Ctx, o: ImportArgs) -> CmdResult {
    ctx.require("import", o.names.len(), 1, Some(2))?;
    let src = o.names[0].clone();
    let (repo, tag) = repo_and_tag(o.names.get(1))?;
    let is_url = src.contains("://");
    let mut params = vec![
        ("fromSrc", if is_url { src.clone() } else { "-".to_string() }),
        ("repo", repo),
        ("tag", tag),
        ("message", o.message.clone().unwrap_or_default()),
    ];
    if let Some(p) = &o.platform {
        params.push(("platform", p.clone()));
    }
    for c in &o.change {
        params.push(("changes", c.clone()));
    }
    let path = query("/images/create", &params);
    let (_, data) = if is_url {
        ctx.client.call("POST", &path, &[], Body::Empty)?
    } else if src == "-" {
        let mut stdin = io::stdin().lock();
        ctx.client.call("POST", &path, &[], Body::Chunked { content_type: "application/x-tar", reader: &mut stdin })?
    } else {
        let mut f = std::fs::File::open(&src)
            .map_err(|e| Fail::new(1, format!("open {src}: {}", crate::system::io_text(&e))))?;
        ctx.client.call("POST", &path, &[], Body::Chunked { content_type: "application/x-tar", reader: &mut f })?
    };
    for line in data.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
        let m: Value = serde_json::from_slice(line).map_err(|e| Fail::new(1, e.to_string()))?;
        if let Some(err) = m.get("errorDetail").and_then(|d| d.get("message")).and_then(Value::as_str) {
            return Err(Fail::new(1, err.to_string()));
        }
        if let Some(s) = m.get("status").and_then(Value::as_str) {
            println!("{s}");
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------
// update

/// The `/containers/{id}/update` body docker sends for these flags.
pub fn update_body(o: &UpdateArgs) -> Result<Value, Fail> {
    let bad = |m: String| Fail::new(1, m);
    let size = |v: &Option<String>| -> Result<i64, Fail> {
        match v.as_deref() {
            None => Ok(0),
            Some("-1") => Ok(-1),
            Some(s) => ram_in_bytes(s).map_err(bad),
        }
    };
    let nano_cpus = match o.cpus.as_deref() {
        Some(c) => (c.parse::<f64>().map_err(|_| bad(format!("invalid argument \"{c}\" for \"--cpus\" flag: failed to parse {c} as a rational number")))? * 1e9).round() as i64,
        None => 0,
    };
    let restart = match o.restart.as_deref() {
        Some(r) => {
            let (name, count) = r.split_once(':').unwrap_or((r, "0"));
            json!({"Name": name, "MaximumRetryCount": count.parse::<i64>().map_err(|_| bad("invalid restart policy format: maximum retry count must be an integer".into()))?})
        }
        None => json!({"Name": "", "MaximumRetryCount": 0}),
    };
    Ok(json!({
        "BlkioWeight": o.blkio_weight.unwrap_or(0),
        "CpuShares": o.cpu_shares.unwrap_or(0),
        "Memory": size(&o.memory)?,
        "NanoCpus": nano_cpus,
        "CgroupParent": "",
        "BlkioWeightDevice": null, "BlkioDeviceReadBps": null, "BlkioDeviceWriteBps": null,
        "BlkioDeviceReadIOps": null, "BlkioDeviceWriteIOps": null,
        "CpuPeriod": o.cpu_period.unwrap_or(0),
        "CpuQuota": o.cpu_quota.unwrap_or(0),
        "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": o.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": o.cpuset_mems.clone().unwrap_or_default(),
        "Devices": null, "DeviceCgroupRules": null, "DeviceRequests": null,
        "MemoryReservation": size(&o.memory_reservation)?,
        "MemorySwap": size(&o.memory_swap)?,
        "MemorySwappiness": null,
        "OomKillDisable": null,
        "PidsLimit": o.pids_limit,
        "Ulimits": null,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "RestartPolicy": restart,
    }))
}

pub fn update(ctx: &mut Ctx, o: UpdateArgs) -> CmdResult {
    ctx.require("update", o.names.len(), 1, None)?;
    let any = o.blkio_weight.is_some()
        || o.cpu_period.is_some()
        || o.cpu_quota.is_some()
        || o.cpu_shares.is_some()
        || o.cpus.is_some()
        || o.cpuset_cpus.is_some()
        || o.cpuset_mems.is_some()
        || o.memory.is_some()
        || o.memory_reservation.is_some()
        || o.memory_swap.is_some()
        || o.pids_limit.is_some()
        || o.restart.is_some();
    if !any {
        return Err(Fail::new(1, "you must provide one or more flags when using this command"));
    }
    let body = update_body(&o)?;
    let mut errs = Vec::new();
    for n in &o.names {
        match ctx.client.call("POST", &format!("/containers/{n}/update"), &[], Body::json(&body)) {
            Ok((_, data)) => {
                if let Ok(v) = serde_json::from_slice::<Value>(&data) {
                    for w in v.get("Warnings").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(w) = w.as_str() {
                            eprintln!("{w}");
                        }
                    }
                }
                println!("{n}");
            }
            Err(e) => errs.push(e.to_string()),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, errs.join("\n")))
    }
}

// ---------------------------------------------------------------------------------
// system df

const DF_HEADERS: &[(&str, &str)] = &[("Type", "TYPE"), ("TotalCount", "TOTAL"), ("Active", "ACTIVE"), ("Size", "SIZE"), ("Reclaimable", "RECLAIMABLE")];

fn num(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn list<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// go-units `HumanSize` (4 significant digits), what the df summary uses.
fn hs4(n: i64) -> String {
    human_size_prec(n as f64, 4)
}

fn reclaimable(size: i64, total: i64) -> String {
    let r = hs4(size);
    if total > 0 {
        format!("{r} ({}%)", (size as f64 * 100.0 / total as f64) as i64)
    } else {
        r
    }
}

/// The four summary rows of `docker system df`.
pub fn df_rows(du: &Value) -> Vec<Value> {
    let images = list(du, "Images");
    let img_total: i64 = images.iter().map(|i| num(i, "Size")).sum();
    let img_active = images.iter().filter(|i| num(i, "Containers") > 0).count();
    // Images with an unknown (-1) size or shared size do not count as used (docker).
    let img_used: i64 = images
        .iter()
        .filter(|i| num(i, "Containers") != 0 && num(i, "Size") != -1 && num(i, "SharedSize") != -1)
        .map(|i| num(i, "Size") - num(i, "SharedSize"))
        .sum();
    let layers = du.get("LayersSize").and_then(Value::as_i64).unwrap_or(img_total);
    let img_reclaim = (layers - img_used).max(0);
    let containers = list(du, "Containers");
    let c_total: i64 = containers.iter().map(|c| num(c, "SizeRw")).sum();
    let c_active = containers.iter().filter(|c| matches!(c.get("State").and_then(Value::as_str), Some("running" | "paused" | "restarting"))).count();
    let c_reclaim: i64 = containers.iter().filter(|c| !matches!(c.get("State").and_then(Value::as_str), Some("running" | "paused" | "restarting"))).map(|c| num(c, "SizeRw")).sum();
    let volumes = list(du, "Volumes");
    let vsize = |v: &Value| v.pointer("/UsageData/Size").and_then(Value::as_i64).unwrap_or(0).max(0);
    let vrefs = |v: &Value| v.pointer("/UsageData/RefCount").and_then(Value::as_i64).unwrap_or(0);
    let v_total: i64 = volumes.iter().map(vsize).sum();
    let v_active = volumes.iter().filter(|v| vrefs(v) > 0).count();
    let v_reclaim: i64 = volumes.iter().filter(|v| vrefs(v) == 0).map(vsize).sum();
    let cache = list(du, "BuildCache");
    let b_total: i64 = cache.iter().filter(|b| b.get("Shared") != Some(&Value::Bool(true))).map(|b| num(b, "Size")).sum();
    let b_active = cache.iter().filter(|b| b.get("InUse") == Some(&Value::Bool(true))).count();
    let b_reclaim: i64 = cache.iter().filter(|b| b.get("InUse") != Some(&Value::Bool(true)) && b.get("Shared") != Some(&Value::Bool(true))).map(|b| num(b, "Size")).sum();
    let row = |t: &str, total: usize, active: usize, size: i64, recl: String| {
        json!({"__type": "*formatter.diskUsageImagesContext", "Type": t, "TotalCount": total.to_string(), "Active": active.to_string(), "Size": hs4(size), "Reclaimable": recl})
    };
    vec![
        row("Images", images.len(), img_active, layers, reclaimable(img_reclaim, layers)),
        row("Containers", containers.len(), c_active, c_total, reclaimable(c_reclaim, c_total)),
        row("Local Volumes", volumes.len(), v_active, v_total, reclaimable(v_reclaim, v_total)),
        row("Build Cache", cache.len(), b_active, b_total, hs4(b_reclaim)),
    ]
}

fn df_verbose(du: &Value) -> Result<String, Fail> {
    let mut out = String::from("Images space usage:\n\n");
    let mut rows = Vec::new();
    for i in list(du, "Images") {
        let tags: Vec<String> = i.get("RepoTags").and_then(Value::as_array).map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default();
        let tags = if tags.is_empty() { vec!["<none>:<none>".to_string()] } else { tags };
        let shared = num(i, "SharedSize");
        for t in tags {
            let (repo, tag) = t.rsplit_once(':').map(|(r, t)| (r.to_string(), t.to_string())).unwrap_or((t.clone(), String::new()));
            rows.push(json!({
                "Repository": repo, "Tag": tag,
                "ID": truncate_id(i.get("Id").and_then(Value::as_str).unwrap_or("")),
                "CreatedSince": since(num(i, "Created")),
                "Size": human_size(num(i, "Size")),
                // Docker: SIZE with 3 significant digits, SHARED/UNIQUE SIZE with 4.
                "SharedSize": if shared < 0 { "N/A".to_string() } else { hs4(shared) },
                "UniqueSize": if shared < 0 { "N/A".to_string() } else { hs4(num(i, "Size") - shared) },
                "Containers": num(i, "Containers").to_string(),
            }));
        }
    }
    out.push_str(&render_rows(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &rows,
        &[("Repository", "REPOSITORY"), ("Tag", "TAG"), ("ID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE"), ("SharedSize", "SHARED SIZE"), ("UniqueSize", "UNIQUE SIZE"), ("Containers", "CONTAINERS")],
    )?);
    out.push_str("\nContainers space usage:\n\n");
    let now = crate::format::now_secs_f64();
    let mut rows = Vec::new();
    for c in list(du, "Containers") {
        let s: berth_api::ContainerSummary = crate::container::decode_list(Some(vec![c.clone()]))?.pop().unwrap_or_default();
        let mut r = crate::container::ps_context(&s, true, now);
        if let Some(m) = r.as_object_mut() {
            m.insert("Size".into(), json!(human_size(s.size_rw.unwrap_or(0))));
        }
        rows.push(r);
    }
    out.push_str(&render_rows(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &rows,
        &[("ID", "CONTAINER ID"), ("Image", "IMAGE"), ("Command", "COMMAND"), ("LocalVolumes", "LOCAL VOLUMES"), ("Size", "SIZE"), ("RunningFor", "CREATED"), ("Status", "STATUS"), ("Names", "NAMES")],
    )?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    let rows: Vec<Value> = list(du, "Volumes")
        .iter()
        .map(|v| {
            json!({"Name": v.get("Name").and_then(Value::as_str).unwrap_or(""),
                   "Links": v.pointer("/UsageData/RefCount").and_then(Value::as_i64).unwrap_or(0).to_string(),
                   "Size": human_size(v.pointer("/UsageData/Size").and_then(Value::as_i64).unwrap_or(0))})
        })
        .collect();
    out.push_str(&render_rows("table {{.Name}}\t{{.Links}}\t{{.Size}}", &rows, &[("Name", "VOLUME NAME"), ("Links", "LINKS"), ("Size", "SIZE")])?);
    let cache_total: i64 = list(du, "BuildCache").iter().map(|b| num(b, "Size")).sum();
    out.push_str(&format!("\nBuild cache usage: {}\n\n", human_size(cache_total)));
    out.push_str(&render_rows(
        "table {{.ID}}\t{{.Type}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &[],
        &[("ID", "CACHE ID"), ("Type", "CACHE TYPE"), ("Size", "SIZE"), ("CreatedSince", "CREATED"), ("LastUsedSince", "LAST USED"), ("UsageCount", "USAGE"), ("Shared", "SHARED")],
    )?);
    Ok(out)
}

pub fn system_df(ctx: &mut Ctx, o: DfArgs) -> CmdResult {
    ctx.require("system df", o.rest.len(), 0, Some(0))?;
    let du: Value = ctx.client.get_json("/system/df")?;
    if o.verbose {
        print!("{}", df_verbose(&du)?);
        return Ok(0);
    }
    let format = match o.format.as_deref() {
        None | Some("") | Some("table") => "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".to_string(),
        Some(f) => f.to_string(),
    };
    print!("{}", render_rows(&format, &df_rows(&du), DF_HEADERS)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_args_and_paths() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("st1:/tmp/hf", Some("st1"), "/tmp/hf"),
            ("/tmp/a:b", None, "/tmp/a:b"),
            ("./x:y", None, "./x:y"),
            ("-", None, "-"),
            ("c:", Some("c"), ""),
            ("dir/x:y", None, "dir/x:y"),
        ];
        for (arg, c, p) in cases {
            assert_eq!(split_cp_arg(arg), (c.map(str::to_owned), p.to_string()), "{arg}");
        }
        let splits: &[(&str, (&str, &str))] = &[
            ("/tmp/hf", ("/tmp", "hf")),
            ("/tmp/", ("/", "tmp")),
            ("/d/.", ("/d", ".")),
            ("/", ("/", "/")),
            ("rel", (".", "rel")),
            ("a/b/../c", ("a", "c")),
        ];
        for (p, (d, b)) in splits {
            assert_eq!(split_dir_entry(p), (d.to_string(), b.to_string()), "{p}");
        }
    }

    #[test]
    fn copy_placement_like_docker() {
        let p = |dir: &str, r: Option<(&str, &str)>| Ok(Placement { dir: dir.into(), rebase: r.map(|(a, b)| (a.into(), b.into())) });
        // (src, src_is_dir, dst, dst_exists, dst_is_dir) → placement
        let cases: Vec<((&str, bool, &str, bool, bool), Result<Placement, String>)> = vec![
            (("/tmp/hf", false, "/tmp", true, true), p("/tmp", None)),
            (("/tmp/hf", false, "/tmp/hf", false, false), p("/tmp", Some(("hf", "hf")))),
            (("/tmp/hf", false, "/tmp/other", true, false), p("/tmp", Some(("hf", "other")))),
            (("/d", true, "/tmp/dout", false, false), p("/tmp", Some(("d", "dout")))),
            (("/d", true, "/tmp/file", true, false), Err("cannot copy directory".into())),
            (("/tmp/hf", false, "/nonexist/dir/", false, false), Err("no such directory".into())),
        ];
        for ((src, sd, dst, de, dd), want) in cases {
            assert_eq!(prepare_copy(src, sd, None, dst, de, dd), want, "{src} -> {dst}");
        }
    }

    /// docker's cp table, from a container: (source path, is a dir, archive names as
    /// the daemon sends them) × (destination, what exists locally) → the files made
    /// (relative to the work dir) or the error. `X/etc/passwd` must never change.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn copy_from_container_table() {
        let dir_names = ["d/", "d/f", "d/sub/", "d/sub/g"];
        let dot_names = ["./", "./f", "./sub/", "./sub/g"];
        let root_names = ["/", "/bin/", "/bin/sh", "/etc/", "/etc/passwd"];
        let rootdot_names = ["./", "./bin/", "./bin/sh", "./etc/", "./etc/passwd"];
        let file_names = ["hf"];
        // existing local state: X/ (dir), X/file (file), X/etc/passwd
        type Row<'a> = (&'a str, bool, &'a [&'a str], &'a str, Result<&'a [&'a str], &'a str>);
        let rows: Vec<Row> = vec![
            // CTR:/ — D2: a new directory gets the root's content.
            ("/", true, &root_names, "X/new", Ok(&["X/new/bin/sh", "X/new/etc/passwd"])),
            ("/", true, &root_names, "X/new/", Ok(&["X/new/bin/sh", "X/new/etc/passwd"])),
            ("/", true, &root_names, "X", Ok(&["X/bin/sh", "X/etc/passwd"])),
            ("/", true, &root_names, "X/file", Err("cannot copy directory")),
            ("/.", true, &rootdot_names, "X/new", Ok(&["X/new/bin/sh", "X/new/etc/passwd"])),
            ("/.", true, &rootdot_names, "X", Ok(&["X/bin/sh", "X/etc/passwd"])),
            // a directory
            ("/d", true, &dir_names, "X/new", Ok(&["X/new/f", "X/new/sub/g"])),
            ("/d", true, &dir_names, "X/new/", Ok(&["X/new/f", "X/new/sub/g"])),
            ("/d", true, &dir_names, "X", Ok(&["X/d/f", "X/d/sub/g"])),
            ("/d/", true, &dir_names, "X", Ok(&["X/d/f", "X/d/sub/g"])),
            ("/d", true, &dir_names, "X/file", Err("cannot copy directory")),
            ("/d", true, &dir_names, "X/nodir/new", Err("X/nodir: no such file or directory")),
            // a directory's content
            ("/d/.", true, &dot_names, "X", Ok(&["X/f", "X/sub/g"])),
            ("/d/.", true, &dot_names, "X/new", Ok(&["X/new/f", "X/new/sub/g"])),
            ("/d/.", true, &dot_names, "X/file", Err("cannot copy directory")),
            // a file
            ("/tmp/hf", false, &file_names, "X", Ok(&["X/hf"])),
            ("/tmp/hf", false, &file_names, "X/", Ok(&["X/hf"])),
            ("/tmp/hf", false, &file_names, "X/new", Ok(&["X/new"])),
            ("/tmp/hf", false, &file_names, "X/file", Ok(&["X/file"])),
            ("/tmp/hf", false, &file_names, "X/new/", Err("no such directory")),
            ("/tmp/hf", false, &file_names, "X/file/", Err("not a directory")),
        ];
        let t = tempfile::tempdir().unwrap();
        for (src, src_dir, names, dst, want) in rows {
            let work = t.path().join("w");
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(work.join("X/etc")).unwrap();
            std::fs::write(work.join("X/etc/passwd"), "PRECIOUS").unwrap();
            std::fs::write(work.join("X/file"), "old").unwrap();
            let mut b = tar::Builder::new(Vec::new());
            for n in names {
                let mut h = tar::Header::new_gnu();
                let dir = n.ends_with('/');
                h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
                h.set_mode(0o755);
                h.set_size(if dir { 0 } else { 3 });
                h.as_old_mut().name[..n.len()].copy_from_slice(n.as_bytes());
                h.set_cksum();
                b.append(&h, if dir { &b""[..] } else { &b"new"[..] }).unwrap();
            }
            let tar = b.into_inner().unwrap();
            let dst_abs = work.join(dst).to_string_lossy().into_owned() + if dst.ends_with('/') { "/" } else { "" };
            let got = copy_info_destination(&dst_abs)
                .and_then(|(p, e, d)| prepare_copy(src, src_dir, None, &p, e, d))
                .and_then(|place| {
                    let rename = |n: &str| match &place.rebase {
                        Some((from, to)) => rebase_entry(n, from, to).ok_or_else(|| "outside".to_string()),
                        None => Ok(n.to_string()),
                    };
                    crate::untar::unpack(&tar[..], Path::new(&place.dir), &rename)
                });
            match want {
                Ok(files) => {
                    got.unwrap_or_else(|e| panic!("{src} -> {dst}: {e}"));
                    for f in files {
                        assert_eq!(std::fs::read_to_string(work.join(f)).unwrap(), "new", "{src} -> {dst}: {f}");
                    }
                }
                Err(text) => {
                    let e = got.expect_err(&format!("{src} -> {dst}"));
                    assert!(e.contains(text), "{src} -> {dst}: {e}");
                }
            }
            let passwd = std::fs::read_to_string(work.join("X/etc/passwd")).unwrap();
            let replaced = matches!(want, Ok(f) if f.contains(&"X/etc/passwd"));
            assert_eq!(passwd, if replaced { "new" } else { "PRECIOUS" }, "{src} -> {dst}");
        }
        assert_eq!(rebase_entry("/bin/sh", "/", "new"), Some("new/bin/sh".into()));
        assert_eq!(rebase_entry("./", ".", "dot"), Some("dot/".into()));
        assert_eq!(rebase_entry("d/sub/g", "d", "dout"), Some("dout/sub/g".into()));
        assert_eq!(rebase_entry("x/y", "d", "dout"), None);
    }

    #[test]
    fn path_stat_header() {
        // From the trace: /tmp came back with mode 2147484141 (dir | 0755).
        let raw = r#"{"name":"tmp","size":4096,"mode":2147484141,"mtime":"2026-11-23T11:33:30Z","linkTarget":""}"#;
        let h = base64::engine::general_purpose::STANDARD.encode(raw);
        let st = decode_path_stat(&h).expect("stat");
        assert!(st.is_dir() && !st.is_symlink());
        assert_eq!(st.mode & 0o777, 0o755);
        let link = base64::engine::general_purpose::STANDARD.encode(r#"{"name":"lnk","mode":134218239,"linkTarget":"/d/f"}"#);
        let st = decode_path_stat(&link).expect("link");
        assert!(st.is_symlink());
        assert_eq!(st.link_target, "/d/f");
        assert_eq!(rebase_name("/d/lnk", "/d/f"), ("/d/f".into(), Some("lnk".into())));
    }

    #[test]
    fn diff_lines() {
        let cases = [(0u8, "/etc", "C /etc"), (1, "/d/f", "A /d/f"), (2, "/etc/motd", "D /etc/motd")];
        for (kind, path, want) in cases {
            assert_eq!(change_line(&Change { path: path.into(), kind }), want);
        }
    }

    #[test]
    fn update_bodies() {
        use clap::Parser;
        #[derive(Parser)]
        struct W {
            #[command(flatten)]
            a: UpdateArgs,
        }
        let parse = |s: &str| W::try_parse_from(std::iter::once("x").chain(s.split(' '))).expect("parse").a;
        let b = update_body(&parse("--memory 64m --memory-swap 128m --cpus 0.5 --cpu-shares 512 --cpuset-cpus 0 --pids-limit 50 --restart on-failure:2 st1")).map_err(|f| f.msg).expect("body");
        assert_eq!(b["Memory"], json!(67108864));
        assert_eq!(b["MemorySwap"], json!(134217728));
        assert_eq!(b["NanoCpus"], json!(500000000));
        assert_eq!(b["CpuShares"], json!(512));
        assert_eq!(b["CpusetCpus"], json!("0"));
        assert_eq!(b["PidsLimit"], json!(50));
        assert_eq!(b["RestartPolicy"], json!({"Name": "on-failure", "MaximumRetryCount": 2}));
        let b = update_body(&parse("--memory 32m st1")).map_err(|f| f.msg).expect("body");
        assert_eq!(b["PidsLimit"], Value::Null);
        assert_eq!(b["MemorySwappiness"], Value::Null);
        assert_eq!(b["RestartPolicy"], json!({"Name": "", "MaximumRetryCount": 0}));
    }

    #[test]
    fn df_summary() {
        let du = json!({
            "LayersSize": 3964000,
            "Images": [{"Id": "sha256:a", "Size": 1982000, "SharedSize": 0, "Containers": 2}, {"Id": "sha256:b", "Size": 1982000, "SharedSize": -1, "Containers": 0}],
            "Containers": [{"Id": "c1", "State": "running", "SizeRw": 13}, {"Id": "c2", "State": "exited", "SizeRw": 0}],
            "Volumes": null, "BuildCache": null
        });
        let out = render_rows("table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}", &df_rows(&du), DF_HEADERS).expect("render");
        assert_eq!(
            out,
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          2         1         3.964MB   1.982MB (50%)\n\
             Containers      2         1         13B       0B (0%)\n\
             Local Volumes   0         0         0B        0B\n\
             Build Cache     0         0         0B        0B\n"
        );
    }
}
