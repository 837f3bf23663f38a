//! The app-specific parts of what the host says itself, as `[component.<id>.tool.sbert-host]` sets them: the
//! headers and JSON bodies of its own error answers, and the response header it counts. All checked while the
//! manifest is read, so a bad template stops start-up instead of a request.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

/// The facts of one host-made error answer, which body templates place.
#[derive(Debug, Clone, Copy)]
pub struct ErrorFacts<'a> {
    /// The HTTP status, e.g. 429.
    pub status: u16,
    /// The status's reason phrase, e.g. `Too Many Requests`.
    pub reason: &'a str,
    /// What happened, as a short token: `not_found`, `internal`, `timeout`, `overloaded` or `unavailable`.
    pub kind: &'a str,
    /// A sentence for people.
    pub message: &'a str,
}

/// Fixed response headers (`answer_headers`, `http_cache_hit_headers`): header name → value, both checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct HeaderValues(pub HeaderMap);

impl TryFrom<BTreeMap<String, String>> for HeaderValues {
    type Error = String;

    fn try_from(headers: BTreeMap<String, String>) -> Result<Self, String> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = header_name(&name)?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("`{value}` is not a valid value for header `{name}`"))?;
            map.insert(name, value);
        }
        Ok(Self(map))
    }
}

/// One `[[...error_bodies]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBodyRule {
    /// The paths the rule covers, each with everything below it: `/v1/models` covers `/v1/models` and
    /// `/v1/models/x`, not `/v1/modelsx`; `/` covers every path.
    pub paths: Vec<PathPrefix>,
    /// The body of 4xx answers (no route, a refusal because the host is full): JSON with the placeholders
    /// `{{ status }}` (a number), `{{ reason }}`, `{{ kind }}` and `{{ message }}` (strings), for example
    /// `'{"code": {{ status }}, "name": {{ reason }}, "description": {{ message }}}'`.
    pub client_error: BodyTemplate,
    /// The body of 5xx answers (a trap, a timeout, a refusal while draining), with the same placeholders.
    pub server_error: BodyTemplate,
}

impl ErrorBodyRule {
    /// Whether the rule applies to a request for `path`.
    pub fn covers(&self, path: &str) -> bool {
        self.paths.iter().any(|prefix| prefix.covers(path))
    }

    /// The body for `facts`: the client or server template by its status.
    pub fn body(&self, facts: &ErrorFacts) -> String {
        let template = if facts.status < 500 {
            &self.client_error
        } else {
            &self.server_error
        };
        template.render(facts)
    }
}

/// A path that covers itself and everything below it.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct PathPrefix(String);

impl TryFrom<String> for PathPrefix {
    type Error = String;

    fn try_from(path: String) -> Result<Self, String> {
        if !path.starts_with('/') {
            return Err(format!("path `{path}` must start with `/`"));
        }
        Ok(Self(path.trim_end_matches('/').to_string()))
    }
}

impl PathPrefix {
    fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || self.0.is_empty())
    }
}

/// A JSON body with `{{ name }}` placeholders where values go. `{{` never occurs in JSON outside strings, and
/// placeholders inside strings are refused, so every rendering is valid JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct BodyTemplate(Vec<Part>);

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Status,
    Reason,
    Kind,
    Message,
}

