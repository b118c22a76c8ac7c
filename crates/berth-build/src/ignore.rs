//! `.dockerignore`: Docker's pattern matcher (moby/patternmatcher). Each line is a
//! pattern, cleaned like a path with any leading `/` dropped; `#` lines and empty lines
//! are skipped; `!` makes an exception. `*` matches within one path element, `?` one
//! character, `[…]` a class, `**` any number of elements. A path is excluded when the
//! last pattern matching it or one of its parent directories is not an exception.

/// One pattern.
#[derive(Clone, Debug)]
struct Pattern {
    exclusion: bool,
    re: regex::Regex,
}

/// A compiled `.dockerignore`.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// Lexical cleaning (Go's `filepath.Clean`) of a relative pattern.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

fn to_regex(pattern: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => {
                if chars.get(i + 1) == Some(&'*') {
                    i += 1;
                    // `**/` matches zero or more elements.
                    if chars.get(i + 1) == Some(&'/') {
                        i += 1;
                        re.push_str("(.*/)?");
                    } else {
                        re.push_str(".*");
                    }
                } else {
                    re.push_str("[^/]*");
                }
            }
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut j = i + 1;
                let mut class = String::from("[");
                if chars.get(j) == Some(&'^') || chars.get(j) == Some(&'!') {
                    class.push('^');
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    if chars[j] == '\\' || chars[j] == '[' {
                        class.push('\\');
                    }
                    class.push(chars[j]);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err("syntax error in pattern".into());
                }
                class.push(']');
                re.push_str(&class);
                i = j;
            }
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some(n) => re.push_str(&regex::escape(&n.to_string())),
                    None => return Err("syntax error in pattern".into()),
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| e.to_string())
}

impl Matcher {
    /// Compiles the text of a `.dockerignore`.
    pub fn new(text: &str) -> Result<Matcher, String> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let mut p = line.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err("illegal exclusion pattern: \"!\"".into());
                }
            }
            let cleaned = clean(p.trim_start_matches('/'));
            let re = to_regex(&cleaned).map_err(|e| format!("error checking context: '{e}'."))?;
            patterns.push(Pattern { exclusion, re });
        }
        Ok(Matcher { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = {
            let mut v = Vec::new();
            let mut at = 0;
            while let Some(p) = path[at..].find('/') {
                v.push(&path[..at + p]);
                at += p + 1;
            }
            v
        };
        let mut excluded = false;
        for p in &self.patterns {
            if p.exclusion != excluded {
                continue;
            }
            let hit = p.re.is_match(&path) || parents.iter().any(|d| p.re.is_match(d));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether an exception could re-include something under the excluded directory
    /// `dir` (then the walk must still descend into it).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_table() {
        // (patterns, path, excluded)
        let cases: &[(&str, &str, bool)] = &[
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("**/*.md", "docs/README.md", true),
            ("**/*.md", "README.md", true),
            ("docs", "docs/a/b.txt", true),
            ("/docs/", "docs/x", true),
            ("*.md\n!README.md", "README.md", false),
            ("*.md\n!README.md", "CHANGES.md", true),
            ("!README.md\n*.md", "README.md", true),
            ("a/**/z", "a/b/c/z", true),
            ("a/**/z", "a/z", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c].txt", "b.txt", true),
            ("[!a-c].txt", "b.txt", false),
            ("# comment\n\n", "x", false),
            ("./build/../out", "out/x", true),
            ("secret\\*", "secret*", true),
            ("secret\\*", "secretx", false),
            ("**", "anything/at/all", true),
            ("**\n!keep", "keep", false),
            ("target\n!target/keep.txt", "target/keep.txt", false),
            ("target\n!target/keep.txt", "target/other.txt", true),
        ];
        for (pats, path, want) in cases {
            let m = Matcher::new(pats).expect("patterns");
            assert_eq!(m.excluded(path), *want, "{pats:?} {path}");
        }
        assert!(Matcher::new("!").is_err());
        assert!(Matcher::new("[abc").is_err());
    }
}
