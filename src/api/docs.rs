//! The API's documents, compiled into the component: the OpenAPI document and a Swagger UI page
//! that loads only from this service (`make docs-assets` fetches the pinned Swagger UI bundle).

use crate::http::Response;

/// The tracked OpenAPI 3.1 document, served byte for byte.
const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");
const SWAGGER_UI_BUNDLE: &[u8] = include_bytes!("../../build/docs-assets/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &[u8] = include_bytes!("../../build/docs-assets/swagger-ui.css");
/// `<package>@<version>` of the fetched Swagger UI, written by `scripts/fetch_docs_assets.py`.
const SWAGGER_UI_PACKAGE: &str = include_str!("../../build/docs-assets/.version");

/// The docs page. Asset and document URLs are absolute paths, so the page works at `/docs`
/// and at `/docs/` alike; `{version}` in the asset URLs becomes [`swagger_ui_version`].
const DOCS_HTML: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sbert-service API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css?v={version}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js?v={version}"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
</script>
</body>
</html>
"##;

/// The page asks for the assets under their Swagger UI version, so a browser may keep them
/// for a day without missing an upgrade.
const ASSET_CACHE_CONTROL: &str = "public, max-age=86400";

pub fn openapi() -> Response {
    Response::with_body(200, "application/json", OPENAPI_JSON)
}

/// The fetched Swagger UI's version, e.g. `5.35.0`.
fn swagger_ui_version() -> &'static str {
    let package = SWAGGER_UI_PACKAGE.trim();
    package
        .rsplit_once('@')
        .map_or(package, |(_, version)| version)
}

pub fn page() -> Response {
    let html = DOCS_HTML.replace("{version}", swagger_ui_version());
    Response::with_body(200, "text/html; charset=utf-8", html)
}

pub fn swagger_ui_bundle() -> Response {
    Response::with_body(200, "text/javascript; charset=utf-8", SWAGGER_UI_BUNDLE)
        .with_header("cache-control", ASSET_CACHE_CONTROL)
}

pub fn swagger_ui_css() -> Response {
    Response::with_body(200, "text/css; charset=utf-8", SWAGGER_UI_CSS)
        .with_header("cache-control", ASSET_CACHE_CONTROL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_json_of_version_3_1() {
        let document: serde_json::Value = serde_json::from_slice(&openapi().body).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    }

    #[test]
    fn the_page_loads_only_local_urls() {
        let html = String::from_utf8(page().body).unwrap();
        let version = swagger_ui_version();
        assert!(
            version.starts_with(|c: char| c.is_ascii_digit()) && !version.contains('@'),
            "{version}"
        );
        for url in [
            &format!("/docs/swagger-ui.css?v={version}"),
            &format!("/docs/swagger-ui-bundle.js?v={version}"),
            "/openapi.json",
        ] {
            assert!(html.contains(&format!("\"{url}\"")), "{url}");
        }
        assert!(!html.contains("//"), "no scheme-relative or absolute URLs");
    }

    #[test]
    fn the_assets_are_the_fetched_files() {
        assert!(swagger_ui_bundle().body.len() > 100_000);
        assert!(swagger_ui_css().body.len() > 10_000);
    }
}
