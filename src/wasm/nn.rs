//! [`Infer`] over wasi:nn: the host runs graph `all-minilm-l6-v2` (ONNX) on our token batch.

use super::bindings::wasi::nn::graph;
use super::bindings::wasi::nn::tensor::{Tensor, TensorType};
use crate::embed::{HiddenStates, Infer, InferError};
use crate::tokenize::TokenBatch;

/// The graph name the host serves the sentence-transformer under.
const GRAPH: &str = "all-minilm-l6-v2";
const OUTPUT: &str = "last_hidden_state";

pub struct WasiNn;

impl Infer for WasiNn {
    fn infer(&self, batch: &TokenBatch) -> Result<HiddenStates, InferError> {
        let graph = graph::load_by_name(GRAPH).map_err(|e| nn_error("loading the graph", e))?;
        let context = graph
            .init_execution_context()
            .map_err(|e| nn_error("creating a context", e))?;
        let dimensions = [dimension(batch.batch)?, dimension(batch.seq)?];
        let inputs = [
            ("input_ids", &batch.input_ids),
            ("attention_mask", &batch.attention_mask),
            ("token_type_ids", &batch.token_type_ids),
        ]
        .map(|(name, values)| {
            (
                name.to_owned(),
                Tensor::new(&dimensions, TensorType::I64, &int64_bytes(values)),
            )
        });
        let outputs = context
            .compute(inputs.into())
            .map_err(|e| nn_error("computing", e))?;
        let (_, output) = outputs
            .into_iter()
            .find(|(name, _)| name == OUTPUT)
            .ok_or_else(|| InferError(format!("the graph has no output `{OUTPUT}`")))?;
        hidden_states(&output, &dimensions)
    }
}

fn hidden_states(output: &Tensor, input_dimensions: &[u32; 2]) -> Result<HiddenStates, InferError> {
    let (dimensions, ty) = (output.dimensions(), output.ty());
    let [batch, seq, hidden] = dimensions[..] else {
        return Err(InferError(format!(
            "`{OUTPUT}` has dimensions {dimensions:?}, expected 3"
        )));
    };
    if [batch, seq] != *input_dimensions || ty != TensorType::Fp32 {
        return Err(InferError(format!(
            "`{OUTPUT}` is {ty:?} {dimensions:?}, expected FP32 [{}, {}, hidden]",
            input_dimensions[0], input_dimensions[1]
        )));
    }
    let values = output
        .data()
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .collect();
    Ok(HiddenStates {
        values,
        hidden: hidden as usize,
    })
}

/// wasi:nn tensors carry little-endian bytes.
fn int64_bytes(values: &[i64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

fn dimension(size: usize) -> Result<u32, InferError> {
    u32::try_from(size).map_err(|_| InferError(format!("dimension {size} does not fit wasi:nn")))
}

fn nn_error(doing: &str, error: super::bindings::wasi::nn::errors::Error) -> InferError {
    InferError(format!(
        "wasi:nn {doing}: {:?}: {}",
        error.code(),
        error.data()
    ))
}
