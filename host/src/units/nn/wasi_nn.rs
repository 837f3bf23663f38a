//! The wasi:nn glue: wasmtime-wasi-nn supplies the WIT side (resources, errors, `load-by-name`); this plugs
//! ONNX Runtime models into its backend traits. Graphs named in the manifest are loaded once at start-up and
//! shared by every request; each request gets a cheap [`WasiNnCtx`] pointing at them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id,
    NamedTensor,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, WasiNnCtx};
use wasmtime_wasi_nn::{Backend, ExecutionContext, Graph, GraphRegistry, Registry, Tensor};

use super::metrics::NnMetrics;
use super::onnx::{self, SessionOptions};

/// The app's wasi:nn state: the preloaded graphs (none by default).
#[derive(Clone, Default)]
pub struct Nn {
    graphs: Graphs,
}

impl Nn {
    /// Loads every graph (name → ONNX file), each run as `options(name)` says, each graph on a thread of its
    /// own: building a graph's sessions is mostly single-threaded work (docs/design-notes.md). ONNX Runtime
    /// must have been initialised with
    /// [`onnx::init_runtime`] if there are any. Their queues and runs count in `metrics`.
    pub fn load(
        graphs: &BTreeMap<String, PathBuf>,
        options: impl Fn(&str) -> SessionOptions,
        metrics: &NnMetrics,
    ) -> Result<Self> {
        let graphs = std::thread::scope(|scope| {
            let loading: Vec<_> = graphs
                .iter()
                .map(|(name, path)| {
                    let options = options(name);
                    let thread = scope.spawn(move || {
                        let started = Instant::now();
                        let graph = load_file(path, &options, metrics.clone())?;
                        metrics.model_load(name, started.elapsed());
                        Ok(graph)
                    });
                    (name, thread)
                })
                .collect();
            loading
                .into_iter()
                .map(|(name, thread)| {
                    // A panic goes on up, as it would have without the thread.
                    let loaded: Result<Graph> = thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    let graph = loaded.with_context(|| format!("graph `{name}`"))?;
                    Ok((name.clone(), graph))
                })
                .collect::<Result<HashMap<_, _>>>()
        })?;
        Ok(Self {
            graphs: Graphs(graphs),
        })
    }

    /// The preloaded graph `name`: fermyon:spin/llm runs its embedding models on these, sharing their sessions.
    pub fn graph(&self, name: &str) -> Option<Graph> {
        self.graphs.0.get(name).cloned()
    }

    /// A fresh context for one request.
    pub fn ctx(&self) -> WasiNnCtx {
        WasiNnCtx::new(
            [Backend::from(OnnxBackend)],
            Registry::from(self.graphs.clone()),
        )
    }
}

/// Checks that every model file exists, so a missing one is reported before anything slow starts.
pub fn check_model_files(graphs: &BTreeMap<String, PathBuf>) -> Result<()> {
    for path in graphs.values() {
        if !path.is_file() {
            bail!(
                "model file {} not found (run `make models`)",
                path.display()
            );
        }
    }
    Ok(())
}

/// Graphs by name, for `load-by-name`.
#[derive(Clone, Default)]
struct Graphs(HashMap<String, Graph>);

impl GraphRegistry for Graphs {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.0.get_mut(name)
    }
}

/// Loads an ONNX model file as a graph.
fn load_file(path: &Path, options: &SessionOptions, metrics: NnMetrics) -> Result<Graph> {
    let model = std::fs::read(path)
        .with_context(|| format!("cannot read model file {}", path.display()))?;
    let model = onnx::OnnxModel::load(&model, options, metrics)
        .with_context(|| format!("cannot load model file {}", path.display()))?;
    Ok(OnnxGraph(Arc::new(model)).into())
}

/// The ONNX encoding as the guest sees it. Only graphs named in the manifest may run (`load-by-name`):
/// `load` would build an ONNX Runtime session, with its threads, from any bytes a request sends, so it is
/// refused with an error that says what to do instead.
struct OnnxBackend;

