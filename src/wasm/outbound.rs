//! [`Transport`] over `wasi:http/outgoing-handler`, which every Spin host provides (the edge build).
//!
//! [`crate::backend::Infer`] is synchronous, so a call waits in place on wasi:io pollables (`block`) rather
//! than in spin-sdk's executor: the instance waits, the host goes on with other requests. The timeouts go in
//! the request's `request-options`, which Spin hosts and sbert-host honour.

use std::time::Duration;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

use crate::backend::remote::{Answer, Failure, Post, Transport};

/// The most of an answer that is read: 2048 base64 vectors are ~4 MiB.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
const READ_CHUNK_BYTES: u64 = 64 * 1024;

pub struct WasiHttp;

impl Transport for WasiHttp {
    fn post(&self, post: &Post<'_>) -> Result<Answer, Failure> {
        let request = request(post)?;
        let body = request
            .body()
            .map_err(|()| Failure::Other("the request body was already taken".into()))?;
        let options = RequestOptions::new();
        // Each setter fails only if the host does not support that timeout; then its own applies.
        let _ = options.set_connect_timeout(Some(nanoseconds(post.connect_timeout)));
        let _ = options.set_first_byte_timeout(Some(nanoseconds(post.timeout)));
        let _ = options.set_between_bytes_timeout(Some(nanoseconds(post.timeout)));
        let pending = outgoing_handler::handle(request, Some(options)).map_err(failure)?;
        // The body is written once the host is sending (before, it could fill the host's buffer and wait
        // forever). If that fails, the response says why: an error, or a refusal sent before the body was read
        // (a wrong token), which is the more telling answer.
        let written = write_body(body, post.body);
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(failure(code)),
            Some(Err(())) | None => return Err(Failure::Other("no response to wait for".into())),
        };
        let status = response.status();
        if let Err(broken) = written {
            if (200..300).contains(&status) {
                return Err(broken);
            }
        }
        let retry_after = response
            .headers()
            .get(&"retry-after".to_owned())
            .first()
            .map(|value| String::from_utf8_lossy(value).into_owned());
        let body = response
            .consume()
            .map_err(|()| Failure::Other("the response body was already taken".into()))?;
        Ok(Answer {
            status,
            retry_after,
            body: read_body(body)?,
        })
    }

    fn pause(&self, duration: Duration) {
        wasi::clocks::monotonic_clock::subscribe_duration(nanoseconds(duration)).block();
    }
}

/// `POST` of a JSON body to `post.url` (`http(s)://authority/path`), with the bearer token.
fn request(post: &Post<'_>) -> Result<OutgoingRequest, Failure> {
    let (scheme, rest) = if let Some(rest) = post.url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = post.url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(Failure::Other(format!(
            "`{}` is not an http(s) URL",
            post.url
        )));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let headers = Fields::from_list(&[
        ("content-type".to_owned(), b"application/json".to_vec()),
        (
            "content-length".to_owned(),
            post.body.len().to_string().into_bytes(),
        ),
        (
            "authorization".to_owned(),
            format!("Bearer {}", post.token).into_bytes(),
        ),
    ])
    .map_err(|error| Failure::Other(format!("request headers: {error:?}")))?;
    let request = OutgoingRequest::new(headers);
    let invalid = |part: &str| Failure::Other(format!("the host refused the request's {part}"));
    request
        .set_method(&Method::Post)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(if path.is_empty() { "/" } else { path }))
        .map_err(|()| invalid("path"))?;
    Ok(request)
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Failure> {
    let stream = body
        .write()
        .map_err(|()| Failure::Other("the request body stream was already taken".into()))?;
    let written = write_all(&stream, bytes);
    drop(stream);
    written?;
    OutgoingBody::finish(body, None).map_err(failure)
}

fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), Failure> {
    let broken =
        |error: StreamError| Failure::Unreachable(format!("sending the request body: {error:?}"));
    while !bytes.is_empty() {
        let permitted = match stream.check_write().map_err(broken)? {
            0 => {
                stream.subscribe().block();
                continue;
            }
            permitted => usize::try_from(permitted)
                .unwrap_or(usize::MAX)
                .min(bytes.len()),
        };
        stream.write(&bytes[..permitted]).map_err(broken)?;
        bytes = &bytes[permitted..];
    }
    stream.blocking_flush().map_err(broken)
}

fn read_body(body: IncomingBody) -> Result<Vec<u8>, Failure> {
    let stream = body
        .stream()
        .map_err(|()| Failure::Other("the response body stream was already taken".into()))?;
    let mut bytes = Vec::new();
    let outcome = loop {
        match stream.blocking_read(READ_CHUNK_BYTES) {
            Ok(chunk) if bytes.len() + chunk.len() > MAX_ANSWER_BYTES => {
                break Err(Failure::Other(format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                )))
            }
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => {
                break Err(match wasi::http::types::http_error_code(&error) {
                    Some(code) => failure(code),
                    None => Failure::Unreachable(format!(
                        "reading the answer: {}",
                        error.to_debug_string()
                    )),
                })
            }
        }
    };
    drop(stream);
    drop(IncomingBody::finish(body));
    outcome
}

/// How a wasi:http error code counts for retrying and for the client.
fn failure(code: ErrorCode) -> Failure {
    let described = format!("{code:?}");
    match code {
        ErrorCode::HttpRequestDenied => Failure::Denied(described),
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => Failure::TimedOut(described),
        ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete
        // What Spin reports a connection broken mid-answer as.
        | ErrorCode::HttpProtocolError
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DnsError(_) => Failure::Unreachable(described),
        _ => Failure::Other(described),
    }
}

fn nanoseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
