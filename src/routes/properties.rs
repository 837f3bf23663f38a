//! Property tests: whatever bytes a client sends — body, query string, bearer header, text — the
//! component answers without panicking, and every refusal is a 4xx JSON error. The backend and
//! store are the unit tests' stand-ins (the integration tests in `tests/` run the real ones); the
//! tokenizer is the real, embedded one.

use proptest::prelude::*;
use serde_json::Value;

use crate::api::Services;
use crate::config::tests::FakeVariables;
use crate::config::{self, Config};
use crate::embed::cache::tests::FakeKv;
use crate::embed::tests::FakeModel;
use crate::embed::tokenize;
use crate::http::{Method, Request, Response};
use crate::routes::{admit, respond};

const KEY: &str = "property-key";
const JWT_SECRET: &str = "property-secret";
const NOW: u64 = 1_700_000_000;
/// The issue asks for at least this many cases per property in `make test`.
const CASES: u32 = 10_000;

/// The routes that take input, and the methods clients send them.
const TARGETS: &[(&str, &str)] = &[
    ("GET", "/v1/encode"),
    ("POST", "/v1/encode"),
    ("POST", "/v1/encode/multiple_encode"),
    ("POST", "/v1/encode/cos_sim_weight"),
    ("POST", "/v1/paraphrase"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models/all-minilm-l6-v2"),
    ("POST", "/v1/tokenize"),
    ("POST", "/v1/rerank"),
    ("POST", "/v2/rerank"),
    ("POST", "/"),
    ("POST", "/embed"),
    ("POST", "/rerank"),
    ("POST", "/tokenize"),
    ("POST", "/decode"),
];

/// Field names of every request family, so that generated objects reach deep into the parsers.
const FIELDS: &[&str] = &[
    "query",
    "sentences",
    "a",
    "b",
    "top_k",
    "max_pairs",
    "truncate",
    "input",
    "model",
    "encoding_format",
    "dimensions",
    "user",
    "documents",
    "top_n",
    "return_documents",
    "rank_fields",
    "max_tokens_per_doc",
    "relevant_spans",
    "priority",
    "inputs",
    "texts",
    "ids",
    "truncation_direction",
    "normalize",
    "prompt_name",
    "raw_scores",
    "return_text",
    "add_special_tokens",
    "skip_special_tokens",
];

fn config() -> Config {
    FakeVariables::default()
        .with(config::API_KEYS, KEY)
        .with(config::JWT_SECRET, JWT_SECRET)
        .config()
}

/// The entry point's steps for a request whose body is read, as `lib.rs` runs them.
fn handle(request: &Request) -> Response {
    let config = Ok(config());
    let model = FakeModel::default();
    let kv = FakeKv::default();
    match admit(request, &config, NOW) {
        Err(refused) => refused,
        Ok(admitted) => {
            let services = Services {
                config: admitted.config,
                grant: admitted.grant,
                infer: &model,
                kv: Some(&kv),
                now: NOW,
            };
            respond(admitted, request, &services)
        }
    }
}

fn request(
    method: &str,
    path: &str,
    query: String,
    authorization: String,
    body: Vec<u8>,
) -> Request {
    Request {
        method: Method::parse(method),
        path: path.to_owned(),
        query,
        headers: vec![
            ("Authorization".to_owned(), authorization),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ],
        body,
    }
}

/// A success, or a client error whose body is a JSON object: never a 5xx, never an empty or
/// non-JSON refusal.
fn assert_answered(response: &Response) -> Result<(), TestCaseError> {
    prop_assert!(
        response.status < 500,
        "status {} with body {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    if response.status >= 400 {
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|e| TestCaseError::fail(format!("error body is not JSON: {e}")))?;
        prop_assert!(body.is_object(), "error body is not an object: {body}");
    }
    Ok(())
}

/// JSON values of any shape, biased towards objects with the API's own field names.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        "[a-z ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|fields| {
                Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Texts, lists of texts and token-id lists, as the API's input fields take them.
