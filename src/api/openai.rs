//! OpenAI's embeddings API (`POST /v1/embeddings`, `GET /v1/models[/{id}]`), so that its client
//! libraries work against this service unchanged.

use std::fmt;

use base64::Engine;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{
    ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::fields::{self, reject, token_ids, Text};
use super::inputs::{InputField, Inputs};
use super::json::{must_be, read, wrong_type, Body};
use crate::config::Models;
use crate::embed::model::{Model, DIMENSIONS};
use crate::embed::tokenize::VOCAB_SIZE;
use crate::embed::Input;
use crate::http::error::{excerpt, ApiError};
use crate::http::Request;

/// OpenAI's model object.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Model)]
pub struct ModelObject {
    #[schema(value_type = String)]
    pub id: &'static str,
    #[schema(value_type = String, pattern = "^model$")]
    pub object: &'static str,
    pub created: u64,
    #[schema(value_type = String)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    #[schema(value_type = String, pattern = "^list$")]
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

/// `input`'s schema, by hand because its `Deserialize` is: a string, a non-empty array of
/// strings, of token ids, or of non-empty token-id arrays.
fn embedding_input_schema() -> OneOfBuilder {
    let token_id = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(VOCAB_SIZE - 1))
    };
    let non_empty = |items: Object| ArrayBuilder::new().items(items).min_items(Some(1));
    OneOfBuilder::new()
        .description(Some(
            "A string, an array of strings, an array of token ids, or an array of token-id arrays. \
             Token ids are WordPiece ids of the model's vocabulary, without [CLS]/[SEP] (the \
             server adds them).",
        ))
        .item(Object::with_type(Type::String))
        .item(non_empty(Object::with_type(Type::String)))
        .item(non_empty(token_id().build()))
        .item(
            ArrayBuilder::new()
                .items(non_empty(token_id().build()))
                .min_items(Some(1)),
        )
}

/// Written by hand: the derive cannot say that one variant is base64 text.
impl utoipa::PartialSchema for Embedding {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ArrayBuilder::new()
                    .items(Object::with_type(Type::Number))
                    .min_items(Some(1))
                    .max_items(Some(DIMENSIONS))
                    .description(Some(
                        "L2-normalized sentence embedding (384 floats unless `dimensions` is set).",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_encoding("base64"),
            )
            .into()
    }
}

impl ToSchema for Embedding {}

/// `encoding_format`'s schema: `float` (the default), `base64` or `null`.
fn encoding_format_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .enum_values(Some([
            Value::from("float"),
            Value::from("base64"),
            Value::Null,
        ]))
        .default(Some(Value::from("float")))
        .description(Some(
            "`base64`: the little-endian f32 bytes of each vector, base64-encoded.",
        ))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EncodingFormat {
    #[default]
    Float,
    /// The little-endian f32 bytes of each vector, in standard base64.
    Base64,
}

/// `POST /v1/embeddings`. `user` is accepted and ignored; `truncate` is this service's extension.
/// The model is looked up (a 404 if unknown) once every field is known good.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// `sentence-transformers/all-MiniLM-L6-v2` (alias `all-minilm-l6-v2`, fp32) or
    /// `all-minilm-l6-v2-int8` (int8 weights), in any letter case; any other name is a 404.
    #[schema(examples(
        "all-minilm-l6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
        "all-minilm-l6-v2-int8"
    ))]
    #[serde(deserialize_with = "fields::text")]
    pub model: String,
    #[schema(schema_with = embedding_input_schema)]
    pub input: EmbeddingInput,
    #[schema(schema_with = encoding_format_schema)]
    #[serde(default, deserialize_with = "encoding_format")]
    pub encoding_format: EncodingFormat,
    /// Keep only the first N dimensions (then re-normalize).
    #[serde(default, deserialize_with = "fields::dimensions")]
    #[schema(minimum = 1, maximum = 384)]
    pub dimensions: Option<usize>,
    /// Truncate inputs to the model's 256 tokens (as sentence-transformers does). With `false`,
    /// an over-long input is a 422 that says how many tokens it had.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
    #[serde(default, rename = "user", deserialize_with = "fields::optional_text")]
    /// Accepted and ignored.
    #[schema(rename = "user")]
    pub _user: Option<String>,
}

impl Body for EmbeddingsRequest {
    const REQUIRED: &'static [&'static str] = &["input", "model"];
}

impl EmbeddingsRequest {
    pub fn from_request(request: &Request) -> Result<Self, ApiError> {
        read(request)
    }

    pub fn inputs(&self) -> Inputs<'_> {
        let inputs = self.input.items.iter().map(OwnedInput::as_input).collect();
        Inputs::new(vec![InputField::new("input", self.input.list, inputs)])
    }
}

