//! A capability of the runtime as one unit, and how `up` composes them.
//!
//! Each unit owns everything about its capability: its command-line flags, its keys of the manifest's
//! `[component.<id>.tool.sbert-host]`, its sections of the runtime configuration file (all read with
//! `deny_unknown_fields`), the checks of those, what it starts (graphs, stores, pools), what each request's
//! instance gets of it, the interfaces it links, and its place on a request's way through the host. `up`
//! only runs the list in `units/mod.rs` through the phases below, in order:
//!
//! 1. [`Unit::configure`]: parse and check, cheaply. Nothing heavy starts before every unit has checked.
//! 2. [`Unit::start`]: load and open what requests share; register its metrics.
//! 3. [`Unit::link`]: connect the interfaces it implements to [`RequestState`].
//! 4. per request, [`Unit::instance`]: add its part of the request's state.
//!
//! A unit may read the units listed before it (the HTTP cache's neighbours do not matter, but llm runs on
//! wasi:nn's graphs), never the ones after it.

use std::any::Any;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_aux::serde_introspection::serde_introspect;
use tracing_appender::non_blocking::ErrorCounter;
use wasmtime::component::Linker;

use crate::app::manifest::{App, Component, HOST_TOOL};
use crate::http::config::HttpTool;
use crate::http::Layer;
use crate::instance::RequestState;
use crate::telemetry::MetricsRegistry;

/// A capability of the runtime (see the module's documentation for the phases).
pub trait Unit: Send + Sync + Sized + 'static {
    /// What errors and log lines call it.
    const NAME: &'static str;
    /// Its command-line flags, part of `sbert-host up --help`: a struct with `#[group(skip)]`, since every unit's
    /// is called `Flags` and clap would otherwise make an argument group of each, under that one name.
    type Flags: clap::Args;
    /// Its keys of `[component.<id>.tool.sbert-host]`: a struct with `deny_unknown_fields`; a key no unit owns
    /// is an error.
    type Tool: DeserializeOwned + Default;
    /// Its top-level sections of the runtime configuration file; a section no unit owns is an error.
    type RuntimeConfig: DeserializeOwned + Default;

    fn new(flags: Self::Flags) -> Self;

    /// Checks and keeps what it needs of the app, cheaply: files exist, names refer to something. `tools` has
    /// each served component's keys of its `tool.sbert-host` section, in [`ComponentIndex`] order.
    fn configure(
        &mut self,
        ctx: &Configure<'_>,
        tools: Vec<Self::Tool>,
        runtime_config: Self::RuntimeConfig,
    ) -> Result<()>;

    /// Loads and opens what the app's requests share, and registers its metrics.
    fn start(&mut self, _ctx: &mut Start<'_>) -> Result<()> {
        Ok(())
    }

    /// Connects the interfaces it implements to the state [`Unit::instance`] adds.
    fn link(_linker: &mut Linker<RequestState>) -> Result<()> {
        Ok(())
    }

    /// Adds its part of one request's state, for the served component `component`.
    fn instance(&self, _component: ComponentIndex, _instance: &mut InstanceBuilder) {}

    /// Logs its settings, once the host is ready to serve (a start-up that fails prints one line: its error).
    fn report(&self) {}

    /// The most requests it lets run at once, if it bounds them: the instance pool is sized to the smallest.
    fn capacity(&self) -> Option<u32> {
        None
    }

    /// Its place on every request's way through the host, if it has one.
    fn layer(&self) -> Option<Arc<dyn Layer>> {
        None
    }
}

/// Flags of a unit that has none.
#[derive(Debug, Default, clap::Args)]
#[group(skip)]
pub struct NoFlags {}

/// A configuration part a unit does not have.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// A served component's position in [`Configure::components`], the same in every phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentIndex(pub usize);

/// A component the app serves (one that a trigger routes to), as the units see it.
pub struct ServedComponentConfig<'a> {
    pub index: ComponentIndex,
    pub id: &'a str,
    /// Its `[component.<id>]` section (Spin's own fields).
    pub manifest: &'a Component,
    /// The host's own keys of its `tool.sbert-host` section.
    pub http: &'a HttpTool,
}

