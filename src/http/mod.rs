//! HTTP as the component sees it: plain request/response types and the mapping of every error to
//! its JSON answer. The route table that joins them to the API is `crate::routes`, whose tests
//! send whole requests through the component.

pub mod error;
pub mod message;

pub use message::{Method, Request, Response};
