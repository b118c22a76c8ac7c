//! Typed instructions: a parsed [`Node`] with its flags checked and its arguments
//! expanded against the stage's variables, as Docker's `instructions.Parse` and the
//! dispatchers' own checks do it (their error texts).

use crate::expand::{expand, expand_words, Vars};
use crate::parser::{Heredoc, Node};

/// A `HEALTHCHECK` as the image config's `Healthcheck` holds it (durations in ns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

impl Healthcheck {
    /// Docker's JSON (zero fields omitted).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("Test".into(), serde_json::json!(self.test));
        for (k, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ] {
            if v != 0 {
                m.insert(k.into(), v.into());
            }
        }
        serde_json::Value::Object(m)
    }
}

/// COPY / ADD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopySpec {
    pub add: bool,
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub heredocs: Vec<Heredoc>,
}

/// One instruction, ready to dispatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    From { image: String, name: Option<String>, platform: Option<String> },
    /// `cmd` is the exec form or a one-element shell command (`shell` true).
    Run { cmd: Vec<String>, shell: bool, network: Option<String>, heredocs: Vec<Heredoc> },
    Cmd { cmd: Vec<String>, shell: bool },
    Entrypoint { cmd: Vec<String>, shell: bool },
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Workdir(String),
    User(String),
    Copy(CopySpec),
    Volume(Vec<String>),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Option<Healthcheck>),
    Onbuild(String),
    Maintainer(String),
}

/// Parses `--name=value` flags against the allowed names.
fn flags(node: &Node, allowed: &[&str]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    for f in &node.flags {
        let body = f.trim_start_matches("--");
        let (k, v) = match body.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (body, None),
        };
        if !allowed.contains(&k) {
            return Err(format!("Unknown flag: {k}"));
        }
        if out.iter().any(|(x, _): &(String, Option<String>)| x == k) {
            return Err(format!("Duplicate flag specified: {k}"));
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn flag(fs: &[(String, Option<String>)], name: &str) -> Option<String> {
    fs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone().unwrap_or_default())
}

/// Go's `time.ParseDuration` (units ns, us, µs, ms, s, m, h), in nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += num * mult;
        rest = &rest[u..];
    }
    let v = total.round() as i64;
    Ok(if neg { -v } else { v })
}

fn duration_flag(fs: &[(String, Option<String>)], name: &str) -> Result<i64, String> {
    match flag(fs, name) {
        None => Ok(0),
        Some(v) if v.is_empty() => Ok(0),
        Some(v) => {
            let d = parse_go_duration(&v)?;
            if d == 0 {
                return Ok(0);
            }
            if d < 1_000_000 {
                return Err(format!("Interval {name:?} cannot be less than 1ms"));
            }
            Ok(d)
        }
    }
}

fn pairs(args: &[String], vars: &dyn Vars, escape: char) -> Result<Vec<(String, String)>, String> {
    args.chunks(2)
        .map(|kv| {
            let k = expand(&kv[0], vars, escape)?;
            let v = kv.get(1).map(|v| expand(v, vars, escape)).transpose()?.unwrap_or_default();
            Ok((k, v))
        })
        .collect()
}

fn single(node: &Node, name: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let raw = node.args.first().cloned().unwrap_or_default();
    let words = expand_words(&raw, vars, escape)?;
    if words.is_empty() {
        return Err(format!("{name} requires exactly one argument"));
    }
    Ok(words.join(" "))
}

