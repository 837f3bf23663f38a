//! [`Infer`] inside the component (cargo feature `portable`): sbert-engine runs all-MiniLM-L6-v2 on
//! the model file `models/pack_portable.py` writes, embedded in the wasm, so no host inference is
//! needed. The engine reads the embedded bytes in place; [`pre_initialize`] parses the file's header
//! at build time, so a wizer snapshot holds the weights once (as embedded) plus a few hundred bytes of
//! tensor views.

use std::sync::OnceLock;

use sbert_engine::Model;

use crate::embed::{HiddenStates, Infer, InferError};
use crate::tokenize::TokenBatch;

/// The packed model, 8-byte aligned so that its float32 tensors can be read in place.
#[repr(C, align(8))]
struct Aligned<Bytes: ?Sized>(Bytes);

static PACKED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/all-minilm-l6-v2-portable/model.safetensors"
)));

static MODEL: OnceLock<Result<Model<'static>, String>> = OnceLock::new();

fn model() -> Result<&'static Model<'static>, InferError> {
    MODEL
        .get_or_init(|| Model::from_bytes(&PACKED.0).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| InferError(format!("the embedded model does not load: {e}")))
}

/// Views the embedded model. At build time (wizer), a model that does not load fails the build.
pub fn pre_initialize() {
    if let Err(error) = model() {
        panic!("{error}");
    }
}

pub struct InWasm;

impl Infer for InWasm {
    /// Each row runs unpadded (the tokens its mask keeps); padding positions stay zero, which the
    /// caller's masked mean pooling skips. Token types must be 0: the engine embeds type 0 only.
    fn infer(&self, batch: &TokenBatch) -> Result<HiddenStates, InferError> {
        let model = model()?;
        if batch.token_type_ids.iter().any(|&t| t != 0) {
            return Err(InferError(
                "the in-wasm engine takes single-segment input (token type 0) only".into(),
            ));
        }
        let hidden = model.config().hidden;
        let mut values = vec![0.0; batch.batch * batch.seq * hidden];
        if batch.seq == 0 {
            return Ok(HiddenStates { values, hidden });
        }
        let rows = batch
            .input_ids
            .chunks_exact(batch.seq)
            .zip(batch.attention_mask.chunks_exact(batch.seq));
        for ((ids, mask), out) in rows.zip(values.chunks_exact_mut(batch.seq * hidden)) {
            let kept: Vec<usize> = (0..batch.seq).filter(|&i| mask[i] != 0).collect();
            let tokens = kept
                .iter()
                .map(|&i| {
                    u32::try_from(ids[i]).map_err(|_| {
                        InferError(format!("token id {} is negative or too large", ids[i]))
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            if tokens.is_empty() {
                continue;
            }
            let states = model
                .hidden_states(&tokens)
                .map_err(|e| InferError(e.to_string()))?;
            for (&position, state) in kept.iter().zip(states.chunks_exact(hidden)) {
                out[position * hidden..(position + 1) * hidden].copy_from_slice(state);
            }
        }
        Ok(HiddenStates { values, hidden })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pooling::{l2_normalize, mean_pool};

    /// A padded batch gives, per row, exactly what the engine gives for that row alone.
    #[test]
    fn padded_rows_pool_to_the_engines_own_embedding() {
        let (short, long): (&[u32], &[u32]) = (
            &[101, 7592, 2088, 102],
            &[101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102],
        );
        let batch = TokenBatch::from_sequences(&[short, long]);
        let states = InWasm.infer(&batch).expect("infers");
        let pooled = mean_pool(
            &states.values,
            &batch.attention_mask,
            batch.seq,
            states.hidden,
        );
        for (mut vector, ids) in pooled.into_iter().zip([short, long]) {
            l2_normalize(&mut vector);
            assert_eq!(vector, model().unwrap().embed(ids).unwrap());
        }
    }

    #[test]
    fn a_second_segment_is_refused_not_embedded_as_the_first() {
        let mut batch = TokenBatch::from_sequences(&[&[101, 7592, 102, 2088, 102]]);
        batch.token_type_ids[3] = 1;
        let error = InWasm.infer(&batch).expect_err("token type 1 is refused");
        assert!(error.0.contains("token type 0"), "{}", error.0);
    }
}
