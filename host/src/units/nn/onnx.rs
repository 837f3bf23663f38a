//! ONNX Runtime sessions behind a job queue.
//!
//! A model is loaded into one or more `Session`s, each owned by its own worker thread. Requests submit jobs
//! to the model's [`JobQueue`] and wait for the reply; no lock is held while a session runs, so sessions of
//! the same model (and of different models) run in parallel. A worker that frees up takes the queued rows
//! that can share its run ([`Batching`]) and runs them as one batch.
//!
//! Tensors cross the wasi:nn boundary as little-endian bytes; they are converted to and from typed ONNX
//! Runtime values on the worker thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::Session;
use ort::tensor::{PrimitiveTensorElementType, TensorElementType};
use ort::value::{DynValue, ValueType};
use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

use super::batch::{self, Batching, ATTENTION_MASK};
use super::initializers::SharedInitializers;
use super::metrics::{NnMetrics, RunRecord};
use super::queue::{JobQueue, JobRow, Role, Task};

/// How models are run.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// ONNX Runtime intra-op threads of a run while the queue is light.
    pub intra_threads: usize,
    /// How many inferences of one model run at once under load. With more than one, and more than one
    /// intra-op thread, a model has a latency session with `intra_threads` threads and `sessions` throughput
    /// sessions of one thread each ([`Role`]); otherwise `sessions` sessions of `intra_threads` threads.
    pub sessions: usize,
}

/// The smallest footprint: what a context without preloaded graphs uses for guest-loaded ones.
impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            sessions: 1,
        }
    }
}

/// Loads the ONNX Runtime shared library. Call once, before loading any model.
pub fn init_runtime(library: &Path) -> Result<()> {
    if !library.is_file() {
        bail!(
            "ONNX Runtime library {} not found (run `make models`, or point --onnxruntime / ORT_DYLIB_PATH at libonnxruntime.so)",
            library.display()
        );
    }
    // `ort` reports a library it cannot load (or of an unsupported version) by panicking; make that an error
    // with the library's name instead of a panic message.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let loaded = catch_unwind(|| {
        ort::init_from(library.display().to_string())
            .with_name("sbert-host")
            .commit()
    });
    std::panic::set_hook(previous_hook);
    match loaded {
        Ok(committed) => committed
            .map(drop)
            .with_context(|| format!("cannot start ONNX Runtime from {}", library.display())),
        Err(panic) => Err(anyhow!(
            "cannot load ONNX Runtime library {}: {}",
            library.display(),
            panic_message(panic.as_ref())
        )),
    }
}

/// A model served by worker threads that each own a session.
pub struct OnnxModel {
    queue: Arc<JobQueue>,
    /// Input names in the model's order, for wasi-nn's by-index tensor ids.
    input_names: Vec<String>,
    /// Output names in the model's order.
    output_names: Vec<String>,
}

impl OnnxModel {
    /// Builds the sessions `options` ask for from the ONNX file's bytes and starts their workers, which count
    /// in `metrics`.
    pub fn load(model: &[u8], options: &SessionOptions, metrics: NnMetrics) -> Result<Self> {
        let plan = options.sessions_plan();
        // One session needs no sharing; more share the weights rather than each holding its own.
        let shared = if plan.len() > 1 {
            Some(Sharing {
                initializers: SharedInitializers::read(model)?,
                prepacked: PrepackedWeights::new(),
            })
        } else {
            None
        };
        let sessions = plan
            .iter()
            .map(|&(_, threads)| new_session(model, threads, shared.as_ref()))
            .collect::<ort::Result<Vec<_>>>()?;
        let (inputs, outputs) = (&sessions[0].inputs, &sessions[0].outputs);
        let batching = Batching::of(inputs, outputs);
        let input_names = inputs.iter().map(|input| input.name.clone()).collect();
        let output_names = outputs.iter().map(|output| output.name.clone()).collect();

        let has_latency = plan.iter().any(|&(role, _)| role == Role::Latency);
        let queue = Arc::new(JobQueue::new(batching, has_latency, metrics));
        for (index, (session, (role, _))) in sessions.into_iter().zip(plan).enumerate() {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("onnx-session-{index}"))
                .spawn(move || work(session, role, &queue))
                .context("cannot start an inference thread")?;
        }
        Ok(Self {
            queue,
            input_names,
            output_names,
        })
    }

    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Runs the model. Blocks the calling thread until a session has finished the job.
    pub fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let outputs = self.queue.submit(inputs)?;
        wait_off_executor(|| outputs.recv()).map_err(|_| {
            BackendError::BackendAccess(format_err!("the inference workers have stopped"))
        })?
    }
}

