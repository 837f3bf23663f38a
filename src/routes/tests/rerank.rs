//! Cohere's rerank routes and TEI's: ranking by the cosine the original routes answer, the
//! cache, and errors in each family's shape.

use serde_json::json;

use super::*;

fn rerank(path: &str, body: Value) -> Response {
    send(request("POST", path, &body.to_string()))
}

/// What `/v1/encode/cos_sim_weight` answers for the pair.
fn cos_sim_weight(a: &str, b: &str) -> f64 {
    let body = json!({"a": a, "b": b}).to_string();
    json_body(&send(request("POST", "/v1/encode/cos_sim_weight", &body)))["cos_sim_weight"]
        .as_f64()
        .unwrap()
}

const DOCUMENTS: [&str; 4] = ["hello world", "hi", "a much longer document here", "hi"];

#[test]
fn cohere_ranks_by_the_cosine_cos_sim_weight_answers_highest_first() {
    for path in ["/v1/rerank", "/v2/rerank"] {
        let response = rerank(path, json!({"query": "hello", "documents": DOCUMENTS}));
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("x-cache"), Some("MISS"));
        let body = json_body(&response);
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        let scores: Vec<f64> = results
            .iter()
            .map(|r| r["relevance_score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        for result in results {
            let index = result["index"].as_u64().unwrap() as usize;
            let expected = cos_sim_weight("hello", DOCUMENTS[index]);
            assert_eq!(result["relevance_score"].as_f64().unwrap(), expected);
            assert!(result.get("document").is_none());
        }
        // The two equal documents tie, and keep their order.
        let tied: Vec<u64> = results
            .iter()
            .filter_map(|r| r["index"].as_u64().filter(|&i| i == 1 || i == 3))
            .collect();
        assert_eq!(tied, [1, 3]);
        assert_eq!(body["model"], "sentence-transformers/all-MiniLM-L6-v2");
        let version = if path == "/v1/rerank" { "1" } else { "2" };
        assert_eq!(body["meta"]["api_version"]["version"], version);
        // [CLS] hello [SEP], then each document's tokens.
        assert_eq!(body["usage"]["total_tokens"], 3 + 4 + 3 + 7 + 3);
        assert_eq!(body["meta"]["tokens"]["input_tokens"], 20);
    }
}

#[test]
fn top_n_return_documents_model_and_the_request_id() {
    let mut traced = request(
        "POST",
        "/v1/rerank",
        &json!({
            "query": "hello",
            "documents": ["hi", {"text": "hello world", "source": "greetings"}],
            "top_n": 1,
            "return_documents": true,
            "model": "all-minilm-l6-v2-int8",
        })
        .to_string(),
    );
    traced
        .headers
        .push(("X-Request-Id".into(), "trace-7".into()));
    let body = json_body(&send(traced));
    assert_eq!(body["id"], "trace-7");
    assert_eq!(body["model"], "all-minilm-l6-v2-int8");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let best = &results[0];
    let document = if best["index"] == 0 {
        json!({"text": "hi"})
    } else {
        json!({"text": "hello world", "source": "greetings"})
    };
    assert_eq!(best["document"], document);
}

#[test]
fn cohere_errors_are_a_message_with_the_right_status() {
    for (body, status) in [
        (json!({"query": "q", "documents": []}), 400),
        (json!({"documents": ["a"]}), 400),
        (
            json!({"query": "q", "documents": ["a", "b"], "top_n": 3}),
            422,
        ),
        (
            json!({"query": "q", "documents": ["a", "b"], "top_n": 0}),
            422,
        ),
        (json!({"query": "q", "documents": ["a", 5]}), 422),
        (
            json!({"query": "q", "documents": ["a"], "model": "rerank-v3.5"}),
            404,
        ),
    ] {
        let response = rerank("/v2/rerank", body.clone());
        assert_eq!(response.status, status, "{body}");
        let error = json_body(&response);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
        assert_eq!(error.as_object().unwrap().len(), 1, "{error}");
    }
    let unauthorized = send(without_auth(request("POST", "/v1/rerank", "{}")));
    assert_eq!(unauthorized.status, 401);
    assert!(json_body(&unauthorized)["message"].is_string());
    let documents_item = json_body(&rerank(
        "/v1/rerank",
        json!({"query": "q", "documents": ["a", 5]}),
    ));
    assert_eq!(
        documents_item["message"],
        "`documents` item 1 must be a string or an object with a string `text`, not a number"
    );
}

