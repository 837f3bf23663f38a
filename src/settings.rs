//! The component's settings, read from Spin variables through the [`Variables`] seam
//! (`wasm::variables` in the component, a map in unit tests).

use crate::auth::{ApiKeys, Credentials};

/// Comma-separated API keys accepted as bearer tokens.
pub const API_KEYS: &str = "api_keys";
/// What `/v1/ping` reports as `container_id`.
pub const CONTAINER_ID: &str = "container_id";

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

/// The credentials bearer tokens are checked against. An undefined `api_keys` accepts no key.
pub fn credentials(variables: &dyn Variables) -> Result<Credentials, VariableError> {
    let api_keys = variables
        .get(API_KEYS)?
        .map(|list| ApiKeys::parse(&list))
        .unwrap_or_default();
    Ok(Credentials { api_keys })
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
    fn undefined_api_keys_accept_nothing_and_provider_errors_surface() {
        assert!(!credentials(&FakeVariables::default())
            .unwrap()
            .api_keys
            .contains(""));
        assert!(
            credentials(&FakeVariables::default().with(API_KEYS, "k1,k2"))
                .unwrap()
                .api_keys
                .contains("k2")
        );
        assert!(credentials(&FakeVariables::default().failing(API_KEYS)).is_err());
    }
}
