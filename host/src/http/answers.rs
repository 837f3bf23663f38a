//! The answers the host makes itself, when no component answers: no route, a trap, a timeout, a refusal.
//! Their statuses and messages are the host's; their headers and body shapes are the component's, from its
//! manifest section ([`super::host_answers`]), so that clients of each route family can read them. Without
//! configuration the body is `{"error": <kind>, "message": <message>}`.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::config::HttpTool;
use super::host_answers::{ErrorBodyRule, ErrorFacts};
use super::layer::{HostResponse, Refusal};

/// Seconds a refused client should wait before retrying (`Retry-After`).
const RETRY_AFTER_SECONDS: &str = "1";

/// What the host answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAnswer {
    /// No manifest route matches the path.
    NoRoute,
    /// The component trapped, or returned without answering.
    Failed,
    /// The component ran past `--request-timeout` before answering.
    TimedOut,
    /// Refused before reaching the component.
    Refused(Refusal),
}

impl HostAnswer {
    fn status(self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
            Self::Refused(refusal) => refusal.status,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::NoRoute => "not_found",
            Self::Failed => "internal",
            Self::TimedOut => "timeout",
            Self::Refused(refusal) => refusal.kind,
        }
    }

    fn message(self, path: &str) -> String {
        match self {
            Self::NoRoute => format!("no route matches {path}"),
            Self::Failed => "the request could not be completed".into(),
            Self::TimedOut => "the request took too long".into(),
            Self::Refused(refusal) => refusal.message.into(),
        }
    }
}

/// One component's style for host-made answers.
#[derive(Debug, Clone, Default)]
pub struct AnswerStyle {
    headers: HeaderMap,
    rules: Vec<ErrorBodyRule>,
}

impl AnswerStyle {
    /// The style the component's `[component.<id>.tool.sbert-host]` section sets.
    pub fn of(tool: &HttpTool) -> Self {
        Self {
            headers: tool.answer_headers.0.clone(),
            rules: tool.error_bodies.clone(),
        }
    }

    /// The host's `answer` to a request for `path`.
    pub fn answer(&self, path: &str, answer: HostAnswer) -> HostResponse {
        let status = answer.status();
        let message = answer.message(path);
        let facts = ErrorFacts {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or_default(),
            kind: answer.kind(),
            message: &message,
        };
        let body = match self.rules.iter().find(|rule| rule.covers(path)) {
            Some(rule) => rule.body(&facts),
            None => serde_json::json!({"error": facts.kind, "message": facts.message}).to_string(),
        };
        let mut response = Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.extend(self.headers.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if matches!(answer, HostAnswer::Refused(_)) {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const BUSY: Refusal = Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        kind: "overloaded",
        message: "the server is busy; retry in a second",
        reason: "test",
    };

    fn body(response: HostResponse) -> serde_json::Value {
        let bytes = block_on(response.into_body().collect()).unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Polls a future that completes at once (a full body).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn style() -> AnswerStyle {
        let tool: HttpTool = toml::from_str(
            r#"
            answer_headers = { "Access-Control-Allow-Origin" = "*" }
            [[error_bodies]]
            paths = ["/v1/embeddings"]
            client_error = '{"error": {"message": {{ message }}, "type": "invalid_request_error"}}'
            server_error = '{"error": {"message": {{ message }}, "type": "server_error"}}'
            [[error_bodies]]
            paths = ["/"]
            client_error = '{"code": {{ status }}, "name": {{ reason }}, "description": {{ message }}}'
            server_error = '{"error": {{ kind }}, "message": {{ message }}}'
            "#,
        )
        .unwrap();
        AnswerStyle::of(&tool)
    }

    #[test]
    fn refusals_carry_retry_after_and_the_configured_shape() {
        let style = style();
        let busy = style.answer("/v1/embeddings", HostAnswer::Refused(BUSY));
        assert_eq!(busy.status(), 429);
        assert_eq!(busy.headers()[RETRY_AFTER], "1");
        assert_eq!(busy.headers()["access-control-allow-origin"], "*");
        assert_eq!(busy.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body(busy),
            serde_json::json!({"error": {"message": "the server is busy; retry in a second", "type": "invalid_request_error"}})
        );

        let draining = style.answer(
            "/v1/encode",
            HostAnswer::Refused(super::super::router::DRAINING),
        );
        assert_eq!(draining.status(), 503);
        assert_eq!(draining.headers()[RETRY_AFTER], "1");
        assert_eq!(body(draining)["error"], "unavailable");

        let queue = style.answer("/v1/encode", HostAnswer::Refused(BUSY));
        assert_eq!(queue.status(), 429);
        assert_eq!(
            body(queue),
            serde_json::json!({"code": 429, "name": "Too Many Requests", "description": "the server is busy; retry in a second"})
        );
    }

    #[test]
    fn failures_have_no_retry_after_and_the_default_shape_is_generic() {
        let failed = style().answer("/v1/embeddings", HostAnswer::Failed);
        assert_eq!(failed.status(), 500);
        assert!(failed.headers().get(RETRY_AFTER).is_none());
        assert_eq!(body(failed)["error"]["type"], "server_error");

        let plain = AnswerStyle::default();
        let missing = plain.answer("/x", HostAnswer::NoRoute);
        assert_eq!(missing.status(), 404);
        assert!(missing
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        assert_eq!(
            body(missing),
            serde_json::json!({"error": "not_found", "message": "no route matches /x"})
        );
        let timeout = plain.answer("/x", HostAnswer::TimedOut);
        assert_eq!(timeout.status(), 503);
        assert_eq!(body(timeout)["error"], "timeout");
    }
}
