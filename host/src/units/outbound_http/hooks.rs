//! The hooks wasmtime-wasi-http calls for a component's outgoing requests: allowed ones go through the shared
//! client, the others fail with `HttpRequestDenied`, as on Spin, and the host logs the destination and how to
//! allow it.

use std::future::Future;
use std::sync::Arc;

use http::Request;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::allowed_hosts::AllowedHosts;
use super::client::OutboundClient;

/// One component's outbound HTTP: its allow-list and the shared client. The default denies everything.
#[derive(Clone, Default)]
pub struct ComponentOutbound {
    /// `None`: nothing is allowed, and no client is needed.
    granted: Option<Granted>,
}

#[derive(Clone)]
struct Granted {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    client: OutboundClient,
}

impl ComponentOutbound {
    pub fn new(component: &str, allowed: AllowedHosts, client: OutboundClient) -> Self {
        Self {
            granted: Some(Granted {
                component: component.into(),
                allowed: Arc::new(allowed),
                client,
            }),
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for ComponentOutbound {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        // Where the guest would report a failure reading the response; the host has nothing to do with it.
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let granted = self.granted.clone();
        Box::new(async move {
            let granted = match granted {
                Some(granted) if granted.allows(request.uri()) => granted,
                granted => {
                    deny(granted.as_ref().map(|g| &*g.component), request.uri());
                    return Err(Error::HttpRequestDenied);
                }
            };
            let response = granted.client.send(request, options).await?;
            // The pooled client drives each connection in a task of its own: nothing is left to await.
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl Granted {
    fn allows(&self, uri: &http::Uri) -> bool {
        match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => self.allowed.allows(scheme, host, uri.port_u16()),
            _ => false,
        }
    }
}

/// Logs a refused request the way Spin reports it: the destination, and the manifest line that allows it.
fn deny(component: Option<&str>, uri: &http::Uri) {
    let destination = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or_default(),
        uri.authority().map_or("", |authority| authority.as_str())
    );
    tracing::error!(
        component,
        destination,
        hint = format!("to allow it, add 'allowed_outbound_hosts = [\"{destination}\"]' to the component's section of the manifest"),
        "Outbound network destination not allowed: {destination}"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::pin::Pin;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::super::client::Timeouts;
    use super::*;

    async fn hello_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let answer = format!("hello from {}", request.uri().path());
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(answer))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        address
    }

    fn get(url: &str) -> Request<WasiBody> {
        let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
        Request::get(url).body(body).unwrap()
    }

    async fn send(hooks: &mut ComponentOutbound, url: &str) -> Result<String, Error> {
        let future = hooks.send_request(get(url), None, Box::new(async { Ok(()) }));
        let (response, _) = Pin::from(future).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn granted(entries: &[String]) -> ComponentOutbound {
        let allowed = AllowedHosts::parse(entries, &HashMap::new()).unwrap();
        let client = OutboundClient::new(Timeouts::default()).unwrap();
        ComponentOutbound::new("web", allowed, client)
    }

    #[tokio::test]
    async fn an_allowed_destination_is_reached_and_others_are_denied() {
        let address = hello_server().await;
        let mut hooks = granted(&[format!("http://{address}")]);
        let answer = send(&mut hooks, &format!("http://{address}/v1/embeddings")).await;
        assert_eq!(answer.unwrap(), "hello from /v1/embeddings");
        let other_port = format!("http://127.0.0.1:{}/", address.port() + 1);
        assert!(matches!(
            send(&mut hooks, &other_port).await,
            Err(Error::HttpRequestDenied)
        ));
        let other_scheme = format!("https://{address}/");
        assert!(matches!(
            send(&mut hooks, &other_scheme).await,
            Err(Error::HttpRequestDenied)
        ));
    }

    #[tokio::test]
    async fn without_the_capability_everything_is_denied() {
        let address = hello_server().await;
        let mut hooks = ComponentOutbound::default();
        let answer = send(&mut hooks, &format!("http://{address}/")).await;
        assert!(matches!(answer, Err(Error::HttpRequestDenied)));
        let mut empty = granted(&[]);
        let answer = send(&mut empty, &format!("http://{address}/")).await;
        assert!(matches!(answer, Err(Error::HttpRequestDenied)));
    }
}
