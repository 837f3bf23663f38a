//! The JSON-body reading both API families share.
//!
//! Bodies are parsed into a `serde_json` value first and then read field by field, so that every
//! problem is reported with the field it concerns (serde's own messages name Rust types). The
//! parser keeps serde_json's default recursion limit (128), so deep nesting is a 400, not a
//! stack overflow; invalid UTF-8 and lone surrogate escapes are refused by the parser too.

use std::cell::RefCell;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::inputs::InputField;
use crate::embed::Input;
use crate::http::error::{excerpt, ApiError, FieldRef};
use crate::http::Request;

/// The request body as a JSON object; an empty body is an object without fields. A body
/// declared as something other than JSON is refused rather than guessed at.
pub(super) fn json_object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if let Some(content_type) = request.header("content-type") {
        if !is_json_media_type(content_type) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "The request body must be JSON (Content-Type: application/json), not {}.",
                excerpt(content_type)
            )));
        }
    }
    match serde_json::from_slice(&request.body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ApiError::Unprocessable {
            at: None,
            problem: format!(
                "The request body must be a JSON object, not {}.",
                type_name(&other)
            ),
        }),
        Err(error) => Err(ApiError::Malformed {
            field: field_at_fault(&request.body),
            problem: format!("The request body is not valid JSON: {error}."),
        }),
    }
}

/// The longest field name an error repeats back.
const MAX_ECHOED_FIELD: usize = 64;

/// For a body that failed to parse: the top-level field whose value the parser was reading
/// when it failed (e.g. `dimensions` for `"dimensions": 1e400`), if any.
fn field_at_fault(body: &[u8]) -> Option<String> {
    let field = RefCell::new(None);
    let mut parser = serde_json::Deserializer::from_slice(body);
    // The body is known to be invalid: only where the parser stopped matters.
    let _ = FieldTracker(&field).deserialize(&mut parser);
    field
        .into_inner()
        .filter(|name: &String| name.len() <= MAX_ECHOED_FIELD)
}

/// Reads a top-level object, noting each field's name before reading its value.
struct FieldTracker<'f>(&'f RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for FieldTracker<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldTracker<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        loop {
            *self.0.borrow_mut() = None;
            let Some(name) = map.next_key::<String>()? else {
                return Ok(());
            };
            *self.0.borrow_mut() = Some(name);
            map.next_value::<Value>()?;
        }
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

/// How a JSON value is described in an error: "a string", "null", …
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The required fields' values, or one error naming every absent field. `null` is present: it
/// is then reported as a wrong type by the field's own reader.
pub(super) fn required<'v, const N: usize>(
    object: &'v Map<String, Value>,
    names: [&'static str; N],
) -> Result<[&'v Value; N], ApiError> {
    static ABSENT: Value = Value::Null;
    let missing: Vec<_> = names
        .into_iter()
        .filter(|name| !object.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::MissingFields(missing));
    }
    Ok(names.map(|name| object.get(name).unwrap_or(&ABSENT)))
}

/// An optional field: absent and `null` both mean "use the default".
pub(super) fn optional<'v>(object: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    object.get(name).filter(|value| !value.is_null())
}

pub(super) fn wrong_type(at: FieldRef, expected: &str, value: &Value) -> ApiError {
    ApiError::invalid(at, format!("must be {expected}, not {}", type_name(value)))
}

pub(super) fn string(value: &Value, at: FieldRef) -> Result<&str, ApiError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(at, "a string", value))
}

