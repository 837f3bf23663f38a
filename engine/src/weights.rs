//! The packed model file (`models/pack_portable.py`): a safetensors file whose tensors are viewed in
//! place, without copying, so a wasm snapshot holds every weight exactly once (in the embedded bytes).

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use crate::kernels::BLOCK;

/// The file format this engine reads (`format` in the header's metadata).
const FORMAT: &str = "sbert-engine-q8-v1";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a safetensors file: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error("metadata `{key}`: {problem}")]
    Metadata { key: &'static str, problem: String },
    #[error("tensor `{name}`: {problem}")]
    Tensor { name: String, problem: String },
}

/// The BERT shape, from the file's metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub layer_norm_eps: f32,
}

impl Config {
    pub fn head_size(&self) -> usize {
        self.hidden / self.heads
    }
}

/// A `[rows, cols]` matrix in 8-bit blocks: `quants[r * cols + c]` times `scales[r * cols / 32 + c / 32]`.
#[derive(Debug, Clone, Copy)]
pub struct BlockMatrix<'a> {
    pub rows: usize,
    pub cols: usize,
    pub quants: &'a [i8],
    pub scales: &'a [f32],
}

impl<'a> BlockMatrix<'a> {
    /// Quants and scales of row `row`.
    pub fn row(&self, row: usize) -> (&'a [i8], &'a [f32]) {
        let blocks = self.cols / BLOCK;
        (
            &self.quants[row * self.cols..(row + 1) * self.cols],
            &self.scales[row * blocks..(row + 1) * blocks],
        )
    }
}

/// `y = x Wᵀ + b` with `W` `[out, in]`.
#[derive(Debug, Clone, Copy)]
pub struct Linear<'a> {
    pub weight: BlockMatrix<'a>,
    pub bias: &'a [f32],
}

#[derive(Debug, Clone, Copy)]
pub struct LayerNorm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
}

#[derive(Debug, Clone, Copy)]
pub struct EncoderLayer<'a> {
    pub query: Linear<'a>,
    pub key: Linear<'a>,
    pub value: Linear<'a>,
    pub attention_output: Linear<'a>,
    pub attention_norm: LayerNorm<'a>,
    pub intermediate: Linear<'a>,
    pub output: Linear<'a>,
    pub output_norm: LayerNorm<'a>,
}

/// Every weight of the model, borrowed from the file's bytes.
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    pub config: Config,
    pub word_embeddings: BlockMatrix<'a>,
    /// `[max_positions, hidden]`.
    pub position_embeddings: &'a [f32],
    /// Token type 0's row (single-segment inputs only), `[hidden]`.
    pub token_type_embedding: &'a [f32],
    pub embeddings_norm: LayerNorm<'a>,
    pub layers: Vec<EncoderLayer<'a>>,
}

