//! Every way a request can fail, and the status and JSON body each one answers with.
//!
//! Client errors are `{"code", "name", "description"}` like the original service's; a missing
//! field also keeps the original validator's `"<field>": ["required field"]` entry, which its
//! clients read. Unexpected failures are `{"error", "message"}` with a fixed, safe message.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::auth::AuthError;
use crate::embed::EmbedError;
use crate::http::{Method, Response};
use crate::settings::VariableError;

/// The original validator's message for a missing field.
const REQUIRED_FIELD: &str = "required field";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Required fields that are absent, `null` or (for `query`) empty.
    #[error("missing fields: {0:?}")]
    MissingFields(Vec<&'static str>),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String, allow: Vec<Method> },
    #[error("gone: {0}")]
    Gone(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A field is present but has the wrong type or value.
    #[error("invalid field `{field}`: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// A failure that is not the client's fault. `detail` goes to the log, never to the client.
    #[error("{kind}: {detail}")]
    Internal { kind: InternalKind, detail: String },
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

impl std::fmt::Display for InternalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ApiError {
    pub fn internal(kind: InternalKind, detail: impl std::fmt::Display) -> Self {
        Self::Internal {
            kind,
            detail: detail.to_string(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::MissingFields(_) | Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Gone(_) => 410,
            Self::UnsupportedMediaType(_) => 415,
            Self::InvalidField { .. } => 422,
            Self::Internal { .. } => 500,
        }
    }

    pub fn into_response(self) -> Response {
        let status = self.status();
        let description = match &self {
            Self::Internal { kind, .. } => {
                let body = InternalErrorBody {
                    error: kind.name(),
                    message: kind.public_message(),
                };
                return Response::json(status, &body);
            }
            Self::MissingFields(fields) => match fields.as_slice() {
                [field] => format!("`{field}` is a required field."),
                fields => format!("These fields are required: {}.", quoted_list(fields)),
            },
            Self::MethodNotAllowed { method, allow } => format!(
                "The method {method} is not allowed for this URL; allowed: {}.",
                method_list(allow)
            ),
            Self::InvalidField { field, message } => format!("`{field}` {message}."),
            Self::BadRequest(description)
            | Self::Unauthorized(description)
            | Self::NotFound(description)
            | Self::Gone(description)
            | Self::UnsupportedMediaType(description) => description.clone(),
        };
        let mut body = HttpErrorBody {
            code: status,
            name: reason_phrase(status),
            description,
            fields: BTreeMap::new(),
        };
        if let Self::MissingFields(fields) = &self {
            body.fields = fields
                .iter()
                .map(|&field| (field, [REQUIRED_FIELD]))
                .collect();
        }
        let response = Response::json(status, &body);
        match self {
            Self::Unauthorized(_) => response.with_header("www-authenticate", "Bearer"),
            Self::MethodNotAllowed { allow, .. } => {
                response.with_header("allow", method_list(&allow))
            }
            _ => response,
        }
    }
}

fn method_list(methods: &[Method]) -> String {
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

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::Unauthorized(error.to_string())
    }
}

impl From<EmbedError> for ApiError {
    fn from(error: EmbedError) -> Self {
        let kind = match error {
            EmbedError::Tokenize(_) => InternalKind::Tokenizer,
            EmbedError::Infer(_) | EmbedError::OutputShape { .. } => InternalKind::Inference,
        };
        Self::internal(kind, error)
    }
}

impl From<VariableError> for ApiError {
    fn from(error: VariableError) -> Self {
        Self::internal(InternalKind::Configuration, error)
    }
}

#[derive(Serialize)]
struct HttpErrorBody {
    code: u16,
    name: &'static str,
    description: String,
    /// The original validator's entries, e.g. `"query": ["required field"]`.
    #[serde(flatten)]
    fields: BTreeMap<&'static str, [&'static str; 1]>,
}

#[derive(Serialize)]
struct InternalErrorBody {
    error: &'static str,
    message: &'static str,
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response) -> serde_json::Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn missing_fields_keep_the_original_entry_inside_the_standard_shape() {
        let response = ApiError::MissingFields(vec!["query"]).into_response();
        assert_eq!(response.status, 400);
        assert_eq!(
            body(&response),
            serde_json::json!({
                "code": 400,
                "name": "Bad Request",
                "description": "`query` is a required field.",
                "query": ["required field"],
            })
        );
        let both = body(&ApiError::MissingFields(vec!["a", "b"]).into_response());
        assert_eq!(
            (&both["a"], &both["b"]),
            (
                &serde_json::json!(["required field"]),
                &serde_json::json!(["required field"])
            )
        );
    }

    #[test]
    fn invalid_fields_are_422() {
        let error = ApiError::InvalidField {
            field: "query",
            message: "must be a string".into(),
        };
        let response = error.into_response();
        assert_eq!(response.status, 422);
        assert_eq!(body(&response)["description"], "`query` must be a string.");
        assert_eq!(body(&response)["name"], "Unprocessable Entity");
    }

    #[test]
    fn unauthorized_names_the_bearer_scheme() {
        let response = ApiError::Unauthorized("no token".into()).into_response();
        assert_eq!(response.status, 401);
        assert_eq!(response.header("WWW-Authenticate"), Some("Bearer"));
        assert_eq!(
            body(&response),
            serde_json::json!({"code": 401, "name": "Unauthorized", "description": "no token"})
        );
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let error = ApiError::MethodNotAllowed {
            method: "PUT".into(),
            allow: vec![Method::Get, Method::Post],
        };
        let response = error.into_response();
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow"), Some("GET, POST"));
        assert_eq!(body(&response)["name"], "Method Not Allowed");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let response = ApiError::internal(
            InternalKind::Inference,
            "onnx session exploded at /secret/path",
        )
        .into_response();
        assert_eq!(response.status, 500);
        let text = String::from_utf8(response.body).unwrap();
        assert!(!text.contains("secret"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!({"error": "inference_error", "message": "The model could not encode the text."})
        );
    }
}
