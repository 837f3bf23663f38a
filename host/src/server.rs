//! The HTTP side: accept connections, route each request to a component, run it in a fresh `Store`, turn
//! failures into JSON errors, log one JSON line per request, and drain connections on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    CONTENT_TYPE, HOST,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_util::task::TaskTracker;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::log;
use crate::manifest::Route;
use crate::metrics;
use crate::state::{ComponentServices, RequestState};
use crate::timer::{TokioTimer, HEADER_READ_TIMEOUT};

/// How long in-flight requests get to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The request-id header: taken from the client when usable, generated otherwise, and always returned.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The component's cache verdict, copied into the request log.
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The headers the component exposes to browsers on its own responses; host errors expose the same.
const CORS_EXPOSE_HEADERS: &str = "X-Cache, X-Request-Id, Server-Timing, ETag";

/// How often the engine's epoch advances; request deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(100);

/// What one request may use.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// How long the guest may run, from instantiation to the end of its response body; then it traps.
    pub timeout: Duration,
    /// Bytes each linear memory of the guest may grow to; a larger `memory.grow` fails (and the guest's
    /// allocator then traps, a 500).
    pub memory: usize,
}

/// A component ready to serve: pre-instantiated once, instantiated per request.
pub struct ServedComponent {
    pub id: String,
    pub pre: ProxyPre<RequestState>,
    pub services: ComponentServices,
}

/// A manifest route bound to its component.
struct RouteEntry {
    /// As written in the manifest, for Spin's `spin-*-route` headers.
    raw: String,
    route: Route,
    component: Arc<ServedComponent>,
}

/// Routes requests to components; routes are kept most specific first.
pub struct Router {
    routes: Vec<RouteEntry>,
    limits: RequestLimits,
}

impl Router {
    /// `routes`: (route as written in the manifest, component).
    pub fn new(routes: Vec<(String, Arc<ServedComponent>)>, limits: RequestLimits) -> Result<Self> {
        let mut routes = routes
            .into_iter()
            .map(|(raw, component)| {
                Ok(RouteEntry {
                    route: Route::parse(&raw)?,
                    raw,
                    component,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        routes.sort_by_key(|entry| std::cmp::Reverse(entry.route.specificity()));
        Ok(Self { routes, limits })
    }

    /// `(route, component id)` pairs, in the order they are matched.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &ServedComponent)> {
        self.routes
            .iter()
            .map(|entry| (entry.raw.as_str(), entry.component.as_ref()))
    }

    fn find(&self, path: &str) -> Option<(&RouteEntry, String)> {
        self.routes
            .iter()
            .find_map(|entry| Some((entry, entry.route.path_info(path)?.to_string())))
    }

    /// Handles one request; never fails: every failure becomes a JSON error response.
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        listen: SocketAddr,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let request_id = request_id(request.headers().get(&REQUEST_ID));
        let method = request.method().clone();
        let path = request.uri().path().to_string();

        let mut response = match self.find(&path) {
            None => {
                let message = format!("no route matches {path}");
                error_response(
                    &path,
                    StatusCode::NOT_FOUND,
                    &message,
                    json!({"code": 404, "name": "Not Found", "description": message}),
                )
            }
            Some((entry, path_info)) => {
                set_request_headers(&mut request, entry, &path_info, &request_id, listen, client);
                let log_id = request_id.to_str().unwrap_or_default().to_string();
                match call(&entry.component, request, self.limits, log_id).await {
                    Ok(response) => response,
                    Err(error) => {
                        log_error(
                            request_id.to_str().unwrap_or_default(),
                            &entry.component.id,
                            &error,
                        );
                        let (status, kind, message) = if is_timeout(&error) {
                            (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "timeout",
                                "the request took too long",
                            )
                        } else {
                            (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "internal",
                                "the request could not be completed",
                            )
                        };
                        error_response(
                            &path,
                            status,
                            message,
                            json!({"error": kind, "message": message}),
                        )
                    }
                }
            }
        };
        response.headers_mut().insert(REQUEST_ID, request_id);
        record_request(&method, &path, started.elapsed(), &response);
        response
    }
}

/// Runs `request` through a fresh instance of `component`. `request_id` names the request in the log line
/// of a failure after the response head, which only the log can report.
async fn call(
    component: &ServedComponent,
    request: Request<Incoming>,
    limits: RequestLimits,
    request_id: String,
) -> Result<Response<HyperOutgoingBody>> {
    let mut store = Store::new(
        component.pre.engine(),
        RequestState::new(&component.services, limits.memory),
    );
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(epoch_ticks(limits.timeout));
    store.epoch_deadline_trap();
    let (sender, receiver) = oneshot::channel();
    let request = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let response_out = store.data_mut().http().new_response_outparam(sender)?;
    let pre = component.pre.clone();

    // The guest runs in its own task: it may keep streaming the body after the response head is sent.
    let guest = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, response_out)
            .await
    });

    match receiver.await {
        Ok(Ok(response)) => {
            let component_id = component.id.clone();
            tokio::spawn(async move {
                let error = match guest.await {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => anyhow::Error::from(error)
                        .context("the component trapped after sending the response head"),
                    Err(join) => anyhow!(join)
                        .context("the component's task failed after sending the response head"),
                };
                log_error(&request_id, &component_id, &error);
            });
            Ok(response)
        }
        Ok(Err(code)) => bail!("the component failed the request: {code:?}"),
        // The outparam was dropped unset: the guest returned without answering, or trapped.
        Err(_) => match guest.await {
            Ok(Ok(())) => bail!("the component returned without sending a response"),
            Ok(Err(error)) => Err(anyhow::Error::from(error).context("the component trapped")),
            Err(join) => Err(anyhow!(join).context("the component's task failed")),
        },
    }
}

