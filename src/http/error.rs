//! Every way a request can fail, and the status and JSON body each one answers with, in the
//! shape of the API family the route belongs to.
//!
//! Original routes answer `{"code", "name", "description"}` like the service they replace; a
//! missing field also keeps the original validator's `"<field>": ["required field"]` entry,
//! which its clients read. OpenAI routes answer `{"error": {"message", "type", "param", "code"}}`,
//! Cohere's rerank routes `{"message"}` (what Cohere's API answers and its client keeps as the
//! error's body), and text-embeddings-inference's routes `{"error", "error_type"}` with TEI's
//! statuses (424 for an inference failure). Unexpected failures carry a fixed, safe message:
//! their detail goes to the log only.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::message::{Method, Response};
use crate::auth::AuthError;
use crate::backend::{InferError, InferErrorKind};

/// The original validator's message for a missing field.
const REQUIRED_FIELD: &str = "required field";

/// The API family a route belongs to, which decides the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The routes of the service we replace, and everything that is not OpenAI's.
    Original,
    /// `/v1/embeddings`, `/v1/models` and `/v1/tokenize`.
    OpenAi,
    /// Cohere's rerank API: `/v1/rerank`, `/v2/rerank`.
    Cohere,
    /// text-embeddings-inference's routes: `/embed`, `/rerank`, `/tokenize`, `/decode`, `/info`,
    /// `POST /`.
    Tei,
}

/// The request field an error is about: a whole field, or one item of a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef {
    pub field: &'static str,
    pub item: Option<usize>,
}

impl FieldRef {
    pub fn whole(field: &'static str) -> Self {
        Self { field, item: None }
    }

    pub fn item(field: &'static str, index: usize) -> Self {
        Self {
            field,
            item: Some(index),
        }
    }
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            None => write!(f, "`{}`", self.field),
            Some(index) => write!(f, "`{}` item {index}", self.field),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Required fields that are absent (or, for `query`, empty).
    #[error("missing fields: {0:?}")]
    MissingFields(Vec<&'static str>),
    /// A list field that needs at least one item has none.
    #[error("empty list: {0}")]
    EmptyList(&'static str),
    /// The request cannot be read: malformed JSON, invalid UTF-8. `field` is the top-level
    /// field whose value could not be read, when the parser got that far.
    #[error("malformed request: {problem}")]
    Malformed {
        field: Option<String>,
        problem: String,
    },
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] AuthError),
    #[error("not found: {0}")]
    NotFound(String),
    /// An OpenAI request named a model this service does not serve; `served` lists the
    /// served ones for the message.
    #[error("unknown model {requested:?}")]
    ModelNotFound { requested: String, served: String },
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String, allow: Vec<Method> },
    /// The body, the number of inputs or one input is over its configured limit.
    #[error("too large: {problem}")]
    TooLarge {
        at: Option<FieldRef>,
        problem: String,
    },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The JSON is well-formed but a value has the wrong type or is out of range.
    #[error("unprocessable: {problem}")]
    Unprocessable {
        at: Option<FieldRef>,
        problem: String,
    },
    /// A failure that is not the client's fault. `detail` goes to the log, never to the client.
    #[error("{kind}: {detail}")]
    Internal { kind: InternalKind, detail: String },
    /// A variable has an invalid value: the message names it and the problem (and never a
    /// secret's value), so that whoever deploys the service can fix it.
    #[error("{0}")]
    Misconfigured(String),
    /// `/health` found the service unable to serve (a model cannot embed); the message says which.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The inference service behind this one (the edge build's) failed: 503 with `Retry-After` while it
    /// cannot be reached, 429 with its `Retry-After` while it is overloaded, 502 when it refused the call
    /// or answered something unusable. The detail goes to the log, never to the client.
    #[error("{0}")]
    Upstream(InferError),
}

/// The kinds of unexpected failure a client may see, each with its fixed public message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalKind {
    Configuration,
    Tokenizer,
    Inference,
}

