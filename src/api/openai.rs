//! OpenAI's embeddings API (`POST /v1/embeddings`, `GET /v1/models[/{id}]`), so that its client
//! libraries work against this service unchanged.

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::inputs::{InputField, Inputs};
use super::json::{
    json_object, optional, required, string, strings, truncate, type_name, whole_number,
    wrong_type,
};
use crate::config::Models;
use crate::embed::model::{Model, DIMENSIONS};
use crate::embed::tokenize::VOCAB_SIZE;
use crate::embed::Input;
use crate::http::error::{excerpt, ApiError, FieldRef};
use crate::http::Request;

/// OpenAI's model object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelObject {
    pub id: &'static str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

impl ModelObject {
    pub fn of(model: &Model) -> Self {
        Self {
            id: model.id,
            object: "model",
            created: model.created,
            owned_by: model.owned_by,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

impl ModelList {
    pub fn of(models: &Models) -> Self {
        Self {
            object: "list",
            data: models.all().iter().map(ModelObject::of).collect(),
        }
    }
}

/// The served model named `name`, or OpenAI's 404 naming the served ones.
pub fn find_model<'m>(models: &'m Models, name: &str) -> Result<&'m Model, ApiError> {
    models.find(name).ok_or_else(|| ApiError::ModelNotFound {
        requested: name.to_owned(),
        served: models.describe(),
    })
}

/// One input as sent: a text, or token ids without `[CLS]`/`[SEP]`.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedInput {
    Text(String),
    Tokens(Vec<u32>),
}

impl OwnedInput {
    fn as_input(&self) -> Input<'_> {
        match self {
            Self::Text(text) => Input::Text(text),
            Self::Tokens(ids) => Input::Tokens(ids),
        }
    }
}

/// What `input` holds: one input (a string, or an array of token ids) or a list of them.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingInput {
    pub items: Vec<OwnedInput>,
    pub list: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingFormat {
    Float,
    /// The little-endian f32 bytes of each vector, in standard base64.
    Base64,
}

/// `POST /v1/embeddings`. `user` is accepted and ignored; `truncate` is this service's extension.
#[derive(Debug, PartialEq)]
pub struct EmbeddingsRequest<'m> {
    pub model: &'m Model,
    pub input: EmbeddingInput,
    pub encoding_format: EncodingFormat,
    /// Keep only the first N dimensions (then re-normalize).
    pub dimensions: Option<usize>,
    pub truncate: bool,
}

impl<'m> EmbeddingsRequest<'m> {
    /// Reads and checks every field; an unknown model is a 404 after the fields are known good.
    pub fn from_request(request: &Request, models: &'m Models) -> Result<Self, ApiError> {
        let body = json_object(request)?;
        let [input, model] = required(&body, ["input", "model"])?;
        let input = embedding_input(input)?;
        let model = string(model, FieldRef::whole("model"))?;
        let encoding_format = encoding_format(&body)?;
        let dimensions = dimensions(&body)?;
        let truncate = truncate(&body)?;
        if let Some(user) = optional(&body, "user") {
            string(user, FieldRef::whole("user"))?;
        }
        Ok(Self {
            model: find_model(models, model)?,
            input,
            encoding_format,
            dimensions,
            truncate,
        })
    }

    pub fn inputs(&self) -> Inputs<'_> {
        let inputs = self.input.items.iter().map(OwnedInput::as_input).collect();
        Inputs::new(vec![InputField::new("input", self.input.list, inputs)])
    }
}

fn embedding_input(value: &Value) -> Result<EmbeddingInput, ApiError> {
    const EXPECTED: &str =
        "a string, an array of strings, an array of token ids or an array of arrays of token ids";
    let at = FieldRef::whole("input");
    let items = match value {
        Value::String(text) => {
            return Ok(EmbeddingInput {
                items: vec![OwnedInput::Text(text.clone())],
                list: false,
            })
        }
        Value::Array(items) => items,
        other => return Err(wrong_type(at, EXPECTED, other)),
    };
    match items.first() {
        None => Err(ApiError::invalid(at, "must not be an empty array")),
        Some(Value::String(_)) => Ok(EmbeddingInput {
            items: strings(value, "input")?
                .into_iter()
                .map(OwnedInput::Text)
                .collect(),
            list: true,
        }),
        Some(Value::Number(_)) => Ok(EmbeddingInput {
            items: vec![OwnedInput::Tokens(token_ids(items, at)?)],
            list: false,
        }),
        Some(Value::Array(_)) => {
            let sequences = items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let at = FieldRef::item("input", index);
                    match item {
                        Value::Array(ids) if !ids.is_empty() => {
                            token_ids(ids, at).map(OwnedInput::Tokens)
                        }
                        Value::Array(_) => Err(ApiError::invalid(at, "must not be an empty array")),
                        other => Err(wrong_type(at, "an array of token ids", other)),
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(EmbeddingInput {
                items: sequences,
                list: true,
            })
        }
        Some(other) => Err(ApiError::invalid(
            at,
            format!("must be {EXPECTED}, not an array of {}", plural(other)),
        )),
    }
}

fn plural(value: &Value) -> &'static str {
    match type_name(value) {
        "null" => "nulls",
        "a boolean" => "booleans",
        "an object" => "objects",
        _ => "mixed values",
    }
}

