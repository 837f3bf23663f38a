//! The field types request bodies are made of. Each one's `Deserialize` words its own error the
//! way this API always has ("must be an array of strings, not a number"), where serde's derived
//! impls would name Rust types; lists read their items one by one, so an error inside a list
//! points at the item.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use utoipa::openapi::schema::{
    Array, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;

use super::inputs::InputField;
use super::json::{must_be, whole_number, wrong_type};
use crate::embed::model::DIMENSIONS;
use crate::embed::tokenize::{Truncation, VOCAB_SIZE};
use crate::embed::Input;
use crate::http::error::excerpt;

/// Rejects, with "must be {expected}, not {what was there}", every kind of JSON value listed:
/// `bool`, `number`, `str`, `null`, `seq`, `map`. For the visitors below.
macro_rules! reject {
    ($expected:expr; $($kind:ident),*) => { $(reject!(@$kind $expected);)* };
    (@bool $e:expr) => {
        fn visit_bool<E: ::serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err($crate::api::json::must_be($e, "a boolean"))
        }
    };
    (@number $e:expr) => {
        fn visit_i64<E: ::serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err($crate::api::json::must_be($e, "a number"))
        }
        fn visit_u64<E: ::serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err($crate::api::json::must_be($e, "a number"))
        }
        fn visit_f64<E: ::serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err($crate::api::json::must_be($e, "a number"))
        }
    };
    (@str $e:expr) => {
        fn visit_str<E: ::serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err($crate::api::json::must_be($e, "a string"))
        }
    };
    (@null $e:expr) => {
        fn visit_unit<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
            Err($crate::api::json::must_be($e, "null"))
        }
        fn visit_none<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
            Err($crate::api::json::must_be($e, "null"))
        }
    };
    (@seq $e:expr) => {
        fn visit_seq<A: ::serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err($crate::api::json::must_be($e, "an array"))
        }
    };
    (@map $e:expr) => {
        fn visit_map<A: ::serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err($crate::api::json::must_be($e, "an object"))
        }
    };
}
pub(super) use reject;

/// A JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Self(text)),
            other => Err(wrong_type("a string", &other)),
        }
    }
}

/// An array of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts(pub Vec<String>);

const AN_ARRAY_OF_STRINGS: &str = "an array of strings";

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;

        impl<'de> Visitor<'de> for Items {
            type Value = Texts;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(AN_ARRAY_OF_STRINGS)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Texts, A::Error> {
                items(seq).map(Texts)
            }

            reject!(AN_ARRAY_OF_STRINGS; bool, number, str, null, map);
        }

        deserializer.deserialize_any(Items)
    }
}

/// The items of an array, each a [`Text`].
fn items<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<String>, A::Error> {
    let mut texts = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(Text(text)) = seq.next_element()? {
        texts.push(text);
    }
    Ok(texts)
}

/// A string or an array of strings: what `a` and `b` of `cos_sim_weight` take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextOrTexts {
    One(String),
    Many(Vec<String>),
}

const TEXT_OR_TEXTS: &str = "a string or an array of strings";

/// Written by hand because the type's `Deserialize` is: a string, or an array of strings.
impl utoipa::PartialSchema for TextOrTexts {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Object::with_type(Type::String))
            .item(Array::new(Object::with_type(Type::String)))
            .into()
    }
}

impl utoipa::ToSchema for TextOrTexts {}

/// An optional whole number from `minimum` to `u64::MAX` (the derive would say int64, whose
/// narrower range the service does not enforce), or `null`.
pub fn whole_number_schema(minimum: u64, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(minimum))
        .maximum(Some(u64::MAX))
        .description(Some(description))
}

/// A string, or a non-empty array of strings: [`TextOrTexts`] where a list needs an item.
pub fn text_or_texts_schema() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(Object::with_type(Type::String))
        .item(
            ArrayBuilder::new()
                .items(Object::with_type(Type::String))
                .min_items(Some(1)),
        )
}

impl TextOrTexts {
    /// The texts, one or many.
    pub fn texts(&self) -> &[String] {
        match self {
            Self::One(text) => std::slice::from_ref(text),
            Self::Many(texts) => texts,
        }
    }

