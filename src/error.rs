//! Every way a request can fail, and the status and JSON body each one answers with.
//!
//! The bodies keep the original service's shapes: field validation as
//! `{"<field>": ["<message>"]}`, other client errors as `{"code", "name", "description"}`,
//! unexpected failures as `{"error", "message"}` with a fixed, safe message.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::auth::AuthError;
use crate::embed::EmbedError;
use crate::http::{Method, Response};
use crate::settings::VariableError;

/// Messages per request field, e.g. `{"query": ["required field"]}`.
pub type FieldErrors = BTreeMap<&'static str, Vec<&'static str>>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid fields: {0:?}")]
    Validation(FieldErrors),
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
    /// A single field failed validation.
    pub fn field(field: &'static str, message: &'static str) -> Self {
        Self::Validation(FieldErrors::from([(field, vec![message])]))
    }

    pub fn internal(kind: InternalKind, detail: impl std::fmt::Display) -> Self {
        Self::Internal {
            kind,
            detail: detail.to_string(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Gone(_) => 410,
            Self::Internal { .. } => 500,
        }
    }

    pub fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::Validation(fields) => Response::json(status, &fields),
            Self::BadRequest(description)
            | Self::NotFound(description)
            | Self::Gone(description) => {
                Response::json(status, &HttpErrorBody::new(status, &description))
            }
            Self::Unauthorized(description) => {
                Response::json(status, &HttpErrorBody::new(status, &description))
                    .with_header("www-authenticate", "Bearer")
            }
            Self::MethodNotAllowed { method, allow } => {
                let allow = allow
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let description =
                    format!("The method {method} is not allowed for this URL; allowed: {allow}.");
                Response::json(status, &HttpErrorBody::new(status, &description))
                    .with_header("allow", allow)
            }
            Self::Internal { kind, .. } => Response::json(
                status,
                &InternalErrorBody {
                    error: kind.name(),
                    message: kind.public_message(),
                },
            ),
        }
    }
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
struct HttpErrorBody<'a> {
    code: u16,
    name: &'static str,
    description: &'a str,
}

impl<'a> HttpErrorBody<'a> {
    fn new(code: u16, description: &'a str) -> Self {
        Self {
            code,
            name: reason_phrase(code),
            description,
        }
    }
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
    fn validation_errors_keep_the_field_shape() {
        let response = ApiError::field("query", "required field").into_response();
        assert_eq!(response.status, 400);
        assert_eq!(
            body(&response),
            serde_json::json!({"query": ["required field"]})
        );
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
