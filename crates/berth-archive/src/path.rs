//! Lexical path cleaning for container paths and tar entry names.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Lexically cleans an absolute container path (`..` stops at `/`).
pub fn clean_abs(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Clean relative components of a tar entry name (`.` and a leading `/` dropped);
/// `None` when it holds `..`.
pub fn tar_components(raw: &Path) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean_abs("/a/../../etc//x/."), PathBuf::from("/etc/x"));
        let c = |s: &str| tar_components(Path::new(s)).map(|v| v.join(std::ffi::OsStr::new("/")));
        assert_eq!(c("./a/b/"), Some("a/b".into()));
        assert_eq!(c("/abs/f"), Some("abs/f".into()));
        assert_eq!(c("x/../../f"), None);
        assert_eq!(c("../f"), None);
    }
}
