//! One request's way through the host: route it to a component, offer it to the units' layers (answered from
//! what one holds, refused, or let through), run it, answer for the component when it cannot, and record it.
//!
//! The router is called on the HTTP front thread (see `server`), which must never wait for a component:
//! everything from the layers' `before_call` to their after-calls, instantiation and inference included, runs on
//! the component runtime. Only what answers at once (stored answers, no route, refusals) is answered where it
//! came in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, HOST};
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tokio::runtime::Handle;

use super::answers::{AnswerStyle, HostAnswer};
use super::guest::{self, GuestRequestBody, RequestLimits, ServedComponent};
use super::headers::may_have_body;
use super::in_flight::InFlight;
use super::layer::{Answered, Guard, HostResponse, Layer, Refusal};
use super::read_to_end;
use super::request_log::{self, log_error, REQUEST_ID};
use crate::app::route::Route;

/// Every request while the host drains for shutdown: another instance will answer.
pub const DRAINING: Refusal = Refusal {
    status: StatusCode::SERVICE_UNAVAILABLE,
    kind: "unavailable",
    message: "the server is shutting down; retry, another instance will answer",
    reason: "draining",
};

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
    /// The units' layers, in the units' order.
    layers: Vec<Arc<dyn Layer>>,
    draining: AtomicBool,
    in_flight: Arc<InFlight>,
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
        layers: Vec<Arc<dyn Layer>>,
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
            layers,
            draining: AtomicBool::new(false),
            in_flight: Arc::default(),
            components,
        })
    }

    /// `(route, component id)` pairs, in the order they are matched.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &ServedComponent)> {
        self.routes
            .iter()
            .map(|entry| (entry.raw.as_str(), entry.component.as_ref()))
    }

    /// Refuses every request from now on; returns how many are still running.
    pub fn start_draining(&self) -> usize {
        self.draining.store(true, Ordering::Release);
        self.in_flight.count()
    }

    /// Requests admitted and still running (their instances alive).
    pub fn in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// Resolves once no admitted request is running.
    pub async fn idle(&self) {
        self.in_flight.idle().await;
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
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
    ) -> HostResponse {
        let started = Instant::now();
        let request_id = request_log::request_id(request.headers().get(&REQUEST_ID));
        let method = request.method().clone();
        let path = request.uri().path().to_string();

        let mut refused = None;
        let (mut response, counted_header) = match self.find(&path) {
            None => (
                AnswerStyle::default().answer(&path, HostAnswer::NoRoute),
                None,
            ),
            Some((entry, path_info)) => {
                let component = &entry.component;
                let (parts, body) = request.into_parts();
                let response = match self.stored_answer(&parts, component) {
                    Some(stored) => stored,
                    None => match self.admit(&parts) {
                        Err(refusal) => {
                            refused = Some(refusal);
                            refuse(&parts, component, &path, refusal)
                        }
                        Ok(held) => {
                            let request = Request::from_parts(parts, body);
                            let request = Admitted {
                                request,
                                held,
                                path_info,
                                request_id: &request_id,
                                listen,
                                client,
                            };
                            self.run(request, entry, &path).await
                        }
                    },
                };
                (response, component.counted_header.as_ref())
            }
        };
        response.headers_mut().insert(REQUEST_ID, request_id);
        let counted = counted_header.and_then(|name| {
            let value = response.headers().get(name)?.to_str().ok()?;
            Some((name.as_str(), value))
        });
        let answered = Answered {
            method: &method,
            path: &path,
            status: response.status(),
            duration: started.elapsed(),
            counted,
            refused,
        };
        request_log::record(&answered, response.headers().get(&REQUEST_ID));
        for layer in &self.layers {
            layer.record(&answered);
        }
        response
    }

    /// A layer's answer to `request` without its component; none while draining, when every request is
    /// refused.
    fn stored_answer(&self, request: &Parts, component: &ServedComponent) -> Option<HostResponse> {
        if self.draining() {
            return None;
        }
        self.layers
            .iter()
            .find_map(|layer| layer.answer(request, component.index))
    }

    /// What every layer holds while the request runs, or the first refusal.
    fn admit(&self, request: &Parts) -> Result<Vec<Guard>, Refusal> {
        if self.draining() {
            return Err(DRAINING);
        }
        let mut held = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            held.extend(layer.admit(request)?);
        }
        held.push(Box::new(self.in_flight.enter()));
        Ok(held)
    }

    /// Runs an admitted request through its component on the component runtime (the layers may act on its
    /// answer there), or answers for the component when it fails.
    async fn run<B: GuestRequestBody>(
        self: &Arc<Self>,
        admitted: Admitted<'_, B>,
        entry: &Arc<RouteEntry>,
        path: &str,
    ) -> HostResponse {
        let component = &entry.component;
        let log_id = admitted.request_id.to_str().unwrap_or_default().to_string();
        let Admitted {
            request,
            held,
            path_info,
            request_id,
            listen,
            client,
        } = admitted;
        let task = self.components.spawn({
            let (router, entry, request_id, log_id) = (
                Arc::clone(self),
                Arc::clone(entry),
                request_id.clone(),
                log_id.clone(),
            );
            async move {
                let (parts, body) = request.into_parts();
                // Taken before the host adds its own headers: the layers judge the client's request.
                let after_calls: Vec<_> = router
                    .layers
                    .iter()
                    .filter_map(|layer| layer.before_call(&parts))
                    .collect();
                let declares_body = may_have_body(&parts.headers);
                let (body, body_end) = read_to_end::watch(body);
                let mut request = Request::from_parts(parts, body);
                set_request_headers(
                    &mut request,
                    &entry,
                    &path_info,
                    &request_id,
                    listen,
                    client,
                );
                let mut answered =
                    guest::call(&entry.component, request, router.limits, log_id, held).await;
                for after_call in after_calls {
                    answered = match answered {
                        Ok(response) => after_call.after(response).await,
                        failed => failed,
                    };
                }
                // Answered without reading the body (a refusal before it): hyper closes the connection after
                // the answer, and a client told so does not send its next request on it.
                if let Ok(response) = &mut answered {
                    if declares_body && !body_end.reached() {
                        response
                            .headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                }
                answered
            }
        });
        // A task ends without an answer only if it panicked or the runtime is shutting down.
        let answered = task.await.unwrap_or_else(|join| {
            Err(anyhow!(join).context("the request's task on the component runtime failed"))
        });
        answered.unwrap_or_else(|error| {
            log_error(&log_id, &component.id, &error);
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
            Vec::new(),
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

/// An admitted request and what the component is told about it.
struct Admitted<'a, B> {
    request: Request<B>,
    /// What the layers hold while it runs.
    held: Vec<Guard>,
    path_info: String,
    request_id: &'a HeaderValue,
    listen: SocketAddr,
    client: SocketAddr,
}

/// The host's answer to a refused request.
fn refuse(
    request: &Parts,
    component: &ServedComponent,
    path: &str,
    refusal: Refusal,
) -> HostResponse {
    let mut refused = component.answers.answer(path, HostAnswer::Refused(refusal));
    // The refused request's body is never read, so the connection cannot carry another request: say so, or
    // the client's next request on it meets a closed socket.
    if may_have_body(&request.headers) {
        refused
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    refused
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
