//! The tokenizer's routes: TEI's `/tokenize` and `/decode`, and `/v1/tokenize`.

use serde_json::json;

use super::*;

#[test]
fn tokenize_answers_tei_s_tokens_with_character_offsets() {
    let response = send(request("POST", "/tokenize", r#"{"inputs": "naïve café"}"#));
    assert_eq!(response.status, 200);
    assert_eq!(
        json_body(&response),
        json!([[
            {"id": 101, "text": "[CLS]", "special": true, "start": null, "stop": null},
            {"id": 15743, "text": "naïve", "special": false, "start": 0, "stop": 5},
            {"id": 7668, "text": "café", "special": false, "start": 6, "stop": 10},
            {"id": 102, "text": "[SEP]", "special": true, "start": null, "stop": null},
        ]])
    );
    let bare = json_body(&send(request(
        "POST",
        "/tokenize",
        r#"{"inputs": ["hi", "hello world"], "add_special_tokens": false}"#,
    )));
    let ids: Vec<Vec<u64>> = bare
        .as_array()
        .unwrap()
        .iter()
        .map(|tokens| {
            tokens
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(ids, [vec![7632], vec![7592, 2088]]);
}

#[test]
fn decode_spells_ids_and_refuses_ids_outside_the_vocabulary() {
    let one = send(request(
        "POST",
        "/decode",
        r#"{"ids": [101, 7592, 2088, 102]}"#,
    ));
    assert_eq!(json_body(&one), json!(["hello world"]));
    let kept = send(request(
        "POST",
        "/decode",
        r#"{"ids": [[101, 7632, 102], [2088]], "skip_special_tokens": false}"#,
    ));
    assert_eq!(json_body(&kept), json!(["[CLS] hi [SEP]", "world"]));
    for (body, status, kind) in [
        (r#"{"ids": [30522]}"#, 422, "Validation"),
        (r#"{"ids": [[1], [-1]]}"#, 422, "Validation"),
        (r#"{"ids": []}"#, 400, "Empty"),
        (r#"{"ids": [[7592], []]}"#, 400, "Empty"),
    ] {
        let response = send(request("POST", "/decode", body));
        assert_eq!(response.status, status, "{body}");
        assert_eq!(json_body(&response)["error_type"], kind, "{body}");
    }
    let message = json_body(&send(request(
        "POST",
        "/decode",
        r#"{"ids": [[1], [30522]]}"#,
    )));
    assert_eq!(
        message["error"],
        "`ids` item 1 must hold token ids from 0 to 30521; position 0 is 30522"
    );
}

#[test]
fn v1_tokenize_counts_what_v1_embeddings_reports() {
    let long = "word ".repeat(300);
    let input = json!(["hello world", long]);
    let tokenized = json_body(&send(request(
        "POST",
        "/v1/tokenize",
        &json!({"model": "all-minilm-l6-v2", "input": input}).to_string(),
    )));
    let embedded = json_body(&send(request(
        "POST",
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": input}).to_string(),
    )));
    assert_eq!(tokenized["usage"], embedded["usage"]);
    assert_eq!(
        tokenized["data"][0]["tokens"],
        json!([101, 7592, 2088, 102])
    );
    assert_eq!(tokenized["data"][1]["count"], 256);
    let strict = send(request(
        "POST",
        "/v1/tokenize",
        &json!({"model": "all-minilm-l6-v2", "input": long, "truncate": false}).to_string(),
    ));
    assert_eq!(strict.status, 422);
    assert_eq!(json_body(&strict)["error"]["param"], "input");
    let unknown = send(request(
        "POST",
        "/v1/tokenize",
        r#"{"model": "gpt-4", "input": "x"}"#,
    ));
    assert_eq!(json_body(&unknown)["error"]["code"], "model_not_found");
}

#[test]
fn a_tokenize_answer_lists_at_most_max_tokenized_tokens() {
    use crate::api::handlers::tokens::MAX_TOKENIZED;

    // One-letter words: a token each, [CLS] and [SEP] on top; each input within max_input_chars.
    let words = MAX_TOKENIZED / 16;
    let inputs = vec!["a ".repeat(words - 2); 16];
    let fits = send(request(
        "POST",
        "/tokenize",
        &json!({"inputs": inputs}).to_string(),
    ));
    assert_eq!(fits.status, 200);
    let over = [inputs, vec!["a".to_owned()]].concat();
    let refused = send(request(
        "POST",
        "/tokenize",
        &json!({"inputs": over}).to_string(),
    ));
    assert_eq!(refused.status, 413);
    let error = json_body(&refused);
    assert_eq!(error["error_type"], "Validation");
    assert!(
        error["error"].as_str().unwrap().contains("131072"),
        "{error}"
    );
}
