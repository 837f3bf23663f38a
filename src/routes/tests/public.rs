//! The public routes: liveness, readiness, the documents.

use serde_json::json;

use super::*;

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
