//! OpenAI's routes.

use serde_json::json;

use super::*;

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
