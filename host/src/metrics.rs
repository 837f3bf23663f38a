//! Prometheus metrics: one process-wide registry, rendered in the text exposition format (version 0.0.4) and
//! served at `GET /metrics` on the `--metrics-listen` address.
//!
//! Hand-rolled rather than a metrics crate: seven fixed families with bounded label sets need no dynamic
//! registration. Each family group sits behind its own mutex; an update is a few integer additions, far cheaper
//! than the request or inference it describes, and a scrape sees every histogram's buckets, sum and count from
//! the same moment.

mod endpoint;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::Method;

pub use endpoint::serve;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(metrics: &Metrics, prefix: &str) -> Vec<String> {
        metrics
            .render()
            .lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn histogram_buckets_are_upper_bounds_and_cumulative() {
        let mut histogram = Histogram::new(&[0.01, 0.1, 1.0]);
        for value in [0.005, 0.01, 0.0100001, 0.5, 3.0] {
            histogram.observe(value);
        }
        let mut out = String::new();
        histogram.write(&mut out, "h", "route=\"/\"").unwrap();
        let expected = [
            "h_bucket{route=\"/\",le=\"0.01\"} 2",
            "h_bucket{route=\"/\",le=\"0.1\"} 3",
            "h_bucket{route=\"/\",le=\"1\"} 4",
            "h_bucket{route=\"/\",le=\"+Inf\"} 5",
        ];
        let written: Vec<&str> = out.lines().collect();
        assert_eq!(written[..4], expected);
        let sum: f64 = written[4]
            .strip_prefix("h_sum{route=\"/\"} ")
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 3.5250001).abs() < 1e-9, "{sum}");
        assert_eq!(written[5], "h_count{route=\"/\"} 5");

        let mut out = String::new();
        Histogram::new(&[1.0]).write(&mut out, "h", "").unwrap();
        assert_eq!(
            out,
            "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n"
        );
    }

    #[test]
    fn latency_buckets_cover_milliseconds_to_seconds() {
        assert!(LATENCY_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(BATCH_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(LATENCY_BUCKETS.first(), Some(&0.001));
        assert!(LATENCY_BUCKETS.iter().filter(|&&b| b < 0.1).count() >= 5);
    }

    #[test]
    fn every_family_is_declared_and_unlabelled_ones_start_at_zero() {
        let metrics = Metrics::default();
        let text = metrics.render();
        for (name, kind) in [
            ("sbert_http_requests_total", "counter"),
            ("sbert_http_request_duration_seconds", "histogram"),
            ("sbert_inference_duration_seconds", "histogram"),
            ("sbert_inference_batch_size", "histogram"),
            ("sbert_tokens_processed_total", "counter"),
            ("sbert_cache_responses_total", "counter"),
            ("sbert_model_load_seconds", "gauge"),
        ] {
            let declared = format!("# TYPE {name} {kind}");
            assert!(text.lines().any(|line| line == declared), "{name}");
        }
        assert!(text.contains("\nsbert_inference_batch_size_count 0\n"));
        assert!(text.contains("\nsbert_tokens_processed_total 0\n"));
        for status in CACHE_STATUSES {
            assert!(text.contains(&format!(
                "\nsbert_cache_responses_total{{status=\"{status}\"}} 0\n"
            )));
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let metrics = Metrics::default();
        let ms = Duration::from_millis(3);
        metrics.record_request(&Method::GET, "/v1/encode", 200, ms, Some("MISS"));
        metrics.record_request(&Method::GET, "/v1/encode/", 200, ms, Some("HIT"));
        metrics.record_request(&Method::GET, "/v1/encode", 401, ms, None);
        metrics.record_request(
            &Method::POST,
            "/v1/encode/multiple_encode",
            200,
            ms,
            Some("PARTIAL"),
        );
        metrics.record_request(&Method::GET, "/", 200, ms, None);
        metrics.record_request(&Method::GET, "/v1/no-such-route", 404, ms, None);
        metrics.record_request(&Method::GET, "/v1/encode", 200, ms, Some("STALE"));

        assert_eq!(
            lines(&metrics, "sbert_http_requests_total{"),
            [
                "sbert_http_requests_total{route=\"/\",method=\"GET\",status=\"200\"} 1",
                "sbert_http_requests_total{route=\"/v1/encode\",method=\"GET\",status=\"200\"} 3",
                "sbert_http_requests_total{route=\"/v1/encode\",method=\"GET\",status=\"401\"} 1",
                "sbert_http_requests_total{route=\"/v1/encode\",method=\"POST\",status=\"200\"} 1",
                "sbert_http_requests_total{route=\"other\",method=\"GET\",status=\"404\"} 1",
            ]
        );
        assert_eq!(
            lines(&metrics, "sbert_http_request_duration_seconds_count"),
            [
                "sbert_http_request_duration_seconds_count{route=\"/\"} 1",
                "sbert_http_request_duration_seconds_count{route=\"/v1/encode\"} 5",
                "sbert_http_request_duration_seconds_count{route=\"other\"} 1",
            ]
        );
        assert!(metrics.render().contains(
            "sbert_http_request_duration_seconds_bucket{route=\"/v1/encode\",le=\"0.0025\"} 0\n\
             sbert_http_request_duration_seconds_bucket{route=\"/v1/encode\",le=\"0.005\"} 5\n"
        ));
        // An unknown X-Cache value is not counted.
        assert_eq!(
            lines(&metrics, "sbert_cache_responses_total{"),
            [
                "sbert_cache_responses_total{status=\"HIT\"} 1",
                "sbert_cache_responses_total{status=\"MISS\"} 1",
                "sbert_cache_responses_total{status=\"PARTIAL\"} 1",
            ]
        );
    }

    #[test]
    fn route_labels_are_learned_from_successes_and_capped() {
        let mut routes = RouteLabels::default();
        // Failures and preflights in an unknown family do not make it a label.
        assert_eq!(routes.label(&Method::GET, "/v1/stray-1", 404), "other");
        assert_eq!(routes.label(&Method::GET, "/docs", 401), "other");
        assert_eq!(routes.label(&Method::OPTIONS, "/anything", 204), "other");
        assert_eq!(routes.label(&Method::GET, "/anything", 404), "other");
        // A success does; later failures in the family keep its label.
        assert_eq!(routes.label(&Method::GET, "//docs/", 200), "/docs");
        assert_eq!(
            routes.label(&Method::GET, "/docs/swagger-ui.css", 304),
            "/docs/swagger-ui.css"
        );
        assert_eq!(routes.label(&Method::POST, "/docs", 405), "/docs");
        assert_eq!(
            routes.label(
                &Method::GET,
                "/v1/models/sentence-transformers/all-MiniLM-L6-v2",
                200
            ),
            "/v1/models"
        );
        assert_eq!(
            routes.label(&Method::GET, "/v1/models/unknown", 404),
            "/v1/models"
        );

        for n in routes.0.len()..MAX_ROUTES {
            assert_eq!(
                routes.label(&Method::GET, &format!("/f{n}"), 200),
                format!("/f{n}")
            );
        }
        assert_eq!(routes.label(&Method::GET, "/one-too-many", 200), "other");
        assert_eq!(routes.label(&Method::GET, "/docs", 200), "/docs");
        assert_eq!(routes.0.len(), MAX_ROUTES);
    }

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "other"
        );
    }

    #[test]
    fn inference_and_model_loads_are_recorded() {
        let metrics = Metrics::default();
        metrics.record_inference(1, 9, Duration::from_millis(4));
        metrics.record_inference(3, 30, Duration::from_millis(40));
        metrics.record_model_load("all-minilm-l6-v2", Duration::from_millis(1500));
        metrics.record_model_load("q\"uote\\d", Duration::from_millis(250));

        assert_eq!(
            lines(&metrics, "sbert_tokens_processed_total "),
            ["sbert_tokens_processed_total 39"]
        );
        assert_eq!(
            lines(&metrics, "sbert_inference_batch_size_"),
            [
                "sbert_inference_batch_size_bucket{le=\"1\"} 1",
                "sbert_inference_batch_size_bucket{le=\"2\"} 1",
                "sbert_inference_batch_size_bucket{le=\"4\"} 2",
                "sbert_inference_batch_size_bucket{le=\"8\"} 2",
                "sbert_inference_batch_size_bucket{le=\"16\"} 2",
                "sbert_inference_batch_size_bucket{le=\"32\"} 2",
                "sbert_inference_batch_size_bucket{le=\"64\"} 2",
                "sbert_inference_batch_size_bucket{le=\"128\"} 2",
                "sbert_inference_batch_size_bucket{le=\"256\"} 2",
                "sbert_inference_batch_size_bucket{le=\"+Inf\"} 2",
                "sbert_inference_batch_size_sum 4",
                "sbert_inference_batch_size_count 2",
            ]
        );
        assert_eq!(
            lines(&metrics, "sbert_inference_duration_seconds_count"),
            ["sbert_inference_duration_seconds_count 2"]
        );
        assert_eq!(
            lines(&metrics, "sbert_model_load_seconds{"),
            [
                "sbert_model_load_seconds{graph=\"all-minilm-l6-v2\"} 1.5",
                "sbert_model_load_seconds{graph=\"q\\\"uote\\\\d\"} 0.25",
            ]
        );
    }
}
