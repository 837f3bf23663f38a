//! [`Infer`] over an inference service reached by outbound HTTP: the edge build (`remote`). Everything else
//! of a request (auth, limits, routes, the key-value cache, tokenizing) stays in this component, on whatever
//! Spin host runs it; the model runs behind `inference_url`, an sbert-host serving the fast build (one, or
//! replicas behind a balancer).
//!
//! A request's cache misses go out in one `POST {inference_url}/v1/embeddings` (OpenAI's shape, which the
//! fast build serves), with `Authorization: Bearer {inference_token}`:
//! - as token ids (OpenAI's token-array `input`, without `[CLS]`/`[SEP]`): the edge has already tokenized and
//!   truncated them, so the service runs no tokenizer and embeds exactly the ids the edge counted. An input
//!   with no tokens at all (an empty text) cannot be written so (OpenAI refuses an empty id array); such
//!   inputs go as the text `""` in a call of their own;
//! - with `encoding_format: "base64"`: each vector comes back as its 384 little-endian f32, exact and a
//!   quarter of the JSON floats' size.
//!
//! Only a request too large for one call of the service's default limits (1 MiB of body, 2048 inputs) is
//! split into several calls, one after another.
//!
//! Faults become [`InferErrorKind`]s: unreachable or too slow → `Unavailable` (503 with `Retry-After`);
//! the service's 429 → `Overloaded` with its `Retry-After`; refused credentials, a refused destination or an
//! unusable answer → `BadGateway` (502), the cause in the detail for the log (never the token). A call that
//! never got an answer, or got 502/503/504 (a balancer whose replica went away, a draining replica), is sent
//! again, twice at most: embedding is idempotent, and behind a balancer or a Kubernetes Service the next
//! try reaches another replica.
//!
//! The HTTP call itself is behind [`Transport`] (`wasm::outbound` in the component), so this file is plain
//! Rust, tested natively.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{Infer, InferError, InferErrorKind, Sequence};
use crate::embed::model::Model;
use crate::embed::tokenize::{CLS, SEP};
use crate::http::error::excerpt;

/// The route of the inference service that embeds.
pub const EMBEDDINGS_PATH: &str = "/v1/embeddings";

/// Where the inference service is and how to call it (variables `inference_url`, `inference_token`,
/// `inference_timeout_seconds`).
#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http(s)://host[:port]`, without a trailing `/`.
    pub url: String,
    pub token: String,
    /// How long a call may wait for the answer to start, and then between its parts.
    pub timeout: Duration,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("url", &self.url)
            .field("token", &"<secret>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Origin {
    /// `inference_url` checked: an http(s) URL with a host and nothing after it but an optional `/` (what
    /// Spin's `allowed_outbound_hosts = ["{{ inference_url }}"]` accepts too). The problem otherwise.
    pub fn url(text: &str) -> Result<String, String> {
        let url = text.trim().trim_end_matches('/');
        let authority = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match authority {
            Some(authority)
                if !authority.is_empty()
                    && !authority.contains(['/', '?', '#', '@', ' ', '*', '{']) =>
            {
                Ok(url.to_owned())
            }
            _ => Err(format!(
                "`{}` is not an http(s) URL of a host without a path (e.g. `http://inference.internal:3000`)",
                excerpt(text)
            )),
        }
    }

    fn connect_timeout(&self) -> Duration {
        self.timeout.min(CONNECT_TIMEOUT)
    }
}

/// A new connection to the service must be made within this (or the whole timeout, if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Calls per request at most: the first and two more.
const ATTEMPTS: usize = 3;
/// Waits before the second and third attempt.
const RETRY_PAUSES: [Duration; ATTEMPTS - 1] =
    [Duration::from_millis(50), Duration::from_millis(250)];
/// `Retry-After` when the service is unreachable or did not say.
const DEFAULT_RETRY_AFTER_SECONDS: u64 = 1;
/// The longest `Retry-After` passed on.
const MAX_RETRY_AFTER_SECONDS: u64 = 3600;
/// Body bytes per call, under the service's default `max_body_bytes` (1 MiB).
const MAX_CALL_BYTES: usize = 768 * 1024;
/// Inputs per call: the service's default `max_inputs`.
const MAX_CALL_INPUTS: usize = 2048;