impl InternalKind {
    fn name(self) -> &'static str {
        match self {
            Self::Configuration => "configuration_error",
            Self::Tokenizer => "tokenizer_error",
            Self::Inference => "inference_error",
        }
    }

    fn public_message(self) -> &'static str {
        match self {
            Self::Configuration => "The service is not configured correctly.",
            Self::Tokenizer => "The text could not be tokenized.",
            Self::Inference => "The model could not encode the text.",
        }
    }
}

impl fmt::Display for InternalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ApiError {
    /// A backend's failure: an internal error, or the inference service's ([`Self::Upstream`]).
    pub fn inference(error: InferError) -> Self {
        match error.kind {
            InferErrorKind::Failed => {
                Self::internal(InternalKind::Inference, format!("inference: {error}"))
            }
            _ => Self::Upstream(error),
        }
    }

    pub fn internal(kind: InternalKind, detail: impl fmt::Display) -> Self {
        Self::Internal {
            kind,
            detail: detail.to_string(),
        }
    }

    /// A 422 about `at`, e.g. `invalid(FieldRef::whole("top_k"), "must be an integer ≥ 1")`.
    pub fn invalid(at: FieldRef, problem: impl Into<String>) -> Self {
        Self::Unprocessable {
            at: Some(at),
            problem: problem.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::MissingFields(_) | Self::EmptyList(_) | Self::Malformed { .. } => 400,
            Self::Unauthorized(_) => 401,
            Self::NotFound(_) | Self::ModelNotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::TooLarge { .. } => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Unprocessable { .. } => 422,
            Self::Internal { .. } => 500,
            Self::Misconfigured(_) | Self::NotReady(_) => 503,
            Self::Upstream(error) => match error.kind {
                InferErrorKind::Overloaded { .. } => 429,
                InferErrorKind::BadGateway => 502,
                InferErrorKind::Unavailable { .. } => 503,
                InferErrorKind::Failed => 500,
            },
        }
    }