impl<'a> Weights<'a> {
    /// Views the packed file. `bytes` must be 4-byte aligned (the float32 tensors are read in place).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = Tensors {
            tensors: SafeTensors::deserialize(bytes)?,
        };
        let config = read_config(&metadata)?;
        let (h, i) = (config.hidden, config.intermediate);
        let linear = |prefix: &str, rows: usize, cols: usize| -> Result<Linear<'a>, LoadError> {
            Ok(Linear {
                weight: file.blocks(&format!("{prefix}.weight"), rows, cols)?,
                bias: file.floats(&format!("{prefix}.bias"), &[rows])?,
            })
        };
        let norm = |prefix: &str| -> Result<LayerNorm<'a>, LoadError> {
            Ok(LayerNorm {
                gamma: file.floats(&format!("{prefix}.weight"), &[h])?,
                beta: file.floats(&format!("{prefix}.bias"), &[h])?,
            })
        };
        let layers = (0..config.layers)
            .map(|index| {
                let p = format!("encoder.layer.{index}");
                Ok(EncoderLayer {
                    query: linear(&format!("{p}.attention.self.query"), h, h)?,
                    key: linear(&format!("{p}.attention.self.key"), h, h)?,
                    value: linear(&format!("{p}.attention.self.value"), h, h)?,
                    attention_output: linear(&format!("{p}.attention.output.dense"), h, h)?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"), i, h)?,
                    output: linear(&format!("{p}.output.dense"), h, i)?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        let token_types = file.floats_any_rows("embeddings.token_type_embeddings.weight", h)?;
        Ok(Self {
            config,
            word_embeddings: file.blocks("embeddings.word_embeddings.weight", config.vocab, h)?,
            position_embeddings: file.floats(
                "embeddings.position_embeddings.weight",
                &[config.max_positions, h],
            )?,
            token_type_embedding: &token_types[..h],
            embeddings_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }
}

fn read_config(metadata: &HashMap<String, String>) -> Result<Config, LoadError> {
    let get = |key: &'static str| {
        metadata.get(key).ok_or_else(|| LoadError::Metadata {
            key,
            problem: "missing".into(),
        })
    };
    let number = |key: &'static str| -> Result<usize, LoadError> {
        get(key)?.parse().map_err(|e| LoadError::Metadata {
            key,
            problem: format!("{e}"),
        })
    };
    let format = get("format")?;
    if format != FORMAT {
        return Err(LoadError::Metadata {
            key: "format",
            problem: format!("`{format}`, this engine reads `{FORMAT}`"),
        });
    }
    if number("block")? != BLOCK {
        return Err(LoadError::Metadata {
            key: "block",
            problem: format!("this engine's blocks hold {BLOCK} values"),
        });
    }
    let config = Config {
        layers: number("layers")?,
        hidden: number("hidden")?,
        heads: number("heads")?,
        intermediate: number("intermediate")?,
        vocab: number("vocab")?,
        max_positions: number("max_positions")?,
        layer_norm_eps: get("layer_norm_eps")?
            .parse()
            .map_err(|e| LoadError::Metadata {
                key: "layer_norm_eps",
                problem: format!("{e}"),
            })?,
    };
    let divides = |key: &'static str, size: usize| {
        if size == 0 || !size.is_multiple_of(BLOCK) {
            Err(LoadError::Metadata {
                key,
                problem: format!("{size} is not a positive multiple of {BLOCK}"),
            })
        } else {
            Ok(())
        }
    };
    divides("hidden", config.hidden)?;
    divides("intermediate", config.intermediate)?;
    if config.heads == 0 || !config.hidden.is_multiple_of(config.heads) {
        return Err(LoadError::Metadata {
            key: "heads",
            problem: format!("{} does not divide hidden {}", config.heads, config.hidden),
        });
    }
    Ok(config)
}

struct Tensors<'a> {
    tensors: SafeTensors<'a>,
}

impl<'a> Tensors<'a> {
    fn raw(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&'a [u8], LoadError> {
        let view = self.tensors.tensor(name).map_err(|e| LoadError::Tensor {
            name: name.into(),
            problem: e.to_string(),
        })?;
        if view.dtype() != dtype || view.shape() != shape {
            return Err(LoadError::Tensor {
                name: name.into(),
                problem: format!(
                    "is {:?} {:?}, expected {dtype:?} {shape:?}",
                    view.dtype(),
                    view.shape()
                ),
            });
        }
        Ok(view.data())
    }

    fn floats(&self, name: &str, shape: &[usize]) -> Result<&'a [f32], LoadError> {
        let bytes = self.raw(name, Dtype::F32, shape)?;
        bytemuck::try_cast_slice(bytes).map_err(|e| LoadError::Tensor {
            name: name.into(),
            problem: format!(
                "cannot be read in place ({e}): the file's bytes must be 4-byte aligned"
            ),
        })
    }

    /// A float32 `[rows, cols]` tensor with any number of rows, at least one.
    fn floats_any_rows(&self, name: &str, cols: usize) -> Result<&'a [f32], LoadError> {
        let rows = self
            .tensors
            .tensor(name)
            .ok()
            .and_then(|view| view.shape().first().copied())
            .filter(|&rows| rows > 0)
            .ok_or_else(|| LoadError::Tensor {
                name: name.into(),
                problem: "missing or empty".into(),
            })?;
        self.floats(name, &[rows, cols])
    }

    fn blocks(&self, name: &str, rows: usize, cols: usize) -> Result<BlockMatrix<'a>, LoadError> {
        let quants = self.raw(&format!("{name}.q8"), Dtype::I8, &[rows, cols])?;
        Ok(BlockMatrix {
            rows,
            cols,
            quants: bytemuck::cast_slice(quants),
            scales: self.floats(&format!("{name}.scale"), &[rows, cols / BLOCK])?,
        })
    }
}
