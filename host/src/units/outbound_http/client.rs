//! The one HTTP client every instance's outbound requests go through: a connection pool (hyper-util's
//! pooled client, http and https), so that the requests of a component reuse warm connections instead of
//! each opening its own, with Spin's three timeouts.
//!
//! A guest's `request-options` set its request's timeouts, as in Spin; what it leaves unset takes
//! [`Timeouts`]' value (Spin's are 600 s each):
//! - connect: the TCP connection and the TLS handshake of a new connection ([`Error::ConnectionTimeout`]);
//! - first byte: from sending until the response head, a new connection included
//!   ([`Error::ConnectionReadTimeout`]);
//! - between bytes: between two frames of the response body ([`Error::ConnectionReadTimeout`]).

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// The timeouts of a request whose guest set none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Default for Timeouts {
    /// Shorter than Spin's 600 s: no request of sbert-host outlives `--request-timeout` (60 s by default), and
    /// an unreachable address should fail while the client still waits.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            between_bytes: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// The guest's choices where it made them.
    fn with(self, options: Option<RequestOptions>) -> Self {
        let options = options.unwrap_or_default();
        Self {
            connect: options.connect_timeout.unwrap_or(self.connect),
            first_byte: options.first_byte_timeout.unwrap_or(self.first_byte),
            between_bytes: options.between_bytes_timeout.unwrap_or(self.between_bytes),
        }
    }
}

/// How long an unused pooled connection is kept open.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The shared client; clones share one pool.
#[derive(Clone)]
pub struct OutboundClient {
    client: Client<Connector, WasiBody>,
    defaults: Timeouts,
}

impl OutboundClient {
    pub fn new(defaults: Timeouts) -> Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .context("outbound HTTP: TLS configuration")?
            .https_or_http()
            .enable_http1()
            .wrap_connector({
                let mut http = HttpConnector::new();
                // The https connector wraps this one, which must then accept https URIs too.
                http.enforce_http(false);
                http.set_nodelay(true);
                http
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Connector {
                inner: https,
                default_timeout: defaults.connect,
            });
        Ok(Self { client, defaults })
    }

    /// Sends `request` (an absolute URI) over a pooled connection, within its timeouts.
    pub async fn send(
        &self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Response<WasiBody>, Error> {
        let timeouts = self.defaults.with(options);
        let sent = tokio::time::timeout(timeouts.first_byte, self.client.request(request));
        let response = CONNECT_TIMEOUT
            .scope(timeouts.connect, sent)
            .await
            .map_err(|_elapsed| Error::ConnectionReadTimeout)?
            .map_err(request_error)?;
        Ok(response.map(|body| TimedBody::new(body, timeouts.between_bytes).boxed_unsync()))
    }
}

tokio::task_local! {
    /// The connect timeout of the request being sent: the pooled client gives its connector only the URI, so
    /// the request's own timeout travels beside it (a pooled connection, already connected, ignores it).
    static CONNECT_TIMEOUT: Duration;
}

/// hyper-rustls' connector (TCP, and TLS for https) within the connect timeout, its failures classified.
#[derive(Clone)]
struct Connector {
    inner: HttpsConnector<HttpConnector>,
    /// Should the pool ever connect outside a request's [`CONNECT_TIMEOUT`] scope.
    default_timeout: Duration,
}

impl Service<Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectFailure>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| ConnectFailure::of(&*error))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = CONNECT_TIMEOUT
            .try_with(|timeout| *timeout)
            .unwrap_or(self.default_timeout);
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(|error| ConnectFailure::of(&*error)),
                Err(_elapsed) => Err(ConnectFailure {
                    kind: ConnectFailureKind::TimedOut,
                    message: format!("no connection within {timeout:?}"),
                }),
            }
        })
    }
}

/// Why a new connection could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct ConnectFailure {
    kind: ConnectFailureKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectFailureKind {
    Dns,
    Refused,
    TimedOut,
    Tls,
}

impl ConnectFailure {
    fn of(error: &(dyn StdError + 'static)) -> Self {
        let message = chain(error);
        let io = sources(error).find_map(|e| e.downcast_ref::<std::io::Error>());
        let kind = if sources(error).any(|e| e.is::<rustls::Error>())
            || io
                .and_then(|io| io.get_ref())
                .is_some_and(|e| e.is::<rustls::Error>())
        {
            ConnectFailureKind::Tls
        } else if io.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            ConnectFailureKind::TimedOut
        } else if error.to_string() == HYPER_UTIL_DNS_ERROR {
            ConnectFailureKind::Dns
        } else {
            ConnectFailureKind::Refused
        };
        Self { kind, message }
    }

    fn into_error(self) -> Error {
        match self.kind {
            // What Spin answers a name that does not resolve.
            ConnectFailureKind::Dns => Error::DnsError {
                rcode: Some("address not available".into()),
                info_code: Some(0),
            },
            ConnectFailureKind::Refused => Error::ConnectionRefused,
            ConnectFailureKind::TimedOut => Error::ConnectionTimeout,
            ConnectFailureKind::Tls => Error::TlsProtocolError,
        }
    }
}

/// How hyper-util's connector says that a name did not resolve.
const HYPER_UTIL_DNS_ERROR: &str = "dns error";

fn sources<'e>(
    error: &'e (dyn StdError + 'static),
) -> impl Iterator<Item = &'e (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

