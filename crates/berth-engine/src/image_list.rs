//! `GET /images/json?filters=`: Docker's image list filters — `dangling`, `label`,
//! `before`, `since`, `reference` (Go `path.Match` globs against the familiar name with
//! and without its tag; only the matching tags and digests are listed). Parsing and
//! matching are pure; the engine resolves `before`/`since` images.

use std::collections::BTreeMap;

use berth_api::ImageSummary;

use crate::error::{Error, Result};
use crate::Engine;

/// The accepted keys (moby's `acceptedImageFilterTags`).
const KEYS: &[&str] = &["before", "dangling", "label", "reference", "since"];

/// Parsed filters, with `before`/`since` already turned into creation times.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImageFilters {
    /// `Some(true)`: only untagged images; `Some(false)`: only images with references.
    pub dangling: Option<bool>,
    pub labels: Vec<String>,
    pub references: Vec<String>,
    /// Only images created strictly before / after these unix times.
    pub before: Option<i64>,
    pub since: Option<i64>,
}

/// Go's `filters.GetBoolOrDefault`: `true`/`1`, `false`/`0`, nothing else and not both.
fn bool_filter(key: &str, vals: &[String]) -> Result<bool> {
    let t = vals.iter().any(|v| v == "true" || v == "1");
    let f = vals.iter().any(|v| v == "false" || v == "0");
    if t == f {
        return Err(Error::invalid(format!("invalid filter '{key}={}'", vals.join(","))));
    }
    Ok(t)
}

