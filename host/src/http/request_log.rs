//! What each request leaves behind in the log: its id, one JSON line; and the line of a failure.

use http::header::{HeaderName, HeaderValue};

use super::layer::Answered;

/// The request-id header: taken from the client when usable, generated otherwise, and always returned.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `X-Request-Id` if it is a short printable token, else a new UUID.
pub fn request_id(from_client: Option<&HeaderValue>) -> HeaderValue {
    from_client
        .filter(|id| {
            (1..=128).contains(&id.len()) && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::try_from(uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header")
        })
}

/// Logs the one line per request.
pub fn record(answered: &Answered<'_>, request_id: Option<&HeaderValue>) {
    tracing::info!(
        method = answered.method.as_str(),
        path = answered.path,
        status = answered.status.as_u16(),
        duration_ms = (answered.duration.as_secs_f64() * 1e4).round() / 10.0,
        request_id = request_id.and_then(|id| id.to_str().ok()),
        counted_header = answered.counted.map_or("-", |(_, value)| value),
    );
}

/// Why a request failed, for operators: on stderr only, never in the response.
pub fn log_error(request_id: &str, component: &str, error: &anyhow::Error) {
    tracing::error!(component, request_id, error = format!("{error:#}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_generated_otherwise() {
        let kept = request_id(Some(&HeaderValue::from_static("abc-123")));
        assert_eq!(kept, "abc-123");
        let long = "x".repeat(200);
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_str(&long).unwrap(),
            HeaderValue::from_static("a b"),
        ] {
            let generated = request_id(Some(&bad));
            assert_ne!(generated, bad);
            assert_eq!(generated.len(), 36);
        }
        assert_eq!(request_id(None).len(), 36);
    }
}
