//! [`Infer`] over wasi:nn: one `load-by-name` and one `compute` per request with every sequence
//! in input order, padded only to the longest; the host's batcher groups rows across requests.
//! The graph's output `sentence_embedding` is already pooled and normalized, `[rows, 384]`.
//!
//! The wasi:nn calls themselves are behind [`Graphs`] (`wasm::nn` in the component), so this
//! file is plain Rust, tested natively.

use super::{Infer, InferError, Sequence, TokenBatch};
use crate::embed::model::Model;

/// The pooled output every served graph has.
pub use sbert_model::SENTENCE_EMBEDDING as OUTPUT;

/// wasi:nn's tensor element types that this backend tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    I64,
    Fp32,
    Other,
}

/// A tensor as wasi:nn carries it: dimensions, element type and the elements' bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dimensions: Vec<u32>,
    pub ty: TensorType,
    pub data: Vec<u8>,
}

/// Runs a named graph once (wasi:nn `load-by-name`, `init-execution-context`, `compute`).
pub trait Graphs {
    fn compute(
        &self,
        graph: &str,
        inputs: Vec<(String, Tensor)>,
    ) -> Result<Vec<(String, Tensor)>, InferError>;
}

pub struct WasiNn<G>(pub G);

// wasi:nn tensors carry little-endian bytes; the casts below are native-endian (see lib.rs).

impl<G: Graphs> Infer for WasiNn<G> {
    fn embed(
        &self,
        model: &Model,
        sequences: &[Sequence<'_>],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        if sequences.is_empty() {
            return Ok(Vec::new());
        }
        let batch = TokenBatch::new(sequences);
        let dimensions = vec![dimension(batch.rows)?, dimension(batch.longest)?];
        let inputs = [
            (sbert_model::INPUT_IDS, &batch.input_ids),
            (sbert_model::ATTENTION_MASK, &batch.attention_mask),
            (sbert_model::TOKEN_TYPE_IDS, &batch.token_type_ids),
        ]
        .map(|(name, values)| {
            let tensor = Tensor {
                dimensions: dimensions.clone(),
                ty: TensorType::I64,
                data: bytemuck::cast_slice(values).to_vec(),
            };
            (name.to_owned(), tensor)
        });
        let outputs = self.0.compute(model.graph, inputs.into())?;
        let (_, output) = outputs
            .into_iter()
            .find(|(name, _)| name == OUTPUT)
            .ok_or_else(|| InferError::new(format!("the graph has no output `{OUTPUT}`")))?;
        embeddings(&output, batch.rows, model.dimensions)
    }
}

fn embeddings(output: &Tensor, rows: usize, width: usize) -> Result<Vec<Vec<f32>>, InferError> {
    let expected = [rows, width].map(|size| u32::try_from(size).unwrap_or(u32::MAX));
    if output.dimensions != expected || output.ty != TensorType::Fp32 {
        return Err(InferError::new(format!(
            "`{OUTPUT}` is {:?} {:?}, expected Fp32 {expected:?}",
            output.ty, output.dimensions
        )));
    }
    if output.data.len() != rows * width * size_of::<f32>() {
        return Err(InferError::new(format!(
            "`{OUTPUT}` has {} bytes for {rows} × {width} floats",
            output.data.len()
        )));
    }
    let values: Vec<f32> = bytemuck::pod_collect_to_vec(&output.data);
    Ok(values.chunks_exact(width).map(<[f32]>::to_vec).collect())
}

fn dimension(size: usize) -> Result<u32, InferError> {
    u32::try_from(size)
        .map_err(|_| InferError::new(format!("dimension {size} does not fit wasi:nn")))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::embed::model::{ModelKind, DIMENSIONS};

    type Named = Vec<(String, Tensor)>;

    /// Answers every compute with `output`, recording the graph and inputs it was given.
    struct FakeGraphs {
        output: Box<dyn Fn(usize) -> Named>,
        calls: RefCell<Vec<(String, Named)>>,
    }

    impl Graphs for FakeGraphs {
        fn compute(
            &self,
            graph: &str,
            inputs: Vec<(String, Tensor)>,
        ) -> Result<Vec<(String, Tensor)>, InferError> {
            let rows = inputs[0].1.dimensions[0] as usize;
            self.calls.borrow_mut().push((graph.to_owned(), inputs));
            Ok((self.output)(rows))
        }
    }

    /// Row `r` of the output is `[r, r, …]`.
    fn pooled(rows: usize) -> Vec<(String, Tensor)> {
        let values: Vec<f32> = (0..rows)
            .flat_map(|row| std::iter::repeat_n(row as f32, DIMENSIONS))
            .collect();
        vec![(
            OUTPUT.to_owned(),
            Tensor {
                dimensions: vec![rows as u32, DIMENSIONS as u32],
                ty: TensorType::Fp32,
                data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            },
        )]
    }

    fn graphs(output: impl Fn(usize) -> Vec<(String, Tensor)> + 'static) -> WasiNn<FakeGraphs> {
        WasiNn(FakeGraphs {
            output: Box::new(output),
            calls: RefCell::default(),
        })
    }

    fn seq(ids: &[u32]) -> Sequence<'_> {
        Sequence { ids, text: None }
    }

    #[test]
    fn one_compute_with_every_row_in_input_order() {
        let backend = graphs(pooled);
        let model = Model::new(ModelKind::Int8, String::new());
        let long: Vec<u32> = (0..40).collect();
        let vectors = backend
            .embed(&model, &[seq(&long), seq(&[101, 102]), seq(&[101, 7, 102])])
            .unwrap();
        assert_eq!(vectors.len(), 3);
        assert!(vectors
            .iter()
            .enumerate()
            .all(|(row, v)| v == &vec![row as f32; DIMENSIONS]));
        let calls = backend.0.calls.borrow();
        assert_eq!(calls.len(), 1);
        let (graph, inputs) = &calls[0];
        assert_eq!(graph, "all-minilm-l6-v2-int8");
        let names: Vec<_> = inputs.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["input_ids", "attention_mask", "token_type_ids"]);
        let ids = &inputs[0].1;
        assert_eq!(
            (ids.dimensions.clone(), ids.ty),
            (vec![3, 40], TensorType::I64)
        );
        // Little-endian int64: the second row starts at element 40 with [CLS] = 101.
        assert_eq!(ids.data[40 * 8..41 * 8], 101i64.to_le_bytes());
        assert_eq!(ids.data.len(), 3 * 40 * 8);
    }

    #[test]
    fn no_sequences_no_compute() {
        let backend = graphs(pooled);
        let model = Model::new(ModelKind::Fp32, String::new());
        assert!(backend.embed(&model, &[]).unwrap().is_empty());
        assert!(backend.0.calls.borrow().is_empty());
    }

    #[test]
    fn a_wrong_output_is_an_error() {
        let model = Model::new(ModelKind::Fp32, String::new());
        let hi = [seq(&[101, 7632, 102])];
        for broken in [
            graphs(|_| Vec::new()),
            graphs(|rows| pooled(rows + 1)),
            graphs(|rows| {
                let mut output = pooled(rows);
                output[0].1.ty = TensorType::I64;
                output
            }),
            graphs(|rows| {
                let mut output = pooled(rows);
                output[0].1.data.pop();
                output
            }),
            graphs(|rows| {
                let mut output = pooled(rows);
                output[0].0 = "last_hidden_state".into();
                output
            }),
        ] {
            assert!(broken.embed(&model, &hi).is_err());
        }
    }
}
