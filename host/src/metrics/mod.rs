//! Prometheus metrics: one process-wide registry (`prometheus-client`), rendered in the text exposition format
//! (version 0.0.4) and served at `GET /metrics` on the `--metrics-listen` address.
//!
//! Names are generic (`http_…` for requests, `nn_…` for inference): the host serves any component, and the
//! component's own meaning lives in labels it configures (the counted response header).

mod endpoint;
mod routes;

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

pub use endpoint::serve;
use routes::{method_label, RouteLabels};

/// Upper bounds, in seconds, for request, queue and inference latencies: a millisecond to ten seconds.
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds for the rows of one model run.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Why a request was refused before it reached its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// `--max-concurrent-requests` were already running.
    ConcurrentRequests,
    /// `--max-queued-tokens` were already waiting for inference.
    QueuedTokens,
    /// The host is shutting down.
    Draining,
}

impl RefusalReason {
    fn label(self) -> &'static str {
        match self {
            Self::ConcurrentRequests => "max_concurrent_requests",
            Self::QueuedTokens => "max_queued_tokens",
            Self::Draining => "draining",
        }
    }
}

/// What a lookup in the HTTP cache found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpCacheLookup {
    /// A fresh stored answer, sent without running the component.
    Hit,
    /// None: the request went to the component.
    Miss,
}