impl Drop for OnnxModel {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// The sessions, as the `ready` log line shows them: `1×2` (one session of two threads), or
/// `1×2 + 2×1` (a latency session of two threads and two one-thread throughput sessions).
impl std::fmt::Display for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plan = self.sessions_plan();
        let throughput = plan.iter().filter(|(role, _)| *role == Role::Throughput);
        let (count, threads) = (
            throughput.clone().count(),
            throughput.map(|&(_, t)| t).max(),
        );
        if let Some(&(Role::Latency, latency_threads)) = plan.first() {
            write!(f, "1×{latency_threads} + ")?;
        }
        write!(f, "{count}×{}", threads.unwrap_or(1))
    }
}

impl SessionOptions {
    /// Each session's role and intra-op threads.
    fn sessions_plan(&self) -> Vec<(Role, usize)> {
        let (sessions, threads) = (self.sessions.max(1), self.intra_threads.max(1));
        if sessions > 1 && threads > 1 {
            std::iter::once((Role::Latency, threads))
                .chain(std::iter::repeat_n((Role::Throughput, 1), sessions))
                .collect()
        } else {
            vec![(Role::Throughput, threads); sessions]
        }
    }
}

/// Whether a session's intra-op threads spin between a run's parallel steps instead of sleeping (ONNX
/// Runtime's default): waking a sleeping thread for each of the model's steps adds about a millisecond to
/// every run on a 2-core machine. Spinning threads that outnumber the cores, though, take the cores from the
/// threads that have work, and runs get several times slower. A graph's latency session never runs beside
/// its throughput sessions, so only its own threads count.
fn spin(threads: usize) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    threads <= cores
}

/// ONNX Runtime's `session.dynamic_block_base`: a run's parallel loops hand out shrinking blocks, so the thread
/// that finishes first takes more of the work instead of waiting for one slowed by what ran on its core before
/// (a request's own threads, on two cores). Outputs stay bit-identical (docs/design-notes.md, "Dynamic block
/// sizes").
const DYNAMIC_BLOCK_BASE: &str = "8";

/// What the sessions of one graph share.
pub(super) struct Sharing {
    initializers: SharedInitializers,
    prepacked: PrepackedWeights,
}

pub(super) fn new_session(
    model: &[u8],
    threads: usize,
    shared: Option<&Sharing>,
) -> ort::Result<Session> {
    let mut builder = Session::builder()?;
    if let Some(shared) = shared {
        builder = builder.with_prepacked_weights(&shared.prepacked)?;
        for (name, value) in &shared.initializers.0 {
            builder = builder.with_initializer(name, value.clone())?;
        }
    }
    builder
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(threads)?
        .with_intra_op_spinning(spin(threads))?
        .with_config_entry("session.dynamic_block_base", DYNAMIC_BLOCK_BASE)?
        .commit_from_memory(model)
}

/// Blocks on `wait`. wasi-nn's host functions are synchronous, so `compute` runs on whichever tokio worker
/// polls the request; `block_in_place` first hands that worker's other tasks to another thread, so the
/// executor keeps serving requests (and their key-value I/O) while this one waits for inference.
fn wait_off_executor<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// A worker: runs tasks off the shared queue until the model is dropped.
fn work(mut session: Session, role: Role, queue: &JobQueue) {
    let mut finished = false;
    while let Some(task) = queue.next_task(role, finished) {
        finished = true;
        match task {
            Task::Whole(job) => {
                let result = run_guarded(&mut session, &job.inputs, queue.metrics());
                job.finish(result);
            }
            Task::Rows(rows) => run_rows(&mut session, &rows, queue.metrics()),
        }
    }
}

/// Runs rows of one or more jobs as one batch. If the run fails, each job's rows are retried on their own, so
/// that only the job whose inputs made it fail gets the error.
pub(super) fn run_rows(session: &mut Session, rows: &[JobRow], metrics: &NnMetrics) {
    let Some(first) = rows.first().map(|row| row.job.clone()) else {
        return;
    };
    let sources: Vec<_> = rows.iter().map(JobRow::source).collect();
    match run_guarded(session, &batch::join(&sources), metrics) {
        Ok(outputs) => {
            for (from, row) in rows.iter().enumerate() {
                row.job.complete_row(&outputs, from, row.row, row.len);
            }
        }
        Err(error) if rows.iter().all(|row| Arc::ptr_eq(&row.job, &first)) => first.fail(error),
        Err(_) => {
            let (theirs, others): (Vec<_>, Vec<_>) = rows
                .iter()
                .cloned()
                .partition(|row| Arc::ptr_eq(&row.job, &first));
            run_rows(session, &theirs, metrics);
            run_rows(session, &others, metrics);
        }
    }
}

