//! `fermyon:spin/llm@2.0.0` for components, as Spin answers it, with embeddings computed like
//! sentence-transformers: `generate-embeddings` runs the models configured in the component's `llm_models`
//! on the wasi:nn graphs they name (the same ONNX Runtime sessions and batcher), `infer` is not offered.
//!
//! As in Spin, a component may use only the models its manifest lists in `ai_models`; that check comes first,
//! with Spin's own error text, so an app that runs here also runs on `spin up` and the other way round.

mod config;
mod embeddings;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::bindings::fermyon::spin::llm::{
    EmbeddingsResult, EmbeddingsUsage, Error, Host, InferencingParams, InferencingResult,
};
use crate::nn::Nn;

pub use config::{CheckedModels, ModelConfig};
use embeddings::EmbeddingModel;

/// Spin's answer to `infer` when it has no local inferencing engine; sbert-host runs no text generation.
const INFER_NOT_SUPPORTED: &str = "Local LLM operations are not supported in this version of Spin.";

/// A component's view of the llm interface: the models it declared, and the embedding models the host serves
/// it. The default allows nothing and serves nothing.
#[derive(Clone, Default)]
pub struct Llm {
    allowed: Arc<HashSet<String>>,
    models: Arc<HashMap<String, EmbeddingModel>>,
}

impl Llm {
    /// `allowed`: the component's `ai_models`. Each of `models` gets its tokenizer read and its graph taken
    /// from `nn`, whose graphs must already be loaded.
    pub fn load(allowed: &[String], models: &CheckedModels, nn: &Nn) -> Result<Self> {
        let models = models
            .0
            .iter()
            .map(|(name, config)| {
                let graph = nn.graph(&config.graph).with_context(|| {
                    format!("llm model `{name}`: graph `{}` is not loaded", config.graph)
                })?;
                let model = EmbeddingModel::load(config, graph)
                    .with_context(|| format!("llm model `{name}`"))?;
                Ok((name.clone(), model))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            allowed: Arc::new(allowed.iter().cloned().collect()),
            models: Arc::new(models),
        })
    }

    /// Spin's refusal of a model the component did not declare, word for word.
    fn check_access(&self, model: &str) -> Result<(), Error> {
        if self.allowed.contains(model) {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "The component does not have access to use '{model}'. To give the component access, add '{model}' to the 'ai_models' key for the component in your spin.toml manifest"
            )))
        }
    }
}

impl Host for Llm {
    fn infer(
        &mut self,
        model: String,
        _prompt: String,
        _params: Option<InferencingParams>,
    ) -> Result<InferencingResult, Error> {
        self.check_access(&model)?;
        Err(Error::RuntimeError(INFER_NOT_SUPPORTED.into()))
    }

    fn generate_embeddings(
        &mut self,
        model: String,
        text: Vec<String>,
    ) -> Result<EmbeddingsResult, Error> {
        self.check_access(&model)?;
        let embedding_model = self.models.get(&model).ok_or(Error::ModelNotSupported)?;
        let embedded = embedding_model.embed(&text).map_err(|error| {
            Error::RuntimeError(format!("Error occurred generating embeddings: {error:#}"))
        })?;
        Ok(EmbeddingsResult {
            embeddings: embedded.vectors,
            usage: EmbeddingsUsage {
                prompt_token_count: u32::try_from(embedded.tokens).unwrap_or(u32::MAX),
            },
        })
    }
}

#[cfg(test)]
mod tests;
