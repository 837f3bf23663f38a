//! The rerank routes: Cohere's v1 and v2 (`/v1/rerank`, `/v2/rerank`) and TEI's (`/rerank`).
//! Each embeds the query and the documents through the cache, so re-ranking known documents
//! for a new query costs one inference (the query's), and scores each document by the cosine
//! similarity of the two unit vectors: semantic ranking by the bi-encoder, not a cross-encoder.

use sha2::{Digest, Sha256};

use super::{embed_within_limits, embedded_response, Services};
use crate::api::cohere::{Rerank, RerankResponse, RerankResult};
use crate::api::inputs::{InputField, Inputs};
use crate::api::json::read;
use crate::api::limits::check_inputs;
use crate::api::openai::find_model;
use crate::api::tei::{Rank, RerankRequest, RerankResponse as TeiRerankResponse};
use crate::embed::model::Model;
use crate::embed::tokenize::Truncation;
use crate::embed::{CacheStatus, Input, Timings};
use crate::http::error::{ApiError, InternalKind};
use crate::http::{Request, Response};
use crate::similarity;

/// The documents of a request ranked for its query.
struct Ranking {
    /// Every document's index and score, highest score first.
    order: Vec<(usize, f32)>,
    /// The tokens the model saw for the query and every document.
    tokens: usize,
    cache: CacheStatus,
    timings: Timings,
}

/// Embeds `query` and `documents` (the request field `field`) with `model` and ranks the
/// documents. `max_inputs` counts the documents; the query comes on top of them.
fn rank(
    services: &Services,
    model: &Model,
    query: &str,
    documents: &[String],
    field: &'static str,
    truncation: Truncation,
) -> Result<Ranking, ApiError> {
    let limits = &services.config.limits;
    let query = InputField::single("query", Input::Text(query));
    let documents = InputField::texts(field, documents);
    check_inputs(limits, &Inputs::new(vec![documents.clone()]))?;
    check_inputs(limits, &Inputs::new(vec![query.clone()]))?;
    let inputs = Inputs::new(vec![query, documents]);
    let embedded = embed_within_limits(services, model, &inputs, truncation)?;
    let (query, documents) = embedded
        .vectors
        .split_first()
        .ok_or_else(|| ApiError::internal(InternalKind::Inference, "no embedding for the query"))?;
    Ok(Ranking {
        order: similarity::rank(query, documents),
        tokens: embedded.token_counts.iter().sum(),
        cache: embedded.cache,
        timings: embedded.timings,
    })
}

/// `POST /v1/rerank`.
pub fn cohere_v1(request: &Request, services: &Services) -> Result<Response, ApiError> {
    cohere(request, services, Rerank::v1(request)?)
}

/// `POST /v2/rerank`.
pub fn cohere_v2(request: &Request, services: &Services) -> Result<Response, ApiError> {
    cohere(request, services, Rerank::v2(request)?)
}

fn cohere(request: &Request, services: &Services, rerank: Rerank) -> Result<Response, ApiError> {
    let models = &services.config.models;
    let model = match &rerank.model {
        Some(name) => find_model(models, name)?,
        None => models.default_model(),
    };
    let texts = rerank.documents.texts();
    let ranking = rank(
        services,
        model,
        &rerank.query,
        &texts,
        "documents",
        Truncation::Right,
    )?;
    let top_n = rerank.top_n.unwrap_or(texts.len());
    let results = ranking
        .order
        .iter()
        .take(top_n)
        .map(|&(index, relevance_score)| RerankResult {
            index,
            relevance_score,
            document: rerank
                .return_documents
                .then(|| rerank.documents.0[index].returned()),
        })
        .collect();
    let body = RerankResponse::new(
        response_id(request, services.now),
        model,
        rerank.api_version,
        results,
        ranking.tokens,
    );
    Ok(embedded_response(&body, ranking.cache, ranking.timings))
}

/// The longest `X-Request-Id` a response id repeats.
const MAX_REQUEST_ID: usize = 128;

/// Cohere's `id` of a response: the request's `X-Request-Id` (sbert-host gives every request
/// one, and logs it), or else an id in UUID form derived from the request's time and body.
fn response_id(request: &Request, now: u64) -> String {
    if let Some(id) = request.header("x-request-id").filter(|id| {
        (1..=MAX_REQUEST_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
    }) {
        return id.to_owned();
    }
    let digest = Sha256::new()
        .chain_update(now.to_le_bytes())
        .chain_update(&request.body)
        .finalize();
    let hex = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `POST /rerank`, TEI's: every text ranked, with the default model.
pub fn tei(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = read::<RerankRequest>(request)?.checked()?;
    let model = services.config.models.default_model();
    let ranking = rank(
        services,
        model,
        &request.query,
        &request.texts,
        "texts",
        request.truncation(),
    )?;
    let ranks = ranking
        .order
        .iter()
        .map(|&(index, score)| Rank {
            index,
            text: request.return_text.then(|| request.texts[index].clone()),
            score,
        })
        .collect();
    Ok(embedded_response(
        &TeiRerankResponse(ranks),
        ranking.cache,
        ranking.timings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn request(headers: Vec<(String, String)>, body: &str) -> Request {
        Request {
            method: Method::Post,
            path: "/v1/rerank".into(),
            query: String::new(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_response_id_is_the_request_id_or_derived_from_the_request() {
        let with_id = request(vec![("X-Request-Id".into(), "trace-42".into())], "{}");
        assert_eq!(response_id(&with_id, 1), "trace-42");
        let derived = response_id(&request(Vec::new(), "{}"), 1);
        assert_eq!(derived.len(), 36);
        assert_eq!(
            derived.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert_eq!(derived, response_id(&request(Vec::new(), "{}"), 1));
        assert_ne!(derived, response_id(&request(Vec::new(), "{}"), 2));
        assert_ne!(derived, response_id(&request(Vec::new(), "{ }"), 1));
        let unusable = request(vec![("x-request-id".into(), "a b".into())], "{}");
        assert_eq!(response_id(&unusable, 1), derived);
    }
}
