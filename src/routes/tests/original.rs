//! The original service's routes.

use serde_json::json;

use super::*;

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
