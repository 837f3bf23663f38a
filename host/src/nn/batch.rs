//! Cross-request batching, row by row: which queued rows may share one model run, how they are joined before
//! the run, and how each job's outputs are put back together after it.
//!
//! On a CPU, one run of a small transformer over many rows costs far less than one run per row, but every
//! padding token costs as much as a real one. So, as text-embeddings-inference does, the sessions schedule
//! rows, not requests: a job's rows are trimmed to their real length (the end of their attention mask), rows
//! of similar length from any queued jobs share a run, each padded with zeros to the longest in that run.
//!
//! Joining must not change anyone's result, so it is allowed only for graphs whose every input is an int64
//! `[batch, seq]` tensor and whose every output is `[batch, seq, fixed...]`, judged by the graph's symbolic
//! dimension names. Rows are trimmed and padded only when the graph has an `attention_mask` input, which makes
//! masked positions inert; without one, only rows of equal length are joined. A job's outputs at positions its
//! attention mask excludes are zeros: the model's values there mean nothing (they change with the padding).

use ort::session::{Input, Output};
use ort::tensor::TensorElementType;
use ort::value::ValueType;
use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// At most this many rows share a run.
const MAX_ROWS: usize = 64;

/// At most this many tokens, padding included, share a run (16 rows of the model's 256 tokens): a run's
/// memory grows with its tokens, and ONNX Runtime keeps the largest run's memory for the next ones.
const MAX_TOKENS: usize = 4096;

/// What running a batch costs beyond its tokens, in tokens. For all-MiniLM-L6-v2 on ONNX Runtime's CPU
/// provider a run costs about 1.9 ms plus 0.12 ms per token, padding included (2 intra-op threads): a run's
/// fixed cost is worth 16 tokens.
const RUN_COST_TOKENS: usize = 16;

/// The name of the input that marks padding, by the Hugging Face convention.
pub const ATTENTION_MASK: &str = "attention_mask";

const I64_BYTES: usize = size_of::<i64>();

