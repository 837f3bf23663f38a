//! `POST /v1/tokenize`, beside OpenAI's embeddings API: the token ids the model sees for each
//! input of a `/v1/embeddings` request, so that their counts are that request's `usage`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fields::{self, TextOrTexts};
use super::inputs::Inputs;
use super::json::{read, Body};
use crate::embed::model::Model;
use crate::embed::tokenize::Truncation;
use crate::http::error::{ApiError, FieldRef};
use crate::http::Request;

#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = TokenizeRequest)]
pub struct TokenizeRequest {
    /// A served model's id or alias, as in `/v1/embeddings`; any other name is a 404.
    #[schema(examples("all-minilm-l6-v2"))]
    #[serde(deserialize_with = "fields::text")]
    pub model: String,
    #[schema(schema_with = fields::text_or_texts_schema)]
    pub input: TextOrTexts,
    /// Truncate inputs to the model's 256 tokens, as `/v1/embeddings` does. With `false`, an
    /// over-long input is a 422 that says how many tokens it had.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
}

impl Body for TokenizeRequest {
    const REQUIRED: &'static [&'static str] = &["input", "model"];
}

impl TokenizeRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        let request: Self = read(request)?;
        if matches!(&request.input, TextOrTexts::Many(texts) if texts.is_empty()) {
            return Err(ApiError::invalid(
                FieldRef::whole("input"),
                "must not be an empty array",
            ));
        }
        Ok(request)
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![self.input.field("input")])
    }

    pub fn truncation(&self) -> Truncation {
        Truncation::from_flag(self.truncate)
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TokenizeResponse)]
pub struct TokenizeResponse {
    #[schema(value_type = String, pattern = "^list$")]
    pub object: &'static str,
    pub data: Vec<Tokens>,
    #[schema(value_type = String)]
    pub model: &'static str,
    /// What `/v1/embeddings` reports for the same request.
    pub usage: super::openai::Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    #[schema(value_type = String, pattern = "^tokens$")]
    pub object: &'static str,
    pub index: usize,
    /// The ids the model sees: `[CLS]` (101), the input's WordPiece ids, `[SEP]` (102),
    /// truncated to 256 unless `truncate` is false.
    pub tokens: Vec<u32>,
    /// How many there are.
    pub count: usize,
}

impl TokenizeResponse {
    pub fn new(model: &Model, sequences: Vec<Vec<u32>>) -> Self {
        let total = sequences.iter().map(Vec::len).sum();
        Self {
            object: "list",
            data: sequences
                .into_iter()
                .enumerate()
                .map(|(index, tokens)| Tokens {
                    object: "tokens",
                    index,
                    count: tokens.len(),
                    tokens,
                })
                .collect(),
            model: model.id,
            usage: super::openai::Usage {
                prompt_tokens: total,
                total_tokens: total,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::embed::model::ModelKind;
    use crate::http::Method;

    fn parse(body: Value) -> Result<TokenizeRequest, ApiError> {
        TokenizeRequest::from_request(&Request {
            method: Method::Post,
            path: "/v1/tokenize".into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        })
    }

    #[test]
    fn input_is_a_string_or_a_non_empty_list() {
        let one = parse(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(one.input, TextOrTexts::One("hi".into()));
        assert_eq!(one.truncation(), Truncation::Right);
        for bad in [json!([]), json!(null), json!([1])] {
            let error = parse(json!({"model": "m", "input": bad})).unwrap_err();
            assert_eq!(error.status(), 422, "{bad}");
        }
        assert_eq!(parse(json!({"input": "x"})).unwrap_err().status(), 400);
    }

    #[test]
    fn counts_and_usage_add_up() {
        let model = Model::new(ModelKind::Fp32, String::new());
        let response = TokenizeResponse::new(&model, vec![vec![101, 7632, 102], vec![101, 102]]);
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({
                "object": "list",
                "data": [
                    {"object": "tokens", "index": 0, "tokens": [101, 7632, 102], "count": 3},
                    {"object": "tokens", "index": 1, "tokens": [101, 102], "count": 2},
                ],
                "model": "sentence-transformers/all-MiniLM-L6-v2",
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            })
        );
    }
}
