//! text-embeddings-inference's (TEI's) routes, with its request and response shapes, so that its
//! clients (huggingface_hub's `InferenceClient`, LangChain's TEI embeddings) work here unchanged:
//! `POST /embed` (and `POST /`), `POST /rerank`, `POST /tokenize`, `POST /decode`, `GET /info`.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::ToSchema;

use super::fields::{self, reject, token_ids, Direction, TextOrTexts};
use super::inputs::Inputs;
use super::json::{from_object, wrong_type, Body};
use crate::build_info::BUILD;
use crate::config::Config;
use crate::embed::model::{Model, ModelKind};
use crate::embed::tokenize::{TokenInfo, Truncation, VOCAB_SIZE};
use crate::http::error::{ApiError, FieldRef};

/// A string, or a non-empty array of strings: TEI's `inputs`.
fn inputs_schema() -> OneOfBuilder {
    fields::text_or_texts_schema().description(Some(
        "A string or an array of strings; at most `max_client_batch_size` (`/info`) of them.",
    ))
}

/// `inputs` checked: a list needs at least one item.
fn non_empty(inputs: &TextOrTexts) -> Result<(), ApiError> {
    match inputs {
        TextOrTexts::Many(texts) if texts.is_empty() => Err(ApiError::EmptyList("inputs")),
        _ => Ok(()),
    }
}

/// `prompt_name`'s schema: `null`, the only value this model's (absent) prompts allow.
fn prompt_name_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Null)
        .description(Some(
            "Only `null`: the model has no prompts in its sentence-transformers configuration.",
        ))
}

/// TEI's `prompt_name`: this model has no prompts, so only `null` is accepted.
fn no_prompt(prompt_name: &Option<String>) -> Result<(), ApiError> {
    match prompt_name {
        None => Ok(()),
        Some(_) => Err(ApiError::invalid(
            FieldRef::whole("prompt_name"),
            "must be null: the model has no prompts in its sentence-transformers configuration",
        )),
    }
}

/// `POST /embed` (and `POST /`) with TEI's `inputs`.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = TeiEmbedRequest)]
pub struct EmbedRequest {
    #[schema(schema_with = inputs_schema)]
    pub inputs: TextOrTexts,
    /// Truncate inputs over the model's 256 tokens (`/info`'s `auto_truncate` when `null`: true).
    /// With `false`, an over-long input is a 422 that says how many tokens it had.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
    #[schema(schema_with = fields::direction_schema)]
    #[serde(default, deserialize_with = "fields::direction")]
    pub truncation_direction: Direction,
    #[schema(schema_with = prompt_name_schema)]
    #[serde(default, deserialize_with = "fields::optional_text")]
    pub prompt_name: Option<String>,
    /// Accepted either way: the model's last module normalizes, so its embeddings are unit
    /// vectors whether or not this adds normalization.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub normalize: bool,
    /// Keep only the first N dimensions (then re-normalize).
    #[schema(value_type = Option<usize>, minimum = 1, maximum = 384)]
    #[serde(default, deserialize_with = "fields::dimensions")]
    pub dimensions: Option<usize>,
}

impl Body for EmbedRequest {
    const REQUIRED: &'static [&'static str] = &["inputs"];
}

impl EmbedRequest {
    pub fn from_object(object: serde_json::Map<String, Value>) -> Result<Self, ApiError> {
        let request: Self = from_object(object)?;
        non_empty(&request.inputs)?;
        no_prompt(&request.prompt_name)?;
        Ok(request)
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![self.inputs.field("inputs")])
    }

    pub fn truncation(&self) -> Truncation {
        self.truncation_direction.truncation(self.truncate)
    }
}

/// TEI's `/embed` answer: one vector per input, in order (a list even for one string).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiEmbedResponse)]
pub struct EmbedResponse(pub Vec<Vec<f32>>);

