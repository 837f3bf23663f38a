//! HTTP as the component sees it: plain request/response types and the mapping of every error to
//! its JSON answer. The route table that joins them to the API is `crate::routes`; the
//! whole-component tests below go through it.

pub mod error;
pub mod message;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

pub use message::{Method, Request, Response};
