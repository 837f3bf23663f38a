//! The routes and shapes of the Python service we replace, kept as its clients know them, with
//! the natural extensions (`truncate`, lists in `cos_sim_weight`, `top_k`/`max_pairs`).

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::ToSchema;

use super::fields::{self, TextOrTexts};
use super::inputs::{InputField, Inputs};
use super::json::{read, Body};
use crate::embed::Input;
use crate::http::error::ApiError;
use crate::http::Request;
use crate::similarity::ScoredPair;

/// `GET|POST /v1/encode`: the text comes from `?query=`, or else from a JSON body `{"query"}`.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
pub struct EncodeRequest {
    /// The text without surrounding whitespace: what is encoded and echoed back.
    #[schema(min_length = 1, pattern = r"\S")]
    #[serde(deserialize_with = "fields::text")]
    pub query: String,
    /// Truncate inputs to the model's 256 tokens (as sentence-transformers does). With `false`,
    /// an over-long input is a 422 that says how many tokens it had.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
}

impl Body for EncodeRequest {
    const REQUIRED: &'static [&'static str] = &["query"];
}

impl EncodeRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        let from_url = request
            .query_param("query")
            .map_err(|error| ApiError::Malformed {
                field: None,
                problem: error.to_string(),
            })?;
        let Self { query, truncate } = match from_url {
            Some(query) => Self {
                query,
                truncate: true,
            },
            None => read(request)?,
        };
        let query = query.trim();
        if query.is_empty() {
            return Err(ApiError::MissingFields(vec!["query"]));
        }
        Ok(Self {
            query: query.to_owned(),
            truncate,
        })
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![InputField::single("query", Input::Text(&self.query))])
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EncodeResponse {
    pub query: String,
    /// L2-normalized sentence embedding (384 floats).
    #[schema(min_items = 1, max_items = 384)]
    pub encoding: Vec<f32>,
}

/// `{"sentences": [...], "truncate"?}`: the body of `GET|POST /v1/encode/multiple_encode`,
/// and the core of `/v1/paraphrase`'s. Sentences are encoded as sent (not trimmed).
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = MultipleEncodeRequest)]
pub struct SentencesRequest {
    #[serde(deserialize_with = "fields::texts")]
    pub sentences: Vec<String>,
    /// Truncate inputs to the model's 256 tokens (as sentence-transformers does). With `false`,
    /// an over-long input is a 422 that says how many tokens it had.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
}

impl Body for SentencesRequest {
    const REQUIRED: &'static [&'static str] = &["sentences"];
}

impl SentencesRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        read(request)
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![InputField::texts("sentences", &self.sentences)])
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MultipleEncodeResponse {
    pub data: Vec<Encoded>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Encoded {
    pub original: String,
    /// L2-normalized sentence embedding (384 floats).
    #[schema(min_items = 1, max_items = 384)]
    pub encoded: Vec<f32>,
}

/// `POST /v1/encode/cos_sim_weight`: `{"a", "b"}`, each a text or a list of texts.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = CosSimRequest)]
pub struct CosSimWeightRequest {
    pub a: TextOrTexts,
    pub b: TextOrTexts,
    /// Truncate inputs to the model's 256 tokens (as sentence-transformers does). With `false`,
    /// an over-long input is a 422 that says how many tokens it had.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
}

impl Body for CosSimWeightRequest {
    const REQUIRED: &'static [&'static str] = &["a", "b"];
}

impl CosSimWeightRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        read(request)
    }

    /// `a`'s texts, then `b`'s.
    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![self.a.field("a"), self.b.field("b")])
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CosSimResponse)]
pub struct CosSimWeightResponse {
    pub cos_sim_weight: CosSimWeight,
}

/// A float for two texts, as the original answered; a matrix when either side is a list.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
#[serde(untagged)]
pub enum CosSimWeight {
    Score(f32),
    Matrix(Vec<Vec<f32>>),
}

