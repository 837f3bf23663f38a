//! The Prometheus registry every unit registers its metrics in (`prometheus-client`), rendered in the text
//! exposition format by the metrics unit. Handed to the units at start-up: no metric is a process-wide global.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::registry::{Metric, Registry};

/// Upper bounds, in seconds, for request, queue and inference latencies: a millisecond to ten seconds.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The app's metrics, shared by the units that record them and the endpoint that renders them.
#[derive(Clone, Default)]
pub struct MetricsRegistry(Arc<Mutex<Registry>>);

impl MetricsRegistry {
    /// Registers `metric` as `name` (without the `_total` suffix counters get) with its help text.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}