/// Whether `error` is a guest stopped at its deadline.
fn is_timeout(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt))
}

/// `timeout` in epoch ticks, rounded up (at least one).
fn epoch_ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own, for as long as the engine lives,
/// so that stores past their deadline trap even while the guest never yields.
pub fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}

/// Serves until `shutdown` resolves, then stops accepting and gives open requests [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listen = listener.local_addr()?;
    let connections = TaskTracker::new();
    let (stop, stopping) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Running out of file descriptors and the like: keep serving the connections we have.
                Err(error) => {
                    log_error("-", "-", &anyhow!(error).context("accept failed"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.handle(request, listen, client).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer)
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    drop(stop);
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        log::write(json!({
            "level": "warn",
            "message": format!("{} connection(s) still open after {SHUTDOWN_GRACE:?}; exiting", connections.len()),
        }));
    }
    Ok(())
}

/// The client's `X-Request-Id` if it is a short printable token, else a new UUID.
fn request_id(from_client: Option<&HeaderValue>) -> HeaderValue {
    from_client
        .filter(|id| {
            (1..=128).contains(&id.len()) && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::try_from(uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header")
        })
}

/// Adds what `spin up` tells a component about the request (the spin-sdk router reads `spin-path-info`)
/// and the request id. Client-sent headers of the same names are replaced, never trusted.
fn set_request_headers(
    request: &mut Request<Incoming>,
    entry: &RouteEntry,
    path_info: &str,
    request_id: &HeaderValue,
    listen: SocketAddr,
    client: SocketAddr,
) {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| listen.to_string(), str::to_string);
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let full_url = format!("http://{host}{path_and_query}");
    let component_route = entry.raw.strip_suffix("/...").unwrap_or(&entry.raw);
    let headers = request.headers_mut();
    for (name, value) in [
        ("spin-full-url", full_url.as_str()),
        ("spin-path-info", path_info),
        ("spin-matched-route", entry.raw.as_str()),
        ("spin-base-path", "/"),
        ("spin-raw-component-route", entry.raw.as_str()),
        ("spin-component-route", component_route),
        ("spin-client-addr", &client.to_string()),
    ] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers.insert(REQUEST_ID, request_id.clone());
}

