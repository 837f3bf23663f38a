//! sbert-service: sentence embeddings (all-MiniLM-L6-v2) as a Spin HTTP component.
//!
//! Everything but `wasm` is plain Rust that compiles and is unit-tested natively; `wasm` holds
//! the only code that touches the host's bindings.

pub mod api;
pub mod auth;
pub mod backend;
pub mod cache;
pub mod docs;
pub mod embed;
pub mod error;
pub mod handlers;
pub mod http;
pub mod inputs;
pub mod limits;
pub mod pooling;
pub mod routes;
pub mod settings;
pub mod similarity;
pub mod tokenize;

#[cfg(target_arch = "wasm32")]
mod wasm;

/// The component's HTTP entry point.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
async fn handle_request(request: spin_sdk::http::IncomingRequest) -> spin_sdk::http::Response {
    wasm::http::handle(request).await
}