    pub(super) fn field(&self, name: &'static str) -> InputField<'_> {
        match self {
            Self::One(text) => InputField::single(name, Input::Text(text)),
            Self::Many(texts) => InputField::texts(name, texts),
        }
    }
}

impl<'de> Deserialize<'de> for TextOrTexts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;

        impl<'de> Visitor<'de> for Shape {
            type Value = TextOrTexts;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(TEXT_OR_TEXTS)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TextOrTexts, E> {
                Ok(TextOrTexts::One(text.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TextOrTexts, A::Error> {
                items(seq).map(TextOrTexts::Many)
            }

            reject!(TEXT_OR_TEXTS; bool, number, null, map);
        }

        deserializer.deserialize_any(Shape)
    }
}

/// `true` or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(flag) => Ok(Self(flag)),
            other => Err(wrong_type("true or false", &other)),
        }
    }
}

/// An integer of at least 1 (an integral float counts, as in JSON Schema). Values beyond `u64`
/// are refused rather than rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        whole_number(&value)
            .filter(|&n| n >= 1)
            .map(Self)
            .ok_or_else(|| must_be("an integer of at least 1", &excerpt(&value.to_string())))
    }
}

/// For `#[serde(deserialize_with)]` on a `String` field.
pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Text::deserialize(deserializer).map(|Text(text)| text)
}

/// For `#[serde(deserialize_with)]` on an optional `String` field (`null` is `None`).
pub fn optional_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(deserializer)?.map(|Text(text)| text))
}

/// For `#[serde(deserialize_with)]` on an optional `Vec<String>` field (`null` is `None`).
pub fn optional_texts<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<Texts>::deserialize(deserializer)?.map(|Texts(texts)| texts))
}

/// For `#[serde(deserialize_with)]` on a `Vec<String>` field.
pub fn texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Texts::deserialize(deserializer).map(|Texts(texts)| texts)
}

/// For `#[serde(deserialize_with)]` on a flag that is on unless the request turns it off, like
/// `truncate`: `null` (and, with `#[serde(default = "fields::absent_means_true")]`, absence)
/// means `true`.
pub fn flag_or_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<Flag>::deserialize(deserializer)?.is_none_or(|Flag(flag)| flag))
}

/// For `#[serde(default = ...)]` on a flag that is on unless the request turns it off.
pub fn absent_means_true() -> bool {
    true
}

/// For `#[serde(deserialize_with)]` on an optional flag: `null` (and absence, with a `default`)
/// means `false`.
pub fn flag_or_false<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<Flag>::deserialize(deserializer)?.is_some_and(|Flag(flag)| flag))
}

/// For `#[serde(deserialize_with)]` on an optional [`Count`] (`null` is `None`).
pub fn optional_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Count>::deserialize(deserializer)?.map(|Count(count)| count))
}

/// TEI's `truncation_direction`: the side an over-long input loses tokens from, `right` (the
/// default, as sentence-transformers truncates) or `left` (TEI also takes `Right` and `Left`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Direction {
    #[default]
    Right,
    Left,
}

/// `truncation_direction`'s schema: `right`, `left` (or TEI's capitalized spellings), or `null`.
pub fn direction_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .enum_values(Some([
            Value::from("right"),
            Value::from("left"),
            Value::from("Right"),
            Value::from("Left"),
            Value::Null,
        ]))
        .default(Some(Value::from("right")))
        .description(Some(
            "The side an input over the model's 256 tokens loses tokens from when truncated: \
             `right` keeps its start (as sentence-transformers does), `left` keeps its end, from \
             the first whole word that fits.",
        ))
}

impl Direction {
    /// How an over-long input is fitted: truncated on this side, or refused without `truncate`.
    pub fn truncation(self, truncate: bool) -> Truncation {
        match (truncate, self) {
            (false, _) => Truncation::Refuse,
            (true, Self::Right) => Truncation::Right,
            (true, Self::Left) => Truncation::Left,
        }
    }
}

/// For `#[serde(deserialize_with)]` on `truncation_direction` (`null` is the default).
pub fn direction<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Direction, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None => Ok(Direction::Right),
        Some(Value::String(side)) if matches!(side.as_str(), "right" | "Right") => {
            Ok(Direction::Right)
        }
        Some(Value::String(side)) if matches!(side.as_str(), "left" | "Left") => {
            Ok(Direction::Left)
        }
        Some(other) => Err(must_be(
            r#""left" or "right""#,
            &excerpt(&other.to_string()),
        )),
    }
}

