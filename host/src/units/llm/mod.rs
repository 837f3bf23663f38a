//! `fermyon:spin/llm@2.0.0` for components, as Spin answers it, with embeddings computed like
//! sentence-transformers: `generate-embeddings` runs the models configured in the component's `llm_models`
//! on the wasi:nn graphs they name (the same ONNX Runtime sessions and batcher), `infer` is not offered.
//!
//! As in Spin, a component may use only the models its manifest lists in `ai_models`; that check comes first,
//! with Spin's own error text, so an app that runs here also runs on `spin up` and the other way round.

mod config;
mod embeddings;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Deserialize;
use wasmtime::component::{HasSelf, Linker};

use crate::instance::RequestState;
use crate::unit::{ComponentIndex, Configure, InstanceBuilder, NoFlags, Start, Unit};
use crate::units::nn::{Nn, WasiNn};
use bindings::fermyon::spin::llm::{
    self, EmbeddingsResult, EmbeddingsUsage, Error, Host, InferencingParams, InferencingResult,
};

pub use config::{CheckedModels, ModelConfig, RuntimeConfig};
use embeddings::EmbeddingModel;

/// Host bindings for `fermyon:spin/llm@2.0.0`, from the WIT that `scripts/fetch_wit.py` copies out of spin-sdk.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/spin",
        inline: "
            package sbert:llm;

            world llm {
                import fermyon:spin/llm@2.0.0;
            }
        ",
    });
}

/// The llm unit's key of `[component.<id>.tool.sbert-host]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Embedding models for `fermyon:spin/llm` `generate-embeddings`, by the model name the component passes.
    #[serde(default)]
    llm_models: BTreeMap<String, ModelConfig>,
}

/// `fermyon:spin/llm` for the app's components, on wasi:nn's graphs.
#[derive(Default)]
pub struct Llm {
    /// Per served component: its `ai_models` and its checked models.
    configured: Vec<(Vec<String>, CheckedModels)>,
    /// Per served component: what its requests see.
    components: Vec<ComponentLlm>,
}

impl Unit for Llm {
    const NAME: &'static str = "llm";
    type Flags = NoFlags;
    type Tool = Tool;
    type RuntimeConfig = RuntimeConfig;

    fn new(_: NoFlags) -> Self {
        Self::default()
    }

    fn configure(
        &mut self,
        ctx: &Configure<'_>,
        tools: Vec<Tool>,
        runtime_config: RuntimeConfig,
    ) -> Result<()> {
        runtime_config.check()?;
        let nn = ctx.unit::<WasiNn>();
        let no_graphs = BTreeMap::new();
        for (component, tool) in ctx.components.iter().zip(tools) {
            let graphs = nn.map_or(&no_graphs, |nn| nn.configured_graphs(component.index));
            let models =
                CheckedModels::check(tool.llm_models, graphs, |path| ctx.app.resolve(path))
                    .with_context(|| format!("component `{}`", component.id))?;
            self.configured
                .push((component.manifest.ai_models.clone(), models));
        }
        Ok(())
    }

    fn start(&mut self, ctx: &mut Start<'_>) -> Result<()> {
        let nn = ctx.unit::<WasiNn>();
        let no_graphs = Nn::default();
        for (index, (allowed, models)) in self.configured.iter().enumerate() {
            let graphs = nn.map_or(&no_graphs, |nn| nn.graphs(ComponentIndex(index)));
            self.components
                .push(ComponentLlm::load(allowed, models, graphs)?);
        }
        Ok(())
    }

    fn link(linker: &mut Linker<RequestState>) -> Result<()> {
        llm::add_to_linker::<_, HasSelf<ComponentLlm>>(linker, |state| {
            state.unit_state::<ComponentLlm>().0
        })?;
        Ok(())
    }

    fn instance(&self, component: ComponentIndex, instance: &mut InstanceBuilder) {
        instance.add(self.components[component.0].clone());
    }
}

/// Spin's answer to `infer` when it has no local inferencing engine; sbert-host runs no text generation.
const INFER_NOT_SUPPORTED: &str = "Local LLM operations are not supported in this version of Spin.";

/// A component's view of the llm interface: the models it declared, and the embedding models the host serves
/// it. The default allows nothing and serves nothing.
#[derive(Clone, Default)]
pub struct ComponentLlm {
    allowed: Arc<HashSet<String>>,
    models: Arc<HashMap<String, EmbeddingModel>>,
}

impl ComponentLlm {
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

impl Host for ComponentLlm {
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