/// [`run`], with a panic inside ONNX Runtime's bindings failing the job, not the worker.
fn run_guarded(
    session: &mut Session,
    inputs: &[NamedTensor],
    metrics: &NnMetrics,
) -> Result<Vec<NamedTensor>, BackendError> {
    catch_unwind(AssertUnwindSafe(|| run(session, inputs, metrics))).unwrap_or_else(|panic| {
        Err(BackendError::BackendAccess(format_err!(
            "inference panicked: {}",
            panic_message(panic.as_ref())
        )))
    })
}

/// Runs `inputs` on `session`: converts the inputs, runs, and converts every output back.
pub(super) fn run(
    session: &mut Session,
    inputs: &[NamedTensor],
    metrics: &NnMetrics,
) -> Result<Vec<NamedTensor>, BackendError> {
    let values = inputs
        .iter()
        .map(|input| Ok((input.name.as_str(), to_value(&input.tensor)?)))
        .collect::<Result<Vec<_>, BackendError>>()?;
    let started = Instant::now();
    let outputs = session.run(values).map_err(ort_error)?;
    metrics.inference(&run_record(inputs, started.elapsed()));
    outputs
        .iter()
        .map(|(name, value)| {
            Ok(NamedTensor {
                name: name.to_string(),
                tensor: to_tensor(&value)?,
            })
        })
        .collect()
}

/// A run as the metrics count it: its rows and positions by its first input's `[rows, seq]` shape, and its
/// real tokens by the attention mask (none without one).
fn run_record(inputs: &[NamedTensor], duration: Duration) -> RunRecord {
    let shape = inputs
        .first()
        .map_or(&[][..], |input| input.tensor.dimensions.as_slice());
    let rows = shape.first().map_or(1, |&rows| rows as usize);
    let positions = shape.iter().take(2).map(|&d| u64::from(d)).product();
    let tokens = inputs
        .iter()
        .find(|input| input.name == ATTENTION_MASK && input.tensor.ty == TensorType::I64)
        .map_or(0, |mask| {
            bytemuck::pod_collect_to_vec::<u8, i64>(&mask.tensor.data)
                .into_iter()
                .map(|value| value.max(0) as u64)
                .sum()
        });
    RunRecord {
        rows,
        tokens,
        positions,
        duration,
    }
}

fn ort_error(error: ort::Error) -> BackendError {
    BackendError::BackendAccess(format_err!("{error}"))
}

/// Tensor element types that cross the wasi:nn boundary as (little-endian, see [`super`]) bytes.
trait Element: PrimitiveTensorElementType + bytemuck::Pod + std::fmt::Debug {}

impl<T: PrimitiveTensorElementType + bytemuck::Pod + std::fmt::Debug> Element for T {}

/// A wasi-nn tensor as an ONNX Runtime value.
fn to_value(tensor: &Tensor) -> Result<DynValue, BackendError> {
    match tensor.ty {
        TensorType::Fp32 => typed_value::<f32>(tensor),
        TensorType::Fp64 => typed_value::<f64>(tensor),
        TensorType::U8 => typed_value::<u8>(tensor),
        TensorType::I32 => typed_value::<i32>(tensor),
        TensorType::I64 => typed_value::<i64>(tensor),
        TensorType::Fp16 | TensorType::Bf16 => Err(BackendError::UnsupportedTensorType(format!(
            "{:?}",
            tensor.ty
        ))),
    }
}

fn typed_value<T: Element>(tensor: &Tensor) -> Result<DynValue, BackendError> {
    let elements = tensor
        .dimensions
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d as usize));
    let size = size_of::<T>();
    if elements.and_then(|n| n.checked_mul(size)) != Some(tensor.data.len()) {
        return Err(BackendError::BackendAccess(format_err!(
            "tensor of {:?} with dimensions {:?} needs {} bytes of data, got {}",
            tensor.ty,
            tensor.dimensions,
            elements.map_or("too many".to_string(), |n| (n * size).to_string()),
            tensor.data.len()
        )));
    }
    let values: Vec<T> = bytemuck::pod_collect_to_vec(&tensor.data);
    let shape: Vec<i64> = tensor.dimensions.iter().map(|&d| i64::from(d)).collect();
    Ok(ort::value::Tensor::from_array((shape, values))
        .map_err(ort_error)?
        .into_dyn())
}

