//! Routes as the manifest writes them (`/exact`, `/prefix/...`), and how a request path matches one.

use anyhow::{bail, Result};

/// A route as written in the manifest, parsed for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Matches exactly this path.
    Exact(String),
    /// Matches this path and everything below it; `""` (from `/...`) matches every path.
    Prefix(String),
}

impl Route {
    /// Parses `/exact` or `/prefix/...`.
    pub fn parse(route: &str) -> Result<Self> {
        if !route.starts_with('/') {
            bail!("route `{route}` must start with `/`");
        }
        match route.strip_suffix("/...") {
            Some(prefix) if prefix.contains("...") => {
                bail!("route `{route}` may only end with `/...`")
            }
            Some(prefix) => Ok(Self::Prefix(prefix.to_string())),
            None if route.contains("...") => bail!("route `{route}` may only end with `/...`"),
            None => Ok(Self::Exact(route.trim_end_matches('/').to_string())),
        }
    }

    /// The part of `path` below the route (Spin's `spin-path-info`), or `None` if the route does not match.
    pub fn path_info<'a>(&self, path: &'a str) -> Option<&'a str> {
        match self {
            Self::Exact(exact) => (path.trim_end_matches('/') == exact).then_some(""),
            Self::Prefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then_some(rest)
            }
        }
    }

    /// How specific the route is: exact routes beat prefixes, longer prefixes beat shorter ones.
    pub fn specificity(&self) -> (bool, usize) {
        match self {
            Self::Exact(path) => (true, path.len()),
            Self::Prefix(prefix) => (false, prefix.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_like_spin() {
        let all = Route::parse("/...").unwrap();
        assert_eq!(all.path_info("/v1/ping"), Some("/v1/ping"));
        assert_eq!(all.path_info("/"), Some("/"));

        let api = Route::parse("/api/...").unwrap();
        assert_eq!(api.path_info("/api"), Some(""));
        assert_eq!(api.path_info("/api/x/y"), Some("/x/y"));
        assert_eq!(api.path_info("/apix"), None);

        let exact = Route::parse("/health").unwrap();
        assert_eq!(exact.path_info("/health"), Some(""));
        assert_eq!(exact.path_info("/health/"), Some(""));
        assert_eq!(exact.path_info("/health/x"), None);

        assert!(exact.specificity() > api.specificity());
        assert!(api.specificity() > all.specificity());
        assert!(Route::parse("api").is_err());
        assert!(Route::parse("/a/.../b").is_err());
    }
}