    /// The `Retry-After` seconds of an answer that asks the client to come back.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Upstream(InferError {
                kind:
                    InferErrorKind::Unavailable {
                        retry_after_seconds,
                    }
                    | InferErrorKind::Overloaded {
                        retry_after_seconds,
                    },
                ..
            }) => Some(*retry_after_seconds),
            _ => None,
        }
    }

    /// The status in `family`'s API: text-embeddings-inference answers an inference failure with
    /// 424 (its backend is a failed dependency); every other status is the same in all families.
    pub fn status_in(&self, family: Family) -> u16 {
        match (family, self) {
            (
                Family::Tei,
                Self::Internal {
                    kind: InternalKind::Tokenizer | InternalKind::Inference,
                    ..
                },
            ) => 424,
            _ => self.status(),
        }
    }

    /// What went wrong, for the client; never the detail of an internal failure.
    fn description(&self) -> String {
        match self {
            Self::EmptyList(field) => format!("`{field}` must not be empty."),
            Self::Internal { kind, .. } => kind.public_message().to_owned(),
            Self::Upstream(error) => upstream(error.kind).1.to_owned(),
            Self::MissingFields(fields) => match fields.as_slice() {
                [field] => format!("`{field}` is a required field."),
                fields => format!("These fields are required: {}.", quoted_list(fields)),
            },
            Self::Unauthorized(reason) => reason.to_string(),
            Self::ModelNotFound { requested, served } => format!(
                "The model `{}` does not exist; this service serves {served}.",
                excerpt(requested),
            ),
            Self::Misconfigured(problem) => format!("{CONFIGURATION_PROBLEM}: {problem}."),
            Self::NotReady(problem) => problem.clone(),
            Self::MethodNotAllowed { method, allow } => format!(
                "The method {method} is not allowed for this URL; allowed: {}.",
                method_list(allow)
            ),
            Self::TooLarge { at, problem } | Self::Unprocessable { at, problem } => match at {
                Some(at) => format!("{at} {problem}"),
                None => problem.clone(),
            },
            Self::Malformed { field, problem } => match field {
                Some(field) => format!("{problem} (in `{field}`)"),
                None => problem.clone(),
            },
            Self::NotFound(description) | Self::UnsupportedMediaType(description) => {
                description.clone()
            }
        }
    }

    /// The OpenAI `param`: the field the error is about.
    fn param(&self) -> Option<&str> {
        match self {
            Self::MissingFields(fields) => fields.first().copied(),
            Self::EmptyList(field) => Some(field),
            Self::Malformed { field, .. } => field.as_deref(),
            Self::ModelNotFound { .. } => Some("model"),
            Self::TooLarge { at, .. } | Self::Unprocessable { at, .. } => at.map(|at| at.field),
            _ => None,
        }
    }

    /// The OpenAI `code`, where OpenAI's API has one for the situation.
    fn openai_code(&self) -> Option<&'static str> {
        match self {
            Self::Unauthorized(_) => Some("invalid_api_key"),
            Self::ModelNotFound { .. } => Some("model_not_found"),
            Self::Internal { kind, .. } => Some(kind.name()),
            Self::Misconfigured(_) => Some(InternalKind::Configuration.name()),
            Self::NotReady(_) => Some(NOT_READY),
            Self::Upstream(error) => Some(upstream(error.kind).0),
            _ => None,
        }
    }

    /// TEI's `error_type`. TEI has no word for a refused credential (it answers 401 without a
    /// body), so that one is `Unauthorized`.
    fn tei_error_type(&self) -> &'static str {
        match self {
            Self::EmptyList(_) => "Empty",
            Self::Unauthorized(_) => "Unauthorized",
            Self::Internal {
                kind: InternalKind::Tokenizer,
                ..
            } => "Tokenizer",
            Self::Internal {
                kind: InternalKind::Inference,
                ..
            } => "Backend",
            Self::Internal {
                kind: InternalKind::Configuration,
                ..
            }
            | Self::Misconfigured(_)
            | Self::NotReady(_) => "Unhealthy",
            _ => "Validation",
        }
    }

    pub fn into_response(self, family: Family) -> Response {
        let status = self.status_in(family);
        let response = match (family, &self) {
            (Family::Original, Self::Internal { kind, .. }) => Response::json(
                status,
                &InternalErrorBody {
                    error: kind.name(),
                    message: kind.public_message(),
                },
            ),
            (Family::Original, Self::Upstream(error)) if status >= 500 => {
                let (error, message) = upstream(error.kind);
                Response::json(status, &InternalErrorBody { error, message })
            }
            (Family::Original, Self::Misconfigured(_) | Self::NotReady(_)) => Response::json(
                status,
                &UnavailableBody {
                    error: self.openai_code().unwrap_or(NOT_READY),
                    message: self.description(),
                },
            ),
            (Family::Original, _) => Response::json(status, &self.original_body()),
            (Family::Cohere, _) => Response::json(
                status,
                &CohereErrorBody {
                    message: self.description(),
                },
            ),
            (Family::Tei, _) => Response::json(
                status,
                &TeiErrorBody {
                    error: self.description(),
                    error_type: self.tei_error_type(),
                },
            ),
            (Family::OpenAi, _) => Response::json(
                status,
                &OpenAiErrorBody {
                    error: OpenAiError {
                        message: self.description(),
                        kind: if status >= 500 {
                            "server_error"
                        } else {
                            "invalid_request_error"
                        },
                        param: self.param(),
                        code: self.openai_code(),
                    },
                },
            ),
        };
        if let Some(seconds) = self.retry_after() {
            return response.with_header("retry-after", seconds.to_string());
        }
        match self {
            Self::Unauthorized(_) => response.with_header("www-authenticate", "Bearer"),
            Self::MethodNotAllowed { allow, .. } => {
                response.with_header("allow", method_list(&allow))
            }
            _ => response,
        }
    }

    fn original_body(&self) -> HttpErrorBody {
        let status = self.status();
        let fields = match self {
            Self::MissingFields(fields) => fields
                .iter()
                .map(|&field| (field, [REQUIRED_FIELD]))
                .collect(),
            _ => BTreeMap::new(),
        };
        HttpErrorBody {
            code: status,
            name: reason_phrase(status),
            description: self.description(),
            fields,
        }
    }
}