/// Go's `path.Match`: `*` any run of non-`/`, `?` one non-`/`, `[...]` classes
/// (`^`/`!` negation, ranges), `\` escapes. A malformed pattern is an error.
pub fn glob_match(pattern: &str, name: &str) -> std::result::Result<bool, String> {
    fn class(p: &[char], c: char) -> std::result::Result<(bool, usize), String> {
        // p starts after '['; returns (matched, chars consumed including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('^') | Some('!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let Some(&lo) = p.get(i) else { return Err("syntax error in pattern".into()) };
            if lo == ']' && !first {
                i += 1;
                break;
            }
            first = false;
            let lo = if lo == '\\' {
                i += 1;
                *p.get(i).ok_or("syntax error in pattern")?
            } else {
                lo
            };
            i += 1;
            let mut hi = lo;
            if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
                hi = p[i + 1];
                if hi == '\\' {
                    hi = *p.get(i + 2).ok_or("syntax error in pattern")?;
                    i += 1;
                }
                i += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        Ok((matched != negate, i))
    }
    fn rec(p: &[char], n: &[char]) -> std::result::Result<bool, String> {
        match p.first() {
            None => Ok(n.is_empty()),
            Some('*') => {
                let rest = &p[1..];
                for k in 0..=n.len() {
                    if k > 0 && n[k - 1] == '/' {
                        break;
                    }
                    if rec(rest, &n[k..])? {
                        return Ok(true);
                    }
                }
                // Still check the pattern's syntax, as Go does.
                rec(rest, &[]).map(|_| false)
            }
            Some('?') => match n.first() {
                Some(c) if *c != '/' => rec(&p[1..], &n[1..]),
                _ => Ok(false),
            },
            Some('[') => {
                let Some(&c) = n.first() else {
                    class(&p[1..], '\0')?;
                    return Ok(false);
                };
                let (ok, used) = class(&p[1..], c)?;
                if ok && c != '/' {
                    rec(&p[1 + used..], &n[1..])
                } else {
                    Ok(false)
                }
            }
            Some('\\') => match (p.get(1), n.first()) {
                (None, _) => Err("syntax error in pattern".into()),
                (Some(a), Some(b)) if a == b => rec(&p[2..], &n[1..]),
                _ => Ok(false),
            },
            Some(a) => match n.first() {
                Some(b) if a == b => rec(&p[1..], &n[1..]),
                _ => Ok(false),
            },
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

/// moby's `reference.FamiliarMatch`: the pattern against `name:tag` (or
/// `name@digest`), then against the name alone.
fn familiar_match(pattern: &str, reference: &str) -> Result<bool> {
    let err = |e: String| Error::invalid(e);
    if glob_match(pattern, reference).map_err(err)? {
        return Ok(true);
    }
    let name = match reference.split_once('@') {
        Some((n, _)) => n,
        None => match reference.rfind(':') {
            Some(i) if !reference[i..].contains('/') => &reference[..i],
            _ => reference,
        },
    };
    glob_match(pattern, name).map_err(err)
}

/// Applies `f` to summaries (already newest first); keeps Docker's rules: a
/// `reference` filter lists only the matching tags/digests and drops images without
/// one; `dangling=true` keeps untagged images.
pub fn apply(list: Vec<ImageSummary>, f: &ImageFilters) -> Result<Vec<ImageSummary>> {
    let mut out = Vec::new();
    for mut s in list {
        if f.before.is_some_and(|b| s.created >= b) || f.since.is_some_and(|t| s.created <= t) {
            continue;
        }
        if !f.labels.is_empty() {
            let mine = s.labels.clone().unwrap_or_default();
            let ok = f.labels.iter().all(|v| match v.split_once('=') {
                Some((k, val)) => mine.get(k).is_some_and(|x| x == val),
                None => mine.contains_key(v.as_str()),
            });
            if !ok {
                continue;
            }
        }
        if !f.references.is_empty() {
            let keep = |r: &String| -> Result<bool> {
                for p in &f.references {
                    if familiar_match(p, r)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            };
            let mut tags = Vec::new();
            for t in &s.repo_tags {
                if keep(t)? {
                    tags.push(t.clone());
                }
            }
            let mut digests = Vec::new();
            for d in &s.repo_digests {
                if keep(d)? {
                    digests.push(d.clone());
                }
            }
            if tags.is_empty() && digests.is_empty() {
                continue;
            }
            s.repo_tags = tags;
            s.repo_digests = digests;
        }
        match f.dangling {
            Some(true) if !s.repo_tags.is_empty() => continue,
            Some(false) if s.repo_tags.is_empty() && s.repo_digests.is_empty() => continue,
            _ => {}
        }
        out.push(s);
    }
    Ok(out)
}

impl Engine {
    /// `GET /images/json?filters=`: Docker's 400 `invalid filter 'k'` for an unknown
    /// key, 404 `No such image` for an unknown `before`/`since` image.
    /// Without `all`, an image with neither tags nor digests that is another image's
    /// parent (a build step, a loaded parent) is left out, as Docker leaves out
    /// intermediate images.
    pub async fn list_images_filtered(&self, raw: &str, all: bool) -> Result<Vec<ImageSummary>> {
        let parsed: BTreeMap<String, Vec<String>> =
            berth_api::parse_filters(raw).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&parsed, KEYS).map_err(Error::invalid)?;
        let mut f = ImageFilters::default();
        for (k, vals) in &parsed {
            match k.as_str() {
                "dangling" => f.dangling = Some(bool_filter(k, vals)?),
                "label" => f.labels = vals.clone(),
                "reference" => f.references = vals.clone(),
                "before" | "since" => {
                    for v in vals {
                        let t = self.resolve_image(v).await?.created_unix();
                        if k == "before" {
                            f.before = Some(f.before.map_or(t, |b| b.min(t)));
                        } else {
                            f.since = Some(f.since.map_or(t, |s| s.max(t)));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut list = self.list_images();
        if !all {
            let parents: std::collections::HashSet<String> = list.iter().map(|i| i.parent_id.clone()).filter(|p| !p.is_empty()).collect();
            list.retain(|i| !(i.repo_tags.is_empty() && i.repo_digests.is_empty() && parents.contains(&i.id)));
        }
        apply(list, &f)
    }
}

impl Engine {
    /// `GET /images/search?term=&limit=&filters=`: the registry's v1 search, filtered by
    /// `stars` (at least), `is-official`, `is-automated`.
    pub async fn search_images(&self, term: &str, limit: &str, raw: &str) -> Result<Vec<berth_image::search::SearchResult>> {
        let parsed = berth_api::parse_filters(raw).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        berth_api::check_filter_keys(&parsed, &["is-automated", "is-official", "stars"]).map_err(Error::invalid)?;
        let mut stars = 0u64;
        let (mut official, mut automated) = (None, None);
        for (k, vals) in &parsed {
            match k.as_str() {
                "stars" => {
                    for v in vals {
                        let n: u64 = v.parse().map_err(|_| Error::invalid(format!("invalid filter 'stars={v}'")))?;
                        stars = stars.max(n);
                    }
                }
                "is-official" => official = Some(bool_filter(k, vals)?),
                "is-automated" => automated = Some(bool_filter(k, vals)?),
                _ => {}
            }
        }
        let limit: u32 = if limit.is_empty() {
            25
        } else {
            limit.parse().map_err(|_| Error::invalid(format!("strconv.Atoi: parsing {limit:?}: invalid syntax")))?
        };
        let found = berth_image::search::search(&self.inner.cfg.registry, term, limit)
            .await
            .map_err(|e| Error::new(crate::error::ErrorKind::from(e.kind), e.message))?;
        Ok(found
            .into_iter()
            .filter(|r| r.star_count >= stars)
            .filter(|r| official.is_none_or(|o| r.is_official == o))
            .filter(|r| automated.is_none_or(|a| r.is_automated == a))
            .collect())
    }
}

impl Engine {
    /// `GET /distribution/{name}/json`: what the registry says `name` is.
    pub async fn inspect_distribution(
        &self,
        name: &str,
        auth: &berth_image::AuthConfig,
    ) -> Result<berth_image::distribution::DistributionInspect> {
        let r = berth_image::Reference::parse(name).map_err(Error::from)?;
        let creds = auth.credentials();
        berth_image::distribution::inspect(&r, &self.inner.cfg.registry, creds.as_ref()).await.map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_match() {
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("alp*", "alpine", Ok(true)),
            ("alp*", "alpine:latest", Ok(true)),
            ("*", "127.0.0.1:5000/test/busybox", Ok(false)),
            ("*/*/*", "127.0.0.1:5000/test/busybox", Ok(true)),
            ("a?pine", "alpine", Ok(true)),
            ("a?pine", "a/pine", Ok(false)),
            ("[a-c]lpine", "alpine", Ok(true)),
            ("[^a]lpine", "alpine", Ok(false)),
            ("[!b]lpine", "alpine", Ok(true)),
            ("alpine:3*", "alpine:3.19", Ok(true)),
            ("alpine\\:x", "alpine:x", Ok(true)),
            ("[", "a", Err(())),
            ("a[", "a", Err(())),
            ("x\\", "x", Err(())),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n).map_err(|_| ()), *want, "{p} {n}");
        }
    }

    fn summary(tags: &[&str], digests: &[&str], created: i64, labels: &[(&str, &str)]) -> ImageSummary {
        ImageSummary {
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            created,
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn filters_like_docker() {
        let list = vec![
            summary(&["alpine:latest", "me/alp:1"], &["alpine@sha256:aa"], 30, &[("a", "1")]),
            summary(&["busybox:latest"], &[], 20, &[("a", "2"), ("b", "")]),
            summary(&[], &[], 10, &[]),
            summary(&[], &["redis@sha256:bb"], 5, &[]),
        ];
        let run = |f: ImageFilters| -> Vec<(Vec<String>, i64)> {
            apply(list.clone(), &f).unwrap().into_iter().map(|s| (s.repo_tags, s.created)).collect()
        };
        let created = |f: ImageFilters| -> Vec<i64> { run(f).into_iter().map(|(_, c)| c).collect() };
        assert_eq!(created(ImageFilters::default()), [30, 20, 10, 5]);
        assert_eq!(created(ImageFilters { dangling: Some(true), ..Default::default() }), [10, 5]);
        assert_eq!(created(ImageFilters { dangling: Some(false), ..Default::default() }), [30, 20, 5]);
        assert_eq!(created(ImageFilters { before: Some(20), ..Default::default() }), [10, 5]);
        assert_eq!(created(ImageFilters { since: Some(10), ..Default::default() }), [30, 20]);
        assert_eq!(created(ImageFilters { labels: vec!["a".into()], ..Default::default() }), [30, 20]);
        assert_eq!(created(ImageFilters { labels: vec!["a=2".into(), "b".into()], ..Default::default() }), [20]);
        // Only the matching tags are listed.
        assert_eq!(
            run(ImageFilters { references: vec!["alp*".into()], ..Default::default() }),
            [(vec!["alpine:latest".to_string()], 30)]
        );
        assert_eq!(created(ImageFilters { references: vec!["redis".into()], ..Default::default() }), [5]);
        assert!(apply(list.clone(), &ImageFilters { references: vec!["[".into()], ..Default::default() }).is_err());
    }

    #[test]
    fn dangling_values() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(bool_filter("dangling", &v(&["true"])).unwrap());
        assert!(bool_filter("dangling", &v(&["1"])).unwrap());
        assert!(!bool_filter("dangling", &v(&["false"])).unwrap());
        assert_eq!(bool_filter("dangling", &v(&["maybe"])).unwrap_err().message, "invalid filter 'dangling=maybe'");
        assert!(bool_filter("dangling", &v(&["true", "false"])).is_err());
    }
}
