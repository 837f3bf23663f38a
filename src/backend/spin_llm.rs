//! [`Infer`] over Spin's own `fermyon:spin/llm@2.0.0` `generate-embeddings` (model `all-minilm-l6-v2`): the
//! host tokenizes, runs and pools. This build imports nothing a Spin host lacks, so it runs on stock
//! `spin up`, Fermyon Cloud and sbert-host alike.
//!
//! One text per call. Stock Spin pads a call's texts to the longest and averages over the padding (no
//! attention mask), which measured a mean cosine of 0.66 (minimum 0.12) against sentence-transformers with
//! 16 texts per call, while one text per call matched it (≥ 0.999998). sbert-host pools over the mask either
//! way, but the component cannot tell which host it runs on.
//!
//! Each call sends the sequence's text ([`Sequence::text`], the prefix that its truncated ids cover): the
//! host's tokenizer (the model's, truncating at 256 tokens on sbert-host and in the `tokenizer.json` that
//! `make models` lays out for stock Spin) turns it into the same ids. Token-id inputs have no text: they are
//! decoded with the model's tokenizer, and the host embeds the decoded text. Ids that a tokenizer produced
//! from text decode to text that tokenizes back to them; any other sequence of ids is embedded as the text
//! it spells (documented in docs/deploy.md).
//!
//! The llm call itself is behind [`Embeddings`] (`wasm::llm` in the component), so this file is plain Rust,
//! tested natively.

use super::{Infer, InferError, Sequence};
use crate::embed::model::{Model, ModelKind};
use crate::embed::tokenize;

/// The only embedding model Spin hosts know.
pub const SPIN_MODEL: &str = "all-minilm-l6-v2";

