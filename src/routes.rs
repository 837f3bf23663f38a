//! Method + path → handler: trailing slashes, CORS, authorization, limits, 404 and 405.

use crate::auth;
use crate::docs;
use crate::error::{ApiError, Family};
use crate::handlers::{self, Handler, Services, MODELS_PREFIX};
use crate::http::{Method, Request, Response};
use crate::settings;

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

struct Route {
    pattern: Pattern,
    methods: &'static [Method],
    access: Access,
    handler: Handler,
}

const GET: &[Method] = &[Method::Get];
const POST: &[Method] = &[Method::Post];
const GET_POST: &[Method] = &[Method::Get, Method::Post];

/// Matched in order: the first route whose pattern matches the path answers.
const ROUTES: &[Route] = &[
    Route {
        pattern: Pattern::Exact("/"),
        methods: GET,
        access: Access::Public,
        handler: handlers::root,
    },
    Route {
        pattern: Pattern::Exact("/v1/ping"),
        methods: GET,
        access: Access::Public,
        handler: handlers::ping,
    },
    Route {
        pattern: Pattern::Exact("/openapi.json"),
        methods: GET,
        access: Access::Public,
        handler: |_, _| Ok(docs::openapi()),
    },
    Route {
        pattern: Pattern::Exact("/docs"),
        methods: GET,
        access: Access::Public,
        handler: |_, _| Ok(docs::page()),
    },
    Route {
        pattern: Pattern::Exact("/docs/swagger-ui-bundle.js"),
        methods: GET,
        access: Access::Public,
        handler: |_, _| Ok(docs::swagger_ui_bundle()),
    },
    Route {
        pattern: Pattern::Exact("/docs/swagger-ui.css"),
        methods: GET,
        access: Access::Public,
        handler: |_, _| Ok(docs::swagger_ui_css()),
    },
    Route {
        pattern: Pattern::Exact("/v1/encode"),
        methods: GET_POST,
        access: Access::Protected,
        handler: handlers::encode,
    },
    Route {
        pattern: Pattern::Exact("/v1/encode/multiple_encode"),
        methods: GET_POST,
        access: Access::Protected,
        handler: handlers::multiple_encode,
    },
    Route {
        pattern: Pattern::Exact("/v1/encode/cos_sim_weight"),
        methods: POST,
        access: Access::Protected,
        handler: handlers::cos_sim_weight,
    },
    Route {
        pattern: Pattern::Exact("/v1/paraphrase"),
        methods: POST,
        access: Access::Protected,
        handler: handlers::paraphrase,
    },
    Route {
        pattern: Pattern::Exact("/v1/embeddings"),
        methods: POST,
        access: Access::Protected,
        handler: handlers::embeddings,
    },
    Route {
        pattern: Pattern::Exact("/v1/models"),
        methods: GET,
        access: Access::Protected,
        handler: handlers::models,
    },
    Route {
        pattern: Pattern::Under(MODELS_PREFIX),
        methods: GET,
        access: Access::Protected,
        handler: handlers::model,
    },
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

/// OpenAI's routes answer errors in OpenAI's shape; every other path in the original one.
fn family(path: &str) -> Family {
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/v1/embeddings") || under("/v1/models") {
        Family::OpenAi
    } else {
        Family::Original
    }
}

