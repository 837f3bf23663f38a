//! sbert-engine: sentence embeddings from all-MiniLM-L6-v2 computed in plain Rust, for builds that
//! cannot reach a host's inference (the portable component runs it inside the wasm).
//!
//! The model is the file `models/pack_portable.py` writes: BERT weights in 8-bit blocks (a float32
//! scale per 32 values), viewed in place. [`Model::embed`] returns what sentence-transformers returns
//! for one sequence: the mean of the last hidden state over its tokens, L2-normalised.

mod forward;
mod kernels;
mod weights;

pub use weights::{Config, LoadError};

use forward::Scratch;
use weights::Weights;

/// A sequence the model cannot take.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmbedError {
    #[error("a sequence needs at least one token")]
    Empty,
    #[error("{tokens} tokens, the model takes at most {max}")]
    TooLong { tokens: usize, max: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    UnknownToken { id: u32, vocab: usize },
}

/// The model, borrowing the packed file's bytes.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    weights: Weights<'a>,
}

impl<'a> Model<'a> {
    /// Reads the packed file in place; `bytes` must be 4-byte aligned.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, LoadError> {
        Ok(Self {
            weights: Weights::parse(bytes)?,
        })
    }

    pub fn config(&self) -> &Config {
        &self.weights.config
    }

    /// The unit-length embedding (`hidden` floats) of one sequence of token ids (`[CLS] … [SEP]`).
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>, EmbedError> {
        let config = &self.weights.config;
        if ids.is_empty() {
            return Err(EmbedError::Empty);
        }
        if ids.len() > config.max_positions {
            return Err(EmbedError::TooLong {
                tokens: ids.len(),
                max: config.max_positions,
            });
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= config.vocab) {
            return Err(EmbedError::UnknownToken {
                id,
                vocab: config.vocab,
            });
        }
        let hidden = forward::hidden_states(&self.weights, ids, &mut Scratch::default());
        Ok(mean_pool_normalized(&hidden, config.hidden))
    }
}

/// Mean over the rows of `[rows, width]`, divided by its L2 norm (at least 1e-12), as
/// sentence-transformers' mean pooling + Normalize do for an unpadded sequence.
fn mean_pool_normalized(hidden: &[f32], width: usize) -> Vec<f32> {
    let rows = hidden.len() / width;
    let mut pooled = vec![0f32; width];
    for row in hidden.chunks_exact(width) {
        pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
    }
    pooled.iter_mut().for_each(|p| *p /= rows as f32);
    let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    pooled.iter_mut().for_each(|p| *p /= norm);
    pooled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_rows_then_normalizes() {
        let pooled = mean_pool_normalized(&[3.0, 0.0, 1.0, 4.0, 0.0, 0.0], 3);
        // mean (3.5, 0, 0.5), norm √12.5
        let norm = 12.5f32.sqrt();
        assert_eq!(pooled, vec![3.5 / norm, 0.0, 0.5 / norm]);
    }

    #[test]
    fn pooling_an_all_zero_state_gives_zeros_not_nan() {
        assert_eq!(mean_pool_normalized(&[0.0; 4], 2), vec![0.0, 0.0]);
    }
}
