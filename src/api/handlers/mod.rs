//! What each route does once it is matched and authorized: read the request, embed, answer.
//! The original and OpenAI routes are here; [`rerank`], [`tei`] and [`tokens`] hold the
//! retrieval families' routes, over the same [`embed`].

pub mod rerank;
pub mod tei;
pub mod tokens;

use percent_encoding::percent_decode_str;
use serde::Serialize;

use super::fields::TextOrTexts;
use super::inputs::Inputs;
use super::limits::check_inputs;
use super::openai::{
    self, Embedding, EmbeddingsRequest, EmbeddingsResponse, ModelList, ModelObject,
};
use super::original::{
    CosSimWeight, CosSimWeightRequest, CosSimWeightResponse, EncodeRequest, EncodeResponse,
    Encoded, HealthResponse, MultipleEncodeResponse, ParaphraseRequest, ParaphraseResponse,
    PingResponse, SentencesRequest,
};
use super::Services;
use crate::backend::Sequence;
use crate::embed::cache::{entry_hash, Cache};
use crate::embed::model::{Model, MAX_TOKENS};
use crate::embed::pooling::shorten;
use crate::embed::tokenize::{self, Truncation, CLS, SEP};
use crate::embed::{CacheStatus, EmbedError, Embedder, Embeddings, Input, Timings};
use crate::http::error::{ApiError, InternalKind};
use crate::http::{Method, Request, Response};
use crate::similarity::{cosine_matrix, paraphrase_mining};

/// Checks the limits, then embeds every input of the request in order with `model`, through
/// the cache.
fn embed(
    services: &Services,
    model: &Model,
    inputs: &Inputs,
    truncation: Truncation,
) -> Result<Embeddings, ApiError> {
    check_inputs(&services.config.limits, inputs)?;
    embed_within_limits(services, model, inputs, truncation)
}

/// [`embed`] as the original routes do: with the default model, truncating when `truncate` is set.
fn embed_original(
    services: &Services,
    inputs: &Inputs,
    truncate: bool,
) -> Result<Embeddings, ApiError> {
    let model = services.config.models.default_model();
    embed(services, model, inputs, Truncation::from_flag(truncate))
}

/// The embedded tokenizer, or the internal error that it failed to parse.
fn tokenizer() -> Result<&'static tokenize::TextTokenizer, ApiError> {
    tokenize::shared().map_err(|error| ApiError::internal(InternalKind::Tokenizer, error))
}

/// [`embed`] for inputs whose limits the caller checked (a rerank's query does not count
/// against `max_inputs`).
fn embed_within_limits(
    services: &Services,
    model: &Model,
    inputs: &Inputs,
    truncation: Truncation,
) -> Result<Embeddings, ApiError> {
    let cache = services
        .kv
        .and_then(|kv| Cache::new(kv, services.config.cache, model, services.now));
    Embedder::new(tokenizer()?, services.infer, model)
        .with_cache(cache.as_ref())
        .embed(&inputs.all(), truncation)
        .map_err(|error| match error {
            EmbedError::TooManyTokens { index, tokens } => too_many_tokens(inputs, index, tokens),
            EmbedError::Tokenize(_) => ApiError::internal(InternalKind::Tokenizer, error),
            EmbedError::Infer(error) => ApiError::inference(error),
            EmbedError::OutputShape { .. } => ApiError::internal(InternalKind::Inference, error),
        })
}

/// The 422 of the request's `index`-th input, `tokens` long, sent with `truncate: false`.
fn too_many_tokens(inputs: &Inputs, index: usize, tokens: usize) -> ApiError {
    ApiError::Unprocessable {
        at: inputs.locate(index),
        problem: format!(
            "has {tokens} tokens; the model's limit is {MAX_TOKENS} \
             (send `truncate: true` to truncate)"
        ),
    }
}

/// A 200 with an embedding route's body, saying how the cache did and where the time went.
fn embedded_response(body: &impl Serialize, cache: CacheStatus, timings: Timings) -> Response {
    Response::json(200, body)
        .with_header("x-cache", cache.as_str())
        .with_header("server-timing", timings.server_timing())
}

/// `GET /`: liveness, for the load balancer.
pub fn root(_: &Request, _: &Services) -> Result<Response, ApiError> {
    Ok(Response::empty(200))
}

/// `GET /v1/ping`: liveness, with the replica's name.
pub fn ping(_: &Request, services: &Services) -> Result<Response, ApiError> {
    let container_id = services.config.container_id.clone();
    Ok(Response::json(200, &PingResponse::new(container_id)))
}