/// A request that routing, authorization and the declared body length have let through: only
/// now is its body worth reading.
pub struct Admitted(&'static Route);

/// Answers one request whose body is already read. Never fails: every error becomes its JSON
/// response.
pub fn handle(request: &Request, services: &Services) -> Response {
    match admit(request, services) {
        Ok(admitted) => handle_admitted(admitted, request, services),
        Err(response) => response,
    }
}

/// Everything that is decided from the method, path and headers alone (preflight, 404, 405,
/// 401, 413 from `Content-Length`), so that a client cannot make the component read a body it
/// would refuse anyway. `Err` is the finished response.
pub fn admit(request: &Request, services: &Services) -> Result<Admitted, Response> {
    match route(request, services) {
        Ok(Some(route)) => Ok(Admitted(route)),
        Ok(None) => Err(finish(preflight())),
        Err(error) => Err(error_response(request, error)),
    }
}

/// Answers an admitted request, its body now read. Never fails.
pub fn handle_admitted(admitted: Admitted, request: &Request, services: &Services) -> Response {
    match run(admitted.0, request, services) {
        Ok(response) => finish(response),
        Err(error) => error_response(request, error),
    }
}

fn error_response(request: &Request, error: ApiError) -> Response {
    if let ApiError::Internal { .. } = error {
        eprintln!("{} {}: {error}", request.method.as_str(), request.path);
    }
    finish(error.into_response(family(request.route_path())))
}

/// Every response, errors included, may be read cross-origin.
fn finish(response: Response) -> Response {
    response
        .with_header("access-control-allow-origin", "*")
        .with_header("access-control-expose-headers", CORS_EXPOSE_HEADERS)
}

/// The route that answers, or `None` for a CORS preflight.
fn route(request: &Request, services: &Services) -> Result<Option<&'static Route>, ApiError> {
    let path = request.route_path();
    if request.method == Method::Options {
        return Ok(None);
    }
    if path == WORD_VECTORS_ROOT || WORD_VECTORS.matches(path) {
        return Err(ApiError::NotFound(WORD_VECTORS_GONE.into()));
    }
    let route = ROUTES
        .iter()
        .find(|route| route.pattern.matches(path))
        .ok_or_else(|| {
            ApiError::NotFound("The requested URL was not found on the server.".into())
        })?;
    if !route.allows(&request.method) {
        return Err(ApiError::MethodNotAllowed {
            method: request.method.as_str().to_owned(),
            allow: route.allowed_methods(),
        });
    }
    if route.access == Access::Protected {
        let credentials = settings::credentials(services.variables)?;
        auth::authorize(request.header("authorization"), &credentials, services.now)?;
    }
    services
        .limits
        .check_declared_length(request.header("content-length"))?;
    Ok(Some(route))
}

fn run(route: &Route, request: &Request, services: &Services) -> Result<Response, ApiError> {
    services.limits.check_body(&request.body)?;
    let mut response = (route.handler)(request, services)?;
    if request.method == Method::Head {
        response.body.clear();
    }
    Ok(response)
}