/// Token ids of the model's vocabulary: integers from 0 to `VOCAB_SIZE - 1`.
fn token_ids(items: &[Value], at: FieldRef) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(position, item)| {
            whole_number(item)
                .and_then(|id| u32::try_from(id).ok())
                .filter(|&id| id < VOCAB_SIZE)
                .ok_or_else(|| {
                    ApiError::invalid(
                        at,
                        format!(
                            "must hold token ids from 0 to {}; position {position} is {}",
                            VOCAB_SIZE - 1,
                            excerpt(&item.to_string())
                        ),
                    )
                })
        })
        .collect()
}

fn encoding_format(body: &Map<String, Value>) -> Result<EncodingFormat, ApiError> {
    match optional(body, "encoding_format") {
        None => Ok(EncodingFormat::Float),
        Some(Value::String(format)) if format == "float" => Ok(EncodingFormat::Float),
        Some(Value::String(format)) if format == "base64" => Ok(EncodingFormat::Base64),
        Some(other) => Err(ApiError::invalid(
            FieldRef::whole("encoding_format"),
            format!(
                "must be \"float\" or \"base64\", not {}",
                excerpt(&other.to_string())
            ),
        )),
    }
}

fn dimensions(body: &Map<String, Value>) -> Result<Option<usize>, ApiError> {
    let Some(value) = optional(body, "dimensions") else {
        return Ok(None);
    };
    whole_number(value)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=DIMENSIONS).contains(n))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                FieldRef::whole("dimensions"),
                format!(
                    "must be an integer from 1 to {DIMENSIONS}, not {}",
                    excerpt(&value.to_string())
                ),
            )
        })
}

