//! The routes and shapes of the Python service we replace, kept as its clients know them.

use serde::Serialize;

use super::{json_object, string_field, FieldProblem};
use crate::error::ApiError;
use crate::http::Request;

/// `GET|POST /v1/encode`: the text comes from `?query=`, or else from a JSON body `{"query"}`.
#[derive(Debug, PartialEq)]
pub struct EncodeRequest {
    /// The text without surrounding whitespace: what is encoded and echoed back.
    pub query: String,
}

impl EncodeRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        let query = match request.query_param("query") {
            Some(query) => query,
            None => string_field(&json_object(request)?, "query")
                .map_err(|problem| problem.into_error("query"))?,
        };
        let query = query.trim();
        if query.is_empty() {
            return Err(FieldProblem::Missing.into_error("query"));
        }
        Ok(Self {
            query: query.to_owned(),
        })
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
        let body = json_object(request)?;
        let (a, b) = (string_field(&body, "a"), string_field(&body, "b"));
        // One response names every missing field, as the original validator's did.
        let missing: Vec<_> = [("a", &a), ("b", &b)]
            .into_iter()
            .filter(|(_, field)| field.as_ref().err() == Some(&FieldProblem::Missing))
            .map(|(name, _)| name)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::MissingFields(missing));
        }
        Ok(Self {
            a: a.map_err(|problem| problem.into_error("a"))?,
            b: b.map_err(|problem| problem.into_error("b"))?,
        })
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
