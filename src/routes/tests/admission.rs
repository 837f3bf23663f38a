//! What is decided before a handler runs: tokens, routes, methods, limits, CORS.

use serde_json::json;

use super::*;
use crate::routes::{check_body_length, check_declared_length};

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
fn a_declared_length_over_the_limit_is_refused_before_reading() {
    assert!(check_declared_length(Some("10"), 10).is_ok());
    assert!(check_declared_length(None, 10).is_ok());
    assert!(check_declared_length(Some("garbage"), 10).is_ok());
    assert_eq!(
        check_declared_length(Some(" 11"), 10).unwrap_err().status(),
        413
    );
    assert!(check_declared_length(Some("99999999999999999999999"), 10).is_err());
}

#[test]
fn the_body_may_be_exactly_the_limit() {
    assert!(check_body_length(10, 10).is_ok());
    assert_eq!(check_body_length(11, 10).unwrap_err().status(), 413);
}