/// `GET /health`: readiness. The configuration is valid (or the router would have answered
/// 503 naming the variable), and every served model embeds `[CLS] [SEP]` through the backend.
/// A store that cannot be read makes the cache `degraded`, not the service unready: requests
/// are then served uncached.
pub fn health(_: &Request, services: &Services) -> Result<Response, ApiError> {
    let empty = [CLS, SEP];
    let probe = [Sequence {
        ids: &empty,
        text: Some(""),
    }];
    for model in services.config.models.all() {
        let answered = services.infer.embed(model, &probe);
        if let Err(problem) = answered
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|vectors| match vectors.as_slice() {
                [vector] if vector.len() == model.dimensions => Ok(()),
                _ => Err(format!("{} vectors for one input", vectors.len())),
            })
        {
            eprintln!("health: model `{}`: {problem}", model.id);
            return Err(ApiError::NotReady(format!(
                "The model `{}` (graph `{}`) could not embed a test input; the log has the detail.",
                model.id, model.graph
            )));
        }
    }
    let cache_enabled = services.config.cache.enabled();
    let store_readable = services
        .kv
        .is_some_and(|kv| kv.get(HEALTH_PROBE_KEY).is_ok());
    Ok(Response::json(
        200,
        &HealthResponse {
            status: "ok",
            cache: if !cache_enabled || store_readable {
                "ok"
            } else {
                "degraded"
            },
            cache_enabled,
            models: services.config.models.all().iter().map(|m| m.id).collect(),
        },
    ))
}

/// The key `/health` reads to see that the store answers (it is never written).
const HEALTH_PROBE_KEY: &str = "health:probe";

/// `GET|POST /v1/encode`; a GET's answer also carries HTTP caching headers ([`Validators`]).
pub fn encode(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let parsed = EncodeRequest::from_request(request)?;
    let model = services.config.models.default_model();
    let validators = matches!(request.method, Method::Get | Method::Head)
        .then(|| Validators::new(&parsed, model, request, services));
    if let Some(validators) = &validators {
        if validators.matched_by(request.header("if-none-match")) {
            return Ok(validators.apply(Response::empty(304)));
        }
    }
    let truncation = Truncation::from_flag(parsed.truncate);
    let embedded = embed(services, model, &parsed.inputs(), truncation)?;
    let encoding =
        embedded.vectors.into_iter().next().ok_or_else(|| {
            ApiError::internal(InternalKind::Inference, "no embedding for the query")
        })?;
    let body = EncodeResponse {
        query: parsed.query,
        encoding,
    };
    let response = embedded_response(&body, embedded.cache, embedded.timings);
    Ok(match &validators {
        Some(validators) => validators.apply(response),
        None => response,
    })
}

/// `GET /v1/encode`'s HTTP caching headers. Its answer is a function of the query, the truncate
/// flag, the model and this code alone, so the ETag is derived from those (like the cache key):
/// a matching `If-None-Match` is answered 304 without looking anything up or embedding.
struct Validators {
    /// `None` without a model digest: an ETag that does not name the model would keep
    /// validating old embeddings after the model changed.
    etag: Option<String>,
    cache_control: String,
}

/// Changes when `/v1/encode`'s body changes for the same input and model.
const ENCODE_ETAG_VERSION: &str = "v1";

impl Validators {
    fn new(parsed: &EncodeRequest, model: &Model, request: &Request, services: &Services) -> Self {
        let etag = (!model.digest.is_empty()).then(|| {
            let input = Input::Text(&parsed.query);
            let hash = entry_hash(&model.digest, Truncation::from_flag(parsed.truncate), input);
            format!("\"{ENCODE_ETAG_VERSION}-{}\"", hex::encode(&hash[..16]))
        });
        let ttl = services.config.cache.ttl_seconds;
        let cache_control = match shared_lifetime(request, services) {
            0 => format!("private, max-age={ttl}"),
            shared => format!("max-age={ttl}, s-maxage={shared}"),
        };
        Self {
            etag,
            cache_control,
        }
    }

    /// Whether an `If-None-Match` list names this ETag (weak comparison, as RFC 9110 asks for
    /// this header) or is `*`. Without an ETag nothing matches.
    fn matched_by(&self, if_none_match: Option<&str>) -> bool {
        let (Some(etag), Some(tags)) = (&self.etag, if_none_match) else {
            return false;
        };
        tags.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }

