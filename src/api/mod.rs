//! The API: request and response types per family ([`original`], [`openai`] with
//! [`openai_tokenize`], [`cohere`], [`tei`], [`spin_remote`]), what each route does
//! ([`handlers`]), and the documents that describe it ([`docs`]).

pub mod cohere;
pub mod docs;
mod fields;
pub mod handlers;
pub mod inputs;
mod json;
pub mod limits;
pub mod openai;
pub mod openai_tokenize;
/// Generates `docs/openapi.json` (tests only: the component serves the generated file).
#[cfg(test)]
mod openapi;
pub mod original;
pub mod spin_remote;
pub mod tei;

use crate::auth::Grant;
use crate::backend::Infer;
use crate::config::Config;
use crate::embed::cache::Kv;
use crate::http::error::ApiError;
use crate::http::{Request, Response};

/// What a request may use: its configuration and the host's capabilities.
pub struct Services<'a> {
    pub config: &'a Config,
    pub infer: &'a dyn Infer,
    /// The key-value store, when it could be opened (without it, nothing is cached).
    pub kv: Option<&'a dyn Kv>,
    /// Unix seconds at the start of the request: JWT validity and cache expiry are judged by it.
    pub now: u64,
    /// What the request's token grants: how long others may reuse an answer made for it.
    pub grant: Grant,
}

/// What a route runs once the request is admitted and its body read.
pub type Handler = fn(&Request, &Services) -> Result<Response, ApiError>;
