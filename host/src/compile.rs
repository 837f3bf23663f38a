//! `sbert-host compile`: compile a component at build time, so that the first `up` after a build does not
//! wait for the compiler (most of a start: docs/design-notes.md, "Compilation cache").

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use wasmtime::component::Component;

use crate::wasmtime_engine;

/// Compile a component into the compilation cache that `sbert-host up` reads.
///
/// `up` compiles whatever the cache does not hold, so this only moves the work to build time; the cache is
/// wasmtime's own (under `$XDG_CACHE_HOME/wasmtime`, `~/.cache/wasmtime` by default) and keyed by the
/// component's bytes and the engine's settings.
#[derive(Debug, clap::Args)]
pub struct CompileCommand {
    /// The component to compile.
    component: PathBuf,
}

impl CompileCommand {
    pub fn run(self) -> Result<()> {
        let started = Instant::now();
        let engine = wasmtime_engine::new(1)?;
        Component::from_file(&engine, &self.component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("{} is not a valid Wasm component", self.component.display())
            })?;
        println!(
            "Compiled {} in {:.1} s",
            self.component.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
