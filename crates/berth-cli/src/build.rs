//! `berth build` (Docker's classic-builder CLI): the context directory packed into a
//! tar in a temporary file (memory stays bounded whatever the context's size) minus
//! what `.dockerignore` excludes (the Dockerfile and `.dockerignore` always go), the
//! Dockerfile from `-f` (inside the context: its path; outside or `-f -`: added
//! under a random name), `-` for a Dockerfile or a tar on stdin, Docker's query
//! parameters, and the JSON stream printed as the docker CLI prints it (exit code of a
//! failed RUN from `errorDetail.code`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use berth_build::ignore::Matcher;
use berth_client::{stream, Body};

use crate::cli::BuildArgs;
use crate::container::query;
use crate::{term, CmdResult, Ctx, Fail};

fn fail(m: impl Into<String>) -> Fail {
    Fail::new(1, m)
}

/// Walks `root`, adding every entry not excluded (directories still walked when an
/// exception may re-include something below them).
fn add_tree(b: &mut tar::Builder<fs::File>, root: &Path, rel: &str, ignore: &Matcher, keep: &[String]) -> io::Result<()> {
    let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let mut names: Vec<String> = fs::read_dir(&dir)?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for n in names {
        let r = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
        let excluded = ignore.excluded(&r) && !keep.contains(&r);
        let p = root.join(&r);
        let md = fs::symlink_metadata(&p)?;
        if md.is_dir() {
            if !excluded {
                b.append_dir(&r, &p)?;
            }
            if !excluded || ignore.has_exceptions() {
                add_tree(b, root, &r, ignore, keep)?;
            }
        } else if !excluded {
            b.append_path_with_name(&p, &r)?;
        }
    }
    Ok(())
}

fn random_name() -> String {
    let mut buf = [0u8; 8];
    let _ = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    format!(".dockerfile.{hex}")
}

