//! The `--metrics-listen` endpoint: `GET /metrics` and nothing else, on a listener of its own so that
//! scrapes never queue behind (or count as) application requests.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;

use hyper_util::rt::TokioTimer;
use std::sync::Arc;

use super::RequestMetrics;
use crate::http::HEADER_READ_TIMEOUT;
use crate::telemetry::MetricsRegistry;

/// The Prometheus text exposition format.
const TEXT_FORMAT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Serves scrapes of `registry` until the runtime stops.
pub async fn serve(
    listener: TcpListener,
    registry: MetricsRegistry,
    requests: Arc<RequestMetrics>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: the application keeps serving; scrapes retry.
            Err(error) => {
                tracing::warn!(error = %error, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (registry, requests) = (registry.clone(), requests.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request| {
                let body = || {
                    requests.refresh();
                    registry.render()
                };
                let response = respond(&request, body);
                async move { Ok::<_, Infallible>(response) }
            });
            // A client that goes away mid-scrape is not worth a log line.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The answer to a scrape; `body` renders the metrics.
fn respond<B>(request: &Request<B>, body: impl FnOnce() -> String) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = text(StatusCode::OK, body());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, uri: &str) -> Response<Full<Bytes>> {
        let request = Request::builder().method(method).uri(uri).body(()).unwrap();
        respond(&request, || "metrics".into())
    }

    #[test]
    fn only_metrics_is_served() {
        let response = get(Method::GET, "/metrics");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], TEXT_FORMAT);
        assert_eq!(get(Method::GET, "/metrics?x=1").status(), StatusCode::OK);
        assert_eq!(get(Method::HEAD, "/metrics").status(), StatusCode::OK);
        for path in [
            "/",
            "/metrics/",
            "/metrics/extra",
            "/metricsx",
            "/v1/encode",
        ] {
            assert_eq!(
                get(Method::GET, path).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let post = get(Method::POST, "/metrics");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
    }
}
