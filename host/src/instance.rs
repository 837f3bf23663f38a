//! What one request's `Store` holds: the host's own part (WASI, wasi:http, the resource table, the memory
//! limit) and each unit's part, which its linker wiring finds by type.

use std::any::Any;
use std::future::Future;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::unit::InstanceBuilder;

/// Per-request store data: one of these per `Store`, dropped with it.
pub struct RequestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound_http: Box<dyn WasiHttpHooks>,
    units: Vec<Box<dyn Any + Send>>,
    /// Caps the instance's linear memory; installed with [`wasmtime::Store::limiter`].
    pub limits: StoreLimits,
}

impl RequestState {
    /// `memory_limit`: bytes of linear memory the request's instance may grow to.
    pub fn new(units: InstanceBuilder, memory_limit: usize) -> Self {
        Self {
            table: ResourceTable::new(),
            // Like `spin up`, the component's own output goes to the terminal; it gets no environment,
            // arguments, files or sockets.
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            outbound_http: units
                .outbound_http
                .unwrap_or_else(|| Box::new(DenyOutboundHttp)),
            units: units.states,
            limits: StoreLimitsBuilder::new().memory_size(memory_limit).build(),
        }
    }

    /// The state of type `S` that a unit added for this request, and the request's resource table.
    ///
    /// # Panics
    /// If no unit added an `S`: a unit that links an interface adds its state for every request.
    pub fn unit_state<S: Any>(&mut self) -> (&mut S, &mut ResourceTable) {
        let state = self
            .units
            .iter_mut()
            .find_map(|state| state.downcast_mut::<S>())
            .unwrap_or_else(|| {
                panic!(
                    "no unit added a {} to the request's state",
                    std::any::type_name::<S>()
                )
            });
        (state, &mut self.table)
    }
}

/// Adds what every component may import whatever the units: WASI p2 and wasi:http (its types and outgoing
/// handler; what an outgoing request may reach is the outbound unit's [`InstanceBuilder::outbound_http`]).
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
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
            hooks: self.outbound_http.as_mut(),
        }
    }
}

/// A request without outbound access: every outgoing HTTP request is denied.
struct DenyOutboundHttp;

impl WasiHttpHooks for DenyOutboundHttp {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
