//! TEI's embedding routes (`POST /`, `POST /embed`, with Spin's remote llm call on `/embed`) and
//! `GET /info`.

use serde_json::json;

use super::*;
use crate::embed::tokenize;

fn vectors(response: &Response) -> Vec<Vec<f64>> {
    serde_json::from_value(json_body(response)).unwrap()
}

fn openai_vectors(input: Value) -> Vec<Vec<f64>> {
    let body = json!({"model": "all-minilm-l6-v2", "input": input}).to_string();
    let answer = json_body(&send(request("POST", "/v1/embeddings", &body)));
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| serde_json::from_value(row["embedding"].clone()).unwrap())
        .collect()
}

#[test]
fn post_root_and_embed_answer_a_list_of_vectors_like_openai_s() {
    let expected = openai_vectors(json!(["hello world", "hi"]));
    for path in ["/", "/embed", "/embed/"] {
        let response = send(request(
            "POST",
            path,
            r#"{"inputs": ["hello world", "hi"]}"#,
        ));
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("x-cache"), Some("MISS"));
        assert_eq!(vectors(&response), expected, "{path}");
    }
    let one = send(request(
        "POST",
        "/embed",
        r#"{"inputs": "hi", "normalize": false}"#,
    ));
    assert_eq!(vectors(&one), expected[1..]);
    let short = send(request("POST", "/", r#"{"inputs": "hi", "dimensions": 2}"#));
    let short = &vectors(&short)[0];
    assert_eq!(short.len(), 2);
    assert!((short.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-6);
}

#[test]
fn get_root_stays_public_liveness_and_post_root_needs_a_token() {
    assert_eq!(send(without_auth(request("GET", "/", ""))).status, 200);
    let refused = send(without_auth(request("POST", "/", r#"{"inputs": "hi"}"#)));
    assert_eq!(refused.status, 401);
    assert_eq!(json_body(&refused)["error_type"], "Unauthorized");
    let wrong = send(request("PUT", "/", ""));
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
}

#[test]
fn left_truncation_embeds_the_last_whole_words() {
    let model = FakeModel::default();
    let text = format!("start {}", "word ".repeat(300));
    let body = json!({"inputs": text, "truncation_direction": "left"}).to_string();
    let response = send_with(request("POST", "/embed", &body), &variables(), &model);
    assert_eq!(response.status, 200);
    let (ids, suffix) = tokenize::shared().unwrap().keep_end(&text).unwrap();
    let recorded = model.recorded.borrow();
    assert_eq!(recorded[0].1, [(ids, Some(suffix.to_owned()))]);
    let strict = json!({"inputs": text, "truncate": false}).to_string();
    let refused = send(request("POST", "/embed", &strict));
    assert_eq!(refused.status, 422);
    assert_eq!(json_body(&refused)["error_type"], "Validation");
}

#[test]
fn spin_s_remote_llm_client_gets_its_own_shape_on_embed() {
    let response = send(request(
        "POST",
        "/embed",
        r#"{"model": "all-minilm-l6-v2", "input": ["hello world", "hi"]}"#,
    ));
    assert_eq!(response.status, 200);
    let body = json_body(&response);
    let embeddings: Vec<Vec<f64>> = serde_json::from_value(body["embeddings"].clone()).unwrap();
    assert_eq!(embeddings, openai_vectors(json!(["hello world", "hi"])));
    assert_eq!(body["usage"], json!({"promptTokenCount": 7}));
    let mut lowercase = without_auth(request(
        "POST",
        "/embed",
        r#"{"model": "all-minilm-l6-v2", "input": ["hi"]}"#,
    ));
    lowercase
        .headers
        .push(("authorization".into(), format!("bearer {KEY}")));
    assert_eq!(send(lowercase).status, 200, "Spin sends `bearer`");
}

#[test]
fn an_embed_body_that_is_neither_or_both_is_refused() {
    for (body, status) in [
        (r#"{"model": "all-minilm-l6-v2"}"#, 400),
        ("{}", 400),
        (
            r#"{"inputs": "a", "input": ["a"], "model": "all-minilm-l6-v2"}"#,
            422,
        ),
        (r#"{"input": ["a"]}"#, 400),
        (r#"{"input": ["a"], "model": "nomic-embed-text"}"#, 404),
        (r#"{"input": "a", "model": "all-minilm-l6-v2"}"#, 422),
    ] {
        let response = send(request("POST", "/embed", body));
        assert_eq!(response.status, status, "{body}");
        let error = json_body(&response);
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{error}"
        );
        assert!(error["error_type"].is_string(), "{error}");
    }
    let both = json_body(&send(request(
        "POST",
        "/embed",
        r#"{"inputs": "a", "input": ["a"], "model": "all-minilm-l6-v2"}"#,
    )));
    let message = both["error"].as_str().unwrap();
    assert!(
        message.contains("`inputs`") && message.contains("`input`"),
        "{message}"
    );
}

#[test]
fn info_is_public_and_tells_the_build_and_models() {
    let secret = variables().with(config::JWT_SECRET, "very-secret-value");
    let response = send_with(
        without_auth(request("GET", "/info", "")),
        &secret,
        &FakeModel::default(),
    );
    assert_eq!(response.status, 200);
    let info = json_body(&response);
    assert_eq!(info["model_id"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(info["max_input_length"], 256);
    assert_eq!(info["build"], "fast");
    assert_eq!(info["models"].as_array().unwrap().len(), 2);
    let text = String::from_utf8_lossy(&response.body);
    assert!(
        !text.contains("very-secret-value") && !text.contains(KEY),
        "{text}"
    );
    assert_eq!(send(request("POST", "/info", "")).status, 405);
}
