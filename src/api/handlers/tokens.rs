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

/// `POST /tokenize`: every token of each input, with where it was read (in characters).
pub fn tei_tokenize(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = read::<tei::TokenizeRequest>(request)?.checked()?;
    check_inputs(&services.config.limits, &request.inputs())?;
    let tokenizer = tokenizer()?;
    let tokens = request
        .inputs
        .texts()
        .iter()
        .map(|text| {
            let tokens = tokenizer
                .tokens(text, request.add_special_tokens)
                .map_err(|error| ApiError::internal(InternalKind::Tokenizer, error))?;
            Ok(tokens
                .into_iter()
                .map(|token| SimpleToken::of(text, token))
                .collect())
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Response::json(200, &Tokens(tokens)))
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