/// One `POST` of a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Post<'a> {
    pub url: &'a str,
    /// The bearer token.
    pub token: &'a str,
    pub body: &'a [u8],
    pub connect_timeout: Duration,
    /// For the answer's head, and then between parts of its body.
    pub timeout: Duration,
}

/// The service's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Why a call got no whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection, or it broke before the answer was whole: another try may reach a replica that answers.
    Unreachable(String),
    /// No answer within the timeout.
    TimedOut(String),
    /// The Spin host refused the destination (the component's `allowed_outbound_hosts`).
    Denied(String),
    /// Anything else (TLS, a malformed request).
    Other(String),
}

/// The outbound HTTP call, and waiting between attempts.
pub trait Transport {
    fn post(&self, post: &Post<'_>) -> Result<Answer, Failure>;
    fn pause(&self, duration: Duration);
}

pub struct Remote<T> {
    pub transport: T,
    pub origin: Origin,
}

impl<T: Transport> Infer for Remote<T> {
    fn embed(
        &self,
        model: &Model,
        sequences: &[Sequence<'_>],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let mut vectors = vec![Vec::new(); sequences.len()];
        for call in calls(sequences)? {
            let body = call.body(model.id);
            let answer = self.post(&body)?;
            let embedded = read_vectors(&answer, call.rows.len(), model.dimensions)
                .map_err(|problem| self.bad_gateway(format!("its answer {problem}")))?;
            for (row, vector) in call.rows.into_iter().zip(embedded) {
                vectors[row] = vector;
            }
        }
        Ok(vectors)
    }
}

impl<T: Transport> Remote<T> {
    /// One call, tried again when it may succeed on another try; the answer when it is a 200.
    fn post(&self, body: &[u8]) -> Result<Answer, InferError> {
        let url = format!("{}{EMBEDDINGS_PATH}", self.origin.url);
        let post = Post {
            url: &url,
            token: &self.origin.token,
            body,
            connect_timeout: self.origin.connect_timeout(),
            timeout: self.origin.timeout,
        };
        let mut pauses = RETRY_PAUSES.iter();
        loop {
            let outcome = self.transport.post(&post);
            let retry = match &outcome {
                Err(Failure::Unreachable(_)) => true,
                Ok(answer) => matches!(answer.status, 502..=504),
                Err(_) => false,
            };
            match pauses.next() {
                Some(&pause) if retry => self.transport.pause(pause),
                _ => return self.judge(outcome),
            }
        }
    }

    /// The last attempt's outcome as the client will be told it.
    fn judge(&self, outcome: Result<Answer, Failure>) -> Result<Answer, InferError> {
        let service = &self.origin.url;
        let unavailable = |retry_after: Option<&str>, detail: String| {
            InferError::of(
                InferErrorKind::Unavailable {
                    retry_after_seconds: retry_after_seconds(retry_after),
                },
                detail,
            )
        };
        match outcome {
            Ok(answer) if answer.status == 200 => Ok(answer),
            Ok(answer) => {
                let said = said(&answer);
                let retry_after = answer.retry_after.as_deref();
                Err(match answer.status {
                    401 | 403 => self.bad_gateway(format!(
                        "it refused the `inference_token` ({said}); set the variable to one of the service's api_keys"
                    )),
                    429 => InferError::of(
                        InferErrorKind::Overloaded {
                            retry_after_seconds: retry_after_seconds(retry_after),
                        },
                        format!("inference service {service} is overloaded ({said})"),
                    ),
                    502..=504 => unavailable(
                        retry_after,
                        format!("inference service {service} is unavailable after {ATTEMPTS} tries ({said})"),
                    ),
                    _ => self.bad_gateway(format!("it refused the call ({said})")),
                })
            }
            Err(Failure::Unreachable(why)) => Err(unavailable(
                None,
                format!("inference service {service} could not be reached in {ATTEMPTS} tries: {why}"),
            )),
            Err(Failure::TimedOut(why)) => Err(unavailable(
                None,
                format!(
                    "inference service {service} did not answer within {:?}: {why}",
                    self.origin.timeout
                ),
            )),
            Err(Failure::Denied(why)) => Err(self.bad_gateway(format!(
                "the Spin host refused to connect to it ({why}): the component's allowed_outbound_hosts must allow `inference_url`"
            ))),
            Err(Failure::Other(why)) => Err(self.bad_gateway(format!("the call failed: {why}"))),
        }
    }

