//! Prometheus metrics: one process-wide registry, rendered in the text exposition format (version 0.0.4) and
//! served at `GET /metrics` on the `--metrics-listen` address.
//!
//! Hand-rolled rather than a metrics crate: seven fixed families with bounded label sets need no dynamic
//! registration. Each family group sits behind its own mutex; an update is a few integer additions, far cheaper
//! than the request or inference it describes, and a scrape sees every histogram's buckets, sum and count from
//! the same moment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::Method;

/// Upper bounds, in seconds, for request and inference latencies: a millisecond to ten seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds for the rows of one ONNX run.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The `X-Cache` verdicts that are counted; they are always exported, from zero.
const CACHE_STATUSES: [&str; 3] = ["HIT", "MISS", "PARTIAL"];

/// How many path families may become route labels; later ones are counted as [`OTHER_ROUTE`].
const MAX_ROUTES: usize = 32;

/// The route label of requests outside the known path families.
const OTHER_ROUTE: &str = "other";

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Records one model run: `batch_rows` rows (sequences), `tokens` real tokens among them (the sum of the
/// attention mask, padding excluded), and how long the run took.
pub fn record_inference(batch_rows: usize, tokens: u64, duration: Duration) {
    METRICS.record_inference(batch_rows, tokens, duration);
}

/// Records how long loading `graph` took at start-up.
pub fn record_model_load(graph: &str, duration: Duration) {
    METRICS.record_model_load(graph, duration);
}

/// Records one answered request; `cache` is the component's `X-Cache` response header, if any.
pub fn record_request(
    method: &Method,
    path: &str,
    status: u16,
    duration: Duration,
    cache: Option<&str>,
) {
    METRICS.record_request(method, path, status, duration, cache);
}

/// Everything recorded so far, in the Prometheus text format.
pub fn render() -> String {
    METRICS.render()
}

#[derive(Default)]
struct Metrics {
    http: Mutex<HttpMetrics>,
    inference: Mutex<InferenceMetrics>,
    /// Counts by position in [`CACHE_STATUSES`].
    cache_responses: Mutex<[u64; CACHE_STATUSES.len()]>,
    /// Seconds, by graph name.
    model_load: Mutex<BTreeMap<String, f64>>,
}

#[derive(Default)]
struct HttpMetrics {
    routes: RouteLabels,
    /// Requests by (route, method, status).
    requests: BTreeMap<(String, &'static str, u16), u64>,
    /// Latency to the response head, by route.
    durations: BTreeMap<String, Histogram>,
}

struct InferenceMetrics {
    duration: Histogram,
    batch_size: Histogram,
    tokens: u64,
}

impl Default for InferenceMetrics {
    fn default() -> Self {
        Self {
            duration: Histogram::new(LATENCY_BUCKETS),
            batch_size: Histogram::new(BATCH_BUCKETS),
            tokens: 0,
        }
    }
}

impl Metrics {
    fn record_inference(&self, batch_rows: usize, tokens: u64, duration: Duration) {
        let mut inference = lock(&self.inference);
        inference.duration.observe(duration.as_secs_f64());
        inference.batch_size.observe(batch_rows as f64);
        inference.tokens += tokens;
    }

    fn record_model_load(&self, graph: &str, duration: Duration) {
        lock(&self.model_load).insert(graph.to_string(), duration.as_secs_f64());
    }

    fn record_request(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        duration: Duration,
        cache: Option<&str>,
    ) {
        let mut http = lock(&self.http);
        let route = http.routes.label(method, path, status);
        *http
            .requests
            .entry((route.clone(), method_label(method), status))
            .or_default() += 1;
        http.durations
            .entry(route)
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(duration.as_secs_f64());
        drop(http);
        if let Some(index) = cache.and_then(|c| CACHE_STATUSES.iter().position(|s| *s == c)) {
            lock(&self.cache_responses)[index] += 1;
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn write(&self, out: &mut impl Write) -> fmt::Result {
        let http = lock(&self.http);
        header(
            out,
            "sbert_http_requests_total",
            "counter",
            "HTTP requests answered, by route (path family), method and status.",
        )?;
        for ((route, method, status), count) in &http.requests {
            writeln!(
                out,
                "sbert_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                escape(route)
            )?;
        }
        let name = "sbert_http_request_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "Time from receiving a request to sending its response head, by route (path family).",
        )?;
        for (route, histogram) in &http.durations {
            histogram.write(out, name, &format!("route=\"{}\"", escape(route)))?;
        }
        drop(http);

        let inference = lock(&self.inference);
        let name = "sbert_inference_duration_seconds";
        header(out, name, "histogram", "Time per model run.")?;
        inference.duration.write(out, name, "")?;
        let name = "sbert_inference_batch_size";
        header(out, name, "histogram", "Rows (sequences) per model run.")?;
        inference.batch_size.write(out, name, "")?;
        let name = "sbert_tokens_processed_total";
        header(
            out,
            name,
            "counter",
            "Tokens run through the model, padding excluded.",
        )?;
        writeln!(out, "{name} {}", inference.tokens)?;
        drop(inference);

        let name = "sbert_cache_responses_total";
        header(
            out,
            name,
            "counter",
            "Responses by the component's X-Cache verdict.",
        )?;
        let cache = *lock(&self.cache_responses);
        for (status, count) in CACHE_STATUSES.iter().zip(cache) {
            writeln!(out, "{name}{{status=\"{status}\"}} {count}")?;
        }

        let name = "sbert_model_load_seconds";
        header(
            out,
            name,
            "gauge",
            "Seconds it took to load each graph at start-up.",
        )?;
        for (graph, seconds) in lock(&self.model_load).iter() {
            writeln!(out, "{name}{{graph=\"{}\"}} {seconds}", escape(graph))?;
        }
        Ok(())
    }
}

/// Route labels: bounded, and never a raw path.
///
/// The manifest's route patterns say little (sbert-service has the single route `/...`), and raw paths would let
/// any client mint label values. So the label is the request's path family, its first two segments
/// (`/v1/encode` for `/v1/encode/multiple_encode/`, `/` for `/`), and a family becomes a label only after the
/// component has answered a request in it successfully (2xx or 3xx, OPTIONS excluded: CORS preflights succeed
/// on any path). Requests in other families, such as probes of unknown paths, and every family beyond the first
/// [`MAX_ROUTES`], are labelled [`OTHER_ROUTE`].
#[derive(Default)]
struct RouteLabels(BTreeSet<String>);

impl RouteLabels {
    fn label(&mut self, method: &Method, path: &str, status: u16) -> String {
        let family = path_family(path);
        if self.0.contains(&family) {
            return family;
        }
        let served = (200..400).contains(&status) && method != Method::OPTIONS;
        if served && self.0.len() < MAX_ROUTES {
            self.0.insert(family.clone());
            return family;
        }
        OTHER_ROUTE.to_string()
    }
}

/// The first two non-empty segments of `path`.
fn path_family(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(2).collect();
    format!("/{}", segments.join("/"))
}

/// The method label: the standard methods by name, extension methods (unbounded) as `other`.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    STANDARD
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("other")
}

/// A histogram with fixed upper bounds; counts are per bucket and made cumulative when written.
struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then the overflow (`+Inf`) count.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        // Buckets are `le` (less than or equal): the first bound not below the value.
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.counts[bucket] += 1;
        self.sum += value;
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples; `labels` is `name="value",...` or empty.
    fn write(&self, out: &mut impl Write, name: &str, labels: &str) -> fmt::Result {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        let bounds = self.bounds.iter().map(|b| b.to_string());
        for (le, count) in bounds.chain(["+Inf".to_string()]).zip(&self.counts) {
            cumulative += count;
            writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{le}\"}} {cumulative}"
            )?;
        }
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        writeln!(out, "{name}_sum{labels} {}", self.sum)?;
        writeln!(out, "{name}_count{labels} {cumulative}")
    }
}

fn header(out: &mut impl Write, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// A poisoned lock only means a panic elsewhere mid-update of plain counters; keep counting.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
