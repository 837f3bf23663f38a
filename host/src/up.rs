//! `sbert-host up`: check everything, load everything, then listen, like `spin up`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::app::manifest::{App, HostTool};
use crate::app::runtime_config::RuntimeConfig;
use crate::engine;
use crate::http::{
    self, Admission, AdmissionLimits, AnswerStyle, HttpCache, RequestLimits, Router,
    ServedComponent,
};
use crate::key_value::{self, ComponentStores};
use crate::llm::{CheckedModels, Llm};
use crate::memory;
use crate::metrics;
use crate::nn::{self, Nn, SessionOptions};
use crate::outbound_http::{AllowedHosts, OutboundClient, OutboundHttp, Timeouts};
use crate::state::{self, ComponentServices, RequestState};
use crate::variables::{self, ComponentVariables};

/// Serve a Spin application's HTTP components, like `spin up`.
///
/// Everything is checked and loaded before the listener opens: the manifest, the runtime config,
/// variables, component files, models and ONNX Runtime. Any problem stops start-up with one error line.
#[derive(Debug, clap::Args)]
pub struct UpCommand {
    /// The application: a spin.toml file, or a directory containing one.
    #[arg(
        short = 'f',
        long = "from",
        value_name = "MANIFEST",
        default_value = "spin.toml"
    )]
    from: PathBuf,

    /// The address to listen on.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// Also serve Prometheus metrics at `GET /metrics` on this address (a listener of its own; off by default).
    #[arg(long, value_name = "ADDRESS")]
    metrics_listen: Option<SocketAddr>,

    /// Spin runtime configuration file (key-value stores). Without one, the `default` store is the SQLite
    /// file .spin/sqlite_key_value.db beside the manifest.
    #[arg(long, value_name = "FILE")]
    runtime_config_file: Option<PathBuf>,

    /// Set an application variable; repeatable. Overrides SPIN_VARIABLE_<NAME> and the manifest default.
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = variables::parse_override)]
    variables: Vec<(String, String)>,

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
    /// descheduled helper thread (int8 at 10 connections on 2 cores: 1.2-2x the requests/s of one session).
    #[arg(long, value_name = "N")]
    nn_sessions: Option<NonZeroUsize>,

    /// Seconds a request's component instance may run (including streaming its response body) before it is
    /// stopped; a request stopped before its response started gets a 503.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_timeout)]
    request_timeout: Duration,

    /// MiB of linear memory a request's component instance may use; growing past it fails.
    #[arg(long, value_name = "MIB", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..=4096))]
    request_memory: u32,

    /// Requests that may run at once; past it a request is refused at once with 429 and `Retry-After: 1`,
    /// before any instance is created. It also sizes the instance pool, which can then never run out.
    #[arg(long, value_name = "N", default_value = "64", value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_concurrent_requests: u32,

    /// Tokens that may wait for inference (in the wasi:nn queues); while more wait, new requests are refused
    /// with 429 and `Retry-After: 1`. The default is about two seconds of work for a MiniLM-sized model on 2
    /// cores: a realistic mix at 40 connections is never refused, and a flood of batches waits a few seconds.
    // Why 16384, measured on 2 cores (AVX-512, quiet, 2026-11-30, sampling the nn_queued_tokens metric): the soak's
    // mix (soak/mix.py) at 40 connections queued at most 7,418 tokens in 90 s (sampled every 0.2 s; p99 6,902), and at
    // the old default of 8192 the 10-minute soak had 0.5% refusals. 100 connections of 32-input batches whose
    // clients honour Retry-After: admitted p99 2.6 s at 8192, 4.4 s at 16384, 5.9 s at 32768, the same 15
    // batches/s at each. 16384 is twice the mix's peak at the price of ~2 s more waiting in a batch flood.
    #[arg(long, value_name = "TOKENS", default_value = "16384", value_parser = clap::value_parser!(u64).range(1..))]
    max_queued_tokens: u64,

    /// MiB of answers the shared HTTP cache may hold; 0 turns it off. It keeps the answers to plain GETs that
    /// their component marks reusable by shared caches (`Cache-Control: s-maxage` or `public`, with `Vary`
    /// naming the request headers they depend on), for as long as they say, and answers the same requests
    /// from memory, without an instance, as a CDN in front of the service would.
    // Why 64: the original load test's 5,540 questions answered once each (~5 KB of JSON apiece) take ~30 MiB.
    #[arg(long, value_name = "MIB", default_value = "64", value_parser = clap::value_parser!(u32).range(0..=65536))]
    http_cache_mib: u32,

    /// Seconds admitted requests get to finish after SIGTERM or SIGINT; new requests are refused meanwhile.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout)]
    shutdown_grace: Duration,
}