    fn apply(&self, response: Response) -> Response {
        let response = response
            .with_header("cache-control", self.cache_control.clone())
            .with_header("vary", "Authorization");
        match &self.etag {
            Some(etag) => response.with_header("etag", etag.clone()),
            None => response,
        }
    }
}

/// Seconds shared caches (a CDN, sbert-host's HTTP cache) may reuse the answer, keyed by URL and
/// `Authorization`: at most `shared_cache_seconds` and the embedding cache's lifetime, never past
/// the token's own expiry, and 0 (private) when the query came in a body, which such caches do
/// not key on.
fn shared_lifetime(request: &Request, services: &Services) -> u64 {
    let settings = &services.config.cache;
    let token_left = services.grant.expires_at.map_or(u64::MAX, |expires_at| {
        expires_at.saturating_sub(services.now)
    });
    if !request.body.is_empty() {
        return 0;
    }
    settings
        .shared_seconds
        .min(settings.ttl_seconds)
        .min(token_left)
}

pub fn multiple_encode(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = SentencesRequest::from_request(request)?;
    let embedded = embed_original(services, &request.inputs(), request.truncate)?;
    let data = request
        .sentences
        .into_iter()
        .zip(embedded.vectors)
        .map(|(original, encoded)| Encoded { original, encoded })
        .collect();
    Ok(embedded_response(
        &MultipleEncodeResponse { data },
        embedded.cache,
        embedded.timings,
    ))
}

pub fn cos_sim_weight(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = CosSimWeightRequest::from_request(request)?;
    let embedded = embed_original(services, &request.inputs(), request.truncate)?;
    let a_count = match &request.a {
        TextOrTexts::One(_) => 1,
        TextOrTexts::Many(texts) => texts.len(),
    };
    let (a, b) = embedded.vectors.split_at_checked(a_count).ok_or_else(|| {
        ApiError::internal(InternalKind::Inference, "fewer embeddings than inputs")
    })?;
    let matrix = cosine_matrix(a, b);
    let score = matrix.first().and_then(|row| row.first()).copied();
    let cos_sim_weight = match (&request.a, &request.b, score) {
        (TextOrTexts::One(_), TextOrTexts::One(_), Some(score)) => CosSimWeight::Score(score),
        _ => CosSimWeight::Matrix(matrix),
    };
    Ok(embedded_response(
        &CosSimWeightResponse { cos_sim_weight },
        embedded.cache,
        embedded.timings,
    ))
}

pub fn paraphrase(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = ParaphraseRequest::from_request(request)?;
    let embedded = embed_original(services, &request.inputs(), request.truncate)?;
    // Counts beyond the address space mean "all of them".
    let saturate = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let pairs = paraphrase_mining(
        &embedded.vectors,
        saturate(request.top_k),
        saturate(request.max_pairs),
    );
    Ok(embedded_response(
        &ParaphraseResponse { pairs },
        embedded.cache,
        embedded.timings,
    ))
}

pub fn embeddings(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = EmbeddingsRequest::from_request(request)?;
    let model = openai::find_model(&services.config.models, &request.model)?;
    let embedded = embed(
        services,
        model,
        &request.inputs(),
        Truncation::from_flag(request.truncate),
    )?;
    let tokens = embedded.token_counts.iter().sum();
    let vectors = embedded
        .vectors
        .into_iter()
        .map(|vector| match request.dimensions {
            Some(dimensions) => shorten(vector, dimensions),
            None => vector,
        })
        .map(|vector| Embedding::encode(vector, request.encoding_format))
        .collect();
    Ok(embedded_response(
        &EmbeddingsResponse::new(model, vectors, tokens),
        embedded.cache,
        embedded.timings,
    ))
}

pub fn models(_: &Request, services: &Services) -> Result<Response, ApiError> {
    Ok(Response::json(200, &ModelList::of(&services.config.models)))
}

/// `GET /v1/models/{id}`; the id may contain a slash, literally or percent-encoded.
pub fn model(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let id = request
        .route_path()
        .strip_prefix(MODELS_PREFIX)
        .unwrap_or_default();
    let id = percent_decode_str(id).decode_utf8_lossy();
    let model = openai::find_model(&services.config.models, &id)?;
    Ok(Response::json(200, &ModelObject::of(model)))
}

/// Where `GET /v1/models/{id}` ids start.
pub const MODELS_PREFIX: &str = "/v1/models/";
