//! Cohere's rerank API (`POST /v1/rerank`, `POST /v2/rerank`), the shape Jina, Infinity and vLLM
//! accept too, so that their clients rank documents here unchanged. The scores come from the
//! bi-encoder this service serves (cosine similarity of unit vectors), not from a cross-encoder.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::ToSchema;

use super::fields::{self, reject};
use super::json::{read, type_name, whole_number, wrong_type, Body};
use crate::embed::model::{Model, MAX_TOKENS};
use crate::http::error::{ApiError, FieldRef};
use crate::http::Request;

/// One document to rank: a string, or an object with a string `text` (whose other fields come
/// back with it when `return_documents` is set).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub text: String,
    /// The object as sent, when the document was one.
    pub object: Option<Map<String, Value>>,
}

impl Document {
    /// What `return_documents` answers: the object as sent, or `{"text"}`.
    pub fn returned(&self) -> Value {
        match &self.object {
            Some(object) => Value::Object(object.clone()),
            None => serde_json::json!({ "text": self.text }),
        }
    }
}

const A_DOCUMENT: &str = "a string or an object with a string `text`";

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Self { text, object: None }),
            Value::Object(object) => match object.get("text") {
                Some(Value::String(text)) => Ok(Self {
                    text: text.clone(),
                    object: Some(object),
                }),
                Some(other) => Err(de::Error::custom(format!(
                    "must have a string `text`, not {}",
                    type_name(other)
                ))),
                None => Err(de::Error::custom("must have a string `text`")),
            },
            other => Err(wrong_type(A_DOCUMENT, &other)),
        }
    }
}

/// `documents`: a list whose items are read one by one, so that an error names the item.
#[derive(Debug, Clone, PartialEq)]
pub struct Documents(pub Vec<Document>);

impl<'de> Deserialize<'de> for Documents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;

        const AN_ARRAY: &str = "an array of documents (strings or objects with a string `text`)";

        impl<'de> Visitor<'de> for Items {
            type Value = Documents;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(AN_ARRAY)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Documents, A::Error> {
                let mut documents = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(document) = seq.next_element()? {
                    documents.push(document);
                }
                Ok(Documents(documents))
            }

            reject!(AN_ARRAY; bool, number, str, null, map);
        }

        deserializer.deserialize_any(Items)
    }
}

impl Documents {
    pub fn texts(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|document| document.text.clone())
            .collect()
    }
}

fn documents_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(
            OneOfBuilder::new()
                .item(Object::with_type(Type::String))
                .item(
                    ObjectBuilder::new()
                        .property("text", Object::with_type(Type::String))
                        .required("text")
                        .additional_properties(Some(AdditionalProperties::FreeForm(true))),
                ),
        )
        .min_items(Some(1))
        .description(Some(
            "The documents to rank: strings, or objects with a string `text` (their other fields \
             come back with them under `return_documents`). At most `max_inputs` (2048 by \
             default); each is truncated to the model's 256 tokens.",
        ))
}

fn top_n_schema() -> ObjectBuilder {
    fields::whole_number_schema(
        1,
        "How many of the best documents to answer; all of them when absent. At most the number \
         of documents.",
    )
}

fn max_chunks_per_doc_schema() -> ObjectBuilder {
    fields::whole_number_schema(
        1,
        "Accepted: a document is never split, so it makes one chunk whatever the value.",
    )
}

fn max_tokens_per_doc_schema() -> ObjectBuilder {
    fields::whole_number_schema(
        MAX_TOKENS as u64,
        "At least 256: documents are truncated to the model's 256 tokens, which no smaller \
         limit can change.",
    )
}

fn priority_schema() -> ObjectBuilder {
    fields::whole_number_schema(0, "Accepted and ignored: requests are served as they come.")
}

/// `rank_fields`' schema: `text` is the only field ranked on.
fn rank_fields_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["text"])),
        )
        .description(Some(
            "Only `[\"text\"]` (the default): documents are ranked by their `text`.",
        ))
}

