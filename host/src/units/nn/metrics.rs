//! What inference counts: one set for every graph of the app, registered by the unit at start-up and handed
//! to each graph's queue and sessions.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::telemetry::{MetricsRegistry, LATENCY_BUCKETS};

/// Upper bounds for the rows of one model run.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Tokens (padding within a job run whole included) waiting for an inference session, in every graph's
/// queue: what admission control bounds, and the `nn_queued_tokens` gauge itself.
#[derive(Clone, Debug, Default)]
pub struct QueuedTokens(Gauge);

impl QueuedTokens {
    pub fn get(&self) -> usize {
        usize::try_from(self.0.get()).unwrap_or(0)
    }

    pub fn add(&self, tokens: usize) {
        self.0.inc_by(i64::try_from(tokens).unwrap_or(i64::MAX));
    }

    pub fn sub(&self, tokens: usize) {
        self.0.dec_by(i64::try_from(tokens).unwrap_or(i64::MAX));
    }
}

/// One model run, as the metrics count it.
pub struct RunRecord {
    /// Rows (sequences) in the run.
    pub rows: usize,
    /// Real tokens among them: the sum of the attention mask, padding excluded.
    pub tokens: u64,
    /// Token positions the model ran: rows × the run's sequence length, padding included.
    pub positions: u64,
    pub duration: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphLabels {
    graph: String,
}

#[derive(Clone)]
pub struct NnMetrics {
    pub queued_tokens: QueuedTokens,
    queue_wait: Histogram,
    inference_duration: Histogram,
    batch_size: Histogram,
    tokens: Counter,
    positions: Counter,
    model_load: Family<GraphLabels, Gauge<f64, AtomicU64>>,
}

impl Default for NnMetrics {
    fn default() -> Self {
        Self {
            queued_tokens: QueuedTokens::default(),
            queue_wait: Histogram::new(LATENCY_BUCKETS),
            inference_duration: Histogram::new(LATENCY_BUCKETS),
            batch_size: Histogram::new(BATCH_BUCKETS),
            tokens: Counter::default(),
            positions: Counter::default(),
            model_load: Family::default(),
        }
    }
}

impl NnMetrics {
    pub fn register(&self, registry: &MetricsRegistry) {
        registry.register(
            "nn_queued_tokens",
            "Tokens (padding included) waiting for an inference session",
            self.queued_tokens.0.clone(),
        );
        registry.register(
            "nn_queue_wait_seconds",
            "Time a row waited for an inference session",
            self.queue_wait.clone(),
        );
        registry.register(
            "nn_inference_duration_seconds",
            "Time per model run",
            self.inference_duration.clone(),
        );
        registry.register(
            "nn_inference_batch_size",
            "Rows (sequences) per model run",
            self.batch_size.clone(),
        );
        registry.register(
            "nn_tokens_processed",
            "Tokens run through the model, padding excluded",
            self.tokens.clone(),
        );
        registry.register(
            "nn_positions_run",
            "Token positions run through the model, padding included (each run's rows times its longest row)",
            self.positions.clone(),
        );
        registry.register(
            "nn_model_load_seconds",
            "Seconds it took to load each graph at start-up",
            self.model_load.clone(),
        );
    }

    /// How long a row (or a job that runs whole) waited in the inference queue.
    pub fn queue_wait(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    pub fn inference(&self, run: &RunRecord) {
        self.inference_duration.observe(run.duration.as_secs_f64());
        self.batch_size.observe(run.rows as f64);
        self.tokens.inc_by(run.tokens);
        self.positions.inc_by(run.positions);
    }

    pub fn model_load(&self, graph: &str, duration: Duration) {
        self.model_load
            .get_or_create(&GraphLabels {
                graph: graph.to_string(),
            })
            .set(duration.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(registry: &MetricsRegistry, prefix: &str) -> Vec<String> {
        let mut lines: Vec<String> = registry
            .render()
            .lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn every_family_is_declared_with_its_type() {
        let registry = MetricsRegistry::default();
        let metrics = NnMetrics::default();
        metrics.register(&registry);
        // A family without labels yet is not rendered.
        metrics.model_load("g", Duration::from_secs(1));
        let text = registry.render();
        for (name, kind) in [
            ("nn_queued_tokens", "gauge"),
            ("nn_queue_wait_seconds", "histogram"),
            ("nn_inference_duration_seconds", "histogram"),
            ("nn_inference_batch_size", "histogram"),
            ("nn_tokens_processed_total", "counter"),
            ("nn_positions_run_total", "counter"),
            ("nn_model_load_seconds", "gauge"),
        ] {
            let declared = format!("# TYPE {name} {kind}");
            assert!(text.lines().any(|line| line == declared), "{name}: {text}");
        }
        assert!(text.contains("\nnn_inference_batch_size_count 0\n"));
        assert!(text.contains("\nnn_tokens_processed_total 0\n"));
    }

    #[test]
    fn inference_and_model_loads_are_recorded() {
        let registry = MetricsRegistry::default();
        let metrics = NnMetrics::default();
        metrics.register(&registry);
        let run = |rows, tokens, positions, ms| RunRecord {
            rows,
            tokens,
            positions,
            duration: Duration::from_millis(ms),
        };
        metrics.inference(&run(1, 9, 9, 4));
        metrics.inference(&run(3, 30, 36, 40));
        metrics.model_load("q\"uote", Duration::from_millis(250));
        metrics.queued_tokens.add(12);
        metrics.queued_tokens.sub(5);
        assert_eq!(metrics.queued_tokens.get(), 7);
        assert_eq!(
            lines(&registry, "nn_tokens_processed_total "),
            ["nn_tokens_processed_total 39"]
        );
        assert_eq!(
            lines(&registry, "nn_positions_run_total "),
            ["nn_positions_run_total 45"]
        );
        assert_eq!(
            lines(&registry, "nn_queued_tokens "),
            ["nn_queued_tokens 7"]
        );
        assert!(registry
            .render()
            .contains("nn_inference_batch_size_bucket{le=\"2\"} 1\nnn_inference_batch_size_bucket{le=\"4\"} 2\n"));
        assert_eq!(
            lines(&registry, "nn_model_load_seconds{"),
            ["nn_model_load_seconds{graph=\"q\\\"uote\"} 0.25"]
        );
    }
}
