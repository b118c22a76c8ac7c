//! Image reference normalisation as the docker CLI does it before talking to the daemon
//! (`busybox` → `docker.io/library/busybox` + tag `latest`; familiar form for messages).

#[derive(Debug, Clone, PartialEq)]
pub struct Ref {
    /// Registry host (`docker.io` for Hub names).
    pub domain: String,
    /// Repository path (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Ref {
    pub fn parse(s: &str) -> Result<Ref, String> {
        if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            return Err(format!("invalid reference format: repository name ({s}) must be lowercase"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!("invalid reference format: repository name ({name}) must be lowercase"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => (d.to_string(), p.to_string()),
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        let domain = if domain == "index.docker.io" { "docker.io".to_string() } else { domain };
        Ok(Ref { domain, path, tag, digest })
    }

    /// `docker.io/library/busybox` (what `fromImage` and `repo` carry).
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `localhost:5000/myb`, `user/repo`.
    pub fn familiar_name(&self) -> String {
        if self.domain == "docker.io" {
            self.path.strip_prefix("library/").unwrap_or(&self.path).to_string()
        } else {
            self.full_name()
        }
    }

    /// Adds `latest` when there is neither tag nor digest.
    pub fn with_default_tag(mut self) -> Ref {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    pub fn familiar(&self) -> String {
        format!("{}{}", self.familiar_name(), self.suffix())
    }

    pub fn full(&self) -> String {
        format!("{}{}", self.full_name(), self.suffix())
    }

    /// The `tag` query value for a pull: the digest if any, else the tag.
    pub fn tag_or_digest(&self) -> String {
        self.digest.clone().or_else(|| self.tag.clone()).unwrap_or_else(|| "latest".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("busybox", "docker.io/library/busybox", "busybox:latest", "latest"),
            ("busybox:1.36", "docker.io/library/busybox", "busybox:1.36", "1.36"),
            ("user/repo", "docker.io/user/repo", "user/repo:latest", "latest"),
            ("localhost:5000/busybox", "localhost:5000/busybox", "localhost:5000/busybox:latest", "latest"),
            ("localhost:5000/myb:v2", "localhost:5000/myb", "localhost:5000/myb:v2", "v2"),
            ("docker.io/library/busybox", "docker.io/library/busybox", "busybox:latest", "latest"),
            ("quay.io/a/b@sha256:abc", "quay.io/a/b", "quay.io/a/b@sha256:abc", "sha256:abc"),
            ("localhost/x", "localhost/x", "localhost/x:latest", "latest"),
        ];
        for (input, full, familiar, tag) in cases {
            let r = Ref::parse(input).expect("parse").with_default_tag();
            assert_eq!(r.full_name(), *full, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            assert_eq!(r.tag_or_digest(), *tag, "{input}");
        }
        assert!(Ref::parse("BusyBox").is_err());
    }
}