/// A component that has passed every start-up check, with its files located.
struct CheckedComponent {
    id: String,
    source: PathBuf,
    variables: ComponentVariables,
    stores: Vec<String>,
    graphs: BTreeMap<String, PathBuf>,
    tool: HostTool,
    /// The component's `ai_models` allow-list, and the llm models the host serves it.
    ai_models: Vec<String>,
    llm_models: CheckedModels,
    /// Where its outbound HTTP requests may go.
    allowed_hosts: AllowedHosts,
}

impl UpCommand {
    pub fn run(self) -> Result<()> {
        let started = Instant::now();
        let app = App::load(&self.from)?;
        let runtime_config = RuntimeConfig::load(self.runtime_config_file.as_deref(), &app.dir)?;
        let components = self.check(&app, &runtime_config)?;
        if components
            .iter()
            .any(|component| !component.graphs.is_empty())
        {
            let Some(library) = &self.onnxruntime else {
                bail!("the manifest declares wasi:nn graphs, but no ONNX Runtime library is set (set ORT_DYLIB_PATH or pass --onnxruntime; `make models` downloads it)");
            };
            nn::init_runtime(library)?;
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let result = runtime.block_on(self.serve(&app, &runtime_config, components, started));
        // Inference and SQLite work still queued on the blocking pool is abandoned, not awaited.
        runtime.shutdown_background();
        result
    }

    /// Validates what can be validated without loading anything heavy.
    fn check(&self, app: &App, runtime_config: &RuntimeConfig) -> Result<Vec<CheckedComponent>> {
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            bail!(
                "--metrics-listen {} is also the application's --listen address; pick another port",
                self.listen
            );
        }
        let mut variables = variables::resolve(&app.manifest, &self.variables, |name| {
            std::env::var(name).ok()
        })?;
        let app_variables = variables::application(&app.manifest, &self.variables, |name| {
            std::env::var(name).ok()
        })?;
        let served: BTreeSet<&str> = app
            .manifest
            .trigger
            .http
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let mut checked = Vec::new();
        for id in served {
            let component = &app.manifest.component[id];
            let source = app.resolve(&component.source);
            if !source.is_file() {
                let fix = component
                    .build
                    .as_ref()
                    .map_or("build it first".to_string(), |b| {
                        format!("run `{}`", b.command)
                    });
                bail!(
                    "component `{id}` source {} not found ({fix})",
                    source.display()
                );
            }
            for label in &component.key_value_stores {
                if !runtime_config.key_value_store.contains_key(label) {
                    bail!(
                        "component `{id}` uses key-value store `{label}`, which the runtime config does not define (add [key_value_store.{label}] to {})",
                        self.runtime_config_file.as_deref().unwrap_or(Path::new("a --runtime-config-file")).display()
                    );
                }
            }
            let tool = component.host_tool()?;
            let graphs: BTreeMap<String, PathBuf> = tool
                .graphs
                .iter()
                .map(|(name, path)| (name.clone(), app.resolve(path)))
                .collect();
            nn::check_model_files(&graphs)?;
            if let Some(name) = tool
                .nn_sessions
                .keys()
                .find(|name| !graphs.contains_key(*name))
            {
                bail!("component `{id}`: `nn_sessions` names graph `{name}`, which is not in its `graphs`");
            }
            let llm_models =
                CheckedModels::check(tool.llm_models.clone(), &graphs, |path| app.resolve(path))
                    .with_context(|| format!("component `{id}`"))?;
            let allowed_hosts =
                AllowedHosts::parse(&component.allowed_outbound_hosts, &app_variables)
                    .with_context(|| format!("component `{id}`"))?;
            checked.push(CheckedComponent {
                id: id.to_string(),
                source,
                variables: variables.remove(id).unwrap_or_default(),
                stores: component.key_value_stores.clone(),
                graphs,
                tool,
                ai_models: component.ai_models.clone(),
                llm_models,
                allowed_hosts,
            });
        }
        Ok(checked)
    }

