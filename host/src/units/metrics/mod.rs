//! Prometheus metrics of the requests (`http_…`), served with every other unit's at `GET /metrics` on the
//! `--metrics-listen` address, in the text exposition format.
//!
//! Names are generic (`http_…` for requests, each unit its own prefix): the host serves any component, and the
//! component's own meaning lives in labels it configures (the counted response header).

mod endpoint;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, Context, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tracing_appender::non_blocking::ErrorCounter;

use crate::http::{Answered, Layer};
use crate::telemetry::{MetricsRegistry, LATENCY_BUCKETS};
use crate::unit::{Configure, Nothing, Start, Unit};
use routes::{method_label, RouteLabels};

/// `sbert-host up` flags of the metrics.
#[derive(Debug, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// Also serve Prometheus metrics at `GET /metrics` on this address (a listener of its own; off by default).
    #[arg(long, value_name = "ADDRESS")]
    metrics_listen: Option<SocketAddr>,
}

pub struct Metrics {
    flags: Flags,
    /// The counted headers and their declared values.
    counted: Vec<(String, Vec<String>)>,
    layer: Option<Arc<RequestMetrics>>,
}

impl Unit for Metrics {
    const NAME: &'static str = "metrics";
    type Flags = Flags;
    type Tool = Nothing;
    type RuntimeConfig = Nothing;

    fn new(flags: Flags) -> Self {
        Self {
            flags,
            counted: Vec::new(),
            layer: None,
        }
    }

    fn configure(&mut self, ctx: &Configure<'_>, _: Vec<Nothing>, _: Nothing) -> Result<()> {
        if let Some(address) = self.flags.metrics_listen {
            if address == ctx.listen && address.port() != 0 {
                bail!("--metrics-listen {address} is also the application's --listen address; pick another port");
            }
        }
        // The counted header is the host's own key (the request log copies it too); its declared values are
        // exported from zero, so that rates work from the first scrape.
        self.counted = ctx
            .components
            .iter()
            .filter_map(|component| component.http.counted_header.as_ref())
            .map(|counted| (counted.name.to_string(), counted.values.clone()))
            .collect();
        Ok(())
    }

    fn start(&mut self, ctx: &mut Start<'_>) -> Result<()> {
        let metrics = RequestMetrics::new(ctx.log_lines_dropped.clone());
        metrics.register(ctx.metrics);
        for (header, values) in &self.counted {
            metrics.declare_counted_header(header, values);
        }
        let metrics = Arc::new(metrics);
        if let Some(address) = self.flags.metrics_listen {
            let listener = std::net::TcpListener::bind(address).with_context(|| {
                format!("cannot listen on {address} for metrics (pass another --metrics-listen)")
            })?;
            listener.set_nonblocking(true)?;
            let address = listener.local_addr()?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(endpoint::serve(
                listener,
                ctx.metrics.clone(),
                metrics.clone(),
            ));
            println!("Serving metrics http://{address}/metrics");
        }
        self.layer = Some(metrics);
        Ok(())
    }

    fn layer(&self) -> Option<Arc<dyn Layer>> {
        self.layer.clone().map(|layer| layer as Arc<dyn Layer>)
    }
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

/// What every answered request counts.
struct RequestMetrics {
    routes: Mutex<RouteLabels>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    header_values: Family<HeaderLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    /// Copied from the log writer's own count when rendered.
    log_lines_dropped: Counter,
    log_writer: ErrorCounter,
}

impl RequestMetrics {
    fn new(log_writer: ErrorCounter) -> Self {
        Self {
            routes: Mutex::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            header_values: Family::default(),
            refusals: Family::default(),
            log_lines_dropped: Counter::default(),
            log_writer,
        }
    }

    fn register(&self, registry: &MetricsRegistry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by route (path family), method and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving a request to sending its response head, by route (path family)",
            self.request_duration.clone(),
        );
        registry.register(
            "http_response_header_values",
            "Responses by the value of the response header the component's manifest names",
            self.header_values.clone(),
        );
        registry.register(
            "http_requests_refused",
            "Requests refused before reaching their component, by reason",
            self.refusals.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because stderr did not keep up (serving never waits for the log)",
            self.log_lines_dropped.clone(),
        );
    }

    /// Exports a counted header's values from zero.
    fn declare_counted_header(&self, name: &str, values: &[String]) {
        for value in values {
            // Creating the labelled counter is the point; the guard it returns is not needed.
            drop(self.header_values.get_or_create(&HeaderLabels {
                header: name.to_string(),
                value: value.clone(),
            }));
        }
    }

