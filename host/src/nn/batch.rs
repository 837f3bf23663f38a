//! Cross-request batching: which queued jobs may share one model run, and how their tensors are joined
//! before the run and split after it.
//!
//! On a CPU, one run of a small transformer over many rows costs far less than one run per row, so the
//! sessions take concurrent requests' jobs together, as text-embeddings-inference does. Joining must not change
//! anyone's result, so it is allowed only for graphs whose every input is an int64 `[batch, seq]` tensor and
//! whose every output is `[batch, seq, fixed...]`, judged by the graph's symbolic dimension names. Rows of
//! different lengths are padded with zeros to the longest, which the model ignores only when its
//! `attention_mask` says so: without that input only equal lengths are joined. Padding is compute spent on
//! nothing, so only similar lengths share a run.

use ort::session::{Input, Output};
use ort::tensor::TensorElementType;
use ort::value::ValueType;
use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// At most this many rows share a run.
const MAX_ROWS: usize = 64;

/// At most this many tokens, padding included, share a run (32 rows of the model's 256 tokens): a joined run
/// holds up each of its jobs for the whole run.
const MAX_TOKENS: usize = 8192;

/// Lengths that differ by at most this many tokens share a run even when one is more than twice the other:
/// for short rows the fixed cost of a run outweighs the padding.
const LENGTH_SLACK: usize = 16;

/// The name of the input that marks padding, by the Hugging Face convention.
pub const ATTENTION_MASK: &str = "attention_mask";

const I64_BYTES: usize = size_of::<i64>();

/// How a graph's jobs are joined: built by [`Batching::of`] for graphs whose jobs may be.
#[derive(Debug, Clone, PartialEq)]
pub struct Batching {
    /// Every input's name, in the graph's order; joined runs pass them in this order.
    inputs: Vec<String>,
    /// Rows of different lengths may be padded (the graph masks attention).
    pad: bool,
}