#[test]
fn documents_count_against_max_inputs_and_the_query_does_not() {
    let model = FakeModel::default();
    let limited = variables().with(config::MAX_INPUTS, "2");
    let status = |documents: Value| {
        let body = json!({"query": "q", "documents": documents}).to_string();
        send_with(request("POST", "/v1/rerank", &body), &limited, &model).status
    };
    assert_eq!(status(json!(["a", "b"])), 200);
    assert_eq!(status(json!(["a", "b", "c"])), 413);
    let long = variables().with(config::MAX_INPUT_CHARS, "3");
    let body = json!({"query": "long query", "documents": ["a"]}).to_string();
    let response = send_with(request("POST", "/v2/rerank", &body), &long, &model);
    assert_eq!(response.status, 413);
    assert!(json_body(&response)["message"]
        .as_str()
        .unwrap()
        .contains("`query`"));
}

#[test]
fn known_documents_cost_one_inference_for_a_new_query() {
    let (variables, model, kv) = (
        variables().with(config::MODEL_DIGEST, "sha256:test"),
        FakeModel::default(),
        FakeKv::default(),
    );
    let services = env(&variables, &model, Some(&kv));
    let ask = |query: &str| {
        let body = json!({"query": query, "documents": DOCUMENTS}).to_string();
        handle(&request("POST", "/v1/rerank", &body), &services)
    };
    assert_eq!(ask("first").header("x-cache"), Some("MISS"));
    let again = ask("second");
    assert_eq!(again.header("x-cache"), Some("PARTIAL"));
    let recorded = model.recorded.borrow();
    let rows: Vec<_> = recorded[1].1.iter().map(|(_, text)| text.clone()).collect();
    assert_eq!(
        rows,
        [Some("second".to_owned())],
        "only the new query is embedded"
    );
}

#[test]
fn tei_ranks_every_text_with_scores_equal_to_cohere_s() {
    let texts = ["hi", "hello world", "something else"];
    let tei = rerank(
        "/rerank",
        json!({"query": "hello", "texts": texts, "return_text": true}),
    );
    assert_eq!(tei.status, 200);
    let ranks = json_body(&tei);
    let cohere = json_body(&rerank(
        "/v1/rerank",
        json!({"query": "hello", "documents": texts}),
    ));
    for (rank, result) in ranks
        .as_array()
        .unwrap()
        .iter()
        .zip(cohere["results"].as_array().unwrap())
    {
        assert_eq!(rank["index"], result["index"]);
        assert_eq!(rank["score"], result["relevance_score"]);
        assert_eq!(
            rank["text"],
            json!(texts[rank["index"].as_u64().unwrap() as usize])
        );
    }
    let raw = json_body(&rerank(
        "/rerank",
        json!({"query": "hello", "texts": texts, "raw_scores": true}),
    ));
    assert_eq!(
        raw[0]["score"], ranks[0]["score"],
        "a bi-encoder has no logits"
    );
    assert!(raw[0].get("text").is_none());
}

#[test]
fn tei_rerank_errors_carry_tei_s_error_type() {
    for (body, status, kind) in [
        (json!({"query": "q", "texts": []}), 400, "Empty"),
        (json!({"query": "q"}), 400, "Validation"),
        (
            json!({"query": "q", "texts": ["a"], "truncation_direction": "up"}),
            422,
            "Validation",
        ),
        (
            json!({"query": "q", "texts": ["a", null]}),
            422,
            "Validation",
        ),
    ] {
        let response = rerank("/rerank", body.clone());
        assert_eq!(response.status, status, "{body}");
        let error = json_body(&response);
        assert_eq!(error["error_type"], kind, "{body}");
        assert!(error["error"].is_string());
    }
    let failing = send_with(
        request("POST", "/rerank", r#"{"query": "q", "texts": ["a"]}"#),
        &variables(),
        &FailingModel,
    );
    assert_eq!(failing.status, 424);
    assert_eq!(json_body(&failing)["error_type"], "Backend");
    assert!(!String::from_utf8_lossy(&failing.body).contains("secret"));
}
