//! The embedding call of Spin's own remote llm client (`[llm_compute] type = "remote_http"` in a
//! Spin runtime config, default `api_type`): `POST {url}/embed` with `{"model", "input": [...]}`,
//! answered `{"embeddings": [[...]], "usage": {"promptTokenCount"}}`. It shares `/embed` with
//! TEI's call, which sends `inputs` instead (`handlers::tei::embed_tei_or_spin` tells them apart).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::fields;
use super::inputs::{InputField, Inputs};
use super::json::{from_object, Body};
use crate::http::error::ApiError;

/// `POST /embed` from Spin's remote llm client.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = SpinEmbedRequest)]
pub struct EmbedRequest {
    /// The model the Spin app asked for: a served model's id or alias (Spin's is
    /// `all-minilm-l6-v2`); any other is a 404.
    #[schema(examples("all-minilm-l6-v2"))]
    #[serde(deserialize_with = "fields::text")]
    pub model: String,
    /// The texts to embed, each truncated to the model's 256 tokens.
    #[serde(deserialize_with = "fields::texts")]
    pub input: Vec<String>,
}

impl Body for EmbedRequest {
    const REQUIRED: &'static [&'static str] = &["model", "input"];
}

impl EmbedRequest {
    pub fn from_object(object: Map<String, Value>) -> Result<Self, ApiError> {
        from_object(object)
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![InputField::texts("input", &self.input)])
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SpinEmbedResponse)]
pub struct EmbedResponse {
    /// One unit vector per input, in order.
    pub embeddings: Vec<Vec<f32>>,
    pub usage: SpinUsage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpinUsage {
    /// The tokens the model saw, `[CLS]` and `[SEP]` included, summed over the inputs.
    #[serde(rename = "promptTokenCount")]
    pub prompt_token_count: usize,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn spin_s_request_and_answer_shapes() {
        let Value::Object(object) = json!({"model": "all-minilm-l6-v2", "input": ["a", "b"]})
        else {
            unreachable!()
        };
        let request = EmbedRequest::from_object(object).unwrap();
        assert_eq!(request.input, ["a", "b"]);
        let answer = EmbedResponse {
            embeddings: vec![vec![1.0]],
            usage: SpinUsage {
                prompt_token_count: 3,
            },
        };
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            json!({"embeddings": [[1.0]], "usage": {"promptTokenCount": 3}})
        );
    }
}