/// A job's shape in a joined run: `count` rows of `seq` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    pub count: usize,
    pub seq: usize,
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
        for output in outputs {
            let ValueType::Tensor {
                shape,
                dimension_symbols,
                ..
            } = &output.output_type
            else {
                return None;
            };
            let leading_axes = dimension_symbols.len() >= 2
                && dimension_symbols[0] == *batch
                && dimension_symbols[1] == *seq;
            if !leading_axes || shape.iter().skip(2).any(|&d| d < 0) {
                return None;
            }
        }
        Some(Self {
            inputs: inputs.iter().map(|input| input.name.clone()).collect(),
            pad: inputs.iter().any(|input| input.name == ATTENTION_MASK),
        })
    }

    /// Puts a job's inputs in the graph's order and returns its rows, if it may be joined with others: it
    /// passes every input once, each int64 of the same `[rows, seq]`, with the data to fill it.
    pub fn prepare(&self, inputs: &mut [NamedTensor]) -> Option<Rows> {
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
        let [count, seq] = dimensions[..] else {
            return None;
        };
        let (count, seq) = (count as usize, seq as usize);
        let fits = count > 0 && seq > 0 && count * seq <= MAX_TOKENS;
        let consistent = inputs.iter().all(|input| {
            input.tensor.ty == TensorType::I64
                && input.tensor.dimensions == *dimensions
                && input.tensor.data.len() == count * seq * I64_BYTES
        });
        (fits && consistent).then_some(Rows { count, seq })
    }

    /// Which of the `queued` jobs (by position; `None` runs alone) join a run that starts with `first`:
    /// the closest lengths first, while the run stays within [`MAX_ROWS`] and [`MAX_TOKENS`] and its longest row
    /// is at most twice its shortest or [`LENGTH_SLACK`] tokens longer. Positions come back in ascending order.
    pub fn select(&self, first: Rows, queued: impl Iterator<Item = Option<Rows>>) -> Vec<usize> {
        let mut candidates: Vec<(usize, Rows)> = queued
            .enumerate()
            .filter_map(|(position, rows)| Some((position, rows?)))
            .filter(|(_, rows)| self.pad || rows.seq == first.seq)
            .collect();
        // Stable: among equally close lengths, the oldest job goes first.
        candidates.sort_by_key(|(_, rows)| rows.seq.abs_diff(first.seq));
        let (mut count, mut shortest, mut longest) = (first.count, first.seq, first.seq);
        let mut joined = Vec::new();
        for (position, rows) in candidates {
            let total = count + rows.count;
            let (low, high) = (shortest.min(rows.seq), longest.max(rows.seq));
            let similar = high <= 2 * low || high - low <= LENGTH_SLACK;
            if total <= MAX_ROWS && total * high <= MAX_TOKENS && similar {
                (count, shortest, longest) = (total, low, high);
                joined.push(position);
            }
        }
        joined.sort_unstable();
        joined
    }

    /// The inputs of one run over `jobs` (each prepared, with its rows): their rows stacked in order, each
    /// padded with zeros to the longest.
    pub fn join(&self, jobs: &[(&[NamedTensor], Rows)]) -> Vec<NamedTensor> {
        let (count, seq) = extent(jobs.iter().map(|(_, rows)| *rows));
        let row_bytes = seq * I64_BYTES;
        self.inputs
            .iter()
            .enumerate()
            .map(|(position, name)| {
                let mut data = vec![0; count * row_bytes];
                let mut rows_out = data.chunks_exact_mut(row_bytes);
                for (inputs, rows) in jobs {
                    let job_rows = inputs[position]
                        .tensor
                        .data
                        .chunks_exact(rows.seq * I64_BYTES);
                    for (row, out) in job_rows.zip(&mut rows_out) {
                        out[..row.len()].copy_from_slice(row);
                    }
                }
                NamedTensor {
                    name: name.clone(),
                    tensor: Tensor::new(vec![count as u32, seq as u32], TensorType::I64, data),
                }
            })
            .collect()
    }

    /// Each job's outputs from a joined run's: its rows, without the padding. An error if an output is not
    /// shaped `[rows, seq, ...]` as the graph promised.
    pub fn split(
        &self,
        outputs: &[NamedTensor],
        jobs: &[Rows],
    ) -> Result<Vec<Vec<NamedTensor>>, BackendError> {
        let (count, seq) = extent(jobs.iter().copied());
        let mut split: Vec<Vec<NamedTensor>> = jobs.iter().map(|_| Vec::new()).collect();
        for output in outputs {
            let tensor = &output.tensor;
            let dimensions = &tensor.dimensions;
            let per_token: usize = dimensions.iter().skip(2).map(|&d| d as usize).product();
            let elements = count * seq * per_token;
            let element_bytes = tensor.data.len().checked_div(elements).unwrap_or(0);
            let shaped = dimensions.len() >= 2
                && dimensions[0] as usize == count
                && dimensions[1] as usize == seq
                && element_bytes > 0
                && tensor.data.len() == elements * element_bytes;
            if !shaped {
                return Err(BackendError::BackendAccess(format_err!(
                    "output `{}` has dimensions {dimensions:?} and {} bytes, not [{count}, {seq}, ...]",
                    output.name,
                    tensor.data.len()
                )));
            }
            let token_bytes = per_token * element_bytes;
            let mut rows_in = tensor.data.chunks_exact(seq * token_bytes);
            for (rows, outputs) in jobs.iter().zip(&mut split) {
                let mut data = Vec::with_capacity(rows.count * rows.seq * token_bytes);
                for row in rows_in.by_ref().take(rows.count) {
                    data.extend_from_slice(&row[..rows.seq * token_bytes]);
                }
                let mut dimensions = dimensions.clone();
                dimensions[0] = rows.count as u32;
                dimensions[1] = rows.seq as u32;
                outputs.push(NamedTensor {
                    name: output.name.clone(),
                    tensor: Tensor::new(dimensions, tensor.ty, data),
                });
            }
        }
        Ok(split)
    }
}

