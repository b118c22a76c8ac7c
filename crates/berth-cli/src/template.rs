//! A Go `text/template` subset, evaluated over `serde_json::Value`: enough for what
//! people pass to `docker … --format` (fields, pipelines, `if`/`range`/`with`, variables,
//! Docker's template functions). Output formatting of values follows Go's `%v`.

use serde_json::Value;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipe {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.A.B` (empty path = `.`)
    Field(Vec<String>),
    /// `$x.A.B`
    Var(String, Vec<String>),
    Str(String),
    Num(Value),
    Bool(bool),
    Nil,
    Ident(String),
    /// `(pipeline).A.B`
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Var(String),
    Str(String),
    Num(String),
    Ident(String),
    Pipe,
    LParen,
    RParen,
    Decl,
    Assign,
    Comma,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

pub type Error = String;

fn lex_action(src: &str) -> Result<Vec<Tok>, Error> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            out.push(Tok::Pipe);
            i += 1;
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == ':' && b.get(i + 1) == Some(&'=') {
            out.push(Tok::Decl);
            i += 2;
        } else if c == '=' {
            out.push(Tok::Assign);
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&c) = b.get(i) else { return Err("unterminated quoted string".into()) };
                i += 1;
                match c {
                    '"' => break,
                    '\\' => {
                        let e = *b.get(i).ok_or("unterminated quoted string")?;
                        i += 1;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '0' => '\0',
                            other => other,
                        });
                    }
                    c => s.push(c),
                }
            }
            out.push(Tok::Str(s));
        } else if c == '`' {
            let start = i + 1;
            let end = b[start..].iter().position(|&c| c == '`').ok_or("unterminated raw quoted string")? + start;
            out.push(Tok::Str(b[start..end].iter().collect()));
            i = end + 1;
        } else if c == '.' || c == '$' {
            // `.`, `.A.B`, `$`, `$x.A`
            let start = i;
            i += 1;
            while i < b.len() && (ident_char(b[i]) || b[i] == '.') {
                i += 1;
            }
            let s: String = b[start..i].iter().collect();
            if c == '$' {
                out.push(Tok::Var(s));
            } else if s.len() > 1 && s[1..].starts_with(|c: char| c.is_ascii_digit()) {
                out.push(Tok::Num(s));
            } else {
                out.push(Tok::Field(s));
            }
        } else if c.is_ascii_digit() || ((c == '-' || c == '+') && b.get(i + 1).is_some_and(|c| c.is_ascii_digit())) {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.' || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Num(b[start..i].iter().collect()));
        } else if ident_char(c) {
            let start = i;
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else if c == '\'' {
            let end = b[i + 1..].iter().position(|&c| c == '\'').ok_or("unterminated character constant")? + i + 1;
            let ch: String = b[i + 1..end].iter().collect();
            out.push(Tok::Num((ch.chars().next().unwrap_or('\0') as u32).to_string()));
            i = end + 1;
        } else {
            return Err(format!("unexpected {c:?} in command"));
        }
    }
    Ok(out)
}

