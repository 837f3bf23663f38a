//! The host's own keys of `[component.<id>.tool.sbert-host]`: how the host answers for the component, the
//! start-up check, and the response header each request's record counts. Every unit owns its other keys.

use serde::Deserialize;

use super::host_answers::{CountedHeader, ErrorBodyRule, HeaderValues};

/// Everything app-specific the host's HTTP side does is set here, never in the host's code.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTool {
    /// A path the host requests (`GET`, in-process) once at start-up, before it listens: an answer other than
    /// 2xx stops start-up with one line naming the component and the answer's message. No check when unset.
    #[serde(default)]
    pub startup_check: Option<StartupCheckPath>,
    /// Headers on every answer the host makes itself (no route, a trap, a timeout, a refusal), for example
    /// CORS headers, so that clients can read those answers like the component's own.
    #[serde(default)]
    pub answer_headers: HeaderValues,
    /// The JSON bodies of the host's own error answers, by path: the first rule that covers the request's
    /// path applies; without one, the body is `{"error": <kind>, "message": <message>}`.
    #[serde(default)]
    pub error_bodies: Vec<ErrorBodyRule>,
    /// A response header whose values are counted in the metrics and copied into the request log.
    #[serde(default)]
    pub counted_header: Option<CountedHeader>,
}

/// `startup_check`: an absolute path, with an optional query.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct StartupCheckPath(pub http::uri::PathAndQuery);

impl TryFrom<String> for StartupCheckPath {
    type Error = String;

    fn try_from(path: String) -> Result<Self, String> {
        match path.parse() {
            Ok(parsed) if path.starts_with('/') => Ok(Self(parsed)),
            _ => Err(format!(
                "startup_check `{path}` is not a path starting with `/`"
            )),
        }
    }
}
