//! HTTP as the component sees it: plain request/response types, the route table (CORS, 404,
//! 405, authorization, body limits) and the mapping of every error to its JSON answer.

pub mod error;
pub mod message;
pub mod routes;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

pub use message::{Method, Request, Response};
