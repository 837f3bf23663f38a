//! How a component's embedding models are configured: `llm_models` under `[component.<id>.tool.sbert-host]`,
//! and Spin's `[llm_compute]` section of the runtime configuration file:
//!
//! ```toml
//! [llm_compute]
//! type = "spin"  # Spin's local engine; here, the component's `llm_models` (the only engine sbert-host has)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Deserialize;

/// The llm unit's section of the runtime configuration file. A file written for `spin up` reads the same here,
/// as long as it picks Spin's local engine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Which engine answers `fermyon:spin/llm`; the local one when absent.
    llm_compute: Option<LlmCompute>,
}

/// `[llm_compute]`, by its `type`, as Spin 4 names them.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum LlmCompute {
    /// Spin's local engine.
    Spin {},
    /// Spin's client of a remote server (`url`, `auth_token`, `api_type`): read only to be refused by name.
    RemoteHttp(serde::de::IgnoredAny),
}

impl RuntimeConfig {
    /// Refuses an engine sbert-host does not have, saying what it runs instead.
    pub fn check(&self) -> Result<()> {
        if let Some(LlmCompute::RemoteHttp(_)) = self.llm_compute {
            bail!(
                "[llm_compute] type = \"remote_http\": sbert-host has no remote llm engine; it answers `fermyon:spin/llm` \
                 with each component's `llm_models` (under `[component.<id>.tool.sbert-host]`) on its own graphs. \
                 Leave `[llm_compute]` out, or use `type = \"spin\"` (docs/deploy.md)"
            );
        }
        Ok(())
    }
}

/// An embedding model served through `fermyon:spin/llm@2.0.0` `generate-embeddings`, e.g.
/// `llm_models = { "all-minilm-l6-v2" = { graph = "all-minilm-l6-v2", tokenizer = "models/all-minilm-l6-v2/tokenizer.json", max_tokens = 256 } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The wasi:nn graph (a key of the same section's `graphs`) that runs the model. It must take int64
    /// `input_ids`, `attention_mask` and `token_type_ids` `[rows, seq]` and output the pooled, normalised
    /// `sentence_embedding` `[rows, dims]`; requests of both interfaces share its sessions and batcher.
    pub graph: String,
    /// The model's Hugging Face `tokenizer.json`, relative to the manifest's directory. Its own truncation and
    /// padding settings are replaced by `max_tokens` and no padding.
    pub tokenizer: PathBuf,
    /// Tokens per text the model sees, `[CLS]` and `[SEP]` included; longer texts are truncated (256 for
    /// all-MiniLM-L6-v2, sentence-transformers' `max_seq_length`).
    pub max_tokens: usize,
}

/// A component's embedding models with their tokenizer files resolved, checked against its graphs.
#[derive(Debug, Clone, Default)]
pub struct CheckedModels(pub BTreeMap<String, ModelConfig>);

impl CheckedModels {
    /// Checks that every model names one of `graphs`, has a usable token limit and a tokenizer file that exists
    /// (`resolve` maps manifest paths to files).
    pub fn check(
        models: BTreeMap<String, ModelConfig>,
        graphs: &BTreeMap<String, PathBuf>,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<Self> {
        let mut checked = BTreeMap::new();
        for (name, mut model) in models {
            if !graphs.contains_key(&model.graph) {
                bail!(
                    "llm model `{name}` runs on graph `{}`, which is not in this component's `graphs`",
                    model.graph
                );
            }
            if model.max_tokens < 2 {
                bail!("llm model `{name}`: max_tokens must leave room for [CLS] and [SEP] (at least 2)");
            }
            model.tokenizer = resolve(&model.tokenizer);
            if !model.tokenizer.is_file() {
                bail!(
                    "llm model `{name}`: tokenizer {} not found (run `make models`)",
                    model.tokenizer.display()
                );
            }
            checked.insert(name, model);
        }
        Ok(Self(checked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_config(text: &str) -> Result<RuntimeConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn spin_s_local_engine_is_accepted_and_its_remote_one_refused_by_name() {
        let absent = runtime_config("").unwrap();
        absent.check().unwrap();
        let local = runtime_config("[llm_compute]\ntype = \"spin\"\n").unwrap();
        local.check().unwrap();

        let remote = runtime_config(
            "[llm_compute]\ntype = \"remote_http\"\nurl = \"http://127.0.0.1:3000\"\nauth_token = \"secret\"\n",
        )
        .unwrap();
        let error = remote.check().unwrap_err().to_string();
        assert!(error.contains("type = \"remote_http\""), "{error}");
        assert!(error.contains("llm_models"), "{error}");
        assert!(
            !error.contains("secret"),
            "the token stays out of the error: {error}"
        );

        let unknown = runtime_config("[llm_compute]\ntype = \"gpu\"\n").unwrap_err();
        assert!(unknown.to_string().contains("gpu"), "{unknown}");
        let extra = runtime_config("[llm_compute]\ntype = \"spin\"\nurl = \"x\"\n").unwrap_err();
        assert!(extra.to_string().contains("url"), "{extra}");
    }

    fn model(graph: &str, tokenizer: &Path) -> ModelConfig {
        ModelConfig {
            graph: graph.into(),
            tokenizer: tokenizer.into(),
            max_tokens: 256,
        }
    }

    #[test]
    fn models_must_name_a_graph_and_an_existing_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        let graphs = BTreeMap::from([("g".to_string(), PathBuf::from("g.onnx"))]);
        let resolve = |path: &Path| dir.path().join(path);

        let good = BTreeMap::from([("m".to_string(), model("g", Path::new("tokenizer.json")))]);
        let checked = CheckedModels::check(good, &graphs, resolve).unwrap();
        assert_eq!(checked.0["m"].tokenizer, dir.path().join("tokenizer.json"));

        let other_graph =
            BTreeMap::from([("m".to_string(), model("h", Path::new("tokenizer.json")))]);
        let error = CheckedModels::check(other_graph, &graphs, resolve).unwrap_err();
        assert!(
            error.to_string().contains("graph `h`, which is not in"),
            "{error}"
        );

        let no_file = BTreeMap::from([("m".to_string(), model("g", Path::new("nope.json")))]);
        let error = CheckedModels::check(no_file, &graphs, resolve).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("nope.json not found (run `make models`)"),
            "{error}"
        );

        let mut tiny = model("g", Path::new("tokenizer.json"));
        tiny.max_tokens = 1;
        let error =
            CheckedModels::check(BTreeMap::from([("m".to_string(), tiny)]), &graphs, resolve)
                .unwrap_err();
        assert!(error.to_string().contains("at least 2"), "{error}");
    }
}