fn split_path(s: &str) -> Vec<String> {
    s.split('.').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

struct PipeParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl PipeParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn pipe(&mut self, in_paren: bool) -> Result<Pipe, Error> {
        let mut decl = Vec::new();
        // `$x := …` / `$i, $v := …`
        let save = self.pos;
        let mut vars = Vec::new();
        while let Some(Tok::Var(v)) = self.peek().cloned() {
            vars.push(v);
            self.pos += 1;
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Decl) | Some(Tok::Assign) => {
                    self.pos += 1;
                    decl = std::mem::take(&mut vars);
                    break;
                }
                _ => break,
            }
        }
        if decl.is_empty() {
            self.pos = save;
        }
        let mut cmds = Vec::new();
        let mut cur = Vec::new();
        loop {
            match self.peek().cloned() {
                None => break,
                Some(Tok::RParen) if in_paren => break,
                Some(Tok::RParen) => return Err("unexpected right paren".into()),
                Some(Tok::Pipe) => {
                    self.pos += 1;
                    if cur.is_empty() {
                        return Err("missing command".into());
                    }
                    cmds.push(std::mem::take(&mut cur));
                }
                Some(_) => cur.push(self.arg()?),
            }
        }
        if !cur.is_empty() {
            cmds.push(cur);
        }
        if cmds.is_empty() {
            return Err("missing value for command".into());
        }
        Ok(Pipe { decl, cmds })
    }

    fn arg(&mut self) -> Result<Arg, Error> {
        let t = self.toks.get(self.pos).cloned().ok_or("unexpected end")?;
        self.pos += 1;
        Ok(match t {
            Tok::Field(f) => Arg::Field(split_path(&f)),
            Tok::Var(v) => {
                let mut parts = v.splitn(2, '.');
                let name = parts.next().unwrap_or("$").to_string();
                Arg::Var(name, split_path(parts.next().unwrap_or("")))
            }
            Tok::Str(s) => Arg::Str(s),
            Tok::Num(n) => Arg::Num(parse_num(&n)?),
            Tok::Ident(i) => match i.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Ident(i),
            },
            Tok::LParen => {
                let p = self.pipe(true)?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err("unclosed left paren".into());
                }
                self.pos += 1;
                let mut chain = Vec::new();
                if let Some(Tok::Field(f)) = self.peek().cloned() {
                    self.pos += 1;
                    chain = split_path(&f);
                }
                Arg::Sub(Box::new(p), chain)
            }
            other => return Err(format!("unexpected {other:?} in operand")),
        })
    }
}

fn parse_num(s: &str) -> Result<Value, Error> {
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Some(h) = s.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(h, 16) {
            return Ok(Value::from(i));
        }
    }
    s.parse::<f64>().map(Value::from).map_err(|_| format!("bad number syntax: {s:?}"))
}

fn parse_pipe(src: &str) -> Result<Pipe, Error> {
    let mut p = PipeParser { toks: lex_action(src)?, pos: 0 };
    let pipe = p.pipe(false)?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    Ok(pipe)
}

/// One `{{…}}` or text piece, before nesting.
enum Piece {
    Text(String),
    Action(String),
}

