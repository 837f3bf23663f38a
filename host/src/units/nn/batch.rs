//! Cross-request batching, row by row: which queued rows may share one model run, how they are joined before
//! the run, and how each job's outputs are put back together after it.
//!
//! On a CPU, one run of a small transformer over many rows costs far less than one run per row, but every
//! padding token costs as much as a real one. So, as text-embeddings-inference does, the sessions schedule
//! rows, not requests: a job's rows are trimmed to their real length (the end of their attention mask), rows
//! of similar length from any queued jobs share a run, each padded with zeros to the longest in that run.
//!
//! Joining must not change anyone's result, so it is allowed only for graphs whose every input is an int64
//! `[batch, seq]` tensor and whose every output is one row per input row: either per token,
//! `[batch, seq, fixed...]` (hidden states), or per row, `[batch, fixed...]` (a pooled sentence embedding),
//! judged by the graph's symbolic dimension names. Rows are trimmed and padded only when the graph has an
//! `attention_mask` input, which makes masked positions inert; without one, only rows of equal length are
//! joined. A job's per-token outputs at positions its attention mask excludes are zeros: the model's values
//! there mean nothing (they change with the padding).
//!
//! This is the only place rows are sorted and grouped: a guest sends each request's rows as they come, padded
//! to its longest row, and gets its outputs back in the same row order ([`super::assembly`]).

use ort::session::{Input, Output};
use ort::tensor::TensorElementType;
use ort::value::ValueType;
use wasmtime_wasi_nn::backend::NamedTensor;
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

use super::assembly::Assembly;

/// At most this many rows share a run.
const MAX_ROWS: usize = 64;

/// The token budget of one run: at most this many tokens, padding included, share a run (16 rows of
/// all-MiniLM-L6-v2's 256-token limit). A run's memory grows with its tokens, and ONNX Runtime keeps the
/// largest run's memory for the next ones. It is not a model's sequence limit (the guest truncates to that);
/// a job whose rows are longer than the budget is run whole, as it was given.
pub const RUN_TOKEN_BUDGET: usize = 4096;

/// What running a batch costs beyond its tokens, in tokens: all-MiniLM-L6-v2's fixed cost of a run is worth
/// 16 tokens (docs/design-notes.md, "Batching cost model").
const RUN_COST_TOKENS: usize = 16;

/// The name of the input that marks padding, by the Hugging Face convention.
pub use sbert_model::ATTENTION_MASK;

const I64_BYTES: usize = size_of::<i64>();

/// How a graph's jobs are split into rows and joined: built by [`Batching::of`] for graphs that allow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batching {
    /// Every input's name, in the graph's order.
    inputs: Vec<String>,
    /// The position of the attention mask among the inputs, if the graph has one: rows are then trimmed and
    /// padded.
    mask: Option<usize>,
    /// The outputs with a `seq` axis (`[batch, seq, ...]`); the others are `[batch, ...]`, one value per row.
    token_outputs: Vec<String>,
}

/// Row `row` of a job whose inputs are `inputs` (prepared by [`Batching::prepare`]), trimmed to `len` tokens.
#[derive(Clone, Copy)]
pub struct RowSource<'a> {
    pub inputs: &'a [NamedTensor],
    pub row: usize,
    pub len: usize,
}

impl Batching {
    /// How jobs of a graph with these inputs and outputs are joined, if they may be.
    pub fn of(inputs: &[Input], outputs: &[Output]) -> Option<Self> {
        let mut axes = None;
        for input in inputs {
            let ValueType::Tensor {
                ty: TensorElementType::Int64,
                shape,
                dimension_symbols,
            } = &input.input_type
            else {
                return None;
            };
            let [batch, seq] = &dimension_symbols[..] else {
                return None;
            };
            if shape[..] != [-1, -1] || batch.is_empty() || seq.is_empty() || batch == seq {
                return None;
            }
            if *axes.get_or_insert((batch, seq)) != (batch, seq) {
                return None;
            }
        }
        let (batch, seq) = axes?;
        let mut token_outputs = Vec::new();
        for output in outputs {
            let ValueType::Tensor {
                shape,
                dimension_symbols,
                ..
            } = &output.output_type
            else {
                return None;
            };
            if dimension_symbols.first() != Some(batch) {
                return None;
            }
            // Per token: `[batch, seq, fixed...]`; per row: `[batch, fixed...]`.
            let per_token = dimension_symbols.get(1) == Some(seq);
            let inner = if per_token { 2 } else { 1 };
            if shape.iter().skip(inner).any(|&d| d < 0) {
                return None;
            }
            if per_token {
                token_outputs.push(output.name.clone());
            }
        }
        Some(Self {
            inputs: inputs.iter().map(|input| input.name.clone()).collect(),
            mask: inputs.iter().position(|input| input.name == ATTENTION_MASK),
            token_outputs,
        })
    }

