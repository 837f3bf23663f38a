//! Method + path → handler: trailing slashes, CORS, authorization, 404 and 405.

use crate::auth;
use crate::error::ApiError;
use crate::handlers::{self, Handler, Services};
use crate::http::{Method, Request, Response};
use crate::settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    /// Needs `Authorization: Bearer <token>`.
    Protected,
}

struct Route {
    path: &'static str,
    methods: &'static [Method],
    access: Access,
    handler: Handler,
}

const ROUTES: &[Route] = &[
    Route {
        path: "/",
        methods: &[Method::Get],
        access: Access::Public,
        handler: handlers::root,
    },
    Route {
        path: "/v1/ping",
        methods: &[Method::Get],
        access: Access::Public,
        handler: handlers::ping,
    },
    Route {
        path: "/v1/encode",
        methods: &[Method::Get, Method::Post],
        access: Access::Protected,
        handler: handlers::encode,
    },
    Route {
        path: "/v1/encode/cos_sim_weight",
        methods: &[Method::Post],
        access: Access::Protected,
        handler: handlers::cos_sim_weight,
    },
];

/// The original service's word2vec routes, deliberately not carried over.
const WORD2VEC_PREFIX: &str = "/v1/w2v";

/// Headers a browser may send cross-origin.
const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type";

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

    /// The methods for `Allow` and CORS preflights: the route's own, HEAD with GET, OPTIONS.
    fn allowed_methods(&self) -> Vec<Method> {
        let mut methods = self.methods.to_vec();
        if methods.contains(&Method::Get) {
            methods.push(Method::Head);
        }
        methods.push(Method::Options);
        methods
    }
}

/// Answers one request. Never fails: every error becomes its JSON response.
pub fn handle(request: &Request, services: &Services) -> Response {
    let response = dispatch(request, services).unwrap_or_else(|error| {
        if let ApiError::Internal { .. } = error {
            eprintln!("{} {}: {error}", request.method.as_str(), request.path);
        }
        error.into_response()
    });
    response.with_header("access-control-allow-origin", "*")
}

fn dispatch(request: &Request, services: &Services) -> Result<Response, ApiError> {
    // Every route answers with or without one trailing slash.
    let path = match request.path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => request.path.as_str(),
    };
    if path == WORD2VEC_PREFIX || path.starts_with("/v1/w2v/") {
        return Err(ApiError::Gone(
            "The word2vec routes (/v1/w2v) were retired; use /v1/encode for sentence embeddings."
                .into(),
        ));
    }
    let route = ROUTES
        .iter()
        .find(|route| route.path == path)
        .ok_or_else(|| {
            ApiError::NotFound("The requested URL was not found on the server.".into())
        })?;
    if request.method == Method::Options {
        return Ok(preflight(route));
    }
    if !route.allows(&request.method) {
        return Err(ApiError::MethodNotAllowed {
            method: request.method.as_str().to_owned(),
            allow: route.allowed_methods(),
        });
    }
    if route.access == Access::Protected {
        let credentials = settings::credentials(services.variables)?;
        auth::authorize(request.header("authorization"), &credentials)?;
    }
    let mut response = (route.handler)(request, services)?;
    if request.method == Method::Head {
        response.body.clear();
    }
    Ok(response)
}

