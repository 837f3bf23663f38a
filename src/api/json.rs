//! The JSON-body reading both API families share.
//!
//! A body is parsed into a `serde_json` value first, which tells malformed JSON (400) from a
//! well-formed value of the wrong shape (422), keeps serde_json's recursion limit (128, so deep
//! nesting is a 400, not a stack overflow) and refuses invalid UTF-8 and lone surrogates. The
//! object is then deserialized into the route's derived request type, whose field types (see
//! `fields.rs`) word their own errors ("must be a string, not null"); `serde_path_to_error`
//! says which field and list item an error was found at.

use std::cell::{Cell, RefCell};

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

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

/// A request body type: derived `Deserialize`, and the fields it cannot do without.
pub(super) trait Body: DeserializeOwned {
    /// Checked before deserializing, so that one error names every absent field (serde stops at
    /// the first). `null` counts as present: the field's own type then reports it.
    const REQUIRED: &'static [&'static str];
}

/// The request's JSON body as `T`. A value of the wrong type or out of range is a 422 naming the
/// field (and the list item) it was found at, with the problem the field's type describes.
pub(super) fn read<T: Body>(request: &Request) -> Result<T, ApiError> {
    from_object(json_object(request)?)
}

pub(super) fn from_object<T: Body>(object: Map<String, Value>) -> Result<T, ApiError> {
    let missing: Vec<_> = T::REQUIRED
        .iter()
        .copied()
        .filter(|name| !object.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::MissingFields(missing));
    }
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|error| {
        let mut path = error.path().iter();
        let field = match path.next() {
            Some(Segment::Map { key }) => {
                field_names::<T>().iter().copied().find(|name| name == key)
            }
            _ => None,
        };
        let item = match path.next() {
            Some(Segment::Seq { index }) => Some(*index),
            _ => None,
        };
        ApiError::Unprocessable {
            at: field.map(|field| FieldRef { field, item }),
            problem: error.into_inner().to_string(),
        }
    })
}

/// The field names serde derived for `T`: what it passes to `deserialize_struct`, caught by a
/// deserializer that stops right there. (Errors locate a field by its name as a `String`; this
/// gives the `&'static str` the error types hold.)
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Catch<'c>(&'c Cell<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for Catch<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(serde::de::Error::custom("caught"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(Catch(&fields));
    fields.get()
}

/// "must be an array of strings, not a number": what a field's type says about a wrong value.
pub(super) fn must_be<E: serde::de::Error>(expected: &str, found: &str) -> E {
    E::custom(format!("must be {expected}, not {found}"))
}

/// [`must_be`] for a value already read, described by its JSON type.
pub(super) fn wrong_type<E: serde::de::Error>(expected: &str, value: &Value) -> E {
    must_be(expected, type_name(value))
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

    #[derive(Debug, serde::Deserialize)]
    struct Pair {
        #[allow(dead_code)]
        first: super::super::fields::Text,
        #[allow(dead_code)]
        second: Option<super::super::fields::Texts>,
    }

    impl Body for Pair {
        const REQUIRED: &'static [&'static str] = &["first", "needed"];
    }

    #[test]
    fn every_missing_required_field_is_named_and_null_is_present() {
        match from_object::<Pair>(object(json!({"second": null}))) {
            Err(ApiError::MissingFields(fields)) => assert_eq!(fields, vec!["first", "needed"]),
            other => panic!("{other:?}"),
        }
        let error = from_object::<Pair>(object(json!({"first": null, "needed": 1}))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unprocessable: must be a string, not null"
        );
    }

    #[test]
    fn errors_name_the_field_and_the_item() {
        let error = from_object::<Pair>(object(
            json!({"first": "x", "needed": 1, "second": ["a", 3]}),
        ))
        .unwrap_err();
        assert!(matches!(
            error,
            ApiError::Unprocessable {
                at: Some(FieldRef {
                    field: "second",
                    item: Some(1)
                }),
                ..
            }
        ));
        assert_eq!(field_names::<Pair>(), ["first", "second"]);
    }
}