/// What the app looks like to a unit being configured.
pub struct Configure<'a> {
    pub app: &'a App,
    /// The served components, in [`ComponentIndex`] order.
    pub components: &'a [ServedComponentConfig<'a>],
    /// The runtime configuration file, if one was given: paths in it are relative to its directory.
    pub runtime_config_file: Option<&'a Path>,
    /// The address the app is served on.
    pub listen: SocketAddr,
    earlier: &'a [Box<dyn DynUnit>],
}

impl Configure<'_> {
    /// A unit listed before this one.
    pub fn unit<E: Unit>(&self) -> Option<&E> {
        find(self.earlier)
    }

    /// A path written in the runtime configuration file, resolved against its directory.
    pub fn runtime_config_path(&self, path: &Path) -> PathBuf {
        match self.runtime_config_file.and_then(Path::parent) {
            Some(dir) => dir.join(path),
            None => path.to_path_buf(),
        }
    }
}

/// What a unit starting may use.
pub struct Start<'a> {
    /// Where every unit registers its metrics.
    pub metrics: &'a MetricsRegistry,
    /// Log lines dropped because stderr did not keep up, counted by the log's writer.
    pub log_lines_dropped: &'a ErrorCounter,
    earlier: &'a [Box<dyn DynUnit>],
}

impl Start<'_> {
    /// A unit listed before this one.
    pub fn unit<E: Unit>(&self) -> Option<&E> {
        find(self.earlier)
    }
}

fn find<E: Unit>(units: &[Box<dyn DynUnit>]) -> Option<&E> {
    units
        .iter()
        .find_map(|unit| unit.as_any().downcast_ref::<E>())
}

/// One request's state as the units add it.
#[derive(Default)]
pub struct InstanceBuilder {
    pub(crate) states: Vec<Box<dyn Any + Send>>,
    pub(crate) outbound_http: Option<Box<dyn wasmtime_wasi_http::WasiHttpHooks>>,
}

impl InstanceBuilder {
    /// Adds a unit's state; its linker wiring finds it by type ([`RequestState::unit_state`]).
    pub fn add<S: Any + Send>(&mut self, state: S) {
        self.states.push(Box::new(state));
    }

    /// Decides what the request's outgoing HTTP requests do (without it, each is denied).
    pub fn outbound_http(&mut self, hooks: impl wasmtime_wasi_http::WasiHttpHooks + 'static) {
        self.outbound_http = Some(Box::new(hooks));
    }
}

/// A [`Unit`] behind a pointer: what the list holds.
pub trait DynUnit: Send + Sync {
    fn name(&self) -> &'static str;
    fn tool_keys(&self) -> &'static [&'static str];
    fn runtime_config_keys(&self) -> &'static [&'static str];
    fn configure(&mut self, app: &AppParts<'_>, earlier: &[Box<dyn DynUnit>]) -> Result<()>;
    fn start(&mut self, ctx: &mut Start<'_>) -> Result<()>;
    fn link(&self, linker: &mut Linker<RequestState>) -> Result<()>;
    fn instance(&self, component: ComponentIndex, instance: &mut InstanceBuilder);
    fn report(&self);
    fn capacity(&self) -> Option<u32>;
    fn layer(&self) -> Option<Arc<dyn Layer>>;
    fn as_any(&self) -> &dyn Any;
}

/// The app's configuration as it was read, before any unit took its part.
pub struct AppParts<'a> {
    pub app: &'a App,
    pub components: &'a [ServedComponentConfig<'a>],
    /// Each served component's `tool.sbert-host` table.
    pub tools: &'a [toml::Table],
    /// The runtime configuration file's top-level table (empty without a file).
    pub runtime_config: &'a toml::Table,
    pub runtime_config_file: Option<&'a Path>,
    pub listen: SocketAddr,
}

