//! What a unit can do on every request's way through the host besides the component: answer it from what it
//! holds (the HTTP cache), refuse it (admission), keep what the component answers, and record every answer
//! (metrics). The router calls every layer at each step, in the units' order.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::unit::ComponentIndex;

/// A response as the host sends it.
pub type HostResponse = Response<HyperOutgoingBody>;

/// A unit's hooks on the request path; every method has a do-nothing default.
pub trait Layer: Send + Sync {
    /// An answer to `request` that makes running its component unnecessary, or none. Called on the HTTP
    /// front thread, which serves every connection: it must answer at once.
    fn answer(&self, _request: &Parts, _component: ComponentIndex) -> Option<HostResponse> {
        None
    }

    /// Lets the request run (the returned guard lives as long as its instance, streamed body included) or
    /// refuses it before an instance exists. On the front thread.
    fn admit(&self, _request: &Parts) -> Result<Option<Guard>, Refusal> {
        Ok(None)
    }

    /// Before the component runs, on the component runtime: something to do with its answer.
    fn before_call(&self, _request: &Parts) -> Option<Box<dyn AfterCall>> {
        None
    }

    /// Every answer, as it leaves (on the front thread).
    fn record(&self, _answered: &Answered<'_>) {}
}

/// Held while an admitted request's instance lives.
pub type Guard = Box<dyn Any + Send>;

/// What a layer does with the component's answer (the HTTP cache keeps it); the answer goes on to the client.
pub trait AfterCall: Send {
    fn after(self: Box<Self>, response: HostResponse) -> BoxFuture<Result<HostResponse>>;
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why a request was refused before it reached its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 429 (the host is full) or 503 (it is going away).
    pub status: StatusCode,
    /// A short token for the body's `kind`, e.g. `overloaded`.
    pub kind: &'static str,
    /// A sentence for the client.
    pub message: &'static str,
    /// The metrics' label, e.g. `max_concurrent_requests`.
    pub reason: &'static str,
}

/// One answered request, as layers record it.
pub struct Answered<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub status: StatusCode,
    /// From receiving the request to sending the response head.
    pub duration: Duration,
    /// The response header the component's manifest counts, and its value, if the response has it.
    pub counted: Option<(&'a str, &'a str)>,
    /// Why it was refused, if it was.
    pub refused: Option<Refusal>,
}
