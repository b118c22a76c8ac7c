//! Image references: Docker's grammar (distribution/reference) and its normalisation
//! of short names onto Docker Hub. Pure code, no I/O, no serde: the CLI parses with it
//! before talking to the daemon, and berth-image (store, registry client) re-exports it.

use std::fmt;

/// The registry host Docker Hub references normalise to.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
const LEGACY_HUB_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const NAME_TOTAL_MAX: usize = 255;

/// A reference string that does not follow Docker's grammar. The texts are Docker's
/// (distribution/reference), because daemon and CLI print them verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    /// `invalid reference format`
    InvalidFormat,
    /// `invalid reference format: repository name (<path>) must be lowercase`
    Uppercase(String),
    /// `invalid repository name (<hex>), cannot specify 64-byte hexadecimal strings`
    HexName(String),
    /// `invalid reference format: repository name must not be more than 255 characters`
    NameTooLong,
    /// A `tag` query parameter that is no tag (distribution's ErrTagInvalidFormat).
    InvalidTag,
    /// A repository given with a digest where only a name (and tag) may stand.
    DigestReference,
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::InvalidFormat => f.write_str("invalid reference format"),
            ReferenceError::Uppercase(p) => write!(f, "invalid reference format: repository name ({p}) must be lowercase"),
            ReferenceError::HexName(h) => write!(f, "invalid repository name ({h}), cannot specify 64-byte hexadecimal strings"),
            ReferenceError::NameTooLong => f.write_str("invalid reference format: repository name must not be more than 255 characters"),
            ReferenceError::InvalidTag => f.write_str("invalid tag format"),
            ReferenceError::DigestReference => f.write_str("cannot import digest reference"),
        }
    }
}

impl std::error::Error for ReferenceError {}

/// A normalised image reference: `docker.io/library/alpine:3@sha256:…`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port): `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Repository path within the registry: `library/alpine`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Replaces the tag with a separately given one (`?tag=` of pull and tag), checked
    /// as Docker checks it; a tag that parses as a digest sets the digest instead, as
    /// `POST /images/create` does.
    pub fn with_tag_param(mut self, tag: &str) -> Result<Reference, ReferenceError> {
        if tag.is_empty() {
            return Ok(self);
        }
        if tag.contains(':') {
            validate_digest(tag).map_err(|_| ReferenceError::InvalidTag)?;
            self.tag = None;
            self.digest = Some(tag.to_string());
        } else {
            validate_tag(tag).map_err(|_| ReferenceError::InvalidTag)?;
            self.tag = Some(tag.to_string());
        }
        Ok(self)
    }

    /// A repository to tag into (`POST /images/{name}/tag?repo=&tag=`, commit, import):
    /// a name with an optional tag, never a digest; the tag parameter must be a tag.
    pub fn parse_repo_tag(repo: &str, tag: &str) -> Result<Reference, ReferenceError> {
        let r = Reference::parse(repo)?;
        if r.digest.is_some() {
            return Err(ReferenceError::DigestReference);
        }
        if tag.is_empty() {
            return Ok(r);
        }
        validate_tag(tag).map_err(|_| ReferenceError::InvalidTag)?;
        Ok(Reference { tag: Some(tag.to_string()), ..r })
    }

    /// Parses and normalises like `docker pull` does, without adding a default tag.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if is_full_hex_id(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                validate_digest(d)?;
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is the part after the last ':' that follows the last '/'.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                let t = &name_tag[i + 1..];
                validate_tag(t)?;
                (&name_tag[..i], Some(t.to_string()))
            }
            None => (name_tag, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::InvalidFormat);
        }
        let (mut domain, mut path) = split_domain(name);
        if domain == LEGACY_HUB_DOMAIN {
            domain = DOCKER_HUB_DOMAIN.to_string();
        }
        if domain == DOCKER_HUB_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_PREFIX}{path}");
        }
        if path.to_lowercase() != path {
            return Err(ReferenceError::Uppercase(path));
        }
        validate_domain(&domain)?;
        validate_path(&path)?;
        if domain.len() + 1 + path.len() > NAME_TOTAL_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Reference { domain, path, tag, digest })
    }

    /// Adds the tag `latest` when the reference has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// The reference without tag or digest.
    pub fn name_only(&self) -> Reference {
        Reference { domain: self.domain.clone(), path: self.path.clone(), tag: None, digest: None }
    }

    /// `alpine`, `user/x`, `localhost:5000/x`. A Hub path whose first component would
    /// read as a registry (`docker.io/a.b/c`) keeps its domain, so that the short form
    /// never names another registry (Docker's familiar form drops it; found by fuzzing).
    pub fn familiar_name(&self) -> String {
        if self.is_docker_hub() && split_domain(&self.path).0 == DOCKER_HUB_DOMAIN {
            if let Some(rest) = self.path.strip_prefix(OFFICIAL_PREFIX) {
                if !rest.contains('/') {
                    return rest.to_string();
                }
            }
            return self.path.clone();
        }
        format!("{}/{}", self.domain, self.path)
    }

    /// `alpine:latest`, `alpine@sha256:…`, `localhost:5000/x:v1`.
    pub fn familiar(&self) -> String {
        with_suffixes(self.familiar_name(), self)
    }

    /// `docker.io/library/alpine:latest`.
    pub fn full(&self) -> String {
        with_suffixes(format!("{}/{}", self.domain, self.path), self)
    }

    /// `docker.io/library/alpine` — the repository name without tag or digest.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The `tag` query value of a pull (`POST /images/create?fromImage=&tag=`): the
    /// digest if any, else the tag, else `latest`.
    pub fn tag_or_digest(&self) -> String {
        self.digest.clone().or_else(|| self.tag.clone()).unwrap_or_else(|| "latest".into())
    }

    pub fn is_docker_hub(&self) -> bool {
        self.domain == DOCKER_HUB_DOMAIN
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

fn with_suffixes(mut s: String, r: &Reference) -> String {
    if let Some(t) = &r.tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &r.digest {
        s.push('@');
        s.push_str(d);
    }
    s
}

/// A full 64-character hex image id (which Docker refuses as a repository name).
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Docker's rule: the first component is a registry iff it contains '.' or ':', is
/// `localhost`, or has uppercase letters (which repository paths never have).
fn split_domain(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB_DOMAIN.to_string(), name.to_string()),
    }
}

