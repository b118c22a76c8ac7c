//! The diff walker: Docker's overlay `changes` — every path of an upper dir against
//! what the lower layers (top first) hold, read with `lstat` only.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::{is_opaque, is_stub, is_whiteout};

/// One line of `docker diff`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: u8,
}

pub const CHANGE_MODIFY: u8 = 0;
pub const CHANGE_ADD: u8 = 1;
pub const CHANGE_DELETE: u8 = 2;

/// What the lower layers (top first, overlay semantics: whiteouts hide, opaque dirs
/// stop the merge, a non-directory hides everything below it) hold at `rel`.
pub fn lower_lookup(lowers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    let comps: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut active: Vec<&PathBuf> = lowers.iter().collect();
    let mut sub = PathBuf::new();
    for (depth, c) in comps.iter().enumerate() {
        sub.push(c);
        let mut first: Option<fs::Metadata> = None;
        let mut next = Vec::new();
        for l in &active {
            let p = l.join(&sub);
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&m) {
                break;
            }
            let dir = m.is_dir();
            if first.is_none() {
                first = Some(m);
            } else if !dir {
                break;
            }
            if !dir {
                break;
            }
            next.push(*l);
            if is_opaque(&p) {
                break;
            }
        }
        let found = first?;
        if depth + 1 == comps.len() {
            return Some(found);
        }
        if !found.is_dir() {
            return None;
        }
        active = next;
    }
    None
}

fn same_dir_meta(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    let same_time = a.mtime() == b.mtime()
        && (a.mtime_nsec() == b.mtime_nsec() || a.mtime_nsec() == 0 || b.mtime_nsec() == 0);
    a.size() == b.size() && a.mode() == b.mode() && same_time
}

/// Docker's overlay `changes`: every path of `upper` (walked in lexical order) against
/// what `lowers` hold; parents of added and deleted paths show as modified.
/// Mount-point stubs (`stubs`, absolute container paths) are left out.
pub fn compute_changes(
    upper: &Path,
    lowers: &[PathBuf],
    stubs: &[PathBuf],
) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut changed_dirs: HashSet<PathBuf> = HashSet::new();
    let w = Walk {
        upper,
        lowers,
        stubs,
    };
    w.walk(Path::new("/"), &mut out, &mut changed_dirs)?;
    Ok(out)
}

struct Walk<'a> {
    upper: &'a Path,
    lowers: &'a [PathBuf],
    stubs: &'a [PathBuf],
}