/// sentence-transformers' `paraphrase_mining` defaults.
pub const DEFAULT_TOP_K: u64 = 100;
pub const DEFAULT_MAX_PAIRS: u64 = 500_000;

const fn default_top_k() -> u64 {
    DEFAULT_TOP_K
}

const fn default_max_pairs() -> u64 {
    DEFAULT_MAX_PAIRS
}

/// `POST /v1/paraphrase`: paraphrase mining over `sentences`.
/// `top_k` and `max_pairs`: any whole number from 1 to `u64::MAX`, or `null` for the default.
fn count_schema(default: u64, description: &str) -> ObjectBuilder {
    fields::whole_number_schema(1, description).default(Some(default.into()))
}

fn top_k_schema() -> ObjectBuilder {
    count_schema(
        DEFAULT_TOP_K,
        "For each sentence, how many of its most similar sentences to consider.",
    )
}

fn max_pairs_schema() -> ObjectBuilder {
    count_schema(DEFAULT_MAX_PAIRS, "At most this many pairs are returned.")
}

#[derive(Debug, PartialEq, Deserialize, ToSchema)]
pub struct ParaphraseRequest {
    #[serde(deserialize_with = "fields::texts")]
    pub sentences: Vec<String>,
    /// Truncate inputs to the model's 256 tokens (as sentence-transformers does). With `false`,
    /// an over-long input is a 422 that says how many tokens it had.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
    #[schema(schema_with = top_k_schema)]
    #[serde(
        default = "default_top_k",
        deserialize_with = "fields::count_or::<_, DEFAULT_TOP_K>"
    )]
    pub top_k: u64,
    #[schema(schema_with = max_pairs_schema)]
    #[serde(
        default = "default_max_pairs",
        deserialize_with = "fields::count_or::<_, DEFAULT_MAX_PAIRS>"
    )]
    pub max_pairs: u64,
}

impl Body for ParaphraseRequest {
    const REQUIRED: &'static [&'static str] = &["sentences"];
}

impl ParaphraseRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        read(request)
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![InputField::texts("sentences", &self.sentences)])
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParaphraseResponse {
    #[schema(value_type = Vec<Vec<f64>>)]
    /// `[score, i, j]` with `i < j`, highest score first.
    pub pairs: Vec<ScoredPair>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Ping)]
pub struct PingResponse {
    #[schema(value_type = String, pattern = "^success$")]
    pub status: &'static str,
    #[schema(value_type = String, pattern = "^pong!$")]
    pub message: &'static str,
    pub container_id: String,
}

impl PingResponse {
    pub fn new(container_id: String) -> Self {
        Self {
            status: "success",
            message: "pong!",
            container_id,
        }
    }
}

/// `GET /health`'s answer when the service is ready.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Health)]
pub struct HealthResponse {
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
    /// `ok`, or `degraded` when the store cannot be read (requests are then served uncached).
    #[schema(value_type = String, pattern = "^(ok|degraded)$")]
    pub cache: &'static str,
    /// Whether the configuration turns the cache on at all.
    pub cache_enabled: bool,
    /// The ids of the served models, each of which just embedded a test input.
    #[schema(value_type = Vec<String>)]
    pub models: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::FieldRef;
    use crate::http::Method;

