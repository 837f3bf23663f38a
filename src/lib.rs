//! sbert-service: sentence embeddings (all-MiniLM-L6-v2) as a Spin HTTP component.
//!
//! A request goes top to bottom: the entry below reads the [`config`], [`routes`] admits
//! it (CORS, 404/405, 401, 413), [`api`] parses it and answers, [`auth`] checks the token,
//! [`embed`] turns inputs into vectors through the cache and the [`backend`], and [`wasm`] is
//! the only code that touches the host's bindings. Everything but `wasm` is plain Rust that
//! compiles and is unit-tested natively.

pub mod api;
pub mod auth;
pub mod backend;
pub mod build_info;
pub mod config;
pub mod embed;
pub mod http;
pub mod routes;
pub mod similarity;

#[cfg(target_arch = "wasm32")]
mod wasm;

// The byte codecs (wasi:nn tensors, cache values, base64 embeddings) cast native-endian slices with
// `bytemuck` where the formats are little-endian.
#[cfg(target_endian = "big")]
compile_error!("sbert-service assumes a little-endian target");

/// The component's HTTP entry point: configuration → route → respond.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
async fn handle_request(incoming: spin_sdk::http::IncomingRequest) -> spin_sdk::http::Response {
    use embed::cache::Kv;

    let now = wasm::now();
    let config = config::Config::from_variables(&wasm::variables::SpinVariables);
    let mut request = wasm::http::head(&incoming);
    // Routing, the configuration and authorization come first: a client that would be refused
    // anyway must not make the component read its body.
    let response = match routes::admit(&request, &config, now) {
        Err(refused) => refused,
        Ok(admitted) => {
            let limit = admitted.config.limits.max_body_bytes;
            request.body = wasm::http::read_body(incoming, limit).await;
            let store = wasm::kv::SpinKv::open_default();
            let backend = wasm::backend(admitted.config);
            let services = api::Services {
                config: admitted.config,
                grant: admitted.grant,
                infer: &backend,
                kv: store.as_ref().map(|store| store as &dyn Kv),
                now,
            };
            routes::respond(admitted, &request, &services)
        }
    };
    wasm::http::response(response)
}