impl Walk<'_> {
    fn walk(
        &self,
        rel_dir: &Path,
        out: &mut Vec<Change>,
        changed_dirs: &mut HashSet<PathBuf>,
    ) -> io::Result<()> {
        let (upper, lowers) = (self.upper, self.lowers);
        let host_dir = upper.join(rel_dir.strip_prefix("/").unwrap_or(rel_dir));
        let mut kids: Vec<std::ffi::OsString> = fs::read_dir(&host_dir)?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        kids.sort();
        for k in kids {
            let rel = rel_dir.join(&k);
            let host = host_dir.join(&k);
            let Ok(md) = fs::symlink_metadata(&host) else {
                continue;
            };
            let is_mount_point = self.stubs.contains(&rel);
            if is_mount_point && is_stub(&host, &md) && lower_lookup(lowers, &rel).is_none() {
                continue;
            }
            let holds_stub = self.stubs.iter().any(|s| s.parent() == Some(rel.as_path()));
            let deleted = is_whiteout(&md);
            let mut record = true;
            let kind = if deleted {
                CHANGE_DELETE
            } else {
                match lower_lookup(lowers, &rel) {
                    Some(lmd) => {
                        // A directory only touched by the runtime's stub in it is unchanged.
                        let same =
                            same_dir_meta(&md, &lmd) || (holds_stub && md.mode() == lmd.mode());
                        if md.is_dir() && lmd.is_dir() && same && !is_opaque(&host) {
                            record = false;
                        }
                        CHANGE_MODIFY
                    }
                    None => CHANGE_ADD,
                }
            };
            if record {
                if md.is_dir() {
                    changed_dirs.insert(rel.clone());
                }
                if kind != CHANGE_MODIFY {
                    if let Some(parent) = rel.parent().filter(|p| *p != Path::new("/")) {
                        if changed_dirs.insert(parent.to_path_buf()) {
                            out.push(Change {
                                path: parent.to_string_lossy().into_owned(),
                                kind: CHANGE_MODIFY,
                            });
                        }
                    }
                }
                out.push(Change {
                    path: rel.to_string_lossy().into_owned(),
                    kind,
                });
            }
            if md.is_dir() {
                self.walk(&rel, out, changed_dirs)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{is_root, whiteout};

    #[test]
    fn changes_against_lower_layers() {
        if !is_root() {
            eprintln!("skipping: whiteouts need CAP_MKNOD");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "tmp", "var/lib", "usr/bin"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/motd"), "hi").unwrap();
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::os::unix::fs::symlink("usr/bin", lower.join("bin")).unwrap();
        // A second, higher lower layer deleting /etc/passwd.
        let lower2 = t.path().join("lower2");
        fs::create_dir_all(lower2.join("etc")).unwrap();
        assert!(whiteout(&lower2.join("etc/passwd")));

        for d in ["etc", "tmp", "var/lib"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("tmp/x"), "new").unwrap();
        assert!(whiteout(&upper.join("etc/motd")));
        fs::write(upper.join("etc/passwd"), "again").unwrap(); // gone in lower2: added
        fs::write(upper.join("var/lib/db"), "d").unwrap();
        // var and var/lib: the same metadata as below, so only their parent record.
        for d in ["var", "var/lib"] {
            let m = fs::metadata(lower.join(d)).unwrap();
            fs::set_permissions(upper.join(d), m.permissions()).unwrap();
        }
        let lowers = vec![lower2.clone(), lower.clone()];
        // Make directory times equal where we want "unchanged".
        for d in ["var/lib", "var"] {
            let m = fs::metadata(upper.join(d)).unwrap();
            let tsp = nix::sys::time::TimeSpec::new(m.mtime(), 0);
            for root in [&upper, &lower] {
                nix::sys::stat::utimensat(
                    None,
                    &root.join(d),
                    &tsp,
                    &tsp,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .unwrap();
            }
        }
        fs::write(upper.join("etc/hosts"), "").unwrap(); // a mount-point stub
        let ch = compute_changes(&upper, &lowers, &[PathBuf::from("/etc/hosts")]).unwrap();
        let got: Vec<String> = ch
            .iter()
            .map(|c| format!("{} {}", ["C", "A", "D"][c.kind as usize], c.path))
            .collect();
        assert!(got.contains(&"D /etc/motd".to_string()), "{got:?}");
        assert!(got.contains(&"A /etc/passwd".to_string()), "{got:?}");
        assert!(got.contains(&"A /tmp/x".to_string()), "{got:?}");
        assert!(!got.iter().any(|g| g.contains("hosts")), "{got:?}");
        assert!(got.contains(&"A /var/lib/db".to_string()), "{got:?}");
        assert!(got.contains(&"C /var/lib".to_string()), "{got:?}");
        assert!(!got.contains(&"C /var".to_string()), "{got:?}");
        // Parents come before their children, once.
        let pos = |s: &str| got.iter().position(|g| g == s).unwrap();
        assert!(pos("C /var/lib") < pos("A /var/lib/db"));
        assert_eq!(
            got.iter().filter(|g| g.ends_with(" /etc")).count(),
            1,
            "{got:?}"
        );

        assert!(lower_lookup(&lowers, Path::new("/etc/motd")).is_some());
        assert!(
            lower_lookup(&lowers, Path::new("/etc/passwd")).is_none(),
            "whited out by lower2"
        );
        assert!(
            lower_lookup(&lowers, Path::new("/bin/sh")).is_none(),
            "through a symlink"
        );
        assert!(lower_lookup(&lowers, Path::new("/bin"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

}