    fn bad_gateway(&self, problem: String) -> InferError {
        InferError::of(
            InferErrorKind::BadGateway,
            format!("inference service {}: {problem}", self.origin.url),
        )
    }
}

/// `429: <the service's error message>`, for the log.
fn said(answer: &Answer) -> String {
    #[derive(Deserialize)]
    struct OpenAiError {
        error: Message,
    }
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let message = match serde_json::from_slice::<OpenAiError>(&answer.body) {
        Ok(error) => error.error.message,
        Err(_) => String::from_utf8_lossy(&answer.body).into_owned(),
    };
    format!("{}: {}", answer.status, excerpt(message.trim()))
}

/// Whole seconds of a `Retry-After`; its date form, or none, is the default.
fn retry_after_seconds(header: Option<&str>) -> u64 {
    header
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER_SECONDS, |seconds| {
            seconds.min(MAX_RETRY_AFTER_SECONDS)
        })
}

/// What one call sends: the rows (positions in the backend call) it embeds, as ids or as empty texts.
struct Call<'s> {
    rows: Vec<usize>,
    input: CallInput<'s>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CallInput<'s> {
    Ids(Vec<&'s [u32]>),
    Texts(Vec<&'static str>),
}

#[derive(Serialize)]
struct EmbeddingsCall<'a> {
    model: &'a str,
    input: &'a CallInput<'a>,
    encoding_format: &'static str,
}

impl Call<'_> {
    fn body(&self, model: &str) -> Vec<u8> {
        let call = EmbeddingsCall {
            model,
            input: &self.input,
            encoding_format: "base64",
        };
        serde_json::to_vec(&call).expect("ids and strings always serialize")
    }
}

/// The calls that embed `sequences`: their ids without `[CLS]`/`[SEP]`, split only where one call would be
/// over the service's default limits; then the empty ones as texts.
fn calls<'s>(sequences: &[Sequence<'s>]) -> Result<Vec<Call<'s>>, InferError> {
    let mut calls = Vec::new();
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    let mut bytes = 0;
    let mut empty = Vec::new();
    for (row, sequence) in sequences.iter().enumerate() {
        let inner = match sequence.ids {
            [CLS, inner @ .., SEP] => inner,
            other => {
                return Err(InferError::new(format!(
                    "row {row} is not framed by [CLS] and [SEP]: {} ids",
                    other.len()
                )))
            }
        };
        if inner.is_empty() {
            empty.push(row);
            continue;
        }
        // `[1, 22, 333],`: each id's digits and a separator, and the brackets.
        let size = inner
            .iter()
            .map(|&id| id.checked_ilog10().unwrap_or(0) as usize + 2)
            .sum::<usize>()
            + 2;
        if !rows.is_empty() && (bytes + size > MAX_CALL_BYTES || rows.len() == MAX_CALL_INPUTS) {
            calls.push(Call {
                rows: std::mem::take(&mut rows),
                input: CallInput::Ids(std::mem::take(&mut ids)),
            });
            bytes = 0;
        }
        rows.push(row);
        ids.push(inner);
        bytes += size;
    }
    if !rows.is_empty() {
        calls.push(Call {
            rows,
            input: CallInput::Ids(ids),
        });
    }
    if !empty.is_empty() {
        calls.push(Call {
            input: CallInput::Texts(vec![""; empty.len()]),
            rows: empty,
        });
    }
    Ok(calls)
}

