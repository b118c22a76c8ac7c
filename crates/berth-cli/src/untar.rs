//! Extracting the daemon's tar into a local directory (`docker cp CTR:SRC DST`), kept
//! inside that directory whatever the archive holds: the daemon is trusted to send
//! the copied resource, not to choose where on the host it lands. Names are cleaned
//! (`..` that climbs out is refused, absolute names are relative to the
//! destination), parent directories are resolved without leaving it (a symlink whose
//! target is absolute or climbs out is refused), the last component is never
//! followed, and hard links must point inside. Docker's own extraction (`archive.
//! Untar` with `NoOverwriteDirNonDir`) is the model for everything else; `fsops.rs`
//! decides the destination directory and the renames.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Docker's breakout error text.
fn outside(name: &str, dest: &Path) -> String {
    format!("{name:?} is outside of {:?}", dest.display().to_string())
}

/// The components of a tar name, lexically cleaned; `None` when `..` climbs out.
pub fn clean_components(name: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c.to_string()),
        }
    }
    Some(out)
}

/// `dest` joined with `comps`, following symlinks only while they stay inside `dest`.
/// Missing directories are created when `create`.
pub fn resolve_within(dest: &Path, comps: &[String], create: bool) -> Result<PathBuf, String> {
    let mut pending: VecDeque<OsString> = comps.iter().map(OsString::from).collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    let here = |done: &[OsString]| done.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
    while let Some(c) = pending.pop_front() {
        if c == "." || c.is_empty() {
            continue;
        }
        if c == ".." {
            if done.pop().is_none() {
                return Err(format!("a symlink leads out of {:?}", dest.display().to_string()));
            }
            continue;
        }
        let cand = here(&done).join(&c);
        match fs::symlink_metadata(&cand) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                let target = fs::read_link(&cand).map_err(|e| format!("readlink {}: {e}", cand.display()))?;
                if links > 40 || target.is_absolute() {
                    return Err(format!("refusing to follow symlink {} -> {}: it leads out of {:?}", cand.display(), target.display(), dest.display().to_string()));
                }
                let comps: Vec<OsString> = target.iter().map(OsString::from).collect();
                for x in comps.into_iter().rev() {
                    pending.push_front(x);
                }
            }
            Ok(m) if m.is_dir() => done.push(c),
            Ok(_) => return Err(format!("{}: not a directory", cand.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::DirBuilder::new().mode(0o755).create(&cand).map_err(|e| format!("mkdir {}: {e}", cand.display()))?;
                done.push(c);
            }
            Err(e) => return Err(format!("lstat {}: {e}", cand.display())),
        }
    }
    Ok(here(&done))
}