impl HttpCacheLookup {
    fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Records one answered request; `counted` is the configured response header's (name, value), if the
/// response has it.
pub fn record_request(
    method: &Method,
    path: &str,
    status: u16,
    duration: Duration,
    counted: Option<(&str, &str)>,
) {
    METRICS.record_request(method, path, status, duration, counted);
}

/// Exports a counted header's values from zero, so that rates work from the first scrape.
pub fn declare_counted_header(name: &str, values: &[String]) {
    METRICS.declare_counted_header(name, values);
}

/// Records a request refused before reaching its component.
pub fn record_refusal(reason: RefusalReason) {
    METRICS.record_refusal(reason);
}

/// Records one lookup in the HTTP cache.
pub fn record_http_cache_lookup(result: HttpCacheLookup) {
    METRICS
        .http_cache_lookups
        .get_or_create(&ResultLabels {
            result: result.label(),
        })
        .inc();
}

/// The bytes the HTTP cache holds now.
pub fn set_http_cache_bytes(bytes: u64) {
    METRICS
        .http_cache_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// A request was admitted (`1`) or finished (`-1`).
pub fn add_in_flight(requests: i64) {
    METRICS.in_flight.inc_by(requests);
}

/// Tokens joined (positive) or left (negative) the inference queues.
pub fn add_queued_tokens(tokens: i64) {
    METRICS.queued_tokens.inc_by(tokens);
}

/// Records how long a row (or a job that runs whole) waited in the inference queue.
pub fn record_queue_wait(waited: Duration) {
    METRICS.queue_wait.observe(waited.as_secs_f64());
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

/// Records one model run.
pub fn record_inference(run: &RunRecord) {
    METRICS.record_inference(run);
}

/// Records how long loading `graph` took at start-up.
pub fn record_model_load(graph: &str, duration: Duration) {
    METRICS.record_model_load(graph, duration);
}

/// Everything recorded so far, in the Prometheus text format.
pub fn render() -> String {
    METRICS.render()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeaderLabels {
    header: String,
    value: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphLabels {
    graph: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

struct Metrics {
    registry: Registry,
    routes: Mutex<RouteLabels>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    header_values: Family<HeaderLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    http_cache_lookups: Family<ResultLabels, Counter>,
    http_cache_bytes: Gauge,
    in_flight: Gauge,
    queued_tokens: Gauge,
    queue_wait: Histogram,
    inference_duration: Histogram,
    batch_size: Histogram,
    tokens: Counter,
    positions: Counter,
    model_load: Family<GraphLabels, Gauge<f64, AtomicU64>>,
    /// Copied from the log writer's own count when rendered.
    log_lines_dropped: Counter,
}

impl Metrics {
    fn new() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            routes: Mutex::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            header_values: Family::default(),
            refusals: Family::default(),
            http_cache_lookups: Family::default(),
            http_cache_bytes: Gauge::default(),
            in_flight: Gauge::default(),
            queued_tokens: Gauge::default(),
            queue_wait: latency_histogram(),
            inference_duration: latency_histogram(),
            batch_size: Histogram::new(BATCH_BUCKETS),
            tokens: Counter::default(),
            positions: Counter::default(),
            model_load: Family::default(),
            log_lines_dropped: Counter::default(),
        };
        // Exported from zero, so that a hit ratio is defined from the first scrape.
        for result in [HttpCacheLookup::Hit, HttpCacheLookup::Miss] {
            drop(metrics.http_cache_lookups.get_or_create(&ResultLabels {
                result: result.label(),
            }));
        }
        let mut registry = Registry::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route (path family), method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving a request to sending its response head, by route (path family)",
            metrics.request_duration.clone(),
        );
        registry.register(
            "http_response_header_values",
            "Responses by the value of the response header the component's manifest names",
            metrics.header_values.clone(),
        );
        registry.register(
            "http_requests_refused",
            "Requests refused before reaching their component, by reason",
            metrics.refusals.clone(),
        );
        registry.register(
            "http_cache_lookups",
            "Lookups in the HTTP cache (--http-cache-mib), by result: hit (answered from memory) or miss",
            metrics.http_cache_lookups.clone(),
        );
        registry.register(
            "http_cache_bytes",
            "Bytes the HTTP cache holds",
            metrics.http_cache_bytes.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests admitted and not yet answered",
            metrics.in_flight.clone(),
        );
        registry.register(
            "nn_queued_tokens",
            "Tokens (padding included) waiting for an inference session",
            metrics.queued_tokens.clone(),
        );
        registry.register(
            "nn_queue_wait_seconds",
            "Time a row waited for an inference session",
            metrics.queue_wait.clone(),
        );
        registry.register(
            "nn_inference_duration_seconds",
            "Time per model run",
            metrics.inference_duration.clone(),
        );
        registry.register(
            "nn_inference_batch_size",
            "Rows (sequences) per model run",
            metrics.batch_size.clone(),
        );
        registry.register(
            "nn_tokens_processed",
            "Tokens run through the model, padding excluded",
            metrics.tokens.clone(),
        );
        registry.register(
            "nn_positions_run",
            "Token positions run through the model, padding included (each run's rows times its longest row)",
            metrics.positions.clone(),
        );
        registry.register(
            "nn_model_load_seconds",
            "Seconds it took to load each graph at start-up",
            metrics.model_load.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because stderr did not keep up (serving never waits for the log)",
            metrics.log_lines_dropped.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    fn record_request(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        duration: Duration,
        counted: Option<(&str, &str)>,
    ) {
        let route = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .label(method, path, status);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method_label(method),
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabel { route })
            .observe(duration.as_secs_f64());
        // Only declared values are counted: label values must stay few.
        if let Some((header, value)) = counted {
            let labels = HeaderLabels {
                header: header.to_string(),
                value: value.to_string(),
            };
            if let Some(counter) = self.header_values.get(&labels) {
                counter.inc();
            }
        }
    }

    fn declare_counted_header(&self, name: &str, values: &[String]) {
        for value in values {
            // Creating the labelled counter is the point; the guard it returns is not needed.
            drop(self.header_values.get_or_create(&HeaderLabels {
                header: name.to_string(),
                value: value.clone(),
            }));
        }
    }

    fn record_refusal(&self, reason: RefusalReason) {
        self.refusals
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }

    fn record_inference(&self, run: &RunRecord) {
        self.inference_duration.observe(run.duration.as_secs_f64());
        self.batch_size.observe(run.rows as f64);
        self.tokens.inc_by(run.tokens);
        self.positions.inc_by(run.positions);
    }

    fn record_model_load(&self, graph: &str, duration: Duration) {
        self.model_load
            .get_or_create(&GraphLabels {
                graph: graph.to_string(),
            })
            .set(duration.as_secs_f64());
    }

    fn render(&self) -> String {
        self.log_lines_dropped
            .inner()
            .store(crate::log::dropped_lines(), Ordering::Relaxed);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(metrics: &Metrics, prefix: &str) -> Vec<String> {
        let mut lines: Vec<String> = metrics
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
        let metrics = Metrics::new();
        metrics.record_request(&Method::GET, "/", 200, Duration::from_millis(1), None);
        metrics.declare_counted_header("x-cache", &["HIT".into()]);
        metrics.record_refusal(RefusalReason::Draining);
        metrics.record_model_load("g", Duration::from_secs(1));
        let text = metrics.render();
        for (name, kind) in [
            ("http_requests_total", "counter"),
            ("http_request_duration_seconds", "histogram"),
            ("http_response_header_values_total", "counter"),
            ("http_requests_refused_total", "counter"),
            ("http_cache_lookups_total", "counter"),
            ("http_cache_bytes", "gauge"),
            ("http_requests_in_flight", "gauge"),
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
    fn requests_are_counted_by_route_method_and_status_and_declared_header_values() {
        let metrics = Metrics::new();
        metrics.declare_counted_header("x-cache", &["HIT".into(), "MISS".into()]);
        let ms = Duration::from_millis(3);
        let hit = Some(("x-cache", "HIT"));
        metrics.record_request(&Method::GET, "/v1/encode", 200, ms, hit);
        metrics.record_request(&Method::GET, "/v1/encode/", 200, ms, hit);
        metrics.record_request(&Method::GET, "/v1/encode", 401, ms, None);
        metrics.record_request(&Method::POST, "/v1/encode/x", 200, ms, None);
        metrics.record_request(&Method::GET, "/v1/no-such-route", 404, ms, None);
        // A value the manifest does not declare is not counted.
        metrics.record_request(
            &Method::GET,
            "/v1/encode",
            200,
            ms,
            Some(("x-cache", "STALE")),
        );

        assert_eq!(
            lines(&metrics, "http_requests_total{"),
            [
                "http_requests_total{route=\"/v1/encode\",method=\"GET\",status=\"200\"} 3",
                "http_requests_total{route=\"/v1/encode\",method=\"GET\",status=\"401\"} 1",
                "http_requests_total{route=\"/v1/encode\",method=\"POST\",status=\"200\"} 1",
                "http_requests_total{route=\"other\",method=\"GET\",status=\"404\"} 1",
            ]
        );
        assert_eq!(
            lines(&metrics, "http_request_duration_seconds_count"),
            [
                "http_request_duration_seconds_count{route=\"/v1/encode\"} 5",
                "http_request_duration_seconds_count{route=\"other\"} 1",
            ]
        );
        // 3 ms is above the 2.5 ms bound and within the 5 ms one.
        assert!(metrics.render().contains(
            "http_request_duration_seconds_bucket{route=\"/v1/encode\",le=\"0.0025\"} 0\n\
             http_request_duration_seconds_bucket{route=\"/v1/encode\",le=\"0.005\"} 5\n"
        ));
        assert_eq!(
            lines(&metrics, "http_response_header_values_total{"),
            [
                "http_response_header_values_total{header=\"x-cache\",value=\"HIT\"} 2",
                "http_response_header_values_total{header=\"x-cache\",value=\"MISS\"} 0",
            ]
        );
    }

    #[test]
    fn inference_and_model_loads_are_recorded() {
        let metrics = Metrics::new();
        let run = |rows, tokens, positions, ms| RunRecord {
            rows,
            tokens,
            positions,
            duration: Duration::from_millis(ms),
        };
        metrics.record_inference(&run(1, 9, 9, 4));
        metrics.record_inference(&run(3, 30, 36, 40));
        metrics.record_model_load("q\"uote", Duration::from_millis(250));
        assert_eq!(
            lines(&metrics, "nn_tokens_processed_total "),
            ["nn_tokens_processed_total 39"]
        );
        assert_eq!(
            lines(&metrics, "nn_positions_run_total "),
            ["nn_positions_run_total 45"]
        );
        assert!(metrics
            .render()
            .contains("nn_inference_batch_size_bucket{le=\"2\"} 1\nnn_inference_batch_size_bucket{le=\"4\"} 2\n"));
        assert_eq!(
            lines(&metrics, "nn_model_load_seconds{"),
            ["nn_model_load_seconds{graph=\"q\\\"uote\"} 0.25"]
        );
    }
}
