//! The only code that touches the component's bindings: it adapts Spin's HTTP types, Spin
//! variables, Spin key-value, wasi:nn and outbound HTTP to the plain types and traits the rest of
//! the crate works with.

#[cfg(any(
    all(feature = "wasi-nn", feature = "spin-llm"),
    all(feature = "wasi-nn", feature = "portable"),
    all(feature = "wasi-nn", feature = "remote"),
    all(feature = "spin-llm", feature = "portable"),
    all(feature = "spin-llm", feature = "remote"),
    all(feature = "portable", feature = "remote"),
))]
compile_error!(
    "choose one inference backend: features `wasi-nn` (default), `spin-llm`, `portable` and `remote` exclude each other"
);

/// Guest bindings for our world in `wit/sbert.wit`: `component` (wasi:nn and the `wizer-initialize`
/// export), or `spin-platform` (only the export) for the builds that run on any Spin host: spin-sdk
/// binds Spin's llm interface itself, the portable build runs the model inside the wasm, and the edge
/// build reaches its inference service through the `wasi` crate's wasi:http bindings.
mod bindings {
    #[cfg(feature = "wasi-nn")]
    spin_sdk::wit_bindgen::generate!({
        world: "component",
        path: "wit",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
    #[cfg(not(feature = "wasi-nn"))]
    spin_sdk::wit_bindgen::generate!({
        world: "spin-platform",
        path: "wit",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });

    use super::Component;
    export!(Component);
}

use crate::config::Config;

mod alloc;
pub mod http;
pub mod kv;
#[cfg(feature = "spin-llm")]
mod llm;
#[cfg(feature = "wasi-nn")]
mod nn;
#[cfg(feature = "remote")]
mod outbound;
pub mod variables;

/// The inference backend this build was made with (one cargo feature per backend).
#[cfg(feature = "wasi-nn")]
pub fn backend(_: &Config) -> impl crate::backend::Infer {
    crate::backend::wasi_nn::WasiNn(nn::WasiNnGraphs)
}

/// The inference backend this build was made with (one cargo feature per backend).
#[cfg(feature = "spin-llm")]
pub fn backend(_: &Config) -> impl crate::backend::Infer {
    use crate::backend::spin_llm::{EmbeddedTokenizer, SpinLlm};
    SpinLlm {
        llm: llm::SpinLlmHost,
        tokenizer: EmbeddedTokenizer,
    }
}

/// The inference backend this build was made with (one cargo feature per backend).
#[cfg(feature = "portable")]
pub fn backend(_: &Config) -> impl crate::backend::Infer {
    crate::backend::in_wasm::InWasm
}

/// The inference backend this build was made with (one cargo feature per backend).
#[cfg(feature = "remote")]
pub fn backend(config: &Config) -> impl crate::backend::Infer {
    crate::backend::remote::Remote {
        transport: outbound::WasiHttp,
        origin: config.origin.clone(),
    }
}

/// Unix seconds now: JWT validity and cache expiry are judged by it, once per request.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The type our world's exports are implemented on.
struct Component;

impl bindings::Guest for Component {
    fn wizer_initialize() {
        crate::embed::tokenize::pre_initialize();
        #[cfg(feature = "portable")]
        crate::backend::in_wasm::pre_initialize();
        alloc::switch_to_fresh_heap();
    }
}
