//! Small facts about HTTP messages that more than one part of the host asks.

use http::header::{HeaderMap, CONTENT_LENGTH, TRANSFER_ENCODING};

/// Whether a request declares a body (a `Content-Length` other than 0, or a chunked one).
pub fn may_have_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}
