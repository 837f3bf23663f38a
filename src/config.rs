//! Every Spin variable the component reads, parsed and checked once per request into one typed
//! [`Config`]; the rest of the crate gets `&Config` and never reads a variable.
//!
//! An invalid value is an error naming the variable and what is wrong with it (`max_inputs`:
//! "`three` is not a whole number"), never a silent default: the request is then answered 503
//! with that message, and `sbert-host up` refuses to start on it (it calls `GET /health` first).
//! Messages never repeat the value of a secret variable.

use crate::auth::{ApiKeys, Credentials, JwtSecret};
#[cfg(feature = "remote")]
use crate::backend::remote::Origin;
use crate::embed::model::{Model, ModelKind};
use crate::http::error::excerpt;

/// Comma-separated API keys accepted as bearer tokens.
pub const API_KEYS: &str = "api_keys";
/// The HS256 secret bearer JWTs are signed with; empty disables JWTs.
pub const JWT_SECRET: &str = "jwt_secret";
/// What `/v1/ping` reports as `container_id`.
pub const CONTAINER_ID: &str = "container_id";
/// The fp32 model's identity, part of its cache keys and ETags; empty turns its cache off.
pub const MODEL_DIGEST: &str = "model_digest";
/// The int8 model's identity, likewise.
pub const INT8_MODEL_DIGEST: &str = "int8_model_digest";
/// The model the original routes (`/v1/encode`, …) use: a served model's id or alias.
pub const DEFAULT_MODEL: &str = "default_model";
pub const CACHE_TTL_SECONDS: &str = "cache_ttl_seconds";
pub const CACHE_MAX_ENTRIES: &str = "cache_max_entries";
/// Seconds shared caches (sbert-host's HTTP cache, a CDN) may reuse a `GET /v1/encode` answer for
/// the same URL and `Authorization`; 0 keeps answers private. It bounds how long a revoked API key
/// keeps getting the answers it already had.
pub const SHARED_CACHE_SECONDS: &str = "shared_cache_seconds";
pub const MAX_BODY_BYTES: &str = "max_body_bytes";
pub const MAX_INPUTS: &str = "max_inputs";
pub const MAX_INPUT_CHARS: &str = "max_input_chars";
/// The edge build's inference service (`remote`): `http(s)://host[:port]` of an sbert-host serving the fast
/// build (or of a balancer in front of several).
#[cfg(feature = "remote")]
pub const INFERENCE_URL: &str = "inference_url";
/// The bearer token the inference service accepts: one of its `api_keys`.
#[cfg(feature = "remote")]
pub const INFERENCE_TOKEN: &str = "inference_token";
/// Seconds a call to the inference service may wait for its answer to start, and then between its parts.
#[cfg(feature = "remote")]
pub const INFERENCE_TIMEOUT_SECONDS: &str = "inference_timeout_seconds";
#[cfg(feature = "remote")]
const DEFAULT_INFERENCE_TIMEOUT_SECONDS: u64 = 30;

/// What `/v1/ping` reports when `container_id` is unset or blank: the Spin application's name.
/// A wasm component has no host name of its own, so a deployment that wants to tell its
/// replicas apart sets the variable per replica (e.g. `SPIN_VARIABLE_CONTAINER_ID=$HOSTNAME`).
pub const DEFAULT_CONTAINER_ID: &str = "sbert-service";

/// Read access to the component's variables (`wasm::variables` in the component, a map in tests).
pub trait Variables {
    /// The variable's value, or `None` when it is not defined for this component.
    fn get(&self, name: &str) -> Result<Option<String>, VariableError>;
}

/// The variables provider failed, or the name was rejected.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct VariableError {
    pub reason: String,
}

/// A variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable `{variable}`: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// The request limits, checked before any tokenization or model work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Inputs per request, counted as sent (duplicates included).
    pub max_inputs: usize,
    /// Characters (Unicode scalar values, not bytes) per text input.
    pub max_input_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_inputs: 2048,
            max_input_chars: 20_000,
        }
    }
}

/// The embedding cache's settings (the per-model digests live in [`Model`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Entry lifetime; 0 disables the cache.
    pub ttl_seconds: u64,
    /// The number of entries the store may hold; 0 disables the cache.
    pub max_entries: u64,
    /// How long shared HTTP caches may reuse an answer ([`SHARED_CACHE_SECONDS`]); never longer
    /// than `ttl_seconds`.
    pub shared_seconds: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 86_400,
            max_entries: 100_000,
            shared_seconds: 300,
        }
    }
}

