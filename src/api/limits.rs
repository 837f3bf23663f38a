//! The input limits (variables `max_inputs`, `max_input_chars`), checked before any
//! tokenization or model work so that an oversized request costs almost nothing. (The body's
//! size is checked by the router, before the body is read.)

use super::inputs::Inputs;
use crate::config::Limits;
use crate::embed::Input;
use crate::http::error::{ApiError, FieldRef};

/// Refuses a request with more inputs, or a longer text input, than `limits` allow.
pub fn check_inputs(limits: &Limits, inputs: &Inputs) -> Result<(), ApiError> {
    let count = inputs.len();
    if count > limits.max_inputs {
        let (at, problem) = match inputs.field_names()[..] {
            [field] => (
                Some(FieldRef::whole(field)),
                format!("has {count} inputs; the limit is {}", limits.max_inputs),
            ),
            _ => (
                None,
                format!(
                    "The request has {count} inputs; the limit is {}.",
                    limits.max_inputs
                ),
            ),
        };
        return Err(ApiError::TooLarge { at, problem });
    }
    for (at, input) in inputs.located() {
        let Input::Text(text) = input else { continue };
        // A text has at most as many characters as bytes: only long ones need counting.
        if text.len() > limits.max_input_chars {
            let chars = text.chars().count();
            if chars > limits.max_input_chars {
                return Err(ApiError::TooLarge {
                    at: Some(at),
                    problem: format!(
                        "has {chars} characters; the limit is {}",
                        limits.max_input_chars
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::inputs::InputField;

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
    fn the_input_count_may_be_exactly_the_limit() {
        assert!(check_inputs(&SMALL, &texts(&owned(&["a", "a", "a"]))).is_ok());
        let error = check_inputs(&SMALL, &texts(&owned(&["a", "a", "a", "a"]))).unwrap_err();
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
        let error = check_inputs(&SMALL, &inputs).unwrap_err();
        assert!(
            matches!(error, ApiError::TooLarge { at: None, .. }),
            "{error}"
        );
    }

    #[test]
    fn characters_are_counted_not_bytes_and_the_input_is_named() {
        assert!(check_inputs(&SMALL, &texts(&owned(&["éééé"]))).is_ok());
        let error = check_inputs(&SMALL, &texts(&owned(&["ok", "abcde"]))).unwrap_err();
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
        assert!(check_inputs(&SMALL, &inputs).is_ok());
    }
}
