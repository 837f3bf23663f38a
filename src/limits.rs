//! The request limits (variables `max_body_bytes`, `max_inputs`, `max_input_chars`), checked
//! before any tokenization or model work so that an oversized request costs almost nothing.

use crate::error::{ApiError, FieldRef};
use crate::inputs::{Input, Inputs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Inputs per request, counted as sent (duplicates included).
    pub max_inputs: usize,
    /// Characters (Unicode scalar values, not bytes) per text input.
    pub max_input_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_inputs: 2048,
            max_input_chars: 20_000,
        }
    }
}

impl Limits {
    pub fn check_body(&self, body: &[u8]) -> Result<(), ApiError> {
        self.check_body_length(body.len())
    }

    /// Refuses a body by its `Content-Length` before a byte of it is read. A missing or
    /// unparsable header passes: the body read afterwards is still checked by [`Self::check_body`].
    pub fn check_declared_length(&self, content_length: Option<&str>) -> Result<(), ApiError> {
        let Some(digits) = content_length.map(str::trim) else {
            return Ok(());
        };
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return Ok(());
        }
        // Too many digits for a usize is certainly over the limit.
        self.check_body_length(digits.parse().unwrap_or(usize::MAX))
    }

    fn check_body_length(&self, length: usize) -> Result<(), ApiError> {
        if length > self.max_body_bytes {
            return Err(ApiError::TooLarge {
                at: None,
                problem: format!(
                    "The request body is larger than the limit of {} bytes.",
                    self.max_body_bytes
                ),
            });
        }
        Ok(())
    }

    pub fn check_inputs(&self, inputs: &Inputs) -> Result<(), ApiError> {
        let count = inputs.len();
        if count > self.max_inputs {
            let (at, problem) = match inputs.field_names()[..] {
                [field] => (
                    Some(FieldRef::whole(field)),
                    format!("has {count} inputs; the limit is {}", self.max_inputs),
                ),
                _ => (
                    None,
                    format!(
                        "The request has {count} inputs; the limit is {}.",
                        self.max_inputs
                    ),
                ),
            };
            return Err(ApiError::TooLarge { at, problem });
        }
        for (at, input) in inputs.located() {
            let Input::Text(text) = input else { continue };
            // A text has at most as many characters as bytes: only long ones need counting.
            if text.len() > self.max_input_chars {
                let chars = text.chars().count();
                if chars > self.max_input_chars {
                    return Err(ApiError::TooLarge {
                        at: Some(at),
                        problem: format!(
                            "has {chars} characters; the limit is {}",
                            self.max_input_chars
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::InputField;

    const SMALL: Limits = Limits {
        max_body_bytes: 10,
        max_inputs: 3,
        max_input_chars: 4,
    };

    fn texts(texts: &[String]) -> Inputs<'_> {
        Inputs::new(vec![InputField::texts("sentences", texts)])
    }

    fn owned(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|&t| t.to_owned()).collect()
    }

    #[test]
    fn the_body_may_be_exactly_the_limit() {
        assert!(SMALL.check_body(&[b' '; 10]).is_ok());
        let error = SMALL.check_body(&[b' '; 11]).unwrap_err();
        assert_eq!(error.status(), 413);
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        assert!(SMALL.check_declared_length(Some("10")).is_ok());
        assert!(SMALL.check_declared_length(None).is_ok());
        assert!(SMALL.check_declared_length(Some("garbage")).is_ok());
        assert_eq!(
            SMALL
                .check_declared_length(Some(" 11"))
                .unwrap_err()
                .status(),
            413
        );
        assert!(SMALL
            .check_declared_length(Some("99999999999999999999999"))
            .is_err());
    }

    #[test]
    fn the_input_count_may_be_exactly_the_limit() {
        assert!(SMALL.check_inputs(&texts(&owned(&["a", "a", "a"]))).is_ok());
        let error = SMALL
            .check_inputs(&texts(&owned(&["a", "a", "a", "a"])))
            .unwrap_err();
        assert!(matches!(
            error,
            ApiError::TooLarge { at: Some(FieldRef { field: "sentences", item: None }), ref problem }
                if problem.contains("4 inputs")
        ));
    }

    #[test]
    fn inputs_of_several_fields_count_together() {
        let b = owned(&["b1", "b2", "b3"]);
        let inputs = Inputs::new(vec![
            InputField::single("a", Input::Text("a")),
            InputField::texts("b", &b),
        ]);
        let error = SMALL.check_inputs(&inputs).unwrap_err();
        assert!(
            matches!(error, ApiError::TooLarge { at: None, .. }),
            "{error}"
        );
    }

    #[test]
    fn characters_are_counted_not_bytes_and_the_input_is_named() {
        assert!(SMALL.check_inputs(&texts(&owned(&["éééé"]))).is_ok());
        let error = SMALL
            .check_inputs(&texts(&owned(&["ok", "abcde"])))
            .unwrap_err();
        assert!(matches!(
            error,
            ApiError::TooLarge { at: Some(at), ref problem }
                if at == FieldRef::item("sentences", 1) && problem.contains("5 characters")
        ));
    }

    #[test]
    fn token_inputs_have_no_character_limit() {
        let ids = [1u32; 10];
        let inputs = Inputs::new(vec![InputField::single("input", Input::Tokens(&ids))]);
        assert!(SMALL.check_inputs(&inputs).is_ok());
    }
}
