//! The engine against sentence-transformers' own embeddings (../shared/reference), on the real packed
//! model (`make models`) and the real tokenizer, with the portable build's accuracy bar.

use std::path::{Path, PathBuf};

use sbert_engine::{EmbedError, Model};
use serde::Deserialize;
use tokenizers::Tokenizer;

/// The portable build's bar (issue 11): every item at least 0.99, on average at least 0.999.
const MIN_COSINE: f64 = 0.99;
const MIN_MEAN_COSINE: f64 = 0.999;
/// sentence-transformers' max_seq_length for this model.
const MAX_TOKENS: usize = 256;

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    tokens: usize,
    embedding: Vec<f64>,
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn read(relative: &str, produced_by: &str) -> Vec<u8> {
    let path = repo_file(relative);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `{produced_by}` first", path.display()))
}

/// The packed model in 8-byte aligned memory, as the component embeds it.
struct AlignedFile {
    words: Vec<u64>,
    len: usize,
}

impl AlignedFile {
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

fn model_file() -> AlignedFile {
    let bytes = read(
        "models/all-minilm-l6-v2-portable/model.safetensors",
        "make models",
    );
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    AlignedFile {
        words,
        len: bytes.len(),
    }
}

fn tokenizer() -> Tokenizer {
    let json = read("models/all-minilm-l6-v2/tokenizer.json", "make models");
    let mut tokenizer = Tokenizer::from_bytes(&json).expect("tokenizer.json parses");
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }))
        .expect("truncation settings are valid");
    tokenizer
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, y)| x as f64 * y).sum();
    let na: f64 = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_match_sentence_transformers() {
    let reference: Reference = serde_json::from_slice(&read(
        "../shared/reference/all-minilm-l6-v2.embeddings.json",
        "ln -sfn /work/shared ../shared",
    ))
    .expect("the reference parses");
    assert_eq!(reference.max_seq_length, MAX_TOKENS);
    let file = model_file();
    let model = Model::from_bytes(file.bytes()).expect("the packed model loads");
    assert_eq!(model.config().hidden, 384);
    let tokenizer = tokenizer();

    let mut cosines = Vec::new();
    for item in &reference.items {
        let encoding = tokenizer
            .encode(item.text.as_str(), true)
            .expect("tokenizes");
        assert_eq!(
            encoding.get_ids().len(),
            item.tokens,
            "token count of {:?}",
            item.text
        );
        let embedding = model.embed(encoding.get_ids()).expect("embeds");
        let norm: f32 = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{:?}: norm {norm}", item.text);
        cosines.push((cosine(&embedding, &item.embedding), &item.text));
    }
    let mean = cosines.iter().map(|(c, _)| c).sum::<f64>() / cosines.len() as f64;
    let (min, worst) = cosines
        .iter()
        .copied()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("the reference has items");
    eprintln!(
        "portable engine vs reference: {} items, mean cosine {mean:.6}, min {min:.6} ({worst:?})",
        cosines.len()
    );
    assert!(
        min >= MIN_COSINE,
        "min cosine {min} for {worst:?} is below {MIN_COSINE}"
    );
    assert!(
        mean >= MIN_MEAN_COSINE,
        "mean cosine {mean} is below {MIN_MEAN_COSINE}"
    );
}

#[test]
fn sequences_the_model_cannot_take_are_refused() {
    let file = model_file();
    let model = Model::from_bytes(file.bytes()).expect("the packed model loads");
    let config = *model.config();
    assert_eq!(model.embed(&[]), Err(EmbedError::Empty));
    assert_eq!(
        model.embed(&vec![101; config.max_positions + 1]),
        Err(EmbedError::TooLong {
            tokens: config.max_positions + 1,
            max: config.max_positions
        })
    );
    assert_eq!(
        model.embed(&[101, config.vocab as u32, 102]),
        Err(EmbedError::UnknownToken {
            id: config.vocab as u32,
            vocab: config.vocab
        })
    );
}

#[test]
fn a_misaligned_file_is_refused_not_misread() {
    let file = model_file();
    let bytes = file.bytes();
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(bytes);
    // Aligned allocation + 1: the float32 tensors now start at odd addresses.
    let error =
        Model::from_bytes(&shifted[1..]).expect_err("misaligned floats cannot be viewed in place");
    assert!(error.to_string().contains("4-byte aligned"), "{error}");
}
