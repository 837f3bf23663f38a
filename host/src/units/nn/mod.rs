//! `wasi:nn` on ONNX Runtime: the graphs a component names in its manifest section, loaded once at start-up
//! into sessions that every request shares ([`onnx`]), with the queued requests' rows batched into each run
//! ([`queue`], [`batch`]); [`wasi_nn`] is the glue to wasmtime-wasi-nn's WIT side.

mod assembly;
mod batch;
mod initializers;
mod metrics;
#[cfg(test)]
mod model_tests;
mod onnx;
mod queue;
mod wasi_nn;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use wasmtime::component::Linker;
use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};

use crate::instance::RequestState;
use crate::unit::{ComponentIndex, Configure, InstanceBuilder, Nothing, Start, Unit};

pub use metrics::QueuedTokens;
pub use onnx::{init_runtime, SessionOptions};
pub use wasi_nn::Nn;

use wasi_nn::check_model_files;

use metrics::NnMetrics;

/// `sbert-host up` flags of wasi:nn.
#[derive(Debug, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// The ONNX Runtime shared library (libonnxruntime.so) that runs wasi:nn graphs.
    #[arg(long, value_name = "PATH", env = "ORT_DYLIB_PATH")]
    onnxruntime: Option<PathBuf>,

    /// ONNX Runtime intra-op threads per session [default: the number of CPU cores].
    #[arg(long, value_name = "N")]
    nn_threads: Option<NonZeroUsize>,

    /// How many inferences of one graph may run at the same time under load, for every graph [default:
    /// each graph's `nn_sessions` in the manifest's `[component.<id>.tool.sbert-host]`, else 1]. With 1, a
    /// graph has one session with --nn-threads threads, which batches queued requests into each run. With
    /// N > 1, it also has N one-thread sessions, sharing one copy of its weights: its multi-thread session
    /// serves while what waits is one request's rows, the one-thread ones side by side while several
    /// requests' rows do. On a few cores that guests and clients also use, one-thread runs never wait for a
    /// descheduled helper thread (docs/design-notes.md, "One-thread sessions").
    #[arg(long, value_name = "N")]
    nn_sessions: Option<NonZeroUsize>,
}

/// wasi:nn's keys of `[component.<id>.tool.sbert-host]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// wasi:nn graphs loaded at start-up: the name the component passes to `load-by-name` → ONNX file,
    /// relative to the manifest's directory.
    #[serde(default)]
    graphs: BTreeMap<String, PathBuf>,
    /// How many runs of a graph may go at once under load, by graph name (`--nn-sessions`, when given,
    /// overrides this for every graph; 1 without either). More than one gives the graph one-thread sessions
    /// that take over from its latency session while requests queue, sharing one copy of its weights.
    #[serde(default)]
    nn_sessions: BTreeMap<String, NonZeroUsize>,
}

pub struct WasiNn {
    flags: Flags,
    /// Per served component: its id, for errors.
    ids: Vec<String>,
    /// Per served component: its graphs (name → file) and their sessions.
    configured: Vec<Tool>,
    /// Per served component: its loaded graphs.
    loaded: Vec<Nn>,
    metrics: NnMetrics,
}

impl WasiNn {
    /// The tokens waiting in every graph's queue (admission control bounds them).
    pub fn queued_tokens(&self) -> QueuedTokens {
        self.metrics.queued_tokens.clone()
    }

    /// The graphs a component names, by name → file (checked, not yet loaded while configuring).
    pub fn configured_graphs(&self, component: ComponentIndex) -> &BTreeMap<String, PathBuf> {
        &self.configured[component.0].graphs
    }

    /// A component's loaded graphs (once started).
    pub fn graphs(&self, component: ComponentIndex) -> &Nn {
        &self.loaded[component.0]
    }

    /// How `graph` of a component whose section is `tool` runs.
    fn session_options(&self, tool: &Tool, graph: &str) -> SessionOptions {
        SessionOptions {
            intra_threads: self.intra_threads(),
            sessions: self
                .flags
                .nn_sessions
                .or_else(|| tool.nn_sessions.get(graph).copied())
                .map_or(1, NonZeroUsize::get),
        }
    }

    fn intra_threads(&self) -> usize {
        self.flags.nn_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            NonZeroUsize::get,
        )
    }
}

impl Unit for WasiNn {
    const NAME: &'static str = "wasi:nn";
    type Flags = Flags;
    type Tool = Tool;
    type RuntimeConfig = Nothing;

    fn new(flags: Flags) -> Self {
        Self {
            flags,
            ids: Vec::new(),
            configured: Vec::new(),
            loaded: Vec::new(),
            metrics: NnMetrics::default(),
        }
    }

    fn configure(&mut self, ctx: &Configure<'_>, tools: Vec<Tool>, _: Nothing) -> Result<()> {
        for (component, mut tool) in ctx.components.iter().zip(tools) {
            for path in tool.graphs.values_mut() {
                *path = ctx.app.resolve(path);
            }
            check_model_files(&tool.graphs)?;
            if let Some(name) = tool
                .nn_sessions
                .keys()
                .find(|name| !tool.graphs.contains_key(*name))
            {
                bail!(
                    "component `{}`: `nn_sessions` names graph `{name}`, which is not in its `graphs`",
                    component.id
                );
            }
            self.ids.push(component.id.to_string());
            self.configured.push(tool);
        }
        if self.configured.iter().any(|tool| !tool.graphs.is_empty())
            && self.flags.onnxruntime.is_none()
        {
            bail!("the manifest declares wasi:nn graphs, but no ONNX Runtime library is set (set ORT_DYLIB_PATH or pass --onnxruntime; `make models` downloads it)");
        }
        Ok(())
    }

    fn start(&mut self, ctx: &mut Start<'_>) -> Result<()> {
        self.metrics.register(ctx.metrics);
        if let Some(library) = &self.flags.onnxruntime {
            if self.configured.iter().any(|tool| !tool.graphs.is_empty()) {
                init_runtime(library)?;
            }
        }
        for (id, tool) in self.ids.iter().zip(&self.configured) {
            let nn = Nn::load(
                &tool.graphs,
                |graph| self.session_options(tool, graph),
                &self.metrics,
            )
            .with_context(|| format!("component `{id}`"))?;
            self.loaded.push(nn);
        }
        Ok(())
    }

    fn report(&self) {
        // Each graph's sessions: `name: 1×2 + 2×1` (see SessionOptions' Display).
        let graph_sessions: Vec<String> = self
            .configured
            .iter()
            .flat_map(|tool| {
                tool.graphs
                    .keys()
                    .map(|graph| format!("{graph}: {}", self.session_options(tool, graph)))
            })
            .collect();
        tracing::info!(
            nn_threads = self.intra_threads(),
            nn_sessions = self.flags.nn_sessions.map(NonZeroUsize::get),
            graph_sessions = graph_sessions.join("; "),
            "wasi:nn graphs loaded"
        );
    }

    fn link(linker: &mut Linker<RequestState>) -> Result<()> {
        wasmtime_wasi_nn::wit::add_to_linker(linker, |state| {
            let (ctx, table) = state.unit_state::<WasiNnCtx>();
            WasiNnView::new(table, ctx)
        })?;
        Ok(())
    }

    fn instance(&self, component: ComponentIndex, instance: &mut InstanceBuilder) {
        instance.add(self.loaded[component.0].ctx());
    }
}