impl BackendInner for OnnxBackend {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Onnx
    }

    fn load(&mut self, _: &[&[u8]], _: ExecutionTarget) -> Result<Graph, BackendError> {
        Err(BackendError::BackendAccess(format_err!(
            "loading models from bytes is not allowed: use load-by-name with a graph configured in the manifest"
        )))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

/// A loaded model; execution contexts share it.
struct OnnxGraph(Arc<onnx::OnnxModel>);

impl From<OnnxGraph> for Graph {
    fn from(graph: OnnxGraph) -> Self {
        Graph::from(Box::new(graph) as Box<dyn BackendGraph>)
    }
}

impl BackendGraph for OnnxGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context = OnnxExecutionContext {
            model: self.0.clone(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        Ok(ExecutionContext::from(
            Box::new(context) as Box<dyn BackendExecutionContext>
        ))
    }
}

/// One guest execution context. The WIT interface passes inputs to `compute` and gets outputs back; the
/// older WITX interface sets inputs and reads outputs one at a time, kept here between calls.
struct OnnxExecutionContext {
    model: Arc<onnx::OnnxModel>,
    inputs: Vec<NamedTensor>,
    outputs: Vec<NamedTensor>,
}

impl OnnxExecutionContext {
    /// The tensor name `id` refers to, looking indices up in `names`.
    fn name(id: Id, names: &[String]) -> Result<String, BackendError> {
        match id {
            Id::Name(name) => Ok(name),
            Id::Index(index) => names.get(index as usize).cloned().ok_or_else(|| {
                BackendError::BackendAccess(format_err!("no tensor at index {index}"))
            }),
        }
    }
}

impl BackendExecutionContext for OnnxExecutionContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = Self::name(id, self.model.input_names())?;
        self.inputs.retain(|input| input.name != name);
        self.inputs.push(NamedTensor {
            name,
            tensor: tensor.clone(),
        });
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let name = Self::name(id, self.model.output_names())?;
        self.outputs
            .iter()
            .find(|output| output.name == name)
            .map(|output| output.tensor.clone())
            .ok_or_else(|| BackendError::BackendAccess(format_err!("no output named {name}")))
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        match inputs {
            Some(inputs) => self.model.infer(inputs).map(Some),
            None => {
                self.outputs = self.model.infer(std::mem::take(&mut self.inputs))?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx::tests::{cast_model, i64_tensor, runtime};

    fn graph() -> Graph {
        runtime();
        let model = onnx::OnnxModel::load(
            &cast_model(),
            &SessionOptions::default(),
            NnMetrics::default(),
        )
        .unwrap();
        OnnxGraph(Arc::new(model)).into()
    }

    #[test]
    fn wit_compute_takes_and_returns_named_tensors() {
        let mut context = graph().init_execution_context().unwrap();
        let inputs = vec![NamedTensor {
            name: "ids".into(),
            tensor: i64_tensor(vec![1, 2], &[3, 4]),
        }];
        let outputs = context.compute_with_io(inputs).unwrap();
        let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["as_float", "same"]);
        assert_eq!(outputs[1].tensor, i64_tensor(vec![1, 2], &[3, 4]));
    }

    #[test]
    fn witx_style_inputs_and_outputs_by_index_or_name() {
        let mut context = graph().init_execution_context().unwrap();
        context
            .set_input(Id::Index(0), &i64_tensor(vec![1, 1], &[1]))
            .unwrap();
        // Setting the same input again replaces it.
        context
            .set_input(Id::Name("ids".into()), &i64_tensor(vec![1, 1], &[9]))
            .unwrap();
        context.compute().unwrap();
        assert_eq!(
            context.get_output(Id::Index(1)).unwrap(),
            i64_tensor(vec![1, 1], &[9])
        );
        assert_eq!(
            context.get_output(Id::Name("same".into())).unwrap(),
            i64_tensor(vec![1, 1], &[9])
        );
        assert!(context.get_output(Id::Index(7)).is_err());
        assert!(context
            .set_input(Id::Index(3), &i64_tensor(vec![1, 1], &[1]))
            .is_err());
    }

    #[test]
    fn guests_cannot_load_models_from_bytes() {
        let model = cast_model();
        let Err(error) = OnnxBackend.load(&[&model], ExecutionTarget::Cpu) else {
            panic!("a guest-supplied model was loaded");
        };
        assert!(
            format!("{:#}", anyhow::Error::from(error)).contains("load-by-name"),
            "the error says what to use instead"
        );
    }

    #[test]
    fn preloads_by_name_and_names_missing_files() {
        runtime();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cast.onnx");
        std::fs::write(&path, cast_model()).unwrap();
        let graphs = BTreeMap::from([("cast".to_string(), path)]);
        check_model_files(&graphs).unwrap();
        let nn = Nn::load(
            &graphs,
            |_| SessionOptions::default(),
            &NnMetrics::default(),
        )
        .unwrap();
        assert!(nn.graphs.get("cast").is_some());
        assert!(nn.graphs.get("other").is_none());

        let missing = BTreeMap::from([("x".to_string(), dir.path().join("nope.onnx"))]);
        let error = check_model_files(&missing).unwrap_err().to_string();
        assert!(
            error.contains("nope.onnx not found (run `make models`)"),
            "{error}"
        );
    }
}
