//! Spin's request and response ↔ our [`crate::http`] types.

use spin_sdk::http::{Method as SpinMethod, Request as SpinRequest, Response as SpinResponse};

use super::nn::WasiNn;
use super::variables::SpinVariables;
use crate::handlers::Services;
use crate::http::{Method, Request, Response};
use crate::routes;

pub fn handle(request: SpinRequest) -> SpinResponse {
    let request = Request {
        method: method(request.method()),
        path: request.path().to_owned(),
        query: request.query().to_owned(),
        headers: request
            .headers()
            .map(|(name, value)| {
                (
                    name.to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: request.into_body(),
    };
    let response = routes::handle(
        &request,
        &Services {
            variables: &SpinVariables,
            infer: &WasiNn,
        },
    );
    let Response {
        status,
        headers,
        body,
    } = response;
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