    fn request(method: Method, query: &str, body: &str) -> Request {
        Request {
            method,
            path: "/".into(),
            query: query.into(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn post(body: &str) -> Request {
        request(Method::Post, "", body)
    }

    #[test]
    fn encode_takes_the_url_query_first_then_the_body() {
        let from_url =
            EncodeRequest::from_request(&request(Method::Get, "query=+hi+", r#"{"query": "x"}"#));
        assert_eq!(
            from_url.unwrap(),
            EncodeRequest {
                query: "hi".into(),
                truncate: true
            }
        );
        let from_body =
            EncodeRequest::from_request(&post(r#"{"query": " hi\n", "truncate": false}"#));
        assert_eq!(
            from_body.unwrap(),
            EncodeRequest {
                query: "hi".into(),
                truncate: false
            }
        );
    }

    #[test]
    fn encode_errors() {
        let status = |request: Request| EncodeRequest::from_request(&request).unwrap_err().status();
        assert_eq!(status(request(Method::Get, "", "")), 400);
        assert_eq!(status(request(Method::Get, "query=%20", "")), 400);
        assert_eq!(status(request(Method::Get, "query=%FF", "")), 400);
        let invalid = EncodeRequest::from_request(&request(Method::Get, "query=%FF", ""));
        let response = invalid
            .unwrap_err()
            .into_response(crate::http::error::Family::Original);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&response.body).unwrap(),
            serde_json::json!({
                "code": 400,
                "name": "Bad Request",
                "description": "The query string parameter `query` is not valid UTF-8 once percent-decoded."
            })
        );
        assert_eq!(status(post(r#"{"query": ""}"#)), 400);
        assert_eq!(status(post(r#"{"query": null}"#)), 422);
        assert_eq!(status(post(r#"{"query": ["hi"]}"#)), 422);
        assert_eq!(status(post(r#"{"query": "hi", "truncate": "no"}"#)), 422);
    }

    #[test]
    fn sentences_are_read_as_sent() {
        let parsed =
            SentencesRequest::from_request(&post(r#"{"sentences": ["  a ", ""]}"#)).unwrap();
        assert_eq!(parsed.sentences, vec!["  a ", ""]);
        assert_eq!(parsed.inputs().len(), 2);
        for (body, status) in [
            ("{}", 400),
            (r#"{"sentences": null}"#, 422),
            (r#"{"sentences": "a"}"#, 422),
            (r#"{"sentences": [["a"]]}"#, 422),
        ] {
            assert_eq!(
                SentencesRequest::from_request(&post(body))
                    .unwrap_err()
                    .status(),
                status,
                "{body}"
            );
        }
    }

    #[test]
    fn cos_sim_weight_names_every_missing_side() {
        match CosSimWeightRequest::from_request(&post("{}")) {
            Err(ApiError::MissingFields(fields)) => assert_eq!(fields, vec!["a", "b"]),
            other => panic!("{other:?}"),
        }
        let parsed =
            CosSimWeightRequest::from_request(&post(r#"{"a": "x", "b": ["y", "z"]}"#)).unwrap();
        let inputs = parsed.inputs();
        assert_eq!(inputs.locate(0), Some(FieldRef::whole("a")));
        assert_eq!(inputs.locate(2), Some(FieldRef::item("b", 1)));
    }

    #[test]
    fn paraphrase_options_default_like_sentence_transformers() {
        let parsed =
            ParaphraseRequest::from_request(&post(r#"{"sentences": ["a"], "top_k": null}"#))
                .unwrap();
        assert_eq!((parsed.top_k, parsed.max_pairs), (100, 500_000));
        let status = |body| {
            ParaphraseRequest::from_request(&post(body))
                .unwrap_err()
                .status()
        };
        assert_eq!(status(r#"{"sentences": ["a"], "top_k": 0}"#), 422);
        assert_eq!(status(r#"{"sentences": ["a"], "max_pairs": 1.5}"#), 422);
        let error = ParaphraseRequest::from_request(&post(r#"{"sentences": ["a", 2]}"#));
        assert_eq!(
            error.unwrap_err().into_response(crate::http::error::Family::Original).body,
            br#"{"code":422,"name":"Unprocessable Entity","description":"`sentences` item 1 must be a string, not a number"}"#
        );
    }

    #[test]
    fn a_string_pair_scores_as_a_float_and_lists_as_a_matrix() {
        let json = |value| serde_json::to_string(&value).unwrap();
        assert_eq!(json(CosSimWeight::Score(1.0)), "1.0");
        assert_eq!(json(CosSimWeight::Matrix(vec![vec![0.5]])), "[[0.5]]");
    }
}