/// The vectors of a 200 answer to a call of `rows` inputs, in input order; what is wrong with it otherwise.
fn read_vectors(answer: &Answer, rows: usize, width: usize) -> Result<Vec<Vec<f32>>, String> {
    #[derive(Deserialize)]
    struct EmbeddingsAnswer {
        data: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        index: usize,
        embedding: String,
    }
    let parsed: EmbeddingsAnswer = serde_json::from_slice(&answer.body).map_err(|error| {
        format!(
            "is not a list of base64 embeddings ({error}): {}",
            excerpt(&String::from_utf8_lossy(&answer.body))
        )
    })?;
    if parsed.data.len() != rows {
        return Err(format!(
            "has {} embeddings for {rows} inputs",
            parsed.data.len()
        ));
    }
    let mut vectors = vec![Vec::new(); rows];
    for item in parsed.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&item.embedding)
            .map_err(|error| format!("has an embedding that is not base64: {error}"))?;
        let slot = vectors
            .get_mut(item.index)
            .filter(|slot| slot.is_empty())
            .ok_or_else(|| format!("repeats or misplaces embedding index {}", item.index))?;
        if bytes.len() != width * 4 {
            return Err(format!(
                "has an embedding of {} bytes, not {width} floats",
                bytes.len()
            ));
        }
        *slot = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if slot.iter().any(|value| !value.is_finite()) {
            return Err(format!(
                "has a non-finite value in embedding {}",
                item.index
            ));
        }
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use serde_json::{json, Value};

    use super::*;
    use crate::embed::model::{ModelKind, DIMENSIONS};

    const URL: &str = "http://inference.internal:3000";
    const TOKEN: &str = "origin-secret";

    /// Records every call and pause; answers from a script, or by embedding each input as a vector that
    /// says which input it was (its first id, or -1 for an empty text).
    #[derive(Default)]
    struct FakeTransport {
        script: RefCell<VecDeque<Result<Answer, Failure>>>,
        calls: RefCell<Vec<Value>>,
        pauses: RefCell<Vec<Duration>>,
        posts: RefCell<Vec<(String, String, Duration, Duration)>>,
    }

    impl FakeTransport {
        fn scripted(outcomes: Vec<Result<Answer, Failure>>) -> Self {
            Self {
                script: RefCell::new(outcomes.into()),
                ..Self::default()
            }
        }
    }

    impl Transport for FakeTransport {
        fn post(&self, post: &Post<'_>) -> Result<Answer, Failure> {
            let body: Value = serde_json::from_slice(post.body).unwrap();
            self.calls.borrow_mut().push(body.clone());
            self.posts.borrow_mut().push((
                post.url.to_owned(),
                post.token.to_owned(),
                post.connect_timeout,
                post.timeout,
            ));
            if let Some(outcome) = self.script.borrow_mut().pop_front() {
                return outcome;
            }
            Ok(answer_for(&body))
        }

        fn pause(&self, duration: Duration) {
            self.pauses.borrow_mut().push(duration);
        }
    }

    fn vector_for(input: &Value) -> Vec<f32> {
        let marker = match input {
            Value::Array(ids) => ids[0].as_f64().unwrap() as f32,
            _ => -1.0,
        };
        let mut vector = vec![0.0; DIMENSIONS];
        vector[0] = marker;
        vector
    }

    /// A 200 embedding every input of `body`, in reverse order of `index` (the order must not matter).
    fn answer_for(body: &Value) -> Answer {
        let inputs = body["input"].as_array().unwrap();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .rev()
            .map(|(index, input)| {
                let bytes: Vec<u8> = vector_for(input)
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                json!({"object": "embedding", "index": index,
                       "embedding": base64::engine::general_purpose::STANDARD.encode(bytes)})
            })
            .collect();
        ok(json!({"object": "list", "data": data, "model": body["model"]}))
    }

    fn ok(body: Value) -> Answer {
        status(200, None, body)
    }

    fn status(status: u16, retry_after: Option<&str>, body: Value) -> Answer {
        Answer {
            status,
            retry_after: retry_after.map(str::to_owned),
            body: body.to_string().into_bytes(),
        }
    }

    fn remote(transport: FakeTransport) -> Remote<FakeTransport> {
        Remote {
            transport,
            origin: Origin {
                url: URL.into(),
                token: TOKEN.into(),
                timeout: Duration::from_secs(30),
            },
        }
    }

    fn fp32() -> Model {
        Model::new(ModelKind::Fp32, String::new())
    }

    fn seq(ids: &[u32]) -> Sequence<'_> {
        Sequence { ids, text: None }
    }

    const HELLO_WORLD: &[u32] = &[CLS, 7592, 2088, SEP];
    const HI: &[u32] = &[CLS, 7632, SEP];
    const EMPTY: &[u32] = &[CLS, SEP];

    fn embed(
        backend: &Remote<FakeTransport>,
        sequences: &[Sequence<'_>],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        backend.embed(&fp32(), sequences)
    }

    #[test]
    fn one_call_sends_every_sequences_ids_unframed_in_base64() {
        let backend = remote(FakeTransport::default());
        let vectors = embed(&backend, &[seq(HELLO_WORLD), seq(HI)]).unwrap();
        assert_eq!(vectors[0][0], 7592.0);
        assert_eq!(vectors[1][0], 7632.0);
        assert!(vectors.iter().all(|v| v.len() == DIMENSIONS));
        let calls = backend.transport.calls.borrow();
        assert_eq!(
            *calls,
            [json!({"model": "sentence-transformers/all-MiniLM-L6-v2",
                    "input": [[7592, 2088], [7632]], "encoding_format": "base64"})]
        );
        let posts = backend.transport.posts.borrow();
        let (url, token, connect, timeout) = &posts[0];
        assert_eq!(url, "http://inference.internal:3000/v1/embeddings");
        assert_eq!(token, TOKEN);
        assert_eq!(
            (*connect, *timeout),
            (CONNECT_TIMEOUT, Duration::from_secs(30))
        );
    }

    #[test]
    fn the_int8_model_is_asked_for_by_its_id() {
        let backend = remote(FakeTransport::default());
        let int8 = Model::new(ModelKind::Int8, String::new());
        backend.embed(&int8, &[seq(HI)]).unwrap();
        assert_eq!(
            backend.transport.calls.borrow()[0]["model"],
            "all-minilm-l6-v2-int8"
        );
    }

    #[test]
    fn empty_inputs_go_as_empty_texts_in_a_call_of_their_own() {
        let backend = remote(FakeTransport::default());
        let vectors = embed(&backend, &[seq(EMPTY), seq(HI), seq(EMPTY)]).unwrap();
        assert_eq!(
            vectors.iter().map(|v| v[0]).collect::<Vec<_>>(),
            [-1.0, 7632.0, -1.0]
        );
        let calls = backend.transport.calls.borrow();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["input"], json!([[7632]]));
        assert_eq!(calls[1]["input"], json!(["", ""]));
    }

    #[test]
    fn nothing_to_embed_makes_no_call() {
        let backend = remote(FakeTransport::default());
        assert!(embed(&backend, &[]).unwrap().is_empty());
        assert!(backend.transport.calls.borrow().is_empty());
    }

    #[test]
    fn only_a_request_over_the_services_limits_is_split() {
        let long: Vec<u32> = std::iter::once(CLS)
            .chain(std::iter::repeat_n(29_999, 254))
            .chain(std::iter::once(SEP))
            .collect();
        // 254 five-digit ids are ~1.5 KB of JSON: 600 of them are over 768 KiB.
        let sequences = vec![seq(&long); 600];
        let backend = remote(FakeTransport::default());
        let vectors = embed(&backend, &sequences).unwrap();
        assert_eq!(vectors.len(), 600);
        let calls = backend.transport.calls.borrow();
        assert_eq!(calls.len(), 2);
        assert!(calls
            .iter()
            .all(|call| call.to_string().len() <= MAX_CALL_BYTES + 100));
        let many = vec![seq(HI); MAX_CALL_INPUTS + 1];
        let backend = remote(FakeTransport::default());
        embed(&backend, &many).unwrap();
        let sizes: Vec<usize> = backend
            .transport
            .calls
            .borrow()
            .iter()
            .map(|call| call["input"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [MAX_CALL_INPUTS, 1]);
    }

    fn kind(outcomes: Vec<Result<Answer, Failure>>) -> (InferError, usize, Vec<Duration>) {
        let backend = remote(FakeTransport::scripted(outcomes));
        let error = embed(&backend, &[seq(HI)]).unwrap_err();
        let calls = backend.transport.calls.borrow().len();
        let pauses = backend.transport.pauses.borrow().clone();
        (error, calls, pauses)
    }

    fn unreachable() -> Result<Answer, Failure> {
        Err(Failure::Unreachable("connection refused".into()))
    }

    #[test]
    fn an_unreachable_service_is_tried_three_times_then_unavailable() {
        let (error, calls, pauses) = kind(vec![unreachable(), unreachable(), unreachable()]);
        assert_eq!(
            error.kind,
            InferErrorKind::Unavailable {
                retry_after_seconds: DEFAULT_RETRY_AFTER_SECONDS
            }
        );
        assert_eq!(calls, 3);
        assert_eq!(pauses, RETRY_PAUSES);
        assert!(
            error.detail.contains(URL) && error.detail.contains("connection refused"),
            "{error}"
        );
        assert!(!error.detail.contains(TOKEN));
    }

    #[test]
    fn a_retry_that_reaches_a_replica_succeeds() {
        let backend = remote(FakeTransport::scripted(vec![
            unreachable(),
            Ok(status(
                503,
                Some("1"),
                json!({"error": {"message": "draining"}}),
            )),
        ]));
        let vectors = embed(&backend, &[seq(HI)]).unwrap();
        assert_eq!(vectors[0][0], 7632.0);
        assert_eq!(backend.transport.calls.borrow().len(), 3);
    }

    #[test]
    fn the_services_overload_is_passed_on_with_its_retry_after_and_not_retried() {
        let busy = status(
            429,
            Some("7"),
            json!({"error": {"message": "the server is busy"}}),
        );
        let (error, calls, _) = kind(vec![Ok(busy)]);
        assert_eq!(
            error.kind,
            InferErrorKind::Overloaded {
                retry_after_seconds: 7
            }
        );
        assert_eq!(calls, 1);
        assert!(error.detail.contains("429: the server is busy"), "{error}");
        let dated = status(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), json!({}));
        let (error, _, _) = kind(vec![Ok(dated)]);
        assert_eq!(
            error.kind,
            InferErrorKind::Overloaded {
                retry_after_seconds: 1
            }
        );
    }

    #[test]
    fn a_service_unavailable_three_times_keeps_its_retry_after() {
        let draining = || {
            Ok(status(
                503,
                Some("4"),
                json!({"error": "unavailable", "message": "shutting down"}),
            ))
        };
        let (error, calls, _) = kind(vec![draining(), draining(), draining()]);
        assert_eq!(
            error.kind,
            InferErrorKind::Unavailable {
                retry_after_seconds: 4
            }
        );
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_timeout_is_unavailable_at_once() {
        let (error, calls, _) = kind(vec![Err(Failure::TimedOut("no answer".into()))]);
        assert!(matches!(error.kind, InferErrorKind::Unavailable { .. }));
        assert_eq!(calls, 1, "the timeout was already waited for");
    }

    #[test]
    fn a_refused_token_is_a_bad_gateway_naming_the_variable_but_not_the_token() {
        let refused = status(
            401,
            None,
            json!({"error": {"message": "The API key is not valid."}}),
        );
        let (error, calls, _) = kind(vec![Ok(refused)]);
        assert_eq!(error.kind, InferErrorKind::BadGateway);
        assert_eq!(calls, 1);
        assert!(
            error.detail.contains("inference_token") && error.detail.contains("401"),
            "{error}"
        );
        assert!(!error.detail.contains(TOKEN));
    }

    #[test]
    fn other_refusals_and_unusable_answers_are_bad_gateways() {
        for outcome in [
            Ok(status(
                422,
                None,
                json!({"error": {"message": "`input` item 0 must hold token ids"}}),
            )),
            Ok(status(
                500,
                None,
                json!({"error": "internal", "message": "oops"}),
            )),
            Ok(ok(json!({"data": "nope"}))),
            Ok(ok(json!({"data": []}))),
            Ok(ok(json!({"data": [{"index": 0, "embedding": "AAAA"}]}))),
            Ok(ok(json!({"data": [{"index": 3, "embedding": ""}]}))),
            Err(Failure::Denied("HttpRequestDenied".into())),
            Err(Failure::Other("TLS protocol error".into())),
        ] {
            let (error, _, _) = kind(vec![outcome.clone()]);
            assert_eq!(
                error.kind,
                InferErrorKind::BadGateway,
                "{outcome:?}: {error}"
            );
        }
        let (denied, _, _) = kind(vec![Err(Failure::Denied("HttpRequestDenied".into()))]);
        assert!(denied.detail.contains("allowed_outbound_hosts"), "{denied}");
    }

    #[test]
    fn inference_urls_are_hosts_without_paths() {
        assert_eq!(
            Origin::url(" http://127.0.0.1:3001/ ").unwrap(),
            "http://127.0.0.1:3001"
        );
        assert_eq!(
            Origin::url("https://inference.example.com").unwrap(),
            "https://inference.example.com"
        );
        for bad in [
            "",
            "127.0.0.1:3001",
            "ftp://host",
            "http://",
            "http://host/v1",
            "http://u@host",
            "{{ x }}",
        ] {
            assert!(Origin::url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_origins_debug_form_hides_the_token() {
        let origin = remote(FakeTransport::default()).origin;
        assert!(!format!("{origin:?}").contains(TOKEN));
    }
}