#[derive(Debug, Serialize)]
pub struct EmbeddingsResponse {
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: &'static str,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct EmbeddingData {
    pub object: &'static str,
    pub index: usize,
    pub embedding: Embedding,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

impl Embedding {
    pub fn encode(vector: Vec<f32>, format: EncodingFormat) -> Self {
        match format {
            EncodingFormat::Float => Self::Float(vector),
            EncodingFormat::Base64 => {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                Self::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

impl EmbeddingsResponse {
    pub fn new(model: &Model, embeddings: Vec<Embedding>, tokens: usize) -> Self {
        Self {
            object: "list",
            data: embeddings
                .into_iter()
                .enumerate()
                .map(|(index, embedding)| EmbeddingData {
                    object: "embedding",
                    index,
                    embedding,
                })
                .collect(),
            model: model.id,
            usage: Usage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::tests::FakeVariables;
    use crate::embed::model::ModelKind;
    use crate::http::Method;

    const MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
    const MODEL_ALIAS: &str = "all-minilm-l6-v2";

    fn models() -> &'static Models {
        Box::leak(Box::new(FakeVariables::default().config().models))
    }

    fn post(body: Value) -> Request {
        Request {
            method: Method::Post,
            path: "/v1/embeddings".into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    fn parse(fields: Value) -> Result<EmbeddingsRequest<'static>, ApiError> {
        let mut body = json!({"model": MODEL_ALIAS, "input": "hi"});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        EmbeddingsRequest::from_request(&post(body), models())
    }

    fn param(error: ApiError) -> (u16, Option<&'static str>) {
        let status = error.status();
        let param = match error {
            ApiError::Unprocessable { at, .. } | ApiError::TooLarge { at, .. } => {
                at.map(|at| at.field)
            }
            ApiError::MissingFields(fields) => fields.first().copied(),
            ApiError::ModelNotFound { .. } => Some("model"),
            _ => None,
        };
        (status, param)
    }

    #[test]
    fn every_input_shape() {
        let input = |value| parse(json!({"input": value})).unwrap().input;
        let text = |t: &str| OwnedInput::Text(t.into());
        assert_eq!(
            input(json!("hi")),
            EmbeddingInput {
                items: vec![text("hi")],
                list: false
            }
        );
        assert_eq!(
            input(json!(["a", "b"])),
            EmbeddingInput {
                items: vec![text("a"), text("b")],
                list: true
            }
        );
        assert_eq!(
            input(json!([0, 30521.0])),
            EmbeddingInput {
                items: vec![OwnedInput::Tokens(vec![0, 30521])],
                list: false
            }
        );
        assert_eq!(
            input(json!([[7592], [7592, 2088]])),
            EmbeddingInput {
                items: vec![
                    OwnedInput::Tokens(vec![7592]),
                    OwnedInput::Tokens(vec![7592, 2088])
                ],
                list: true
            }
        );
    }

    #[test]
    fn bad_inputs_are_422_with_param_input() {
        for bad in [
            json!([]),
            json!([[]]),
            json!(null),
            json!(42),
            json!({"text": "hi"}),
            json!([7592, "world"]),
            json!([[7592], "world"]),
            json!(["world", 7592]),
            json!([7592, 30522]),
            json!([-1]),
            json!([[7592], [18446744073709551615u64]]),
            json!([7592.5]),
            json!([null]),
            json!([true]),
        ] {
            assert_eq!(
                param(parse(json!({"input": bad.clone()})).unwrap_err()),
                (422, Some("input")),
                "{bad}"
            );
        }
    }

    #[test]
    fn model_id_and_alias_in_any_case() {
        for model in [
            MODEL_ID,
            MODEL_ALIAS,
            "ALL-MINILM-L6-V2",
            "Sentence-Transformers/all-minilm-l6-v2",
        ] {
            let parsed = parse(json!({"model": model})).unwrap();
            assert_eq!(parsed.model.kind, ModelKind::Fp32, "{model}");
        }
        for model in ["all-minilm-l6-v2-int8", "ALL-MiniLM-L6-v2-INT8"] {
            let parsed = parse(json!({"model": model})).unwrap();
            assert_eq!(parsed.model.kind, ModelKind::Int8, "{model}");
        }
        assert_eq!(
            param(parse(json!({"model": "text-embedding-3-small"})).unwrap_err()),
            (404, Some("model"))
        );
        assert_eq!(
            param(parse(json!({"model": null})).unwrap_err()),
            (422, Some("model"))
        );
        assert_eq!(
            param(parse(json!({"model": 3})).unwrap_err()),
            (422, Some("model"))
        );
    }

    #[test]
    fn missing_fields_are_400_naming_them() {
        let missing =
            EmbeddingsRequest::from_request(&post(json!({"model": MODEL_ID})), models()).unwrap_err();
        assert_eq!(param(missing), (400, Some("input")));
        let missing = EmbeddingsRequest::from_request(&post(json!({"input": "hi"})), models()).unwrap_err();
        assert_eq!(param(missing), (400, Some("model")));
    }

    #[test]
    fn options_and_their_errors() {
        let parsed = parse(json!({"encoding_format": "base64", "dimensions": 64.0, "user": "u", "truncate": false})).unwrap();
        assert_eq!(
            (parsed.encoding_format, parsed.dimensions, parsed.truncate),
            (EncodingFormat::Base64, Some(64), false)
        );
        let defaults =
            parse(json!({"encoding_format": null, "dimensions": null, "user": null})).unwrap();
        assert_eq!(
            (defaults.encoding_format, defaults.dimensions),
            (EncodingFormat::Float, None)
        );
        for (field, bad) in [
            ("encoding_format", json!("int8")),
            ("encoding_format", json!(1)),
            ("dimensions", json!(0)),
            ("dimensions", json!(385)),
            ("dimensions", json!(-384)),
            ("dimensions", json!(64.5)),
            ("dimensions", json!("64")),
            ("dimensions", json!(18446744073709551615u64)),
            ("truncate", json!("no")),
            ("user", json!(5)),
        ] {
            let error = parse(json!({ field: bad.clone() })).unwrap_err();
            assert_eq!(param(error), (422, Some(field)), "{field}: {bad}");
        }
    }

    #[test]
    fn wrong_values_are_not_echoed_whole() {
        let huge = "x".repeat(100_000);
        for body in [
            json!({"encoding_format": huge}),
            json!({"dimensions": [huge]}),
            json!({"input": [[1, huge]]}),
        ] {
            let Err(ApiError::Unprocessable { problem, .. }) = parse(body) else {
                panic!("not a 422");
            };
            assert!(problem.len() < 300, "{problem}");
        }
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let Embedding::Base64(text) = Embedding::encode(vec![1.0, -2.5], EncodingFormat::Base64)
        else {
            panic!("not base64")
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
        assert_eq!(
            Embedding::encode(vec![0.5], EncodingFormat::Float),
            Embedding::Float(vec![0.5])
        );
    }

    #[test]
    fn the_response_has_openai_s_shape() {
        let model = &models().all()[0];
        let response = EmbeddingsResponse::new(model, vec![Embedding::Float(vec![1.0])], 7);
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}],
                "model": MODEL_ID,
                "usage": {"prompt_tokens": 7, "total_tokens": 7},
            })
        );
    }

    #[test]
    fn the_model_list_holds_every_served_model_fp32_first() {
        let list = serde_json::to_value(ModelList::of(models())).unwrap();
        let ids: Vec<_> = list["data"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect();
        assert_eq!(ids, [json!(MODEL_ID), json!("all-minilm-l6-v2-int8")]);
        assert_eq!(list["data"][0], json!({"id": MODEL_ID, "object": "model", "created": 1_630_281_600, "owned_by": "sentence-transformers"}));
    }
}
