//! The tokenizer's routes: TEI's `POST /tokenize` and `POST /decode`, and `POST /v1/tokenize`
//! beside OpenAI's embeddings. They run the model's own tokenizer, and never the model.

use super::{tokenizer, too_many_tokens, Services};
use crate::api::json::read;
use crate::api::limits::check_inputs;
use crate::api::openai::find_model;
use crate::api::openai_tokenize::{TokenizeRequest, TokenizeResponse};
use crate::api::tei::{
    self, DecodeRequest, DecodeResponse, SimpleToken, TokenizeResponse as Tokens,
};
use crate::embed::tokenize::TooManyTokens;
use crate::embed::{model_sequence, SequenceError};
use crate::http::error::{ApiError, FieldRef, InternalKind};
use crate::http::{Request, Response};

/// The most tokens one `/tokenize` answer lists (about 9 MB of JSON): the whole answer is built in
/// the instance's memory, which is 128 MiB for the portable build. Inputs of ordinary text reach
/// it only in bulk (512 inputs of 256 tokens); one-letter words within the body limit reach ~4x it.
pub const MAX_TOKENIZED: usize = 131_072;

/// `POST /tokenize`: every token of each input, with where it was read (in characters).
pub fn tei_tokenize(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = read::<tei::TokenizeRequest>(request)?.checked()?;
    check_inputs(&services.config.limits, &request.inputs())?;
    let tokenizer = tokenizer()?;
    let mut listed = 0;
    let mut answer = Vec::new();
    for text in request.inputs.texts() {
        let tokens = tokenizer
            .tokens(text, request.add_special_tokens)
            .map_err(|error| ApiError::internal(InternalKind::Tokenizer, error))?;
        listed += tokens.len();
        if listed > MAX_TOKENIZED {
            return Err(ApiError::TooLarge {
                at: Some(FieldRef::whole("inputs")),
                problem: format!(
                    "has more than {MAX_TOKENIZED} tokens, the most one answer lists; send fewer or \
                     shorter inputs"
                ),
            });
        }
        answer.push(
            tokens
                .into_iter()
                .map(|token| SimpleToken::of(text, token))
                .collect(),
        );
    }
    Ok(Response::json(200, &Tokens(answer)))
}

/// `POST /decode`: the text each list of ids spells.
pub fn tei_decode(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = read::<DecodeRequest>(request)?.checked()?;
    let limit = services.config.limits.max_inputs;
    let count = request.ids.0.len();
    if count > limit {
        return Err(ApiError::TooLarge {
            at: Some(FieldRef::whole("ids")),
            problem: format!("has {count} inputs; the limit is {limit}"),
        });
    }
    let tokenizer = tokenizer()?;
    let texts = request
        .ids
        .0
        .iter()
        .map(|ids| {
            tokenizer
                .decode_ids(ids, request.skip_special_tokens)
                .map_err(|error| ApiError::internal(InternalKind::Tokenizer, error))
        })
        .collect::<Result<_, _>>()?;
    Ok(Response::json(200, &DecodeResponse(texts)))
}

/// `POST /v1/tokenize`: the ids `/v1/embeddings` would embed, truncated the same way.
pub fn openai_tokenize(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = TokenizeRequest::from_request(request)?;
    let model = find_model(&services.config.models, &request.model)?;
    let inputs = request.inputs();
    check_inputs(&services.config.limits, &inputs)?;
    let tokenizer = tokenizer()?;
    let sequences = inputs
        .all()
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            model_sequence(tokenizer, input, request.truncation())
                .map(|(ids, _)| ids)
                .map_err(|error| match error {
                    SequenceError::TooManyTokens(TooManyTokens(tokens)) => {
                        too_many_tokens(&inputs, index, tokens)
                    }
                    SequenceError::Tokenize(error) => {
                        ApiError::internal(InternalKind::Tokenizer, error)
                    }
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Response::json(
        200,
        &TokenizeResponse::new(model, sequences),
    ))
}
