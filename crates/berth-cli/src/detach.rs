//! Client-side detach keys, as the docker CLI does them: with a TTY, stdin passes
//! through an escape detector (`--detach-keys`, else `detachKeys` from the client
//! config, else ctrl-p,ctrl-q). On the full sequence the client drops the connection and
//! returns at once; partial matches are forwarded once they stop matching.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_KEYS: &[u8] = &[0x10, 0x11];

/// moby/term `ToBytes`: `ctrl-<c>` names or single characters, comma separated.
pub fn parse_keys(spec: &str) -> Result<Vec<u8>, String> {
    const CTRL: &[&str] = &[
        "ctrl-@", "ctrl-a", "ctrl-b", "ctrl-c", "ctrl-d", "ctrl-e", "ctrl-f", "ctrl-g", "ctrl-h", "ctrl-i", "ctrl-j", "ctrl-k",
        "ctrl-l", "ctrl-m", "ctrl-n", "ctrl-o", "ctrl-p", "ctrl-q", "ctrl-r", "ctrl-s", "ctrl-t", "ctrl-u", "ctrl-v", "ctrl-w",
        "ctrl-x", "ctrl-y", "ctrl-z", "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_",
    ];
    let mut out = Vec::new();
    for key in spec.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        match CTRL.iter().position(|c| c.eq_ignore_ascii_case(key)) {
            Some(code) => out.push(code as u8),
            None => return Err(format!("Unknown character: '{key}'")),
        }
    }
    Ok(out)
}

static CONFIG_DIR: OnceLock<Option<String>> = OnceLock::new();

/// Records `--config` (called once from main).
pub fn set_config_dir(dir: Option<String>) {
    let _ = CONFIG_DIR.set(dir);
}

/// The client config directory: `--config`, `DOCKER_CONFIG`, `~/.docker`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(Some(d)) = CONFIG_DIR.get() {
        return Some(PathBuf::from(d));
    }
    if let Ok(d) = std::env::var("DOCKER_CONFIG") {
        if !d.is_empty() {
            return Some(PathBuf::from(d));
        }
    }
    std::env::var("HOME").ok().map(|h| PathBuf::from(h).join(".docker"))
}

/// `detachKeys` from the client config file, if set.
pub fn config_keys() -> Option<String> {
    let path = config_dir()?.join("config.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("detachKeys").and_then(|k| k.as_str()).filter(|k| !k.is_empty()).map(str::to_owned)
}

/// The detach keys a command uses: the flag, else the config. `None` means "not given"
/// (nothing is sent to the daemon; the default sequence still applies locally).
pub fn effective(flag: Option<&str>) -> Option<String> {
    flag.filter(|f| !f.is_empty()).map(str::to_owned).or_else(config_keys)
}

/// The byte sequence to watch for.
pub fn keys_bytes(keys: Option<&str>) -> Result<Vec<u8>, String> {
    match keys {
        None => Ok(DEFAULT_KEYS.to_vec()),
        Some(k) => parse_keys(k).map_err(|_| format!("Invalid detach keys ({k}) provided")),
    }
}

/// A streaming matcher for the escape sequence.
pub struct Escape {
    keys: Vec<u8>,
    pos: usize,
}

/// What to do with one chunk of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Forward these bytes (may be empty while a partial match is held back).
    Forward(Vec<u8>),
    /// The sequence was typed: forward these bytes first, then detach.
    Detach(Vec<u8>),
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Escape {
        Escape { keys, pos: 0 }
    }

    pub fn feed(&mut self, input: &[u8]) -> Scan {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return Scan::Forward(out);
        }
        for &b in input {
            if b == self.keys[self.pos] {
                self.pos += 1;
                if self.pos == self.keys.len() {
                    self.pos = 0;
                    return Scan::Detach(out);
                }
                continue;
            }
            // A held partial match that stops matching is passed on as typed.
            out.extend_from_slice(&self.keys[..self.pos]);
            self.pos = 0;
            if b == self.keys[0] {
                self.pos = 1;
                if self.keys.len() == 1 {
                    self.pos = 0;
                    return Scan::Detach(out);
                }
            } else {
                out.push(b);
            }
        }
        Scan::Forward(out)
    }

    /// Bytes held back at EOF are passed on.
    pub fn flush(&mut self) -> Vec<u8> {
        let held = self.keys[..self.pos].to_vec();
        self.pos = 0;
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs() {
        let cases: &[(&str, Result<Vec<u8>, String>)] = &[
            ("ctrl-p,ctrl-q", Ok(vec![0x10, 0x11])),
            ("ctrl-a,ctrl-B", Ok(vec![0x01, 0x02])),
            ("ctrl-@,ctrl-_", Ok(vec![0x00, 0x1f])),
            ("ctrl-x", Ok(vec![0x18])),
            ("a,b,ctrl-\\", Ok(vec![b'a', b'b', 0x1c])),
            ("ctrl-1", Err("Unknown character: 'ctrl-1'".into())),
            ("ab", Err("Unknown character: 'ab'".into())),
        ];
        for (spec, want) in cases {
            assert_eq!(&parse_keys(spec), want, "{spec}");
        }
        assert_eq!(keys_bytes(None), Ok(DEFAULT_KEYS.to_vec()));
        assert_eq!(keys_bytes(Some("nope")), Err("Invalid detach keys (nope) provided".into()));
    }

    #[test]
    fn escape_scanning() {
        let fwd = |s: &[u8]| Scan::Forward(s.to_vec());
        let det = |s: &[u8]| Scan::Detach(s.to_vec());
        // (keys, chunks fed in order, expected result per chunk)
        let cases: Vec<(&[u8], Vec<&[u8]>, Vec<Scan>)> = vec![
            (DEFAULT_KEYS, vec![b"echo hi\r"], vec![fwd(b"echo hi\r")]),
            (DEFAULT_KEYS, vec![b"\x10\x11"], vec![det(b"")]),
            (DEFAULT_KEYS, vec![b"ls\x10", b"\x11"], vec![fwd(b"ls"), det(b"")]),
            (DEFAULT_KEYS, vec![b"ab\x10\x11cd"], vec![det(b"ab")]),
            (DEFAULT_KEYS, vec![b"\x10", b"x"], vec![fwd(b""), fwd(b"\x10x")]),
            (DEFAULT_KEYS, vec![b"\x10\x10\x11"], vec![det(b"\x10")]),
            (b"\x18", vec![b"\x10\x11", b"\x18"], vec![fwd(b"\x10\x11"), det(b"")]),
            (b"", vec![b"\x10\x11"], vec![fwd(b"\x10\x11")]),
        ];
        for (keys, chunks, want) in cases {
            let mut e = Escape::new(keys.to_vec());
            let got: Vec<Scan> = chunks.iter().map(|c| e.feed(c)).collect();
            assert_eq!(got, want, "{keys:?} {chunks:?}");
        }
        let mut e = Escape::new(DEFAULT_KEYS.to_vec());
        assert_eq!(e.feed(b"a\x10"), Scan::Forward(b"a".to_vec()));
        assert_eq!(e.flush(), b"\x10".to_vec());
    }
}
