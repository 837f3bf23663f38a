//! The facts of the served model that the component, sbert-host's llm unit and the benchmark all rely on,
//! written once: sentence-transformers/all-MiniLM-L6-v2 as `models/convert.py` exports it to ONNX (the int8
//! graph of `models/quantize.py` keeps the same interface).

#![no_std]

/// The graph's token ids input: int64 `[rows, sequence]`, Hugging Face's name.
pub const INPUT_IDS: &str = "input_ids";
/// The input that marks real tokens (1) and padding (0): int64 `[rows, sequence]`.
pub const ATTENTION_MASK: &str = "attention_mask";
/// The segment of each token (0 throughout for one text): int64 `[rows, sequence]`.
pub const TOKEN_TYPE_IDS: &str = "token_type_ids";

/// The graph's output: each row's token embeddings averaged over its attention mask, then L2-normalised
/// (sentence-transformers' mean pooling and `Normalize` module), float32 `[rows, DIMENSIONS]`.
pub const SENTENCE_EMBEDDING: &str = "sentence_embedding";

/// The width of a sentence embedding.
pub const DIMENSIONS: usize = 384;
/// Tokens per input, `[CLS]` and `[SEP]` included (sentence-transformers' `max_seq_length`).
pub const MAX_TOKENS: usize = 256;

/// `[CLS]`, which starts every input.
pub const CLS: u32 = 101;
/// `[SEP]`, which ends every input.
pub const SEP: u32 = 102;
/// `[PAD]`: the id of padding positions.
pub const PAD: u32 = 0;
