//! Whole-component tests: a request through admission, routing, the handlers and the embedding
//! pipeline to its JSON answer, with a stand-in backend and store (the integration tests in
//! `tests/` run the real ones). The harness is here; the tests are grouped by subject below.

use serde_json::Value;

use crate::api::Services;
use crate::backend::{Infer, InferError, Sequence};
use crate::config::tests::FakeVariables;
use crate::config::{self, Config, ConfigError};
use crate::embed::cache::tests::FakeKv;
use crate::embed::cache::Kv;
use crate::embed::model::Model;
use crate::embed::tests::FakeModel;
use crate::http::{Method, Request, Response};
use crate::routes::{admit, respond};

const KEY: &str = "test-key";

struct FailingModel;

impl Infer for FailingModel {
    fn embed(&self, _: &Model, _: &[Sequence<'_>]) -> Result<Vec<Vec<f32>>, InferError> {
        Err(InferError::new("session at /opt/secret/model.onnx failed"))
    }
}

fn variables() -> FakeVariables {
    FakeVariables::default().with(config::API_KEYS, "other-key, test-key")
}

fn request(method: &str, target: &str, body: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Request {
        method: Method::parse(method),
        path: path.into(),
        query: query.into(),
        headers: vec![("Authorization".into(), format!("Bearer {KEY}"))],
        body: body.as_bytes().to_vec(),
    }
}

const NOW: u64 = 1_700_000_000;

/// What the entry point assembles for a request: the parsed configuration and the host's
/// capabilities.
struct Env<'a> {
    config: Result<Config, ConfigError>,
    infer: &'a dyn Infer,
    kv: Option<&'a dyn Kv>,
}

fn env<'a>(variables: &FakeVariables, infer: &'a dyn Infer, kv: Option<&'a dyn Kv>) -> Env<'a> {
    Env {
        config: Config::from_variables(variables),
        infer,
        kv,
    }
}

/// The entry point's steps, with the body already read.
fn handle(request: &Request, env: &Env) -> Response {
    match admit(request, &env.config, NOW) {
        Err(refused) => refused,
        Ok(admitted) => {
            let services = Services {
                config: admitted.config,
                grant: admitted.grant,
                infer: env.infer,
                kv: env.kv,
                now: NOW,
            };
            respond(admitted, request, &services)
        }
    }
}

fn send_with(request: Request, variables: &FakeVariables, infer: &dyn Infer) -> Response {
    handle(&request, &env(variables, infer, None))
}

fn send(request: Request) -> Response {
    send_with(request, &variables(), &FakeModel::default())
}

fn json_body(response: &Response) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&response.body)))
}

fn without_auth(mut request: Request) -> Request {
    request.headers.clear();
    request
}

/// The secret of the JWTs [`jwt`] signs.
const JWT_SECRET: &str = "jwt-secret";

/// An HS256 JWT signed with [`JWT_SECRET`] that expires at `exp`.
fn jwt(exp: u64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};

    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

mod admission;
mod cache;
mod errors;
mod openai;
mod original;
mod public;
mod rerank;
mod tei;
mod tokens;