    /// Where the outputs of a job of `rows` rows of `seq` tokens are put together.
    pub fn assembly(&self, rows: usize, seq: usize) -> Assembly {
        Assembly::new(rows, seq, self.token_outputs.clone())
    }

    /// Puts a job's inputs in the graph's order and returns its rows' lengths, if its rows may be joined with
    /// others: it passes every input once, each int64 of the same `[rows, seq]`, with the data to fill it.
    pub fn prepare(&self, inputs: &mut [NamedTensor]) -> Option<Vec<usize>> {
        if inputs.len() != self.inputs.len() {
            return None;
        }
        for (position, name) in self.inputs.iter().enumerate() {
            let found = inputs[position..]
                .iter()
                .position(|input| input.name == *name)?;
            inputs.swap(position, position + found);
        }
        let dimensions = &inputs.first()?.tensor.dimensions;
        let [rows, seq] = dimensions[..] else {
            return None;
        };
        let (rows, seq) = (rows as usize, seq as usize);
        let consistent = inputs.iter().all(|input| {
            input.tensor.ty == TensorType::I64
                && input.tensor.dimensions == *dimensions
                && input.tensor.data.len() == rows * seq * I64_BYTES
        });
        if rows == 0 || seq == 0 || seq > RUN_TOKEN_BUDGET || !consistent {
            return None;
        }
        let lengths = match self.mask {
            Some(mask) => inputs[mask]
                .tensor
                .data
                .chunks_exact(seq * I64_BYTES)
                .map(unmasked_length)
                .collect(),
            None => vec![seq; rows],
        };
        Some(lengths)
    }

    /// Which `queued` rows (by position, with their lengths; `None` runs alone) join a run that starts with a
    /// row of `first` tokens. The rows, `first` among them, are split into runs of neighbouring lengths as
    /// cheaply as possible, a run costing [`RUN_COST_TOKENS`] plus its rows times its longest row, within
    /// [`MAX_ROWS`] and [`RUN_TOKEN_BUDGET`]; the run that holds `first` is the answer. Without an attention mask,
    /// only rows of `first`'s length are considered. Positions come back in ascending order.
    pub fn select(&self, first: usize, queued: impl Iterator<Item = Option<usize>>) -> Vec<usize> {
        // By length; `first` (position `None`) leads the rows of its length.
        let mut rows: Vec<(usize, Option<usize>)> = queued
            .enumerate()
            .filter_map(|(position, len)| Some((len?, Some(position))))
            .filter(|&(len, _)| self.mask.is_some() || len == first)
            .chain([(first, None)])
            .collect();
        rows.sort_unstable();
        // cheapest[end]: the least cost of running rows[..end]; start[end]: where its last run starts.
        let mut cheapest = vec![0; rows.len() + 1];
        let mut start = vec![0; rows.len() + 1];
        for end in 1..=rows.len() {
            let longest = rows[end - 1].0;
            cheapest[end] = usize::MAX;
            for begin in (end.saturating_sub(MAX_ROWS)..end).rev() {
                let count = end - begin;
                if count > 1 && count * longest > RUN_TOKEN_BUDGET {
                    break;
                }
                let cost = cheapest[begin] + RUN_COST_TOKENS + count * longest;
                if cost < cheapest[end] {
                    (cheapest[end], start[end]) = (cost, begin);
                }
            }
        }
        let anchor = rows.iter().position(|(_, position)| position.is_none());
        let mut end = rows.len();
        while end > 0 && !anchor.is_some_and(|anchor| (start[end]..end).contains(&anchor)) {
            end = start[end];
        }
        let mut joined: Vec<usize> = rows[start[end]..end]
            .iter()
            .filter_map(|&(_, position)| position)
            .collect();
        joined.sort_unstable();
        joined
    }
}