impl Instruction {
    /// Checks and expands `node` (the stage's variables in `vars`).
    pub fn from_node(node: &Node, vars: &dyn Vars, escape: char) -> Result<Instruction, String> {
        let upper = node.cmd.to_ascii_uppercase();
        let none: &[&str] = &[];
        match node.cmd.as_str() {
            "from" => {
                let fs = flags(node, &["platform"])?;
                let words: Vec<String> = node.args.clone();
                let (image, name) = match words.len() {
                    1 => (words[0].clone(), None),
                    3 if words[1].eq_ignore_ascii_case("as") => (words[0].clone(), Some(words[2].to_ascii_lowercase())),
                    _ => return Err("FROM requires either one or three arguments".into()),
                };
                let image = expand(&image, vars, escape)?;
                if let Some(n) = &name {
                    let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if !ok {
                        return Err(format!("invalid name for build stage: {n:?}, name can't start with a number or contain symbols"));
                    }
                }
                let platform = flag(&fs, "platform").map(|p| expand(&p, vars, escape)).transpose()?;
                Ok(Instruction::From { image, name, platform })
            }
            "run" => {
                let fs = flags(node, &["network", "mount", "security"])?;
                // Docker's classic builder refuses what only BuildKit can do.
                for f in ["mount", "security"] {
                    if flag(&fs, f).is_some() {
                        return Err(format!("the --{f} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"));
                    }
                }
                if node.args.is_empty() && node.heredocs.is_empty() {
                    return Err("RUN requires at least one argument".into());
                }
                Ok(Instruction::Run {
                    cmd: node.args.clone(),
                    shell: !node.json,
                    network: flag(&fs, "network"),
                    heredocs: node.heredocs.clone(),
                })
            }
            "cmd" => {
                flags(node, none)?;
                Ok(Instruction::Cmd { cmd: node.args.clone(), shell: !node.json })
            }
            "entrypoint" => {
                flags(node, none)?;
                Ok(Instruction::Entrypoint { cmd: node.args.clone(), shell: !node.json })
            }
            "env" => Ok(Instruction::Env(pairs(&node.args, vars, escape)?)),
            "label" => Ok(Instruction::Label(pairs(&node.args, vars, escape)?)),
            "arg" => {
                if node.args.is_empty() {
                    return Err("ARG requires at least one argument".into());
                }
                let mut out = Vec::new();
                for a in &node.args {
                    let (k, v) = match a.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(expand(v, vars, escape)?)),
                        None => (a.clone(), None),
                    };
                    if k.is_empty() {
                        return Err("ARG names can not be blank".into());
                    }
                    out.push((k, v));
                }
                Ok(Instruction::Arg(out))
            }
            "expose" => {
                if node.args.is_empty() {
                    return Err("EXPOSE requires at least one argument".into());
                }
                let mut ports = Vec::new();
                for a in &node.args {
                    ports.extend(expand_words(a, vars, escape)?);
                }
                Ok(Instruction::Expose(ports))
            }
            "workdir" => Ok(Instruction::Workdir(single(node, &upper, vars, escape)?)),
            "user" => Ok(Instruction::User(single(node, &upper, vars, escape)?)),
            "stopsignal" => Ok(Instruction::StopSignal(single(node, &upper, vars, escape)?)),
            "maintainer" => Ok(Instruction::Maintainer(node.args.first().cloned().unwrap_or_default())),
            "volume" => {
                let mut vols = Vec::new();
                for a in &node.args {
                    let v = if node.json { a.clone() } else { expand(a, vars, escape)? };
                    if v.trim().is_empty() {
                        return Err("VOLUME specified can not be an empty string".into());
                    }
                    vols.push(v);
                }
                if vols.is_empty() {
                    return Err("VOLUME requires at least one argument".into());
                }
                Ok(Instruction::Volume(vols))
            }
            "shell" => {
                if node.args.is_empty() {
                    return Err("SHELL requires at least one argument".into());
                }
                Ok(Instruction::Shell(node.args.clone()))
            }
            "onbuild" => Ok(Instruction::Onbuild(node.args.first().cloned().unwrap_or_default())),
            "healthcheck" => {
                if node.args.first().map(String::as_str) == Some("NONE") {
                    if !node.flags.is_empty() {
                        return Err("HEALTHCHECK NONE takes no arguments".into());
                    }
                    return Ok(Instruction::Healthcheck(None));
                }
                let fs = flags(node, &["interval", "timeout", "start-period", "start-interval", "retries"])?;
                let rest = &node.args[1..];
                if rest.is_empty() {
                    return Err("Missing command after HEALTHCHECK CMD".into());
                }
                let test = if node.json {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(rest.iter().cloned());
                    t
                } else {
                    vec!["CMD-SHELL".to_string(), rest[0].clone()]
                };
                let retries = match flag(&fs, "retries") {
                    Some(r) if !r.is_empty() => {
                        let n: i64 = r.parse().map_err(|_| format!("strconv.ParseInt: parsing {r:?}: invalid syntax"))?;
                        if n < 0 {
                            return Err(format!("--retries cannot be negative ({n})"));
                        }
                        n
                    }
                    _ => 0,
                };
                Ok(Instruction::Healthcheck(Some(Healthcheck {
                    test,
                    interval: duration_flag(&fs, "interval")?,
                    timeout: duration_flag(&fs, "timeout")?,
                    start_period: duration_flag(&fs, "start-period")?,
                    start_interval: duration_flag(&fs, "start-interval")?,
                    retries,
                })))
            }
            "copy" | "add" => {
                let add = node.cmd == "add";
                let allowed: &[&str] = if add {
                    &["chown", "chmod", "link", "checksum", "keep-git-dir"]
                } else {
                    &["from", "chown", "chmod", "link", "parents", "exclude"]
                };
                let fs = flags(node, allowed)?;
                let mut words = Vec::new();
                for a in &node.args {
                    let heredoc = a.starts_with("<<") && !node.heredocs.is_empty();
                    if node.json || heredoc {
                        words.push(a.clone());
                    } else {
                        words.push(expand(a, vars, escape)?);
                    }
                }
                if words.len() < 2 {
                    return Err(format!("{upper} requires at least two arguments, but only one was provided. Destination could not be determined."));
                }
                let dest = words.pop().unwrap_or_default();
                let opt = |n: &str| flag(&fs, n).map(|v| expand(&v, vars, escape)).transpose();
                Ok(Instruction::Copy(CopySpec {
                    add,
                    sources: words,
                    dest,
                    from: opt("from")?,
                    chown: opt("chown")?,
                    chmod: opt("chmod")?,
                    link: flag(&fs, "link").is_some_and(|v| v != "false"),
                    heredocs: node.heredocs.clone(),
                }))
            }
            other => Err(format!("unknown instruction: {}", other.to_ascii_uppercase())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn inst(src: &str) -> Result<Instruction, String> {
        let env: Vec<String> = vec!["D=/dst".into(), "V=1.0".into()];
        let d = parse(src).map_err(|e| e.to_string())?;
        Instruction::from_node(&d.nodes[0], &env, d.escape)
    }

    #[test]
    fn typed_table() {
        use Instruction as I;
        let cases: Vec<(&str, Instruction)> = vec![
            ("FROM alpine:$V AS Build", I::From { image: "alpine:1.0".into(), name: Some("build".into()), platform: None }),
            ("FROM --platform=linux/amd64 x", I::From { image: "x".into(), name: None, platform: Some("linux/amd64".into()) }),
            ("ENV A=$V B=\"x y\"", I::Env(vec![("A".into(), "1.0".into()), ("B".into(), "x y".into())])),
            ("ENV A x $V", I::Env(vec![("A".into(), "x 1.0".into())])),
            ("ARG A B=${V}", I::Arg(vec![("A".into(), None), ("B".into(), Some("1.0".into()))])),
            ("WORKDIR $D/app", I::Workdir("/dst/app".into())),
            ("EXPOSE 80 $V", I::Expose(vec!["80".into(), "1.0".into()])),
            ("VOLUME [\"/$D\"]", I::Volume(vec!["/$D".into()])),
            ("HEALTHCHECK NONE", I::Healthcheck(None)),
            (
                "HEALTHCHECK --interval=5s --retries=3 CMD true",
                I::Healthcheck(Some(Healthcheck { test: vec!["CMD-SHELL".into(), "true".into()], interval: 5_000_000_000, retries: 3, ..Default::default() })),
            ),
            (
                "COPY --chown=1:2 a \"b c\" $D/",
                I::Copy(CopySpec { sources: vec!["a".into(), "b c".into()], dest: "/dst/".into(), chown: Some("1:2".into()), ..Default::default() }),
            ),
        ];
        for (src, want) in cases {
            assert_eq!(inst(src), Ok(want), "{src}");
        }
    }

    #[test]
    fn errors_table() {
        let cases: &[(&str, &str)] = &[
            ("FROM a b", "FROM requires either one or three arguments"),
            ("FROM a AS 1x", "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"),
            ("COPY a", "COPY requires at least two arguments, but only one was provided. Destination could not be determined."),
            ("COPY --foo=1 a b", "Unknown flag: foo"),
            ("ADD --from=x a b", "Unknown flag: from"),
            ("HEALTHCHECK --interval=1us CMD x", "Interval \"interval\" cannot be less than 1ms"),
            ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
            ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
            ("WORKDIR", "WORKDIR requires exactly one argument"),
            ("RUN", "RUN requires at least one argument"),
            ("RUN --mount=type=cache,target=/c true", "the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"),
        ];
        for (src, want) in cases {
            assert_eq!(inst(src), Err(want.to_string()), "{src}");
        }
    }

    #[test]
    fn durations() {
        for (s, ns) in [("30s", 30_000_000_000i64), ("1m30s", 90_000_000_000), ("500ms", 500_000_000), ("1.5h", 5_400_000_000_000), ("0", 0)] {
            assert_eq!(parse_go_duration(s), Ok(ns), "{s}");
        }
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("x").is_err());
    }
}
