//! What each route does once it is matched and authorized: read the request, embed, answer.

use percent_encoding::percent_decode_str;

use crate::api::openai::{self, Embedding, EmbeddingsRequest, EmbeddingsResponse, ModelList};
use crate::api::original::{
    CosSimWeight, CosSimWeightRequest, CosSimWeightResponse, EncodeRequest, EncodeResponse,
    Encoded, MultipleEncodeResponse, ParaphraseRequest, ParaphraseResponse, PingResponse,
    SentencesRequest,
};
use crate::api::TextOrTexts;
use crate::embed::{EmbedError, Embedder, Embeddings, Infer};
use crate::error::{ApiError, InternalKind};
use crate::http::{Request, Response};
use crate::inputs::Inputs;
use crate::limits::Limits;
use crate::pooling::shorten;
use crate::settings::{self, Variables};
use crate::similarity::{cosine_matrix, paraphrase_mining};
use crate::tokenize::{self, MAX_TOKENS};

/// The host capabilities and per-request settings a request may use.
pub struct Services<'a> {
    pub variables: &'a dyn Variables,
    pub infer: &'a dyn Infer,
    pub limits: Limits,
}

impl Services<'_> {
    /// Checks the limits, then embeds every input of the request in order.
    fn embed(&self, inputs: &Inputs, truncate: bool) -> Result<Embeddings, ApiError> {
        self.limits.check_inputs(inputs)?;
        let tokenizer = tokenize::shared()
            .map_err(|error| ApiError::internal(InternalKind::Tokenizer, error))?;
        Embedder::new(tokenizer, self.infer)
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

pub type Handler = fn(&Request, &Services) -> Result<Response, ApiError>;

/// `GET /`: the load balancer's health check.
pub fn root(_: &Request, _: &Services) -> Result<Response, ApiError> {
    Ok(Response::empty(200))
}

pub fn ping(_: &Request, services: &Services) -> Result<Response, ApiError> {
    let container_id = settings::container_id(services.variables);
    Ok(Response::json(200, &PingResponse::new(container_id)))
}

pub fn encode(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = EncodeRequest::from_request(request)?;
    let embedded = services.embed(&request.inputs(), request.truncate)?;
    let encoding =
        embedded.vectors.into_iter().next().ok_or_else(|| {
            ApiError::internal(InternalKind::Inference, "no embedding for the query")
        })?;
    Ok(Response::json(
        200,
        &EncodeResponse {
            query: request.query,
            encoding,
        },
    ))
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
    Ok(Response::json(200, &MultipleEncodeResponse { data }))
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
    let cos_sim_weight = match (&request.a, &request.b, matrix.as_slice()) {
        (TextOrTexts::One(_), TextOrTexts::One(_), [row]) => CosSimWeight::Score(row[0]),
        _ => CosSimWeight::Matrix(matrix),
    };
    Ok(Response::json(
        200,
        &CosSimWeightResponse { cos_sim_weight },
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
    Ok(Response::json(200, &ParaphraseResponse { pairs }))
}

pub fn embeddings(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = EmbeddingsRequest::from_request(request)?;
    let embedded = services.embed(&request.inputs(), request.truncate)?;
    let vectors = embedded
        .vectors
        .into_iter()
        .map(|vector| match request.dimensions {
            Some(dimensions) => shorten(vector, dimensions),
            None => vector,
        })
        .map(|vector| Embedding::encode(vector, request.encoding_format))
        .collect();
    let tokens = embedded.token_counts.iter().sum();
    Ok(Response::json(
        200,
        &EmbeddingsResponse::new(vectors, tokens),
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
