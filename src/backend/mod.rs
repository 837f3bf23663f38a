//! The inference seam: token sequences in, one unit-length embedding per sequence out.
//!
//! One backend per build, chosen by a cargo feature of this crate; `wasm::backend()` creates it.
//! Adding one is a file here, a `mod` line below and a line in `wasm::backend()`:
//! - `wasi-nn` (default, [`wasi_nn`]): the host's wasi:nn runs the pooled ONNX graph (sbert-host).
//! - `spin-llm` ([`spin_llm`]): Spin's llm interface, one text per call (stock Spin, Fermyon Cloud,
//!   sbert-host).
//! - `portable` ([`in_wasm`]): sbert-engine runs the model inside the wasm (any Spin host).
//! - `remote` ([`remote`]): an inference service (sbert-host serving the fast build) runs it, reached over
//!   outbound HTTP (the edge build, any Spin host).

#[cfg(feature = "portable")]
pub mod in_wasm;
#[cfg(feature = "remote")]
pub mod remote;
#[cfg(feature = "spin-llm")]
pub mod spin_llm;
#[cfg(feature = "wasi-nn")]
pub mod wasi_nn;

use crate::embed::model::Model;

/// One input ready for the model: `[CLS] … [SEP]` ids already truncated to the model's limit, and,
/// for text inputs, the exact prefix of the text those ids cover (backends that take text, like
/// Spin's llm interface, send this so the host tokenizes to the same ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence<'a> {
    pub ids: &'a [u32],
    pub text: Option<&'a str>,
}

pub trait Infer {
    /// One unit-length embedding (384 floats) per sequence, in order.
    fn embed(&self, model: &Model, sequences: &[Sequence<'_>])
        -> Result<Vec<Vec<f32>>, InferError>;
}

/// A failure of the model backend: its kind decides what the client is answered, its detail is for the
/// log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct InferError {
    pub kind: InferErrorKind,
    pub detail: String,
}

/// What kind of failure a backend met. Backends inside the host's reach fail with [`Self::Failed`]; the
/// others are the edge's, whose model runs in an inference service behind it (`remote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferErrorKind {
    /// The backend could not embed (an internal error).
    Failed,
    /// The inference service cannot be reached, or did not answer in time; retrying later may succeed.
    Unavailable { retry_after_seconds: u64 },
    /// The inference service refused the work for now, asking to retry after this long.
    Overloaded { retry_after_seconds: u64 },
    /// The inference service refused this service's request (its credentials, its shape) or answered
    /// something unusable.
    BadGateway,
}

impl InferError {
    /// A [`InferErrorKind::Failed`] error.
    pub fn new(detail: impl Into<String>) -> Self {
        Self::of(InferErrorKind::Failed, detail)
    }

    pub fn of(kind: InferErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// Sequences as the int64 inputs of a BERT graph, row-major `[rows, longest]`: every row padded
/// to the longest one with id 0, mask 0 and type 0 (no sorting, no chunking: the host batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub rows: usize,
    pub longest: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub token_type_ids: Vec<i64>,
}

/// Id, attention mask and token type of padding positions (`[PAD]` is id 0).
const PAD: i64 = sbert_model::PAD as i64;

impl TokenBatch {
    /// Single-segment sequences (token type 0 throughout).
    pub fn new(sequences: &[Sequence<'_>]) -> Self {
        let rows = sequences.len();
        let longest = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let mut input_ids = Vec::with_capacity(rows * longest);
        let mut attention_mask = Vec::with_capacity(rows * longest);
        for sequence in sequences {
            let padding = longest - sequence.ids.len();
            input_ids.extend(sequence.ids.iter().map(|&id| i64::from(id)));
            input_ids.extend(std::iter::repeat_n(PAD, padding));
            attention_mask.extend(std::iter::repeat_n(1, sequence.ids.len()));
            attention_mask.extend(std::iter::repeat_n(PAD, padding));
        }
        Self {
            rows,
            longest,
            input_ids,
            attention_mask,
            token_type_ids: vec![PAD; rows * longest],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[u32]) -> Sequence<'_> {
        Sequence { ids, text: None }
    }

    #[test]
    fn rows_keep_their_order_and_are_padded_to_the_longest() {
        let batch = TokenBatch::new(&[ids(&[101, 7632, 102]), ids(&[101, 7592, 2088, 102])]);
        assert_eq!((batch.rows, batch.longest), (2, 4));
        assert_eq!(
            batch.input_ids,
            vec![101, 7632, 102, 0, 101, 7592, 2088, 102]
        );
        assert_eq!(batch.attention_mask, vec![1, 1, 1, 0, 1, 1, 1, 1]);
        assert_eq!(batch.token_type_ids, vec![0; 8]);
    }

    #[test]
    fn an_empty_batch_has_no_rows() {
        let batch = TokenBatch::new(&[]);
        assert_eq!((batch.rows, batch.longest), (0, 0));
        assert!(batch.input_ids.is_empty());
    }
}
