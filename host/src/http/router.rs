//! One request's way through the host: route it to a component, answer it from the HTTP cache or admit it or
//! refuse it, run it, answer for the component when it cannot, and record it.
//!
//! The router is called on the HTTP front thread (see `server`), which must never wait for a component:
//! everything from the cache's `pending` to its `settle`, instantiation and inference included, runs on the
//! component runtime. Only what answers at once (cache hits, no route, refusals) is answered where it came in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING,
};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use tokio::runtime::Handle;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::admission::Admission;
use super::answers::{AnswerStyle, HostAnswer};
use super::cache::HttpCache;
use super::guest::{self, GuestRequestBody, RequestLimits, ServedComponent};
use super::request_log::{self, log_error, REQUEST_ID};
use crate::app::route::Route;
use crate::metrics;

/// A manifest route bound to its component.
struct RouteEntry {
    /// As written in the manifest, for Spin's `spin-*-route` headers.
    raw: String,
    route: Route,
    component: Arc<ServedComponent>,
}

/// Routes requests to components; routes are kept most specific first.
pub struct Router {
    /// Shared with the requests running on the component runtime.
    routes: Vec<Arc<RouteEntry>>,
    limits: RequestLimits,
    admission: Arc<Admission>,
    /// `None` when `--http-cache-mib` is 0.
    cache: Option<HttpCache>,
    /// The multi-thread runtime every admitted request runs on. wasi:nn waits for inference with
    /// `block_in_place`, which only a multi-thread runtime can do without stopping every other task.
    components: Handle,
}

