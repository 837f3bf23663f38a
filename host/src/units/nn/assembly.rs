//! A job's outputs, put back together row by row from the runs its rows were part of, in the job's own row
//! order. Per-token outputs (`[rows, seq, ...]`) get each row's first `len` positions and zeros beyond;
//! per-row outputs (`[rows, ...]`, such as a pooled sentence embedding) get the row's whole value.

use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// The outputs of one job, filled as its rows' runs finish.
pub struct Assembly {
    rows: usize,
    seq: usize,
    /// Names of the outputs with a `seq` axis; the others have one value per row.
    token_outputs: Vec<String>,
    /// Allocated when the first row arrives: only then are the outputs' types and inner dimensions known.
    outputs: Vec<NamedTensor>,
}

impl Assembly {
    /// For a job of `rows` rows of `seq` tokens, whose outputs named in `token_outputs` are per token.
    pub fn new(rows: usize, seq: usize, token_outputs: Vec<String>) -> Self {
        Self {
            rows,
            seq,
            token_outputs,
            outputs: Vec::new(),
        }
    }

    /// Copies row `from` of a run's `outputs` into row `row` (of per-token outputs, its first `len`
    /// positions). An error if the outputs are not shaped as the graph promised.
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
        if outputs.len() != self.outputs.len() || row >= self.rows {
            return Err(misshapen("a run returned a different set of outputs"));
        }
        for (output, assembled) in outputs.iter().zip(&mut self.outputs) {
            let run = RowLayout::of(output, self.token_outputs.contains(&output.name))?;
            let target = RowLayout::of(assembled, run.per_token)?;
            let fits = output.name == assembled.name
                && output.tensor.ty == assembled.tensor.ty
                && run.inner == target.inner
                && from < run.rows
                && (!run.per_token || len <= run.seq);
            if !fits {
                return Err(misshapen(&format!(
                    "output `{}` is {:?} {:?}; expected one row per input row",
                    output.name, output.tensor.ty, output.tensor.dimensions
                )));
            }
            let copied = if run.per_token { len } else { 1 } * run.position_bytes();
            let source = &output.tensor.data[from * run.row_bytes()..][..copied];
            let start = row * target.row_bytes();
            assembled.tensor.data[start..start + copied].copy_from_slice(source);
        }
        Ok(())
    }

    /// The job's outputs.
    pub fn finish(self) -> Vec<NamedTensor> {
        self.outputs
    }

    /// A zeroed tensor for this job shaped like a run's `output`: `[rows, seq, ...]` or `[rows, ...]`.
    fn allocate(&self, output: &NamedTensor) -> Result<NamedTensor, BackendError> {
        let run = RowLayout::of(output, self.token_outputs.contains(&output.name))?;
        let mut dimensions = output.tensor.dimensions.clone();
        dimensions[0] = self.rows as u32;
        let seq = if run.per_token {
            dimensions[1] = self.seq as u32;
            self.seq
        } else {
            1
        };
        let bytes = self.rows * seq * run.inner * run.element_bytes;
        Ok(NamedTensor {
            name: output.name.clone(),
            tensor: Tensor::new(dimensions, output.tensor.ty, vec![0; bytes]),
        })
    }
}

/// How one tensor's rows are laid out, checked against its data.
struct RowLayout {
    per_token: bool,
    rows: usize,
    /// Positions per row: the `seq` axis of a per-token output, 1 otherwise.
    seq: usize,
    /// Elements per position: the product of the dimensions after `seq` (per token) or after the rows.
    inner: usize,
    element_bytes: usize,
}

impl RowLayout {
    fn of(output: &NamedTensor, per_token: bool) -> Result<Self, BackendError> {
        let dimensions: Vec<usize> = output
            .tensor
            .dimensions
            .iter()
            .map(|&d| d as usize)
            .collect();
        let leading = if per_token { 2 } else { 1 };
        let element_bytes = element_bytes(output.tensor.ty);
        let elements = dimensions.iter().product::<usize>();
        if dimensions.len() < leading || output.tensor.data.len() != elements * element_bytes {
            return Err(misshapen(&format!(
                "output `{}` is {:?} {dimensions:?} with {} bytes; expected {}",
                output.name,
                output.tensor.ty,
                output.tensor.data.len(),
                if per_token {
                    "[rows, seq, ...]"
                } else {
                    "[rows, ...]"
                }
            )));
        }
        Ok(Self {
            per_token,
            rows: dimensions[0],
            seq: if per_token { dimensions[1] } else { 1 },
            inner: dimensions[leading..].iter().product(),
            element_bytes,
        })
    }

    fn position_bytes(&self) -> usize {
        self.inner * self.element_bytes
    }

    fn row_bytes(&self) -> usize {
        self.seq * self.position_bytes()
    }
}

