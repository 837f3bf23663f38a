//! Request and response types, one module per API family.

pub mod original;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::http::Request;

/// The request body as a JSON object; an empty body is an object without fields. A body
/// declared as something other than JSON is refused rather than guessed at.
fn json_object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if let Some(content_type) = request.header("content-type") {
        if !is_json_media_type(content_type) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "The request body must be JSON (Content-Type: application/json), not {content_type}."
            )));
        }
    }
    match serde_json::from_slice(&request.body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::BadRequest(
            "The request body must be a JSON object.".into(),
        )),
        Err(_) => Err(ApiError::BadRequest(
            "The request body is not valid JSON.".into(),
        )),
    }
}

/// `application/json` or a `+json` type, with any parameters.
fn is_json_media_type(content_type: &str) -> bool {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type == "application/json" || media_type.ends_with("+json")
}

/// Why a required string field could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldProblem {
    /// Absent or `null`.
    Missing,
    NotAString,
}

fn string_field(object: &Map<String, Value>, name: &str) -> Result<String, FieldProblem> {
    match object.get(name) {
        None | Some(Value::Null) => Err(FieldProblem::Missing),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(FieldProblem::NotAString),
    }
}

impl FieldProblem {
    fn into_error(self, field: &'static str) -> ApiError {
        match self {
            Self::Missing => ApiError::MissingFields(vec![field]),
            Self::NotAString => ApiError::InvalidField {
                field,
                message: "must be a string".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn post(content_type: Option<&str>, body: &str) -> Request {
        Request {
            method: Method::Post,
            path: "/".into(),
            query: String::new(),
            headers: content_type
                .map(|c| ("Content-Type".to_owned(), c.to_owned()))
                .into_iter()
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn json_bodies_with_or_without_a_content_type() {
        for content_type in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("application/merge-patch+json"),
        ] {
            let object = json_object(&post(content_type, r#"{"query": "hi"}"#)).unwrap();
            assert_eq!(object["query"], "hi", "{content_type:?}");
        }
    }

    #[test]
    fn an_empty_body_has_no_fields() {
        assert!(json_object(&post(Some("text/plain"), " \n"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn other_media_types_are_415() {
        let error =
            json_object(&post(Some("application/x-www-form-urlencoded"), "query=hi")).unwrap_err();
        assert_eq!(error.status(), 415);
    }

    #[test]
    fn malformed_or_non_object_json_is_400() {
        for body in ["{nope", "[1, 2]", "\"text\"", "null"] {
            assert_eq!(
                json_object(&post(None, body)).unwrap_err().status(),
                400,
                "{body}"
            );
        }
    }
}