/// `POST /rerank`.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = TeiRerankRequest)]
pub struct RerankRequest {
    #[serde(deserialize_with = "fields::text")]
    pub query: String,
    /// The texts to rank (at least one, at most `max_client_batch_size`).
    #[schema(min_items = 1)]
    #[serde(deserialize_with = "fields::texts")]
    pub texts: Vec<String>,
    /// Truncate inputs over the model's 256 tokens (true when `null`).
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub truncate: bool,
    #[schema(schema_with = fields::direction_schema)]
    #[serde(default, deserialize_with = "fields::direction")]
    pub truncation_direction: Direction,
    /// Accepted either way: a bi-encoder has no logits, so the score is always the cosine
    /// similarity (TEI's cross-encoders answer the logit here instead of its sigmoid).
    #[schema(value_type = Option<bool>, default = false)]
    #[serde(default, deserialize_with = "fields::flag_or_false")]
    pub raw_scores: bool,
    /// Each rank then carries its `text`.
    #[schema(value_type = Option<bool>, default = false)]
    #[serde(default, deserialize_with = "fields::flag_or_false")]
    pub return_text: bool,
}

impl Body for RerankRequest {
    const REQUIRED: &'static [&'static str] = &["query", "texts"];
}

impl RerankRequest {
    pub fn checked(self) -> Result<Self, ApiError> {
        if self.texts.is_empty() {
            return Err(ApiError::EmptyList("texts"));
        }
        Ok(self)
    }

    pub fn truncation(&self) -> Truncation {
        self.truncation_direction.truncation(self.truncate)
    }
}

/// One ranked text.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiRank)]
pub struct Rank {
    /// The text's position in `texts`.
    pub index: usize,
    /// With `return_text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The cosine similarity of the query's and the text's embeddings, from -1 to 1 (what
    /// `/v1/encode/cos_sim_weight` answers): a bi-encoder's semantic similarity.
    pub score: f32,
}

/// TEI's `/rerank` answer: every text, highest score first (ties in `texts` order).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiRerankResponse)]
pub struct RerankResponse(pub Vec<Rank>);

/// `POST /tokenize`.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = TeiTokenizeRequest)]
pub struct TokenizeRequest {
    #[schema(schema_with = inputs_schema)]
    pub inputs: TextOrTexts,
    /// Frame each input with `[CLS]` and `[SEP]`, as the model sees it.
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub add_special_tokens: bool,
    #[schema(schema_with = prompt_name_schema)]
    #[serde(default, deserialize_with = "fields::optional_text")]
    pub prompt_name: Option<String>,
}

impl Body for TokenizeRequest {
    const REQUIRED: &'static [&'static str] = &["inputs"];
}

impl TokenizeRequest {
    pub fn checked(self) -> Result<Self, ApiError> {
        non_empty(&self.inputs)?;
        no_prompt(&self.prompt_name)?;
        Ok(self)
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs::new(vec![self.inputs.field("inputs")])
    }
}

/// One token of an input, as TEI describes it.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = TeiToken)]
pub struct SimpleToken {
    pub id: u32,
    /// The part of the input the token was read from (`[CLS]`, `[SEP]` for special tokens).
    pub text: String,
    /// Added by the tokenizer, not read from the input.
    pub special: bool,
    /// Where the token starts in the input, in characters (Unicode scalar values); `null` for
    /// special tokens.
    pub start: Option<usize>,
    /// Where it ends, in characters, exclusive.
    pub stop: Option<usize>,
}

impl SimpleToken {
    /// `token` of `text`: its spelling in the input, or the vocabulary's for special tokens.
    pub fn of(text: &str, token: TokenInfo) -> Self {
        match token.span {
            Some(span) => Self {
                id: token.id,
                text: text.get(span.bytes).unwrap_or_default().to_owned(),
                special: token.special,
                start: Some(span.chars.start),
                stop: Some(span.chars.end),
            },
            None => Self {
                id: token.id,
                text: token.token,
                special: token.special,
                start: None,
                stop: None,
            },
        }
    }
}

/// TEI's `/tokenize` answer: per input, its tokens (a list of lists even for one string).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiTokenizeResponse)]
pub struct TokenizeResponse(pub Vec<Vec<SimpleToken>>);

/// `ids`: one list of token ids, or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids(pub Vec<Vec<u32>>);

