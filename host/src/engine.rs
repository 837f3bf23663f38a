//! The wasmtime engine every component runs on, shared by `up` and `compile` so that what `compile` puts in
//! the compilation cache is what `up` finds there.

use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig, Result,
};

use crate::log;

/// Bytes of each pooled linear memory (and table) kept mapped between instances. Released pages would
/// cost the next instance a copy-on-write fault, and a TLB shoot-down across cores, per page it writes;
/// kept pages are instead copied back from the image after each request. With `PAGEMAP_SCAN` (Linux
/// ≥ 6.7) only the pages actually written are copied, but every one of them after every request: a slot
/// that once served a large batch would pay for its pages forever. 512 KiB holds what a single query
/// writes (stack, a few objects of the snapshot, its own allocations: see the component's `wasm::alloc`)
/// and bounds that copy to ~20 µs. Measured on the cache-hit path: ~2,300 req/s without, ~7,000 with.
const KEEP_RESIDENT: usize = 512 << 10;

/// The engine every component runs on: pooled instance allocation (instantiation per request is the hot
/// path) and wasmtime's compilation cache (restarts skip recompiling an unchanged component).
pub fn new() -> Result<Engine> {
    let mut config = Config::new();
    // Request deadlines: a store past its deadline traps at the next epoch check.
    config.epoch_interruption(true);
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Cache::new(CacheConfig::new()) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(error) => log::write(serde_json::json!({
            "level": "warn",
            "message": "compilation cache disabled: the component is compiled at every start",
            "error": format!("{error:#}"),
        })),
    }
    Engine::new(&config)
}
