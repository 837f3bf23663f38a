//! Texts → sentence embeddings on a wasi:nn graph: the host tokenizes with the model's `tokenizer.json`,
//! truncating like sentence-transformers, and runs the graph's pooled output through the same execution
//! contexts (so the same ONNX Runtime sessions and cross-request batcher) that wasi:nn guests use.
//!
//! Unlike stock Spin's local engine, which pads a call's texts to the longest and averages over the padding,
//! the graph pools over the attention mask: a call with many texts gives each text the embedding it gets
//! alone.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::{Tokenizer, TruncationParams};
use wasmtime_wasi_nn::backend::NamedTensor;
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::{Graph, Tensor};

use super::config::ModelConfig;

use sbert_model::{ATTENTION_MASK, INPUT_IDS, SENTENCE_EMBEDDING as OUTPUT, TOKEN_TYPE_IDS};

/// An embedding model: its tokenizer and the graph that runs it.
pub struct EmbeddingModel {
    tokenizer: Tokenizer,
    graph: Graph,
}

/// Embeddings of a call's texts, in order, and the tokens the model saw for them (padding not counted).
#[derive(Debug)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: u64,
}

impl EmbeddingModel {
    /// Reads the tokenizer of `config` (its path already resolved) and pairs it with `graph`.
    pub fn load(config: &ModelConfig, graph: Graph) -> Result<Self> {
        Ok(Self {
            tokenizer: read_tokenizer(&config.tokenizer, config.max_tokens)?,
            graph,
        })
    }

    /// One unit-length embedding per text, in order. The call's texts run as one wasi:nn job of
    /// `[texts, longest]` rows, which the batcher may split and join with other requests' rows.
    pub fn embed(&self, texts: &[String]) -> Result<Embedded> {
        if texts.is_empty() {
            return Ok(Embedded {
                vectors: Vec::new(),
                tokens: 0,
            });
        }
        let ids = texts
            .iter()
            .map(|text| {
                self.tokenizer
                    .encode_fast(text.as_str(), true)
                    .map(|encoding| encoding.get_ids().to_vec())
                    .map_err(|error| anyhow!("tokenizing: {error}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let tokens = ids.iter().map(|ids| ids.len() as u64).sum();
        let mut context = self.graph.init_execution_context()?;
        let outputs = context.compute_with_io(inputs(&ids)?)?;
        let output = outputs
            .into_iter()
            .find(|output| output.name == OUTPUT)
            .ok_or_else(|| anyhow!("the graph has no output `{OUTPUT}`"))?;
        Ok(Embedded {
            vectors: vectors(&output.tensor, ids.len())?,
            tokens,
        })
    }
}

/// The tokenizer in `file`, truncating to `max_tokens` (special tokens included) and not padding.
fn read_tokenizer(file: &Path, max_tokens: usize) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(file)
        .map_err(|error| anyhow!("{error}"))
        .with_context(|| format!("cannot read tokenizer {}", file.display()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|error| anyhow!("{error}"))
        .with_context(|| format!("tokenizer {}", file.display()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// The graph's int64 inputs for `rows` of token ids: `[rows, longest]`, padded with id 0 and mask 0, one
/// segment (token type 0).
fn inputs(rows: &[Vec<u32>]) -> Result<Vec<NamedTensor>> {
    let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cells = rows.len() * longest;
    let (mut ids, mut mask) = (Vec::with_capacity(cells * 8), Vec::with_capacity(cells * 8));
    for row in rows {
        for position in 0..longest {
            let (id, real) = row
                .get(position)
                .map_or((0, 0), |&id| (i64::from(id), 1_i64));
            ids.extend_from_slice(&id.to_le_bytes());
            mask.extend_from_slice(&real.to_le_bytes());
        }
    }
    let dimensions = vec![
        u32::try_from(rows.len()).context("too many texts")?,
        u32::try_from(longest).context("text too long")?,
    ];
    let tensor = |data| Tensor {
        dimensions: dimensions.clone(),
        ty: TensorType::I64,
        data,
    };
    Ok(vec![
        NamedTensor {
            name: INPUT_IDS.into(),
            tensor: tensor(ids),
        },
        NamedTensor {
            name: ATTENTION_MASK.into(),
            tensor: tensor(mask),
        },
        NamedTensor {
            name: TOKEN_TYPE_IDS.into(),
            tensor: tensor(vec![0; cells * 8]),
        },
    ])
}

/// `rows` vectors out of the graph's float32 `[rows, dims]` output.
fn vectors(output: &Tensor, rows: usize) -> Result<Vec<Vec<f32>>> {
    let [got_rows, dims] = output.dimensions[..] else {
        bail!(
            "`{OUTPUT}` has dimensions {:?}, expected [rows, dims]",
            output.dimensions
        );
    };
    if output.ty != TensorType::Fp32 || got_rows as usize != rows || dims == 0 {
        bail!(
            "`{OUTPUT}` is {:?} {:?}, expected Fp32 [{rows}, dims]",
            output.ty,
            output.dimensions
        );
    }
    let values: Vec<f32> = output
        .data
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes(bytes.try_into().expect("chunks of 4")))
        .collect();
    if values.len() != rows * dims as usize {
        bail!(
            "`{OUTPUT}` holds {} values, expected {rows} × {dims}",
            values.len()
        );
    }
    Ok(values
        .chunks_exact(dims as usize)
        .map(<[f32]>::to_vec)
        .collect())
}