    async fn serve(
        &self,
        app: &App,
        runtime_config: &RuntimeConfig,
        components: Vec<CheckedComponent>,
        started: Instant,
    ) -> Result<()> {
        let intra_threads = self
            .nn_threads
            .map_or_else(default_threads, NonZeroUsize::get);
        // One more instance than requests may run: the start-up check's.
        let engine = engine::new(self.max_concurrent_requests + 1)?;
        http::start_epoch_ticker(&engine)?;
        let mut linker = Linker::new(&engine);
        state::add_to_linker(&mut linker)?;

        // Stores are shared between components that name the same label.
        let mut stores = HashMap::new();
        for label in components.iter().flat_map(|c| &c.stores) {
            if !stores.contains_key(label) {
                let store = key_value::open(label, &runtime_config.key_value_store[label])
                    .with_context(|| format!("key-value store `{label}`"))?;
                stores.insert(label.clone(), store);
            }
        }

        // One connection pool for every component's outbound HTTP requests.
        let outbound_client = OutboundClient::new(Timeouts::default())?;
        let mut served = HashMap::new();
        let mut startup_checks = Vec::new();
        // Each graph's sessions, for the `ready` line: `name: 1×2 + 2×1` (see SessionOptions' Display).
        let mut graph_sessions = Vec::new();
        for component in components {
            if let Some(path) = &component.tool.startup_check {
                startup_checks.push((component.id.clone(), path.0.clone()));
            }
            // Compiling the component and building ONNX Runtime sessions are both CPU-heavy and independent.
            let graphs = component.graphs.clone();
            let (flag, per_graph) = (self.nn_sessions, component.tool.nn_sessions.clone());
            let options = move |graph: &str| SessionOptions {
                intra_threads,
                sessions: flag
                    .or_else(|| per_graph.get(graph).copied())
                    .map_or(1, NonZeroUsize::get),
            };
            graph_sessions.extend(
                graphs
                    .keys()
                    .map(|graph| format!("{graph}: {}", options(graph))),
            );
            let nn = tokio::task::spawn_blocking(move || Nn::load(&graphs, options));
            let pre = prepare(&engine, &linker, &component.id, &component.source)?;
            let nn = nn
                .await?
                .with_context(|| format!("component `{}`", component.id))?;
            let llm = Llm::load(&component.ai_models, &component.llm_models, &nn)
                .with_context(|| format!("component `{}`", component.id))?;
            let services = ComponentServices {
                variables: component.variables,
                stores: ComponentStores::new(
                    component
                        .stores
                        .iter()
                        .map(|label| (label.clone(), stores[label].clone()))
                        .collect(),
                ),
                nn,
                llm,
                outbound_http: OutboundHttp::new(
                    &component.id,
                    component.allowed_hosts,
                    outbound_client.clone(),
                ),
            };
            let counted_header = component.tool.counted_header.as_ref();
            if let Some(counted) = counted_header {
                metrics::declare_counted_header(counted.name.as_str(), &counted.values);
            }
            served.insert(
                component.id.clone(),
                Arc::new(ServedComponent {
                    answers: AnswerStyle::of(&component.tool),
                    counted_header: counted_header.map(|counted| counted.name.clone()),
                    cache_hit_headers: component.tool.http_cache_hit_headers.0.clone(),
                    id: component.id,
                    pre,
                    services,
                }),
            );
        }
        let routes = app
            .manifest
            .trigger
            .http
            .iter()
            .map(|t| (t.route.clone(), served[&t.component].clone()))
            .collect();
        let limits = RequestLimits {
            timeout: self.request_timeout,
            memory: self.request_memory as usize * 1024 * 1024,
        };
        let admission = Admission::new(
            AdmissionLimits {
                max_concurrent_requests: self.max_concurrent_requests as usize,
                max_queued_tokens: usize::try_from(self.max_queued_tokens).unwrap_or(usize::MAX),
            },
            nn::queued_tokens,
        );
        let cache = (self.http_cache_mib > 0)
            .then(|| HttpCache::new(u64::from(self.http_cache_mib) * 1024 * 1024));
        // This runtime, the multi-thread one, runs the components; connections are served on a front thread.
        let router = Arc::new(Router::new(
            routes,
            limits,
            admission,
            cache,
            tokio::runtime::Handle::current(),
        )?);
        for (id, path) in &startup_checks {
            router
                .check(path, self.listen)
                .await
                .with_context(|| format!("component `{id}` did not pass its start-up check"))?;
        }

        let listener = TcpListener::bind(self.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (is another server running there? pass --listen)",
                self.listen
            )
        })?;
        let metrics_listener = match self.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} for metrics (pass another --metrics-listen)")
            })?),
            None => None,
        };
        let address = listener.local_addr()?;
        print_routes(address, &router, app);
        let metrics_address = match &metrics_listener {
            Some(listener) => {
                let address = listener.local_addr()?;
                println!("Serving metrics http://{address}/metrics");
                Some(address.to_string())
            }
            None => None,
        };
        memory::release_free_heap();
        tracing::info!(
            application = app.manifest.application.name,
            version = app.manifest.application.version,
            startup_ms = started.elapsed().as_millis() as u64,
            nn_threads = intra_threads,
            nn_sessions = self.nn_sessions.map(NonZeroUsize::get),
            graph_sessions = graph_sessions.join("; "),
            max_concurrent_requests = self.max_concurrent_requests,
            max_queued_tokens = self.max_queued_tokens,
            http_cache_mib = self.http_cache_mib,
            metrics = metrics_address,
            "ready"
        );
        let metrics_server =
            metrics_listener.map(|listener| tokio::spawn(metrics::serve(listener)));
        let result = http::serve(listener, router, shutdown_signal(), self.shutdown_grace).await;
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        result
    }
}

