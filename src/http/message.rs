//! The component's own view of an HTTP exchange.
//!
//! Routing, auth and the API handlers work on these plain types so that they compile and are
//! unit-tested natively; `wasm::http` converts the host's request and response to and from them.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// The request methods the service tells apart; anything else is carried as `Other`
/// so that a route can still answer it with 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Options,
    Other(String),
}

impl Method {
    pub fn parse(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "OPTIONS" => Self::Options,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Options => "OPTIONS",
            Self::Other(name) => name,
        }
    }
}

/// A query-string parameter that is not UTF-8 once percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The query string parameter `{0}` is not valid UTF-8 once percent-decoded.")]
pub struct QueryError(pub String);

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path without the query string, e.g. `/v1/encode/`.
    pub path: String,
    /// The raw query string without the leading `?` (empty when there is none).
    pub query: String,
    /// Header names are compared case-insensitively by [`Request::header`].
    pub headers: Vec<(String, String)>,
    /// The body as received; the host adapter stops keeping bytes one past `max_body_bytes`,
    /// so a longer body shows up here as exactly one byte over the limit.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The path that routes match: every route answers with or without one trailing slash.
    pub fn route_path(&self) -> &str {
        match self.path.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed,
            _ => &self.path,
        }
    }

    /// The first value of the query-string parameter `name`, decoded like a form field
    /// (`+` is a space). Invalid UTF-8 is an error rather than a silently replaced character.
    pub fn query_param(&self, name: &str) -> Result<Option<String>, QueryError> {
        for pair in self.query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if form_decode(key).as_deref() != Ok(name) {
                continue;
            }
            return form_decode(value)
                .map(Some)
                .map_err(|_| QueryError(name.to_owned()));
        }
        Ok(None)
    }
}

fn form_decode(text: &str) -> Result<String, std::str::Utf8Error> {
    percent_decode(text.replace('+', " ").as_bytes())
        .decode_utf8()
        .map(Cow::into_owned)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response; `value` is one of our own serde types, whose serialization cannot fail.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Self::with_body(status, "application/json", body)
    }

    pub fn with_body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, query: &str) -> Request {
        Request {
            method: Method::Get,
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn query_parameters_are_form_decoded() {
        let request = get("/", "a=1&query=hello+big%20world%21&query=second");
        assert_eq!(
            request.query_param("query"),
            Ok(Some("hello big world!".into()))
        );
        assert_eq!(request.query_param("missing"), Ok(None));
        assert_eq!(get("/", "query").query_param("query"), Ok(Some("".into())));
        assert_eq!(
            get("/", "q%75ery=%C3%A9").query_param("query"),
            Ok(Some("é".into()))
        );
    }

    #[test]
    fn invalid_utf8_in_a_parameter_is_an_error() {
        assert_eq!(
            get("/", "query=%FF%FE").query_param("query"),
            Err(QueryError("query".into()))
        );
        // Other parameters' bytes do not matter.
        assert_eq!(
            get("/", "x=%FF&query=ok").query_param("query"),
            Ok(Some("ok".into()))
        );
    }

    #[test]
    fn route_paths_drop_one_trailing_slash() {
        assert_eq!(get("/v1/encode/", "").route_path(), "/v1/encode");
        assert_eq!(get("/v1/encode", "").route_path(), "/v1/encode");
        assert_eq!(get("/v1/encode//", "").route_path(), "/v1/encode/");
        assert_eq!(get("/", "").route_path(), "/");
    }
}