/// A CORS preflight, for any path: any origin may call with credentials and JSON bodies. It
/// carries no `Allow`: that header would have to list the path's own methods.
fn preflight() -> Response {
    Response::empty(204)
        .with_header("access-control-allow-methods", CORS_ALLOW_METHODS)
        .with_header("access-control-allow-headers", CORS_ALLOW_HEADERS)
        .with_header("access-control-max-age", "86400")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::cache::tests::FakeKv;
    use crate::cache::Kv;
    use crate::embed::tests::FakeModel;
    use crate::embed::{HiddenStates, Infer, InferError};
    use crate::limits::Limits;
    use crate::settings::tests::FakeVariables;
    use crate::tokenize::TokenBatch;

    const KEY: &str = "test-key";

    struct FailingModel;

    impl Infer for FailingModel {
        fn infer(&self, _: &TokenBatch) -> Result<HiddenStates, InferError> {
            Err(InferError(
                "session at /opt/secret/model.onnx failed".into(),
            ))
        }
    }

    fn variables() -> FakeVariables {
        FakeVariables::default().with(settings::API_KEYS, "other-key, test-key")
    }

    fn request(method: &str, target: &str, body: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: Method::parse(method),
            path: path.into(),
            query: query.into(),
            headers: vec![("Authorization".into(), format!("Bearer {KEY}"))],
            body: body.as_bytes().to_vec(),
        }
    }

    const NOW: u64 = 1_700_000_000;

    fn services<'a>(
        variables: &'a FakeVariables,
        infer: &'a dyn Infer,
        kv: Option<&'a dyn Kv>,
    ) -> Services<'a> {
        Services {
            variables,
            infer,
            kv,
            limits: Limits::default(),
            cache: settings::cache(variables),
            now: NOW,
        }
    }

    fn send_with(request: Request, variables: &FakeVariables, infer: &dyn Infer) -> Response {
        handle(&request, &services(variables, infer, None))
    }

    fn send(request: Request) -> Response {
        send_with(request, &variables(), &FakeModel::default())
    }

    fn json_body(response: &Response) -> Value {
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&response.body)))
    }

    fn without_auth(mut request: Request) -> Request {
        request.headers.clear();
        request
    }

    #[test]
    fn root_is_an_empty_public_200() {
        let response = send(without_auth(request("GET", "/", "")));
        assert_eq!(response.status, 200);
        assert!(response.body.is_empty());
    }

    #[test]
    fn ping_is_public_and_reports_the_container_id() {
        for path in ["/v1/ping", "/v1/ping/"] {
            let response = send(without_auth(request("GET", path, "")));
            assert_eq!(response.status, 200);
            assert_eq!(
                json_body(&response),
                json!({"status": "success", "message": "pong!", "container_id": "sbert-service"})
            );
        }
        let named = variables().with(settings::CONTAINER_ID, "replica-2");
        let response = send_with(
            request("GET", "/v1/ping", ""),
            &named,
            &FakeModel::default(),
        );
        assert_eq!(json_body(&response)["container_id"], "replica-2");
    }

    #[test]
    fn encode_reads_the_query_string_or_the_json_body() {
        let requests = [
            request("GET", "/v1/encode?query=hello%20world", ""),
            request("GET", "/v1/encode/?query=hello+world", ""),
            request("GET", "/v1/encode", r#"{"query": "hello world"}"#),
            request("POST", "/v1/encode", r#"{"query": "hello world"}"#),
            request(
                "POST",
                "/v1/encode/",
                r#"{"query": "  hello world ", "unknown": 1}"#,
            ),
        ];
        let expected = json_body(&send(request("GET", "/v1/encode?query=hello+world", "")));
        assert_eq!(expected["query"], "hello world");
        assert_eq!(expected["encoding"].as_array().unwrap().len(), 384);
        for request in requests {
            let response = send(request.clone());
            assert_eq!(response.status, 200, "{request:?}");
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(json_body(&response), expected, "{request:?}");
        }
    }

    #[test]
    fn encode_requires_a_non_empty_query() {
        for request in [
            request("GET", "/v1/encode", ""),
            request("GET", "/v1/encode?query=", ""),
            request("GET", "/v1/encode?query=%20%20", ""),
            request("POST", "/v1/encode", "{}"),
            request("POST", "/v1/encode", r#"{"query": " \t "}"#),
        ] {
            let response = send(request.clone());
            assert_eq!(response.status, 400, "{request:?}");
            let body = json_body(&response);
            assert_eq!(body["query"], json!(["required field"]), "{request:?}");
            assert_eq!(body["code"], 400, "{request:?}");
        }
    }

    #[test]
    fn malformed_bodies_are_json_errors_naming_the_problem() {
        let wrong_type = send(request("POST", "/v1/encode", r#"{"query": null}"#));
        assert_eq!(wrong_type.status, 422);
        assert_eq!(
            json_body(&wrong_type)["description"],
            "`query` must be a string, not null"
        );
        let mut form = request("POST", "/v1/encode", "query=hi");
        form.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        assert_eq!(send(form).status, 415);
        assert_eq!(send(request("POST", "/v1/encode", "{not json")).status, 400);
        assert_eq!(
            send(request("POST", "/v1/encode", "[\"hello\"]")).status,
            422
        );
        assert_eq!(send(request("GET", "/v1/encode?query=%FF", "")).status, 400);
    }

    #[test]
    fn protected_routes_need_a_valid_bearer_token() {
        for (header, description) in [
            (None, "missing"),
            (Some("Token test-key"), "Bearer scheme"),
            (Some("Bearer wrong-key"), "not valid"),
        ] {
            let mut request = without_auth(request("GET", "/v1/encode?query=hi", ""));
            request
                .headers
                .extend(header.map(|h| ("authorization".to_owned(), h.to_owned())));
            let response = send(request);
            assert_eq!(response.status, 401, "{header:?}");
            assert_eq!(response.header("www-authenticate"), Some("Bearer"));
            let body = json_body(&response);
            assert_eq!(
                (body["code"].as_u64(), body["name"].as_str()),
                (Some(401), Some("Unauthorized"))
            );
            assert!(
                body["description"].as_str().unwrap().contains(description),
                "{body}"
            );
        }
        let mut lowercase = without_auth(request("GET", "/v1/encode?query=hi", ""));
        lowercase
            .headers
            .push(("authorization".into(), format!("bearer {KEY}")));
        assert_eq!(send(lowercase).status, 200);
    }

    #[test]
    fn multiple_encode_answers_in_input_order() {
        let body = r#"{"sentences": ["hello world", "hi", "hello world", ""]}"#;
        for method in ["GET", "POST"] {
            let response = send(request(method, "/v1/encode/multiple_encode", body));
            assert_eq!(response.status, 200);
            let data = json_body(&response)["data"].clone();
            let originals: Vec<_> = data
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["original"].clone())
                .collect();
            assert_eq!(originals, vec!["hello world", "hi", "hello world", ""]);
            assert_eq!(data[0]["encoded"], data[2]["encoded"]);
        }
        let empty = send(request(
            "POST",
            "/v1/encode/multiple_encode",
            r#"{"sentences": []}"#,
        ));
        assert_eq!(json_body(&empty), json!({"data": []}));
    }

    #[test]
    fn cos_sim_weight_is_a_float_for_two_texts_and_a_matrix_otherwise() {
        let score = |body: &str| {
            json_body(&send(request("POST", "/v1/encode/cos_sim_weight", body)))["cos_sim_weight"]
                .clone()
        };
        let same = score(r#"{"a": "hi", "b": "hi"}"#).as_f64().unwrap();
        assert!((same - 1.0).abs() < 1e-6, "{same}");
        assert!(
            score(r#"{"a": "hi", "b": "hello world"}"#)
                .as_f64()
                .unwrap()
                < 1.0
        );
        let matrix = score(r#"{"a": ["hi", "x", "y"], "b": "hi"}"#);
        assert_eq!(matrix.as_array().unwrap().len(), 3);
        assert_eq!(matrix[0].as_array().unwrap().len(), 1);
        let row = score(r#"{"a": "hi", "b": ["hi", "x"]}"#);
        assert_eq!(row.as_array().unwrap().len(), 1);
        assert_eq!(
            score(r#"{"a": [""], "b": ["hi"]}"#)
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn cos_sim_weight_validates_both_fields() {
        let response = send(request("POST", "/v1/encode/cos_sim_weight", "{}"));
        assert_eq!(response.status, 400);
        let body = json_body(&response);
        assert_eq!(
            (&body["a"], &body["b"]),
            (&json!(["required field"]), &json!(["required field"]))
        );
        let response = send(request(
            "POST",
            "/v1/encode/cos_sim_weight",
            r#"{"a": "x", "b": 3}"#,
        ));
        assert_eq!(response.status, 422);
        assert!(json_body(&response)["description"]
            .as_str()
            .unwrap()
            .contains("`b`"));
    }

    #[test]
    fn paraphrase_mines_pairs() {
        let response = send(request(
            "POST",
            "/v1/paraphrase",
            r#"{"sentences": ["a cat", "b", "a cat"], "top_k": 1}"#,
        ));
        assert_eq!(response.status, 200);
        let pairs = json_body(&response)["pairs"].clone();
        assert_eq!((&pairs[0][1], &pairs[0][2]), (&json!(0), &json!(2)));
        let none = send(request(
            "POST",
            "/v1/paraphrase",
            r#"{"sentences": ["only"]}"#,
        ));
        assert_eq!(json_body(&none), json!({"pairs": []}));
    }

    #[test]
    fn over_long_inputs_without_truncate_are_422_naming_the_input() {
        let long = "word ".repeat(300);
        let body = json!({"sentences": ["short", long], "truncate": false}).to_string();
        let response = send(request("POST", "/v1/encode/multiple_encode", &body));
        assert_eq!(response.status, 422);
        assert_eq!(
            json_body(&response)["description"],
            "`sentences` item 1 has 302 tokens; the model's limit is 256 (send `truncate: true` to truncate)"
        );
        let body =
            json!({"model": "all-minilm-l6-v2", "input": long, "truncate": false}).to_string();
        let response = send(request("POST", "/v1/embeddings", &body));
        assert_eq!(response.status, 422);
        assert_eq!(json_body(&response)["error"]["param"], "input");
    }

    #[test]
    fn refusals_are_decided_before_the_body_is_read() {
        let model = FakeModel::default();
        let variables = variables();
        let services = services(&variables, &model, None);
        let declaring = |request: Request| Request {
            headers: [
                request.headers,
                vec![("Content-Length".into(), "99999999".into())],
            ]
            .concat(),
            ..request
        };
        let post = || request("POST", "/v1/encode/multiple_encode", "");
        let status = |request: Request| admit(&request, &services).err().map(|r| r.status);
        assert_eq!(status(without_auth(declaring(post()))), Some(401));
        assert_eq!(status(declaring(post())), Some(413));
        assert_eq!(status(declaring(request("GET", "/nowhere", ""))), Some(404));
        assert_eq!(status(post()), None);
        assert_eq!(model.calls(), 0);
    }

    #[test]
    fn limits_are_checked_before_any_model_work() {
        let model = FakeModel::default();
        let variables = variables();
        let services = Services {
            limits: Limits {
                max_body_bytes: 40,
                max_inputs: 2,
                max_input_chars: 5,
            },
            ..services(&variables, &model, None)
        };
        let status = |body: &str| {
            handle(
                &request("POST", "/v1/encode/multiple_encode", body),
                &services,
            )
            .status
        };
        assert_eq!(status(r#"{"sentences": ["a", "b"]}"#), 200);
        assert_eq!(status(r#"{"sentences": ["a", "b", "c"]}"#), 413);
        assert_eq!(status(r#"{"sentences": ["abcdef"]}"#), 413);
        assert_eq!(
            status(r#"{"sentences": ["a"]}                       "#),
            413
        );
        assert_eq!(model.calls(), 1);
        let openai = handle(
            &request(
                "POST",
                "/v1/embeddings",
                r#"{"model": "all-minilm-l6-v2", "input": ["a","b","c"]}"#,
            ),
            &services,
        );
        assert_eq!(
            (openai.status, json_body(&openai)["error"]["type"].clone()),
            (413, json!("invalid_request_error"))
        );
    }

    #[test]
    fn embeddings_in_openai_shape() {
        let body =
            r#"{"model": "all-minilm-l6-v2", "input": ["hello world", "hi"], "dimensions": 2}"#;
        let response = send(request("POST", "/v1/embeddings", body));
        assert_eq!(response.status, 200);
        let body = json_body(&response);
        assert_eq!(body["model"], "sentence-transformers/all-MiniLM-L6-v2");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 7, "total_tokens": 7})
        );
        assert_eq!(body["data"][1]["index"], 1);
        let vector: Vec<f64> =
            serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(vector.len(), 2);
        assert!((vector.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-6);
        let base64 = send(request(
            "POST",
            "/v1/embeddings",
            r#"{"model": "all-minilm-l6-v2", "input": [7592, 2088], "encoding_format": "base64"}"#,
        ));
        assert!(json_body(&base64)["data"][0]["embedding"].is_string());
    }

    #[test]
    fn openai_routes_answer_errors_in_openai_shape() {
        let unknown = send(request(
            "POST",
            "/v1/embeddings",
            r#"{"model": "gpt-4", "input": "x"}"#,
        ));
        assert_eq!(unknown.status, 404);
        assert_eq!(json_body(&unknown)["error"]["code"], "model_not_found");
        let unauthorized = send(without_auth(request("GET", "/v1/models", "")));
        assert_eq!(unauthorized.status, 401);
        assert_eq!(json_body(&unauthorized)["error"]["code"], "invalid_api_key");
        let wrong_method = send(request("GET", "/v1/embeddings", ""));
        assert_eq!(wrong_method.status, 405);
        assert_eq!(wrong_method.header("allow"), Some("POST, OPTIONS"));
        assert!(json_body(&wrong_method)["error"].is_object());
        let missing = send(request("GET", "/v1/models/nope", ""));
        assert_eq!(json_body(&missing)["error"]["param"], "model");
    }

    #[test]
    fn models_list_and_retrieve_with_slashes_in_the_id() {
        let list = json_body(&send(request("GET", "/v1/models/", "")));
        assert_eq!(list["object"], "list");
        assert_eq!(
            list["data"][0]["id"],
            "sentence-transformers/all-MiniLM-L6-v2"
        );
        for path in [
            "/v1/models/sentence-transformers/all-MiniLM-L6-v2",
            "/v1/models/sentence-transformers/all-MiniLM-L6-v2/",
            "/v1/models/sentence-transformers%2Fall-MiniLM-L6-v2",
            "/v1/models/all-minilm-l6-v2",
        ] {
            let response = send(request("GET", path, ""));
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(json_body(&response), list["data"][0], "{path}");
        }
    }

    #[test]
    fn unknown_routes_are_json_404s_even_without_auth() {
        for path in ["/v2/encode", "/v1/encode//", "/v1/pingx", "//v1/encode"] {
            let response = send(without_auth(request("GET", path, "")));
            assert_eq!(response.status, 404, "{path}");
        }
    }

    #[test]
    fn word_vector_routes_are_404s_that_say_so() {
        for (method, path) in [
            ("GET", "/v1/w2v"),
            ("GET", "/v1/w2v/"),
            ("DELETE", "/v1/w2v/most_similar/x"),
        ] {
            let response = send(request(method, path, ""));
            assert_eq!(response.status, 404, "{path}");
            assert_eq!(
                json_body(&response)["description"],
                "word vectors (/v1/w2v) are not served by this service: use /v1/encode or /v1/embeddings"
            );
        }
        assert_eq!(send(request("GET", "/v1/w2vx", "")).status, 404);
    }

    #[test]
    fn wrong_methods_are_json_405s_with_allow() {
        let response = send(request("GET", "/v1/encode/cos_sim_weight", ""));
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow"), Some("POST, OPTIONS"));
        assert_eq!(json_body(&response)["code"], 405);
        let response = send(request("DELETE", "/v1/encode/", ""));
        assert_eq!(response.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
        let response = send(request("POST", "/docs", ""));
        assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    }

    #[test]
    fn head_answers_like_get_without_a_body() {
        let response = send(request("HEAD", "/v1/ping", ""));
        assert_eq!(response.status, 200);
        assert!(response.body.is_empty());
    }

    #[test]
    fn documents_are_public() {
        for (path, content_type) in [
            ("/openapi.json", "application/json"),
            ("/openapi.json/", "application/json"),
            ("/docs", "text/html; charset=utf-8"),
            ("/docs/", "text/html; charset=utf-8"),
            (
                "/docs/swagger-ui-bundle.js",
                "text/javascript; charset=utf-8",
            ),
            ("/docs/swagger-ui.css", "text/css; charset=utf-8"),
        ] {
            let response = send(without_auth(request("GET", path, "")));
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(
                response.header("content-type"),
                Some(content_type),
                "{path}"
            );
        }
    }

    #[test]
    fn cors_preflights_for_any_path_and_headers_on_every_answer() {
        for path in ["/v1/encode", "/v1/no/such/route", "/v1/w2v"] {
            let response = send(without_auth(request("OPTIONS", path, "")));
            assert_eq!(response.status, 204, "{path}");
            assert_eq!(response.header("access-control-allow-origin"), Some("*"));
            assert_eq!(
                response.header("access-control-allow-headers"),
                Some("Authorization, Content-Type, If-None-Match, X-Request-Id")
            );
            assert_eq!(
                response.header("access-control-allow-methods"),
                Some("GET, POST, OPTIONS")
            );
            assert_eq!(response.header("access-control-max-age"), Some("86400"));
            assert_eq!(response.header("allow"), None);
        }
        for response in [
            send(without_auth(request("GET", "/v1/encode?query=x", ""))),
            send(request("GET", "/v1/nope", "")),
            send(request("GET", "/v1/ping", "")),
        ] {
            assert_eq!(response.header("access-control-allow-origin"), Some("*"));
            assert_eq!(
                response.header("access-control-expose-headers"),
                Some("X-Cache, X-Request-Id, Server-Timing, ETag")
            );
        }
    }

    #[test]
    fn failures_inside_are_500s_that_reveal_nothing() {
        let response = send_with(
            request("GET", "/v1/encode?query=hi", ""),
            &variables(),
            &FailingModel,
        );
        assert_eq!(response.status, 500);
        assert_eq!(
            json_body(&response),
            json!({"error": "inference_error", "message": "The model could not encode the text."})
        );
        let openai = send_with(
            request(
                "POST",
                "/v1/embeddings",
                r#"{"model": "all-minilm-l6-v2", "input": "hi"}"#,
            ),
            &variables(),
            &FailingModel,
        );
        assert_eq!(openai.status, 500);
        assert_eq!(json_body(&openai)["error"]["type"], "server_error");
        assert!(!String::from_utf8_lossy(&openai.body).contains("secret"));
        let broken = FakeVariables::default().failing(settings::API_KEYS);
        let response = send_with(
            request("GET", "/v1/encode?query=hi", ""),
            &broken,
            &FakeModel::default(),
        );
        assert_eq!(response.status, 500);
        assert_eq!(json_body(&response)["error"], "configuration_error");
    }

    mod cached {
        use super::*;

        fn cached_variables() -> FakeVariables {
            variables().with(settings::MODEL_DIGEST, "sha256:test")
        }

        #[test]
        fn x_cache_and_server_timing_on_every_embedding_route() {
            let (variables, model, kv) =
                (cached_variables(), FakeModel::default(), FakeKv::default());
            let services = services(&variables, &model, Some(&kv));
            for (method, path, body, status) in [
                ("GET", "/v1/encode?query=hi", "", "MISS"),
                ("POST", "/v1/encode", r#"{"query": "hi"}"#, "HIT"),
                (
                    "POST",
                    "/v1/encode/multiple_encode",
                    r#"{"sentences": ["hi", "x"]}"#,
                    "PARTIAL",
                ),
                (
                    "POST",
                    "/v1/encode/cos_sim_weight",
                    r#"{"a": "hi", "b": ["x"]}"#,
                    "HIT",
                ),
                (
                    "POST",
                    "/v1/paraphrase",
                    r#"{"sentences": ["hi", "x"]}"#,
                    "HIT",
                ),
                (
                    "POST",
                    "/v1/embeddings",
                    r#"{"model": "all-minilm-l6-v2", "input": ["x", "hi"]}"#,
                    "HIT",
                ),
            ] {
                let response = handle(&request(method, path, body), &services);
                assert_eq!(response.status, 200, "{path}");
                assert_eq!(response.header("x-cache"), Some(status), "{path}");
                let timing = response.header("server-timing").unwrap();
                assert!(
                    timing.starts_with("tokenize;dur=")
                        && timing.contains(", cache;dur=")
                        && timing.contains(", inference;dur="),
                    "{timing}"
                );
            }
            for response in [
                send(request("GET", "/v1/ping", "")),
                send(request("POST", "/v1/encode", "{")),
            ] {
                assert_eq!(response.header("x-cache"), None);
                assert_eq!(response.header("server-timing"), None);
            }
        }

        #[test]
        fn get_encode_has_an_etag_and_answers_a_matching_if_none_match_with_304() {
            let (variables, model, kv) =
                (cached_variables(), FakeModel::default(), FakeKv::default());
            let services = services(&variables, &model, Some(&kv));
            let first = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
            let etag = first.header("etag").unwrap().to_owned();
            assert!(
                etag.starts_with("\"v1-") && etag.ends_with('"') && etag.len() == 2 + 3 + 32,
                "{etag}"
            );
            assert_eq!(
                first.header("cache-control"),
                Some("private, max-age=86400")
            );
            let same = handle(&request("GET", "/v1/encode?query=+hi+", ""), &services);
            assert_eq!(
                same.header("etag"),
                Some(etag.as_str()),
                "the query as encoded"
            );
            let other = handle(&request("GET", "/v1/encode?query=hello", ""), &services);
            assert_ne!(other.header("etag"), Some(etag.as_str()));
            let post = handle(
                &request("POST", "/v1/encode", r#"{"query": "hi"}"#),
                &services,
            );
            assert_eq!(post.header("etag"), None);

            let calls = model.calls();
            for tags in [etag.clone(), format!("\"x\", W/{etag}"), "*".to_owned()] {
                let mut conditional = request("GET", "/v1/encode?query=hi", "");
                conditional
                    .headers
                    .push(("If-None-Match".into(), tags.clone()));
                let response = handle(&conditional, &services);
                assert_eq!(response.status, 304, "{tags}");
                assert!(response.body.is_empty());
                assert_eq!(response.header("etag"), Some(etag.as_str()));
                assert_eq!(
                    response.header("cache-control"),
                    Some("private, max-age=86400")
                );
            }
            assert_eq!(model.calls(), calls, "a 304 embeds nothing");
            let mut stale = request("GET", "/v1/encode?query=hi", "");
            stale
                .headers
                .push(("If-None-Match".into(), "\"v1-other\"".into()));
            assert_eq!(handle(&stale, &services).status, 200);
            let mut unauthorized = without_auth(request("GET", "/v1/encode?query=hi", ""));
            unauthorized.headers.push(("If-None-Match".into(), etag));
            let refused = handle(&unauthorized, &services);
            assert_eq!(refused.status, 401);
            assert_eq!(
                (refused.header("etag"), refused.header("x-cache")),
                (None, None)
            );
        }

        #[test]
        fn without_a_model_digest_get_encode_has_no_etag_and_never_304() {
            let (model, variables) = (FakeModel::default(), variables());
            let services = services(&variables, &model, None);
            let first = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
            assert_eq!(first.status, 200);
            assert_eq!(first.header("etag"), None);
            let mut conditional = request("GET", "/v1/encode?query=hi", "");
            conditional
                .headers
                .push(("If-None-Match".into(), "*".into()));
            let response = handle(&conditional, &services);
            assert_eq!((response.status, response.header("etag")), (200, None));
        }

        #[test]
        fn a_broken_store_serves_uncached_not_500() {
            let (variables, model, kv) =
                (cached_variables(), FakeModel::default(), FakeKv::default());
            kv.broken.set(true);
            let services = services(&variables, &model, Some(&kv));
            for _ in 0..2 {
                let response = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
                assert_eq!(response.status, 200);
                assert_eq!(response.header("x-cache"), Some("MISS"));
            }
        }

        #[test]
        fn ttl_zero_caches_nothing() {
            let variables = cached_variables().with(settings::CACHE_TTL_SECONDS, "0");
            let (model, kv) = (FakeModel::default(), FakeKv::default());
            let services = services(&variables, &model, Some(&kv));
            for _ in 0..2 {
                let response = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
                assert_eq!(response.header("x-cache"), Some("MISS"));
                assert_eq!(response.header("cache-control"), Some("private, max-age=0"));
            }
            assert_eq!(kv.calls.get(), 0);
        }

        #[test]
        fn jwts_are_checked_against_the_request_time() {
            use base64::engine::general_purpose::URL_SAFE_NO_PAD;
            use base64::Engine;
            use hmac::{Hmac, Mac};

            let variables = variables().with(settings::JWT_SECRET, "jwt-secret");
            let token = |exp: u64| {
                let input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
                    URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
                );
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"jwt-secret").unwrap();
                mac.update(input.as_bytes());
                format!(
                    "{input}.{}",
                    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
                )
            };
            let model = FakeModel::default();
            let send = |token: String| {
                let body = r#"{"model": "all-minilm-l6-v2", "input": "x"}"#;
                let mut request = without_auth(request("POST", "/v1/embeddings", body));
                request
                    .headers
                    .push(("Authorization".into(), format!("Bearer {token}")));
                handle(&request, &services(&variables, &model, None))
            };
            assert_eq!(send(token(NOW + 60)).status, 200);
            let expired = send(token(NOW - 3600));
            assert_eq!(expired.status, 401);
            let message = json_body(&expired)["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(message.contains("expired"), "{message}");
        }
    }
}