impl CacheSettings {
    pub fn enabled(&self) -> bool {
        self.ttl_seconds > 0 && self.max_entries > 0
    }
}

/// The models this component serves, and which one the original routes use.
#[derive(Debug, Clone, PartialEq)]
pub struct Models {
    served: Vec<Model>,
    default: usize,
}

impl Models {
    /// Every served model, the fp32 one first.
    pub fn all(&self) -> &[Model] {
        &self.served
    }

    /// The model of the original routes (variable `default_model`).
    pub fn default_model(&self) -> &Model {
        &self.served[self.default]
    }

    /// The served model whose id or alias is `name` (in any letter case).
    pub fn find(&self, name: &str) -> Option<&Model> {
        self.served.iter().find(|model| model.answers_to(name))
    }

    /// `` `id` (alias `alias`), `id2` `` for messages about unknown models.
    pub fn describe(&self) -> String {
        self.served
            .iter()
            .map(Model::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Everything a request may be configured by.
#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    /// API keys (already hashed) and the JWT secret.
    pub credentials: Credentials,
    pub cache: CacheSettings,
    pub container_id: String,
    pub models: Models,
    /// Where the edge build's inference runs.
    #[cfg(feature = "remote")]
    pub origin: Origin,
}

impl Config {
    /// Reads and checks every variable; the first invalid one is the error.
    pub fn from_variables(variables: &dyn Variables) -> Result<Self, ConfigError> {
        let read = Reader(variables);
        let limit_defaults = Limits::default();
        let cache_defaults = CacheSettings::default();
        let digest = |name| {
            Ok(read
                .text(name, false)?
                .unwrap_or_default()
                .trim()
                .to_owned())
        };
        #[cfg(not(feature = "spin-llm"))]
        let served = vec![
            Model::new(ModelKind::Fp32, digest(MODEL_DIGEST)?),
            Model::new(ModelKind::Int8, digest(INT8_MODEL_DIGEST)?),
        ];
        // Spin hosts embed with their `all-minilm-l6-v2` only: the spin-llm build has no int8 model.
        #[cfg(feature = "spin-llm")]
        let served = vec![Model::new(ModelKind::Fp32, digest(MODEL_DIGEST)?)];
        let default = match read.text(DEFAULT_MODEL, false)? {
            None => 0,
            Some(name) => served
                .iter()
                .position(|model| model.answers_to(name.trim()))
                .ok_or_else(|| ConfigError {
                    variable: DEFAULT_MODEL,
                    problem: format!(
                        "`{}` is not a served model (one of: {})",
                        excerpt(&name),
                        served
                            .iter()
                            .map(Model::describe)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?,
        };
        Ok(Self {
            limits: Limits {
                max_body_bytes: read.number(MAX_BODY_BYTES, limit_defaults.max_body_bytes)?,
                max_inputs: read.number(MAX_INPUTS, limit_defaults.max_inputs)?,
                max_input_chars: read.number(MAX_INPUT_CHARS, limit_defaults.max_input_chars)?,
            },
            credentials: Credentials {
                api_keys: read
                    .text(API_KEYS, true)?
                    .map(|list| ApiKeys::parse(&list))
                    .unwrap_or_default(),
                jwt_secret: read
                    .text(JWT_SECRET, true)?
                    .and_then(|secret| JwtSecret::new(secret.into_bytes())),
            },
            cache: CacheSettings {
                ttl_seconds: read.number(CACHE_TTL_SECONDS, cache_defaults.ttl_seconds)?,
                max_entries: read.number(CACHE_MAX_ENTRIES, cache_defaults.max_entries)?,
                shared_seconds: read.number(SHARED_CACHE_SECONDS, cache_defaults.shared_seconds)?,
            },
            container_id: read
                .text(CONTAINER_ID, false)?
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| DEFAULT_CONTAINER_ID.to_owned()),
            models: Models { served, default },
            #[cfg(feature = "remote")]
            origin: read.origin()?,
        })
    }
}

struct Reader<'v>(&'v dyn Variables);

impl Reader<'_> {
    /// The inference service's URL, token and timeout; the first two must be set.
    #[cfg(feature = "remote")]
    fn origin(&self) -> Result<Origin, ConfigError> {
        let unset = |variable| ConfigError {
            variable,
            problem: "is not set".into(),
        };
        let url = self
            .text(INFERENCE_URL, false)?
            .ok_or_else(|| unset(INFERENCE_URL))?;
        let url = Origin::url(&url).map_err(|problem| ConfigError {
            variable: INFERENCE_URL,
            problem,
        })?;
        let token = self
            .text(INFERENCE_TOKEN, true)?
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| unset(INFERENCE_TOKEN))?;
        let seconds = self.number(INFERENCE_TIMEOUT_SECONDS, DEFAULT_INFERENCE_TIMEOUT_SECONDS)?;
        if seconds == 0 {
            return Err(ConfigError {
                variable: INFERENCE_TIMEOUT_SECONDS,
                problem: "must be at least 1".into(),
            });
        }
        Ok(Origin {
            url,
            token,
            timeout: std::time::Duration::from_secs(seconds),
        })
    }

    /// A variable as text. A provider failure is an error too: a request must not be let in,
    /// or kept out, because the provider hiccuped. For a `secret` variable the message leaves
    /// out the provider's reason, which might quote the value.
    fn text(&self, variable: &'static str, secret: bool) -> Result<Option<String>, ConfigError> {
        self.0.get(variable).map_err(|error| ConfigError {
            variable,
            problem: if secret {
                "could not be read".to_owned()
            } else {
                format!("could not be read: {error}")
            },
        })
    }

    /// A non-negative whole number, or `default` when the variable is undefined.
    fn number<T: TryFrom<u64>>(
        &self,
        variable: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(text) = self.text(variable, false)? else {
            return Ok(default);
        };
        let trimmed = text.trim();
        let invalid = |problem: &str| ConfigError {
            variable,
            problem: format!("`{}` {problem}", excerpt(trimmed)),
        };
        if trimmed.is_empty() || !trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid("is not a whole number"));
        }
        trimmed
            .parse::<u64>()
            .ok()
            .and_then(|number| T::try_from(number).ok())
            .ok_or_else(|| invalid("is too large"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Variables from a map; a value of `Err` makes reading that name fail like a broken provider.
    #[derive(Default, Clone)]
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

        pub(crate) fn config(&self) -> Config {
            Config::from_variables(self).unwrap()
        }
    }

    impl Variables for FakeVariables {
        fn get(&self, name: &str) -> Result<Option<String>, VariableError> {
            match self.0.get(name) {
                None => Ok(None),
                Some(Ok(value)) => Ok(Some((*value).to_owned())),
                Some(Err(reason)) => Err(VariableError {
                    reason: (*reason).into(),
                }),
            }
        }
    }

    fn error(variables: FakeVariables) -> ConfigError {
        Config::from_variables(&variables).unwrap_err()
    }

    #[test]
    fn undefined_variables_take_their_defaults() {
        let config = FakeVariables::default().config();
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.cache, CacheSettings::default());
        assert_eq!(config.container_id, "sbert-service");
        assert!(!config.credentials.api_keys.contains(""));
        assert!(config.credentials.jwt_secret.is_none());
        assert_eq!(config.models.default_model().kind, ModelKind::Fp32);
        assert!(config.models.all().iter().all(|m| m.digest.is_empty()));
    }