/// An array of strings.
pub(super) fn strings(value: &Value, field: &'static str) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = value else {
        return Err(wrong_type(
            FieldRef::whole(field),
            "an array of strings",
            value,
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| string(item, FieldRef::item(field, index)).map(str::to_owned))
        .collect()
}

/// A string or an array of strings: what `a` and `b` of `cos_sim_weight` take.
#[derive(Debug, Clone, PartialEq)]
pub enum TextOrTexts {
    One(String),
    Many(Vec<String>),
}

impl TextOrTexts {
    pub(super) fn field(&self, name: &'static str) -> InputField<'_> {
        match self {
            Self::One(text) => InputField::single(name, Input::Text(text)),
            Self::Many(texts) => InputField::texts(name, texts),
        }
    }
}

pub(super) fn text_or_texts(value: &Value, field: &'static str) -> Result<TextOrTexts, ApiError> {
    match value {
        Value::String(text) => Ok(TextOrTexts::One(text.clone())),
        Value::Array(_) => strings(value, field).map(TextOrTexts::Many),
        other => Err(wrong_type(
            FieldRef::whole(field),
            "a string or an array of strings",
            other,
        )),
    }
}

/// The optional `truncate` flag every embedding request takes (default `true`).
pub(super) fn truncate(object: &Map<String, Value>) -> Result<bool, ApiError> {
    match optional(object, "truncate") {
        None => Ok(true),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(wrong_type(
            FieldRef::whole("truncate"),
            "true or false",
            other,
        )),
    }
}

/// A non-negative integer that fits `u64`. JSON Schema counts `3.0` as an integer, so an
/// integral float is one too; a fraction, a negative number or anything from 2^64 up is not.
pub(super) fn whole_number(value: &Value) -> Option<u64> {
    const TWO_TO_THE_64: f64 = 18_446_744_073_709_551_616.0;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..TWO_TO_THE_64).contains(f))
            .map(|f| f as u64)
    })
}

