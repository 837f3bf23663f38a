//! The llm interface with the real model, tokenizer and ONNX Runtime (`make models` provides them), checked
//! against sentence-transformers' embeddings in `../shared/reference`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use serde::Deserialize;

use super::*;
use crate::units::nn::SessionOptions;

const MODEL: &str = "all-minilm-l6-v2";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A file `make models` produces; a missing one fails the test with the command to run.
fn prepared(path: &str) -> PathBuf {
    let file = repo_file(path);
    assert!(
        file.is_file(),
        "{} is missing: run `make models`",
        file.display()
    );
    file
}

fn runtime() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let library = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_file(".cache/onnxruntime/libonnxruntime.so"));
        crate::units::nn::init_runtime(&library)
            .expect("ONNX Runtime is needed: run `make models`");
    });
}

/// The component-facing interface as `spin.toml` sets it up: `ai_models = [allowed…]`, and the real model
/// configured under `llm_models`.
fn llm(allowed: &[&str]) -> ComponentLlm {
    runtime();
    let graphs = BTreeMap::from([(
        MODEL.to_string(),
        prepared("models/all-minilm-l6-v2/model.onnx"),
    )]);
    let nn = Nn::load(&graphs, |_| SessionOptions::default(), &Default::default()).unwrap();
    let config = ModelConfig {
        graph: MODEL.into(),
        tokenizer: "models/all-minilm-l6-v2/tokenizer.json".into(),
        max_tokens: 256,
    };
    let models = CheckedModels::check(
        BTreeMap::from([(MODEL.to_string(), config)]),
        &graphs,
        |path| prepared(path.to_str().unwrap()),
    )
    .unwrap();
    let allowed: Vec<String> = allowed.iter().map(|m| m.to_string()).collect();
    ComponentLlm::load(&allowed, &models, &nn).unwrap()
}

#[derive(Deserialize)]
struct Reference {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    tokens: u32,
    embedding: Vec<f32>,
}

fn reference() -> Vec<Item> {
    let file = repo_file("../shared/reference/all-minilm-l6-v2.embeddings.json");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared reference data)", file.display()));
    serde_json::from_str::<Reference>(&text).unwrap().items
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn assert_matches_reference(items: &[Item], embeddings: &[Vec<f32>]) {
    assert_eq!(embeddings.len(), items.len());
    for (item, embedding) in items.iter().zip(embeddings) {
        let similarity = cosine(&item.embedding, embedding);
        assert!(
            similarity >= 0.9999,
            "cosine {similarity} for {:?}",
            item.text
        );
        let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    }
}

#[test]
fn one_text_per_call_equals_sentence_transformers() {
    let mut llm = llm(&[MODEL]);
    let items = reference();
    let mut embeddings = Vec::new();
    for item in &items {
        let result = llm
            .generate_embeddings(MODEL.into(), vec![item.text.clone()])
            .unwrap();
        assert_eq!(
            result.usage.prompt_token_count, item.tokens,
            "tokens of {:?}",
            item.text
        );
        embeddings.extend(result.embeddings);
    }
    assert_matches_reference(&items, &embeddings);
}

#[test]
fn a_call_of_many_lengths_pools_each_text_over_its_own_tokens() {
    // Stock Spin averages over the padding here; the masked graph must not.
    let mut llm = llm(&[MODEL]);
    let items = reference();
    let texts = items.iter().map(|item| item.text.clone()).collect();
    let result = llm.generate_embeddings(MODEL.into(), texts).unwrap();
    assert_matches_reference(&items, &result.embeddings);
    let real_tokens: u32 = items.iter().map(|item| item.tokens).sum();
    assert_eq!(
        result.usage.prompt_token_count, real_tokens,
        "padding is not counted"
    );
}

#[test]
fn no_texts_no_embeddings() {
    let result = llm(&[MODEL])
        .generate_embeddings(MODEL.into(), Vec::new())
        .unwrap();
    assert!(result.embeddings.is_empty());
    assert_eq!(result.usage.prompt_token_count, 0);
}

#[test]
fn undeclared_models_get_spins_access_error_before_anything_else() {
    let mut llm = llm(&[]);
    let expected = "The component does not have access to use 'all-minilm-l6-v2'. To give the component access, add 'all-minilm-l6-v2' to the 'ai_models' key for the component in your spin.toml manifest";
    match llm.generate_embeddings(MODEL.into(), vec!["hi".into()]) {
        Err(Error::InvalidInput(message)) => assert_eq!(message, expected),
        other => panic!("expected Spin's access error, got {other:?}"),
    }
    match llm.infer(MODEL.into(), "hi".into(), None) {
        Err(Error::InvalidInput(message)) => assert_eq!(message, expected),
        other => panic!("expected Spin's access error, got {other:?}"),
    }
}

#[test]
fn declared_models_the_host_does_not_serve_are_not_supported() {
    let mut llm = llm(&[MODEL, "llama2-chat"]);
    assert!(matches!(
        llm.generate_embeddings("llama2-chat".into(), vec!["hi".into()]),
        Err(Error::ModelNotSupported)
    ));
    match llm.infer("llama2-chat".into(), "hi".into(), None) {
        Err(Error::RuntimeError(message)) => assert_eq!(message, INFER_NOT_SUPPORTED),
        other => panic!("expected the not-supported error, got {other:?}"),
    }
}

#[test]
fn texts_are_truncated_like_sentence_transformers() {
    let mut llm = llm(&[MODEL]);
    let long = "word ".repeat(1000);
    let result = llm.generate_embeddings(MODEL.into(), vec![long]).unwrap();
    assert_eq!(result.usage.prompt_token_count, 256);
}
