//! Method + path → handler, in two steps so that a refused request's body is never read:
//! [`admit`] decides from the method, path and headers alone (CORS preflight, 404, 405, an
//! invalid configuration, 401, 413 by `Content-Length`); [`respond`] runs the handler once the
//! body is in. Every answer carries the CORS headers.

use crate::api::handlers::{self, rerank, tei, tokens};
use crate::api::{docs, Handler, Services};
use crate::auth::{self, Grant};
use crate::config::{Config, ConfigError};
use crate::http::error::{ApiError, Family};
use crate::http::{Method, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    /// Needs `Authorization: Bearer <token>`.
    Protected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Exact(&'static str),
    /// Any path that continues after this prefix.
    Under(&'static str),
}

impl Pattern {
    fn matches(self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Under(prefix) => path.len() > prefix.len() && path.starts_with(prefix),
        }
    }
}

pub struct Route {
    pattern: Pattern,
    methods: &'static [Method],
    access: Access,
    handler: Handler,
}

const GET: &[Method] = &[Method::Get];
const POST: &[Method] = &[Method::Post];
const GET_POST: &[Method] = &[Method::Get, Method::Post];

const fn route(
    pattern: Pattern,
    methods: &'static [Method],
    access: Access,
    handler: Handler,
) -> Route {
    Route {
        pattern,
        methods,
        access,
        handler,
    }
}

/// Matched in order: the first route whose pattern matches the path and that takes the method
/// answers. A path may have a route per method, each with its own access (`GET /` is public
/// liveness, `POST /` embeds like TEI).
const ROUTES: &[Route] = &[
    route(Pattern::Exact("/"), GET, Access::Public, handlers::root),
    route(Pattern::Exact("/"), POST, Access::Protected, tei::embed_tei),
    route(
        Pattern::Exact("/v1/ping"),
        GET,
        Access::Public,
        handlers::ping,
    ),
    route(
        Pattern::Exact("/health"),
        GET,
        Access::Public,
        handlers::health,
    ),
    route(
        Pattern::Exact("/openapi.json"),
        GET,
        Access::Public,
        |_, _| Ok(docs::openapi()),
    ),
    route(Pattern::Exact("/docs"), GET, Access::Public, |_, _| {
        Ok(docs::page())
    }),
    route(
        Pattern::Exact("/docs/swagger-ui-bundle.js"),
        GET,
        Access::Public,
        |_, _| Ok(docs::swagger_ui_bundle()),
    ),
    route(
        Pattern::Exact("/docs/swagger-ui.css"),
        GET,
        Access::Public,
        |_, _| Ok(docs::swagger_ui_css()),
    ),
    route(
        Pattern::Exact("/v1/encode"),
        GET_POST,
        Access::Protected,
        handlers::encode,
    ),
    route(
        Pattern::Exact("/v1/encode/multiple_encode"),
        GET_POST,
        Access::Protected,
        handlers::multiple_encode,
    ),
    route(
        Pattern::Exact("/v1/encode/cos_sim_weight"),
        POST,
        Access::Protected,
        handlers::cos_sim_weight,
    ),
    route(
        Pattern::Exact("/v1/paraphrase"),
        POST,
        Access::Protected,
        handlers::paraphrase,
    ),
    route(
        Pattern::Exact("/v1/embeddings"),
        POST,
        Access::Protected,
        handlers::embeddings,
    ),
    route(
        Pattern::Exact("/v1/models"),
        GET,
        Access::Protected,
        handlers::models,
    ),
    route(
        Pattern::Under(handlers::MODELS_PREFIX),
        GET,
        Access::Protected,
        handlers::model,
    ),
    route(
        Pattern::Exact("/v1/tokenize"),
        POST,
        Access::Protected,
        tokens::openai_tokenize,
    ),
    route(
        Pattern::Exact("/v1/rerank"),
        POST,
        Access::Protected,
        rerank::cohere_v1,
    ),
    route(
        Pattern::Exact("/v2/rerank"),
        POST,
        Access::Protected,
        rerank::cohere_v2,
    ),
    route(
        Pattern::Exact("/embed"),
        POST,
        Access::Protected,
        tei::embed_tei_or_spin,
    ),
    route(
        Pattern::Exact("/rerank"),
        POST,
        Access::Protected,
        rerank::tei,
    ),
    route(
        Pattern::Exact("/tokenize"),
        POST,
        Access::Protected,
        tokens::tei_tokenize,
    ),
    route(
        Pattern::Exact("/decode"),
        POST,
        Access::Protected,
        tokens::tei_decode,
    ),
    route(Pattern::Exact("/info"), GET, Access::Public, tei::info),
];

/// The original service's word-vector routes, deliberately not carried over.
const WORD_VECTORS: Pattern = Pattern::Under("/v1/w2v/");
const WORD_VECTORS_ROOT: &str = "/v1/w2v";
const WORD_VECTORS_GONE: &str =
    "word vectors (/v1/w2v) are not served by this service: use /v1/encode or /v1/embeddings";

/// Headers a browser may send cross-origin: credentials, JSON bodies, conditional requests
/// (`If-None-Match`) and its own request id.
const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, If-None-Match, X-Request-Id";
const CORS_ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Response headers a browser script may read.
const CORS_EXPOSE_HEADERS: &str = "X-Cache, X-Request-Id, Server-Timing, ETag";

impl Route {
    fn allows(&self, method: &Method) -> bool {
        // HEAD is answered like GET without the body.
        let method = if *method == Method::Head {
            &Method::Get
        } else {
            method
        };
        self.methods.contains(method)
    }

    /// The methods for `Allow`: the route's own, HEAD with GET, OPTIONS.
    fn allowed_methods(&self) -> Vec<Method> {
        let mut methods = self.methods.to_vec();
        if methods.contains(&Method::Get) {
            methods.push(Method::Head);
        }
        methods.push(Method::Options);
        methods
    }
}

/// Each API family's routes answer errors in its own shape (OpenAI's, Cohere's, TEI's, for their
/// paths and everything below them); every other path in the original service's. `POST /` is
/// TEI's embedding route, `GET /` the original liveness check.
fn family(request: &Request) -> Family {
    let path = request.route_path();
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if ["/v1/embeddings", "/v1/models", "/v1/tokenize"]
        .into_iter()
        .any(under)
    {
        Family::OpenAi
    } else if under("/v1/rerank") || under("/v2/rerank") {
        Family::Cohere
    } else if ["/embed", "/rerank", "/tokenize", "/decode", "/info"]
        .into_iter()
        .any(under)
        || (path == "/" && request.method == Method::Post)
    {
        Family::Tei
    } else {
        Family::Original
    }
}

/// A request that routing, the configuration, authorization and the declared body length have
/// let through: only now is its body worth reading.
pub struct Admitted<'c> {
    route: &'static Route,
    pub config: &'c Config,
    /// What the request's token grants (nothing beyond the request on open routes).
    pub grant: Grant,
}