/// `POST /v1/rerank`, Cohere's v1 shape.
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = CohereRerankRequest)]
pub struct RerankRequest {
    /// A served model's id or alias (`all-minilm-l6-v2`, `all-minilm-l6-v2-int8`); the
    /// `default_model` variable's when absent. Any other name is a 404.
    #[schema(value_type = Option<String>, examples("all-minilm-l6-v2"))]
    #[serde(default, deserialize_with = "fields::optional_text")]
    pub model: Option<String>,
    /// What the documents are ranked for; not empty.
    #[serde(deserialize_with = "fields::text")]
    #[schema(min_length = 1, pattern = r"\S")]
    pub query: String,
    #[schema(schema_with = documents_schema)]
    pub documents: Documents,
    #[schema(schema_with = top_n_schema)]
    #[serde(default, deserialize_with = "fields::optional_count")]
    pub top_n: Option<u64>,
    /// Each result then carries its `document` (`{"text"}`, or the object as sent).
    #[schema(value_type = Option<bool>, default = false)]
    #[serde(default, deserialize_with = "fields::flag_or_false")]
    pub return_documents: bool,
    #[schema(schema_with = rank_fields_schema)]
    #[serde(default, deserialize_with = "fields::optional_texts")]
    pub rank_fields: Option<Vec<String>>,
    #[schema(schema_with = max_chunks_per_doc_schema)]
    #[serde(default, deserialize_with = "fields::optional_count")]
    pub max_chunks_per_doc: Option<u64>,
}

impl Body for RerankRequest {
    const REQUIRED: &'static [&'static str] = &["query", "documents"];
}

/// `relevant_spans`' schema: `{"mode": "disabled"}` only.
fn relevant_spans_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property(
            "mode",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["disabled"])),
        )
        .required("mode")
        .description(Some(
            "Only `{\"mode\": \"disabled\"}`: a bi-encoder scores whole documents and finds no \
             spans.",
        ))
}

/// `POST /v2/rerank`, Cohere's v2 shape (and vLLM's, with `return_documents`).
#[derive(Debug, PartialEq, Deserialize, ToSchema)]
#[schema(as = CohereRerankV2Request)]
pub struct RerankV2Request {
    /// A served model's id or alias (`all-minilm-l6-v2`, `all-minilm-l6-v2-int8`); the
    /// `default_model` variable's when absent. Any other name is a 404.
    #[schema(value_type = Option<String>, examples("all-minilm-l6-v2"))]
    #[serde(default, deserialize_with = "fields::optional_text")]
    pub model: Option<String>,
    /// What the documents are ranked for; not empty.
    #[serde(deserialize_with = "fields::text")]
    #[schema(min_length = 1, pattern = r"\S")]
    pub query: String,
    #[schema(schema_with = documents_schema)]
    pub documents: Documents,
    #[schema(schema_with = top_n_schema)]
    #[serde(default, deserialize_with = "fields::optional_count")]
    pub top_n: Option<u64>,
    #[schema(schema_with = max_tokens_per_doc_schema)]
    #[serde(default, deserialize_with = "fields::optional_count")]
    pub max_tokens_per_doc: Option<u64>,
    /// An extension (vLLM's, Jina's): each result then carries its `document`.
    #[schema(value_type = Option<bool>, default = false)]
    #[serde(default, deserialize_with = "fields::flag_or_false")]
    pub return_documents: bool,
    #[schema(schema_with = relevant_spans_schema)]
    #[serde(default)]
    pub relevant_spans: Option<Value>,
    #[schema(schema_with = priority_schema)]
    #[serde(default)]
    pub priority: Option<Value>,
}

impl Body for RerankV2Request {
    const REQUIRED: &'static [&'static str] = &["query", "documents"];
}

/// What both versions ask, checked: a query, documents to rank, how many results to answer.
#[derive(Debug, PartialEq)]
pub struct Rerank {
    pub model: Option<String>,
    pub query: String,
    pub documents: Documents,
    pub top_n: Option<usize>,
    pub return_documents: bool,
    /// `1` or `2`, for `meta.api_version`.
    pub api_version: &'static str,
}

impl Rerank {
    pub fn v1(request: &Request) -> Result<Self, ApiError> {
        let body: RerankRequest = read(request)?;
        if let Some(fields) = &body.rank_fields {
            if fields.iter().any(|field| field != "text") {
                return Err(ApiError::invalid(
                    FieldRef::whole("rank_fields"),
                    "may only name `text`: documents are ranked by their text",
                ));
            }
        }
        Self::checked(
            body.model,
            body.query,
            body.documents,
            body.top_n,
            body.return_documents,
            "1",
        )
    }

