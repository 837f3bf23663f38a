//! What a request asks to embed, grouped by the request field each input came from, so that
//! an error about the request's input 7 can say "`sentences` item 7".

use crate::embed::Input;
use crate::http::error::FieldRef;

/// The inputs of one request field: a single value (`"query": "…"`) or a list (`"sentences": […]`).
#[derive(Debug, Clone, PartialEq)]
pub struct InputField<'a> {
    field: &'static str,
    list: bool,
    inputs: Vec<Input<'a>>,
}

impl<'a> InputField<'a> {
    /// `list`: the field is an array, whose items errors name one by one.
    pub fn new(field: &'static str, list: bool, inputs: Vec<Input<'a>>) -> Self {
        Self {
            field,
            list,
            inputs,
        }
    }

    pub fn single(field: &'static str, input: Input<'a>) -> Self {
        Self::new(field, false, vec![input])
    }

    pub fn texts(field: &'static str, texts: &'a [String]) -> Self {
        Self::new(
            field,
            true,
            texts.iter().map(|text| Input::Text(text)).collect(),
        )
    }
}

/// A request's inputs, field by field, in the order they are embedded and answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs<'a>(Vec<InputField<'a>>);

impl<'a> Inputs<'a> {
    pub fn new(fields: Vec<InputField<'a>>) -> Self {
        Self(fields)
    }

    /// Every input, in order.
    pub fn all(&self) -> Vec<Input<'a>> {
        self.0
            .iter()
            .flat_map(|field| field.inputs.iter().copied())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|field| field.inputs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The field names, for errors about the request as a whole.
    pub fn field_names(&self) -> Vec<&'static str> {
        self.0.iter().map(|field| field.field).collect()
    }

    /// Each input with the field (and item) it came from.
    pub fn located(&self) -> impl Iterator<Item = (FieldRef, Input<'a>)> + '_ {
        self.0.iter().flat_map(|field| {
            field.inputs.iter().enumerate().map(|(item, &input)| {
                let at = if field.list {
                    FieldRef::item(field.field, item)
                } else {
                    FieldRef::whole(field.field)
                };
                (at, input)
            })
        })
    }

    /// Where the request's `index`-th input (counting across fields) came from.
    pub fn locate(&self, index: usize) -> Option<FieldRef> {
        self.located().nth(index).map(|(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_flattened_and_located_across_fields() {
        let b = ["x".to_owned(), "y".to_owned()];
        let inputs = Inputs::new(vec![
            InputField::single("a", Input::Text("first")),
            InputField::texts("b", &b),
        ]);
        assert_eq!(
            inputs.all(),
            vec![Input::Text("first"), Input::Text("x"), Input::Text("y")]
        );
        assert_eq!(inputs.len(), 3);
        assert_eq!(inputs.locate(0), Some(FieldRef::whole("a")));
        assert_eq!(inputs.locate(2), Some(FieldRef::item("b", 1)));
        assert_eq!(inputs.locate(3), None);
        assert_eq!(inputs.field_names(), vec!["a", "b"]);
    }

    #[test]
    fn an_empty_list_has_no_inputs() {
        let inputs = Inputs::new(vec![InputField::texts("sentences", &[])]);
        assert!(inputs.is_empty());
        assert!(inputs.all().is_empty());
    }
}
