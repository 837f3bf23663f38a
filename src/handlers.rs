//! What each route does once it is matched and authorized.

use crate::api::original::{
    CosSimWeightRequest, CosSimWeightResponse, EncodeRequest, EncodeResponse, PingResponse,
};
use crate::embed::{Embedder, Infer};
use crate::error::{ApiError, InternalKind};
use crate::http::{Request, Response};
use crate::settings::{self, Variables};
use crate::similarity::cosine;
use crate::tokenize;

/// The host capabilities a request may use.
pub struct Services<'a> {
    pub variables: &'a dyn Variables,
    pub infer: &'a dyn Infer,
}

impl Services<'_> {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ApiError> {
        let tokenizer = tokenize::shared()
            .map_err(|error| ApiError::internal(InternalKind::Tokenizer, error))?;
        Ok(Embedder::new(tokenizer, self.infer).embed(texts)?)
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
    let encoding = single(services.embed(&[&request.query])?)?;
    Ok(Response::json(
        200,
        &EncodeResponse {
            query: request.query,
            encoding,
        },
    ))
}

pub fn cos_sim_weight(request: &Request, services: &Services) -> Result<Response, ApiError> {
    let request = CosSimWeightRequest::from_request(request)?;
    let embeddings = services.embed(&[&request.a, &request.b])?;
    let [a, b] = embeddings.as_slice() else {
        return Err(ApiError::internal(
            InternalKind::Inference,
            "expected two embeddings",
        ));
    };
    Ok(Response::json(
        200,
        &CosSimWeightResponse {
            cos_sim_weight: cosine(a, b),
        },
    ))
}

fn single(embeddings: Vec<Vec<f32>>) -> Result<Vec<f32>, ApiError> {
    embeddings
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal(InternalKind::Inference, "expected one embedding"))
}