/// An ONNX Runtime output as a wasi-nn tensor.
fn to_tensor(value: &DynValue) -> Result<Tensor, BackendError> {
    let unsupported = || BackendError::UnsupportedTensorType(format!("{:?}", value.dtype()));
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(unsupported());
    };
    match ty {
        TensorElementType::Float32 => typed_tensor::<f32>(value, TensorType::Fp32),
        TensorElementType::Float64 => typed_tensor::<f64>(value, TensorType::Fp64),
        TensorElementType::Uint8 => typed_tensor::<u8>(value, TensorType::U8),
        TensorElementType::Int32 => typed_tensor::<i32>(value, TensorType::I32),
        TensorElementType::Int64 => typed_tensor::<i64>(value, TensorType::I64),
        _ => Err(unsupported()),
    }
}

fn typed_tensor<T: Element>(value: &DynValue, ty: TensorType) -> Result<Tensor, BackendError> {
    let (shape, data) = value.try_extract_tensor::<T>().map_err(ort_error)?;
    let dimensions = shape
        .iter()
        .map(|&d| {
            u32::try_from(d).map_err(|_| {
                BackendError::BackendAccess(format_err!("output dimension {d} out of range"))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Tensor::new(
        dimensions,
        ty,
        bytemuck::cast_slice(data).to_vec(),
    ))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The ONNX Runtime library `make models` installs (or `ORT_DYLIB_PATH`), loaded once per test process.
    pub fn runtime() {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            let library = std::env::var_os("ORT_DYLIB_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../.cache/onnxruntime/libonnxruntime.so")
                });
            init_runtime(&library)
                .expect("ONNX Runtime is needed by these tests: run `make models`");
        });
    }

    /// Protobuf wire encoding, just enough to write a tiny ONNX model.
    mod proto {
        pub fn varint(mut value: u64, out: &mut Vec<u8>) {
            while value >= 0x80 {
                out.push((value as u8) | 0x80);
                value >>= 7;
            }
            out.push(value as u8);
        }
        pub fn int(field: u32, value: u64) -> Vec<u8> {
            let mut out = Vec::new();
            varint(u64::from(field) << 3, &mut out);
            varint(value, &mut out);
            out
        }
        pub fn bytes(field: u32, value: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            varint((u64::from(field) << 3) | 2, &mut out);
            varint(value.len() as u64, &mut out);
            out.extend_from_slice(value);
            out
        }
        pub fn message(parts: &[Vec<u8>]) -> Vec<u8> {
            parts.concat()
        }
    }

    /// ONNX element type codes.
    const FLOAT: u64 = 1;
    const INT64: u64 = 7;

    /// A rank-2 tensor value-info with symbolic dimensions.
    fn value_info(name: &str, elem_type: u64) -> Vec<u8> {
        use proto::*;
        let dim = |param: &str| bytes(1, &bytes(2, param.as_bytes()));
        let shape = message(&[dim("batch"), dim("seq")]);
        let tensor_type = message(&[int(1, elem_type), bytes(2, &shape)]);
        message(&[bytes(1, name.as_bytes()), bytes(2, &bytes(1, &tensor_type))])
    }

    /// A model with int64 input `ids` and two outputs: `as_float` (Cast to f32) and `same` (Identity, int64).
    pub fn cast_model() -> Vec<u8> {
        use proto::*;
        let cast = message(&[
            bytes(1, b"ids"),
            bytes(2, b"as_float"),
            bytes(4, b"Cast"),
            // attribute `to` = FLOAT, of attribute type INT (2)
            bytes(5, &message(&[bytes(1, b"to"), int(3, FLOAT), int(20, 2)])),
        ]);
        let identity = message(&[bytes(1, b"ids"), bytes(2, b"same"), bytes(4, b"Identity")]);
        let graph = message(&[
            bytes(1, &cast),
            bytes(1, &identity),
            bytes(2, b"cast"),
            bytes(11, &value_info("ids", INT64)),
            bytes(12, &value_info("as_float", FLOAT)),
            bytes(12, &value_info("same", INT64)),
        ]);
        let opset = message(&[bytes(1, b""), int(2, 13)]);
        message(&[int(1, 8), bytes(7, &graph), bytes(8, &opset)])
    }

    pub fn i64_tensor(dimensions: Vec<u32>, values: &[i64]) -> Tensor {
        Tensor::new(
            dimensions,
            TensorType::I64,
            bytemuck::cast_slice(values).to_vec(),
        )
    }

    fn options() -> SessionOptions {
        SessionOptions {
            intra_threads: 1,
            sessions: 2,
        }
    }

    pub fn output<'a>(outputs: &'a [NamedTensor], name: &str) -> &'a Tensor {
        &outputs
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| {
                let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                panic!("no output `{name}` among {names:?}")
            })
            .tensor
    }

    #[test]
    fn more_sessions_than_one_with_threads_add_one_thread_sessions_to_a_latency_session() {
        let plan = |intra_threads, sessions| SessionOptions {
            intra_threads,
            sessions,
        };
        assert_eq!(plan(2, 1).sessions_plan(), [(Role::Throughput, 2)]);
        assert_eq!(
            plan(2, 2).sessions_plan(),
            [
                (Role::Latency, 2),
                (Role::Throughput, 1),
                (Role::Throughput, 1)
            ]
        );
        assert_eq!(plan(1, 3).sessions_plan(), [(Role::Throughput, 1); 3]);
        assert_eq!(plan(2, 1).to_string(), "1×2");
        assert_eq!(plan(2, 2).to_string(), "1×2 + 2×1");
        assert_eq!(plan(1, 3).to_string(), "3×1");
    }

    #[test]
    fn int64_inputs_round_trip_and_convert() {
        runtime();
        let model = OnnxModel::load(&cast_model(), &options(), NnMetrics::default()).unwrap();
        assert_eq!(model.input_names(), ["ids"]);
        assert_eq!(model.output_names(), ["as_float", "same"]);

        let ids = [101, -2, 1 << 40, 102, 0, 7];
        let outputs = model
            .infer(vec![NamedTensor {
                name: "ids".into(),
                tensor: i64_tensor(vec![2, 3], &ids),
            }])
            .unwrap();

        let same = output(&outputs, "same");
        assert_eq!(same, &i64_tensor(vec![2, 3], &ids));

        let as_float = output(&outputs, "as_float");
        assert_eq!(as_float.ty, TensorType::Fp32);
        assert_eq!(as_float.dimensions, [2, 3]);
        let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&as_float.data);
        assert_eq!(floats, ids.map(|v| v as f32));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        runtime();
        let model = OnnxModel::load(&cast_model(), &options(), NnMetrics::default()).unwrap();
        let run = |name: &str, tensor: Tensor| {
            model.infer(vec![NamedTensor {
                name: name.into(),
                tensor,
            }])
        };

        // Data that does not fill the dimensions.
        let short = Tensor::new(vec![2, 3], TensorType::I64, vec![0; 8]);
        assert!(matches!(
            run("ids", short),
            Err(BackendError::BackendAccess(_))
        ));
        // A type the model does not take, an unknown input and an unsupported element type.
        assert!(run("ids", Tensor::new(vec![1, 1], TensorType::Fp32, vec![0; 4])).is_err());
        assert!(run("nope", i64_tensor(vec![1, 1], &[1])).is_err());
        let half = Tensor::new(vec![1, 1], TensorType::Fp16, vec![0; 2]);
        assert!(matches!(
            run("ids", half),
            Err(BackendError::UnsupportedTensorType(_))
        ));
        // The workers survive all of that.
        assert!(run("ids", i64_tensor(vec![1, 1], &[5])).is_ok());
    }

    #[test]
    fn runs_concurrently_from_many_threads() {
        runtime();
        let model =
            Arc::new(OnnxModel::load(&cast_model(), &options(), NnMetrics::default()).unwrap());
        let threads: Vec<_> = (0..8i64)
            .map(|n| {
                let model = model.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let ids = [n, n + 1];
                        let outputs = model
                            .infer(vec![NamedTensor {
                                name: "ids".into(),
                                tensor: i64_tensor(vec![1, 2], &ids),
                            }])
                            .unwrap();
                        assert_eq!(output(&outputs, "same"), &i64_tensor(vec![1, 2], &ids));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }

    #[test]
    fn a_missing_library_is_named() {
        let error = init_runtime(Path::new("/nonexistent/libonnxruntime.so"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/nonexistent/libonnxruntime.so not found"),
            "{error}"
        );
        assert!(error.contains("make models"), "{error}");
    }
}
