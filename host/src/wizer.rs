//! `sbert-host wizer`: pre-initialize a component at build time, so per-request instances start from the
//! state its initialization function leaves (for sbert-service: the parsed tokenizer).

use std::path::PathBuf;

use anyhow::{Context, Result};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};
use wasmtime::{Engine, Store};
use wasmtime_wizer::Wizer;

use crate::instance::{self, RequestState};
use crate::unit::InstanceBuilder;

/// Pre-initialize a component: run its initialization export once and write the snapshot as a new
/// component that keeps the export.
///
/// During initialization the component has WASI and wasi:http (without files, network or environment);
/// calling any other import (wasi:nn, Spin key-value and variables, ...) traps, so no runtime configuration
/// can leak into the snapshot.
#[derive(Debug, clap::Args)]
pub struct WizerCommand {
    /// The component to initialize.
    input: PathBuf,

    /// Where to write the initialized component.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// The exported function to run.
    #[arg(long, value_name = "NAME", default_value = "wizer-initialize")]
    init_func: String,
}

/// The interfaces the linker above implements for real: WASI p2 and wasi:http.
const PROVIDED: [&str; 7] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "wasi:http/",
];

/// Defines every other imported interface with functions that trap when called.
///
/// Unlike `Linker::define_unknown_imports_as_traps`, this leaves alone the resources an interface only
/// `use`s from another one (wasi:io's `error` in `wasi:io/streams`, say): stubbing those with fresh types
/// would clash with the real WASI resources they alias. A resource is defined once, where it first appears;
/// imports are ordered so that this is the interface that owns it.
fn define_other_imports_as_traps(
    linker: &mut Linker<RequestState>,
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<()> {
    let mut seen_resources: Vec<ResourceType> = Vec::new();
    for (name, import) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            continue;
        };
        let provided = PROVIDED.iter().any(|prefix| name.starts_with(prefix));
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::Resource(resource) if !seen_resources.contains(&resource) => {
                    seen_resources.push(resource);
                    if !provided {
                        linker.instance(name)?.resource(
                            item,
                            ResourceType::host::<()>(),
                            |_, _| Ok(()),
                        )?;
                    }
                }
                ComponentItem::ComponentFunc(_) if !provided => {
                    let qualified = format!("{name}#{item}");
                    linker.instance(name)?.func_new(item, move |_, _, _, _| {
                        wasmtime::bail!("`{qualified}` is not available during pre-initialization")
                    })?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

impl WizerCommand {
    pub fn run(self) -> Result<()> {
        let wasm = std::fs::read(&self.input)
            .with_context(|| format!("cannot read {}", self.input.display()))?;
        let engine = Engine::default();
        // The serving state with nothing in it: the imports that would reach it trap anyway.
        let mut store = Store::new(
            &engine,
            RequestState::new(InstanceBuilder::default(), usize::MAX),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (initialized, _) = runtime
            .block_on(
                Wizer::new()
                    .init_func(&self.init_func)
                    .keep_init_func(true)
                    .run_component(&mut store, &wasm, async |store, component| {
                        let mut linker = Linker::new(store.engine());
                        instance::add_to_linker(&mut linker)?;
                        define_other_imports_as_traps(&mut linker, store.engine(), component)?;
                        linker.instantiate_async(store, component).await
                    }),
            )
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot pre-initialize {}", self.input.display()))?;

        // Write beside the target, then rename: a failed run never leaves a truncated component behind.
        let partial = self.output.with_extension("wasm.partial");
        std::fs::write(&partial, initialized)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &self.output)
            .with_context(|| format!("cannot write {}", self.output.display()))?;
        Ok(())
    }
}
