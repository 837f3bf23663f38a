//! Bad requests and failures: each a JSON error in its family's shape, revealing nothing inside.

use serde_json::json;

use super::*;

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