    #[test]
    fn values_are_trimmed_and_parsed() {
        let config = FakeVariables::default()
            .with(MAX_BODY_BYTES, " 100 ")
            .with(MAX_INPUTS, "3")
            .with(CACHE_TTL_SECONDS, "0")
            .with(CONTAINER_ID, " replica-7 ")
            .with(MODEL_DIGEST, " sha256:abc ")
            .with(API_KEYS, "k1, k2")
            .with(JWT_SECRET, "s3cret")
            .with(DEFAULT_MODEL, "ALL-MINILM-L6-V2-INT8")
            .config();
        assert_eq!(
            config.limits,
            Limits {
                max_body_bytes: 100,
                max_inputs: 3,
                ..Limits::default()
            }
        );
        assert_eq!(config.cache.ttl_seconds, 0);
        assert!(!config.cache.enabled());
        assert_eq!(config.container_id, "replica-7");
        assert_eq!(config.models.all()[0].digest, "sha256:abc");
        assert!(config.credentials.api_keys.contains("k2"));
        assert!(config.credentials.jwt_secret.is_some());
        assert_eq!(config.models.default_model().kind, ModelKind::Int8);
    }

    #[test]
    fn a_blank_container_id_or_jwt_secret_means_unset() {
        let config = FakeVariables::default()
            .with(CONTAINER_ID, "  ")
            .with(JWT_SECRET, "")
            .config();
        assert_eq!(config.container_id, "sbert-service");
        assert!(config.credentials.jwt_secret.is_none());
    }

