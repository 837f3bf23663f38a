//! The served models' identities, named once: public id and alias, wasi:nn graph name, width,
//! token limit, and the digest that keeps their cache entries apart.

pub use sbert_model::{DIMENSIONS, MAX_TOKENS};

/// Which of the served graphs a [`Model`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// sentence-transformers/all-MiniLM-L6-v2 as published (fp32 ONNX).
    Fp32,
    /// The same model with int8-quantized weights (`make models`).
    Int8,
}

/// A served model as a request sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub kind: ModelKind,
    /// The public id (OpenAI's `model`).
    pub id: &'static str,
    /// The short name it is also known by here, which is also its wasi:nn graph name.
    pub alias: &'static str,
    /// The graph the host loads, by `load-by-name`.
    pub graph: &'static str,
    pub dimensions: usize,
    pub max_tokens: usize,
    /// `created` of OpenAI's model object: fixed, about when the model was published.
    pub created: u64,
    pub owned_by: &'static str,
    /// The identity of the model's weights (sha256 of its ONNX file), part of every cache key
    /// and ETag; empty means "unknown", and then nothing of this model is cached.
    pub digest: String,
}

impl Model {
    pub fn new(kind: ModelKind, digest: String) -> Self {
        let (id, alias) = match kind {
            ModelKind::Fp32 => ("sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"),
            ModelKind::Int8 => ("all-minilm-l6-v2-int8", "all-minilm-l6-v2-int8"),
        };
        Self {
            kind,
            id,
            alias,
            graph: alias,
            dimensions: DIMENSIONS,
            max_tokens: MAX_TOKENS,
            // 2021-08-30T00:00:00Z
            created: 1_630_281_600,
            owned_by: "sentence-transformers",
            digest,
        }
    }

    /// Whether `name` is this model's id or alias, in any letter case.
    pub fn answers_to(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.id) || name.eq_ignore_ascii_case(self.alias)
    }

    /// `` `id` (alias `alias`) ``, or `` `id` `` when the two are the same.
    pub fn describe(&self) -> String {
        if self.id == self.alias {
            format!("`{}`", self.id)
        } else {
            format!("`{}` (alias `{}`)", self.id, self.alias)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_aliases_in_any_case() {
        let fp32 = Model::new(ModelKind::Fp32, String::new());
        for name in [
            "sentence-transformers/all-MiniLM-L6-v2",
            "all-minilm-l6-v2",
            "ALL-MINILM-L6-V2",
        ] {
            assert!(fp32.answers_to(name), "{name}");
        }
        assert!(!fp32.answers_to("all-minilm-l6-v2-int8"));
        let int8 = Model::new(ModelKind::Int8, String::new());
        assert!(int8.answers_to("All-MiniLM-L6-v2-int8"));
        assert_eq!(int8.graph, "all-minilm-l6-v2-int8");
        assert_eq!(int8.describe(), "`all-minilm-l6-v2-int8`");
        assert_eq!(
            fp32.describe(),
            "`sentence-transformers/all-MiniLM-L6-v2` (alias `all-minilm-l6-v2`)"
        );
    }
}