fn validate_domain(domain: &str) -> Result<(), ReferenceError> {
    let bad = Err(ReferenceError::InvalidFormat);
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 literal: [::1]:5000
        let Some((inner, after)) = rest.split_once(']') else { return bad };
        if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return bad;
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return bad,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return bad;
        }
    }
    if let Some(h) = host {
        for comp in h.split('.') {
            let b = comp.as_bytes();
            let ok = !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return bad;
            }
        }
    }
    Ok(())
}

/// Path components: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn validate_path(path: &str) -> Result<(), ReferenceError> {
    for comp in path.split('/') {
        if !valid_path_component(comp) {
            return Err(ReferenceError::InvalidFormat);
        }
    }
    Ok(())
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Tags: `[\w][\w.-]{0,127}`.
fn validate_tag(t: &str) -> Result<(), ReferenceError> {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty() || b.len() > 128 || !word(b[0]) || !b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-') {
        return Err(ReferenceError::InvalidFormat);
    }
    Ok(())
}

/// Digests: `algorithm:hex`; sha256 needs 64 and sha512 128 lowercase hex characters.
fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let bad = Err(ReferenceError::InvalidFormat);
    let Some((alg, hex)) = d.split_once(':') else { return bad };
    let alg_ok = !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'.'));
    let lower_hex = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let hex_ok = match alg {
        "sha256" => hex.len() == 64 && lower_hex(hex),
        "sha512" => hex.len() == 128 && lower_hex(hex),
        _ => hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
    };
    if alg_ok && hex_ok {
        Ok(())
    } else {
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn tag_params_are_checked() {
        let r = |s: &str| Reference::parse(s).expect("parse");
        let cases: &[(&str, &str, Result<(Option<&str>, Option<&str>), &str>)] = &[
            ("busybox", "", Ok((None, None))),
            ("busybox", "1.36", Ok((Some("1.36"), None))),
            ("busybox:old", "new", Ok((Some("new"), None))),
            ("busybox:old", D, Ok((None, Some(D)))),
            ("busybox", "\0", Err("invalid tag format")),
            ("busybox", "-x", Err("invalid tag format")),
            ("busybox", "sha256:abc", Err("invalid tag format")),
            ("busybox", &"a".repeat(129), Err("invalid tag format")),
        ];
        for (name, tag, want) in cases {
            let got = r(name).with_tag_param(tag).map(|r| (r.tag, r.digest)).map_err(|e| e.to_string());
            let want = want.map(|(t, d)| (t.map(String::from), d.map(String::from))).map_err(String::from);
            assert_eq!(got, want, "{name} tag={tag}");
        }
    }

    #[test]
    fn repo_tags_refuse_digests() {
        let e = Reference::parse_repo_tag(&format!("busybox@{D}"), "").expect_err("digest");
        assert_eq!(e.to_string(), "cannot import digest reference");
        let e = Reference::parse_repo_tag("busybox", "a b").expect_err("tag");
        assert_eq!(e.to_string(), "invalid tag format");
        let ok = Reference::parse_repo_tag("me/x:1", "2").expect("ok");
        assert_eq!(ok.tag.as_deref(), Some("2"));
        assert_eq!(Reference::parse_repo_tag("me/x:1", "").expect("ok").tag.as_deref(), Some("1"));
    }

    #[test]
    fn familiar_form_never_names_another_registry() {
        let r = Reference::parse("docker.io/a.b/c:1").expect("parse");
        assert_eq!(r.domain, "docker.io");
        assert_eq!(r.to_string(), "docker.io/a.b/c:1");
        assert_eq!(Reference::parse(&r.to_string()).expect("again"), r);
        assert_eq!(Reference::parse("docker.io/library/alpine").expect("p").familiar_name(), "alpine");
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn parse_table() {
        let d = D;
        // input, domain, path, tag, digest, familiar, full
        let cases: &[(&str, &str, &str, Option<&str>, Option<&str>, &str, &str)] = &[
            ("alpine", "docker.io", "library/alpine", None, None, "alpine", "docker.io/library/alpine"),
            ("alpine:3", "docker.io", "library/alpine", Some("3"), None, "alpine:3", "docker.io/library/alpine:3"),
            ("user/x", "docker.io", "user/x", None, None, "user/x", "docker.io/user/x"),
            ("docker.io/library/alpine:3", "docker.io", "library/alpine", Some("3"), None, "alpine:3", "docker.io/library/alpine:3"),
            ("index.docker.io/library/alpine", "docker.io", "library/alpine", None, None, "alpine", "docker.io/library/alpine"),
            ("docker.io/alpine", "docker.io", "library/alpine", None, None, "alpine", "docker.io/library/alpine"),
            ("docker.io/library/a/b", "docker.io", "library/a/b", None, None, "library/a/b", "docker.io/library/a/b"),
            ("localhost/x", "localhost", "x", None, None, "localhost/x", "localhost/x"),
            ("localhost:5000/x", "localhost:5000", "x", None, None, "localhost:5000/x", "localhost:5000/x"),
            ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", Some("t"), None, "127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
            ("quay.io/org/img:v1.2-rc_3", "quay.io", "org/img", Some("v1.2-rc_3"), None, "quay.io/org/img:v1.2-rc_3", "quay.io/org/img:v1.2-rc_3"),
            ("my-reg.example.com:443/a.b__c--d", "my-reg.example.com:443", "a.b__c--d", None, None, "my-reg.example.com:443/a.b__c--d", "my-reg.example.com:443/a.b__c--d"),
            ("[::1]:5000/x:y", "[::1]:5000", "x", Some("y"), None, "[::1]:5000/x:y", "[::1]:5000/x:y"),
        ];
        for (input, domain, path, tag, digest, familiar, full) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.domain, *domain, "{input}");
            assert_eq!(r.path, *path, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest.as_deref(), *digest, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            assert_eq!(r.to_string(), *familiar, "{input}");
            assert_eq!(r.full(), *full, "{input}");
        }
        let r = Reference::parse(&format!("x@{d}")).unwrap();
        assert_eq!((r.path.as_str(), r.tag.as_deref(), r.digest.as_deref()), ("library/x", None, Some(d)));
        assert_eq!(r.familiar(), format!("x@{d}"));
        let r = Reference::parse(&format!("localhost:5000/x:t@{d}")).unwrap();
        assert_eq!(r.familiar(), format!("localhost:5000/x:t@{d}"));
    }

    #[test]
    fn errors_table() {
        let cases: &[(&str, &str)] = &[
            ("Alpine", "invalid reference format: repository name (library/Alpine) must be lowercase"),
            ("user/Repo:tag", "invalid reference format: repository name (user/Repo) must be lowercase"),
            ("", "invalid reference format"),
            (":tag", "invalid reference format"),
            ("alpine:", "invalid reference format"),
            ("alpine::3", "invalid reference format"),
            ("a b", "invalid reference format"),
            ("alpine@sha256:abc", "invalid reference format"),
            ("alpine@", "invalid reference format"),
            ("-alpine", "invalid reference format"),
            ("alpine-", "invalid reference format"),
            ("a//b", "invalid reference format"),
            ("a/", "invalid reference format"),
            ("a...b", "invalid reference format"),
            ("localhost:port/x", "invalid reference format"),
            ("x:-tag", "invalid reference format"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "invalid repository name (e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855), cannot specify 64-byte hexadecimal strings",
            ),
        ];
        for (input, msg) in cases {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} parsed as {r:?}"),
                Err(e) => assert_eq!(e.to_string(), *msg, "{input:?}"),
            }
        }
        let long = format!("a/{}", "b".repeat(260));
        assert!(Reference::parse(&long).is_err());
    }

    #[test]
    fn default_tag_and_familiar_name() {
        let cases: &[(&str, &str, &str)] = &[
            ("alpine", "alpine:latest", "alpine"),
            ("alpine:3", "alpine:3", "alpine"),
            ("user/x", "user/x:latest", "user/x"),
            ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x"),
        ];
        for (input, with_tag, name) in cases {
            let r = Reference::parse(input).unwrap().with_default_tag();
            assert_eq!(r.familiar(), *with_tag);
            assert_eq!(r.familiar_name(), *name);
        }
        let r = Reference::parse(&format!("alpine@{D}")).unwrap().with_default_tag();
        assert_eq!(r.tag, None);
        assert!(Reference::parse("alpine").unwrap().is_docker_hub());
        assert!(!Reference::parse("localhost/alpine").unwrap().is_docker_hub());
    }

    /// The normalisation the CLI relies on before talking to the daemon (moved from
    /// berth-cli's own parser): full name for `fromImage`, familiar form for messages,
    /// `tag` for the pull query.
    #[test]
    fn cli_names_and_pull_tags() {
        let qd = format!("quay.io/a/b@{D}");
        let cases: &[(&str, &str, &str, &str)] = &[
            ("busybox", "docker.io/library/busybox", "busybox:latest", "latest"),
            ("busybox:1.36", "docker.io/library/busybox", "busybox:1.36", "1.36"),
            ("user/repo", "docker.io/user/repo", "user/repo:latest", "latest"),
            ("localhost:5000/busybox", "localhost:5000/busybox", "localhost:5000/busybox:latest", "latest"),
            ("localhost:5000/myb:v2", "localhost:5000/myb", "localhost:5000/myb:v2", "v2"),
            ("docker.io/library/busybox", "docker.io/library/busybox", "busybox:latest", "latest"),
            (&qd, "quay.io/a/b", &qd, D),
            ("localhost/x", "localhost/x", "localhost/x:latest", "latest"),
        ];
        for (input, full, familiar, tag) in cases {
            let r = Reference::parse(input).expect("parse").with_default_tag();
            assert_eq!(r.full_name(), *full, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            assert_eq!(r.tag_or_digest(), *tag, "{input}");
        }
        assert!(Reference::parse("BusyBox").is_err());
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        /// Pieces that make references that are often valid and sometimes nearly so.
        fn reference_text() -> impl Strategy<Value = String> {
            let domain = prop::option::of(prop::sample::select(vec![
                "docker.io/", "index.docker.io/", "127.0.0.1:5000/", "localhost/", "Reg.Example:1/", "[::1]:5000/",
            ]));
            let path = "[a-z0-9._/-]{1,20}";
            let tag = prop::option::of(":[A-Za-z0-9_.-]{0,10}");
            let digest = prop::option::of(prop::sample::select(vec![
                "@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "@sha256:abc",
                "@",
            ]));
            (domain, path, tag, digest).prop_map(|(d, p, t, g)| {
                format!("{}{p}{}{}", d.unwrap_or(""), t.unwrap_or_default(), g.unwrap_or(""))
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
            /// Arbitrary text never panics the parser.
            #[test]
            fn any_text_parses_or_fails(raw in "\\PC{0,80}") {
                let _ = Reference::parse(&raw).map(|r| r.to_string());
            }

            /// A parsed reference prints to a string that parses back to itself, and a
            /// tag parameter applied to it is a valid tag afterwards.
            #[test]
            fn parsed_references_round_trip(raw in reference_text(), tag in "[A-Za-z0-9_.-]{0,6}") {
                if let Ok(r) = Reference::parse(&raw) {
                    let again = Reference::parse(&r.to_string()).expect("printed reference parses");
                    prop_assert_eq!(&again, &r);
                    if let Ok(t) = r.clone().with_tag_param(&tag) {
                        let back = Reference::parse(&t.to_string()).expect("tagged reference parses");
                        prop_assert_eq!(back, t);
                    }
                }
            }
        }
    }
}