/// How a graph's jobs are split into rows and joined: built by [`Batching::of`] for graphs that allow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batching {
    /// Every input's name, in the graph's order.
    inputs: Vec<String>,
    /// The position of the attention mask among the inputs, if the graph has one: rows are then trimmed and
    /// padded.
    mask: Option<usize>,
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
            mask: inputs.iter().position(|input| input.name == ATTENTION_MASK),
        })
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
        if rows == 0 || seq == 0 || seq > MAX_TOKENS || !consistent {
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
    /// [`MAX_ROWS`] and [`MAX_TOKENS`]; the run that holds `first` is the answer. Without an attention mask,
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
                if count > 1 && count * longest > MAX_TOKENS {
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

/// A job's outputs, put together row by row from the runs its rows were part of. Positions beyond a row's
/// length stay zero.
pub struct Assembly {
    rows: usize,
    seq: usize,
    /// Allocated when the first row arrives: only then are the outputs' types and inner dimensions known.
    outputs: Vec<NamedTensor>,
}

impl Assembly {
    /// For a job of `rows` rows of `seq` tokens.
    pub fn new(rows: usize, seq: usize) -> Self {
        Self {
            rows,
            seq,
            outputs: Vec::new(),
        }
    }

    /// Copies row `from` of a run's `outputs`, its first `len` positions, into row `row`. An error if the
    /// outputs are not `[rows, seq, ...]` as the graph promised.
    pub fn fill(
        &mut self,
        outputs: &[NamedTensor],
        from: usize,
        row: usize,
        len: usize,
    ) -> Result<(), BackendError> {
        if self.outputs.is_empty() {
            self.outputs = outputs
                .iter()
                .map(|output| self.allocate(output))
                .collect::<Result<_, _>>()?;
        }
        if outputs.len() != self.outputs.len() {
            return Err(misshapen("a run returned a different set of outputs"));
        }
        for (output, assembled) in outputs.iter().zip(&mut self.outputs) {
            let dimensions = &output.tensor.dimensions;
            let fits = output.name == assembled.name
                && output.tensor.ty == assembled.tensor.ty
                && dimensions.len() == assembled.tensor.dimensions.len()
                && dimensions[2..] == assembled.tensor.dimensions[2..]
                && from < dimensions[0] as usize
                && len <= dimensions[1] as usize;
            let token_bytes = token_bytes(&assembled.tensor);
            let run_row_bytes = dimensions.get(1).map_or(0, |&seq| seq as usize) * token_bytes;
            if !fits || output.tensor.data.len() != dimensions[0] as usize * run_row_bytes {
                return Err(misshapen(&format!(
                    "output `{}` is {:?} {dimensions:?} with {} bytes; expected [rows, seq, ...]",
                    output.name,
                    output.tensor.ty,
                    output.tensor.data.len()
                )));
            }
            let source = &output.tensor.data[from * run_row_bytes..][..len * token_bytes];
            let target = row * self.seq * token_bytes;
            assembled.tensor.data[target..target + source.len()].copy_from_slice(source);
        }
        Ok(())
    }

    /// The job's outputs.
    pub fn finish(self) -> Vec<NamedTensor> {
        self.outputs
    }

    /// A zeroed `[rows, seq, ...]` tensor for `output`, a run's output of rank 2 or more.
    fn allocate(&self, output: &NamedTensor) -> Result<NamedTensor, BackendError> {
        let dimensions = &output.tensor.dimensions;
        let elements: usize = dimensions.iter().map(|&d| d as usize).product();
        let element_bytes = output.tensor.data.len().checked_div(elements).unwrap_or(0);
        if dimensions.len() < 2 || element_bytes == 0 {
            return Err(misshapen(&format!(
                "output `{}` is {dimensions:?}; expected [rows, seq, ...]",
                output.name
            )));
        }
        let mut assembled = dimensions.clone();
        assembled[0] = self.rows as u32;
        assembled[1] = self.seq as u32;
        let per_token: usize = dimensions[2..].iter().map(|&d| d as usize).product();
        Ok(NamedTensor {
            name: output.name.clone(),
            tensor: Tensor::new(
                assembled,
                output.tensor.ty,
                vec![0; self.rows * self.seq * per_token * element_bytes],
            ),
        })
    }
}

/// Bytes per position of an assembled `[rows, seq, ...]` tensor.
fn token_bytes(tensor: &Tensor) -> usize {
    let rows_by_seq = tensor.dimensions[..2]
        .iter()
        .map(|&d| d as usize)
        .product::<usize>();
    tensor.data.len().checked_div(rows_by_seq).unwrap_or(0)
}

fn misshapen(message: &str) -> BackendError {
    BackendError::BackendAccess(format_err!("cannot split a batched run: {message}"))
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
    const HIDDEN: [(&str, i64); 3] = [("batch", -1), ("seq", -1), ("", 2)];

    fn bert_inputs() -> Vec<Input> {
        ["input_ids", "attention_mask", "token_type_ids"]
            .map(|name| input(name, TensorElementType::Int64, &TOKENS))
            .into()
    }

    fn bert() -> Batching {
        Batching::of(&bert_inputs(), &[output("last_hidden_state", &HIDDEN)]).unwrap()
    }

    fn i64_tensor(name: &str, dimensions: [usize; 2], values: &[i64]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(
                dimensions.iter().map(|&d| d as u32).collect(),
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

    fn f32_tensor(name: &str, dimensions: Vec<u32>, values: &[f32]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(
                dimensions,
                TensorType::Fp32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        }
    }

    fn f32_values(tensor: &Tensor) -> Vec<f32> {
        tensor
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// Inputs of a BERT job whose rows are padded with zeros to the longest, given in an order other than the
    /// graph's.
    fn bert_job(rows: &[&[i64]]) -> Vec<NamedTensor> {
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
                mask: Some(1)
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
        // Outputs that are pooled, transposed or have a dynamic inner axis.
        let pooled = output("pooled", &[("batch", -1), ("", 4)]);
        assert!(refused(&bert_inputs(), &[pooled]));
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
        let long = vec![1; MAX_TOKENS + 1];
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
        assert_eq!(batching.select(256, wide).len(), MAX_TOKENS / 256 - 1);
        let too_wide = std::iter::repeat_n(Some(MAX_TOKENS), 3);
        assert_eq!(batching.select(MAX_TOKENS, too_wide), Vec::<usize>::new());
    }

    #[test]
    fn join_trims_and_pads_and_assembly_puts_rows_back() {
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

        // Outputs [2, 5, 2] whose values name their run row and position.
        let values: Vec<f32> = (0..2)
            .flat_map(|row| (0..5).flat_map(move |pos| [row as f32, pos as f32]))
            .collect();
        let outputs = [f32_tensor("last_hidden_state", vec![2, 5, 2], &values)];
        let mut assembly = Assembly::new(2, 5);
        assembly.fill(&outputs, 0, 0, 5).unwrap();
        assembly.fill(&outputs, 1, 1, 3).unwrap();
        let assembled = assembly.finish();
        assert_eq!(assembled[0].name, "last_hidden_state");
        assert_eq!(assembled[0].tensor.dimensions, [2, 5, 2]);
        assert_eq!(
            f32_values(&assembled[0].tensor),
            [
                0., 0., 0., 1., 0., 2., 0., 3., 0.,
                4., // row 0: all five positions of run row 0
                1., 0., 1., 1., 1., 2., 0., 0., 0.,
                0., // row 1: three positions of run row 1, then zeros
            ]
        );
    }

    #[test]
    fn assembly_refuses_outputs_without_the_rows() {
        let mut assembly = Assembly::new(1, 3);
        let pooled = f32_tensor("pooled", vec![2], &[1., 2.]);
        assert!(assembly.fill(&[pooled], 0, 0, 1).is_err());
        let hidden = f32_tensor("h", vec![1, 3, 1], &[1., 2., 3.]);
        let mut assembly = Assembly::new(1, 3);
        // A run row or length the run does not have, or data that does not fill the dimensions.
        assert!(assembly
            .fill(std::slice::from_ref(&hidden), 1, 0, 3)
            .is_err());
        assert!(assembly
            .fill(std::slice::from_ref(&hidden), 0, 0, 4)
            .is_err());
        let short = f32_tensor("h", vec![1, 3, 1], &[1., 2.]);
        assert!(assembly.fill(&[short], 0, 0, 3).is_err());
        let renamed = f32_tensor("other", vec![1, 3, 1], &[1., 2., 3.]);
        assert!(assembly.fill(&[renamed], 0, 0, 3).is_err());
        assembly.fill(&[hidden], 0, 0, 3).unwrap();
        assert_eq!(f32_values(&assembly.finish()[0].tensor), [1., 2., 3.]);
    }
}