/// Everything that is decided before the body is read. `Err` is the finished response.
pub fn admit<'c>(
    request: &Request,
    config: &'c Result<Config, ConfigError>,
    now: u64,
) -> Result<Admitted<'c>, Response> {
    if request.method == Method::Options {
        return Err(with_cors(preflight()));
    }
    let admitted = find_route(request).and_then(|route| {
        // Not logged here: the answer names the variable, and so does the host's start-up check.
        let config = config
            .as_ref()
            .map_err(|error| ApiError::Misconfigured(error.to_string()))?;
        let grant = match route.access {
            Access::Protected => {
                auth::authorize(request.header("authorization"), &config.credentials, now)?
            }
            Access::Public => Grant::default(),
        };
        check_declared_length(
            request.header("content-length"),
            config.limits.max_body_bytes,
        )?;
        Ok(Admitted {
            route,
            config,
            grant,
        })
    });
    admitted.map_err(|error| error_response(request, error))
}

/// Answers an admitted request, its body now read. Never fails: every error becomes its JSON
/// response.
pub fn respond(admitted: Admitted, request: &Request, services: &Services) -> Response {
    let answered = check_body_length(request.body.len(), services.config.limits.max_body_bytes)
        .and_then(|()| (admitted.route.handler)(request, services));
    match answered {
        Ok(mut response) => {
            if request.method == Method::Head {
                response.body.clear();
            }
            with_cors(response)
        }
        Err(error) => error_response(request, error),
    }
}