const IDS_SHAPES: &str = "an array of token ids or an array of arrays of token ids";

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;

        impl<'de> Visitor<'de> for Shape {
            type Value = Ids;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(IDS_SHAPES)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ids, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                if items.iter().all(Value::is_array) && !items.is_empty() {
                    // A list of lists: each checked as an item, named by its position.
                    return items
                        .iter()
                        .enumerate()
                        .map(|(index, ids)| match ids {
                            Value::Array(ids) => token_ids(ids).map_err(|error: A::Error| {
                                de::Error::custom(format!("item {index} {error}"))
                            }),
                            other => Err(wrong_type("an array of token ids", other)),
                        })
                        .collect::<Result<_, _>>()
                        .map(Ids);
                }
                token_ids(&items).map(|ids| Ids(vec![ids]))
            }

            reject!(IDS_SHAPES; bool, number, str, null, map);
        }

        deserializer.deserialize_any(Shape)
    }
}

fn ids_schema() -> OneOfBuilder {
    let id = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(VOCAB_SIZE - 1))
    };
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(id()).min_items(Some(1)))
        .item(
            ArrayBuilder::new()
                .items(ArrayBuilder::new().items(id()).min_items(Some(1)))
                .min_items(Some(1)),
        )
        .description(Some(
            "Token ids of the model's vocabulary (0 to 30521): one list, or a list of lists.",
        ))
}

/// `POST /decode`.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = TeiDecodeRequest)]
pub struct DecodeRequest {
    #[schema(schema_with = ids_schema)]
    pub ids: Ids,
    /// Leave out special tokens (`[CLS]`, `[SEP]`, `[PAD]`, …).
    #[schema(value_type = Option<bool>, default = true)]
    #[serde(
        default = "fields::absent_means_true",
        deserialize_with = "fields::flag_or_true"
    )]
    pub skip_special_tokens: bool,
}

impl Body for DecodeRequest {
    const REQUIRED: &'static [&'static str] = &["ids"];
}

impl DecodeRequest {
    pub fn checked(self) -> Result<Self, ApiError> {
        if self.ids.0.iter().any(Vec::is_empty) {
            return Err(ApiError::EmptyList("ids"));
        }
        Ok(self)
    }
}

/// TEI's `/decode` answer: one text per id list (a list even for one).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiDecodeResponse)]
pub struct DecodeResponse(pub Vec<String>);

/// `GET /info`: TEI's fields for the model the TEI routes use (the `default_model` variable's),
/// then this service's own: the build, its backend and every served model. Nothing secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiInfo)]
pub struct Info {
    #[schema(value_type = String)]
    pub model_id: &'static str,
    /// TEI's Hugging Face revision; unknown here (`models[].digest` identifies the weights).
    #[schema(value_type = Option<String>)]
    pub model_sha: Option<&'static str>,
    /// `float32`, or `int8` for the int8 model.
    #[schema(value_type = String)]
    pub model_dtype: &'static str,
    #[schema(value_type = String)]
    pub served_model_name: &'static str,
    pub model_type: ModelType,
    /// Set by the host (`sbert-host up --max-concurrent-requests`), which the component cannot
    /// see: `null`.
    #[schema(value_type = Option<usize>)]
    pub max_concurrent_requests: Option<usize>,
    /// Tokens per input, `[CLS]` and `[SEP]` included.
    pub max_input_length: usize,
    /// The most tokens one request can make the model see: `max_client_batch_size` inputs of
    /// `max_input_length` tokens (the host batches requests together as it sees fit).
    pub max_batch_tokens: usize,
    /// No limit of its own: `null`.
    #[schema(value_type = Option<usize>)]
    pub max_batch_requests: Option<usize>,
    /// Inputs per request (the `max_inputs` variable).
    pub max_client_batch_size: usize,
    /// Inputs over `max_input_length` are truncated unless a request says `truncate: false`.
    pub auto_truncate: bool,
    /// Every request tokenizes in its own instance, so there is no pool: `null`.
    #[schema(value_type = Option<usize>)]
    pub tokenization_workers: Option<usize>,
    /// This service's version.
    #[schema(value_type = String)]
    pub version: &'static str,
    #[schema(value_type = Option<String>)]
    pub sha: Option<&'static str>,
    #[schema(value_type = Option<String>)]
    pub docker_label: Option<&'static str>,
    /// This component's build: `fast`, `spin-llm` or `portable`.
    #[schema(value_type = String)]
    pub build: &'static str,
    /// Where its inference runs: `wasi-nn`, `spin-llm` or `in-wasm`.
    #[schema(value_type = String)]
    pub backend: &'static str,
    /// Every model the service serves (`model` of the OpenAI and Cohere routes).
    pub models: Vec<ServedModel>,
}

