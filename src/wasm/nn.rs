//! [`Graphs`] over wasi:nn: `load-by-name`, then one execution context and one `compute`.

use super::bindings::wasi::nn::errors::Error;
use super::bindings::wasi::nn::graph;
use super::bindings::wasi::nn::tensor::{Tensor as NnTensor, TensorType as NnType};
use crate::backend::wasi_nn::{Graphs, Tensor, TensorType};
use crate::backend::InferError;

pub struct WasiNnGraphs;

impl Graphs for WasiNnGraphs {
    fn compute(
        &self,
        graph: &str,
        inputs: Vec<(String, Tensor)>,
    ) -> Result<Vec<(String, Tensor)>, InferError> {
        let graph = graph::load_by_name(graph).map_err(|e| nn_error("loading the graph", e))?;
        let context = graph
            .init_execution_context()
            .map_err(|e| nn_error("creating a context", e))?;
        let inputs = inputs
            .into_iter()
            .map(|(name, tensor)| {
                let ty = match tensor.ty {
                    TensorType::I64 => NnType::I64,
                    TensorType::Fp32 => NnType::Fp32,
                    TensorType::Other => NnType::U8,
                };
                (name, NnTensor::new(&tensor.dimensions, ty, &tensor.data))
            })
            .collect();
        let outputs = context
            .compute(inputs)
            .map_err(|e| nn_error("computing", e))?;
        Ok(outputs
            .into_iter()
            .map(|(name, tensor)| {
                let ty = match tensor.ty() {
                    NnType::I64 => TensorType::I64,
                    NnType::Fp32 => TensorType::Fp32,
                    _ => TensorType::Other,
                };
                let converted = Tensor {
                    dimensions: tensor.dimensions(),
                    ty,
                    data: tensor.data(),
                };
                (name, converted)
            })
            .collect())
    }
}

fn nn_error(doing: &str, error: Error) -> InferError {
    InferError::new(format!(
        "wasi:nn {doing}: {:?}: {}",
        error.code(),
        error.data()
    ))
}