/// The `error` (OpenAI: `code`) and the public message of the inference service's failures.
fn upstream(kind: InferErrorKind) -> (&'static str, &'static str) {
    match kind {
        InferErrorKind::Unavailable { .. } => (
            "inference_unavailable",
            "The inference service is unavailable; retry later.",
        ),
        InferErrorKind::Overloaded { .. } => (
            "inference_overloaded",
            "The inference service is busy; retry later.",
        ),
        InferErrorKind::BadGateway | InferErrorKind::Failed => (
            "bad_gateway",
            "The inference service could not complete the request.",
        ),
    }
}

/// Characters of a client's own value that an error message repeats.
const EXCERPT_CHARS: usize = 100;

/// A client's value as an error message repeats it: whole when short, else its first
/// characters and `…`, at most [`EXCERPT_CHARS`] in all, so that a huge value is not echoed.
pub fn excerpt(value: &str) -> String {
    if value.chars().nth(EXCERPT_CHARS).is_none() {
        return value.to_owned();
    }
    let mut cut: String = value.chars().take(EXCERPT_CHARS - 1).collect();
    cut.push('…');
    cut
}

pub fn method_list(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted_list(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|field| format!("`{field}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `error` of a failed readiness check.
const NOT_READY: &str = "not_ready";

/// How a configuration error's message starts.
const CONFIGURATION_PROBLEM: &str = "The service is not configured correctly";

// The OpenAPI error schemas are derived from these bodies' own types, so the OpenAPI document cannot drift.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct HttpErrorBody {
    code: u16,
    #[schema(value_type = String)]
    name: &'static str,
    description: String,
    /// The original validator's entries, e.g. `"query": ["required field"]`.
    #[serde(flatten)]
    fields: BTreeMap<&'static str, [&'static str; 1]>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = InternalError)]
pub(crate) struct InternalErrorBody {
    #[schema(value_type = String)]
    error: &'static str,
    #[schema(value_type = String)]
    message: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ServiceUnavailable)]
pub(crate) struct UnavailableBody {
    #[schema(value_type = String, pattern = "^(configuration_error|not_ready)$")]
    error: &'static str,
    message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OpenAIError)]
pub(crate) struct OpenAiErrorBody<'e> {
    error: OpenAiError<'e>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct OpenAiError<'e> {
    message: String,
    #[schema(value_type = String)]
    #[serde(rename = "type")]
    kind: &'static str,
    #[schema(value_type = Option<String>, required)]
    param: Option<&'e str>,
    #[schema(value_type = Option<String>, required)]
    code: Option<&'static str>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CohereError)]
pub(crate) struct CohereErrorBody {
    message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TeiError)]
pub(crate) struct TeiErrorBody {
    error: String,
    /// `Validation`, `Empty`, `Unauthorized`, `Tokenizer`, `Backend` or `Unhealthy`.
    #[schema(value_type = String)]
    error_type: &'static str,
}