/// The rows and the longest length of a run over jobs of these shapes.
fn extent(jobs: impl Iterator<Item = Rows>) -> (usize, usize) {
    jobs.fold((0, 0), |(count, seq), rows| {
        (count + rows.count, seq.max(rows.seq))
    })
}

#[cfg(test)]
mod tests {
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
    const HIDDEN: [(&str, i64); 3] = [("batch", -1), ("seq", -1), ("", 4)];

    fn bert_inputs() -> Vec<Input> {
        ["input_ids", "attention_mask", "token_type_ids"]
            .map(|name| input(name, TensorElementType::Int64, &TOKENS))
            .into()
    }

    fn bert() -> Batching {
        Batching::of(&bert_inputs(), &[output("last_hidden_state", &HIDDEN)]).unwrap()
    }

    fn i64_tensor(name: &str, dimensions: [u32; 2], values: &[i64]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(
                dimensions.to_vec(),
                TensorType::I64,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        }
    }

    fn i64_values(tensor: &Tensor) -> Vec<i64> {
        tensor
            .data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// Inputs of a BERT job, given in an order other than the graph's.
    fn bert_job(ids: &[&[i64]]) -> Vec<NamedTensor> {
        let seq = ids[0].len();
        let dimensions = [ids.len() as u32, seq as u32];
        let flat: Vec<i64> = ids.concat();
        vec![
            i64_tensor("token_type_ids", dimensions, &vec![0; flat.len()]),
            i64_tensor("input_ids", dimensions, &flat),
            i64_tensor("attention_mask", dimensions, &vec![1; flat.len()]),
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
                pad: true
            }
        );
        let hidden = [output("last_hidden_state", &HIDDEN)];
        // Without an attention mask, rows are joined but never padded.
        let ids = [input("ids", TensorElementType::Int64, &TOKENS)];
        assert!(!Batching::of(&ids, &hidden).unwrap().pad);

        let refused =
            |inputs: &[Input], outputs: &[Output]| Batching::of(inputs, outputs).is_none();
        // A float input, a rank-3 input, a fixed length, unnamed or mismatched axes.
        assert!(refused(
            &[input("x", TensorElementType::Float32, &TOKENS)],
            &hidden
        ));
        assert!(refused(
            &[input("x", TensorElementType::Int64, &HIDDEN)],
            &hidden
        ));
        assert!(refused(
            &[input(
                "x",
                TensorElementType::Int64,
                &[("batch", -1), ("seq", 8)]
            )],
            &hidden
        ));
        assert!(refused(
            &[input("x", TensorElementType::Int64, &[("", -1), ("", -1)])],
            &hidden
        ));
        let other_axes = input("y", TensorElementType::Int64, &[("n", -1), ("seq", -1)]);
        let ids_again = input("ids", TensorElementType::Int64, &TOKENS);
        assert!(refused(&[ids_again, other_axes], &hidden));
        // Outputs that are pooled, transposed or have a dynamic inner axis.
        assert!(refused(
            &bert_inputs(),
            &[output("pooled", &[("batch", -1), ("", 4)])]
        ));
        assert!(refused(
            &bert_inputs(),
            &[output("t", &[("seq", -1), ("batch", -1), ("", 4)])]
        ));
        assert!(refused(
            &bert_inputs(),
            &[output("a", &[("batch", -1), ("seq", -1), ("seq", -1)])]
        ));
        assert!(refused(&[], &hidden));
    }

