//! The only code that touches the component's bindings: it adapts Spin's HTTP types, Spin
//! variables, Spin key-value and wasi:nn to the plain types and traits the rest of the crate
//! works with.

#[cfg(all(feature = "wasi-nn", feature = "portable"))]
compile_error!(
    "choose one inference backend: features `wasi-nn` (default) and `portable` exclude each other"
);

/// Guest bindings for our world in `wit/sbert.wit`: `component` (wasi:nn and the `wizer-initialize`
/// export), or `portable` (only the export) for the build that runs the model inside the wasm.
mod bindings {
    #[cfg(not(feature = "portable"))]
    spin_sdk::wit_bindgen::generate!({
        world: "component",
        path: "wit",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
    #[cfg(feature = "portable")]
    spin_sdk::wit_bindgen::generate!({
        world: "portable",
        path: "wit",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });

    use super::Component;
    export!(Component);
}

mod alloc;
pub mod http;
mod kv;
#[cfg(not(feature = "portable"))]
mod nn;
mod variables;

#[cfg(feature = "portable")]
use crate::backend::in_wasm::InWasm as Backend;
/// The [`crate::embed::Infer`] this build serves with.
#[cfg(not(feature = "portable"))]
use nn::WasiNn as Backend;

/// The type our world's exports are implemented on.
struct Component;

impl bindings::Guest for Component {
    fn wizer_initialize() {
        crate::tokenize::pre_initialize();
        #[cfg(feature = "portable")]
        crate::backend::in_wasm::pre_initialize();
        alloc::switch_to_fresh_heap();
    }
}
