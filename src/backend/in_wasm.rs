//! [`Infer`] inside the component (cargo feature `portable`): sbert-engine runs all-MiniLM-L6-v2 on
//! the model file `models/pack_portable.py` writes, embedded in the wasm, so no host inference is
//! needed. The engine reads the embedded bytes in place; [`pre_initialize`] parses the file's header
//! at build time, so a wizer snapshot holds the weights once (as embedded) plus a few hundred bytes of
//! tensor views. Both served model names run on these 8-bit weights in this build.

use std::sync::OnceLock;

use sbert_engine::Model as Engine;

use super::{Infer, InferError, Sequence};
use crate::embed::model::Model;

/// The packed model, 8-byte aligned so that its float32 tensors can be read in place.
#[repr(C, align(8))]
struct Aligned<Bytes: ?Sized>(Bytes);

static PACKED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/all-minilm-l6-v2-portable/model.safetensors"
)));

static ENGINE: OnceLock<Result<Engine<'static>, String>> = OnceLock::new();

fn engine() -> Result<&'static Engine<'static>, InferError> {
    ENGINE
        .get_or_init(|| Engine::from_bytes(&PACKED.0).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| InferError::new(format!("the embedded model does not load: {e}")))
}

/// Views the embedded model. At build time (wizer), a model that does not load fails the build.
pub fn pre_initialize() {
    if let Err(error) = engine() {
        panic!("{error}");
    }
}

pub struct InWasm;

impl Infer for InWasm {
    /// Each sequence runs alone, unpadded: nothing to mask, and no work on padding.
    fn embed(
        &self,
        model: &Model,
        sequences: &[Sequence<'_>],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let engine = engine()?;
        if engine.config().hidden != model.dimensions {
            return Err(InferError::new(format!(
                "the embedded model is {} wide, `{}` is {}",
                engine.config().hidden,
                model.id,
                model.dimensions
            )));
        }
        sequences
            .iter()
            .map(|sequence| {
                engine
                    .embed(sequence.ids)
                    .map_err(|e| InferError::new(e.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::model::ModelKind;

    fn ids(ids: &[u32]) -> Sequence<'_> {
        Sequence { ids, text: None }
    }

    /// In order, unit length, and each as that sequence alone gives it (no state carried between them).
    #[test]
    fn one_unit_vector_per_sequence_in_order() {
        let model = Model::new(ModelKind::Fp32, String::new());
        let (hello, cat) = (
            [101, 7592, 2088, 102],
            [101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102],
        );
        let both = InWasm.embed(&model, &[ids(&hello), ids(&cat)]).unwrap();
        assert_eq!(both.len(), 2);
        for (vector, sequence) in both.iter().zip([&hello[..], &cat[..]]) {
            assert_eq!(vector.len(), model.dimensions);
            let norm: f32 = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
            assert_eq!(vector, &InWasm.embed(&model, &[ids(sequence)]).unwrap()[0]);
        }
        assert_ne!(both[0], both[1]);
    }

    #[test]
    fn an_id_outside_the_vocabulary_is_an_error_not_a_panic() {
        let model = Model::new(ModelKind::Fp32, String::new());
        let error = InWasm
            .embed(&model, &[ids(&[101, 999_999, 102])])
            .unwrap_err();
        assert!(error.detail.contains("999999"), "{}", error.detail);
    }
}