    #[test]
    fn prepare_orders_inputs_and_accepts_only_consistent_jobs() {
        let batching = bert();
        let mut inputs = bert_job(&[&[101, 7, 102], &[101, 8, 102]]);
        assert_eq!(
            batching.prepare(&mut inputs),
            Some(Rows { count: 2, seq: 3 })
        );
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["input_ids", "attention_mask", "token_type_ids"]);

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
        let mut empty = bert_job(&[&[]]);
        assert_eq!(batching.prepare(&mut empty), None);
        let long = vec![1; MAX_TOKENS + 1];
        let mut huge = bert_job(&[long.as_slice()]);
        assert_eq!(batching.prepare(&mut huge), None);
    }

    fn rows(count: usize, seq: usize) -> Option<Rows> {
        Some(Rows { count, seq })
    }

    #[test]
    fn select_joins_similar_lengths_within_the_limits() {
        let batching = bert();
        let first = Rows { count: 1, seq: 12 };
        let queued = [
            rows(1, 250),
            None,
            rows(1, 14),
            rows(1, 20),
            rows(2, 12),
            rows(1, 40),
        ];
        // 250 tokens is far from 12-20; the job that runs alone stays queued; 40 > 2 × 12 and 28 tokens more.
        assert_eq!(batching.select(first, queued.into_iter()), [2, 3, 4]);
        // Long rows join when within twice each other.
        let long = Rows { count: 1, seq: 150 };
        assert_eq!(batching.select(long, queued.into_iter()), [0]);

        // Without padding only equal lengths join.
        let unpadded = Batching {
            pad: false,
            ..bert()
        };
        assert_eq!(unpadded.select(first, queued.into_iter()), [4]);

        // Row and token limits.
        let many = std::iter::repeat_n(rows(1, 12), 100);
        assert_eq!(batching.select(first, many).len(), MAX_ROWS - 1);
        let wide = Rows {
            count: 30,
            seq: 256,
        };
        assert_eq!(
            batching.select(wide, [rows(2, 256), rows(3, 256)].into_iter()),
            [0]
        );
    }

    #[test]
    fn join_pads_and_split_unpads() {
        let batching = bert();
        let mut short = bert_job(&[&[101, 5, 102]]);
        let mut long = bert_job(&[&[101, 6, 7, 8, 102], &[101, 9, 9, 9, 102]]);
        let short_rows = batching.prepare(&mut short).unwrap();
        let long_rows = batching.prepare(&mut long).unwrap();

        let joined = batching.join(&[(short.as_slice(), short_rows), (long.as_slice(), long_rows)]);
        assert_eq!(joined[0].name, "input_ids");
        assert_eq!(joined[0].tensor.dimensions, [3, 5]);
        assert_eq!(
            i64_values(&joined[0].tensor),
            [101, 5, 102, 0, 0, 101, 6, 7, 8, 102, 101, 9, 9, 9, 102]
        );
        assert_eq!(
            i64_values(&joined[1].tensor),
            [1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        );
        assert_eq!(i64_values(&joined[2].tensor), [0; 15]);

        // A [3, 5, 2] f32 output whose values name their row and position.
        let values: Vec<f32> = (0..3)
            .flat_map(|row| (0..5).flat_map(move |pos| [row as f32, pos as f32]))
            .collect();
        let output = NamedTensor {
            name: "last_hidden_state".into(),
            tensor: Tensor::new(
                vec![3, 5, 2],
                TensorType::Fp32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        };
        let split = batching
            .split(std::slice::from_ref(&output), &[short_rows, long_rows])
            .unwrap();
        let floats = |t: &Tensor| -> Vec<f32> {
            t.data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        assert_eq!(split[0][0].name, "last_hidden_state");
        assert_eq!(split[0][0].tensor.dimensions, [1, 3, 2]);
        assert_eq!(floats(&split[0][0].tensor), [0., 0., 0., 1., 0., 2.]);
        assert_eq!(split[1][0].tensor.dimensions, [2, 5, 2]);
        assert_eq!(&floats(&split[1][0].tensor)[..4], [1., 0., 1., 1.]);
        assert_eq!(&floats(&split[1][0].tensor)[10..12], [2., 0.]);

        // An output that does not have the joined rows is an error, not a wrong answer.
        assert!(batching.split(&[output], &[short_rows]).is_err());
    }
}
