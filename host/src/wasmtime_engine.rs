//! The wasmtime engine every component runs on, shared by `up` and `compile` so that what `compile` puts in
//! the compilation cache is what `up` finds there.

use anyhow::{bail, Result};
use wasmtime::component::Component;
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig,
};

/// Bytes of each pooled linear memory (and table) kept mapped between instances. Released pages would
/// cost the next instance a copy-on-write fault, and a TLB shoot-down across cores, per page it writes;
/// kept pages are instead copied back from the image after each request. With `PAGEMAP_SCAN` (Linux
/// ≥ 6.7) only the pages actually written are copied, but every one of them after every request: a slot
/// that once served a large batch would pay for its pages forever. 512 KiB holds what a single query
/// writes (stack, a few objects of the snapshot, its own allocations: see the component's `wasm::alloc`)
/// (docs/design-notes.md, "Instance pool").
const KEEP_RESIDENT: usize = 512 << 10;

/// What one component instance may take from the pool. A component built from a Rust crate with the WASI
/// adapter has a handful of core instances, one or two memories and a few tables; these caps leave room and
/// keep the pool's address-space reservation (one slot per memory) bounded.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 32;

/// The engine every component runs on: pooled instance allocation (instantiation per request is the hot
/// path) and wasmtime's compilation cache (restarts skip recompiling an unchanged component).
///
/// The pool holds `instances` component instances, with room for every core instance, memory, table and
/// fiber stack they may need: admission control never lets more instances live at once, so a full pool can
/// never be what fails a request.
pub fn new(instances: u32) -> Result<Engine> {
    let mut config = Config::new();
    // Request deadlines: a store past its deadline traps at the next epoch check.
    config.epoch_interruption(true);
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto)
        .total_component_instances(instances)
        .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * MEMORIES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_tables(instances * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .total_stacks(instances);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Cache::new(CacheConfig::new()) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "compilation cache disabled: the component is compiled at every start"
        ),
    }
    Ok(Engine::new(&config)?)
}

/// Checks that an instance of `component` fits the pool's per-component caps, so that a component that
/// could never be instantiated fails start-up rather than every request.
pub fn check_fits(component: &Component, id: &str) -> Result<()> {
    let Some(needs) = component.resources_required() else {
        return Ok(());
    };
    if needs.num_memories > MEMORIES_PER_COMPONENT || needs.num_tables > TABLES_PER_COMPONENT {
        bail!(
            "component `{id}` needs {} memories and {} tables per instance; sbert-host allows {MEMORIES_PER_COMPONENT} and {TABLES_PER_COMPONENT}",
            needs.num_memories,
            needs.num_tables
        );
    }
    Ok(())
}
