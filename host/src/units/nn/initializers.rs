//! A graph's large weights, read once and handed to each of its sessions.
//!
//! Every ONNX Runtime session built from a model's bytes holds its own copy of the model's initializers (the
//! weights), and its own prepacked forms of them. A graph served by several sessions would hold its weights
//! several times. So the large initializers are read from the ONNX file here, once, into tensors that every
//! session of the graph is given in place of its own (`AddInitializer`: the session uses the caller's
//! memory), and the sessions share one container of prepacked weights.
//!
//! Only the initializer list is decoded (with `prost`, a subset of ONNX's `ModelProto`), and only
//! initializers stored inline as `raw_data` in a type this host converts are shared; any other stays in the
//! model, where each session reads its own copy as before.

use std::sync::Arc;

use anyhow::{Context, Result};
use ort::tensor::PrimitiveTensorElementType;
use ort::value::DynValue;
use prost::Message;

/// Initializers smaller than this stay in each session: biases and norms are not worth an entry each.
const SHARED_MIN_BYTES: usize = 64 * 1024;

/// The fields of ONNX's `ModelProto` (onnx/onnx.proto) that lead to the initializers; the rest is skipped.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
    /// 1 when the data lives in an external file: never the case for the files `make models` writes.
    #[prost(int32, tag = "14")]
    data_location: i32,
}

// `TensorProto.DataType` values.
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;

/// The large initializers of one model, by name, ready to be given to each of its sessions.
pub struct SharedInitializers(pub Vec<(String, Arc<DynValue>)>);

impl SharedInitializers {
    /// Reads `model`'s large inline initializers.
    pub fn read(model: &[u8]) -> Result<Self> {
        let model = ModelProto::decode(model).context("not an ONNX model (protobuf)")?;
        let initializers = model
            .graph
            .map(|graph| graph.initializer)
            .unwrap_or_default();
        let mut shared = Vec::new();
        for tensor in initializers {
            if tensor.raw_data.len() < SHARED_MIN_BYTES || tensor.data_location != 0 {
                continue;
            }
            let value = match tensor.data_type {
                FLOAT => value::<f32>(&tensor),
                UINT8 => value::<u8>(&tensor),
                INT8 => value::<i8>(&tensor),
                INT32 => value::<i32>(&tensor),
                INT64 => value::<i64>(&tensor),
                _ => continue,
            }
            .with_context(|| format!("initializer `{}`", tensor.name))?;
            if let Some(value) = value {
                shared.push((tensor.name, Arc::new(value)));
            }
        }
        Ok(Self(shared))
    }
}

/// `tensor`'s data as a tensor of `T`; `None` if its bytes do not fill its dimensions (left to the session,
/// which reports such a model itself).
fn value<T: PrimitiveTensorElementType + bytemuck::Pod + std::fmt::Debug>(
    tensor: &TensorProto,
) -> Result<Option<DynValue>> {
    let elements = tensor
        .dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
    if elements.and_then(|n| n.checked_mul(size_of::<T>())) != Some(tensor.raw_data.len()) {
        return Ok(None);
    }
    // ONNX's raw_data is little-endian, as this host's targets are (see the check in nn/mod.rs).
    let values: Vec<T> = bytemuck::pod_collect_to_vec(&tensor.raw_data);
    Ok(Some(
        ort::value::Tensor::from_array((tensor.dims.clone(), values))?.into_dyn(),
    ))
}
