//! The component's settings, read from Spin variables through the [`Variables`] seam
//! (`wasm::variables` in the component, a map in unit tests), once per request.

use std::str::FromStr;

use crate::auth::{ApiKeys, Credentials, JwtSecret};
use crate::cache::CacheSettings;
use crate::limits::Limits;

/// Comma-separated API keys accepted as bearer tokens.
pub const API_KEYS: &str = "api_keys";
/// The HS256 secret bearer JWTs are signed with; empty disables JWTs.
pub const JWT_SECRET: &str = "jwt_secret";
/// What `/v1/ping` reports as `container_id`.
pub const CONTAINER_ID: &str = "container_id";
/// The served model's identity, part of every cache key and ETag.
pub const MODEL_DIGEST: &str = "model_digest";
pub const CACHE_TTL_SECONDS: &str = "cache_ttl_seconds";
pub const CACHE_MAX_ENTRIES: &str = "cache_max_entries";
pub const MAX_BODY_BYTES: &str = "max_body_bytes";
pub const MAX_INPUTS: &str = "max_inputs";
pub const MAX_INPUT_CHARS: &str = "max_input_chars";

/// What `/v1/ping` reports when `container_id` is not set: the Spin application's name.
/// A wasm component has no host name of its own, so a deployment that wants to tell its
/// replicas apart sets the variable per replica (e.g. `SPIN_VARIABLE_CONTAINER_ID=$HOSTNAME`).
pub const DEFAULT_CONTAINER_ID: &str = "sbert-service";

/// Read access to the component's configuration variables.
pub trait Variables {
    /// The variable's value, or `None` when it is not defined for this component.
    fn get(&self, name: &str) -> Result<Option<String>, VariableError>;
}

/// The variables provider failed, or the name was rejected; described for the log.
#[derive(Debug, thiserror::Error)]
#[error("variable `{name}`: {reason}")]
pub struct VariableError {
    pub name: String,
    pub reason: String,
}

/// The credentials bearer tokens are checked against. An undefined `api_keys` accepts no key and
/// an undefined or empty `jwt_secret` accepts no JWT. Failing to read either is an error: a
/// request must not be let in, or kept out, because a provider hiccuped.
pub fn credentials(variables: &dyn Variables) -> Result<Credentials, VariableError> {
    let api_keys = variables
        .get(API_KEYS)?
        .map(|list| ApiKeys::parse(&list))
        .unwrap_or_default();
    let jwt_secret = variables
        .get(JWT_SECRET)?
        .and_then(|secret| JwtSecret::new(secret.into_bytes()));
    Ok(Credentials {
        api_keys,
        jwt_secret,
    })
}

/// The `container_id` variable, or [`DEFAULT_CONTAINER_ID`] when it is unset, blank or
/// unreadable: a health check must not fail over a label.
pub fn container_id(variables: &dyn Variables) -> String {
    match variables.get(CONTAINER_ID) {
        Ok(Some(id)) if !id.trim().is_empty() => id.trim().to_owned(),
        Ok(_) => DEFAULT_CONTAINER_ID.to_owned(),
        Err(error) => {
            eprintln!("settings: {error}; using the default container id");
            DEFAULT_CONTAINER_ID.to_owned()
        }
    }
}

/// The request limits; each unset or invalid variable falls back to its default.
pub fn limits(variables: &dyn Variables) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_body_bytes: number_or(variables, MAX_BODY_BYTES, defaults.max_body_bytes),
        max_inputs: number_or(variables, MAX_INPUTS, defaults.max_inputs),
        max_input_chars: number_or(variables, MAX_INPUT_CHARS, defaults.max_input_chars),
    }
}

/// The embedding cache's settings; each unset or invalid variable falls back to its default
/// (an unset `model_digest` leaves the cache off: entries must be tied to a model).
pub fn cache(variables: &dyn Variables) -> CacheSettings {
    let defaults = CacheSettings::default();
    let model_digest = match variables.get(MODEL_DIGEST) {
        Ok(digest) => digest.unwrap_or_default().trim().to_owned(),
        Err(error) => {
            eprintln!("settings: {error}; caching is off for this request");
            String::new()
        }
    };
    CacheSettings {
        model_digest,
        ttl_seconds: number_or(variables, CACHE_TTL_SECONDS, defaults.ttl_seconds),
        max_entries: number_or(variables, CACHE_MAX_ENTRIES, defaults.max_entries),
    }
}

