//! What one request's `Store` holds, and the linker that connects each imported interface to it.

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};

use crate::bindings::fermyon::spin::{key_value, llm, variables};
use crate::key_value::{ComponentStores, HasKeyValue, KeyValueView};
use crate::llm::Llm;
use crate::nn::Nn;
use crate::outbound_http::OutboundHttp;
use crate::variables::ComponentVariables;

/// The shared, start-up-built pieces a component's requests use. The default has no variables, stores,
/// graphs or llm models, and may send no outbound HTTP request.
#[derive(Clone, Default)]
pub struct ComponentServices {
    pub variables: ComponentVariables,
    pub stores: ComponentStores,
    pub nn: Nn,
    pub llm: Llm,
    pub outbound_http: OutboundHttp,
}

/// Per-request store data: one of these per `Store`, dropped with it.
pub struct RequestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound_http: OutboundHttp,
    nn: WasiNnCtx,
    llm: Llm,
    stores: ComponentStores,
    variables: ComponentVariables,
    /// Caps the instance's linear memory; installed with [`wasmtime::Store::limiter`].
    pub limits: StoreLimits,
}

impl RequestState {
    /// `memory_limit`: bytes of linear memory the request's instance may grow to.
    pub fn new(services: &ComponentServices, memory_limit: usize) -> Self {
        Self {
            table: ResourceTable::new(),
            // Like `spin up`, the component's own output goes to the terminal; it gets no environment,
            // arguments, files or sockets.
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            outbound_http: services.outbound_http.clone(),
            nn: services.nn.ctx(),
            llm: services.llm.clone(),
            stores: services.stores.clone(),
            variables: services.variables.clone(),
            limits: StoreLimitsBuilder::new().memory_size(memory_limit).build(),
        }
    }
}

/// Adds every interface a component may import: WASI p2, wasi:http, wasi:nn and the Spin key-value, llm and
/// variables interfaces.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    wasmtime_wasi_nn::wit::add_to_linker(linker, |state| {
        WasiNnView::new(&mut state.table, &mut state.nn)
    })?;
    key_value::add_to_linker::<_, HasKeyValue>(linker, |state| KeyValueView {
        stores: &state.stores,
        table: &mut state.table,
    })?;
    llm::add_to_linker::<_, HasSelf<Llm>>(linker, |state| &mut state.llm)?;
    variables::add_to_linker::<_, HasSelf<ComponentVariables>>(linker, |state| {
        &mut state.variables
    })?;
    Ok(())
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound_http,
        }
    }
}
