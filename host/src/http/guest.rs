//! Running one request through a fresh instance of its component: a new `Store` with the request's limits,
//! instantiation from the pre-instantiated component, and wasi:http's `handle`.

use std::time::Duration;

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http::header::HeaderName;
use http::{Request, Response};
use tokio::sync::oneshot;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use super::answers::AnswerStyle;
use super::layer::Guard;
use super::request_log::log_error;
use crate::instance::RequestState;
use crate::unit::{ComponentIndex, DynUnit, InstanceBuilder};

/// How often the engine's epoch advances; request deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(100);

/// What one request may use.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// How long the guest may run, from instantiation to the end of its response body; then it traps.
    pub timeout: Duration,
    /// Bytes each linear memory of the guest may grow to; a larger `memory.grow` fails (and the guest's
    /// allocator then traps, a 500).
    pub memory: usize,
}

/// A component ready to serve: pre-instantiated once, instantiated per request.
pub struct ServedComponent {
    pub id: String,
    pub index: ComponentIndex,
    pub pre: ProxyPre<RequestState>,
    /// The units, which add their parts of each request's state.
    pub units: Arc<[Box<dyn DynUnit>]>,
    /// How the host's own answers for this component's routes look.
    pub answers: AnswerStyle,
    /// The response header whose values are counted, if the manifest names one.
    pub counted_header: Option<HeaderName>,
}

impl ServedComponent {
    /// A fresh state for one request's store.
    fn request_state(&self, memory_limit: usize) -> RequestState {
        let mut instance = InstanceBuilder::default();
        for unit in self.units.iter() {
            unit.instance(self.index, &mut instance);
        }
        RequestState::new(instance, memory_limit)
    }
}

/// A request body that can be handed to a component: hyper's incoming body, or whatever a caller in-process
/// (the start-up check, tests) sends.
pub trait GuestRequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<wasmtime_wasi_http::Error>> + Send + Unpin + 'static
{
}

impl<B> GuestRequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<wasmtime_wasi_http::Error>>
        + Send
        + Unpin
        + 'static
{
}

/// Runs `request` through a fresh instance of `component`. `request_id` names the request in the log line
/// of a failure after the response head, which only the log can report. `held` is kept until the instance is
/// gone.
pub async fn call<B: GuestRequestBody>(
    component: &ServedComponent,
    request: Request<B>,
    limits: RequestLimits,
    request_id: String,
    held: Vec<Guard>,
) -> Result<Response<HyperOutgoingBody>> {
    let mut store = Store::new(
        component.pre.engine(),
        component.request_state(limits.memory),
    );
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(epoch_ticks(limits.timeout));
    store.epoch_deadline_trap();
    let (sender, receiver) = oneshot::channel();
    let request = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let response_out = store.data_mut().http().new_response_outparam(sender)?;
    let pre = component.pre.clone();

    // The guest runs in its own task: it may keep streaming the body after the response head is sent.
    let guest = tokio::spawn(async move {
        let result = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, response_out)
                .await
        }
        .await;
        // The instance's pool slot is free only once its store is gone: then what was held may go too.
        drop(store);
        drop(held);
        result
    });

    match receiver.await {
        Ok(Ok(response)) => {
            let component_id = component.id.clone();
            tokio::spawn(async move {
                let error = match guest.await {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => anyhow::Error::from(error)
                        .context("the component trapped after sending the response head"),
                    Err(join) => anyhow!(join)
                        .context("the component's task failed after sending the response head"),
                };
                log_error(&request_id, &component_id, &error);
            });
            Ok(response)
        }
        Ok(Err(code)) => bail!("the component failed the request: {code:?}"),
        // The outparam was dropped unset: the guest returned without answering, or trapped.
        Err(_) => match guest.await {
            Ok(Ok(())) => bail!("the component returned without sending a response"),
            Ok(Err(error)) => Err(anyhow::Error::from(error).context("the component trapped")),
            Err(join) => Err(anyhow!(join).context("the component's task failed")),
        },
    }
}

/// Whether `error` is a guest stopped at its deadline.
pub fn is_timeout(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt))
}

/// `timeout` in epoch ticks, rounded up (at least one).
fn epoch_ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own, for as long as the engine lives,
/// so that stores past their deadline trap even while the guest never yields.
pub fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}