    pub fn v2(request: &Request) -> Result<Self, ApiError> {
        let body: RerankV2Request = read(request)?;
        if body
            .max_tokens_per_doc
            .is_some_and(|tokens| tokens < MAX_TOKENS as u64)
        {
            return Err(ApiError::invalid(
                FieldRef::whole("max_tokens_per_doc"),
                format!(
                    "must be at least {MAX_TOKENS}: documents are truncated to the model's \
                     {MAX_TOKENS} tokens"
                ),
            ));
        }
        if let Some(spans) = body
            .relevant_spans
            .as_ref()
            .filter(|spans| !spans.is_null())
        {
            if spans.get("mode").and_then(Value::as_str) != Some("disabled") {
                return Err(ApiError::invalid(
                    FieldRef::whole("relevant_spans"),
                    "must be `{\"mode\": \"disabled\"}`: a bi-encoder scores whole documents, \
                     not spans",
                ));
            }
        }
        if let Some(priority) = body.priority.as_ref().filter(|p| !p.is_null()) {
            if whole_number(priority).is_none() {
                return Err(ApiError::invalid(
                    FieldRef::whole("priority"),
                    "must be an integer of at least 0",
                ));
            }
        }
        Self::checked(
            body.model,
            body.query,
            body.documents,
            body.top_n,
            body.return_documents,
            "2",
        )
    }

    /// Refuses an empty query, no documents, and a `top_n` beyond them.
    fn checked(
        model: Option<String>,
        query: String,
        documents: Documents,
        top_n: Option<u64>,
        return_documents: bool,
        api_version: &'static str,
    ) -> Result<Self, ApiError> {
        if query.trim().is_empty() {
            return Err(ApiError::invalid(
                FieldRef::whole("query"),
                "must not be empty",
            ));
        }
        if documents.0.is_empty() {
            return Err(ApiError::EmptyList("documents"));
        }
        let count = documents.0.len();
        let top_n = match top_n {
            Some(n) if n > count as u64 => {
                return Err(ApiError::invalid(
                    FieldRef::whole("top_n"),
                    format!("must be at most the number of documents ({count}), not {n}"),
                ))
            }
            n => n.map(|n| n as usize),
        };
        Ok(Self {
            model,
            query,
            documents,
            top_n,
            return_documents,
            api_version,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CohereRerankResponse)]
pub struct RerankResponse {
    /// The request's `X-Request-Id` (sbert-host gives every request one), or an id derived from
    /// the request's time and body.
    pub id: String,
    /// The best `top_n` documents, highest `relevance_score` first (ties in document order).
    pub results: Vec<RerankResult>,
    #[schema(value_type = String)]
    pub model: &'static str,
    pub meta: Meta,
    /// Jina's, vLLM's and Infinity's token counts: the tokens the model saw for the query and
    /// every document.
    pub usage: RerankUsage,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CohereRerankResult)]
pub struct RerankResult {
    /// The document's position in `documents`.
    pub index: usize,
    /// The cosine similarity of the query's and the document's embeddings, from -1 to 1 (what
    /// `/v1/encode/cos_sim_weight` answers for the two texts): semantic similarity from a
    /// bi-encoder, not a cross-encoder's calibrated relevance.
    pub relevance_score: f32,
    /// With `return_documents`: `{"text"}`, or the document object as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub document: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CohereMeta)]
pub struct Meta {
    pub api_version: ApiVersion,
    pub tokens: MetaTokens,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CohereApiVersion)]
pub struct ApiVersion {
    #[schema(value_type = String)]
    pub version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CohereMetaTokens)]
