//! TEI's embedding routes (`POST /embed`, `POST /`), the Spin remote llm client's call that
//! shares `/embed`, and TEI's `GET /info`.

use serde_json::{Map, Value};

use super::{embed, embedded_response, Services};
use crate::api::json::json_object;
use crate::api::openai::find_model;
use crate::api::spin_remote::{self, SpinUsage};
use crate::api::tei::{EmbedRequest, EmbedResponse, Info};
use crate::embed::pooling::shorten;
use crate::embed::tokenize::Truncation;
use crate::http::error::ApiError;
use crate::http::{Request, Response};

/// `POST /` and TEI's `POST /embed`: `inputs` embedded with the default model.
pub fn embed_tei(request: &Request, services: &Services) -> Result<Response, ApiError> {
    tei_embed(json_object(request)?, services)
}

/// `POST /embed`, which two clients call with different bodies: TEI's `{"inputs", …}`, and
/// Spin's remote llm client's `{"model", "input": [...]}`. The body's field says which; a body
/// with both, or neither, is refused rather than guessed at.
pub fn embed_tei_or_spin(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let object = json_object(request)?;
    match (object.contains_key("inputs"), object.contains_key("input")) {
        (true, false) => tei_embed(object, services),
        (false, true) => spin_embed(object, services),
        (true, true) => Err(ApiError::Unprocessable {
            at: None,
            problem: "The body has both `inputs` (TEI's embed request) and `input` (Spin's \
                      remote llm client's, with `model`): send one of them."
                .into(),
        }),
        (false, false) => Err(ApiError::MissingFields(vec!["inputs"])),
    }
}

fn tei_embed(object: Map<String, Value>, services: &Services) -> Result<Response, ApiError> {
    let request = EmbedRequest::from_object(object)?;
    let model = services.config.models.default_model();
    let embedded = embed(services, model, &request.inputs(), request.truncation())?;
    // `normalize` changes nothing: every backend answers unit vectors, as the model's own
    // Normalize module does.
    let vectors = embedded
        .vectors
        .into_iter()
        .map(|vector| match request.dimensions {
            Some(dimensions) => shorten(vector, dimensions),
            None => vector,
        })
        .collect();
    Ok(embedded_response(
        &EmbedResponse(vectors),
        embedded.cache,
        embedded.timings,
    ))
}

fn spin_embed(object: Map<String, Value>, services: &Services) -> Result<Response, ApiError> {
    let request = spin_remote::EmbedRequest::from_object(object)?;
    let model = find_model(&services.config.models, &request.model)?;
    let embedded = embed(services, model, &request.inputs(), Truncation::Right)?;
    let body = spin_remote::EmbedResponse {
        usage: SpinUsage {
            prompt_token_count: embedded.token_counts.iter().sum(),
        },
        embeddings: embedded.vectors,
    };
    Ok(embedded_response(&body, embedded.cache, embedded.timings))
}

/// `GET /info`: public, and free of secrets.
pub fn info(_: &Request, services: &Services) -> Result<Response, ApiError> {
    Ok(Response::json(200, &Info::of(services.config)))
}
