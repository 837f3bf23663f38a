//! The host's HTTP request and response ↔ our [`crate::http`] types.

use futures::StreamExt;
use spin_sdk::http::{IncomingRequest, Method as SpinMethod, Response as SpinResponse};

use crate::http::{Method, Request, Response};

/// Past this many bytes the rest of an over-long body is no longer read: the client gets its
/// 413 with the connection closed under it, rather than the component draining it forever.
const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Everything of the request but its body, which is read only once the request is admitted.
pub fn head(incoming: &IncomingRequest) -> Request {
    let target = incoming.path_with_query().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Request {
        method: method(&incoming.method()),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect(),
        body: Vec::new(),
    }
}

/// Keeps at most `limit + 1` bytes, enough for the router to see that the body is too large,
/// while still reading (and dropping) the rest so that a client that declared no
/// `Content-Length` (a longer declared one is refused before this) can finish sending and
/// read its 413. A broken body stream ends the body where it broke.
pub async fn read_body(request: IncomingRequest, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut received = 0usize;
    let mut stream = request.into_body_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        received = received.saturating_add(chunk.len());
        let room = limit.saturating_add(1).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if received > MAX_DRAIN_BYTES.max(limit) {
            break;
        }
    }
    body
}

/// The response, with its `Content-Length`: the body is whole here, and a declared length
/// spares the host chunked framing (an empty body, as in HEAD's answer, declares none: the
/// host then frames what it must).
pub fn response(response: Response) -> SpinResponse {
    let Response {
        status,
        mut headers,
        body,
    } = response;
    if !body.is_empty() {
        headers.push(("content-length".into(), body.len().to_string()));
    }
    SpinResponse::builder()
        .status(status)
        .headers(headers)
        .body(body)
        .build()
}

fn method(method: &SpinMethod) -> Method {
    match method {
        SpinMethod::Get => Method::Get,
        SpinMethod::Head => Method::Head,
        SpinMethod::Post => Method::Post,
        SpinMethod::Options => Method::Options,
        SpinMethod::Put => Method::Other("PUT".into()),
        SpinMethod::Delete => Method::Other("DELETE".into()),
        SpinMethod::Connect => Method::Other("CONNECT".into()),
        SpinMethod::Trace => Method::Other("TRACE".into()),
        SpinMethod::Patch => Method::Other("PATCH".into()),
        SpinMethod::Other(name) => Method::Other(name.clone()),
    }
}
