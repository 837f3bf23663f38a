//! The only code that touches the component's bindings: it adapts Spin's HTTP types, Spin
//! variables, Spin key-value and wasi:nn to the plain types and traits the rest of the crate
//! works with.

/// Guest bindings for our world in `wit/sbert.wit` (wasi:nn and the `wizer-initialize` export).
mod bindings {
    spin_sdk::wit_bindgen::generate!({
        world: "component",
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
mod nn;
mod variables;

/// The type our world's exports are implemented on.
struct Component;

impl bindings::Guest for Component {
    fn wizer_initialize() {
        crate::tokenize::pre_initialize();
        alloc::switch_to_fresh_heap();
    }
}