/// Compiles a component and pre-instantiates it against the linker, so each request only instantiates.
fn prepare(
    engine: &Engine,
    linker: &Linker<RequestState>,
    id: &str,
    source: &Path,
) -> Result<ProxyPre<RequestState>> {
    let component = Component::from_file(engine, source)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component `{id}`: {} is not a valid Wasm component",
                source.display()
            )
        })?;
    engine::check_fits(&component, id)?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!("component `{id}` imports something sbert-host does not provide")
        })?;
    ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!("component `{id}` does not export wasi:http/incoming-handler@0.2.x")
        })
}

/// A positive whole number of seconds.
fn parse_timeout(seconds: &str) -> Result<Duration, String> {
    match seconds.parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(format!(
            "`{seconds}` is not a positive whole number of seconds"
        )),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Prints the address and the routes like `spin up` does; test harnesses wait for these lines.
fn print_routes(address: SocketAddr, router: &Router, app: &App) {
    let base = format!("http://{address}");
    println!("Serving {base}");
    println!("Available Routes:");
    for (route, component) in router.routes() {
        let url = match route.strip_suffix("/...") {
            Some(prefix) => format!("{base}{prefix} (wildcard)"),
            None => format!("{base}{route}"),
        };
        println!("  {}: {url}", component.id);
        if let Some(description) = &app.manifest.component[&component.id].description {
            println!("    {description}");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
