//! berth-buildinfo: what a Berth binary says about its own build, for `berth version`
//! (client) and `GET /version` (server) alike: the git commit, the build time and the
//! Rust toolchain, recorded by `build.rs`. No dependencies; nothing else belongs here.

/// The short git commit the binary was built from (`unknown` outside a git checkout).
pub const GIT_COMMIT: &str = env!("BERTH_GIT_COMMIT");

/// When the binary was built, RFC 3339 in UTC as Docker's `BuildTime`
/// (`2025-05-30T12:07:14.000000000+00:00`); `SOURCE_DATE_EPOCH` when set.
pub const BUILD_TIME: &str = env!("BERTH_BUILD_TIME");

/// The rustc version that built the binary (`1.89.0`); empty if rustc could not say.
pub const RUST_VERSION: &str = env!("BERTH_RUST_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_filled() {
        assert!(!GIT_COMMIT.is_empty());
        assert!(RUST_VERSION.split('.').count() >= 3, "{RUST_VERSION}");
        let (date, time) = BUILD_TIME.split_once('T').expect("T");
        assert_eq!(date.len(), 10, "{BUILD_TIME}");
        assert!(time.ends_with("+00:00"), "{BUILD_TIME}");
    }
}