impl Router {
    /// `routes`: (route as written in the manifest, component). `components`: the multi-thread runtime that
    /// runs them.
    pub fn new(
        routes: Vec<(String, Arc<ServedComponent>)>,
        limits: RequestLimits,
        admission: Arc<Admission>,
        cache: Option<HttpCache>,
        components: Handle,
    ) -> Result<Self> {
        let mut routes = routes
            .into_iter()
            .map(|(raw, component)| {
                Ok(Arc::new(RouteEntry {
                    route: Route::parse(&raw)?,
                    raw,
                    component,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        routes.sort_by_key(|entry| std::cmp::Reverse(entry.route.specificity()));
        Ok(Self {
            routes,
            limits,
            admission,
            cache,
            components,
        })
    }

    /// `(route, component id)` pairs, in the order they are matched.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &ServedComponent)> {
        self.routes
            .iter()
            .map(|entry| (entry.raw.as_str(), entry.component.as_ref()))
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    fn find(&self, path: &str) -> Option<(&Arc<RouteEntry>, String)> {
        self.routes
            .iter()
            .find_map(|entry| Some((entry, entry.route.path_info(path)?.to_string())))
    }

    /// Handles one request; never fails: every failure becomes a JSON error response.
    pub async fn handle<B: GuestRequestBody>(
        self: &Arc<Self>,
        request: Request<B>,
        listen: SocketAddr,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let request_id = request_log::request_id(request.headers().get(&REQUEST_ID));
        let method = request.method().clone();
        let path = request.uri().path().to_string();

        let (mut response, counted_header) = match self.find(&path) {
            None => (
                AnswerStyle::default().answer(&path, HostAnswer::NoRoute),
                None,
            ),
            Some((entry, path_info)) => {
                let component = &entry.component;
                let response = match self.cached(&request, component) {
                    Some(hit) => hit,
                    None => {
                        self.run(
                            request,
                            entry,
                            &path,
                            path_info,
                            &request_id,
                            listen,
                            client,
                        )
                        .await
                    }
                };
                (response, component.counted_header.as_ref())
            }
        };
        response.headers_mut().insert(REQUEST_ID, request_id);
        request_log::record(&method, &path, started.elapsed(), &response, counted_header);
        response
    }

    /// The HTTP cache's answer to `request`, if it has a fresh one; none while draining, when every request
    /// is refused.
    fn cached<B>(
        &self,
        request: &Request<B>,
        component: &ServedComponent,
    ) -> Option<Response<HyperOutgoingBody>> {
        if self.admission.is_draining() {
            return None;
        }
        self.cache
            .as_ref()?
            .lookup(request, &component.cache_hit_headers)
    }

    /// Admits `request` and runs it through its component on the component runtime (keeping the answer in the
    /// HTTP cache when it may), or answers for the component when there is no room for it or it fails.
    #[allow(clippy::too_many_arguments)] // one request's parts, all taken apart by `handle` already
    async fn run<B: GuestRequestBody>(
        self: &Arc<Self>,
        mut request: Request<B>,
        entry: &Arc<RouteEntry>,
        path: &str,
        path_info: String,
        request_id: &HeaderValue,
        listen: SocketAddr,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let component = &entry.component;
        let permit = match self.admission.admit() {
            Ok(permit) => permit,
            Err(reason) => {
                metrics::record_refusal(reason);
                let mut refused = component.answers.answer(path, HostAnswer::Refused(reason));
                // The refused request's body is never read, so the connection cannot carry another
                // request: say so, or the client's next request on it meets a closed socket.
                if may_have_body(request.headers()) {
                    refused
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                return refused;
            }
        };
        let log_id = request_id.to_str().unwrap_or_default();
        // From here on, everything runs on the component runtime, where the instance lives: the cache's
        // `pending` (taken before the host adds its own headers, for the cache judges the client's request),
        // the call, and keeping the answer in the HTTP cache when it may.
        let task = self.components.spawn({
            let (router, entry, request_id, log_id) = (
                Arc::clone(self),
                Arc::clone(entry),
                request_id.clone(),
                log_id.to_string(),
            );
            async move {
                let pending = router
                    .cache
                    .as_ref()
                    .and_then(|cache| cache.pending(&request));
                set_request_headers(
                    &mut request,
                    &entry,
                    &path_info,
                    &request_id,
                    listen,
                    client,
                );
                let answered = guest::call(
                    &entry.component,
                    request,
                    router.limits,
                    log_id,
                    Some(permit),
                )
                .await;
                match (answered, pending, &router.cache) {
                    (Ok(response), Some(pending), Some(cache)) => {
                        cache.settle(pending, response).await
                    }
                    (answered, _, _) => answered,
                }
            }
        });
        // A task ends without an answer only if it panicked or the runtime is shutting down.
        let answered = task.await.unwrap_or_else(|join| {
            Err(anyhow!(join).context("the request's task on the component runtime failed"))
        });
        answered.unwrap_or_else(|error| {
            log_error(log_id, &component.id, &error);
            let answer = if guest::is_timeout(&error) {
                HostAnswer::TimedOut
            } else {
                HostAnswer::Failed
            };
            component.answers.answer(path, answer)
        })
    }

    /// Runs the start-up check: `GET path` through the routed component, in-process, as a request from
    /// `listen` to itself would run. An error, unless the answer is 2xx, says what it was.
    pub async fn check(&self, path: &http::uri::PathAndQuery, listen: SocketAddr) -> Result<()> {
        let Some((entry, path_info)) = self.find(path.path()) else {
            bail!("startup_check {path}: no route matches it");
        };
        let mut request = Request::get(path.as_str())
            .header(HOST, listen.to_string())
            .body(Empty::<Bytes>::new())?;
        let request_id = request_log::request_id(None);
        set_request_headers(&mut request, entry, &path_info, &request_id, listen, listen);
        let component = &entry.component;
        let response = guest::call(
            component,
            request,
            self.limits,
            "startup-check".into(),
            None,
        )
        .await
        .with_context(|| format!("GET {path} failed"))?;
        let status = response.status();
        // Read whatever the status: a body dropped unread closes the stream the component may still be
        // writing it to, and the component reports that failure on stderr.
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        // One line, whatever the body's shape: compact JSON as it is, other text with its line breaks folded.
        let body = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(json) => json.to_string(),
            Err(_) => String::from_utf8_lossy(&body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        };
        bail!("GET {path} answered {status}: {body}")
    }
}

/// Whether a request declares a body (a `Content-Length` other than 0, or a chunked one).
pub(super) fn may_have_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// Adds what `spin up` tells a component about the request (the spin-sdk router reads `spin-path-info`)
/// and the request id. Client-sent headers of the same names are replaced, never trusted.
fn set_request_headers<B>(
    request: &mut Request<B>,
    entry: &RouteEntry,
    path_info: &str,
    request_id: &HeaderValue,
    listen: SocketAddr,
    client: SocketAddr,
) {
    // wasi:http needs an authority, which HTTP/1.0 clients and health checkers may not send.
    if request.uri().authority().is_none() && !request.headers().contains_key(HOST) {
        if let Ok(listen) = HeaderValue::from_str(&listen.to_string()) {
            request.headers_mut().insert(HOST, listen);
        }
    }
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
