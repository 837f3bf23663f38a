//! The process's heap: how many malloc arenas glibc may keep, and what it keeps after start-up.
//!
//! glibc gives threads that allocate at the same time arenas of their own, up to eight per core, and memory
//! freed in an arena mostly stays with it. This host's threads (the start-up threads that read and decode the
//! models, tokio's workers, the ONNX Runtime sessions' threads) each leave freed memory in their own
//! (docs/design-notes.md, "Malloc arenas and the freed heap").

/// Caps malloc arenas at one per core (at least two), unless `MALLOC_ARENA_MAX` in the environment says otherwise. Call
/// first thing, before any thread is started.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; no thread is allocating concurrently yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Hands the heap's free pages back to the kernel. Call once start-up is done: reading the model files and
/// building their sessions frees more than serving allocates again, and glibc keeps what is freed for reuse.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
