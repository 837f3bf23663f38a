//! Admission control: a request runs only if the host has room for it, and is refused at once otherwise,
//! before an instance of its component is created. Room is two bounds: requests in flight
//! (`--max-concurrent-requests`) and tokens waiting for inference (`--max-queued-tokens`). While the host
//! drains for shutdown, every new request is refused.
//!
//! A [`Permit`] is held for as long as the request's instance lives (including streaming its body after the
//! response head), so the bound on permits is also the bound on live instances, which sizes the instance pool
//! ([`crate::engine`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::metrics::{self, RefusalReason};

/// The bounds, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Requests that may run at once.
    pub max_concurrent_requests: usize,
    /// Inference tokens that may be waiting when a request is admitted.
    pub max_queued_tokens: usize,
}

/// The host's admission state, shared by every connection.
pub struct Admission {
    limits: AdmissionLimits,
    in_flight: AtomicUsize,
    draining: AtomicBool,
    /// Tokens waiting for inference now.
    queued_tokens: fn() -> usize,
    /// Signalled whenever a permit is released.
    released: Notify,
}

impl Admission {
    /// `queued_tokens` reports the tokens waiting for inference.
    pub fn new(limits: AdmissionLimits, queued_tokens: fn() -> usize) -> Arc<Self> {
        Arc::new(Self {
            limits,
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            queued_tokens,
            released: Notify::new(),
        })
    }

    /// A permit to run one request, or why there is no room for it.
    pub fn admit(self: &Arc<Self>) -> Result<Permit, RefusalReason> {
        if self.draining.load(Ordering::Acquire) {
            return Err(RefusalReason::Draining);
        }
        if (self.queued_tokens)() >= self.limits.max_queued_tokens {
            return Err(RefusalReason::QueuedTokens);
        }
        let max = self.limits.max_concurrent_requests;
        match self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            }) {
            Ok(_) => {
                metrics::add_in_flight(1);
                Ok(Permit(self.clone()))
            }
            Err(_) => Err(RefusalReason::ConcurrentRequests),
        }
    }

    /// Refuses every request from now on; returns how many are still running.
    pub fn start_draining(&self) -> usize {
        self.draining.store(true, Ordering::Release);
        self.in_flight()
    }

    /// Whether the host is draining for shutdown.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Resolves once no request is running.
    pub async fn idle(&self) {
        loop {
            let released = self.released.notified();
            if self.in_flight() == 0 {
                return;
            }
            released.await;
        }
    }
}

/// The right to run one request; dropping it makes room for another.
pub struct Permit(Arc<Admission>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        metrics::add_in_flight(-1);
        self.0.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn limits(requests: usize, tokens: usize) -> AdmissionLimits {
        AdmissionLimits {
            max_concurrent_requests: requests,
            max_queued_tokens: tokens,
        }
    }

    fn empty_queue() -> usize {
        0
    }

    #[test]
    fn concurrent_requests_are_bounded_and_permits_make_room_when_dropped() {
        let admission = Admission::new(limits(2, 100), empty_queue);
        let first = admission.admit().unwrap();
        let second = admission.admit().unwrap();
        assert_eq!(admission.in_flight(), 2);
        assert_eq!(
            admission.admit().err(),
            Some(RefusalReason::ConcurrentRequests)
        );
        assert_eq!(admission.in_flight(), 2, "a refusal takes no room");
        drop(first);
        let third = admission.admit().unwrap();
        drop((second, third));
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn a_full_inference_queue_refuses_new_requests() {
        static QUEUED: AtomicUsize = AtomicUsize::new(0);
        fn queued() -> usize {
            QUEUED.load(Ordering::Relaxed)
        }
        let admission = Admission::new(limits(10, 500), queued);
        QUEUED.store(499, Ordering::Relaxed);
        let admitted = admission.admit().unwrap();
        QUEUED.store(500, Ordering::Relaxed);
        assert_eq!(admission.admit().err(), Some(RefusalReason::QueuedTokens));
        QUEUED.store(0, Ordering::Relaxed);
        assert!(admission.admit().is_ok());
        drop(admitted);
    }

    #[tokio::test]
    async fn draining_refuses_everything_and_idle_waits_for_running_requests() {
        let admission = Admission::new(limits(10, 100), empty_queue);
        let running = admission.admit().unwrap();
        assert_eq!(admission.start_draining(), 1);
        assert_eq!(admission.admit().err(), Some(RefusalReason::Draining));

        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.idle().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a request is still running");
        drop(running);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("idle once the last request is done")
            .unwrap();
    }
}
