//! Variable expansion of instruction arguments, as Docker's shell lexer does it:
//! `$a`, `${a}`, `${a:-word}`, `${a-word}`, `${a:+word}`, `${a+word}`, `${a:?msg}`;
//! single quotes are literal, double quotes expand, the escape character (`\` or the
//! `# escape=` one) escapes outside single quotes. Quotes are removed.
//!
//! Used by the executor for FROM, ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER,
//! VOLUME, WORKDIR and ARG (RUN/CMD/ENTRYPOINT are left to the shell), and by the
//! `--change` appliers.

/// Looks a variable up.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Environment lists (`K=V`), later entries win.
impl Vars for Vec<String> {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().rev().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k == name).then(|| v.to_string())
        })
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands one word (quotes removed).
pub fn expand(word: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else {
                    out.push(c);
                }
                i += 1;
            }
            Some(_) => {
                if c == '"' {
                    quote = None;
                    i += 1;
                } else if c == escape {
                    match chars.get(i + 1) {
                        Some(&n) if n == '"' || n == '$' || n == escape => {
                            out.push(n);
                            i += 2;
                        }
                        Some(&n) => {
                            out.push(c);
                            out.push(n);
                            i += 2;
                        }
                        None => {
                            out.push(c);
                            i += 1;
                        }
                    }
                } else if c == '$' {
                    i = dollar(&chars, i, vars, escape, &mut out)?;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    i += 1;
                } else if c == escape {
                    if let Some(&n) = chars.get(i + 1) {
                        out.push(n);
                        i += 2;
                    } else {
                        i += 1;
                    }
                } else if c == '$' {
                    i = dollar(&chars, i, vars, escape, &mut out)?;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unexpected end of statement while looking for matching {}", quote.unwrap_or('"')));
    }
    Ok(out)
}

/// Expands the `$…` at `chars[i]`; returns the index after it.
fn dollar(chars: &[char], i: usize, vars: &dyn Vars, escape: char, out: &mut String) -> Result<usize, String> {
    let mut j = i + 1;
    match chars.get(j) {
        Some('{') => {
            j += 1;
            let s = j;
            while j < chars.len() && is_name_char(chars[j]) {
                j += 1;
            }
            let name: String = chars[s..j].iter().collect();
            if name.is_empty() {
                return Err("bad substitution".into());
            }
            match chars.get(j) {
                Some('}') => {
                    out.push_str(&vars.get(&name).unwrap_or_default());
                    Ok(j + 1)
                }
                Some(&c) if c == ':' || c == '-' || c == '+' || c == '?' => {
                    let colon = c == ':';
                    if colon {
                        j += 1;
                    }
                    let op = *chars.get(j).ok_or("missing '}'")?;
                    if !matches!(op, '-' | '+' | '?') {
                        return Err(format!("unsupported modifier ({op}) in substitution"));
                    }
                    j += 1;
                    // The word runs to the matching `}`.
                    let ws = j;
                    let mut depth = 0;
                    while j < chars.len() {
                        match chars[j] {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            c if c == escape => j += 1,
                            _ => {}
                        }
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err("missing '}'".into());
                    }
                    let word: String = chars[ws..j].iter().collect();
                    let val = vars.get(&name);
                    let set = match &val {
                        Some(v) => !colon || !v.is_empty(),
                        None => false,
                    };
                    match op {
                        '-' => {
                            if set {
                                out.push_str(&val.unwrap_or_default());
                            } else {
                                out.push_str(&expand(&word, vars, escape)?);
                            }
                        }
                        '+' => {
                            if set {
                                out.push_str(&expand(&word, vars, escape)?);
                            }
                        }
                        _ => {
                            if set {
                                out.push_str(&val.unwrap_or_default());
                            } else {
                                let msg = expand(&word, vars, escape)?;
                                return Err(format!("{name}: {}", if msg.is_empty() { "is not allowed to be unset".to_string() } else { msg }));
                            }
                        }
                    }
                    Ok(j + 1)
                }
                _ => Err("bad substitution".into()),
            }
        }
        Some(&c) if is_name_char(c) => {
            let s = j;
            while j < chars.len() && is_name_char(chars[j]) {
                j += 1;
            }
            let name: String = chars[s..j].iter().collect();
            out.push_str(&vars.get(&name).unwrap_or_default());
            Ok(j)
        }
        _ => {
            out.push('$');
            Ok(j)
        }
    }
}

/// Splits on unquoted whitespace, then expands every word.
pub fn expand_words(s: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, String> {
    crate::parser::split_words(s, escape)
        .iter()
        .map(|w| expand(w, vars, escape))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_table() {
        let env: Vec<String> = vec!["A=1".into(), "B=two words".into(), "E=".into(), "A=one".into()];
        let cases: &[(&str, &str)] = &[
            ("$A", "one"),
            ("${A}", "one"),
            ("x${A}y", "xoney"),
            ("$A$B", "onetwo words"),
            ("${NOPE:-def}", "def"),
            ("${E:-def}", "def"),
            ("${E-def}", ""),
            ("${A:-def}", "one"),
            ("${A:+alt}", "alt"),
            ("${NOPE:+alt}", ""),
            ("${E:+alt}", ""),
            ("${E+alt}", "alt"),
            ("${NOPE:-$A}", "one"),
            ("'$A'", "$A"),
            ("\"$A\"", "one"),
            ("\\$A", "$A"),
            ("\"\\$A\"", "$A"),
            ("\"a\\b\"", "a\\b"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("$-", "$-"),
            ("100%", "100%"),
        ];
        for (src, want) in cases {
            assert_eq!(expand(src, &env, '\\').as_deref(), Ok(*want), "{src}");
        }
        assert_eq!(expand("`$A", &env, '`').as_deref(), Ok("$A"));
        assert!(expand("${A", &env, '\\').is_err());
        assert!(expand("\"open", &env, '\\').is_err());
        assert_eq!(
            expand("${NOPE:?must be set}", &env, '\\'),
            Err("NOPE: must be set".to_string())
        );
    }

    #[test]
    fn words() {
        let env: Vec<String> = vec!["D=/dst".into()];
        assert_eq!(
            expand_words("a \"b c\" $D/", &env, '\\'),
            Ok(vec!["a".to_string(), "b c".to_string(), "/dst/".to_string()])
        );
    }
}