impl<U: Unit> DynUnit for U {
    fn name(&self) -> &'static str {
        U::NAME
    }

    fn tool_keys(&self) -> &'static [&'static str] {
        serde_introspect::<U::Tool>()
    }

    fn runtime_config_keys(&self) -> &'static [&'static str] {
        serde_introspect::<U::RuntimeConfig>()
    }

    fn configure(&mut self, parts: &AppParts<'_>, earlier: &[Box<dyn DynUnit>]) -> Result<()> {
        let tools = parts
            .components
            .iter()
            .zip(parts.tools)
            .map(|(component, table)| {
                own_keys(table, serde_introspect::<U::Tool>()).with_context(|| {
                    format!(
                        "{}: component `{}`: [tool.{HOST_TOOL}]",
                        parts.app.file.display(),
                        component.id
                    )
                })
            })
            .collect::<Result<_>>()?;
        let runtime_config = own_keys(parts.runtime_config, serde_introspect::<U::RuntimeConfig>())
            .with_context(|| match parts.runtime_config_file {
                Some(file) => file.display().to_string(),
                None => "the runtime configuration".into(),
            })?;
        let ctx = Configure {
            app: parts.app,
            components: parts.components,
            runtime_config_file: parts.runtime_config_file,
            listen: parts.listen,
            earlier,
        };
        Unit::configure(self, &ctx, tools, runtime_config)
            .with_context(|| format!("{}: {}", parts.app.file.display(), U::NAME))
    }

    fn start(&mut self, ctx: &mut Start<'_>) -> Result<()> {
        Unit::start(self, ctx).with_context(|| U::NAME)
    }

    fn link(&self, linker: &mut Linker<RequestState>) -> Result<()> {
        U::link(linker).with_context(|| format!("{}: linking", U::NAME))
    }

    fn instance(&self, component: ComponentIndex, instance: &mut InstanceBuilder) {
        Unit::instance(self, component, instance);
    }

    fn report(&self) {
        Unit::report(self);
    }

    fn capacity(&self) -> Option<u32> {
        Unit::capacity(self)
    }

    fn layer(&self) -> Option<Arc<dyn Layer>> {
        Unit::layer(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Deserializes the entries of `table` named in `keys` as `T`.
pub fn own_keys<T: DeserializeOwned>(table: &toml::Table, keys: &[&str]) -> Result<T> {
    let owned: toml::Table = table
        .iter()
        .filter(|(key, _)| keys.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok(owned.try_into()?)
}

/// Runs every unit's [`Unit::configure`] in order, after checking that every key of every `tool.sbert-host`
/// section and every section of the runtime configuration belongs to some unit (or to the host's own
/// `core_tool_keys`).
pub fn configure(
    units: &mut [Box<dyn DynUnit>],
    parts: &AppParts<'_>,
    core_tool_keys: &[&str],
) -> Result<()> {
    let tool_keys: BTreeSet<&str> = units
        .iter()
        .flat_map(|unit| unit.tool_keys().iter().copied())
        .chain(core_tool_keys.iter().copied())
        .collect();
    for (component, table) in parts.components.iter().zip(parts.tools) {
        if let Some(key) = table.keys().find(|key| !tool_keys.contains(key.as_str())) {
            bail!(
                "{}: component `{}`: [tool.{HOST_TOOL}]: unknown field `{key}`, expected one of {}",
                parts.app.file.display(),
                component.id,
                quoted(&tool_keys)
            );
        }
    }
    let sections: BTreeSet<&str> = units
        .iter()
        .flat_map(|unit| unit.runtime_config_keys().iter().copied())
        .collect();
    if let Some(section) = parts
        .runtime_config
        .keys()
        .find(|key| !sections.contains(key.as_str()))
    {
        bail!(
            "{}: unknown field `{section}`, expected one of {}",
            parts.runtime_config_file.map_or_else(
                || "runtime config".into(),
                |file| file.display().to_string()
            ),
            quoted(&sections)
        );
    }
    for index in 0..units.len() {
        let (earlier, rest) = units.split_at_mut(index);
        rest[0].configure(parts, earlier)?;
    }
    Ok(())
}

/// Runs every unit's [`Unit::start`] in order.
pub fn start(
    units: &mut [Box<dyn DynUnit>],
    metrics: &MetricsRegistry,
    log_lines_dropped: &ErrorCounter,
) -> Result<()> {
    for index in 0..units.len() {
        let (earlier, rest) = units.split_at_mut(index);
        rest[0].start(&mut Start {
            metrics,
            log_lines_dropped,
            earlier,
        })?;
    }
    Ok(())
}

fn quoted(keys: &BTreeSet<&str>) -> String {
    keys.iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