/// A numeric variable, or `default` when it is unset, unreadable or not a number (logged: an
/// operator's typo must not take the service down, but should not go unnoticed either).
fn number_or<T: FromStr + std::fmt::Display + Copy>(
    variables: &dyn Variables,
    name: &str,
    default: T,
) -> T {
    match variables.get(name) {
        Ok(None) => default,
        Ok(Some(text)) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!("settings: variable `{name}` is not a valid number; using {default}");
            default
        }),
        Err(error) => {
            eprintln!("settings: {error}; using {default} for `{name}`");
            default
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Variables from a map; a value of `Err` makes reading that name fail like a broken provider.
    #[derive(Default)]
    pub(crate) struct FakeVariables(pub HashMap<&'static str, Result<&'static str, &'static str>>);

    impl FakeVariables {
        pub(crate) fn with(mut self, name: &'static str, value: &'static str) -> Self {
            self.0.insert(name, Ok(value));
            self
        }

        pub(crate) fn failing(mut self, name: &'static str) -> Self {
            self.0.insert(name, Err("provider unreachable"));
            self
        }
    }

    impl Variables for FakeVariables {
        fn get(&self, name: &str) -> Result<Option<String>, VariableError> {
            match self.0.get(name) {
                None => Ok(None),
                Some(Ok(value)) => Ok(Some((*value).to_owned())),
                Some(Err(reason)) => Err(VariableError {
                    name: name.into(),
                    reason: (*reason).into(),
                }),
            }
        }
    }

    #[test]
    fn container_id_falls_back_to_the_application_name() {
        assert_eq!(container_id(&FakeVariables::default()), "sbert-service");
        assert_eq!(
            container_id(&FakeVariables::default().with(CONTAINER_ID, "  ")),
            "sbert-service"
        );
        assert_eq!(
            container_id(&FakeVariables::default().failing(CONTAINER_ID)),
            "sbert-service"
        );
        assert_eq!(
            container_id(&FakeVariables::default().with(CONTAINER_ID, "replica-7")),
            "replica-7"
        );
    }

    #[test]
    fn undefined_credentials_accept_nothing_and_provider_errors_surface() {
        let none = credentials(&FakeVariables::default()).unwrap();
        assert!(!none.api_keys.contains(""));
        assert!(none.jwt_secret.is_none());
        let empty_secret = FakeVariables::default().with(JWT_SECRET, "");
        assert!(credentials(&empty_secret).unwrap().jwt_secret.is_none());
        let set = FakeVariables::default()
            .with(API_KEYS, "k1,k2")
            .with(JWT_SECRET, "s3cret");
        let set = credentials(&set).unwrap();
        assert!(set.api_keys.contains("k2"));
        assert!(set.jwt_secret.is_some());
        assert!(credentials(&FakeVariables::default().failing(API_KEYS)).is_err());
        assert!(credentials(&FakeVariables::default().failing(JWT_SECRET)).is_err());
    }

    #[test]
    fn cache_settings_fall_back_to_their_defaults() {
        assert_eq!(cache(&FakeVariables::default()), CacheSettings::default());
        assert!(
            !cache(&FakeVariables::default()).enabled(),
            "no digest, no cache"
        );
        let custom = FakeVariables::default()
            .with(MODEL_DIGEST, " sha256:abc ")
            .with(CACHE_TTL_SECONDS, "0")
            .with(CACHE_MAX_ENTRIES, "-1");
        assert_eq!(
            cache(&custom),
            CacheSettings {
                model_digest: "sha256:abc".into(),
                ttl_seconds: 0,
                ..CacheSettings::default()
            }
        );
        assert!(cache(&FakeVariables::default().failing(MODEL_DIGEST))
            .model_digest
            .is_empty());
    }

    #[test]
    fn limits_fall_back_to_their_defaults() {
        assert_eq!(limits(&FakeVariables::default()), Limits::default());
        let custom = FakeVariables::default()
            .with(MAX_BODY_BYTES, " 100 ")
            .with(MAX_INPUTS, "three")
            .failing(MAX_INPUT_CHARS);
        assert_eq!(
            limits(&custom),
            Limits {
                max_body_bytes: 100,
                ..Limits::default()
            }
        );
    }
}