fn split_pieces(src: &str) -> Result<Vec<Piece>, Error> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_string();
        let mut inner_start = open + 2;
        if rest[inner_start..].starts_with("- ") || rest[inner_start..].starts_with("-\t") || rest[inner_start..].starts_with("-\n") {
            text = text.trim_end().to_string();
            inner_start += 1;
        }
        let close = rest[inner_start..].find("}}").ok_or("unclosed action")? + inner_start;
        let mut inner = &rest[inner_start..close];
        let mut trim_after = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_after = true;
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            out.push(Piece::Action(inner.to_string()));
        }
        rest = &rest[close + 2..];
        if trim_after {
            rest = rest.trim_start();
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// What ended a list of nodes (the variants are the template's own words: `{{end}}`).
#[allow(clippy::enum_variant_names)]
enum End {
    Eof,
    End,
    Else(Option<String>),
}

fn parse_list(pieces: &mut std::iter::Peekable<std::vec::IntoIter<Piece>>) -> Result<(Vec<Node>, End), Error> {
    let mut nodes = Vec::new();
    while let Some(p) = pieces.next() {
        match p {
            Piece::Text(t) => nodes.push(Node::Text(t)),
            Piece::Action(a) => {
                let (kw, rest) = match a.split_once(char::is_whitespace) {
                    Some((k, r)) => (k, r.trim()),
                    None => (a.as_str(), ""),
                };
                match kw {
                    "end" => return Ok((nodes, End::End)),
                    "else" => return Ok((nodes, End::Else(if rest.is_empty() { None } else { Some(rest.to_string()) }))),
                    "if" | "range" | "with" => nodes.push(parse_block(kw, rest, pieces)?),
                    "template" | "define" | "block" => return Err(format!("{kw} is not supported")),
                    _ => nodes.push(Node::Action(parse_pipe(&a)?)),
                }
            }
        }
    }
    Ok((nodes, End::Eof))
}

fn parse_block(kw: &str, rest: &str, pieces: &mut std::iter::Peekable<std::vec::IntoIter<Piece>>) -> Result<Node, Error> {
    let pipe = parse_pipe(rest)?;
    let (body, end) = parse_list(pieces)?;
    let alt = match end {
        End::Eof => return Err(format!("unexpected EOF in {kw}")),
        End::End => Vec::new(),
        End::Else(None) => {
            let (alt, end) = parse_list(pieces)?;
            if !matches!(end, End::End) {
                return Err("expected end after else".into());
            }
            alt
        }
        // `{{else if …}}` / `{{else with …}}`: a nested block sharing our `{{end}}`.
        End::Else(Some(chain)) => {
            let (k2, r2) = chain.split_once(char::is_whitespace).unwrap_or((chain.as_str(), ""));
            vec![parse_block(k2, r2.trim(), pieces)?]
        }
    };
    Ok(match kw {
        "if" => Node::If(pipe, body, alt),
        "range" => Node::Range(pipe, body, alt),
        _ => Node::With(pipe, body, alt),
    })
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, Error> {
        let pieces = split_pieces(src).map_err(|e| format!("template: :1: {e}"))?;
        let mut it = pieces.into_iter().peekable();
        let (nodes, end) = parse_list(&mut it).map_err(|e| format!("template: :1: {e}"))?;
        match end {
            End::Eof => Ok(Template { nodes }),
            End::End => Err("template: :1: unexpected {{end}}".into()),
            End::Else(_) => Err("template: :1: unexpected {{else}}".into()),
        }
    }

    /// Executes against `data`. `header` makes Docker's formatting functions return their
    /// argument unchanged (how table headers are rendered).
    pub fn execute(&self, data: &Value, header: bool) -> Result<String, Error> {
        let mut ex = Exec { vars: vec![("$".to_string(), data.clone())], header };
        let mut out = String::new();
        ex.walk(&self.nodes, data, &mut out).map_err(|e| format!("template: :1: executing \"\" {e}"))?;
        Ok(out)
    }
}

struct Exec {
    vars: Vec<(String, Value)>,
    header: bool,
}

/// Go's truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != NO_VALUE,
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// Marker for "no value": a missing map key prints as `<no value>` in Go.
const NO_VALUE: &str = "\u{0}<no value>";

fn field(v: &Value, name: &str) -> Result<Value, Error> {
    match v {
        Value::Object(m) => match m.get(name) {
            Some(x) => Ok(x.clone()),
            None if m.contains_key("__type") => Err(format!(
                "at <.{name}>: can't evaluate field {name} in type {}",
                m.get("__type").and_then(|t| t.as_str()).unwrap_or("")
            )),
            None => Ok(Value::String(NO_VALUE.into())),
        },
        Value::Null => Err(format!("at <.{name}>: nil pointer evaluating interface {{}}.{name}")),
        other => Err(format!("at <.{name}>: can't evaluate field {name} in type {}", go_type(other))),
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn chain(mut v: Value, path: &[String]) -> Result<Value, Error> {
    for p in path {
        v = field(&v, p)?;
    }
    Ok(v)
}

impl Exec {
    fn walk(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), Error> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        out.push_str(&go_print(&v));
                    }
                }
                Node::If(p, body, alt) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    if truthy(&v) {
                        self.walk(body, dot, out)?;
                    } else {
                        self.walk(alt, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With(p, body, alt) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    if truthy(&v) {
                        self.walk(body, &v, out)?;
                    } else {
                        self.walk(alt, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, alt) => {
                    let mark = self.vars.len();
                    let mut rp = p.clone();
                    let decl = std::mem::take(&mut rp.decl);
                    let v = self.pipe(&rp, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a.iter().enumerate().map(|(i, x)| (Value::from(i), x.clone())).collect(),
                        Value::Object(m) => {
                            m.iter().filter(|(k, _)| !k.starts_with("__")).map(|(k, x)| (Value::String(k.clone()), x.clone())).collect()
                        }
                        Value::Null => Vec::new(),
                        Value::Number(n) => (0..n.as_i64().unwrap_or(0)).map(|i| (Value::from(i), Value::from(i))).collect(),
                        other => return Err(format!("range can't iterate over {}", go_print(other))),
                    };
                    if items.is_empty() {
                        self.walk(alt, dot, out)?;
                    }
                    for (k, x) in items {
                        let m2 = self.vars.len();
                        match decl.len() {
                            1 => self.vars.push((decl[0].clone(), x.clone())),
                            2 => {
                                self.vars.push((decl[0].clone(), k));
                                self.vars.push((decl[1].clone(), x.clone()));
                            }
                            _ => {}
                        }
                        self.walk(body, &x, out)?;
                        self.vars.truncate(m2);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn var(&self, name: &str) -> Result<Value, Error> {
        self.vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone()).ok_or_else(|| format!("undefined variable: {name}"))
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, Error> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.cmd(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Null);
        if let Some(first) = p.decl.first() {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == first) {
                // `=` assignment or redeclaration: shadowing is close enough.
                slot.1 = v.clone();
            } else {
                self.vars.push((first.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, Error> {
        match a {
            Arg::Field(path) => chain(dot.clone(), path),
            Arg::Var(name, path) => chain(self.var(name)?, path),
            Arg::Str(s) => Ok(Value::String(s.clone())),
            Arg::Num(n) => Ok(n.clone()),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Null),
            Arg::Ident(f) => self.call(f, Vec::new()),
            Arg::Sub(p, path) => {
                let v = self.pipe(p, dot)?;
                chain(v, path)
            }
        }
    }

    fn cmd(&mut self, cmd: &[Arg], dot: &Value, prev: Option<Value>) -> Result<Value, Error> {
        let mut args_iter = cmd.iter();
        let Some(head) = args_iter.next() else { return Err("empty command".into()) };
        let mut args = Vec::new();
        for a in args_iter {
            args.push(self.arg(a, dot)?);
        }
        if let Some(p) = prev {
            args.push(p);
        }
        match head {
            Arg::Ident(f) => self.call(f, args),
            // Method-style fields with arguments on the CLI's formatter contexts:
            // `{{.Label "com.example"}}` reads from the hidden `__labels` map.
            Arg::Field(path) if !args.is_empty() => {
                let (last, parent) = path.split_last().ok_or("can't give argument to non-function .")?;
                let obj = chain(dot.clone(), parent)?;
                match (last.as_str(), obj.get("__labels")) {
                    ("Label", Some(labels)) => {
                        let k = args.first().map(go_print).unwrap_or_default();
                        Ok(labels.get(&k).cloned().unwrap_or(Value::String(String::new())))
                    }
                    _ => Err(format!("at <.{last}>: can't give argument to non-function .{last}")),
                }
            }
            other => {
                if !args.is_empty() {
                    return Err("can't give argument to non-function".into());
                }
                self.arg(other, dot)
            }
        }
    }

    fn call(&mut self, f: &str, args: Vec<Value>) -> Result<Value, Error> {
        let s = |i: usize| args.get(i).map(go_print).unwrap_or_default();
        let need = |n: usize| -> Result<(), Error> {
            if args.len() < n {
                Err(format!("error calling {f}: wrong number of args for {f}: want {n} got {}", args.len()))
            } else {
                Ok(())
            }
        };
        if self.header && matches!(f, "json" | "split" | "join" | "title" | "lower" | "upper" | "pad" | "truncate") {
            return Ok(args.into_iter().next().unwrap_or(Value::Null));
        }
        Ok(match f {
            "json" => {
                need(1)?;
                Value::String(go_html_escape(&serde_json::to_string(&strip_hidden(&args[0])).unwrap_or_default()))
            }
            "join" => {
                need(2)?;
                let sep = s(1);
                match &args[0] {
                    Value::Array(a) => Value::String(a.iter().map(go_print).collect::<Vec<_>>().join(&sep)),
                    other => Value::String(go_print(other)),
                }
            }
            "split" => {
                need(2)?;
                Value::Array(s(0).split(&s(1)).map(|x| Value::String(x.to_string())).collect())
            }
            "upper" => Value::String(s(0).to_uppercase()),
            "lower" => Value::String(s(0).to_lowercase()),
            "title" => Value::String(
                s(0).split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "pad" => {
                need(3)?;
                let l = args[1].as_u64().unwrap_or(0) as usize;
                let r = args[2].as_u64().unwrap_or(0) as usize;
                Value::String(format!("{}{}{}", " ".repeat(l), s(0), " ".repeat(r)))
            }
            "truncate" => {
                need(2)?;
                let n = args[1].as_u64().unwrap_or(0) as usize;
                Value::String(s(0).chars().take(n).collect())
            }
            "println" => Value::String(args.iter().map(go_print).collect::<Vec<_>>().join(" ") + "\n"),
            "print" => {
                // Go adds spaces between operands when neither is a string.
                let mut o = String::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 && !a.is_string() && !args[i - 1].is_string() {
                        o.push(' ');
                    }
                    o.push_str(&go_print(a));
                }
                Value::String(o)
            }
            "printf" => {
                need(1)?;
                Value::String(sprintf(&s(0), &args[1..]))
            }
            "len" => {
                need(1)?;
                Value::from(match &args[0] {
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    Value::String(x) => x.len(),
                    other => return Err(format!("error calling len: len of type {}", go_type(other))),
                })
            }
            "index" => {
                need(1)?;
                let mut v = args[0].clone();
                for k in &args[1..] {
                    v = match (&v, k) {
                        (Value::Object(m), k) => m.get(&go_print(k)).cloned().unwrap_or(Value::Null),
                        (Value::Array(a), Value::Number(n)) => {
                            let i = n.as_u64().ok_or("error calling index: negative index")? as usize;
                            a.get(i).cloned().ok_or_else(|| format!("error calling index: index out of range: {i}"))?
                        }
                        (Value::Null, _) => Value::Null,
                        _ => return Err(format!("error calling index: can't index item of type {}", go_type(&v))),
                    };
                }
                v
            }
            "not" => Value::Bool(!args.first().is_some_and(truthy)),
            "and" => args.iter().find(|a| !truthy(a)).or(args.last()).cloned().unwrap_or(Value::Null),
            "or" => args.iter().find(|a| truthy(a)).or(args.last()).cloned().unwrap_or(Value::Null),
            "eq" => {
                need(2)?;
                Value::Bool(args[1..].iter().any(|b| values_eq(&args[0], b)))
            }
            "ne" => {
                need(2)?;
                Value::Bool(!values_eq(&args[0], &args[1]))
            }
            "lt" | "le" | "gt" | "ge" => {
                need(2)?;
                let ord = compare(&args[0], &args[1]).ok_or_else(|| format!("error calling {f}: incompatible types for comparison"))?;
                Value::Bool(match f {
                    "lt" => ord.is_lt(),
                    "le" => ord.is_le(),
                    "gt" => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            _ => return Err(format!("function \"{f}\" not defined")),
        })
    }
}

fn values_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Removes the formatter contexts' hidden keys before JSON output.
pub fn strip_hidden(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().filter(|(k, _)| !k.starts_with("__")).map(|(k, v)| (k.clone(), strip_hidden(v))).collect()),
        other => other.clone(),
    }
}

/// A minimal `fmt.Sprintf`: %s %v %d %q %%, with optional width/`-` flag.
fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&d) = it.peek() {
            if d == '-' || d.is_ascii_digit() || d == '.' {
                flags.push(d);
                it.next();
            } else {
                break;
            }
        }
        let Some(verb) = it.next() else { break };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args.get(ai);
        ai += 1;
        let text = match (verb, arg) {
            (_, None) => format!("%!{verb}(MISSING)"),
            ('q', Some(v)) => go_quote(&go_print(v)),
            ('d', Some(v)) => v.as_i64().map(|i| i.to_string()).unwrap_or_else(|| go_print(v)),
            (_, Some(v)) => go_print(v),
        };
        let left = flags.starts_with('-');
        let width: usize = flags.trim_start_matches('-').split('.').next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let pad = width.saturating_sub(text.chars().count());
        if left {
            let _ = write!(out, "{text}{}", " ".repeat(pad));
        } else {
            let _ = write!(out, "{}{text}", " ".repeat(pad));
        }
    }
    out
}

/// Go's `strconv.Quote` (printable Unicode kept as is).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64: shortest digits, exponent form from 1e6 or below 1e-4.
pub fn go_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f.is_nan() {
        return "NaN".into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let e = format!("{f:e}"); // shortest digits, e.g. "1.984172e6"
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `%v` formatting of a JSON value.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                go_float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) if s == NO_VALUE => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter().filter(|(k, _)| !k.starts_with("__")).map(|(k, v)| format!("{k}:{}", go_print(v))).collect::<Vec<_>>().join(" ")
        ),
    }
}

/// Go's `json.Marshal` escapes `<`, `>`, `&`, U+2028 and U+2029 (they can only occur
/// inside strings, so the serialized text is rewritten as a whole).
pub fn go_html_escape(json: &str) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(tpl: &str, data: &Value) -> String {
        Template::parse(tpl).and_then(|t| t.execute(data, false)).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn template_table() {
        let data = json!({
            "Id": "abc", "Name": "/web", "Size": 1984172, "Ratio": 0.5, "Big": 1984172.0,
            "State": {"Status": "running", "Running": true, "Pid": 42},
            "Config": {"Env": ["A=B", "C=D"], "Labels": {"k": "v", "x.y": "z"}, "Cmd": null, "Tty": false},
            "Args": ["-f", "-p", "80"], "Empty": [],
            "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
        });
        let cases: &[(&str, &str)] = &[
            ("{{.Id}}", "abc"),
            ("{{.State.Status}} {{.State.Pid}}", "running 42"),
            ("{{.Size}}", "1984172"),
            ("{{.Ratio}} {{.Big}}", "0.5 1.984172e+06"),
            ("{{json .Config.Labels}}", r#"{"k":"v","x.y":"z"}"#),
            ("{{json .Args}}", r#"["-f","-p","80"]"#),
            ("{{.Args}}", "[-f -p 80]"),
            ("{{.Config.Labels}}", "map[k:v x.y:z]"),
            ("{{.Config.Cmd}}", "<nil>"),
            ("{{.Nope}}", "<no value>"),
            ("{{range .Config.Env}}{{.}};{{end}}", "A=B;C=D;"),
            ("{{range $i, $e := .Args}}{{$i}}={{$e}} {{end}}", "0=-f 1=-p 2=80 "),
            ("{{range .Empty}}x{{else}}none{{end}}", "none"),
            ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}},{{end}}", "k:v,x.y:z,"),
            ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
            ("{{if .Config.Tty}}tty{{else if .State.Running}}run{{else}}no{{end}}", "run"),
            ("{{if not .Config.Tty}}notty{{end}}", "notty"),
            ("{{if and .State.Running (eq .State.Status \"running\")}}y{{end}}", "y"),
            ("{{if or .Config.Tty .Empty}}y{{else}}n{{end}}", "n"),
            ("{{index .Config.Labels \"x.y\"}}", "z"),
            ("{{index .Args 1}}", "-p"),
            ("{{join .Args \" \"}}", "-f -p 80"),
            ("{{.Name | upper}}", "/WEB"),
            ("{{upper .Name}} {{lower \"AbC\"}}", "/WEB abc"),
            ("{{println .Id}}", "abc\n"),
            ("{{with .State}}{{.Status}}{{end}}", "running"),
            ("{{with .Nope2}}x{{else}}y{{end}}", "y"),
            ("{{$x := .Id}}{{$x}}-{{$.Name}}", "abc-/web"),
            ("{{range $p, $conf := .Ports}}{{$p}} -> {{(index $conf 0).HostPort}}{{end}}", "80/tcp -> 8080"),
            ("{{len .Args}}", "3"),
            ("{{printf \"%s-%d\" .Id .State.Pid}}", "abc-42"),
            ("{{split \"a,b\" \",\"}}", "[a b]"),
            ("{{.Id | printf \"%q\"}}", "\"abc\""),
            ("a {{- \" b \" -}} c", "a b c"),
            ("{{/* comment */}}x", "x"),
            ("{{title \"hello world\"}}", "Hello World"),
            ("{{truncate .Id 2}}", "ab"),
            ("{{gt .State.Pid 10}}", "true"),
            ("{{.Id.Foo}}", "ERR template: :1: executing \"\" at <.Foo>: can't evaluate field Foo in type string"),
            ("{{.Id", "ERR template: :1: unclosed action"),
            ("{{nosuch .Id}}", "ERR template: :1: executing \"\" function \"nosuch\" not defined"),
        ];
        for (tpl, want) in cases {
            assert_eq!(run(tpl, &data), *want, "template {tpl}");
        }
    }

    #[test]
    fn missing_keys_are_falsy() {
        assert_eq!(run("{{if .Missing}}y{{else}}n{{end}}", &json!({})), "n");
    }

    #[test]
    fn label_method_and_header_mode() {
        let ctx = json!({"Names": "web", "__labels": {"k": "v"}, "__type": "*formatter.ContainerContext"});
        assert_eq!(run("{{.Label \"k\"}}", &ctx), "v");
        assert!(run("{{.Nope}}", &ctx).contains("can't evaluate field Nope in type *formatter.ContainerContext"));
        let t = Template::parse("{{.Names | upper}}\t{{json .Names}}").expect("parse");
        assert_eq!(t.execute(&json!({"Names": "NAMES"}), true).expect("exec"), "NAMES\tNAMES");
    }

    #[test]
    fn go_formatting() {
        let cases: &[(f64, &str)] = &[(0.5, "0.5"), (1984172.0, "1.984172e+06"), (100.0, "100"), (1e21, "1e+21"), (0.0001, "0.0001"), (0.00001, "1e-05")];
        for (f, want) in cases {
            assert_eq!(go_float(*f), *want, "{f}");
        }
        assert_eq!(go_quote("sh -c 'echo \"hi\"'\n"), r#""sh -c 'echo \"hi\"'\n""#);
    }
}

#[cfg(test)]
mod go_json_tests {
    use super::go_html_escape;

    #[test]
    fn json_escapes_html_as_go() {
        let table = [
            (r#"{"ID":"<missing>"}"#, r#"{"ID":"\u003cmissing\u003e"}"#),
            (r#""a&b""#, r#""a\u0026b""#),
            ("\"\u{2028}\"", r#""\u2028""#),
            (r#"{"plain":1}"#, r#"{"plain":1}"#),
        ];
        for (input, want) in table {
            assert_eq!(go_html_escape(input), want);
        }
    }
}
