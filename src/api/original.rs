//! The routes and shapes of the Python service we replace, kept as its clients know them.
//!
//! Field errors use its validator's wording: `{"query": ["required field"]}`.

use serde::Serialize;
use serde_json::{Map, Value};

use super::json_object;
use crate::error::{ApiError, FieldErrors};
use crate::http::Request;

const REQUIRED: &str = "required field";
const NOT_A_STRING: &str = "must be of string type";

/// `GET|POST /v1/encode`: the text comes from `?query=`, or else from a JSON body `{"query"}`.
#[derive(Debug, PartialEq)]
pub struct EncodeRequest {
    /// The text as the client sent it, echoed back in the response.
    pub query: String,
}

impl EncodeRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        let query = match request.query_param("query") {
            Some(query) => query,
            None => string_field(&json_object(&request.body)?, "query")
                .map_err(|message| ApiError::field("query", message))?,
        };
        if query.trim().is_empty() {
            return Err(ApiError::field("query", REQUIRED));
        }
        Ok(Self { query })
    }

    /// What is encoded: the query without surrounding whitespace.
    pub fn text(&self) -> &str {
        self.query.trim()
    }
}

#[derive(Debug, Serialize)]
pub struct EncodeResponse {
    pub query: String,
    pub encoding: Vec<f32>,
}

/// `POST /v1/encode/cos_sim_weight`: `{"a": "<text>", "b": "<text>"}`, encoded as sent.
#[derive(Debug, PartialEq)]
pub struct CosSimWeightRequest {
    pub a: String,
    pub b: String,
}

impl CosSimWeightRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        let body = json_object(&request.body)?;
        // Both fields are checked so that one response names every problem.
        let mut errors = FieldErrors::new();
        let mut field = |name| {
            string_field(&body, name)
                .map_err(|message| errors.insert(name, vec![message]))
                .ok()
        };
        match (field("a"), field("b")) {
            (Some(a), Some(b)) => Ok(Self { a, b }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CosSimWeightResponse {
    pub cos_sim_weight: f32,
}

#[derive(Debug, Serialize)]
pub struct PingResponse {
    pub status: &'static str,
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

/// A required string field of a JSON object, or the validation message for it; `null` counts
/// as missing.
fn string_field(object: &Map<String, Value>, name: &str) -> Result<String, &'static str> {
    match object.get(name) {
        None | Some(Value::Null) => Err(REQUIRED),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(NOT_A_STRING),
    }
}
