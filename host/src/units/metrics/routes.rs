//! Route labels: bounded, and never a raw path.
//!
//! The manifest's route patterns say little (a component often has the single route `/...`), and raw paths
//! would let any client mint label values. So the label is the request's path family, its first two segments
//! (`/api/items` for `/api/items/42/`, `/` for `/`), and a family becomes a label only after the
//! component has answered a request in it successfully (2xx or 3xx, OPTIONS excluded: CORS preflights succeed
//! on any path). Requests in other families, such as probes of unknown paths, and every family beyond the
//! first [`MAX_ROUTES`], are labelled [`OTHER_ROUTE`].

use std::collections::BTreeSet;

use http::Method;

/// How many path families may become route labels; later ones are counted as [`OTHER_ROUTE`].
pub const MAX_ROUTES: usize = 32;

/// The route label of requests outside the known path families.
pub const OTHER_ROUTE: &str = "other";

#[derive(Default)]
pub struct RouteLabels(BTreeSet<String>);

impl RouteLabels {
    /// The label of a request for `path` that was answered with `status`.
    pub fn label(&mut self, method: &Method, path: &str, status: u16) -> String {
        let family = path_family(path);
        if self.0.contains(&family) {
            return family;
        }
        let served = (200..400).contains(&status) && method != Method::OPTIONS;
        if served && self.0.len() < MAX_ROUTES {
            self.0.insert(family.clone());
            return family;
        }
        OTHER_ROUTE.to_string()
    }
}

/// The first two non-empty segments of `path`.
fn path_family(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(2).collect();
    format!("/{}", segments.join("/"))
}

/// The method label: the standard methods by name, extension methods (unbounded) as `other`.
pub fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    STANDARD
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_learned_from_successes_and_capped() {
        let mut routes = RouteLabels::default();
        // Failures and preflights in an unknown family do not make it a label.
        assert_eq!(routes.label(&Method::GET, "/v1/stray-1", 404), "other");
        assert_eq!(routes.label(&Method::GET, "/docs", 401), "other");
        assert_eq!(routes.label(&Method::OPTIONS, "/anything", 200), "other");
        assert_eq!(routes.label(&Method::GET, "/anything", 404), "other");
        // A success does; later failures in the family keep its label.
        assert_eq!(routes.label(&Method::GET, "//docs/", 200), "/docs");
        assert_eq!(
            routes.label(&Method::GET, "/docs/swagger-ui.css", 304),
            "/docs/swagger-ui.css"
        );
        assert_eq!(routes.label(&Method::POST, "/docs", 405), "/docs");
        assert_eq!(
            routes.label(&Method::GET, "/v1/models/some/model", 200),
            "/v1/models"
        );
        assert_eq!(
            routes.label(&Method::GET, "/v1/models/unknown", 404),
            "/v1/models"
        );

        for n in routes.0.len()..MAX_ROUTES {
            assert_eq!(
                routes.label(&Method::GET, &format!("/f{n}"), 200),
                format!("/f{n}")
            );
        }
        assert_eq!(routes.label(&Method::GET, "/one-too-many", 200), "other");
        assert_eq!(routes.label(&Method::GET, "/docs", 200), "/docs");
        assert_eq!(routes.0.len(), MAX_ROUTES);
    }

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "other"
        );
    }
}