const INPUT_SHAPES: &str =
    "a string, an array of strings, an array of token ids or an array of arrays of token ids";

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;

        impl<'de> Visitor<'de> for Shape {
            type Value = EmbeddingInput;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(INPUT_SHAPES)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<EmbeddingInput, E> {
                Ok(EmbeddingInput {
                    items: vec![OwnedInput::Text(text.to_owned())],
                    list: false,
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingInput, A::Error> {
                let Some(first) = seq.next_element::<First>()? else {
                    return Err(de::Error::custom("must not be an empty array"));
                };
                let mut items = Vec::new();
                let list = match first {
                    First::Text(text) => {
                        items.push(OwnedInput::Text(text));
                        while let Some(Text(text)) = seq.next_element()? {
                            items.push(OwnedInput::Text(text));
                        }
                        true
                    }
                    First::TokenId(id) => {
                        // One input of token ids: a bad one is named by its position.
                        let mut ids = vec![id];
                        while let Some(value) = seq.next_element::<Value>()? {
                            ids.push(value);
                        }
                        items.push(OwnedInput::Tokens(token_ids(&ids)?));
                        false
                    }
                    First::TokenIds(ids) => {
                        items.push(OwnedInput::Tokens(ids));
                        while let Some(TokenIds(ids)) = seq.next_element()? {
                            items.push(OwnedInput::Tokens(ids));
                        }
                        true
                    }
                    First::Other(kinds) => {
                        let shapes = format!("{INPUT_SHAPES}, not an array of {kinds}");
                        return Err(de::Error::custom(format!("must be {shapes}")));
                    }
                };
                Ok(EmbeddingInput { items, list })
            }

            reject!(INPUT_SHAPES; bool, number, null, map);
        }

        deserializer.deserialize_any(Shape)
    }
}

/// The first item of an `input` array, which decides what the others must be.
enum First {
    Text(String),
    /// Checked with the rest of its array.
    TokenId(Value),
    TokenIds(Vec<u32>),
    /// What an array of these is called in an error: "nulls", "booleans", "objects".
    Other(&'static str),
}

impl<'de> Deserialize<'de> for First {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(text) => Self::Text(text),
            number @ Value::Number(_) => Self::TokenId(number),
            array @ Value::Array(_) => Self::TokenIds(TokenIds::from_value(array)?.0),
            Value::Null => Self::Other("nulls"),
            Value::Bool(_) => Self::Other("booleans"),
            Value::Object(_) => Self::Other("objects"),
        })
    }
}

/// One input of token ids, as an item of a list of them.
struct TokenIds(Vec<u32>);

impl TokenIds {
    fn from_value<E: de::Error>(value: Value) -> Result<Self, E> {
        match value {
            Value::Array(ids) if ids.is_empty() => Err(E::custom("must not be an empty array")),
            Value::Array(ids) => token_ids(&ids).map(Self),
            other => Err(wrong_type("an array of token ids", &other)),
        }
    }
}

impl<'de> Deserialize<'de> for TokenIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value(Value::deserialize(deserializer)?)
    }
}

fn encoding_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<EncodingFormat, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None => Ok(EncodingFormat::Float),
        Some(Value::String(format)) if format == "float" => Ok(EncodingFormat::Float),
        Some(Value::String(format)) if format == "base64" => Ok(EncodingFormat::Base64),
        Some(other) => Err(must_be(
            r#""float" or "base64""#,
            &excerpt(&other.to_string()),
        )),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    #[schema(value_type = String, pattern = "^list$")]
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    #[schema(value_type = String)]
    pub model: &'static str,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingData {
    #[schema(value_type = String, pattern = "^embedding$")]
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
                // Little-endian f32, as OpenAI's clients decode it: the target is little-endian.
                let bytes: &[u8] = bytemuck::cast_slice(&vector);
                Self::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
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

    /// Reads the request, then looks its model up, as the handler does.
    fn parse(fields: Value) -> Result<EmbeddingsRequest, ApiError> {
        let mut body = json!({"model": MODEL_ALIAS, "input": "hi"});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let request = EmbeddingsRequest::from_request(&post(body))?;
        find_model(models(), &request.model)?;
        Ok(request)
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
            assert!(parse(json!({"model": model})).is_ok(), "{model}");
            assert_eq!(
                find_model(models(), model).unwrap().kind,
                ModelKind::Fp32,
                "{model}"
            );
        }
        for model in ["all-minilm-l6-v2-int8", "ALL-MiniLM-L6-v2-INT8"] {
            assert_eq!(
                find_model(models(), model).unwrap().kind,
                ModelKind::Int8,
                "{model}"
            );
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
            EmbeddingsRequest::from_request(&post(json!({"model": MODEL_ID}))).unwrap_err();
        assert_eq!(param(missing), (400, Some("input")));
        let missing = EmbeddingsRequest::from_request(&post(json!({"input": "hi"}))).unwrap_err();
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
        let ids: Vec<_> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone())
            .collect();
        assert_eq!(ids, [json!(MODEL_ID), json!("all-minilm-l6-v2-int8")]);
        assert_eq!(
            list["data"][0],
            json!({"id": MODEL_ID, "object": "model", "created": 1_630_281_600, "owned_by": "sentence-transformers"})
        );
    }
}
