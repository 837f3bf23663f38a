//! Request and response types, one module per API family.

pub mod original;

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The request body as a JSON object; an empty body is an object without fields.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::BadRequest(
            "The request body must be a JSON object.".into(),
        )),
        Err(_) => Err(ApiError::BadRequest(
            "The request body is not valid JSON.".into(),
        )),
    }
}