/// `error: cause: cause`, for the log.
fn chain(error: &(dyn StdError + 'static)) -> String {
    sources(error)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// A failed request as wasi:http names it.
fn request_error(error: hyper_util::client::legacy::Error) -> Error {
    if let Some(failure) = sources(&error).find_map(|e| e.downcast_ref::<ConnectFailure>()) {
        tracing::debug!(error = %failure, "outbound HTTP: no connection");
        return ConnectFailure {
            kind: failure.kind,
            message: failure.message.clone(),
        }
        .into_error();
    }
    match sources(&error).find_map(|e| e.downcast_ref::<hyper::Error>()) {
        Some(hyper) => hyper_error(hyper),
        None => Error::HttpProtocolError,
    }
}

fn hyper_error(error: &hyper::Error) -> Error {
    let ended_early = sources(error)
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
    if error.is_incomplete_message() || ended_early {
        Error::HttpResponseIncomplete
    } else if error.is_canceled() || error.is_closed() {
        Error::ConnectionTerminated
    } else if error.is_timeout() {
        Error::ConnectionReadTimeout
    } else {
        Error::HttpProtocolError
    }
}

/// A response body that fails with [`Error::ConnectionReadTimeout`] when no frame comes for `timeout`.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|frame| frame.map_err(|error| hyper_error(&error))))
            }
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::{Empty, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn body(text: &'static str) -> WasiBody {
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    fn empty() -> WasiBody {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    }

    fn request(url: &str, payload: WasiBody) -> Request<WasiBody> {
        Request::post(url).body(payload).unwrap()
    }

    /// A loopback HTTP/1.1 server (hyper's) that answers every request with its body's length and the
    /// connection's number, counting the connections it accepts.
    async fn echo_server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let number = counted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request: Request<Incoming>| async move {
                            let received = request.into_body().collect().await?.to_bytes();
                            let answer = format!("{} bytes on connection {number}", received.len());
                            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(answer))))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{address}"), connections)
    }

    /// A server that accepts connections, reads what comes, and answers with `reply` (raw bytes), or never.
    async fn raw_server(reply: Option<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0; 4096];
                    let _ = stream.read(&mut buffer).await;
                    if let Some(reply) = reply {
                        let _ = stream.write_all(reply).await;
                    }
                    // Hold the connection open until the client gives up.
                    let _ = stream.read(&mut buffer).await;
                });
            }
        });
        format!("http://{address}")
    }

    async fn text(response: Response<WasiBody>) -> Result<String, Error> {
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn client() -> OutboundClient {
        OutboundClient::new(Timeouts::default()).unwrap()
    }

    #[tokio::test]
    async fn requests_reuse_one_pooled_connection() {
        let (url, connections) = echo_server().await;
        let client = client();
        let shared = client.clone();
        for payload in ["first", "second one"] {
            let response = shared
                .send(request(&url, body(payload)), None)
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let answer = text(response).await.unwrap();
            assert_eq!(answer, format!("{} bytes on connection 1", payload.len()));
        }
        let response = client.send(request(&url, empty()), None).await.unwrap();
        assert_eq!(text(response).await.unwrap(), "0 bytes on connection 1");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_refused_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = client()
            .send(request(&url, empty()), None)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::ConnectionRefused), "{error:?}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_dns_error() {
        let error = client()
            .send(request("http://no-such-host.invalid:81/", empty()), None)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::DnsError { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_at_the_guests_first_byte_timeout() {
        let url = raw_server(None).await;
        let options = RequestOptions {
            first_byte_timeout: Some(Duration::from_millis(200)),
            ..RequestOptions::default()
        };
        let started = std::time::Instant::now();
        let error = client()
            .send(request(&url, empty()), Some(options))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::ConnectionReadTimeout), "{error:?}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn the_host_default_applies_when_the_guest_sets_none() {
        let url = raw_server(None).await;
        let client = OutboundClient::new(Timeouts {
            first_byte: Duration::from_millis(150),
            ..Timeouts::default()
        })
        .unwrap();
        let error = client.send(request(&url, empty()), None).await.unwrap_err();
        assert!(matches!(error, Error::ConnectionReadTimeout), "{error:?}");
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_times_out_between_bytes() {
        // A head promising ten bytes, then three of them, then nothing.
        let url = raw_server(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")).await;
        let options = RequestOptions {
            between_bytes_timeout: Some(Duration::from_millis(200)),
            ..RequestOptions::default()
        };
        let response = client()
            .send(request(&url, empty()), Some(options))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let error = text(response).await.unwrap_err();
        assert!(matches!(error, Error::ConnectionReadTimeout), "{error:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_mid_answer_is_an_incomplete_response() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                .await;
        });
        let response = client().send(request(&url, empty()), None).await.unwrap();
        let error = text(response).await.unwrap_err();
        assert!(matches!(error, Error::HttpResponseIncomplete), "{error:?}");
    }

    #[tokio::test]
    async fn an_unroutable_address_times_out_at_the_guests_connect_timeout() {
        // TEST-NET-1 (RFC 5737) is never routed: the connection attempt hangs until the timeout, or fails at
        // once on a machine without a route at all; either is a connection failure, never a hang.
        let options = RequestOptions {
            connect_timeout: Some(Duration::from_millis(200)),
            ..RequestOptions::default()
        };
        let started = std::time::Instant::now();
        let error = client()
            .send(request("http://192.0.2.1:9/", empty()), Some(options))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::ConnectionTimeout | Error::ConnectionRefused),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
