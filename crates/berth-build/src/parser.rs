//! The Dockerfile parser: text → [`Node`]s, as Docker's (buildkit's
//! `frontend/dockerfile/parser`, which the classic builder also uses) splits it.
//!
//! * Parser directives (`# escape=`, `# syntax=`, `# check=`) only at the very top,
//!   before any blank line, comment or instruction.
//! * A line ending in the escape character continues on the next; comment lines and
//!   empty lines inside a continuation are skipped.
//! * `RUN`, `COPY` and `ADD` in shell form may carry heredocs (`<<EOF`, `<<-EOF`,
//!   `<<"EOF"`): the following lines up to the terminator belong to the instruction.
//! * `--flag=value` words before the arguments of `FROM`, `RUN`, `COPY`, `ADD` and
//!   `HEALTHCHECK` are kept apart as flags.
//!
//! Nothing is expanded here (that is `expand`, at dispatch time, with the stage's
//! environment); errors carry the line as Docker words them.

use std::fmt;

/// A parse failure in Docker's words (`dockerfile parse error on line 3: unknown
/// instruction: RUNN`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("dockerfile parse error on line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    Other(String),
}

impl ParseError {
    fn at(line: usize, message: impl Into<String>) -> ParseError {
        ParseError::Line { line, message: message.into() }
    }
}

/// A heredoc attached to an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word (`EOF`).
    pub name: String,
    /// The body, each line ending in `\n`.
    pub content: String,
    /// `<<"EOF"` / `<<'EOF'`: no expansion of the body.
    pub quoted: bool,
    /// `<<-EOF`: leading tabs stripped.
    pub chomp: bool,
}

/// One instruction as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Lower-case instruction name (`run`).
    pub cmd: String,
    /// `--name=value` flags, as written.
    pub flags: Vec<String>,
    /// The arguments after the flags: for JSON forms the decoded array; for the shell
    /// forms of RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD one string; for ENV/LABEL key, value
    /// pairs flattened; otherwise whitespace-separated words.
    pub args: Vec<String>,
    /// Arguments were a JSON array.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The logical line as written (continuations joined), what `Step n/m :` prints.
    pub original: String,
    /// First line (1-based).
    pub line: usize,
    /// For ONBUILD: the trigger instruction.
    pub next: Option<Box<Node>>,
}

/// A parsed Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dockerfile {
    pub nodes: Vec<Node>,
    pub escape: char,
    /// `# syntax=` if given (accepted, not acted upon: there is no frontend to load).
    pub syntax: Option<String>,
    pub warnings: Vec<String>,
}

/// Every instruction Docker knows.
pub const INSTRUCTIONS: &[&str] = &[
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
    "workdir",
];

