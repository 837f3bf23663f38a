//! Texts → normalized sentence embeddings: tokenize, run the model through [`Infer`], pool.
//!
//! The model is behind a trait so this path runs in native unit tests with a fake; in the
//! component it is `wasm::nn`, the wasi:nn adapter.

use crate::pooling::{l2_normalize, mean_pool};
use crate::tokenize::{TextTokenizer, TokenBatch, TokenizeError};

/// The model's last hidden state for a batch: row-major `[batch, seq, hidden]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenStates {
    pub values: Vec<f32>,
    pub hidden: usize,
}

/// Runs the sentence-transformer on a tokenized batch.
pub trait Infer {
    fn infer(&self, batch: &TokenBatch) -> Result<HiddenStates, InferError>;
}

/// A failure of the model backend, described for the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InferError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("tokenizer: {0}")]
    Tokenize(#[from] TokenizeError),
    #[error("inference: {0}")]
    Infer(#[from] InferError),
    #[error("the model returned {values} values of width {hidden} for a [{batch}, {seq}] batch")]
    OutputShape {
        values: usize,
        hidden: usize,
        batch: usize,
        seq: usize,
    },
}

pub struct Embedder<'a> {
    tokenizer: &'a TextTokenizer,
    infer: &'a dyn Infer,
}

impl<'a> Embedder<'a> {
    pub fn new(tokenizer: &'a TextTokenizer, infer: &'a dyn Infer) -> Self {
        Self { tokenizer, infer }
    }

    /// One unit-length embedding per text, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.tokenizer.tokenize(texts)?;
        let states = self.infer.infer(&batch)?;
        if states.hidden == 0 || states.values.len() != batch.batch * batch.seq * states.hidden {
            return Err(EmbedError::OutputShape {
                values: states.values.len(),
                hidden: states.hidden,
                batch: batch.batch,
                seq: batch.seq,
            });
        }
        let mut embeddings = mean_pool(
            &states.values,
            &batch.attention_mask,
            batch.seq,
            states.hidden,
        );
        embeddings
            .iter_mut()
            .for_each(|embedding| l2_normalize(embedding));
        Ok(embeddings)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::tokenize;

    /// A stand-in model whose token vector is `[id % 10, position + 1, 1]`, so pooled results are
    /// predictable and padding that leaked into the mean would show.
    #[derive(Default)]
    pub(crate) struct FakeModel {
        pub calls: Cell<usize>,
    }

    impl Infer for FakeModel {
        fn infer(&self, batch: &TokenBatch) -> Result<HiddenStates, InferError> {
            self.calls.set(self.calls.get() + 1);
            let values = batch
                .input_ids
                .iter()
                .enumerate()
                .flat_map(|(i, &id)| [(id % 10) as f32, (i % batch.seq + 1) as f32, 1.0])
                .collect();
            Ok(HiddenStates { values, hidden: 3 })
        }
    }

    struct BrokenModel(HiddenStates);

    impl Infer for BrokenModel {
        fn infer(&self, _: &TokenBatch) -> Result<HiddenStates, InferError> {
            Ok(self.0.clone())
        }
    }

    fn embed(model: &dyn Infer, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Embedder::new(tokenize::shared().unwrap(), model).embed(texts)
    }

    #[test]
    fn pools_over_real_tokens_and_normalizes() {
        // "hi" → [CLS]=101, "hi"=7632, [SEP]=102 at positions 1..=3.
        let embedding = &embed(&FakeModel::default(), &["hi"]).unwrap()[0];
        let mean = [(1.0 + 2.0 + 2.0) / 3.0, 2.0, 1.0];
        let norm = mean.iter().map(|v: &f32| v * v).sum::<f32>().sqrt();
        for (got, want) in embedding.iter().zip(mean.map(|v| v / norm)) {
            assert!((got - want).abs() < 1e-6, "{embedding:?}");
        }
    }

    #[test]
    fn batching_with_padding_does_not_change_an_embedding() {
        let model = FakeModel::default();
        let together = embed(&model, &["hello world", "hi"]).unwrap();
        let alone = [
            embed(&model, &["hello world"]).unwrap(),
            embed(&model, &["hi"]).unwrap(),
        ]
        .concat();
        assert_eq!(together, alone);
    }

    #[test]
    fn no_texts_means_no_model_call() {
        let model = FakeModel::default();
        assert!(embed(&model, &[]).unwrap().is_empty());
        assert_eq!(model.calls.get(), 0);
    }

    #[test]
    fn a_wrongly_shaped_output_is_an_error() {
        let model = BrokenModel(HiddenStates {
            values: vec![0.0; 5],
            hidden: 384,
        });
        assert!(matches!(
            embed(&model, &["hi"]),
            Err(EmbedError::OutputShape { values: 5, .. })
        ));
        let model = BrokenModel(HiddenStates {
            values: Vec::new(),
            hidden: 0,
        });
        assert!(matches!(
            embed(&model, &["hi"]),
            Err(EmbedError::OutputShape { .. })
        ));
    }
}
