//! `sbert-host up`: check everything, load everything, then listen, like `spin up`. What the host can do
//! comes from the units (`units/`); this file composes them and serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_aux::serde_introspection::serde_introspect;
use tokio::net::TcpListener;
use tracing_appender::non_blocking::ErrorCounter;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::app::manifest::{App, HOST_TOOL};
use crate::app::runtime_config::RuntimeConfig;
use crate::http::config::HttpTool;
use crate::http::{self, AnswerStyle, RequestLimits, Router, ServedComponent};
use crate::instance::{self, RequestState};
use crate::memory;
use crate::telemetry::MetricsRegistry;
use crate::unit::{self, AppParts, ComponentIndex, DynUnit, ServedComponentConfig};
use crate::units::UnitFlags;
use crate::wasmtime_engine;

/// Serve a Spin application's HTTP components, like `spin up`.
///
/// Everything is checked and loaded before the listener opens: the manifest, the runtime config,
/// variables, component files, models and ONNX Runtime. Any problem stops start-up with one error line.
#[derive(Debug, clap::Args)]
pub struct UpCommand {
    #[command(flatten)]
    core: CoreFlags,

    #[command(flatten)]
    units: UnitFlags,
}

/// The flags of the host itself; each unit has its own.
#[derive(Debug, clap::Args)]
struct CoreFlags {
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

    /// Spin runtime configuration file (key-value stores). Without one, the `default` store is the SQLite
    /// file .spin/sqlite_key_value.db beside the manifest.
    #[arg(long, value_name = "FILE")]
    runtime_config_file: Option<PathBuf>,

    /// Seconds a request's component instance may run (including streaming its response body) before it is
    /// stopped; a request stopped before its response started gets a 503.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_timeout)]
    request_timeout: Duration,

    /// MiB of linear memory a request's component instance may use; growing past it fails.
    #[arg(long, value_name = "MIB", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..=4096))]
    request_memory: u32,

    /// Seconds admitted requests get to finish after SIGTERM or SIGINT; new requests are refused meanwhile.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout)]
    shutdown_grace: Duration,
}

/// Instances the pool holds when no unit bounds the requests that run at once.
const UNBOUNDED_CAPACITY: u32 = 1000;

/// A served component (one a trigger routes to), with its file located.
struct ServedComponentParts {
    id: String,
    source: PathBuf,
    /// The host's own keys of its `tool.sbert-host` section.
    http: HttpTool,
    /// Its whole `tool.sbert-host` section, from which each unit takes its keys.
    tool: toml::Table,
}

impl UpCommand {
    /// `log_lines_dropped`: the log writer's count of lines stderr did not take.
    pub fn run(self, log_lines_dropped: ErrorCounter) -> Result<()> {
        let started = Instant::now();
        let Self { core, units } = self;
        let configured = configure(&core, units)?;
        check_sources(&configured)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let result = runtime.block_on(core.serve(configured, started, log_lines_dropped));
        // Inference and SQLite work still queued on the blocking pool is abandoned, not awaited.
        runtime.shutdown_background();
        result
    }
}

/// The app as every unit has checked it; nothing heavy has started.
struct Configured {
    app: App,
    components: Vec<ServedComponentParts>,
    units: Vec<Box<dyn DynUnit>>,
}

/// Reads the manifest and the runtime configuration, and has every unit check its part.
fn configure(core: &CoreFlags, units: UnitFlags) -> Result<Configured> {
    let app = App::load(&core.from)?;
    let runtime_config = RuntimeConfig::load(core.runtime_config_file.as_deref())?;
    let components = served_components(&app)?;
    let configs: Vec<ServedComponentConfig> = components
        .iter()
        .enumerate()
        .map(|(index, component)| ServedComponentConfig {
            index: ComponentIndex(index),
            id: &component.id,
            manifest: &app.manifest.component[&component.id],
            http: &component.http,
        })
        .collect();
    let tools: Vec<toml::Table> = components.iter().map(|c| c.tool.clone()).collect();
    let mut units = units.into_units();
    unit::configure(
        &mut units,
        &AppParts {
            app: &app,
            components: &configs,
            tools: &tools,
            runtime_config: &runtime_config.sections,
            runtime_config_file: runtime_config.file.as_deref(),
            listen: core.listen,
        },
        serde_introspect::<HttpTool>(),
    )?;
    drop(configs);
    Ok(Configured {
        app,
        components,
        units,
    })
}

