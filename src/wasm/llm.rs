//! [`Embeddings`] over Spin's `fermyon:spin/llm@2.0.0`, through spin-sdk's own binding (the spin-llm build).

use crate::backend::spin_llm::Embeddings;
use crate::backend::InferError;

pub struct SpinLlmHost;

impl Embeddings for SpinLlmHost {
    fn generate(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
        spin_sdk::llm::generate_embeddings(spin_sdk::llm::EmbeddingModel::Other(model), texts)
            .map(|result| result.embeddings)
            .map_err(|error| InferError::new(format!("Spin llm generate-embeddings: {error:?}")))
    }
}