fn is_directive_line(line: &str) -> Option<(String, String)> {
    let t = line.trim();
    let rest = t.strip_prefix('#')?.trim_start();
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || k.contains(' ') {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    let mut seen = std::collections::HashSet::new();
    // Directives: only leading `# key=value` comment lines.
    while i < lines.len() {
        match is_directive_line(lines[i]) {
            Some((k, v)) if matches!(k.as_str(), "escape" | "syntax" | "check") => {
                if !seen.insert(k.clone()) {
                    return Err(ParseError::Other(format!("only one {k} parser directive can be used")));
                }
                match k.as_str() {
                    "escape" => {
                        escape = match v.as_str() {
                            "`" => '`',
                            "\\" => '\\',
                            _ => {
                                return Err(ParseError::Other(format!(
                                    "invalid escape token '{v}' does not match ` or \\"
                                )))
                            }
                        }
                    }
                    "syntax" => syntax = Some(v),
                    _ => {}
                }
                i += 1;
            }
            _ => break,
        }
    }
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let t = first.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // Join continuations.
        let mut logical = String::new();
        let mut cur = first.trim_start().to_string();
        let mut blank_in_continuation = false;
        loop {
            let trimmed = cur.trim_end();
            if let Some(body) = trimmed.strip_suffix(escape) {
                logical.push_str(body);
                // Skip comment and empty lines inside a continuation.
                let mut next = None;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let lt = l.trim();
                    if lt.starts_with('#') {
                        continue;
                    }
                    if lt.is_empty() {
                        blank_in_continuation = true;
                        continue;
                    }
                    next = Some(l.to_string());
                    break;
                }
                match next {
                    Some(n) => cur = n,
                    None => break,
                }
            } else {
                logical.push_str(&cur);
                break;
            }
        }
        if blank_in_continuation {
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in:\n    {}",
                logical.trim()
            ));
        }
        let mut node = parse_line(logical.trim(), start + 1, escape)?;
        // Heredocs: body lines follow the instruction.
        let mut heredocs = Vec::new();
        if matches!(node.cmd.as_str(), "run" | "copy" | "add") && !node.json {
            for (name, quoted, chomp) in heredoc_markers(&logical) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let cmp = if chomp { l.trim_start_matches('\t') } else { l };
                    if cmp == name {
                        closed = true;
                        break;
                    }
                    content.push_str(cmp);
                    content.push('\n');
                }
                if !closed {
                    return Err(ParseError::at(start + 1, format!("unterminated heredoc {name}")));
                }
                heredocs.push(Heredoc { name, content, quoted, chomp });
            }
        }
        node.heredocs = heredocs;
        nodes.push(node);
    }
    Ok(Dockerfile { nodes, escape, syntax, warnings })
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` markers in a shell-form line (not `<<<`, not inside
/// quotes).
fn heredoc_markers(line: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let b: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '<' && b.get(i + 1) == Some(&'<') && b.get(i + 2) != Some(&'<') && (i == 0 || b[i - 1] != '<') => {
                let mut j = i + 2;
                let chomp = b.get(j) == Some(&'-');
                if chomp {
                    j += 1;
                }
                let q = match b.get(j) {
                    Some('"') | Some('\'') => {
                        j += 1;
                        Some(b[j - 1])
                    }
                    _ => None,
                };
                let s = j;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_' || b[j] == '-' || b[j] == '.') {
                    j += 1;
                }
                if j > s && (q.is_none() || b.get(j) == q.as_ref()) {
                    out.push((b[s..j].iter().collect(), q.is_some(), chomp));
                    if q.is_some() {
                        j += 1;
                    }
                    i = j;
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    out
}

fn split_cmd(line: &str) -> (&str, &str) {
    match line.find(char::is_whitespace) {
        Some(p) => (&line[..p], line[p..].trim_start()),
        None => (line, ""),
    }
}

/// Leading `--flag[=value]` words.
fn take_flags(mut rest: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    loop {
        let t = rest.trim_start();
        if !t.starts_with("--") {
            return (flags, t);
        }
        let (w, r) = split_cmd(t);
        if w == "--" {
            return (flags, r);
        }
        flags.push(w.to_string());
        rest = r;
    }
}

/// `["a", "b"]` → Some(vec) when it is a JSON array of strings.
fn json_array(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') || !t.ends_with(']') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Splits on unquoted whitespace, keeping quotes and escapes (expansion removes them).
pub fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// ENV/LABEL arguments: `k=v k2="v 2"` or the legacy `k v w`. Returns key, value pairs
/// flattened (values still unexpanded, quotes kept).
fn key_values(cmd: &str, rest: &str, line: usize, escape: char) -> Result<Vec<String>, ParseError> {
    let upper = cmd.to_ascii_uppercase();
    let words = split_words(rest, escape);
    if words.is_empty() {
        return Err(ParseError::at(line, format!("{upper} requires at least one argument")));
    }
    if !words[0].contains('=') {
        // Legacy form: one key, the rest of the line is the value.
        let (k, v) = split_cmd(rest.trim());
        if v.is_empty() {
            return Err(ParseError::at(line, format!("{upper} must have two arguments")));
        }
        return Ok(vec![k.to_string(), v.to_string()]);
    }
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.push(k.to_string());
                out.push(v.to_string());
            }
            Some(_) => {
                return Err(ParseError::at(line, format!("{upper} names can not be blank")));
            }
            None => {
                return Err(ParseError::at(
                    line,
                    format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value"),
                ))
            }
        }
    }
    Ok(out)
}

/// Parses one logical line (continuations joined).
pub fn parse_line(line: &str, lineno: usize, escape: char) -> Result<Node, ParseError> {
    let (word, rest) = split_cmd(line);
    let cmd = word.to_ascii_lowercase();
    if !INSTRUCTIONS.contains(&cmd.as_str()) {
        return Err(ParseError::at(lineno, format!("unknown instruction: {}", word.to_ascii_uppercase())));
    }
    let mut node = Node {
        cmd: cmd.clone(),
        flags: Vec::new(),
        args: Vec::new(),
        json: false,
        heredocs: Vec::new(),
        original: line.to_string(),
        line: lineno,
        next: None,
    };
    let rest = if matches!(cmd.as_str(), "from" | "run" | "copy" | "add" | "healthcheck") {
        let (flags, r) = take_flags(rest);
        node.flags = flags;
        r
    } else {
        rest
    };
    match cmd.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" | "copy" | "add" | "volume" => {
            if let Some(v) = json_array(rest) {
                node.args = v;
                node.json = true;
            } else if cmd == "shell" {
                return Err(ParseError::at(lineno, "SHELL requires the arguments to be in JSON form"));
            } else if matches!(cmd.as_str(), "copy" | "add" | "volume") {
                node.args = split_words(rest, escape);
            } else if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
        "healthcheck" => {
            let (w, r) = split_cmd(rest);
            match w.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !r.is_empty() {
                        return Err(ParseError::at(lineno, "HEALTHCHECK NONE takes no arguments"));
                    }
                    node.args = vec!["NONE".into()];
                }
                "CMD" => {
                    node.args.push("CMD".into());
                    if let Some(v) = json_array(r) {
                        node.json = true;
                        node.args.extend(v);
                    } else if !r.is_empty() {
                        node.args.push(r.to_string());
                    }
                }
                _ => {
                    return Err(ParseError::at(
                        lineno,
                        format!("Unknown type {:?} in HEALTHCHECK (try CMD)", w.to_ascii_uppercase()),
                    ))
                }
            }
        }
        "env" | "label" => node.args = key_values(&cmd, rest, lineno, escape)?,
        "onbuild" => {
            let (w, _) = split_cmd(rest);
            let inner = w.to_ascii_uppercase();
            match inner.as_str() {
                "" => return Err(ParseError::at(lineno, "ONBUILD requires at least one argument")),
                "ONBUILD" => {
                    return Err(ParseError::at(lineno, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"))
                }
                "MAINTAINER" | "FROM" => {
                    return Err(ParseError::at(lineno, format!("{inner} isn't allowed as an ONBUILD trigger")))
                }
                _ => {}
            }
            let next = parse_line(rest, lineno, escape)?;
            node.args = vec![rest.to_string()];
            node.next = Some(Box::new(next));
        }
        "maintainer" | "stopsignal" | "workdir" | "user" => {
            if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
        _ => node.args = split_words(rest, escape),
    }
    Ok(node)
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Node {
        let d = parse(src).expect("parse");
        assert_eq!(d.nodes.len(), 1, "{src}");
        d.nodes.into_iter().next().expect("node")
    }

    #[test]
    fn instructions_table() {
        // (source, cmd, flags, args, json)
        type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str], bool);
        let cases: &[Case] = &[
            ("FROM alpine", "from", &[], &["alpine"], false),
            ("from alpine AS build", "from", &[], &["alpine", "AS", "build"], false),
            ("FROM --platform=linux/amd64 alpine", "from", &["--platform=linux/amd64"], &["alpine"], false),
            ("RUN echo hi > /f", "run", &[], &["echo hi > /f"], false),
            ("RUN [\"echo\", \"hi\"]", "run", &[], &["echo", "hi"], true),
            ("RUN --network=none true", "run", &["--network=none"], &["true"], false),
            ("RUN [\"echo\", bad]", "run", &[], &["[\"echo\", bad]"], false),
            ("CMD [\"cat\", \"/greeting\"]", "cmd", &[], &["cat", "/greeting"], true),
            ("CMD echo $HOME", "cmd", &[], &["echo $HOME"], false),
            ("ENTRYPOINT [\"/bin/sh\"]", "entrypoint", &[], &["/bin/sh"], true),
            ("ENV A=1 B=\"two words\"", "env", &[], &["A", "1", "B", "\"two words\""], false),
            ("ENV A one two", "env", &[], &["A", "one two"], false),
            ("LABEL a=b", "label", &[], &["a", "b"], false),
            ("ARG V=2", "arg", &[], &["V=2"], false),
            ("EXPOSE 80 443/udp", "expose", &[], &["80", "443/udp"], false),
            ("WORKDIR /a b", "workdir", &[], &["/a b"], false),
            ("USER nobody:nogroup", "user", &[], &["nobody:nogroup"], false),
            ("COPY --from=build --chown=1:2 /a /b /c/", "copy", &["--from=build", "--chown=1:2"], &["/a", "/b", "/c/"], false),
            ("ADD [\"a b\", \"/c\"]", "add", &[], &["a b", "/c"], true),
            ("VOLUME /a /b", "volume", &[], &["/a", "/b"], false),
            ("VOLUME [\"/a\"]", "volume", &[], &["/a"], true),
            ("SHELL [\"/bin/bash\", \"-c\"]", "shell", &[], &["/bin/bash", "-c"], true),
            ("STOPSIGNAL SIGTERM", "stopsignal", &[], &["SIGTERM"], false),
            ("HEALTHCHECK NONE", "healthcheck", &[], &["NONE"], false),
            ("HEALTHCHECK --interval=5s CMD curl -f x", "healthcheck", &["--interval=5s"], &["CMD", "curl -f x"], false),
            ("HEALTHCHECK CMD [\"true\"]", "healthcheck", &[], &["CMD", "true"], true),
            ("MAINTAINER me <me@x>", "maintainer", &[], &["me <me@x>"], false),
            ("ONBUILD RUN echo hi", "onbuild", &[], &["RUN echo hi"], false),
        ];
        for (src, cmd, flags, args, json) in cases {
            let n = one(src);
            assert_eq!(n.cmd, *cmd, "{src}");
            assert_eq!(n.flags, *flags, "{src}");
            assert_eq!(n.args, *args, "{src}");
            assert_eq!(n.json, *json, "{src}");
            assert_eq!(n.original, *src, "{src}");
        }
    }

    #[test]
    fn errors_table() {
        let cases: &[(&str, &str)] = &[
            ("FROM alpine\n\nRUNN x", "dockerfile parse error on line 3: unknown instruction: RUNN"),
            ("# escape=x\nFROM a", "invalid escape token 'x' does not match ` or \\"),
            ("FROM a\nENV", "dockerfile parse error on line 2: ENV requires at least one argument"),
            ("FROM a\nENV A", "dockerfile parse error on line 2: ENV must have two arguments"),
            ("FROM a\nENV A=1 B", "dockerfile parse error on line 2: Syntax error - can't find = in \"B\". Must be of the form: name=value"),
            ("FROM a\nLABEL =x", "dockerfile parse error on line 2: LABEL names can not be blank"),
            ("FROM a\nONBUILD ONBUILD RUN x", "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
            ("FROM a\nONBUILD FROM b", "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"),
            ("FROM a\nONBUILD RUNN b", "dockerfile parse error on line 2: unknown instruction: RUNN"),
            ("FROM a\nSHELL /bin/sh", "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"),
            ("FROM a\nHEALTHCHECK FOO", "dockerfile parse error on line 2: Unknown type \"FOO\" in HEALTHCHECK (try CMD)"),
            ("FROM a\nRUN <<EOF\nnever closed", "dockerfile parse error on line 2: unterminated heredoc EOF"),
        ];
        for (src, want) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!(e.to_string(), *want, "{src}");
        }
    }

    #[test]
    fn continuations_comments_and_lines() {
        let d = parse("# a comment\nFROM alpine\n\nRUN echo a \\\n  # inside\n  && echo b\nCMD x\n").expect("parse");
        assert_eq!(d.nodes.len(), 3);
        assert_eq!(d.nodes[1].args, vec!["echo a   && echo b".to_string()]);
        assert_eq!(d.nodes[1].line, 4);
        assert_eq!(d.nodes[2].line, 7);
        assert!(d.warnings.is_empty());
        let d = parse("FROM a\nRUN a \\\n\n b").expect("parse");
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn directives() {
        let d = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN dir `\n c:\\").expect("parse");
        assert_eq!(d.escape, '`');
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.nodes[1].args, vec!["dir  c:\\".to_string()]);
        // Not at the top: a plain comment.
        let d = parse("FROM a\n# escape=`\nRUN a \\\n b").expect("parse");
        assert_eq!(d.escape, '\\');
        assert_eq!(d.nodes.len(), 2);
        assert!(parse("# escape=\\\n# escape=\\\nFROM a").is_err());
    }

    #[test]
    fn heredocs() {
        let d = parse("FROM a\nRUN <<EOF\necho hi\necho there\nEOF\nCOPY <<-\"X\" /f\n\tline $V\n\tX\nCMD x").expect("parse");
        assert_eq!(d.nodes.len(), 4);
        let run = &d.nodes[1];
        assert_eq!(run.heredocs.len(), 1);
        assert_eq!(run.heredocs[0].content, "echo hi\necho there\n");
        assert!(!run.heredocs[0].quoted);
        let copy = &d.nodes[2];
        assert_eq!(copy.heredocs[0].name, "X");
        assert_eq!(copy.heredocs[0].content, "line $V\n");
        assert!(copy.heredocs[0].quoted && copy.heredocs[0].chomp);
        assert_eq!(copy.args, vec!["<<-\"X\"".to_string(), "/f".to_string()]);
        // `<<<` is a here-string, not a heredoc.
        assert!(parse("FROM a\nRUN cat <<<hi").expect("parse").nodes[1].heredocs.is_empty());
    }

    #[test]
    fn crlf_and_bom() {
        let d = parse("\u{feff}FROM a\r\nRUN x\r\n").expect("parse");
        assert_eq!(d.nodes[1].args, vec!["x".to_string()]);
    }
}