fn find_route(request: &Request) -> Result<&'static Route, ApiError> {
    let path = request.route_path();
    if path == WORD_VECTORS_ROOT || WORD_VECTORS.matches(path) {
        return Err(ApiError::NotFound(WORD_VECTORS_GONE.into()));
    }
    let routes: Vec<&'static Route> = ROUTES
        .iter()
        .filter(|route| route.pattern.matches(path))
        .collect();
    if routes.is_empty() {
        return Err(ApiError::NotFound(
            "The requested URL was not found on the server.".into(),
        ));
    }
    if let Some(route) = routes.iter().find(|route| route.allows(&request.method)) {
        return Ok(route);
    }
    let mut allow: Vec<Method> = Vec::new();
    for method in routes.iter().flat_map(|route| route.allowed_methods()) {
        if !allow.contains(&method) {
            allow.push(method);
        }
    }
    Err(ApiError::MethodNotAllowed {
        method: request.method.as_str().to_owned(),
        allow: sorted_methods(allow),
    })
}

/// `Allow`'s order: GET, POST, HEAD, OPTIONS, then any other.
fn sorted_methods(mut methods: Vec<Method>) -> Vec<Method> {
    let rank = |method: &Method| match method {
        Method::Get => 0,
        Method::Post => 1,
        Method::Head => 2,
        Method::Options => 3,
        Method::Other(_) => 4,
    };
    methods.sort_by_key(rank);
    methods
}

/// Refuses a body by its `Content-Length` before a byte of it is read. A missing or unparsable
/// header passes: the body read afterwards is still checked by [`check_body_length`].
fn check_declared_length(content_length: Option<&str>, limit: usize) -> Result<(), ApiError> {
    let Some(digits) = content_length.map(str::trim) else {
        return Ok(());
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(());
    }
    // Too many digits for a usize is certainly over the limit.
    check_body_length(digits.parse().unwrap_or(usize::MAX), limit)
}

fn check_body_length(length: usize, limit: usize) -> Result<(), ApiError> {
    if length > limit {
        return Err(ApiError::TooLarge {
            at: None,
            problem: format!("The request body is larger than the limit of {limit} bytes."),
        });
    }
    Ok(())
}

fn error_response(request: &Request, error: ApiError) -> Response {
    if let ApiError::Internal { .. } | ApiError::Upstream(_) = error {
        eprintln!("{} {}: {error}", request.method.as_str(), request.path);
    }
    with_cors(error.into_response(family(request)))
}

/// Every response, errors included, may be read cross-origin.
fn with_cors(response: Response) -> Response {
    response
        .with_header("access-control-allow-origin", "*")
        .with_header("access-control-expose-headers", CORS_EXPOSE_HEADERS)
}

/// A CORS preflight, for any path: any origin may call with credentials and JSON bodies. 200 as
/// the replaced service answered (its clients' tests assert it). It carries no `Allow`: that
/// header would have to list the path's own methods.
fn preflight() -> Response {
    Response::empty(200)
        .with_header("access-control-allow-methods", CORS_ALLOW_METHODS)
        .with_header("access-control-allow-headers", CORS_ALLOW_HEADERS)
        .with_header("access-control-max-age", "86400")
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