impl TryFrom<String> for BodyTemplate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("{{") {
            parts.push(Part::Text(rest[..start].to_string()));
            let Some(len) = rest[start..].find("}}") else {
                return Err(format!("unclosed `{{{{` in body template `{text}`"));
            };
            parts.push(match rest[start + 2..start + len].trim() {
                "status" => Part::Status,
                "reason" => Part::Reason,
                "kind" => Part::Kind,
                "message" => Part::Message,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{{ {other} }}}}` in body template (use status, reason, kind or message)"
                    ))
                }
            });
            rest = &rest[start + len + 2..];
        }
        parts.push(Part::Text(rest.to_string()));
        let template = Self(parts);
        // A rendering with quotes in every value must parse, and be an object: clients read fields from it.
        let probe = template.render(&ErrorFacts {
            status: 599,
            reason: "a \"reason\"",
            kind: "a \"kind\"",
            message: "a \"message\" }}",
        });
        match serde_json::from_str::<serde_json::Value>(&probe) {
            Ok(serde_json::Value::Object(_)) => Ok(template),
            Ok(_) => Err(format!("body template `{text}` is not a JSON object")),
            Err(error) => Err(format!(
                "body template `{text}` is not JSON once its placeholders are values: {error}"
            )),
        }
    }
}

impl BodyTemplate {
    /// The body with the placeholders replaced by JSON values.
    pub fn render(&self, facts: &ErrorFacts) -> String {
        let string = |value: &str| serde_json::Value::from(value).to_string();
        self.0
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Status => facts.status.to_string(),
                Part::Reason => string(facts.reason),
                Part::Kind => string(facts.kind),
                Part::Message => string(facts.message),
            })
            .collect()
    }
}

/// `counted_header`: a response header whose values are counted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountedHeader {
    /// The header's name (any case).
    #[serde(deserialize_with = "deserialize_header_name")]
    pub name: HeaderName,
    /// The values that are counted, each from zero; others are not (metric labels must stay few). The request
    /// log's `counted_header` field holds the header's value whatever it is (`-` when there is none).
    pub values: Vec<String>,
}

fn deserialize_header_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<HeaderName, D::Error> {
    let name = String::deserialize(deserializer)?;
    header_name(&name).map_err(serde::de::Error::custom)
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(name).map_err(|_| format!("`{name}` is not a valid header name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: u16, message: &str) -> ErrorFacts<'_> {
        ErrorFacts {
            status,
            reason: "Some Reason",
            kind: "overloaded",
            message,
        }
    }

    fn template(text: &str) -> Result<BodyTemplate, String> {
        BodyTemplate::try_from(text.to_string())
    }

    #[test]
    fn templates_place_json_values() {
        let body = template(
            r#"{"code": {{ status }}, "name": {{reason}}, "error": {{ kind }}, "description": {{ message }}}"#,
        )
        .unwrap()
        .render(&facts(429, "say \"hi\"\n"));
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"code": 429, "name": "Some Reason", "error": "overloaded", "description": "say \"hi\"\n"})
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (text, expected) in [
            (r#"{"a": {{ status }"#, "unclosed"),
            (
                r#"{"a": {{ detail }}}"#,
                "unknown placeholder `{{ detail }}`",
            ),
            (r#"{"a": "{{ message }}"}"#, "not JSON"),
            (r#"{"a": {{ message }}"#, "not JSON"),
            (r#"[{{ message }}]"#, "not a JSON object"),
        ] {
            let error = template(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn rules_cover_paths_and_below_and_pick_by_status() {
        let rule: ErrorBodyRule = toml::from_str(
            r#"
            paths = ["/v1/models", "/v1/embeddings/"]
            client_error = '{"client": {{ status }}}'
            server_error = '{"server": {{ status }}}'
            "#,
        )
        .unwrap();
        for path in [
            "/v1/models",
            "/v1/models/x",
            "/v1/embeddings",
            "/v1/embeddings/",
        ] {
            assert!(rule.covers(path), "{path}");
        }
        for path in ["/v1/modelsx", "/v1", "/", "/v1/embeddingsx"] {
            assert!(!rule.covers(path), "{path}");
        }
        assert_eq!(rule.body(&facts(404, "m")), r#"{"client": 404}"#);
        assert_eq!(rule.body(&facts(503, "m")), r#"{"server": 503}"#);

        let everything: ErrorBodyRule =
            toml::from_str("paths = [\"/\"]\nclient_error = '{}'\nserver_error = '{}'").unwrap();
        assert!(everything.covers("/") && everything.covers("/anything/below"));
        let relative = toml::from_str::<ErrorBodyRule>(
            "paths = [\"v1\"]\nclient_error = '{}'\nserver_error = '{}'",
        )
        .unwrap_err();
        assert!(
            relative.to_string().contains("must start with `/`"),
            "{relative}"
        );
    }

    #[test]
    fn headers_are_checked() {
        let headers: HeaderValues = toml::from_str::<BTreeMap<String, HeaderValues>>(
            "h = { \"Access-Control-Allow-Origin\" = \"*\" }",
        )
        .unwrap()
        .remove("h")
        .unwrap();
        assert_eq!(headers.0["access-control-allow-origin"], "*");
        let bad = toml::from_str::<BTreeMap<String, HeaderValues>>("h = { \"bad name\" = \"*\" }")
            .unwrap_err();
        assert!(
            bad.to_string()
                .contains("`bad name` is not a valid header name"),
            "{bad}"
        );
        let bad = toml::from_str::<CountedHeader>("name = \"x y\"\nvalues = []").unwrap_err();
        assert!(bad.to_string().contains("not a valid header name"), "{bad}");
    }
}