/// An optional [`Count`]: `null` (and absence, with a `default`) means `DEFAULT`.
pub fn count_or<'de, D: Deserializer<'de>, const DEFAULT: u64>(
    deserializer: D,
) -> Result<u64, D::Error> {
    Ok(Option::<Count>::deserialize(deserializer)?.map_or(DEFAULT, |Count(count)| count))
}

/// Token ids of the model's vocabulary: integers from 0 to `VOCAB_SIZE - 1`.
pub(super) fn token_ids<E: de::Error>(items: &[Value]) -> Result<Vec<u32>, E> {
    items
        .iter()
        .enumerate()
        .map(|(position, item)| {
            whole_number(item)
                .and_then(|id| u32::try_from(id).ok())
                .filter(|&id| id < VOCAB_SIZE)
                .ok_or_else(|| {
                    E::custom(format!(
                        "must hold token ids from 0 to {}; position {position} is {}",
                        VOCAB_SIZE - 1,
                        excerpt(&item.to_string())
                    ))
                })
        })
        .collect()
}

/// For `#[serde(deserialize_with)]` on `dimensions` (OpenAI's and TEI's): an integer from 1 to
/// the model's width, or `null` for all of them.
pub fn dimensions<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let Some(value) = Option::<Value>::deserialize(deserializer)? else {
        return Ok(None);
    };
    whole_number(&value)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=DIMENSIONS).contains(n))
        .map(Some)
        .ok_or_else(|| {
            let expected = format!("an integer from 1 to {DIMENSIONS}");
            must_be(&expected, &excerpt(&value.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, String> {
        serde_json::from_value(value).map_err(|error| error.to_string())
    }

    #[test]
    fn texts_name_what_they_found() {
        assert_eq!(read::<Text>(json!("a")), Ok(Text("a".into())));
        assert_eq!(
            read::<Text>(json!(null)),
            Err("must be a string, not null".into())
        );
        assert_eq!(
            read::<Texts>(json!(["a", "b"])),
            Ok(Texts(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            read::<Texts>(json!(["a", 3])),
            Err("must be a string, not a number".into())
        );
        for (bad, found) in [
            (json!("a"), "a string"),
            (json!({"0": "a"}), "an object"),
            (json!(null), "null"),
        ] {
            assert_eq!(
                read::<Texts>(bad),
                Err(format!("must be an array of strings, not {found}"))
            );
        }
    }

    #[test]
    fn text_or_texts_keeps_the_shape() {
        assert_eq!(
            read::<TextOrTexts>(json!("x")),
            Ok(TextOrTexts::One("x".into()))
        );
        assert_eq!(
            read::<TextOrTexts>(json!(["x"])),
            Ok(TextOrTexts::Many(vec!["x".into()]))
        );
        for bad in [
            json!(null),
            json!(1),
            json!({"t": "x"}),
            json!(["y", 2]),
            json!(true),
        ] {
            assert!(read::<TextOrTexts>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_are_booleans() {
        assert_eq!(read::<Option<Flag>>(json!(null)), Ok(None));
        assert_eq!(read::<Flag>(json!(false)), Ok(Flag(false)));
        for bad in [json!("no"), json!(1), json!(0)] {
            assert_eq!(
                read::<Flag>(bad.clone()),
                Err(format!(
                    "must be true or false, not {}",
                    super::super::json::type_name(&bad)
                ))
            );
        }
    }

    #[test]
    fn counts_are_integers_of_at_least_one() {
        assert_eq!(read::<Option<Count>>(Value::Null), Ok(None));
        assert_eq!(read::<Count>(json!(1)), Ok(Count(1)));
        assert_eq!(read::<Count>(json!(u64::MAX)), Ok(Count(u64::MAX)));
        assert_eq!(read::<Count>(json!(379.0)), Ok(Count(379)));
        assert_eq!(
            read::<Count>(json!(1e19)),
            Ok(Count(10_000_000_000_000_000_000))
        );
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
            assert_eq!(
                read::<Count>(bad.clone()),
                Err(format!("must be an integer of at least 1, not {bad}")),
            );
        }
    }
}
