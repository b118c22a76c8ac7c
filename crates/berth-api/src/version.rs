//! API versions: what berthd serves and how a `/vX.Y` path prefix is checked.

/// The newest API version berthd speaks; sent as `Api-Version` on every answer.
pub const MAX_API_VERSION: &str = "1.47";
/// The oldest API version berthd accepts on a `/vX.Y` path.
pub const MIN_API_VERSION: &str = "1.24";

/// A parsed `major.minor` API version, ordered numerically (1.9 < 1.41).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion { major: a.parse().ok()?, minor: b.parse().ok()? })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Splits an optional `/vX.Y` prefix off a request path.
/// Returns the version (if any) and the rest of the path.
pub fn split_version_prefix(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let candidate = &rest[..end];
        if ApiVersion::parse(candidate).is_some() {
            let tail = &rest[end..];
            return (Some(candidate), if tail.is_empty() { "/" } else { tail });
        }
    }
    (None, path)
}

/// Checks a requested version against what berthd serves; the error text is Docker's.
pub fn check_version(requested: &str) -> Result<ApiVersion, String> {
    let v = ApiVersion::parse(requested).ok_or_else(|| format!("invalid API version {requested}"))?;
    let max = ApiVersion::parse(MAX_API_VERSION).unwrap_or(v);
    let min = ApiVersion::parse(MIN_API_VERSION).unwrap_or(v);
    if v > max {
        return Err(format!(
            "client version {requested} is too new. Maximum supported API version is {MAX_API_VERSION}"
        ));
    }
    if v < min {
        return Err(format!(
            "client version {requested} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(split_version_prefix("/v1.41/containers/json"), (Some("1.41"), "/containers/json"));
        assert_eq!(split_version_prefix("/containers/json"), (None, "/containers/json"));
        assert_eq!(split_version_prefix("/_ping"), (None, "/_ping"));
        assert_eq!(split_version_prefix("/v1.41"), (Some("1.41"), "/"));
        assert_eq!(split_version_prefix("/volumes"), (None, "/volumes"));
    }

    #[test]
    fn version_bounds() {
        assert!(check_version("1.41").is_ok());
        assert!(check_version("1.47").is_ok());
        let e = check_version("1.99").expect_err("too new");
        assert_eq!(e, "client version 1.99 is too new. Maximum supported API version is 1.47");
        assert!(check_version("1.11").expect_err("too old").contains("too old"));
        assert!(ApiVersion::parse("1.9") < ApiVersion::parse("1.41"));
    }
}