/// A CORS preflight: any origin may call with `Authorization` and `Content-Type`.
fn preflight(route: &Route) -> Response {
    let methods = route
        .allowed_methods()
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Response::empty(204)
        .with_header("access-control-allow-methods", methods.clone())
        .with_header("access-control-allow-headers", CORS_ALLOW_HEADERS)
        .with_header("access-control-max-age", "86400")
        .with_header("allow", methods)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::embed::tests::FakeModel;
    use crate::embed::{HiddenStates, Infer, InferError};
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

    fn send_with(request: Request, variables: &FakeVariables, infer: &dyn Infer) -> Response {
        handle(&request, &Services { variables, infer })
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
                r#"{"query": "hello world", "unknown": 1}"#,
            ),
        ];
        let expected = json_body(&send(request("GET", "/v1/encode?query=hello+world", "")));
        assert_eq!(expected["query"], "hello world");
        assert_eq!(
            expected["encoding"].as_array().unwrap().len(),
            3,
            "the fake model's width"
        );
        for request in requests {
            let response = send(request.clone());
            assert_eq!(response.status, 200, "{request:?}");
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(json_body(&response), expected, "{request:?}");
        }
    }

    #[test]
    fn encode_strips_surrounding_whitespace() {
        let padded = json_body(&send(request(
            "POST",
            "/v1/encode",
            r#"{"query": "  hi \n"}"#,
        )));
        let plain = json_body(&send(request("POST", "/v1/encode", r#"{"query": "hi"}"#)));
        assert_eq!(padded, plain);
        assert_eq!(plain["query"], "hi");
    }

    #[test]
    fn encode_requires_a_non_empty_query() {
        for request in [
            request("GET", "/v1/encode", ""),
            request("GET", "/v1/encode?query=", ""),
            request("GET", "/v1/encode?query=%20%20", ""),
            request("POST", "/v1/encode", "{}"),
            request("POST", "/v1/encode", r#"{"query": null}"#),
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
    fn encode_rejects_malformed_bodies_with_json_errors() {
        let wrong_type = send(request("POST", "/v1/encode", r#"{"query": 5}"#));
        assert_eq!(wrong_type.status, 422);
        assert_eq!(
            json_body(&wrong_type)["description"],
            "`query` must be a string."
        );
        let mut form = request("POST", "/v1/encode", "query=hi");
        form.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        assert_eq!(send(form).status, 415);
        for body in ["{not json", "[\"hello\"]", "\"hello\""] {
            let response = send(request("POST", "/v1/encode", body));
            assert_eq!(response.status, 400, "{body}");
            let body = json_body(&response);
            assert_eq!(
                (body["code"].as_u64(), body["name"].as_str()),
                (Some(400), Some("Bad Request"))
            );
        }
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
    fn cos_sim_weight_scores_two_texts() {
        let same = send(request(
            "POST",
            "/v1/encode/cos_sim_weight",
            r#"{"a": "hi", "b": "hi"}"#,
        ));
        assert_eq!(same.status, 200);
        let score = json_body(&same)["cos_sim_weight"].as_f64().unwrap();
        assert!((score - 1.0).abs() < 1e-6, "{score}");
        let differ = send(request(
            "POST",
            "/v1/encode/cos_sim_weight/",
            r#"{"a": "hi", "b": "hello world"}"#,
        ));
        assert!(json_body(&differ)["cos_sim_weight"].as_f64().unwrap() < 1.0);
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
    fn cos_sim_weight_accepts_empty_texts() {
        let response = send(request(
            "POST",
            "/v1/encode/cos_sim_weight",
            r#"{"a": "", "b": "hi"}"#,
        ));
        assert_eq!(response.status, 200);
    }

    #[test]
    fn unknown_routes_are_json_404s_even_without_auth() {
        for path in ["/v2/encode", "/v1/encode//", "/v1/pingx"] {
            let response = send(without_auth(request("GET", path, "")));
            assert_eq!(response.status, 404, "{path}");
            assert_eq!(json_body(&response)["name"], "Not Found");
        }
    }

    #[test]
    fn word2vec_routes_say_they_are_gone() {
        for path in ["/v1/w2v", "/v1/w2v/most_similar"] {
            let response = send(request("GET", path, ""));
            assert_eq!(response.status, 410, "{path}");
            assert!(json_body(&response)["description"]
                .as_str()
                .unwrap()
                .contains("word2vec"));
        }
    }

    #[test]
    fn wrong_methods_are_json_405s_with_allow() {
        let response = send(request("GET", "/v1/encode/cos_sim_weight", ""));
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow"), Some("POST, OPTIONS"));
        assert_eq!(json_body(&response)["code"], 405);
        let response = send(request("DELETE", "/v1/encode/", ""));
        assert_eq!(response.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
    }

    #[test]
    fn head_answers_like_get_without_a_body() {
        let response = send(request("HEAD", "/v1/ping", ""));
        assert_eq!(response.status, 200);
        assert!(response.body.is_empty());
    }

    #[test]
    fn cors_preflights_and_headers() {
        let response = send(without_auth(request("OPTIONS", "/v1/encode", "")));
        assert_eq!(response.status, 204);
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("Authorization, Content-Type")
        );
        assert_eq!(
            response.header("access-control-allow-methods"),
            Some("GET, POST, HEAD, OPTIONS")
        );
        let unauthorized = send(without_auth(request("GET", "/v1/encode?query=x", "")));
        assert_eq!(
            unauthorized.header("access-control-allow-origin"),
            Some("*")
        );
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
        let broken = FakeVariables::default().failing(settings::API_KEYS);
        let response = send_with(
            request("GET", "/v1/encode?query=hi", ""),
            &broken,
            &FakeModel::default(),
        );
        assert_eq!(response.status, 500);
        assert_eq!(json_body(&response)["error"], "configuration_error");
    }
}