/// An optional integer of at least 1. Values beyond `u64` are refused rather than rounded.
pub(super) fn optional_count(
    object: &Map<String, Value>,
    name: &'static str,
    default: u64,
) -> Result<u64, ApiError> {
    match optional(object, name) {
        None => Ok(default),
        Some(value) => whole_number(value).filter(|&n| n >= 1).ok_or_else(|| {
            ApiError::invalid(
                FieldRef::whole(name),
                format!(
                    "must be an integer of at least 1, not {}",
                    excerpt(&value.to_string())
                ),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::http::Method;

    fn post(content_type: Option<&str>, body: &[u8]) -> Request {
        Request {
            method: Method::Post,
            path: "/".into(),
            query: String::new(),
            headers: content_type
                .map(|c| ("Content-Type".to_owned(), c.to_owned()))
                .into_iter()
                .collect(),
            body: body.to_vec(),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(object) = value else {
            panic!("not an object")
        };
        object
    }

    #[test]
    fn json_bodies_with_or_without_a_content_type() {
        for content_type in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("application/merge-patch+json"),
        ] {
            let object = json_object(&post(content_type, br#"{"query": "hi"}"#)).unwrap();
            assert_eq!(object["query"], "hi", "{content_type:?}");
        }
    }

    #[test]
    fn an_empty_body_has_no_fields() {
        assert!(json_object(&post(Some("text/plain"), b" \n"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn other_media_types_are_415() {
        let error = json_object(&post(
            Some("application/x-www-form-urlencoded"),
            b"query=hi",
        ))
        .unwrap_err();
        assert_eq!(error.status(), 415);
    }

    #[test]
    fn malformed_json_is_400_and_other_json_is_422() {
        for body in [&b"{nope"[..], b"{\"a\": 1} }", b"NaN", b"{\"a\": 1e400}"] {
            let error = json_object(&post(None, body)).unwrap_err();
            assert_eq!(error.status(), 400, "{}", String::from_utf8_lossy(body));
        }
        for body in [&b"[1, 2]"[..], b"\"text\"", b"null", b"42"] {
            assert_eq!(json_object(&post(None, body)).unwrap_err().status(), 422);
        }
    }

    #[test]
    fn a_parse_error_inside_a_field_names_the_field() {
        let field = |body: &[u8]| match json_object(&post(None, body)).unwrap_err() {
            ApiError::Malformed { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(b"{\"input\": \"a\", \"dimensions\": 1e400}").as_deref(),
            Some("dimensions")
        );
        assert_eq!(field(b"{\"input\": [1,").as_deref(), Some("input"));
        assert_eq!(field(b"{\"a\": 1} }"), None);
        assert_eq!(field(b"{\"a\": 1, \"\\ud800\": 2}"), None);
        let long = format!("{{\"{}\": NaN}}", "k".repeat(65));
        assert_eq!(field(long.as_bytes()), None);
    }

    #[test]
    fn invalid_text_is_refused_by_the_parser_not_trapped_on() {
        let deep = [
            &b"{\"s\": "[..],
            &b"[".repeat(100_000),
            &b"]".repeat(100_000),
            b"}",
        ]
        .concat();
        for body in [
            &b"{\"q\": \"\xff\xfe\"}"[..],
            b"{\"q\": \"\xc0\xaf\"}",
            b"{\"q\": \"\\ud800\"}",
            b"{\"q\": \"x\\udc00y\"}",
            &deep,
        ] {
            assert_eq!(json_object(&post(None, body)).unwrap_err().status(), 400);
        }
        let pair = json_object(&post(None, b"{\"q\": \"\\ud83d\\ude42\"}")).unwrap();
        assert_eq!(pair["q"], "\u{1F642}");
    }

    #[test]
    fn every_missing_required_field_is_named_and_null_is_present() {
        let body = object(json!({"b": null}));
        match required(&body, ["a", "b", "c"]) {
            Err(ApiError::MissingFields(fields)) => assert_eq!(fields, vec!["a", "c"]),
            other => panic!("{other:?}"),
        }
        let [b] = required(&body, ["b"]).unwrap();
        assert!(string(b, FieldRef::whole("b")).is_err());
    }

    #[test]
    fn string_lists_name_the_bad_item() {
        assert_eq!(strings(&json!(["a", "b"]), "s").unwrap(), vec!["a", "b"]);
        let error = strings(&json!(["a", 3]), "sentences").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unprocessable: must be a string, not a number"
        );
        assert!(matches!(
            error,
            ApiError::Unprocessable {
                at: Some(FieldRef {
                    field: "sentences",
                    item: Some(1)
                }),
                ..
            }
        ));
        assert!(strings(&json!("a"), "sentences").is_err());
        assert!(strings(&json!({"0": "a"}), "sentences").is_err());
    }

    #[test]
    fn text_or_texts_keeps_the_shape() {
        assert_eq!(
            text_or_texts(&json!("x"), "a").unwrap(),
            TextOrTexts::One("x".into())
        );
        assert_eq!(
            text_or_texts(&json!(["x"]), "a").unwrap(),
            TextOrTexts::Many(vec!["x".into()])
        );
        for bad in [json!(null), json!(1), json!({"t": "x"}), json!(["y", 2])] {
            assert_eq!(text_or_texts(&bad, "b").unwrap_err().status(), 422, "{bad}");
        }
    }

    #[test]
    fn truncate_defaults_to_true_and_must_be_a_boolean() {
        assert!(truncate(&object(json!({}))).unwrap());
        assert!(truncate(&object(json!({"truncate": null}))).unwrap());
        assert!(!truncate(&object(json!({"truncate": false}))).unwrap());
        for bad in [json!("no"), json!(1), json!(0)] {
            assert_eq!(
                truncate(&object(json!({"truncate": bad})))
                    .unwrap_err()
                    .status(),
                422
            );
        }
    }

    #[test]
    fn counts_are_integers_of_at_least_one() {
        let read = |value: Value| optional_count(&object(json!({"n": value})), "n", 7);
        assert_eq!(read(Value::Null).unwrap(), 7);
        assert_eq!(read(json!(1)).unwrap(), 1);
        assert_eq!(read(json!(1u64 << 62)).unwrap(), 1 << 62);
        assert_eq!(read(json!(u64::MAX)).unwrap(), u64::MAX);
        assert_eq!(read(json!(379.0)).unwrap(), 379);
        assert_eq!(read(json!(1e19)).unwrap(), 10_000_000_000_000_000_000);
        let beyond_u64: Value = serde_json::from_str("18446744073709551616").unwrap();
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!(-2.0),
            json!("10"),
            json!(true),
            beyond_u64,
        ] {
            assert_eq!(read(bad.clone()).unwrap_err().status(), 422, "{bad}");
        }
    }
}