fn input_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::String),
        prop::collection::vec(any::<String>(), 0..4).prop_map(|texts| texts.into()),
        prop::collection::vec(prop::collection::vec(any::<u32>(), 0..6), 0..3)
            .prop_map(|ids| ids.into()),
    ]
}

/// Objects with every family's fields, mostly well-typed, so that the handlers' success paths
/// (tokenizing, embedding, answering) run too, not only the parsers' refusals.
fn api_object() -> impl Strategy<Value = Value> {
    let model = prop_oneof![
        Just("all-minilm-l6-v2".to_owned()),
        Just("all-minilm-l6-v2-int8".to_owned()),
        any::<String>(),
    ];
    (
        input_value(),
        input_value(),
        model,
        prop::sample::select(vec!["float", "base64", "other"]),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(first, second, model, format, number, truncate)| {
            let mut object = serde_json::json!({
                "query": first.clone(), "sentences": first.clone(), "a": first.clone(),
                "b": second.clone(), "documents": second.clone(), "texts": second.clone(),
                "inputs": first.clone(), "ids": second, "input": first, "model": model,
                "encoding_format": format,
            });
            if let Some(number) = number {
                for field in [
                    "dimensions",
                    "top_k",
                    "max_pairs",
                    "top_n",
                    "max_tokens_per_doc",
                ] {
                    object[field] = number.into();
                }
            }
            if let Some(truncate) = truncate {
                for field in [
                    "truncate",
                    "return_documents",
                    "normalize",
                    "add_special_tokens",
                ] {
                    object[field] = truncate.into();
                }
            }
            object
        })
}

/// Bodies: arbitrary bytes, JSON of arbitrary shape, or well-typed requests with arbitrary
/// values.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|value| value.to_string().into_bytes()),
        api_object().prop_map(|value| value.to_string().into_bytes()),
    ]
}

/// Query strings: arbitrary bytes percent-encoded (so not always UTF-8 once decoded), raw
/// printable text with stray `%`, `&` and `=`, or nothing.
fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..32).prop_map(|bytes| {
            let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
            format!("query={encoded}")
        }),
        "[ -~]{0,40}",
        Just(String::new()),
    ]
}

/// `Authorization` values: the right key, any text, or JWT-shaped text (three base64url
/// segments) whose parts are arbitrary.
fn authorization() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("Bearer {KEY}")),
        any::<String>(),
        "(?i:bearer) [A-Za-z0-9_\\-]{0,40}\\.[A-Za-z0-9_\\-]{0,40}\\.[A-Za-z0-9_\\-]{0,40}",
        "[A-Za-z]{0,8} .{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_body_on_any_input_route_is_answered_or_refused_with_a_4xx(
        target in prop::sample::select(TARGETS),
        body in body(),
    ) {
        let (method, path) = target;
        let response = handle(&request(method, path, String::new(), format!("Bearer {KEY}"), body));
        assert_answered(&response)?;
    }

    #[test]
    fn any_query_string_is_decoded_or_refused_with_a_4xx(query in query()) {
        let response = handle(&request("GET", "/v1/encode", query, format!("Bearer {KEY}"), Vec::new()));
        assert_answered(&response)?;
    }

    #[test]
    fn any_authorization_header_is_accepted_or_a_401(authorization in authorization()) {
        let response = handle(&request("GET", "/v1/models", String::new(), authorization.clone(), Vec::new()));
        assert_answered(&response)?;
        prop_assert!(
            response.status == 200 || response.status == 401,
            "status {} for {authorization:?}", response.status
        );
    }

    #[test]
    fn any_text_tokenizes_within_the_model_limit(text in any::<String>()) {
        let tokenizer = tokenize::shared().expect("the embedded tokenizer parses");
        let ids = tokenizer.encode(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let fitted = tokenize::fit(ids, true).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert!(fitted.len() >= 2, "at least [CLS] and [SEP]");
        prop_assert!(fitted.len() <= crate::embed::model::MAX_TOKENS);
    }
}