pub struct MetaTokens {
    pub input_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RerankUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

impl RerankResponse {
    pub fn new(
        id: String,
        model: &Model,
        api_version: &'static str,
        results: Vec<RerankResult>,
        tokens: usize,
    ) -> Self {
        Self {
            id,
            results,
            model: model.id,
            meta: Meta {
                api_version: ApiVersion {
                    version: api_version,
                },
                tokens: MetaTokens {
                    input_tokens: tokens,
                },
            },
            usage: RerankUsage {
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
    use crate::http::Method;

    fn post(body: Value) -> Request {
        Request {
            method: Method::Post,
            path: "/v1/rerank".into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    fn v1(body: Value) -> Result<Rerank, ApiError> {
        Rerank::v1(&post(body))
    }

    fn v2(body: Value) -> Result<Rerank, ApiError> {
        Rerank::v2(&post(body))
    }

    fn at(error: ApiError) -> (u16, Option<&'static str>, Option<usize>) {
        let status = error.status();
        match error {
            ApiError::Unprocessable { at, .. } | ApiError::TooLarge { at, .. } => {
                (status, at.map(|at| at.field), at.and_then(|at| at.item))
            }
            ApiError::MissingFields(fields) => (status, fields.first().copied(), None),
            ApiError::EmptyList(field) => (status, Some(field), None),
            _ => (status, None, None),
        }
    }

    #[test]
    fn documents_are_strings_or_objects_with_text() {
        let parsed = v1(json!({
            "query": "q",
            "documents": ["a", {"text": "b", "title": "B", "year": 2024}],
        }))
        .unwrap();
        assert_eq!(parsed.documents.texts(), ["a", "b"]);
        assert_eq!(parsed.documents.0[0].returned(), json!({"text": "a"}));
        assert_eq!(
            parsed.documents.0[1].returned(),
            json!({"text": "b", "title": "B", "year": 2024})
        );
        assert_eq!(
            (parsed.top_n, parsed.return_documents, parsed.model),
            (None, false, None)
        );
    }

    #[test]
    fn a_document_that_is_not_a_string_is_named_by_its_item() {
        for bad in [
            json!(3),
            json!(null),
            json!(["a"]),
            json!({"title": "no text"}),
            json!({"text": 3}),
        ] {
            let error = v1(json!({"query": "q", "documents": ["ok", bad.clone()]})).unwrap_err();
            assert_eq!(at(error), (422, Some("documents"), Some(1)), "{bad}");
        }
        let not_a_list = v1(json!({"query": "q", "documents": "a"})).unwrap_err();
        assert_eq!(at(not_a_list), (422, Some("documents"), None));
    }

    #[test]
    fn empty_documents_and_top_n_out_of_range_are_refused() {
        let empty = v1(json!({"query": "q", "documents": []})).unwrap_err();
        assert_eq!(at(empty), (400, Some("documents"), None));
        for top_n in [json!(0), json!(-1), json!(1.5), json!("2"), json!(4)] {
            let error = v2(json!({"query": "q", "documents": ["a", "b", "c"], "top_n": top_n}))
                .unwrap_err();
            assert_eq!(at(error), (422, Some("top_n"), None), "{top_n}");
        }
        let three = v2(json!({"query": "q", "documents": ["a", "b", "c"], "top_n": 3})).unwrap();
        assert_eq!(three.top_n, Some(3));
    }

    #[test]
    fn the_query_is_required_and_not_empty() {
        let missing = v1(json!({"documents": ["a"]})).unwrap_err();
        assert_eq!(at(missing), (400, Some("query"), None));
        for query in [json!(""), json!("  "), json!(7)] {
            assert_eq!(
                at(v1(json!({"query": query, "documents": ["a"]})).unwrap_err()),
                (422, Some("query"), None),
                "{query}"
            );
        }
    }

    #[test]
    fn options_a_bi_encoder_cannot_honour_are_refused_and_the_rest_accepted() {
        let ok = v1(
            json!({"query": "q", "documents": ["a"], "rank_fields": ["text"],
                           "max_chunks_per_doc": 10, "return_documents": true, "model": "m"}),
        )
        .unwrap();
        assert_eq!(
            (ok.return_documents, ok.model.as_deref(), ok.api_version),
            (true, Some("m"), "1")
        );
        let fields = v1(json!({"query": "q", "documents": ["a"], "rank_fields": ["title"]}));
        assert_eq!(at(fields.unwrap_err()), (422, Some("rank_fields"), None));
        let ok = v2(
            json!({"query": "q", "documents": ["a"], "max_tokens_per_doc": 4096,
                           "relevant_spans": {"mode": "disabled"}, "priority": 0}),
        )
        .unwrap();
        assert_eq!(ok.api_version, "2");
        let short = v2(json!({"query": "q", "documents": ["a"], "max_tokens_per_doc": 100}));
        assert_eq!(
            at(short.unwrap_err()),
            (422, Some("max_tokens_per_doc"), None)
        );
        for spans in [json!({"mode": "enabled"}), json!("disabled")] {
            let error = v2(json!({"query": "q", "documents": ["a"], "relevant_spans": spans}));
            assert_eq!(at(error.unwrap_err()), (422, Some("relevant_spans"), None));
        }
        let priority = v2(json!({"query": "q", "documents": ["a"], "priority": -1}));
        assert_eq!(at(priority.unwrap_err()), (422, Some("priority"), None));
    }

    #[test]
    fn the_response_has_cohere_s_shape_with_usage() {
        let model = Model::new(crate::embed::model::ModelKind::Fp32, String::new());
        let response = RerankResponse::new(
            "req-1".into(),
            &model,
            "2",
            vec![RerankResult {
                index: 1,
                relevance_score: 0.5,
                document: None,
            }],
            12,
        );
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({
                "id": "req-1",
                "results": [{"index": 1, "relevance_score": 0.5}],
                "model": "sentence-transformers/all-MiniLM-L6-v2",
                "meta": {"api_version": {"version": "2"}, "tokens": {"input_tokens": 12}},
                "usage": {"prompt_tokens": 12, "total_tokens": 12},
            })
        );
    }
}
