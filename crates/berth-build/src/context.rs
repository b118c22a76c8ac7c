//! COPY and ADD sources: the build context (a directory the daemon extracted, filtered
//! by `.dockerignore`) or a tree taken out of another stage or image, resolved
//! (globs, directories, multiple sources) into a plan of layer entries; the plan's
//! content hash (content, mode, owner, link targets — never mtimes) for the cache key;
//! and the layer tar written from it.
//!
//! Sources never leave their root: paths are cleaned lexically (`..` cannot climb above
//! the root), symlinks are copied as links and never followed.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ignore::Matcher;

/// Where COPY reads from.
#[derive(Clone, Debug)]
pub struct SourceRoot {
    pub root: PathBuf,
    /// The context's `.dockerignore` (none for stages and images).
    pub ignore: Matcher,
}

/// What one layer entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryData {
    Dir,
    /// A file on the host (read when hashing and when writing).
    File(PathBuf),
    /// Bytes (heredocs, downloaded files are written to a file first).
    Bytes(Vec<u8>),
    Symlink(String),
}

/// One entry of the layer to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path in the image, cleaned (`/app/a.txt`).
    pub path: String,
    pub data: EntryData,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

/// A source that failed to resolve, in Docker's words.
pub fn not_found(src: &str) -> String {
    format!("file not found in build context or excluded by .dockerignore: stat {src}: file does not exist")
}

/// Lexical clean of a relative path; `..` stops at the root.
pub fn clean_rel(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    out.join("/")
}