impl CoreFlags {
    async fn serve(
        &self,
        configured: Configured,
        started: Instant,
        log_lines_dropped: ErrorCounter,
    ) -> Result<()> {
        let Configured {
            app,
            components,
            mut units,
        } = configured;
        let capacity = units
            .iter()
            .filter_map(|unit| unit.capacity())
            .min()
            .unwrap_or(UNBOUNDED_CAPACITY);
        // One more instance than requests may run: the start-up check's.
        let engine = wasmtime_engine::new(capacity + 1)?;
        http::start_epoch_ticker(&engine)?;
        let mut linker = Linker::new(&engine);
        instance::add_to_linker(&mut linker)?;
        for unit in &units {
            unit.link(&mut linker)?;
        }

        // Starting the units (loading graphs, building ONNX Runtime sessions) and compiling the components are
        // both CPU-heavy and independent.
        let metrics = MetricsRegistry::default();
        let starting = tokio::task::spawn_blocking({
            let metrics = metrics.clone();
            move || unit::start(&mut units, &metrics, &log_lines_dropped).map(|()| units)
        });
        let pres = components
            .iter()
            .map(|component| prepare(&engine, &linker, &component.id, &component.source))
            .collect::<Result<Vec<_>>>()?;
        let units: Arc<[Box<dyn DynUnit>]> = starting.await??.into();

        let mut startup_checks = Vec::new();
        let mut served = Vec::new();
        for (index, (component, pre)) in components.into_iter().zip(pres).enumerate() {
            if let Some(path) = &component.http.startup_check {
                startup_checks.push((component.id.clone(), path.0.clone()));
            }
            served.push(Arc::new(ServedComponent {
                answers: AnswerStyle::of(&component.http),
                counted_header: component.http.counted_header.map(|counted| counted.name),
                id: component.id,
                index: ComponentIndex(index),
                pre,
                units: units.clone(),
            }));
        }
        let routes = app
            .manifest
            .trigger
            .http
            .iter()
            .map(|t| {
                let component = served.iter().find(|c| c.id == t.component);
                (t.route.clone(), component.expect("checked").clone())
            })
            .collect();
        let limits = RequestLimits {
            timeout: self.request_timeout,
            memory: self.request_memory as usize * 1024 * 1024,
        };
        let layers = units.iter().filter_map(|unit| unit.layer()).collect();
        // This runtime, the multi-thread one, runs the components; connections are served on a front thread.
        let router = Arc::new(Router::new(
            routes,
            limits,
            layers,
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
        let address = listener.local_addr()?;
        print_routes(address, &router, &app);
        memory::release_free_heap();
        for unit in units.iter() {
            unit.report();
        }
        tracing::info!(
            application = app.manifest.application.name,
            version = app.manifest.application.version,
            startup_ms = started.elapsed().as_millis() as u64,
            units = units
                .iter()
                .map(|unit| unit.name())
                .collect::<Vec<_>>()
                .join(", "),
            "ready"
        );
        http::serve(listener, router, shutdown_signal(), self.shutdown_grace).await
    }
}

/// The served components, in the order they first appear among the triggers, with the host's own keys of their
/// sections parsed.
fn served_components(app: &App) -> Result<Vec<ServedComponentParts>> {
    let mut served: Vec<ServedComponentParts> = Vec::new();
    for trigger in &app.manifest.trigger.http {
        let id = trigger.component.as_str();
        if served.iter().any(|component| component.id == id) {
            continue;
        }
        let tool = app.manifest.component[id].host_tool();
        let http = unit::own_keys(&tool, serde_introspect::<HttpTool>()).with_context(|| {
            format!(
                "{}: component `{id}`: [tool.{HOST_TOOL}]",
                app.file.display()
            )
        })?;
        served.push(ServedComponentParts {
            id: id.to_string(),
            source: app.resolve(&app.manifest.component[id].source),
            http,
            tool,
        });
    }
    Ok(served)
}

/// Checks that every served component's file exists.
fn check_sources(configured: &Configured) -> Result<()> {
    for component in &configured.components {
        if !component.source.is_file() {
            let build = &configured.app.manifest.component[&component.id].build;
            let fix = build.as_ref().map_or("build it first".to_string(), |b| {
                format!("run `{}`", b.command)
            });
            bail!(
                "component `{}` source {} not found ({fix})",
                component.id,
                component.source.display()
            );
        }
    }
    Ok(())
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
    wasmtime_engine::check_fits(&component, id)?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    /// `sbert-host up` as the command line parses it.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpCommand,
    }

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Configures the app `args` name, as `up` does before it starts anything.
    fn configured(args: &[&str]) -> Result<Configured> {
        let cli = Cli::try_parse_from(
            ["up", "--onnxruntime", "/ort/libonnxruntime.so"]
                .iter()
                .chain(args),
        )?;
        configure(&cli.up.core, cli.up.units)
    }

    fn configure_error(args: &[&str]) -> String {
        match configured(args) {
            Ok(_) => panic!("{args:?} configured"),
            Err(error) => format!("{error:#}"),
        }
    }

    /// A manifest like the repository's, in `dir`, with its model files resolved against the repository.
    fn manifest(dir: &Path, tool: &str) -> PathBuf {
        let text = format!(
            r#"
spin_manifest_version = 2
[application]
name = "demo"
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
ai_models = ["all-minilm-l6-v2"]
[component.web.tool.sbert-host]
graphs = {{ "all-minilm-l6-v2" = "{model}" }}
{tool}
"#,
            model = repo().join("models/all-minilm-l6-v2/model.onnx").display()
        );
        let file = dir.join("spin.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    /// Every manifest the repository ships (one per build) passes every unit's checks, which refuse unknown keys
    /// as Spin's own loader does (its model files come from `make models`).
    #[test]
    fn the_repository_manifests_configure() {
        let edge = ["inference_url=http://127.0.0.1:3000", "inference_token=t"];
        for (name, required) in [
            ("spin.toml", &[][..]),
            ("spin-llm.toml", &[]),
            ("spin-portable.toml", &[]),
            ("spin-edge.toml", &edge),
        ] {
            let manifest = repo().join(name);
            let runtime_config = repo().join("runtime-config.toml");
            let mut args = vec![
                "--from",
                manifest.to_str().unwrap(),
                "--runtime-config-file",
                runtime_config.to_str().unwrap(),
                "--variable",
                "api_keys=key",
            ];
            for variable in required {
                args.extend(["--variable", variable]);
            }
            configured(&args).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn a_key_no_unit_owns_is_an_error_that_names_the_section_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = manifest(dir.path(), "models = {}");
        let error = configure_error(&["--from", file.to_str().unwrap()]);
        assert!(
            error.contains("spin.toml: component `web`: [tool.sbert-host]"),
            "{error}"
        );
        assert!(error.contains("unknown field `models`"), "{error}");
        assert!(
            error.contains("`graphs`") && error.contains("`startup_check`"),
            "{error}"
        );

        let file = manifest(
            dir.path(),
            r#"llm_models = { "all-minilm-l6-v2" = { graph = "all-minilm-l6-v2", tokenizer = "t.json", max_tokens = 256, pooling = "mean" } }"#,
        );
        let error = configure_error(&["--from", file.to_str().unwrap()]);
        assert!(error.contains("unknown field `pooling`"), "{error}");
    }

    #[test]
    fn the_hosts_own_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = manifest(
            dir.path(),
            r#"startup_check = "/health?deep=1"
counted_header = { name = "X-Cache", values = ["HIT"] }
answer_headers = { "Access-Control-Allow-Origin" = "*" }
[[component.web.tool.sbert-host.error_bodies]]
paths = ["/"]
client_error = '{"message": {{ message }}}'
server_error = '{"error": {{ kind }}}'"#,
        );
        let configured = configured(&["--from", file.to_str().unwrap()]).unwrap();
        let http = &configured.components[0].http;
        assert_eq!(
            http.startup_check.as_ref().unwrap().0.as_str(),
            "/health?deep=1"
        );
        assert_eq!(http.counted_header.as_ref().unwrap().name, "x-cache");
        assert_eq!(http.answer_headers.0["access-control-allow-origin"], "*");
        assert_eq!(http.error_bodies.len(), 1);

        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("{{ kind }}", "{{ detail }}")).unwrap();
        let error = configure_error(&["--from", file.to_str().unwrap()]);
        assert!(error.contains("spin.toml"), "{error}");
        assert!(
            error.contains("unknown placeholder `{{ detail }}`"),
            "{error}"
        );
        std::fs::write(&file, text.replace("\"/health?deep=1\"", "\"health\"")).unwrap();
        let error = configure_error(&["--from", file.to_str().unwrap()]);
        assert!(error.contains("startup_check `health`"), "{error}");
    }

    #[test]
    fn a_runtime_config_section_no_unit_owns_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = manifest(dir.path(), "");
        let runtime_config = dir.path().join("runtime-config.toml");
        for (text, expected) in [
            (
                "[sqlite_database.default]\ntype = \"spin\"\n",
                "unknown field `sqlite_database`",
            ),
            (
                "[key_value_store.default]\ntype = \"azure_cosmos\"\n",
                "unknown variant `azure_cosmos`",
            ),
        ] {
            std::fs::write(&runtime_config, text).unwrap();
            let error = configure_error(&[
                "--from",
                file.to_str().unwrap(),
                "--runtime-config-file",
                runtime_config.to_str().unwrap(),
            ]);
            assert!(error.contains("runtime-config.toml: "), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn spin_s_llm_compute_section_is_read_local_engine_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = manifest(dir.path(), "");
        let runtime_config = dir.path().join("runtime-config.toml");
        let args = [
            "--from",
            file.to_str().unwrap(),
            "--runtime-config-file",
            runtime_config.to_str().unwrap(),
        ];
        std::fs::write(&runtime_config, "[llm_compute]\ntype = \"spin\"\n").unwrap();
        if let Err(error) = configured(&args) {
            panic!("the local engine is refused: {error:#}");
        }
        std::fs::write(
            &runtime_config,
            "[llm_compute]\ntype = \"remote_http\"\nurl = \"http://127.0.0.1:3000\"\nauth_token = \"k\"\n",
        )
        .unwrap();
        let error = configure_error(&args);
        assert!(
            error.contains("[llm_compute] type = \"remote_http\""),
            "{error}"
        );
    }

    #[test]
    fn units_check_what_the_manifest_refers_to() {
        let dir = tempfile::tempdir().unwrap();
        let file = manifest(dir.path(), "nn_sessions = { other = 2 }");
        let error = configure_error(&["--from", file.to_str().unwrap()]);
        assert!(
            error.contains("`nn_sessions` names graph `other`"),
            "{error}"
        );

        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("nn_sessions = { other = 2 }", "");
        std::fs::write(
            &file,
            text.replace(
                "source = \"web.wasm\"",
                "source = \"web.wasm\"\nkey_value_stores = [\"cache\"]",
            ),
        )
        .unwrap();
        let error = configure_error(&["--from", file.to_str().unwrap()]);
        assert!(
            error
                .contains("uses key-value store `cache`, which the runtime config does not define"),
            "{error}"
        );
    }
}