/// One `generate-embeddings` call: one vector per text, in order.
pub trait Embeddings {
    fn generate(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, InferError>;
}

/// Turns token ids (with `[CLS]` and `[SEP]`) back into text, for inputs that came as ids.
pub trait Decode {
    fn decode(&self, ids: &[u32]) -> Result<String, InferError>;
}

/// The model's tokenizer embedded in the component ([`tokenize::shared`]).
pub struct EmbeddedTokenizer;

impl Decode for EmbeddedTokenizer {
    fn decode(&self, ids: &[u32]) -> Result<String, InferError> {
        tokenize::shared()
            .and_then(|tokenizer| tokenizer.decode(ids))
            .map_err(|error| InferError::new(error.to_string()))
    }
}

pub struct SpinLlm<E, D> {
    pub llm: E,
    pub tokenizer: D,
}

impl<E: Embeddings, D: Decode> Infer for SpinLlm<E, D> {
    fn embed(
        &self,
        model: &Model,
        sequences: &[Sequence<'_>],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        if model.kind != ModelKind::Fp32 {
            return Err(InferError::new(format!(
                "this build embeds with the Spin host's `{SPIN_MODEL}` only, not `{}`",
                model.id
            )));
        }
        sequences
            .iter()
            .map(|sequence| {
                let text = match sequence.text {
                    Some(text) => text.to_owned(),
                    None => self.tokenizer.decode(sequence.ids)?,
                };
                let mut vectors = self.llm.generate(SPIN_MODEL, &[text])?;
                match (vectors.pop(), vectors.is_empty()) {
                    (Some(vector), true) if vector.len() == model.dimensions => Ok(vector),
                    (vector, _) => Err(InferError::new(format!(
                        "generate-embeddings answered one text with {} vector(s) of {} values, expected one of {}",
                        vectors.len() + usize::from(vector.is_some()),
                        vector.map_or(0, |v| v.len()),
                        model.dimensions
                    ))),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::embed::model::DIMENSIONS;

    /// Records each call; answers each text with a vector that says which call it was.
    #[derive(Default)]
    struct FakeLlm {
        calls: RefCell<Vec<(String, Vec<String>)>>,
        reply_vectors: Option<usize>,
    }

    impl Embeddings for FakeLlm {
        fn generate(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
            let mut calls = self.calls.borrow_mut();
            calls.push((model.to_owned(), texts.to_vec()));
            let call = calls.len() as f32;
            let count = self.reply_vectors.unwrap_or(texts.len());
            Ok(vec![vec![call; DIMENSIONS]; count])
        }
    }

    /// Spells ids as text, `[CLS]`/`[SEP]` left out, like the model's tokenizer decodes "hello world".
    struct FakeDecoder;

    impl Decode for FakeDecoder {
        fn decode(&self, ids: &[u32]) -> Result<String, InferError> {
            let inner = &ids[1..ids.len() - 1];
            Ok(inner
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" "))
        }
    }

    fn fp32() -> Model {
        Model::new(ModelKind::Fp32, String::new())
    }

    #[test]
    fn one_text_per_call_in_order_sending_each_sequences_text() {
        let backend = SpinLlm {
            llm: FakeLlm::default(),
            tokenizer: FakeDecoder,
        };
        let sequences = [
            Sequence {
                ids: &[101, 7592, 2088, 102],
                text: Some("hello world"),
            },
            Sequence {
                ids: &[101, 7632, 102],
                text: Some("hi"),
            },
        ];
        let vectors = backend.embed(&fp32(), &sequences).unwrap();
        assert_eq!(vectors, vec![vec![1.0; DIMENSIONS], vec![2.0; DIMENSIONS]]);
        let calls = backend.llm.calls.borrow();
        assert_eq!(
            *calls,
            vec![
                (SPIN_MODEL.to_string(), vec!["hello world".to_string()]),
                (SPIN_MODEL.to_string(), vec!["hi".to_string()]),
            ]
        );
    }

    #[test]
    fn token_ids_are_sent_as_their_decoded_text() {
        let backend = SpinLlm {
            llm: FakeLlm::default(),
            tokenizer: FakeDecoder,
        };
        let sequence = Sequence {
            ids: &[101, 7592, 2088, 102],
            text: None,
        };
        backend.embed(&fp32(), &[sequence]).unwrap();
        assert_eq!(backend.llm.calls.borrow()[0].1, ["7592 2088"]);
    }

    #[test]
    fn no_sequences_no_calls() {
        let backend = SpinLlm {
            llm: FakeLlm::default(),
            tokenizer: FakeDecoder,
        };
        assert!(backend.embed(&fp32(), &[]).unwrap().is_empty());
        assert!(backend.llm.calls.borrow().is_empty());
    }

    #[test]
    fn a_host_answering_with_the_wrong_count_is_an_error() {
        for count in [0, 2] {
            let backend = SpinLlm {
                llm: FakeLlm {
                    reply_vectors: Some(count),
                    ..FakeLlm::default()
                },
                tokenizer: FakeDecoder,
            };
            let sequence = Sequence {
                ids: &[101, 102],
                text: Some(""),
            };
            let error = backend.embed(&fp32(), &[sequence]).unwrap_err();
            assert!(
                error.detail.contains(&format!("with {count} vector(s)")),
                "{error}"
            );
        }
    }

    #[test]
    fn the_models_tokenizer_decodes_ids_of_text_to_text_with_the_same_ids() {
        let tokenizer = tokenize::shared().unwrap();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/reference/all-minilm-l6-v2.embeddings.json"
        );
        let reference: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("the shared reference")).unwrap();
        for item in reference["items"].as_array().unwrap() {
            let text = item["text"].as_str().unwrap();
            let ids = tokenize::fit(tokenizer.encode(text).unwrap(), true).unwrap();
            let decoded = EmbeddedTokenizer.decode(&ids).unwrap();
            let again = tokenize::fit(tokenizer.encode(&decoded).unwrap(), true).unwrap();
            assert_eq!(again, ids, "{text:?} decoded to {decoded:?}");
        }
    }

    #[test]
    fn only_the_model_spin_serves() {
        let backend = SpinLlm {
            llm: FakeLlm::default(),
            tokenizer: FakeDecoder,
        };
        let int8 = Model::new(ModelKind::Int8, String::new());
        let sequence = Sequence {
            ids: &[101, 102],
            text: Some(""),
        };
        assert!(backend.embed(&int8, &[sequence]).is_err());
        assert!(backend.llm.calls.borrow().is_empty());
    }
}
