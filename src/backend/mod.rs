//! Inference backends other than the host's wasi:nn, chosen by cargo feature.

#[cfg(feature = "portable")]
pub mod in_wasm;