/// Docker's symlink check: a relative target climbing out of `dest` from the link's
/// directory `dir` (components under `dest`) is refused; an absolute one is kept as
/// it is (it is never followed here).
fn symlink_escapes(dir: &[String], target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth = dir.len();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// Extracts `r` into the existing directory `dest`. `rename` maps each entry name
/// (and a hard link's target) to its name under `dest` (docker's rebase), or refuses it.
pub fn unpack<R: Read>(r: R, dest: &Path, rename: &dyn Fn(&str) -> Result<String, String>) -> Result<(), String> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_mtime(true);
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in ar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = rename(&raw)?;
        let comps = clean_components(&name).ok_or_else(|| outside(&name, dest))?;
        let Some((last, parent)) = comps.split_last() else {
            continue; // the destination itself
        };
        let kind = entry.header().entry_type();
        let target = resolve_within(dest, parent, true)?.join(last);
        let is_dir = kind.is_dir();
        if let Ok(fi) = fs::symlink_metadata(&target) {
            if fi.is_dir() && !is_dir {
                return Err(format!("cannot overwrite directory {:?} with non-directory {:?}", target.display().to_string(), name));
            }
            if !fi.is_dir() && is_dir {
                return Err(format!("cannot overwrite non-directory {:?} with directory {:?}", target.display().to_string(), name));
            }
            if !fi.is_dir() {
                fs::remove_file(&target).map_err(|e| format!("remove {}: {e}", target.display()))?;
            }
        }
        let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
        if kind.is_hard_link() {
            let link = rename(&link)?;
            let lc = clean_components(&link).filter(|c| !c.is_empty()).ok_or_else(|| outside(&link, dest))?;
            let (llast, lparent) = lc.split_last().ok_or_else(|| outside(&link, dest))?;
            // Like link(2), the last component is not followed.
            let src = resolve_within(dest, lparent, false)?.join(llast);
            fs::hard_link(&src, &target).map_err(|e| format!("link {} {}: {e}", src.display(), target.display()))?;
            continue;
        }
        if kind.is_symlink() && symlink_escapes(parent, &link) {
            return Err(format!("invalid symlink {:?} -> {link:?}", target.display().to_string()));
        }
        if is_dir {
            if let Ok(m) = entry.header().mtime() {
                dir_times.push((target.clone(), m));
            }
        }
        entry.unpack(&target).map_err(|e| e.to_string())?;
    }
    // Directory times last, once their contents no longer change them (as docker).
    for (dir, mtime) in dir_times.iter().rev() {
        if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if let Ok(f) = fs::File::open(dir) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime);
            let _ = f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(p) = todo.pop() {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn extraction_never_leaves_the_destination() {
        use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as L};
        // (entries, Ok(paths under dest) | Err(text))
        type Case = (Vec<(&'static str, tar::EntryType, &'static str)>, Result<Vec<&'static str>, &'static str>);
        let cases: Vec<Case> = vec![
            (vec![("new/", D, ""), ("new/bin/", D, ""), ("new/bin/sh", F, "")], Ok(vec!["new/bin/sh"])),
            (vec![("/etc/passwd", F, "")], Ok(vec!["etc/passwd"])),
            (vec![("../x", F, "")], Err("\"../x\" is outside of")),
            (vec![("a/../../x", F, "")], Err("is outside of")),
            (vec![("l", L, "@OUT@"), ("l/passwd", F, "")], Err("refusing to follow symlink")),
            (vec![("l", L, "../.."), ("l/x", F, "")], Err("invalid symlink")),
            (vec![("d/", D, ""), ("d/up", L, ".."), ("d/up/f", F, "")], Ok(vec!["f", "d/up"])),
            (vec![("h", H, "../outside/passwd")], Err("is outside of")),
            (vec![("h", H, "@OUT@/passwd")], Err("No such file")),
            (vec![("f", F, ""), ("f/x", F, "")], Err("not a directory")),
            (vec![("d/", D, ""), ("d", F, "")], Err("cannot overwrite directory")),
        ];
        for (entries, want) in cases {
            let t = tempfile::tempdir().unwrap();
            let out = t.path().join("outside");
            fs::create_dir(&out).unwrap();
            fs::write(out.join("passwd"), "PRECIOUS").unwrap();
            let dest = t.path().join("dest");
            fs::create_dir(&dest).unwrap();
            let mut tar = Vec::new();
            for (name, kind, link) in &entries {
                raw_entry(&mut tar, name, *kind, &link.replace("@OUT@", &out.to_string_lossy()), b"");
            }
            tar.extend_from_slice(&[0; 1024]);
            let r = unpack(&tar[..], &dest, &|n| Ok(n.to_string()));
            match want {
                Ok(paths) => {
                    r.unwrap_or_else(|e| panic!("{entries:?}: {e}"));
                    for p in paths {
                        assert!(fs::symlink_metadata(dest.join(p)).is_ok(), "{entries:?}: {p}");
                    }
                }
                Err(text) => {
                    let e = r.expect_err(&format!("{entries:?}"));
                    assert!(e.contains(text), "{entries:?}: {e}");
                }
            }
            assert_eq!(tree(&out), vec!["", "passwd"], "{entries:?}");
            assert_eq!(fs::read_to_string(out.join("passwd")).unwrap(), "PRECIOUS");
            let top: Vec<String> = tree(t.path()).into_iter().filter(|p| !p.starts_with("dest")).collect();
            assert_eq!(top, vec!["", "outside", "outside/passwd"], "{entries:?}");
        }
    }
}