/// TEI's `model_type` of an embedding model.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiModelType)]
pub struct ModelType {
    pub embedding: Pooling,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TeiPooling)]
pub struct Pooling {
    /// `mean`: the mean over the input's tokens, then L2 normalization.
    #[schema(value_type = String)]
    pub pooling: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServedModel {
    #[schema(value_type = String)]
    pub id: &'static str,
    #[schema(value_type = String)]
    pub alias: &'static str,
    pub dimensions: usize,
    pub max_input_length: usize,
    #[schema(value_type = String)]
    pub dtype: &'static str,
    /// The sha256 of the model's ONNX file (part of its cache keys); empty when not configured.
    pub digest: String,
    /// Whether it is the `default_model`, which the original and TEI routes use.
    pub default: bool,
}

fn dtype(model: &Model) -> &'static str {
    match model.kind {
        ModelKind::Fp32 => "float32",
        ModelKind::Int8 => "int8",
    }
}

impl Info {
    pub fn of(config: &Config) -> Self {
        let default = config.models.default_model();
        let max_inputs = config.limits.max_inputs;
        Self {
            model_id: default.id,
            model_sha: None,
            model_dtype: dtype(default),
            served_model_name: default.id,
            model_type: ModelType {
                embedding: Pooling { pooling: "mean" },
            },
            max_concurrent_requests: None,
            max_input_length: default.max_tokens,
            max_batch_tokens: max_inputs.saturating_mul(default.max_tokens),
            max_batch_requests: None,
            max_client_batch_size: max_inputs,
            auto_truncate: true,
            tokenization_workers: None,
            version: env!("CARGO_PKG_VERSION"),
            sha: None,
            docker_label: None,
            build: BUILD.name,
            backend: BUILD.backend,
            models: config
                .models
                .all()
                .iter()
                .map(|model| ServedModel {
                    id: model.id,
                    alias: model.alias,
                    dimensions: model.dimensions,
                    max_input_length: model.max_tokens,
                    dtype: dtype(model),
                    digest: model.digest.clone(),
                    default: model.id == default.id,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::tests::FakeVariables;
    use crate::config::{self};
    use crate::embed::tokenize::Span;

    fn object(value: Value) -> serde_json::Map<String, Value> {
        match value {
            Value::Object(object) => object,
            _ => panic!("not an object"),
        }
    }

    fn embed(body: Value) -> Result<EmbedRequest, ApiError> {
        EmbedRequest::from_object(object(body))
    }

    fn status_and_field(error: ApiError) -> (u16, Option<&'static str>) {
        let status = error.status();
        let field = match error {
            ApiError::Unprocessable { at, .. } | ApiError::TooLarge { at, .. } => {
                at.map(|at| at.field)
            }
            ApiError::MissingFields(fields) => fields.first().copied(),
            ApiError::EmptyList(field) => Some(field),
            _ => None,
        };
        (status, field)
    }

    #[test]
    fn embed_takes_a_string_or_a_list_and_tei_s_options() {
        let one = embed(json!({"inputs": "hi"})).unwrap();
        assert_eq!(one.inputs, TextOrTexts::One("hi".into()));
        assert_eq!(
            (one.truncation(), one.normalize, one.dimensions),
            (Truncation::Right, true, None)
        );
        let all = embed(json!({"inputs": ["a", "b"], "truncate": true,
                               "truncation_direction": "Left", "normalize": false,
                               "dimensions": 8, "prompt_name": null}))
        .unwrap();
        assert_eq!(all.truncation(), Truncation::Left);
        assert_eq!((all.normalize, all.dimensions), (false, Some(8)));
        let strict =
            embed(json!({"inputs": "x", "truncate": false, "truncation_direction": "left"}));
        assert_eq!(strict.unwrap().truncation(), Truncation::Refuse);
    }

    #[test]
    fn embed_refuses_what_tei_refuses() {
        for (body, expected) in [
            (json!({"inputs": []}), (400, Some("inputs"))),
            (json!({}), (400, Some("inputs"))),
            (json!({"inputs": [1]}), (422, Some("inputs"))),
            (json!({"inputs": null}), (422, Some("inputs"))),
            (
                json!({"inputs": "x", "truncation_direction": "up"}),
                (422, Some("truncation_direction")),
            ),
            (
                json!({"inputs": "x", "dimensions": 385}),
                (422, Some("dimensions")),
            ),
            (
                json!({"inputs": "x", "prompt_name": "query"}),
                (422, Some("prompt_name")),
            ),
            (
                json!({"inputs": "x", "normalize": "yes"}),
                (422, Some("normalize")),
            ),
        ] {
            assert_eq!(
                status_and_field(embed(body.clone()).unwrap_err()),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn ids_are_one_list_or_a_list_of_lists_of_vocabulary_ids() {
        let read = |value: Value| serde_json::from_value::<Ids>(value).map_err(|e| e.to_string());
        assert_eq!(read(json!([101, 102])), Ok(Ids(vec![vec![101, 102]])));
        assert_eq!(
            read(json!([[101], [7592, 2088]])),
            Ok(Ids(vec![vec![101], vec![7592, 2088]]))
        );
        assert_eq!(read(json!([])), Ok(Ids(vec![vec![]])));
        let outside = read(json!([[101], [30522]])).unwrap_err();
        assert!(
            outside.contains("item 1") && outside.contains("30521"),
            "{outside}"
        );
        for bad in [
            json!([-1]),
            json!(["a"]),
            json!("101"),
            json!([[1], 2]),
            json!([1.5]),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_spell_the_input_by_character_offsets() {
        let token = |span, special| TokenInfo {
            id: 1,
            token: "[CLS]".into(),
            special,
            span,
        };
        let text = "naïve café";
        let cafe = Span {
            chars: 6..10,
            bytes: 7..12,
        };
        assert_eq!(
            SimpleToken::of(text, token(Some(cafe), false)),
            SimpleToken {
                id: 1,
                text: "café".into(),
                special: false,
                start: Some(6),
                stop: Some(10)
            }
        );
        let special = SimpleToken::of(text, token(None, true));
        assert_eq!((special.text.as_str(), special.start), ("[CLS]", None));
    }

    #[test]
    fn info_names_the_default_model_and_every_served_one_without_secrets() {
        let config = FakeVariables::default()
            .with(config::API_KEYS, "secret-key")
            .with(config::JWT_SECRET, "jwt-secret-value")
            .with(config::MODEL_DIGEST, "sha256:fp32")
            .with(config::DEFAULT_MODEL, "all-minilm-l6-v2-int8")
            .config();
        let info = serde_json::to_value(Info::of(&config)).unwrap();
        assert_eq!(info["model_id"], "all-minilm-l6-v2-int8");
        assert_eq!(info["model_dtype"], "int8");
        assert_eq!(
            info["model_type"],
            json!({"embedding": {"pooling": "mean"}})
        );
        assert_eq!(info["max_input_length"], 256);
        assert_eq!(info["max_client_batch_size"], 2048);
        assert_eq!(info["max_batch_tokens"], 2048 * 256);
        assert_eq!(info["auto_truncate"], true);
        assert_eq!(info["build"], "fast");
        assert_eq!(info["backend"], "wasi-nn");
        assert_eq!(
            info["models"][0],
            json!({"id": "sentence-transformers/all-MiniLM-L6-v2", "alias": "all-minilm-l6-v2",
                   "dimensions": 384, "max_input_length": 256, "dtype": "float32",
                   "digest": "sha256:fp32", "default": false})
        );
        assert_eq!(info["models"][1]["default"], true);
        let text = info.to_string();
        assert!(!text.contains("secret"), "{text}");
    }
}