/// A host-made error: in OpenAI's error shape on the OpenAI-compatible paths (clients there parse it),
/// `elsewhere` on the others; readable by browsers like the component's own responses.
fn error_response(
    path: &str,
    status: StatusCode,
    message: &str,
    elsewhere: serde_json::Value,
) -> Response<HyperOutgoingBody> {
    let openai = ["/v1/embeddings", "/v1/models"].iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    let body = if openai {
        let kind = if status.is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        };
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
    } else {
        elsewhere
    };
    let mut response = json_response(status, &body);
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(body.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Logs the one line per request and counts the request in the metrics.
fn record_request(
    method: &Method,
    path: &str,
    duration: Duration,
    response: &Response<HyperOutgoingBody>,
) {
    let header = |name: &HeaderName| response.headers().get(name).and_then(|v| v.to_str().ok());
    // The component's cache verdict (HIT, MISS, PARTIAL); absent on responses that used no cache.
    let cache = header(&X_CACHE);
    let status = response.status().as_u16();
    log::write(json!({
        "method": method.as_str(),
        "path": path,
        "status": status,
        "duration_ms": (duration.as_secs_f64() * 1e4).round() / 10.0,
        "request_id": header(&REQUEST_ID),
        "cache": cache.unwrap_or("-"),
    }));
    metrics::record_request(method, path, status, duration, cache);
}

/// Why a request failed, for operators: on stderr only, never in the response.
fn log_error(request_id: &str, component: &str, error: &anyhow::Error) {
    log::write(json!({
        "level": "error",
        "component": component,
        "request_id": request_id,
        "error": format!("{error:#}"),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wasmtime::component::{Component, Linker};
    use wasmtime::Config;

    #[test]
    fn request_ids_are_kept_when_sane_and_generated_otherwise() {
        let kept = request_id(Some(&HeaderValue::from_static("abc-123")));
        assert_eq!(kept, "abc-123");
        let long = "x".repeat(200);
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_str(&long).unwrap(),
            HeaderValue::from_static("a b"),
        ] {
            let generated = request_id(Some(&bad));
            assert_ne!(generated, bad);
            assert_eq!(generated.len(), 36);
        }
        assert_eq!(request_id(None).len(), 36);
    }

    /// A wasi:http handler component whose `handle` runs the core wasm `body` and never sets a response.
    fn handler(body: &str) -> String {
        format!(
            r#"(component
                (import "wasi:http/types@0.2.0" (instance $types
                    (export "incoming-request" (type (sub resource)))
                    (export "response-outparam" (type (sub resource)))))
                (alias export $types "incoming-request" (type $request))
                (alias export $types "response-outparam" (type $outparam))
                (core module $m (memory 1) (func (export "handle") (param i32 i32) {body}))
                (core instance $i (instantiate $m))
                (func $handle (param "request" (own $request)) (param "response-out" (own $outparam))
                    (canon lift (core func $i "handle")))
                (instance $handler
                    (export "incoming-request" (type $request))
                    (export "response-outparam" (type $outparam))
                    (export "handle" (func $handle)))
                (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#
        )
    }

    /// Serves `routes` (route, handler body) on a free port; send on the returned channel to shut down.
    async fn start(
        routes: &[(&str, &str)],
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let engine = Engine::new(Config::new().epoch_interruption(true)).unwrap();
        start_epoch_ticker(&engine).unwrap();
        let mut linker = Linker::new(&engine);
        crate::state::add_to_linker(&mut linker).unwrap();
        let services = ComponentServices::default();
        let routes = routes
            .iter()
            .map(|(route, body)| {
                let component = Component::new(&engine, handler(body)).unwrap();
                let pre = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
                let id = route.trim_matches(|c| c == '/' || c == '.').to_string();
                (
                    route.to_string(),
                    Arc::new(ServedComponent {
                        id,
                        pre,
                        services: services.clone(),
                    }),
                )
            })
            .collect();
        let limits = RequestLimits {
            timeout: Duration::from_millis(300),
            memory: 1 << 20,
        };
        let router = Arc::new(Router::new(routes, limits).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(serve(listener, router, async {
            let _ = stopped.await;
        }));
        (address, stop, server)
    }

    /// A GET over a plain TCP connection: (status, lower-cased head, body).
    async fn get(address: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn failures_are_json_errors_with_a_request_id() {
        let (address, stop, server) = start(&[
            ("/trap/...", "unreachable"),
            ("/v1/...", "unreachable"),
            ("/silent", ""),
            ("/spin", "(loop (br 0))"),
            // Spin (a 503) when growing memory succeeds, return unanswered (a 500) when it fails.
            (
                "/grow",
                "(if (i32.ne (memory.grow (i32.const 16)) (i32.const -1)) (then (loop (br 0))))",
            ),
            (
                "/fits",
                "(if (i32.ne (memory.grow (i32.const 8)) (i32.const -1)) (then (loop (br 0))))",
            ),
        ])
        .await;

        // A trap: a 500 with the safe body, nothing about the trap itself.
        let (status, head, body) = get(address, "/trap/x?q=1", "").await;
        assert_eq!(status, 500);
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
        assert!(
            head.contains(
                "access-control-expose-headers: x-cache, x-request-id, server-timing, etag"
            ),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": "internal", "message": "the request could not be completed"})
        );

        // The OpenAI-compatible paths get OpenAI's error shape; their neighbours keep the original one.
        let (status, _, body) = get(address, "/v1/embeddings", "").await;
        assert_eq!(status, 500);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"message": "the request could not be completed", "type": "server_error", "param": null, "code": null}})
        );
        let (_, _, body) = get(address, "/v1/models/all-minilm-l6-v2", "").await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["type"],
            "server_error"
        );
        let (_, _, body) = get(address, "/v1/embeddingsx", "").await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
            "internal"
        );
        let id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .expect("a generated request id");
        assert_eq!(id.len(), 36);

        // A handler that returns without answering, and a request id that is echoed.
        let (status, head, _) = get(address, "/silent", "X-Request-Id: trace-42\r\n").await;
        assert_eq!(status, 500);
        assert!(head.contains("x-request-id: trace-42"), "{head}");

        // A guest that never yields is stopped at its deadline.
        let (status, _, body) = get(address, "/spin", "").await;
        assert_eq!(status, 503);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "timeout");

        // Growing memory past the 1 MiB limit is refused; growing within it is granted.
        let (status, _, _) = get(address, "/grow", "").await;
        assert_eq!(status, 500);
        let (status, _, _) = get(address, "/fits", "").await;
        assert_eq!(status, 503);

        // No matching route: the host's own 404, in the original service's error shape.
        let (status, head, body) = get(address, "/silent/below", "").await;
        assert_eq!(status, 404);
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], 404);
        assert_eq!(body["description"], "no route matches /silent/below");

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(address).await.is_err(),
            "the listener is closed after shutdown"
        );
    }
}