/// Cleans an absolute path (`/a/./b/../c` → `/a/c`).
pub fn clean_abs(p: &str) -> String {
    format!("/{}", clean_rel(p))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Whether one path element matches a glob element (`*`, `?`, `[…]`, `\` escapes).
pub fn glob_elem(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else {
                    return false;
                };
                let Some(&c) = n.first() else { return false };
                let mut class = &p[1..end];
                let negate = matches!(class.first(), Some('^') | Some('!'));
                if negate {
                    class = &class[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && m(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && m(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

impl SourceRoot {
    fn excluded(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.excluded(rel)
    }

    /// Resolves one source (a path or a glob, relative to the root) into the relative
    /// paths it names, sorted.
    pub fn resolve(&self, src: &str) -> Result<Vec<String>, String> {
        let rel = clean_rel(src);
        if !has_glob(&rel) {
            let p = self.root.join(&rel);
            if fs::symlink_metadata(&p).is_err() || self.excluded(&rel) {
                return Err(not_found(src));
            }
            return Ok(vec![rel]);
        }
        // Expand element by element.
        let mut cur: Vec<String> = vec![String::new()];
        for elem in rel.split('/') {
            let mut next = Vec::new();
            for base in &cur {
                if !has_glob(elem) {
                    let cand = if base.is_empty() { elem.to_string() } else { format!("{base}/{elem}") };
                    if fs::symlink_metadata(self.root.join(&cand)).is_ok() {
                        next.push(cand);
                    }
                    continue;
                }
                let dir = self.root.join(base);
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                names.sort();
                for n in names {
                    if glob_elem(elem, &n) {
                        next.push(if base.is_empty() { n } else { format!("{base}/{n}") });
                    }
                }
            }
            cur = next;
        }
        cur.retain(|r| !self.excluded(r));
        if cur.is_empty() {
            return Err("no source files were specified".to_string());
        }
        Ok(cur)
    }

    /// Adds `rel` (a file, link or directory) to `plan` at `dest`; a directory's
    /// contents go under `dest`.
    pub fn plan(&self, rel: &str, dest: &str, own: Owner, plan: &mut Vec<Entry>) -> Result<(), String> {
        let host = self.root.join(rel);
        let md = fs::symlink_metadata(&host).map_err(|_| not_found(rel))?;
        if md.is_dir() {
            if !dest.is_empty() && dest != "/" {
                plan.push(own.entry(dest, EntryData::Dir, &md));
            }
            self.walk(rel, dest, own, plan)
        } else {
            plan.push(own.entry(dest, data_of(&host, &md)?, &md));
            Ok(())
        }
    }

    fn walk(&self, rel: &str, dest: &str, own: Owner, plan: &mut Vec<Entry>) -> Result<(), String> {
        let dir = self.root.join(rel);
        let rd = fs::read_dir(&dir).map_err(|e| format!("reading {rel}: {e}"))?;
        let mut names: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
            if self.excluded(&r) && !self.ignore.has_exceptions() {
                continue;
            }
            let host = self.root.join(&r);
            let md = fs::symlink_metadata(&host).map_err(|e| format!("{r}: {e}"))?;
            let d = clean_abs(&format!("{dest}/{n}"));
            if md.is_dir() {
                let before = plan.len();
                if !self.excluded(&r) {
                    plan.push(own.entry(&d, EntryData::Dir, &md));
                }
                self.walk(&r, &d, own, plan)?;
                // An excluded directory is kept only for the exceptions under it.
                if self.excluded(&r) && plan.len() > before {
                    plan.insert(before, own.entry(&d, EntryData::Dir, &md));
                }
            } else if !self.excluded(&r) {
                plan.push(own.entry(&d, data_of(&host, &md)?, &md));
            }
        }
        Ok(())
    }
}

fn data_of(host: &Path, md: &fs::Metadata) -> Result<EntryData, String> {
    if md.file_type().is_symlink() {
        let t = fs::read_link(host).map_err(|e| format!("{}: {e}", host.display()))?;
        Ok(EntryData::Symlink(t.to_string_lossy().into_owned()))
    } else if md.is_file() {
        Ok(EntryData::File(host.to_path_buf()))
    } else {
        Err(format!("{}: unsupported file type", host.display()))
    }
}

/// Ownership and mode overrides of COPY/ADD (`--chown`, `--chmod`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub chmod: Option<u32>,
}

impl Owner {
    pub fn entry(&self, path: &str, data: EntryData, md: &fs::Metadata) -> Entry {
        let mode = match (&data, self.chmod) {
            (EntryData::Symlink(_), _) => 0o777,
            (_, Some(m)) => m,
            _ => md.permissions().mode() & 0o7777,
        };
        Entry { path: clean_abs(path), data, mode, uid: self.uid, gid: self.gid, mtime: md.mtime().max(0) as u64 }
    }
}

/// The plan's content hash: paths, types, modes, owners, link targets and file
/// contents, in plan order (never mtimes).
pub fn hash_plan(plan: &[Entry]) -> Result<String, String> {
    let mut h = Sha256::new();
    for e in plan {
        h.update(e.path.as_bytes());
        h.update([0]);
        h.update(format!("{:o} {} {}", e.mode, e.uid, e.gid).as_bytes());
        match &e.data {
            EntryData::Dir => h.update(b"d"),
            EntryData::Symlink(t) => {
                h.update(b"l");
                h.update(t.as_bytes());
            }
            EntryData::Bytes(b) => {
                h.update(b"f");
                h.update(Sha256::digest(b));
            }
            EntryData::File(p) => {
                h.update(b"f");
                let mut f = fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let mut fh = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = f.read(&mut buf).map_err(|e| format!("{}: {e}", p.display()))?;
                    if n == 0 {
                        break;
                    }
                    fh.update(&buf[..n]);
                }
                h.update(fh.finalize());
            }
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes the plan as an uncompressed layer tar; later entries for the same path win.
pub fn write_tar(plan: &[Entry], out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    for e in plan {
        let name = e.path.trim_start_matches('/');
        if name.is_empty() {
            continue;
        }
        let mut hd = tar::Header::new_gnu();
        hd.set_mode(e.mode);
        hd.set_uid(u64::from(e.uid));
        hd.set_gid(u64::from(e.gid));
        hd.set_mtime(e.mtime);
        match &e.data {
            EntryData::Dir => {
                hd.set_entry_type(tar::EntryType::Directory);
                hd.set_size(0);
                b.append_data(&mut hd, format!("{name}/"), io::empty())?;
            }
            EntryData::Symlink(t) => {
                hd.set_entry_type(tar::EntryType::Symlink);
                hd.set_size(0);
                b.append_link(&mut hd, name, t)?;
            }
            EntryData::Bytes(bytes) => {
                hd.set_entry_type(tar::EntryType::Regular);
                hd.set_size(bytes.len() as u64);
                b.append_data(&mut hd, name, bytes.as_slice())?;
            }
            EntryData::File(p) => {
                let f = fs::File::open(p)?;
                hd.set_entry_type(tar::EntryType::Regular);
                hd.set_size(f.metadata()?.len());
                b.append_data(&mut hd, name, f)?;
            }
        }
    }
    b.into_inner()?.flush()
}

/// Whether a local ADD source is an archive Docker extracts (tar, gzip'ed tar).
pub fn archive_kind(path: &Path) -> Option<&'static str> {
    let mut f = fs::File::open(path).ok()?;
    let mut head = [0u8; 262];
    let n = f.read(&mut head).ok()?;
    if n >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        return Some("gzip");
    }
    if n >= 262 && &head[257..262] == b"ustar" {
        return Some("tar");
    }
    None
}

/// Adds the entries of a local archive (ADD's auto-extraction) under `dest`.
pub fn plan_archive(path: &Path, kind: &str, dest: &str, scratch: &Path, plan: &mut Vec<Entry>) -> Result<(), String> {
    let f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let r: Box<dyn Read> = if kind == "gzip" { Box::new(flate2::read::GzDecoder::new(f)) } else { Box::new(f) };
    let mut ar = tar::Archive::new(r);
    let entries = ar.entries().map_err(|e| format!("reading archive: {e}"))?;
    for (i, ent) in entries.enumerate() {
        let mut ent = ent.map_err(|e| format!("reading archive: {e}"))?;
        let hd = ent.header().clone();
        let name = ent.path().map_err(|e| format!("reading archive: {e}"))?.to_string_lossy().into_owned();
        let p = clean_abs(&format!("{dest}/{}", clean_rel(&name)));
        let (uid, gid) = (hd.uid().unwrap_or(0) as u32, hd.gid().unwrap_or(0) as u32);
        let mode = hd.mode().unwrap_or(0o644) & 0o7777;
        let mtime = hd.mtime().unwrap_or(0);
        let data = match hd.entry_type() {
            tar::EntryType::Directory => EntryData::Dir,
            tar::EntryType::Symlink => EntryData::Symlink(
                ent.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default(),
            ),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let tmp = scratch.join(format!("add-{i}"));
                let mut out = fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
                io::copy(&mut ent, &mut out).map_err(|e| format!("reading archive: {e}"))?;
                EntryData::File(tmp)
            }
            // Hard links, devices and fifos are left out of an ADD extraction.
            _ => continue,
        };
        plan.push(Entry { path: p, data, mode, uid, gid, mtime });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.md", false),
            ("a?c", "abc", true),
            ("[ab]*", "b1", true),
            ("[!ab]*", "b1", false),
            ("\\*", "*", true),
            ("*", "", true),
        ] {
            assert_eq!(glob_elem(p, n), want, "{p} {n}");
        }
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        let r = d.path();
        fs::create_dir_all(r.join("src/sub")).expect("mkdir");
        fs::write(r.join("a.txt"), "a").expect("write");
        fs::write(r.join("b.txt"), "b").expect("write");
        fs::write(r.join("src/x.rs"), "x").expect("write");
        fs::write(r.join("src/sub/y.rs"), "y").expect("write");
        std::os::unix::fs::symlink("a.txt", r.join("link")).expect("symlink");
        d
    }

    #[test]
    fn resolve_and_plan() {
        let d = tree();
        let root = SourceRoot { root: d.path().to_path_buf(), ignore: Matcher::new("src/sub\n*.md").expect("ignore") };
        assert_eq!(root.resolve("*.txt"), Ok(vec!["a.txt".to_string(), "b.txt".to_string()]));
        assert_eq!(root.resolve("./src/../a.txt"), Ok(vec!["a.txt".to_string()]));
        assert_eq!(root.resolve("../../a.txt"), Ok(vec!["a.txt".to_string()]));
        assert_eq!(root.resolve("nope"), Err(not_found("nope")));
        assert_eq!(root.resolve("src/sub"), Err(not_found("src/sub")));
        let mut plan = Vec::new();
        root.plan("src", "/app", Owner { uid: 1, gid: 2, chmod: None }, &mut plan).expect("plan");
        let paths: Vec<&str> = plan.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/app", "/app/x.rs"]);
        assert!(plan.iter().all(|e| e.uid == 1 && e.gid == 2));
        let mut plan = Vec::new();
        root.plan("link", "/l", Owner::default(), &mut plan).expect("plan");
        assert_eq!(plan[0].data, EntryData::Symlink("a.txt".into()));
    }

    #[test]
    fn hash_ignores_mtime_but_not_content_or_mode() {
        let d = tree();
        let root = SourceRoot { root: d.path().to_path_buf(), ignore: Matcher::default() };
        let hash = |own: Owner| {
            let mut plan = Vec::new();
            root.plan("a.txt", "/a", own, &mut plan).expect("plan");
            hash_plan(&plan).expect("hash")
        };
        let h0 = hash(Owner::default());
        let f = d.path().join("a.txt");
        fs::File::options().write(true).open(&f).and_then(|f| f.set_modified(std::time::SystemTime::UNIX_EPOCH)).expect("mtime");
        assert_eq!(hash(Owner::default()), h0);
        assert_ne!(hash(Owner { uid: 5, gid: 5, chmod: None }), h0);
        assert_ne!(hash(Owner { chmod: Some(0o600), ..Owner::default() }), h0);
        fs::write(&f, "changed").expect("write");
        assert_ne!(hash(Owner::default()), h0);
    }

    #[test]
    fn tar_round_trip() {
        let d = tree();
        let root = SourceRoot { root: d.path().to_path_buf(), ignore: Matcher::default() };
        let mut plan = Vec::new();
        root.plan("src", "/app", Owner { uid: 0, gid: 0, chmod: Some(0o700) }, &mut plan).expect("plan");
        plan.push(Entry { path: "/h".into(), data: EntryData::Bytes(b"hi\n".to_vec()), mode: 0o644, uid: 0, gid: 0, mtime: 0 });
        let mut buf = Vec::new();
        write_tar(&plan, &mut buf).expect("tar");
        let tarpath = d.path().join("t.tar");
        fs::write(&tarpath, &buf).expect("write");
        assert_eq!(archive_kind(&tarpath), Some("tar"));
        let mut again = Vec::new();
        plan_archive(&tarpath, "tar", "/x", d.path(), &mut again).expect("archive");
        let paths: Vec<&str> = again.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/x/app", "/x/app/sub", "/x/app/sub/y.rs", "/x/app/x.rs", "/x/h"]);
        assert_eq!(again[1].mode, 0o700);
    }
}
