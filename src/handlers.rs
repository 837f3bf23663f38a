//! What each route does once it is matched and authorized: read the request, embed, answer.

use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::api::openai::{self, Embedding, EmbeddingsRequest, EmbeddingsResponse, ModelList};
use crate::api::original::{
    CosSimWeight, CosSimWeightRequest, CosSimWeightResponse, EncodeRequest, EncodeResponse,
    Encoded, MultipleEncodeResponse, ParaphraseRequest, ParaphraseResponse, PingResponse,
    SentencesRequest,
};
use crate::api::TextOrTexts;
use crate::cache::{entry_hash, hex, Cache, CacheSettings, Kv};
use crate::embed::{CacheStatus, EmbedError, Embedder, Embeddings, Infer, Timings, DIMENSIONS};
use crate::error::{ApiError, InternalKind};
use crate::http::{Method, Request, Response};
use crate::inputs::{Input, Inputs};
use crate::limits::Limits;
use crate::pooling::shorten;
use crate::settings::{self, Variables};
use crate::similarity::{cosine_matrix, paraphrase_mining};
use crate::tokenize::{self, MAX_TOKENS};

/// The host capabilities and per-request settings a request may use.
pub struct Services<'a> {
    pub variables: &'a dyn Variables,
    pub infer: &'a dyn Infer,
    /// The key-value store, when it could be opened (without it, nothing is cached).
    pub kv: Option<&'a dyn Kv>,
    pub limits: Limits,
    pub cache: CacheSettings,
    /// Unix seconds at the start of the request: JWT validity and cache expiry are judged by it.
    pub now: u64,
}

impl Services<'_> {
    /// Checks the limits, then embeds every input of the request in order, through the cache.
    fn embed(&self, inputs: &Inputs, truncate: bool) -> Result<Embeddings, ApiError> {
        self.limits.check_inputs(inputs)?;
        let tokenizer = tokenize::shared()
            .map_err(|error| ApiError::internal(InternalKind::Tokenizer, error))?;
        let cache = self
            .kv
            .and_then(|kv| Cache::new(kv, &self.cache, self.now, DIMENSIONS));
        Embedder::new(tokenizer, self.infer)
            .with_cache(cache.as_ref())
            .embed_inputs(&inputs.all(), truncate)
            .map_err(|error| match error {
                EmbedError::TooManyTokens { index, tokens } => ApiError::Unprocessable {
                    at: inputs.locate(index),
                    problem: format!(
                        "has {tokens} tokens; the model's limit is {MAX_TOKENS} \
                         (send `truncate: true` to truncate)"
                    ),
                },
                EmbedError::Tokenize(_) => ApiError::internal(InternalKind::Tokenizer, error),
                EmbedError::Infer(_) | EmbedError::OutputShape { .. } => {
                    ApiError::internal(InternalKind::Inference, error)
                }
            })
    }
}

/// A 200 with an embedding route's body, saying how the cache did and where the time went.
fn embedded_response(body: &impl Serialize, cache: CacheStatus, timings: Timings) -> Response {
    Response::json(200, body)
        .with_header("x-cache", cache.as_str())
        .with_header("server-timing", timings.server_timing())
}

pub type Handler = fn(&Request, &Services) -> Result<Response, ApiError>;

/// `GET /`: the load balancer's health check.
pub fn root(_: &Request, _: &Services) -> Result<Response, ApiError> {
    Ok(Response::empty(200))
}

pub fn ping(_: &Request, services: &Services) -> Result<Response, ApiError> {
    let container_id = settings::container_id(services.variables);
    Ok(Response::json(200, &PingResponse::new(container_id)))
}

/// `GET|POST /v1/encode`; a GET's answer also carries HTTP caching headers ([`Validators`]).
pub fn encode(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let parsed = EncodeRequest::from_request(request)?;
    let validators = matches!(request.method, Method::Get | Method::Head)
        .then(|| Validators::new(&parsed, &services.cache));
    if let Some(validators) = &validators {
        if validators.matched_by(request.header("if-none-match")) {
            return Ok(validators.apply(Response::empty(304)));
        }
    }
    let embedded = services.embed(&parsed.inputs(), parsed.truncate)?;
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
    /// `None` without a `model_digest`: an ETag that does not name the model would keep
    /// validating old embeddings after the model changed.
    etag: Option<String>,
    cache_control: String,
}

/// Changes when `/v1/encode`'s body changes for the same input and model.
const ENCODE_ETAG_VERSION: &str = "v1";

impl Validators {
    fn new(request: &EncodeRequest, cache: &CacheSettings) -> Self {
        let etag = (!cache.model_digest.is_empty()).then(|| {
            let input = Input::Text(&request.query);
            let hash = entry_hash(&cache.model_digest, request.truncate, input);
            format!("\"{ENCODE_ETAG_VERSION}-{}\"", hex(&hash[..16]))
        });
        Self {
            etag,
            cache_control: format!("private, max-age={}", cache.ttl_seconds),
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
        let response = response.with_header("cache-control", self.cache_control.clone());
        match &self.etag {
            Some(etag) => response.with_header("etag", etag.clone()),
            None => response,
        }
    }
}

pub fn multiple_encode(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = SentencesRequest::from_request(request)?;
    let embedded = services.embed(&request.inputs(), request.truncate)?;
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
    let embedded = services.embed(&request.inputs(), request.truncate)?;
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
    let sentences = &request.sentences;
    let embedded = services.embed(&sentences.inputs(), sentences.truncate)?;
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
    let embedded = services.embed(&request.inputs(), request.truncate)?;
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
        &EmbeddingsResponse::new(vectors, tokens),
        embedded.cache,
        embedded.timings,
    ))
}

pub fn models(_: &Request, _: &Services) -> Result<Response, ApiError> {
    Ok(Response::json(200, &ModelList::served()))
}

/// `GET /v1/models/{id}`; the id may contain a slash, literally or percent-encoded.
pub fn model(request: &Request, _: &Services) -> Result<Response, ApiError> {
    let id = request
        .route_path()
        .strip_prefix(MODELS_PREFIX)
        .unwrap_or_default();
    let id = percent_decode_str(id).decode_utf8_lossy();
    let model = openai::find_model(&id).ok_or_else(|| ApiError::ModelNotFound(id.into_owned()))?;
    Ok(Response::json(200, &model))
}

/// Where `GET /v1/models/{id}` ids start.
pub const MODELS_PREFIX: &str = "/v1/models/";