/// How many leading positions of a row its attention mask keeps: up to its last unmasked token. A row masked
/// entirely keeps them all, so that nothing about it changes.
fn unmasked_length(mask: &[u8]) -> usize {
    let positions = mask.len() / I64_BYTES;
    mask.chunks_exact(I64_BYTES)
        .rposition(|value| value.iter().any(|&byte| byte != 0))
        .map_or(positions, |last| last + 1)
}

/// The inputs of one run over `rows`: each row's first `len` tokens, padded with zeros to the longest.
pub fn join(rows: &[RowSource]) -> Vec<NamedTensor> {
    let seq = rows.iter().map(|row| row.len).max().unwrap_or(0);
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    first
        .inputs
        .iter()
        .enumerate()
        .map(|(position, input)| {
            let mut data = vec![0; rows.len() * seq * I64_BYTES];
            for (out, row) in data.chunks_exact_mut(seq * I64_BYTES).zip(rows) {
                let tensor = &row.inputs[position].tensor;
                let start = row.row * tensor.dimensions[1] as usize * I64_BYTES;
                let len = row.len * I64_BYTES;
                out[..len].copy_from_slice(&tensor.data[start..start + len]);
            }
            NamedTensor {
                name: input.name.clone(),
                tensor: Tensor::new(vec![rows.len() as u32, seq as u32], TensorType::I64, data),
            }
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use ort::tensor::{Shape, SymbolicDimensions};

    fn tensor_type(ty: TensorElementType, dimensions: &[(&str, i64)]) -> ValueType {
        ValueType::Tensor {
            ty,
            shape: Shape::new(dimensions.iter().map(|(_, size)| *size)),
            dimension_symbols: SymbolicDimensions::new(
                dimensions.iter().map(|(symbol, _)| symbol.to_string()),
            ),
        }
    }

    fn input(name: &str, ty: TensorElementType, dimensions: &[(&str, i64)]) -> Input {
        Input {
            name: name.into(),
            input_type: tensor_type(ty, dimensions),
        }
    }

    fn output(name: &str, dimensions: &[(&str, i64)]) -> Output {
        Output {
            name: name.into(),
            output_type: tensor_type(TensorElementType::Float32, dimensions),
        }
    }

    const TOKENS: [(&str, i64); 2] = [("batch", -1), ("seq", -1)];
    const HIDDEN: [(&str, i64); 3] = [("batch", -1), ("seq", -1), ("", 2)];

    fn bert_inputs() -> Vec<Input> {
        ["input_ids", "attention_mask", "token_type_ids"]
            .map(|name| input(name, TensorElementType::Int64, &TOKENS))
            .into()
    }

    pub(in crate::units::nn) fn bert() -> Batching {
        Batching::of(&bert_inputs(), &[output("last_hidden_state", &HIDDEN)]).unwrap()
    }

    fn i64_tensor(name: &str, dimensions: [usize; 2], values: &[i64]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(
                dimensions.iter().map(|&d| d as u32).collect(),
                TensorType::I64,
                bytemuck::cast_slice(values).to_vec(),
            ),
        }
    }

    fn i64_values(tensor: &Tensor) -> Vec<i64> {
        bytemuck::pod_collect_to_vec(&tensor.data)
    }

    /// Inputs of a BERT job whose rows are padded with zeros to the longest, given in an order other than the
    /// graph's.
    pub(in crate::units::nn) fn bert_job(rows: &[&[i64]]) -> Vec<NamedTensor> {
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let padded = |value: fn(i64) -> i64| -> Vec<i64> {
            rows.iter()
                .flat_map(|r| (0..seq).map(|i| r.get(i).map_or(0, |&id| value(id))))
                .collect()
        };
        let dimensions = [rows.len(), seq];
        vec![
            i64_tensor("token_type_ids", dimensions, &padded(|_| 0)),
            i64_tensor("input_ids", dimensions, &padded(|id| id)),
            i64_tensor("attention_mask", dimensions, &padded(|_| 1)),
        ]
    }

    #[test]
    fn only_token_graphs_with_row_aligned_outputs_batch() {
        assert_eq!(
            bert(),
            Batching {
                inputs: vec![
                    "input_ids".into(),
                    "attention_mask".into(),
                    "token_type_ids".into()
                ],
                mask: Some(1),
                token_outputs: vec!["last_hidden_state".into()],
            }
        );
        let hidden = [output("last_hidden_state", &HIDDEN)];
        // Without an attention mask, rows are joined but never trimmed or padded.
        let ids = || input("ids", TensorElementType::Int64, &TOKENS);
        assert_eq!(Batching::of(&[ids()], &hidden).unwrap().mask, None);

        let refused =
            |inputs: &[Input], outputs: &[Output]| Batching::of(inputs, outputs).is_none();
        // A float input, a rank-3 input, a fixed length, unnamed or mismatched axes.
        let float = input("x", TensorElementType::Float32, &TOKENS);
        assert!(refused(&[float], &hidden));
        let rank_3 = input("x", TensorElementType::Int64, &HIDDEN);
        assert!(refused(&[rank_3], &hidden));
        let fixed = input("x", TensorElementType::Int64, &[("batch", -1), ("seq", 8)]);
        assert!(refused(&[fixed], &hidden));
        let unnamed = input("x", TensorElementType::Int64, &[("", -1), ("", -1)]);
        assert!(refused(&[unnamed], &hidden));
        let other_axes = input("y", TensorElementType::Int64, &[("n", -1), ("seq", -1)]);
        assert!(refused(&[ids(), other_axes], &hidden));
        // A pooled output has one row per input row.
        let pooled = output("sentence_embedding", &[("batch", -1), ("", 4)]);
        let batching = Batching::of(&bert_inputs(), &[pooled]).unwrap();
        assert_eq!(batching.mask, Some(1));
        assert!(batching.token_outputs.is_empty());
        // Outputs that are transposed, unbatched or have a dynamic inner axis.
        let unbatched = output("u", &[("", 4)]);
        assert!(refused(&bert_inputs(), &[unbatched]));
        let dynamic_row = output("d", &[("batch", -1), ("n", -1)]);
        assert!(refused(&bert_inputs(), &[dynamic_row]));
        let transposed = output("t", &[("seq", -1), ("batch", -1), ("", 4)]);
        assert!(refused(&bert_inputs(), &[transposed]));
        let attention = output("a", &[("batch", -1), ("seq", -1), ("seq", -1)]);
        assert!(refused(&bert_inputs(), &[attention]));
        assert!(refused(&[], &hidden));
    }

    #[test]
    fn prepare_orders_inputs_and_measures_rows_by_their_mask() {
        let batching = bert();
        let mut inputs = bert_job(&[&[101, 7, 8, 9, 102], &[101, 8, 102]]);
        assert_eq!(batching.prepare(&mut inputs), Some(vec![5, 3]));
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["input_ids", "attention_mask", "token_type_ids"]);

        // A row masked entirely keeps its length; so do all rows without a mask.
        let mut masked_out = bert_job(&[&[1, 2, 3]]);
        masked_out[2] = i64_tensor("attention_mask", [1, 3], &[0, 0, 0]);
        assert_eq!(batching.prepare(&mut masked_out), Some(vec![3]));
        let unmasked = Batching {
            mask: None,
            ..bert()
        };
        assert_eq!(
            unmasked.prepare(&mut bert_job(&[&[1, 2, 3], &[1]])),
            Some(vec![3, 3])
        );

        let mut missing = bert_job(&[&[1, 2]]);
        missing.pop();
        assert_eq!(batching.prepare(&mut missing), None);
        let mut twice = bert_job(&[&[1, 2]]);
        twice[0].name = "input_ids".into();
        assert_eq!(batching.prepare(&mut twice), None);
        let mut mismatched = bert_job(&[&[1, 2]]);
        mismatched[0] = i64_tensor("token_type_ids", [2, 1], &[0, 0]);
        assert_eq!(batching.prepare(&mut mismatched), None);
        let mut short_data = bert_job(&[&[1, 2]]);
        short_data[1].tensor.data.pop();
        assert_eq!(batching.prepare(&mut short_data), None);
        let mut float = bert_job(&[&[1, 2]]);
        float[2].tensor.ty = TensorType::Fp64;
        assert_eq!(batching.prepare(&mut float), None);
        assert_eq!(batching.prepare(&mut bert_job(&[&[]])), None);
        let long = vec![1; RUN_TOKEN_BUDGET + 1];
        assert_eq!(batching.prepare(&mut bert_job(&[long.as_slice()])), None);
    }

    #[test]
    fn select_groups_neighbouring_lengths_where_that_is_cheapest() {
        let batching = bert();
        // The job that runs alone (None) is never selected. 12, 13 and 14 share a run; 17 is worth joining
        // them (a run of 4 × 17 tokens costs less than 3 × 14 and 1 × 17 in two runs); 40 and 250 are not.
        let queued = [Some(250), None, Some(14), Some(17), Some(13), Some(40)];
        assert_eq!(batching.select(12, queued.into_iter()), [2, 3, 4]);
        let queued = [Some(250), None, Some(14), Some(20), Some(13), Some(40)];
        assert_eq!(batching.select(12, queued.into_iter()), [2, 4]);
        assert_eq!(batching.select(40, queued.into_iter()), [5]);
        assert_eq!(batching.select(240, queued.into_iter()), [0]);
        // Two groups of lengths: each runs with its own.
        let queued = [Some(5), Some(30), Some(6), Some(31), Some(5), Some(29)];
        assert_eq!(batching.select(6, queued.into_iter()), [0, 2, 4]);
        assert_eq!(batching.select(30, queued.into_iter()), [1, 3, 5]);
        // Without a mask only equal lengths join.
        let unmasked = Batching {
            mask: None,
            ..bert()
        };
        assert_eq!(unmasked.select(5, queued.into_iter()), [0, 4]);

        // Row and token limits.
        let many = std::iter::repeat_n(Some(12), 200);
        assert_eq!(batching.select(12, many).len(), MAX_ROWS - 1);
        let wide = std::iter::repeat_n(Some(256), 40);
        assert_eq!(batching.select(256, wide).len(), RUN_TOKEN_BUDGET / 256 - 1);
        let too_wide = std::iter::repeat_n(Some(RUN_TOKEN_BUDGET), 3);
        assert_eq!(
            batching.select(RUN_TOKEN_BUDGET, too_wide),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn join_trims_and_pads() {
        let batching = bert();
        let mut short = bert_job(&[&[101, 5, 102]]);
        let mut padded = bert_job(&[&[101, 6, 7, 8, 102], &[101, 9, 102]]);
        assert_eq!(batching.prepare(&mut short), Some(vec![3]));
        assert_eq!(batching.prepare(&mut padded), Some(vec![5, 3]));

        // The second job's short row joins the first job's row, trimmed of its padding.
        let rows = [
            RowSource {
                inputs: &short,
                row: 0,
                len: 3,
            },
            RowSource {
                inputs: &padded,
                row: 1,
                len: 3,
            },
        ];
        let joined = join(&rows);
        assert_eq!(joined[0].name, "input_ids");
        assert_eq!(joined[0].tensor.dimensions, [2, 3]);
        assert_eq!(i64_values(&joined[0].tensor), [101, 5, 102, 101, 9, 102]);
        assert_eq!(i64_values(&joined[1].tensor), [1; 6]);
        assert_eq!(i64_values(&joined[2].tensor), [0; 6]);
        // Rows of different lengths are padded with zeros.
        let rows = [
            RowSource {
                inputs: &padded,
                row: 0,
                len: 5,
            },
            RowSource {
                inputs: &short,
                row: 0,
                len: 3,
            },
        ];
        let joined = join(&rows);
        assert_eq!(joined[0].tensor.dimensions, [2, 5]);
        assert_eq!(
            i64_values(&joined[0].tensor),
            [101, 6, 7, 8, 102, 101, 5, 102, 0, 0]
        );
        assert_eq!(
            i64_values(&joined[1].tensor),
            [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        );
    }
}