    /// Brings the values kept elsewhere up to date before a scrape.
    fn refresh(&self) {
        self.log_lines_dropped.inner().store(
            self.log_writer.dropped_lines() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Layer for RequestMetrics {
    fn record(&self, answered: &Answered<'_>) {
        let status = answered.status.as_u16();
        let route = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .label(answered.method, answered.path, status);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method_label(answered.method),
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabel { route })
            .observe(answered.duration.as_secs_f64());
        // Only declared values are counted: label values must stay few.
        if let Some((header, value)) = answered.counted {
            let labels = HeaderLabels {
                header: header.to_string(),
                value: value.to_string(),
            };
            if let Some(counter) = self.header_values.get(&labels) {
                counter.inc();
            }
        }
        if let Some(refusal) = answered.refused {
            self.refusals
                .get_or_create(&ReasonLabels {
                    reason: refusal.reason,
                })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Method, StatusCode};

    use super::*;
    use crate::http::Refusal;

    fn metrics() -> (RequestMetrics, MetricsRegistry) {
        let (writer, _guard) = tracing_appender::non_blocking(std::io::sink());
        let metrics = RequestMetrics::new(writer.error_counter());
        let registry = MetricsRegistry::default();
        metrics.register(&registry);
        (metrics, registry)
    }

    fn record(
        metrics: &RequestMetrics,
        method: Method,
        path: &str,
        status: u16,
        counted: Option<&str>,
    ) {
        metrics.record(&Answered {
            method: &method,
            path,
            status: StatusCode::from_u16(status).unwrap(),
            duration: Duration::from_millis(3),
            counted: counted.map(|value| ("x-cache", value)),
            refused: None,
        });
    }

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
        let (metrics, registry) = metrics();
        record(&metrics, Method::GET, "/", 200, None);
        metrics.declare_counted_header("x-cache", &["HIT".into()]);
        metrics.record(&Answered {
            method: &Method::GET,
            path: "/",
            status: StatusCode::SERVICE_UNAVAILABLE,
            duration: Duration::ZERO,
            counted: None,
            refused: Some(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "unavailable",
                message: "going away",
                reason: "draining",
            }),
        });
        let text = registry.render();
        for (name, kind) in [
            ("http_requests_total", "counter"),
            ("http_request_duration_seconds", "histogram"),
            ("http_response_header_values_total", "counter"),
            ("http_requests_refused_total", "counter"),
            ("log_lines_dropped_total", "counter"),
        ] {
            let declared = format!("# TYPE {name} {kind}");
            assert!(text.lines().any(|line| line == declared), "{name}: {text}");
        }
        assert_eq!(
            lines(&registry, "http_requests_refused_total{"),
            ["http_requests_refused_total{reason=\"draining\"} 1"]
        );
    }

    #[test]
    fn requests_are_counted_by_route_method_and_status_and_declared_header_values() {
        let (metrics, registry) = metrics();
        metrics.declare_counted_header("x-cache", &["HIT".into(), "MISS".into()]);
        record(&metrics, Method::GET, "/v1/encode", 200, Some("HIT"));
        record(&metrics, Method::GET, "/v1/encode/", 200, Some("HIT"));
        record(&metrics, Method::GET, "/v1/encode", 401, None);
        record(&metrics, Method::POST, "/v1/encode/x", 200, None);
        record(&metrics, Method::GET, "/v1/no-such-route", 404, None);
        // A value the manifest does not declare is not counted.
        record(&metrics, Method::GET, "/v1/encode", 200, Some("STALE"));

        assert_eq!(
            lines(&registry, "http_requests_total{"),
            [
                "http_requests_total{route=\"/v1/encode\",method=\"GET\",status=\"200\"} 3",
                "http_requests_total{route=\"/v1/encode\",method=\"GET\",status=\"401\"} 1",
                "http_requests_total{route=\"/v1/encode\",method=\"POST\",status=\"200\"} 1",
                "http_requests_total{route=\"other\",method=\"GET\",status=\"404\"} 1",
            ]
        );
        assert_eq!(
            lines(&registry, "http_request_duration_seconds_count"),
            [
                "http_request_duration_seconds_count{route=\"/v1/encode\"} 5",
                "http_request_duration_seconds_count{route=\"other\"} 1",
            ]
        );
        // 3 ms is above the 2.5 ms bound and within the 5 ms one.
        assert!(registry.render().contains(
            "http_request_duration_seconds_bucket{route=\"/v1/encode\",le=\"0.0025\"} 0\n\
             http_request_duration_seconds_bucket{route=\"/v1/encode\",le=\"0.005\"} 5\n"
        ));
        assert_eq!(
            lines(&registry, "http_response_header_values_total{"),
            [
                "http_response_header_values_total{header=\"x-cache\",value=\"HIT\"} 2",
                "http_response_header_values_total{header=\"x-cache\",value=\"MISS\"} 0",
            ]
        );
    }
}
