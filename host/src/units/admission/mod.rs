//! Admission control: a request runs only if the host has room for it, and is refused at once otherwise,
//! before an instance of its component is created. Room is two bounds: requests in flight
//! (`--max-concurrent-requests`) and tokens waiting for inference (`--max-queued-tokens`, read from wasi:nn's
//! queues).
//!
//! A permit is held for as long as the request's instance lives (including streaming its body after the
//! response head), so the bound on permits is also the bound on live instances, which sizes the instance pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use http::request::Parts;
use http::StatusCode;
use prometheus_client::metrics::gauge::Gauge;

use crate::http::{Guard, Layer, Refusal};
use crate::unit::{Configure, Nothing, Start, Unit};
use crate::units::nn::{QueuedTokens, WasiNn};

/// `sbert-host up` flags of admission control.
#[derive(Debug, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// Requests that may run at once; past it a request is refused at once with 429 and `Retry-After: 1`,
    /// before any instance is created. It also sizes the instance pool, which can then never run out.
    #[arg(long, value_name = "N", default_value = "64", value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_concurrent_requests: u32,

    /// Tokens that may wait for inference (in the wasi:nn queues); while more wait, new requests are refused
    /// with 429 and `Retry-After: 1`. The default is about two seconds of work for a MiniLM-sized model on 2
    /// cores: a realistic mix at 40 connections is never refused, and a flood of batches waits a few seconds.
    // Why 16384: docs/design-notes.md, "Queued-token bound".
    #[arg(long, value_name = "TOKENS", default_value = "16384", value_parser = clap::value_parser!(u64).range(1..))]
    max_queued_tokens: u64,
}

pub struct Admission {
    flags: Flags,
    layer: Option<Arc<Gate>>,
}

/// A request past one of these bounds is refused with 429: the client should retry in a second.
const BUSY: &str = "the server is busy; retry in a second";

const TOO_MANY_REQUESTS: Refusal = Refusal {
    status: StatusCode::TOO_MANY_REQUESTS,
    kind: "overloaded",
    message: BUSY,
    reason: "max_concurrent_requests",
};

const TOO_MANY_TOKENS: Refusal = Refusal {
    status: StatusCode::TOO_MANY_REQUESTS,
    kind: "overloaded",
    message: BUSY,
    reason: "max_queued_tokens",
};

impl Unit for Admission {
    const NAME: &'static str = "admission";
    type Flags = Flags;
    type Tool = Nothing;
    type RuntimeConfig = Nothing;

    fn new(flags: Flags) -> Self {
        Self { flags, layer: None }
    }

    fn configure(&mut self, _: &Configure<'_>, _: Vec<Nothing>, _: Nothing) -> Result<()> {
        Ok(())
    }

    fn start(&mut self, ctx: &mut Start<'_>) -> Result<()> {
        let in_flight = Gauge::default();
        ctx.metrics.register(
            "http_requests_in_flight",
            "Requests admitted and not yet answered",
            in_flight.clone(),
        );
        self.layer = Some(Arc::new(Gate {
            max_concurrent_requests: self.flags.max_concurrent_requests as usize,
            max_queued_tokens: usize::try_from(self.flags.max_queued_tokens).unwrap_or(usize::MAX),
            queued_tokens: ctx
                .unit::<WasiNn>()
                .map(WasiNn::queued_tokens)
                .unwrap_or_default(),
            in_flight: Arc::new(InFlight {
                count: AtomicUsize::new(0),
                gauge: in_flight,
            }),
        }));
        Ok(())
    }

    fn report(&self) {
        tracing::info!(
            max_concurrent_requests = self.flags.max_concurrent_requests,
            max_queued_tokens = self.flags.max_queued_tokens,
            "admission"
        );
    }

    fn capacity(&self) -> Option<u32> {
        Some(self.flags.max_concurrent_requests)
    }

    fn layer(&self) -> Option<Arc<dyn Layer>> {
        self.layer.clone().map(|gate| gate as Arc<dyn Layer>)
    }
}

/// The bounds and what counts against them.
struct Gate {
    max_concurrent_requests: usize,
    max_queued_tokens: usize,
    queued_tokens: QueuedTokens,
    in_flight: Arc<InFlight>,
}

struct InFlight {
    count: AtomicUsize,
    gauge: Gauge,
}

impl Layer for Gate {
    fn admit(&self, _request: &Parts) -> Result<Option<Guard>, Refusal> {
        if self.queued_tokens.get() >= self.max_queued_tokens {
            return Err(TOO_MANY_TOKENS);
        }
        let max = self.max_concurrent_requests;
        let admitted =
            self.in_flight
                .count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                });
        match admitted {
            Ok(_) => {
                self.in_flight.gauge.inc();
                Ok(Some(Box::new(Permit(self.in_flight.clone()))))
            }
            Err(_) => Err(TOO_MANY_REQUESTS),
        }
    }
}

/// The right to run one request; dropping it makes room for another.
struct Permit(Arc<InFlight>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(requests: usize, tokens: usize, queued: &QueuedTokens) -> Gate {
        Gate {
            max_concurrent_requests: requests,
            max_queued_tokens: tokens,
            queued_tokens: queued.clone(),
            in_flight: Arc::new(InFlight {
                count: AtomicUsize::new(0),
                gauge: Gauge::default(),
            }),
        }
    }

    fn request() -> Parts {
        http::Request::get("/").body(()).unwrap().into_parts().0
    }

    #[test]
    fn concurrent_requests_are_bounded_and_permits_make_room_when_dropped() {
        let gate = gate(2, 100, &QueuedTokens::default());
        let first = gate.admit(&request()).unwrap();
        let second = gate.admit(&request()).unwrap();
        assert_eq!(gate.in_flight.gauge.get(), 2);
        assert_eq!(gate.admit(&request()).err(), Some(TOO_MANY_REQUESTS));
        assert_eq!(gate.in_flight.gauge.get(), 2, "a refusal takes no room");
        drop(first);
        let third = gate.admit(&request()).unwrap();
        drop((second, third));
        assert_eq!(gate.in_flight.count.load(Ordering::Acquire), 0);
        assert_eq!(gate.in_flight.gauge.get(), 0);
    }

    #[test]
    fn a_full_inference_queue_refuses_new_requests() {
        let queued = QueuedTokens::default();
        let gate = gate(10, 500, &queued);
        queued.add(499);
        let admitted = gate.admit(&request()).unwrap();
        queued.add(1);
        assert_eq!(gate.admit(&request()).err(), Some(TOO_MANY_TOKENS));
        queued.sub(500);
        assert!(gate.admit(&request()).is_ok());
        drop(admitted);
    }
}
