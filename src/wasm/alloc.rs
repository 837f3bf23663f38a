//! The component's global allocator: wasi-libc's `malloc` until pre-initialization ends, then a heap
//! of its own above the snapshot.
//!
//! Why: the host keeps the pages a request wrote resident in the instance's memory slot and copies
//! the snapshot back over them afterwards, instead of unmapping them and taking a copy-on-write
//! fault (and a TLB shoot-down across cores) per page in the next request. That works only while a
//! request's writes fall in a few runs of contiguous pages (wasmtime scans for at most 32). Parsing
//! `tokenizer.json` at pre-initialization leaves free chunks scattered through the snapshot's heap;
//! a request allocating from them writes all over it. Allocations after the snapshot come from a
//! separate heap that starts above it, so a request writes to its stack, a few objects of the
//! snapshot and one contiguous run of pages.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Bytes the fresh heap reserves (allocates and frees) at the switch, so that the snapshot's
/// memory already holds a typical request's allocations and requests rarely grow memory.
const RESERVE: usize = 4 << 20;

const WASM_PAGE: usize = 64 * 1024;

pub struct SplitHeap {
    state: UnsafeCell<State>,
}

struct State {
    /// Allocations at or above this address come from `fresh`, those below from wasi-libc:
    /// `usize::MAX` until the switch, then the size of linear memory at the switch.
    boundary: usize,
    fresh: dlmalloc::Dlmalloc,
}

// A component instance runs on one thread; nothing else reaches its allocator.
unsafe impl Sync for SplitHeap {}

#[global_allocator]
static HEAP: SplitHeap = SplitHeap {
    state: UnsafeCell::new(State {
        boundary: usize::MAX,
        fresh: dlmalloc::Dlmalloc::new(),
    }),
};

/// Sends every later allocation to the fresh heap. Called once, at the end of pre-initialization.
pub fn switch_to_fresh_heap() {
    // SAFETY: single-threaded, and no allocation is in progress while this runs.
    let state = unsafe { &mut *HEAP.state.get() };
    if state.boundary != usize::MAX {
        return;
    }
    state.boundary = core::arch::wasm32::memory_size(0) * WASM_PAGE;
    // SAFETY: a valid size and alignment, freed with the same.
    unsafe {
        let reserved = state.fresh.malloc(RESERVE, 16);
        if !reserved.is_null() {
            state.fresh.free(reserved, RESERVE, 16);
        }
    }
}

impl SplitHeap {
    /// SAFETY: single-threaded, and the allocator is not re-entered.
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut State {
        unsafe { &mut *self.state.get() }
    }
}

unsafe impl GlobalAlloc for SplitHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let state = unsafe { self.state() };
        if state.boundary == usize::MAX {
            unsafe { System.alloc(layout) }
        } else {
            unsafe { state.fresh.malloc(layout.size(), layout.align()) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let state = unsafe { self.state() };
        if state.boundary == usize::MAX {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            unsafe { state.fresh.calloc(layout.size(), layout.align()) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let state = unsafe { self.state() };
        if (ptr as usize) < state.boundary {
            unsafe { System.dealloc(ptr, layout) }
        } else {
            unsafe { state.fresh.free(ptr, layout.size(), layout.align()) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let state = unsafe { self.state() };
        if (ptr as usize) >= state.boundary {
            return unsafe {
                state
                    .fresh
                    .realloc(ptr, layout.size(), layout.align(), new_size)
            };
        }
        if state.boundary == usize::MAX {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Allocated before the switch: move it to the fresh heap.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                System.dealloc(ptr, layout);
            }
        }
        moved
    }
}
