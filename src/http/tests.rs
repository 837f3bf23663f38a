//! Whole-component tests: a request through admission, routing, the handlers and the embedding
//! pipeline to its JSON answer, with a stand-in backend and store (the integration tests in
//! `tests/` run the real ones).

use serde_json::{json, Value};

use super::{Method, Request, Response};
use crate::api::Services;
use crate::backend::{Infer, InferError, Sequence};
use crate::config::tests::FakeVariables;
use crate::config::{self, Config, ConfigError};
use crate::embed::cache::tests::FakeKv;
use crate::embed::cache::Kv;
use crate::embed::model::Model;
use crate::embed::tests::FakeModel;
use crate::routes::{admit, respond};

const KEY: &str = "test-key";

struct FailingModel;

impl Infer for FailingModel {
    fn embed(&self, _: &Model, _: &[Sequence<'_>]) -> Result<Vec<Vec<f32>>, InferError> {
        Err(InferError::new("session at /opt/secret/model.onnx failed"))
    }
}

fn variables() -> FakeVariables {
    FakeVariables::default().with(config::API_KEYS, "other-key, test-key")
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

/// What the entry point assembles for a request: the parsed configuration and the host's
/// capabilities.
struct Env<'a> {
    config: Result<Config, ConfigError>,
    infer: &'a dyn Infer,
    kv: Option<&'a dyn Kv>,
}

fn env<'a>(variables: &FakeVariables, infer: &'a dyn Infer, kv: Option<&'a dyn Kv>) -> Env<'a> {
    Env {
        config: Config::from_variables(variables),
        infer,
        kv,
    }
}

/// The entry point's steps, with the body already read.
fn handle(request: &Request, env: &Env) -> Response {
    match admit(request, &env.config, NOW) {
        Err(refused) => refused,
        Ok(admitted) => {
            let services = Services {
                config: admitted.config,
                grant: admitted.grant,
                infer: env.infer,
                kv: env.kv,
                now: NOW,
            };
            respond(admitted, request, &services)
        }
    }
}

fn send_with(request: Request, variables: &FakeVariables, infer: &dyn Infer) -> Response {
    handle(&request, &env(variables, infer, None))
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
    let named = variables().with(config::CONTAINER_ID, "replica-2");
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
    let body = json!({"model": "all-minilm-l6-v2", "input": long, "truncate": false}).to_string();
    let response = send(request("POST", "/v1/embeddings", &body));
    assert_eq!(response.status, 422);
    assert_eq!(json_body(&response)["error"]["param"], "input");
}

#[test]
fn refusals_are_decided_before_the_body_is_read() {
    let model = FakeModel::default();
    let variables = variables();
    let services = env(&variables, &model, None);
    let declaring = |request: Request| Request {
        headers: [
            request.headers,
            vec![("Content-Length".into(), "99999999".into())],
        ]
        .concat(),
        ..request
    };
    let post = || request("POST", "/v1/encode/multiple_encode", "");
    let status = |request: Request| {
        admit(&request, &services.config, NOW)
            .err()
            .map(|r| r.status)
    };
    assert_eq!(status(without_auth(declaring(post()))), Some(401));
    assert_eq!(status(declaring(post())), Some(413));
    assert_eq!(status(declaring(request("GET", "/nowhere", ""))), Some(404));
    assert_eq!(status(post()), None);
    assert_eq!(model.calls(), 0);
}

#[test]
fn limits_are_checked_before_any_model_work() {
    let model = FakeModel::default();
    let variables = variables()
        .with(config::MAX_BODY_BYTES, "40")
        .with(config::MAX_INPUTS, "2")
        .with(config::MAX_INPUT_CHARS, "5");
    let services = env(&variables, &model, None);
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
    let body = r#"{"model": "all-minilm-l6-v2", "input": ["hello world", "hi"], "dimensions": 2}"#;
    let response = send(request("POST", "/v1/embeddings", body));
    assert_eq!(response.status, 200);
    let body = json_body(&response);
    assert_eq!(body["model"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 7, "total_tokens": 7})
    );
    assert_eq!(body["data"][1]["index"], 1);
    let vector: Vec<f64> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
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
    for path in [
        "/v1/ping",
        "/v1/ping/",
        "/v1/encode",
        "/v1/encode/",
        "/v1/no/such/route",
        "/v1/w2v",
    ] {
        let response = send(without_auth(request("OPTIONS", path, "")));
        assert_eq!(response.status, 200, "{path}");
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
}

#[test]
fn an_invalid_variable_is_a_503_naming_it_on_every_route_but_preflights() {
    let broken = variables().with(config::MAX_INPUTS, "three");
    for (method, path) in [
        ("GET", "/v1/encode?query=hi"),
        ("GET", "/v1/ping"),
        ("GET", "/health"),
        ("POST", "/v1/embeddings"),
    ] {
        let response = send_with(request(method, path, ""), &broken, &FakeModel::default());
        assert_eq!(response.status, 503, "{path}");
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert!(
            String::from_utf8_lossy(&response.body)
                .contains("variable `max_inputs`: `three` is not a whole number"),
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    let body = json_body(&send_with(
        request("GET", "/health", ""),
        &broken,
        &FakeModel::default(),
    ));
    assert_eq!(body["error"], "configuration_error");
    let preflight = send_with(
        request("OPTIONS", "/v1/encode", ""),
        &broken,
        &FakeModel::default(),
    );
    assert_eq!(preflight.status, 200);
    let secret = FakeVariables::default().failing(config::API_KEYS);
    let response = send_with(
        request("GET", "/v1/encode?query=hi", ""),
        &secret,
        &FakeModel::default(),
    );
    assert_eq!(
        json_body(&response),
        json!({
            "error": "configuration_error",
            "message": "The service is not configured correctly: variable `api_keys`: could not be read."
        })
    );
}

#[test]
fn health_embeds_a_test_input_with_every_model_and_reports_the_cache() {
    let (variables, model, kv) = (
        variables().with(config::MODEL_DIGEST, "sha256:test"),
        FakeModel::default(),
        FakeKv::default(),
    );
    let ready = handle(
        &request("GET", "/health", ""),
        &env(&variables, &model, Some(&kv)),
    );
    assert_eq!(ready.status, 200);
    assert_eq!(
        json_body(&ready),
        json!({
            "status": "ok",
            "cache": "ok",
            "cache_enabled": true,
            "models": ["sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2-int8"],
        })
    );
    let graphs: Vec<_> = model
        .recorded
        .borrow()
        .iter()
        .map(|(graph, rows)| (graph.clone(), rows.clone()))
        .collect();
    assert_eq!(
        graphs,
        [
            (
                "all-minilm-l6-v2".to_owned(),
                vec![(vec![101, 102], Some(String::new()))]
            ),
            (
                "all-minilm-l6-v2-int8".to_owned(),
                vec![(vec![101, 102], Some(String::new()))]
            ),
        ]
    );
    kv.broken.set(true);
    let degraded = handle(
        &request("GET", "/health", ""),
        &env(&variables, &model, Some(&kv)),
    );
    assert_eq!(
        (degraded.status, json_body(&degraded)["cache"].clone()),
        (200, json!("degraded"))
    );
    let no_store = handle(
        &request("GET", "/health", ""),
        &env(&variables, &model, None),
    );
    assert_eq!(json_body(&no_store)["cache"], "degraded");
    let off = variables.clone().with(config::CACHE_TTL_SECONDS, "0");
    let uncached = handle(&request("GET", "/health", ""), &env(&off, &model, None));
    assert_eq!(
        (
            json_body(&uncached)["cache"].clone(),
            json_body(&uncached)["cache_enabled"].clone()
        ),
        (json!("ok"), json!(false))
    );
}

#[test]
fn health_is_503_when_a_model_cannot_embed_and_says_which_without_the_detail() {
    let response = send_with(
        without_auth(request("GET", "/health", "")),
        &variables(),
        &FailingModel,
    );
    assert_eq!(response.status, 503);
    let body = json_body(&response);
    assert_eq!(body["error"], "not_ready");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("graph `all-minilm-l6-v2`"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn the_openai_model_field_picks_the_model_and_default_model_picks_the_original_routes() {
    let model = FakeModel::default();
    let body = r#"{"model": "all-minilm-l6-v2-int8", "input": "hi"}"#;
    let response = send_with(
        request("POST", "/v1/embeddings", body),
        &variables(),
        &model,
    );
    assert_eq!(json_body(&response)["model"], "all-minilm-l6-v2-int8");
    send_with(
        request("GET", "/v1/encode?query=hi", ""),
        &variables(),
        &model,
    );
    let int8_default = variables().with(config::DEFAULT_MODEL, "all-minilm-l6-v2-int8");
    send_with(
        request("GET", "/v1/encode?query=hi", ""),
        &int8_default,
        &model,
    );
    let graphs: Vec<_> = model
        .recorded
        .borrow()
        .iter()
        .map(|(graph, _)| graph.clone())
        .collect();
    assert_eq!(
        graphs,
        [
            "all-minilm-l6-v2-int8",
            "all-minilm-l6-v2",
            "all-minilm-l6-v2-int8"
        ]
    );
}

/// The secret of the JWTs [`jwt`] signs.
const JWT_SECRET: &str = "jwt-secret";

/// An HS256 JWT signed with [`JWT_SECRET`] that expires at `exp`.
fn jwt(exp: u64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};

    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

mod cached {
    use super::*;

    fn cached_variables() -> FakeVariables {
        variables().with(config::MODEL_DIGEST, "sha256:test")
    }

    #[test]
    fn x_cache_and_server_timing_on_every_embedding_route() {
        let (variables, model, kv) = (cached_variables(), FakeModel::default(), FakeKv::default());
        let services = env(&variables, &model, Some(&kv));
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
        let (variables, model, kv) = (cached_variables(), FakeModel::default(), FakeKv::default());
        let services = env(&variables, &model, Some(&kv));
        let first = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
        let etag = first.header("etag").unwrap().to_owned();
        assert!(
            etag.starts_with("\"v1-") && etag.ends_with('"') && etag.len() == 2 + 3 + 32,
            "{etag}"
        );
        assert_eq!(
            first.header("cache-control"),
            Some("max-age=86400, s-maxage=300")
        );
        assert_eq!(first.header("vary"), Some("Authorization"));
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
                Some("max-age=86400, s-maxage=300")
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
    fn shared_caches_may_keep_get_encode_no_longer_than_the_token_or_the_setting() {
        let cache_control = |variables: &FakeVariables, request: Request| {
            let (model, kv) = (FakeModel::default(), FakeKv::default());
            let response = handle(&request, &env(variables, &model, Some(&kv)));
            assert_eq!(response.status, 200);
            response.header("cache-control").unwrap().to_owned()
        };
        let get = || request("GET", "/v1/encode?query=hi", "");
        let with_token = |token: String| {
            let mut request = without_auth(get());
            request
                .headers
                .push(("Authorization".into(), format!("Bearer {token}")));
            request
        };
        let variables = cached_variables().with(config::JWT_SECRET, JWT_SECRET);
        assert_eq!(
            cache_control(&variables, get()),
            "max-age=86400, s-maxage=300"
        );
        assert_eq!(
            cache_control(&variables, with_token(jwt(NOW + 60))),
            "max-age=86400, s-maxage=60"
        );
        assert_eq!(
            cache_control(&variables, with_token(jwt(NOW - 10))),
            "private, max-age=86400",
            "accepted within the leeway, but no longer the token's to share"
        );
        assert_eq!(
            cache_control(
                &variables,
                request("GET", "/v1/encode", r#"{"query": "hi"}"#)
            ),
            "private, max-age=86400",
            "a query in a body is not in the URL that shared caches key on"
        );
        let short_ttl = variables.clone().with(config::CACHE_TTL_SECONDS, "100");
        assert_eq!(
            cache_control(&short_ttl, get()),
            "max-age=100, s-maxage=100"
        );
        let unshared = variables.with(config::SHARED_CACHE_SECONDS, "0");
        assert_eq!(cache_control(&unshared, get()), "private, max-age=86400");
    }

    #[test]
    fn without_a_model_digest_get_encode_has_no_etag_and_never_304() {
        let (model, variables) = (FakeModel::default(), variables());
        let services = env(&variables, &model, None);
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
        let (variables, model, kv) = (cached_variables(), FakeModel::default(), FakeKv::default());
        kv.broken.set(true);
        let services = env(&variables, &model, Some(&kv));
        for _ in 0..2 {
            let response = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
            assert_eq!(response.status, 200);
            assert_eq!(response.header("x-cache"), Some("MISS"));
        }
    }

    #[test]
    fn ttl_zero_caches_nothing() {
        let variables = cached_variables().with(config::CACHE_TTL_SECONDS, "0");
        let (model, kv) = (FakeModel::default(), FakeKv::default());
        let services = env(&variables, &model, Some(&kv));
        for _ in 0..2 {
            let response = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
            assert_eq!(response.header("x-cache"), Some("MISS"));
            assert_eq!(response.header("cache-control"), Some("private, max-age=0"));
        }
        assert_eq!(kv.calls.get(), 0);
    }

    #[test]
    fn the_two_models_never_share_cache_entries() {
        let variables = cached_variables().with(config::INT8_MODEL_DIGEST, "sha256:int8");
        let (model, kv) = (FakeModel::default(), FakeKv::default());
        let services = env(&variables, &model, Some(&kv));
        let embed = |name: &str| {
            let body = json!({"model": name, "input": "hi"}).to_string();
            handle(&request("POST", "/v1/embeddings", &body), &services)
        };
        assert_eq!(embed("all-minilm-l6-v2").header("x-cache"), Some("MISS"));
        assert_eq!(
            embed("all-minilm-l6-v2-int8").header("x-cache"),
            Some("MISS")
        );
        assert_eq!(
            embed("all-minilm-l6-v2-int8").header("x-cache"),
            Some("HIT")
        );
        assert_eq!(embed("all-minilm-l6-v2").header("x-cache"), Some("HIT"));
        assert_eq!(model.calls(), 2);
    }

    #[test]
    fn jwts_are_checked_against_the_request_time() {
        let variables = variables().with(config::JWT_SECRET, JWT_SECRET);
        let token = jwt;
        let model = FakeModel::default();
        let send = |token: String| {
            let body = r#"{"model": "all-minilm-l6-v2", "input": "x"}"#;
            let mut request = without_auth(request("POST", "/v1/embeddings", body));
            request
                .headers
                .push(("Authorization".into(), format!("Bearer {token}")));
            handle(&request, &env(&variables, &model, None))
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