/// Bytes per element of a wasi:nn tensor type.
fn element_bytes(ty: TensorType) -> usize {
    match ty {
        TensorType::U8 => 1,
        TensorType::Fp16 | TensorType::Bf16 => 2,
        TensorType::Fp32 | TensorType::I32 => 4,
        TensorType::Fp64 | TensorType::I64 => 8,
    }
}

fn misshapen(message: &str) -> BackendError {
    BackendError::BackendAccess(format_err!("cannot split a batched run: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_tensor(name: &str, dimensions: Vec<u32>, values: &[f32]) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(
                dimensions,
                TensorType::Fp32,
                bytemuck::cast_slice(values).to_vec(),
            ),
        }
    }

    fn f32_values(tensor: &Tensor) -> Vec<f32> {
        bytemuck::pod_collect_to_vec(&tensor.data)
    }

    fn hidden() -> Vec<String> {
        vec!["last_hidden_state".into()]
    }

    #[test]
    fn per_token_rows_keep_their_positions_and_zeros_beyond() {
        // Outputs [2, 5, 2] whose values name their run row and position.
        let values: Vec<f32> = (0..2)
            .flat_map(|row| (0..5).flat_map(move |pos| [row as f32, pos as f32]))
            .collect();
        let outputs = [f32_tensor("last_hidden_state", vec![2, 5, 2], &values)];
        let mut assembly = Assembly::new(2, 5, hidden());
        // Run row 1 is the job's first row (3 tokens), run row 0 its second (5 tokens).
        assembly.fill(&outputs, 1, 0, 3).unwrap();
        assembly.fill(&outputs, 0, 1, 5).unwrap();
        let assembled = assembly.finish();
        assert_eq!(assembled[0].name, "last_hidden_state");
        assert_eq!(assembled[0].tensor.dimensions, [2, 5, 2]);
        #[rustfmt::skip]
        let expected = [
            1., 0., 1., 1., 1., 2., 0., 0., 0., 0., // row 0: three positions of run row 1, then zeros
            0., 0., 0., 1., 0., 2., 0., 3., 0., 4., // row 1: all five positions of run row 0
        ];
        assert_eq!(f32_values(&assembled[0].tensor), expected);
    }

    #[test]
    fn per_row_outputs_come_back_in_the_jobs_row_order() {
        // Two runs of a pooled [rows, 3] output; the job's three rows were spread over them.
        let first_run = [f32_tensor(
            "embedding",
            vec![2, 3],
            &[1., 1., 1., 2., 2., 2.],
        )];
        let second_run = [f32_tensor("embedding", vec![1, 3], &[3., 3., 3.])];
        let mut assembly = Assembly::new(3, 7, Vec::new());
        assembly.fill(&second_run, 0, 1, 7).unwrap();
        assembly.fill(&first_run, 1, 2, 2).unwrap();
        assembly.fill(&first_run, 0, 0, 4).unwrap();
        let assembled = assembly.finish();
        assert_eq!(assembled[0].tensor.dimensions, [3, 3]);
        assert_eq!(
            f32_values(&assembled[0].tensor),
            [1., 1., 1., 3., 3., 3., 2., 2., 2.]
        );
    }

    #[test]
    fn refuses_outputs_without_the_rows() {
        let mut assembly = Assembly::new(1, 3, hidden());
        let flat = f32_tensor("last_hidden_state", vec![2], &[1., 2.]);
        assert!(assembly.fill(&[flat], 0, 0, 1).is_err());
        let hidden = f32_tensor("last_hidden_state", vec![1, 3, 1], &[1., 2., 3.]);
        let mut assembly = Assembly::new(1, 3, self::hidden());
        // A run row or length the run does not have, a row the job does not have, or data that does not
        // fill the dimensions.
        assert!(assembly
            .fill(std::slice::from_ref(&hidden), 1, 0, 3)
            .is_err());
        assert!(assembly
            .fill(std::slice::from_ref(&hidden), 0, 0, 4)
            .is_err());
        assert!(assembly
            .fill(std::slice::from_ref(&hidden), 0, 1, 3)
            .is_err());
        let short = f32_tensor("last_hidden_state", vec![1, 3, 1], &[1., 2.]);
        assert!(assembly.fill(&[short], 0, 0, 3).is_err());
        let renamed = f32_tensor("other", vec![1, 3, 1], &[1., 2., 3.]);
        assert!(assembly.fill(&[renamed], 0, 0, 3).is_err());
        assembly.fill(&[hidden], 0, 0, 3).unwrap();
        assert_eq!(f32_values(&assembly.finish()[0].tensor), [1., 2., 3.]);

        // A per-row output whose inner size changes between runs.
        let mut assembly = Assembly::new(2, 3, Vec::new());
        assembly
            .fill(&[f32_tensor("e", vec![1, 2], &[1., 2.])], 0, 0, 3)
            .unwrap();
        assert!(assembly
            .fill(&[f32_tensor("e", vec![1, 3], &[1., 2., 3.])], 0, 1, 3)
            .is_err());
    }
}