    #[test]
    fn an_invalid_number_names_the_variable_and_the_problem() {
        let three = error(FakeVariables::default().with(MAX_INPUTS, "three"));
        assert_eq!(
            three.to_string(),
            "variable `max_inputs`: `three` is not a whole number"
        );
        for (name, value) in [
            (CACHE_MAX_ENTRIES, "-1"),
            (MAX_BODY_BYTES, ""),
            (CACHE_TTL_SECONDS, "1.5"),
            (MAX_INPUT_CHARS, "1e3"),
        ] {
            let problem = error(FakeVariables::default().with(name, value));
            assert_eq!(problem.variable, name);
            assert!(
                problem.problem.ends_with("is not a whole number"),
                "{problem}"
            );
        }
        let huge = error(FakeVariables::default().with(CACHE_TTL_SECONDS, "99999999999999999999"));
        assert!(huge.problem.ends_with("is too large"), "{huge}");
    }

    #[test]
    fn an_unknown_default_model_lists_the_served_ones() {
        let problem = error(FakeVariables::default().with(DEFAULT_MODEL, "gpt-4"));
        assert_eq!(problem.variable, DEFAULT_MODEL);
        assert!(
            problem.problem.starts_with("`gpt-4` is not a served model")
                && problem.problem.contains("all-minilm-l6-v2-int8"),
            "{problem}"
        );
    }

    /// The edge build's variables (`cargo test --no-default-features --features remote config::tests::origin`).
    #[cfg(feature = "remote")]
    mod origin {
        use super::*;

        fn edge() -> FakeVariables {
            FakeVariables::default()
                .with(INFERENCE_URL, " http://127.0.0.1:3001/ ")
                .with(INFERENCE_TOKEN, "origin-key")
        }

        #[test]
        fn the_url_token_and_timeout_are_read() {
            let origin = edge().config().origin;
            assert_eq!(origin.url, "http://127.0.0.1:3001");
            assert_eq!(origin.token, "origin-key");
            assert_eq!(origin.timeout.as_secs(), DEFAULT_INFERENCE_TIMEOUT_SECONDS);
            let short = edge().with(INFERENCE_TIMEOUT_SECONDS, "2").config().origin;
            assert_eq!(short.timeout.as_secs(), 2);
        }

        #[test]
        fn each_problem_names_its_variable_and_never_the_token() {
            let missing = error(FakeVariables::default().with(INFERENCE_TOKEN, "origin-key"));
            assert_eq!(missing.to_string(), "variable `inference_url`: is not set");
            let path = error(edge().with(INFERENCE_URL, "http://origin:3001/v1"));
            assert_eq!(path.variable, INFERENCE_URL);
            assert!(path.problem.contains("without a path"), "{path}");
            let blank = error(edge().with(INFERENCE_TOKEN, "  "));
            assert_eq!(blank.to_string(), "variable `inference_token`: is not set");
            let unreadable = error(edge().failing(INFERENCE_TOKEN));
            assert_eq!(
                unreadable.to_string(),
                "variable `inference_token`: could not be read"
            );
            let zero = error(edge().with(INFERENCE_TIMEOUT_SECONDS, "0"));
            assert_eq!(zero.variable, INFERENCE_TIMEOUT_SECONDS);
        }
    }

    #[test]
    fn provider_failures_are_errors_that_hide_secret_reasons() {
        let keys = error(FakeVariables::default().failing(API_KEYS));
        assert_eq!(keys.to_string(), "variable `api_keys`: could not be read");
        let secret = error(FakeVariables::default().failing(JWT_SECRET));
        assert_eq!(secret.variable, JWT_SECRET);
        let digest = error(FakeVariables::default().failing(MODEL_DIGEST));
        assert_eq!(
            digest.to_string(),
            "variable `model_digest`: could not be read: provider unreachable"
        );
    }
}