/// The context tar (a temp file) and the `dockerfile` parameter.
fn pack(o: &BuildArgs, stdin_dockerfile: Option<Vec<u8>>) -> Result<(fs::File, String), Fail> {
    let mut tmp = tempfile_in_tmp()?;
    let ctx_dir = PathBuf::from(&o.path);
    let md = fs::metadata(&ctx_dir).map_err(|_| fail(format!("unable to prepare context: path {:?} not found", o.path)))?;
    if !md.is_dir() {
        return Err(fail(format!("unable to prepare context: context must be a directory: {}", o.path)));
    }
    let ignore_text = fs::read_to_string(ctx_dir.join(".dockerignore")).unwrap_or_default();
    let ignore = Matcher::new(&ignore_text).map_err(fail)?;
    // Where the Dockerfile is: inside the context (its relative path) or to be added.
    let (dockerfile_param, extra): (String, Option<Vec<u8>>) = match (o.file.as_deref(), stdin_dockerfile) {
        (Some("-"), Some(data)) => (random_name(), Some(data)),
        (None, _) => ("Dockerfile".to_string(), None),
        (Some(f), _) => {
            let p = PathBuf::from(f);
            let abs_ctx = fs::canonicalize(&ctx_dir).map_err(|e| fail(e.to_string()))?;
            let abs_f = fs::canonicalize(&p).map_err(|_| fail(format!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {f}: no such file or directory")))?;
            match abs_f.strip_prefix(&abs_ctx) {
                Ok(rel) => (rel.to_string_lossy().into_owned(), None),
                Err(_) => (random_name(), Some(fs::read(&abs_f).map_err(|e| fail(e.to_string()))?)),
            }
        }
    };
    {
        let mut b = tar::Builder::new(tmp.try_clone().map_err(|e| fail(e.to_string()))?);
        b.follow_symlinks(false);
        let keep = vec![dockerfile_param.clone(), ".dockerignore".to_string()];
        add_tree(&mut b, &ctx_dir, "", &ignore, &keep).map_err(|e| fail(format!("error checking context: {e}")))?;
        if let Some(data) = &extra {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, &dockerfile_param, data.as_slice()).map_err(|e| fail(e.to_string()))?;
        }
        b.finish().map_err(|e| fail(e.to_string()))?;
    }
    tmp.rewind().map_err(|e| fail(e.to_string()))?;
    Ok((tmp, dockerfile_param))
}

/// An unlinked temporary file.
fn tempfile_in_tmp() -> Result<fs::File, Fail> {
    let dir = std::env::temp_dir();
    for _ in 0..16 {
        let p = dir.join(random_name().replace(".dockerfile.", "berth-build-"));
        if let Ok(f) = fs::OpenOptions::new().read(true).write(true).create_new(true).open(&p) {
            let _ = fs::remove_file(&p);
            return Ok(f);
        }
    }
    Err(fail("cannot create a temporary file for the build context"))
}

/// The query parameters docker sends for these flags.
fn params(o: &BuildArgs, dockerfile: &str) -> Result<Vec<(&'static str, String)>, Fail> {
    let mut p: Vec<(&'static str, String)> = Vec::new();
    for t in &o.tag {
        p.push(("t", t.clone()));
    }
    if !dockerfile.is_empty() {
        p.push(("dockerfile", dockerfile.to_string()));
    }
    if o.quiet {
        p.push(("q", "1".into()));
    }
    if o.no_cache {
        p.push(("nocache", "1".into()));
    }
    if !o.rm {
        p.push(("rm", "0".into()));
    }
    if o.force_rm {
        p.push(("forcerm", "1".into()));
    }
    if o.pull {
        p.push(("pull", "1".into()));
    }
    if let Some(t) = &o.target {
        p.push(("target", t.clone()));
    }
    if let Some(n) = &o.network {
        p.push(("networkmode", n.clone()));
    }
    for h in &o.add_host {
        p.push(("extrahosts", h.clone()));
    }
    if let Some(pl) = &o.platform {
        p.push(("platform", pl.clone()));
    }
    if !o.build_arg.is_empty() {
        let mut m: BTreeMap<String, Option<String>> = BTreeMap::new();
        for a in &o.build_arg {
            match a.split_once('=') {
                Some((k, v)) => m.insert(k.to_string(), Some(v.to_string())),
                // `--build-arg NAME`: the value from the environment, or null.
                None => m.insert(a.clone(), std::env::var(a).ok()),
            };
        }
        p.push(("buildargs", serde_json::to_string(&m).unwrap_or_default()));
    }
    if !o.label.is_empty() {
        let m: BTreeMap<String, String> = o
            .label
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect();
        p.push(("labels", serde_json::to_string(&m).unwrap_or_default()));
    }
    if !o.cache_from.is_empty() {
        p.push(("cachefrom", serde_json::to_string(&o.cache_from).unwrap_or_default()));
    }
    if let Some(s) = &o.shm_size {
        p.push(("shmsize", crate::container::ram_in_bytes(s).map_err(fail)?.to_string()));
    }
    if let Some(s) = &o.memory {
        p.push(("memory", crate::container::ram_in_bytes(s).map_err(fail)?.to_string()));
    }
    if let Some(s) = &o.memory_swap {
        let v = if s == "-1" { -1 } else { crate::container::ram_in_bytes(s).map_err(fail)? };
        p.push(("memswap", v.to_string()));
    }
    if let Some(v) = o.cpu_shares {
        p.push(("cpushares", v.to_string()));
    }
    if let Some(v) = o.cpu_period {
        p.push(("cpuperiod", v.to_string()));
    }
    if let Some(v) = o.cpu_quota {
        p.push(("cpuquota", v.to_string()));
    }
    if let Some(v) = &o.cpuset_cpus {
        p.push(("cpusetcpus", v.clone()));
    }
    if let Some(v) = &o.cpuset_mems {
        p.push(("cpusetmems", v.clone()));
    }
    p.push(("version", "1".into()));
    Ok(p)
}

/// `berth build [OPTIONS] PATH | URL | -`.
pub fn build(ctx: &mut Ctx, o: BuildArgs) -> CmdResult {
    if o.path.is_empty() {
        return Err(Fail::new(1, "\"build\" requires exactly 1 argument.").with_help("build"));
    }
    // Docker checks every -t before anything is sent (a flag error: 125 and usage).
    for t in &o.tag {
        if let Err(e) = berth_api::reference::Reference::parse(t) {
            return Err(Fail::new(
                125,
                format!(
                    "invalid argument {t:?} for \"-t, --tag\" flag: {e}\n\nUsage:  {}\n\nRun '{} build --help' for more information",
                    ctx.usage("build"),
                    ctx.prog
                ),
            ));
        }
    }
    if o.path.contains("://") {
        return Err(fail("remote build contexts are not supported by berth build"));
    }
    let (mut body, dockerfile): (fs::File, String) = if o.path == "-" {
        if o.file.as_deref() == Some("-") {
            return Err(fail("invalid argument: can't use stdin for both build context and dockerfile"));
        }
        // stdin: a tar (plain or compressed) as is, or a Dockerfile alone.
        let mut tmp = tempfile_in_tmp()?;
        io::copy(&mut io::stdin().lock(), &mut tmp).map_err(|e| fail(e.to_string()))?;
        tmp.rewind().map_err(|e| fail(e.to_string()))?;
        let mut head = [0u8; 262];
        let n = tmp.read(&mut head).map_err(|e| fail(e.to_string()))?;
        tmp.rewind().map_err(|e| fail(e.to_string()))?;
        let archive = (n >= 262 && &head[257..262] == b"ustar")
            || head.starts_with(&[0x1f, 0x8b])
            || head.starts_with(b"BZh")
            || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]);
        if archive {
            (tmp, o.file.clone().unwrap_or_default())
        } else {
            let mut data = Vec::new();
            tmp.read_to_end(&mut data).map_err(|e| fail(e.to_string()))?;
            let mut t = tempfile_in_tmp()?;
            {
                let mut b = tar::Builder::new(t.try_clone().map_err(|e| fail(e.to_string()))?);
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o600);
                h.set_cksum();
                b.append_data(&mut h, "Dockerfile", data.as_slice()).map_err(|e| fail(e.to_string()))?;
                b.finish().map_err(|e| fail(e.to_string()))?;
            }
            t.rewind().map_err(|e| fail(e.to_string()))?;
            (t, "Dockerfile".to_string())
        }
    } else {
        let stdin_df = if o.file.as_deref() == Some("-") {
            let mut d = Vec::new();
            io::stdin().lock().read_to_end(&mut d).map_err(|e| fail(e.to_string()))?;
            Some(d)
        } else {
            None
        };
        pack(&o, stdin_df)?
    };
    let size = body.metadata().map(|m| m.len()).unwrap_or(0);
    let mut stdout = io::stdout();
    if !o.quiet {
        let _ = writeln!(stdout, "Sending build context to Docker daemon  {}", berth_api::units::human_size_prec(size as f64, 4));
    }
    let path = query("/build", &params(&o, &dockerfile)?);
    let resp = ctx.client.send(
        "POST",
        &path,
        &[("X-Registry-Config", "e30=")],
        Body::Chunked { content_type: "application/x-tar", reader: &mut body },
    )?;
    let mut id = String::new();
    let tty = term::isatty(1);
    let r = stream::display_json_messages(resp, &mut stdout, tty, |aux| {
        if let Some(i) = aux.get("ID").and_then(|v| v.as_str()) {
            id = i.to_string();
        }
    });
    match r {
        Ok(()) => {}
        Err(stream::DisplayError::Stream(e)) => {
            return Err(Fail::new(e.code.map(|c| c as i32).filter(|c| *c != 0).unwrap_or(1), e.message));
        }
        Err(stream::DisplayError::Io(e)) => return Err(fail(e.to_string())),
    }
    if let Some(f) = &o.iidfile {
        fs::write(f, &id).map_err(|e| fail(format!("failed to write image ID to file: {e}")))?;
    }
    Ok(0)
}
