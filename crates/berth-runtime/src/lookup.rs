//! Finding the executable for `args[0]` inside the container (after pivot_root), with
//! the error texts of Docker/runc that the docker CLI maps to exit codes 126/127.

use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a stat of a candidate found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Missing,
    Dir,
    File { executable: bool },
    /// Any other stat failure, as Go-style errno text.
    Error(String),
}

/// The PATH value from a container env list (`KEY=value`), or the default.
pub fn path_from_env(env: &[String]) -> &str {
    env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH)
}

/// Resolves `arg0` to the path to execve. `probe` stats a path (following symlinks);
/// `cwd` anchors relative names and empty PATH entries.
pub fn lookup(arg0: &str, path_env: &str, cwd: &Path, probe: impl Fn(&Path) -> Probe) -> Result<PathBuf, String> {
    if arg0.is_empty() {
        return Err("exec: \"\": executable file not found in $PATH".to_string());
    }
    if arg0.contains('/') {
        let p = cwd.join(arg0);
        return match probe(&p) {
            Probe::File { executable: true } => Ok(PathBuf::from(arg0)),
            Probe::File { executable: false } => Err(format!("exec: \"{arg0}\": permission denied")),
            Probe::Dir => Err(format!("exec: \"{arg0}\": is a directory")),
            Probe::Missing => Err(format!("exec: \"{arg0}\": stat {arg0}: no such file or directory")),
            Probe::Error(e) => Err(format!("exec: \"{arg0}\": stat {arg0}: {e}")),
        };
    }
    for dir in path_env.split(':') {
        let base = if dir.is_empty() { cwd.to_path_buf() } else { cwd.join(dir) };
        let cand = base.join(arg0);
        if let Probe::File { executable: true } = probe(&cand) {
            return Ok(cand);
        }
    }
    Err(format!("exec: \"{arg0}\": executable file not found in $PATH"))
}

/// The real probe: `stat(2)` following symlinks.
pub fn stat_probe(p: &Path) -> Probe {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Probe::Dir,
        Ok(m) => Probe::File { executable: m.permissions().mode() & 0o111 != 0 },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probe::Missing,
        Err(e) => Probe::Error(berth_sys::errno_text(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(p: &Path) -> Probe {
        match p.to_str().unwrap() {
            "/bin/ls" | "/usr/bin/env" | "/w/./run.sh" | "/w/tool" => Probe::File { executable: true },
            "/etc/passwd" | "/usr/local/bin/env" => Probe::File { executable: false },
            "/bin" => Probe::Dir,
            "/secret" => Probe::Error("permission denied".into()),
            _ => Probe::Missing,
        }
    }

    #[test]
    fn table() {
        let cwd = Path::new("/w");
        let cases: &[(&str, &str, Result<&str, &str>)] = &[
            ("ls", DEFAULT_PATH, Ok("/bin/ls")),
            ("env", DEFAULT_PATH, Ok("/usr/bin/env")), // non-executable earlier match skipped
            ("nope", DEFAULT_PATH, Err("exec: \"nope\": executable file not found in $PATH")),
            ("ls", "/usr/bin", Err("exec: \"ls\": executable file not found in $PATH")),
            ("tool", "/x::/y", Ok("/w/tool")), // empty entry = cwd
            ("/nope", DEFAULT_PATH, Err("exec: \"/nope\": stat /nope: no such file or directory")),
            ("/etc/passwd", DEFAULT_PATH, Err("exec: \"/etc/passwd\": permission denied")),
            ("/bin", DEFAULT_PATH, Err("exec: \"/bin\": is a directory")),
            ("/bin/ls", "", Ok("/bin/ls")),
            ("./run.sh", DEFAULT_PATH, Ok("./run.sh")),
            ("/secret", DEFAULT_PATH, Err("exec: \"/secret\": stat /secret: permission denied")),
            ("", DEFAULT_PATH, Err("exec: \"\": executable file not found in $PATH")),
        ];
        for (arg0, path, want) in cases {
            let got = lookup(arg0, path, cwd, fake);
            match want {
                Ok(p) => assert_eq!(got, Ok(PathBuf::from(p)), "{arg0}"),
                Err(e) => assert_eq!(got, Err(e.to_string()), "{arg0}"),
            }
        }
    }

    #[test]
    fn path_from_env_takes_last() {
        assert_eq!(path_from_env(&[]), DEFAULT_PATH);
        assert_eq!(path_from_env(&["A=1".into(), "PATH=/a".into(), "PATH=/b".into()]), "/b");
    }
}