/// The `name` of an original-shape error: the reason phrases of Werkzeug, which the replaced
/// Flask service answered with.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn body(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn excerpts_keep_short_values_and_cut_long_ones() {
        assert_eq!(excerpt("gpt-4"), "gpt-4");
        let exact = "é".repeat(EXCERPT_CHARS);
        assert_eq!(excerpt(&exact), exact);
        let cut = excerpt(&"é".repeat(10_000));
        assert_eq!(cut.chars().count(), EXCERPT_CHARS);
        assert!(cut.ends_with("é…"));
    }

    #[test]
    fn missing_fields_keep_the_original_entry_inside_the_standard_shape() {
        let response = ApiError::MissingFields(vec!["query"]).into_response(Family::Original);
        assert_eq!(response.status, 400);
        assert_eq!(
            body(&response),
            json!({
                "code": 400,
                "name": "Bad Request",
                "description": "`query` is a required field.",
                "query": ["required field"],
            })
        );
        let both = body(&ApiError::MissingFields(vec!["a", "b"]).into_response(Family::Original));
        assert_eq!(
            (&both["a"], &both["b"]),
            (&json!(["required field"]), &json!(["required field"]))
        );
    }

    #[test]
    fn field_errors_name_the_field_and_item() {
        let error = ApiError::invalid(FieldRef::item("sentences", 3), "must be a string");
        let response = error.into_response(Family::Original);
        assert_eq!(response.status, 422);
        assert_eq!(
            body(&response)["description"],
            "`sentences` item 3 must be a string"
        );
        assert_eq!(body(&response)["name"], "Unprocessable Entity");
        let too_large = ApiError::TooLarge {
            at: Some(FieldRef::whole("query")),
            problem: "has 9 characters; the limit is 8".into(),
        };
        assert_eq!(
            body(&too_large.into_response(Family::Original))["description"],
            "`query` has 9 characters; the limit is 8"
        );
    }

    #[test]
    fn openai_errors_carry_type_param_and_code() {
        let error = ApiError::invalid(FieldRef::whole("dimensions"), "must be 1..=384");
        assert_eq!(
            body(&error.into_response(Family::OpenAi)),
            json!({"error": {
                "message": "`dimensions` must be 1..=384",
                "type": "invalid_request_error",
                "param": "dimensions",
                "code": null,
            }})
        );
        let unknown = ApiError::ModelNotFound {
            requested: "gpt-4".into(),
            served: "`m`".into(),
        }
        .into_response(Family::OpenAi);
        assert_eq!(unknown.status, 404);
        let error = &body(&unknown)["error"];
        assert_eq!(
            (&error["param"], &error["code"]),
            (&json!("model"), &json!("model_not_found"))
        );
        assert_eq!(
            error["message"],
            "The model `gpt-4` does not exist; this service serves `m`."
        );
        let missing =
            body(&ApiError::MissingFields(vec!["input", "model"]).into_response(Family::OpenAi));
        assert_eq!(missing["error"]["param"], "input");
    }

    #[test]
    fn cohere_errors_are_a_message() {
        let response = ApiError::EmptyList("documents").into_response(Family::Cohere);
        assert_eq!(response.status, 400);
        assert_eq!(
            body(&response),
            json!({"message": "`documents` must not be empty."})
        );
        let internal = ApiError::internal(InternalKind::Inference, "/secret/model.onnx");
        let response = internal.into_response(Family::Cohere);
        assert_eq!(response.status, 500);
        assert_eq!(
            body(&response),
            json!({"message": "The model could not encode the text."})
        );
    }

    #[test]
    fn tei_errors_carry_tei_s_error_type_and_statuses() {
        let case = |error: ApiError| {
            let response = error.into_response(Family::Tei);
            let body = body(&response);
            assert!(body["error"].is_string(), "{body}");
            (
                response.status,
                body["error_type"].as_str().unwrap().to_owned(),
            )
        };
        assert_eq!(case(ApiError::EmptyList("texts")), (400, "Empty".into()));
        assert_eq!(
            case(ApiError::invalid(FieldRef::whole("dimensions"), "too big")),
            (422, "Validation".into())
        );
        assert_eq!(
            case(ApiError::TooLarge {
                at: None,
                problem: "too many".into()
            }),
            (413, "Validation".into())
        );
        assert_eq!(
            case(ApiError::internal(InternalKind::Inference, "detail")),
            (424, "Backend".into())
        );
        assert_eq!(
            case(ApiError::internal(InternalKind::Tokenizer, "detail")),
            (424, "Tokenizer".into())
        );
        assert_eq!(
            case(ApiError::Misconfigured("variable".into())),
            (503, "Unhealthy".into())
        );
        assert_eq!(
            case(ApiError::Unauthorized(AuthError::MissingHeader)),
            (401, "Unauthorized".into())
        );
        let hidden = ApiError::internal(InternalKind::Inference, "/secret/model.onnx")
            .into_response(Family::Tei);
        assert!(!String::from_utf8_lossy(&hidden.body).contains("secret"));
    }

    #[test]
    fn unauthorized_names_the_bearer_scheme_in_every_shape() {
        for family in [
            Family::Original,
            Family::OpenAi,
            Family::Cohere,
            Family::Tei,
        ] {
            let response = ApiError::Unauthorized(AuthError::MissingHeader).into_response(family);
            assert_eq!(response.status, 401);
            assert_eq!(response.header("WWW-Authenticate"), Some("Bearer"));
        }
        let openai =
            body(&ApiError::Unauthorized(AuthError::InvalidToken).into_response(Family::OpenAi));
        assert_eq!(openai["error"]["code"], "invalid_api_key");
        assert_eq!(openai["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let error = ApiError::MethodNotAllowed {
            method: "PUT".into(),
            allow: vec![Method::Get, Method::Post],
        };
        let response = error.into_response(Family::Original);
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow"), Some("GET, POST"));
        assert_eq!(body(&response)["name"], "Method Not Allowed");
    }

    #[test]
    fn internal_errors_hide_their_detail_in_both_shapes() {
        let error = || {
            ApiError::internal(
                InternalKind::Inference,
                "onnx session exploded at /secret/path",
            )
        };
        let response = error().into_response(Family::Original);
        assert_eq!(response.status, 500);
        assert_eq!(
            body(&response),
            json!({"error": "inference_error", "message": "The model could not encode the text."})
        );
        let openai = error().into_response(Family::OpenAi);
        assert!(!String::from_utf8(openai.body.clone())
            .unwrap()
            .contains("secret"));
        assert_eq!(body(&openai)["error"]["type"], "server_error");
    }

    #[test]
    fn the_inference_services_failures_keep_their_detail_out_of_both_shapes() {
        let failure = |kind| {
            ApiError::inference(InferError::of(
                kind,
                "inference service http://origin:3000: it refused the `inference_token`",
            ))
        };
        let unavailable = InferErrorKind::Unavailable {
            retry_after_seconds: 1,
        };
        let overloaded = InferErrorKind::Overloaded {
            retry_after_seconds: 7,
        };
        let original = failure(unavailable).into_response(Family::Original);
        assert_eq!(original.status, 503);
        assert_eq!(original.header("retry-after"), Some("1"));
        assert_eq!(
            body(&original),
            json!({"error": "inference_unavailable", "message": "The inference service is unavailable; retry later."})
        );
        let busy = failure(overloaded).into_response(Family::Original);
        assert_eq!(busy.status, 429);
        assert_eq!(busy.header("retry-after"), Some("7"));
        assert_eq!(body(&busy)["name"], "Too Many Requests");
        let refused = failure(InferErrorKind::BadGateway).into_response(Family::OpenAi);
        assert_eq!(refused.status, 502);
        assert_eq!(refused.header("retry-after"), None);
        let error = &body(&refused)["error"];
        assert_eq!(
            (&error["type"], &error["code"]),
            (&json!("server_error"), &json!("bad_gateway"))
        );
        let busy = body(&failure(overloaded).into_response(Family::OpenAi));
        assert_eq!(busy["error"]["type"], "invalid_request_error");
        for response in [original, refused] {
            let text = String::from_utf8(response.body).unwrap();
            assert!(
                !text.contains("origin:3000") && !text.contains("inference_token"),
                "{text}"
            );
        }
        let failed = failure(InferErrorKind::Failed);
        assert!(matches!(
            failed,
            ApiError::Internal {
                kind: InternalKind::Inference,
                ..
            }
        ));
    }

    #[test]
    fn a_configuration_error_is_a_503_naming_the_problem_in_both_shapes() {
        let error = || {
            ApiError::Misconfigured("variable `max_inputs`: `three` is not a whole number".into())
        };
        let original = error().into_response(Family::Original);
        assert_eq!(original.status, 503);
        assert_eq!(
            body(&original),
            json!({
                "error": "configuration_error",
                "message": "The service is not configured correctly: variable `max_inputs`: `three` is not a whole number."
            })
        );
        let openai = body(&error().into_response(Family::OpenAi));
        assert_eq!(openai["error"]["type"], "server_error");
        assert_eq!(openai["error"]["code"], "configuration_error");
        assert!(openai["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`max_inputs`"));
    }
}
