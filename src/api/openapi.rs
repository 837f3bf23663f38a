//! The OpenAPI 3.1 document, generated: the schemas are derived from the request and response
//! types (`utoipa::ToSchema`), the operations are built here beside one description of each
//! family's errors. `docs/openapi.json` is this document written out and is what `/openapi.json`
//! serves byte for byte (no generation per request); a test fails when the two differ, and
//! `cargo test -p sbert-service openapi_write -- --ignored` rewrites the file.

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use super::cohere::{RerankRequest, RerankResponse, RerankV2Request};
use super::openai::{EmbeddingsRequest, EmbeddingsResponse, ModelList, ModelObject};
use super::openai_tokenize::{TokenizeRequest, TokenizeResponse};
use super::original::{
    CosSimWeightRequest, CosSimWeightResponse, EncodeRequest, EncodeResponse, HealthResponse,
    MultipleEncodeResponse, ParaphraseRequest, ParaphraseResponse, PingResponse, SentencesRequest,
};
use super::{spin_remote, tei};
use crate::http::error::{
    CohereErrorBody, Family, HttpErrorBody, InternalErrorBody, OpenAiErrorBody, TeiErrorBody,
    UnavailableBody,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sbert-service",
        version = "0.1.0",
        description = "Sentence embeddings from sentence-transformers/all-MiniLM-L6-v2 (384 dimensions; fp32, and int8 weights as `all-minilm-l6-v2-int8`), served by a Spin component. Original routes (`/v1/encode`, `/v1/encode/multiple_encode`, `/v1/encode/cos_sim_weight`, `/v1/paraphrase`) keep the shapes of the service they replace and use the `default_model` variable's model; `/v1/embeddings` and `/v1/models` follow OpenAI's embeddings API (`/v1/tokenize` beside them); `/v1/rerank` and `/v2/rerank` follow Cohere's rerank API; `/embed`, `/rerank`, `/tokenize`, `/decode`, `/info` and `POST /` follow text-embeddings-inference (TEI), and `/embed` also answers Spin's remote llm client. Reranking is semantic ranking by this bi-encoder: a document's score is the cosine similarity of its embedding and the query's (what `/v1/encode/cos_sim_weight` answers), not a cross-encoder's relevance. Every route answers with or without a trailing slash. Every route except `GET /`, `/v1/ping`, `/health`, `/info`, `/openapi.json` and `/docs` needs `Authorization: Bearer <API key or HS256 JWT>`. Errors come in each family's shape. An invalid variable makes every route answer 503 naming it. Under load the host refuses a request with 429 (overloaded) or 503 (draining, not ready) and `Retry-After: 1` before the component sees it.",
    ),
    servers((url = "/")),
    security(("bearer" = [])),
    components(schemas(
        PingResponse, HealthResponse, EncodeRequest, EncodeResponse, SentencesRequest,
        MultipleEncodeResponse, CosSimWeightRequest, CosSimWeightResponse, ParaphraseRequest,
        ParaphraseResponse, EmbeddingsRequest, EmbeddingsResponse, ModelObject, ModelList,
        TokenizeRequest, TokenizeResponse, RerankRequest, RerankV2Request, RerankResponse,
        tei::EmbedRequest, tei::EmbedResponse, tei::RerankRequest, tei::RerankResponse,
        tei::TokenizeRequest, tei::TokenizeResponse, tei::DecodeRequest, tei::DecodeResponse,
        tei::Info, spin_remote::EmbedRequest, spin_remote::EmbedResponse,
        HttpErrorBody, InternalErrorBody, OpenAiErrorBody, UnavailableBody, CohereErrorBody,
        TeiErrorBody,
    )),
    modifiers(&Routes),
)]
struct Document;

/// The document, as `docs/openapi.json` holds it.
pub fn document() -> String {
    Document::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

/// Adds the bearer scheme and every route's operation.
struct Routes;

impl Modify for Routes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key from the `api_keys` variable, or an HS256 JWT signed with the `jwt_secret` variable.",
            ))
            .build();
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        }
        for (path, method, operation) in operations() {
            openapi
                .paths
                .add_path_operation(path, vec![method], operation);
        }
    }
}

const MISCONFIGURED: &str =
    "Not configured correctly: a variable has an invalid value (the message names it and the problem)";

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json(description: &str, schema: RefOr<Schema>) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
}

fn header(description: &str, schema: impl Into<RefOr<Schema>>) -> Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

fn string_header(description: &str) -> Header {
    header(description, Object::with_type(Type::String))
}

/// The headers of every embedding answer.
fn embedded(response: ResponseBuilder) -> ResponseBuilder {
    let cache = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["HIT", "MISS", "PARTIAL"]));
    response
        .header(
            "X-Cache",
            header(
                "`HIT` when every input came from the embedding cache, `MISS` when none did, `PARTIAL` otherwise.",
                cache,
            ),
        )
        .header(
            "Server-Timing",
            string_header("Durations of the request's `tokenize`, `cache` and `inference` steps."),
        )
}

fn retry_after() -> Header {
    header(
        "Seconds to wait before retrying (`1`).",
        Object::with_type(Type::Integer),
    )
}

/// One family's errors: `(status, description)` per status the route can answer.
struct Errors {
    family: Family,
    statuses: &'static [(u16, &'static str)],
}

const ORIGINAL_EMBEDDING_ERRORS: Errors = Errors {
    family: Family::Original,
    statuses: &[
        (400, "Malformed JSON or invalid field"),
        (401, "Missing or invalid credentials"),
        (405, "Method not allowed"),
        (413, "Body, input count or input length over the limit"),
        (415, "Body is not JSON"),
        (
            422,
            "Field has the wrong type or value, or an input is too long with `truncate: false`",
        ),
        (429, "Overloaded: refused by the host before any work"),
        (500, "Unexpected failure"),
        (503, MISCONFIGURED),
    ],
};

const EMBEDDINGS_ERRORS: Errors = Errors {
    family: Family::OpenAi,
    statuses: &[
        (400, "Malformed JSON or a missing required field"),
        (401, "Missing or invalid credentials"),
        (404, "Unknown model"),
        (405, "Method not allowed"),
        (413, "Body or input count over the limit"),
        (415, "Body is not JSON"),
        (422, "Field has the wrong type or value"),
        (429, "Overloaded: refused by the host before any work"),
        (500, "Unexpected failure"),
        (503, MISCONFIGURED),
    ],
};

const MODELS_ERRORS: Errors = Errors {
    family: Family::OpenAi,
    statuses: &[
        (401, "Missing or invalid credentials"),
        (405, "Method not allowed"),
        (429, "Overloaded: refused by the host before any work"),
        (500, "Unexpected failure"),
        (503, MISCONFIGURED),
    ],
};

const MODEL_ERRORS: Errors = Errors {
    family: Family::OpenAi,
    statuses: &[
        (401, "Missing or invalid credentials"),
        (404, "Unknown model"),
        (405, "Method not allowed"),
        (429, "Overloaded: refused by the host before any work"),
        (500, "Unexpected failure"),
        (503, MISCONFIGURED),
    ],
};

const RERANK_ERRORS: Errors = Errors {
    family: Family::Cohere,
    statuses: &[
        (400, "Malformed JSON, a missing required field, or no documents"),
        (401, "Missing or invalid credentials"),
        (404, "Unknown model"),
        (405, "Method not allowed"),
        (413, "Body, document count or a text's length over the limit"),
        (415, "Body is not JSON"),
        (
            422,
            "Field has the wrong type or value (a document that is not a string or an object with a string `text`, `top_n` out of range, an empty query)",
        ),
        (429, "Overloaded: refused by the host before any work"),
        (500, "Unexpected failure"),
        (503, MISCONFIGURED),
    ],
};

const TEI_ERRORS: Errors = Errors {
    family: Family::Tei,
    statuses: &[
        (
            400,
            "Malformed JSON, a missing required field, or an empty list (`error_type`: `Empty`)",
        ),
        (401, "Missing or invalid credentials"),
        (405, "Method not allowed"),
        (
            413,
            "Body, input count or an input's length over the limit, or a `/tokenize` answer of more than 131,072 tokens (`error_type`: `Validation`)",
        ),
        (415, "Body is not JSON"),
        (
            422,
            "Field has the wrong type or value, or an input is too long with `truncate: false` (`error_type`: `Validation`)",
        ),
        (
            424,
            "The model or its tokenizer failed (`error_type`: `Backend` or `Tokenizer`)",
        ),
        (429, "Overloaded: refused by the host before any work"),
        (503, MISCONFIGURED),
    ],
};

/// `/embed` adds Spin's request, whose `model` may be unknown.
const EMBED_ERRORS: Errors = Errors {
    family: Family::Tei,
    statuses: &[
        (
            400,
            "Malformed JSON, neither `inputs` nor `input`, a missing required field, or an empty list (`error_type`: `Empty`)",
        ),
        (401, "Missing or invalid credentials"),
        (404, "Unknown model (Spin's request)"),
        (405, "Method not allowed"),
        (
            413,
            "Body, input count or an input's length over the limit (`error_type`: `Validation`)",
        ),
        (415, "Body is not JSON"),
        (
            422,
            "Both `inputs` and `input`, a field with the wrong type or value, or an input too long with `truncate: false` (`error_type`: `Validation`)",
        ),
        (
            424,
            "The model or its tokenizer failed (`error_type`: `Backend` or `Tokenizer`)",
        ),
        (429, "Overloaded: refused by the host before any work"),
        (503, MISCONFIGURED),
    ],
};

const INFO_ERRORS: Errors = Errors {
    family: Family::Tei,
    statuses: &[(503, MISCONFIGURED)],
};

/// Public routes answer only the configuration's (or the host's) 503 besides their own.
const PUBLIC_ERRORS: Errors = Errors {
    family: Family::Original,
    statuses: &[(503, MISCONFIGURED)],
};

impl Errors {
    /// The schema of a body with `status` in this family (see `ApiError::into_response`).
    fn schema(&self, status: u16) -> RefOr<Schema> {
        match (self.family, status) {
            (Family::OpenAi, _) => schema_ref("OpenAIError"),
            (Family::Cohere, _) => schema_ref("CohereError"),
            (Family::Tei, _) => schema_ref("TeiError"),
            (Family::Original, 500) => schema_ref("InternalError"),
            (Family::Original, 503) => schema_ref("ServiceUnavailable"),
            (Family::Original, _) => schema_ref("Error"),
        }
    }

    fn add_to(&self, mut operation: OperationBuilder) -> OperationBuilder {
        for &(status, description) in self.statuses {
            let mut response = json(description, self.schema(status));
            if matches!(status, 429 | 503) {
                response = response.header("Retry-After", retry_after());
            }
            operation = operation.response(status.to_string(), response.build());
        }
        operation
    }
}

fn operation(id: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
}

/// Public routes need no credentials (`security: []`).
fn public(id: &str, summary: &str) -> OperationBuilder {
    operation(id, summary).securities(Some(Vec::<SecurityRequirement>::new()))
}

fn body(schema: &str) -> Option<utoipa::openapi::request_body::RequestBody> {
    Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", Content::new(Some(schema_ref(schema))))
            .build(),
    )
}

type Operation = (&'static str, HttpMethod, OperationBuilder);

fn operations() -> Vec<Operation> {
    let mut all = public_operations();
    all.extend(original_operations());
    all.extend(openai_operations());
    all.extend(rerank_operations());
    all.extend(tei_operations());
    all
}

/// A JSON request body that is one of `schemas`.
fn body_one_of(schemas: &[&str]) -> Option<utoipa::openapi::request_body::RequestBody> {
    let one_of = schemas.iter().fold(OneOfBuilder::new(), |one_of, schema| {
        one_of.item(schema_ref(schema))
    });
    Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", Content::new(Some(one_of)))
            .build(),
    )
}

fn rerank_operations() -> Vec<Operation> {
    let ranked = || {
        embedded(json(
            "The best `top_n` documents, highest `relevance_score` (cosine similarity) first",
            schema_ref("CohereRerankResponse"),
        ))
        .build()
    };
    let described = |operation: OperationBuilder| {
        operation.description(Some(
            "Semantic ranking by this bi-encoder: each document's `relevance_score` is the cosine \
             similarity of its embedding and the query's (from -1 to 1, what \
             `/v1/encode/cos_sim_weight` answers), not a cross-encoder's calibrated relevance. \
             The query and documents go through the embedding cache, so ranking known documents \
             for a new query embeds only the query. Documents are truncated to 256 tokens.",
        ))
    };
    vec![
        (
            "/v1/rerank",
            HttpMethod::Post,
            RERANK_ERRORS.add_to(
                described(operation("rerank", "Rerank documents (Cohere v1)"))
                    .request_body(body("CohereRerankRequest"))
                    .response("200", ranked()),
            ),
        ),
        (
            "/v2/rerank",
            HttpMethod::Post,
            RERANK_ERRORS.add_to(
                described(operation("rerankV2", "Rerank documents (Cohere v2)"))
                    .request_body(body("CohereRerankV2Request"))
                    .response("200", ranked()),
            ),
        ),
    ]
}

fn tei_operations() -> Vec<Operation> {
    let tei_embed = |id| {
        TEI_ERRORS.add_to(
            operation(id, "Embed (text-embeddings-inference)")
                .description(Some(
                    "TEI's embedding route, with the `default_model` variable's model. `normalize` \
                     changes nothing: the model's embeddings are unit vectors either way.",
                ))
                .request_body(body("TeiEmbedRequest"))
                .response(
                    "200",
                    embedded(json(
                        "One vector per input, in order",
                        schema_ref("TeiEmbedResponse"),
                    ))
                    .build(),
                ),
        )
    };
    let embed_answer = OneOfBuilder::new()
        .item(schema_ref("TeiEmbedResponse"))
        .item(schema_ref("SpinEmbedResponse"));
    vec![
        ("/", HttpMethod::Post, tei_embed("teiEmbedRoot")),
        (
            "/embed",
            HttpMethod::Post,
            EMBED_ERRORS.add_to(
                operation("embed", "Embed (TEI, or Spin's remote llm client)")
                    .description(Some(
                        "Two clients call `/embed`: TEI's (`inputs`, answered with a list of \
                         vectors) and Spin's remote llm client (`[llm_compute] type = \
                         \"remote_http\"`: `model` and `input`, answered with `embeddings` and \
                         `usage.promptTokenCount`). The body's field tells them apart; a body \
                         with both `inputs` and `input`, or neither, is refused. TEI's request \
                         uses the `default_model` variable's model.",
                    ))
                    .request_body(body_one_of(&["TeiEmbedRequest", "SpinEmbedRequest"]))
                    .response(
                        "200",
                        embedded(json("The vectors, in input order", embed_answer.into())).build(),
                    ),
            ),
        ),
        (
            "/rerank",
            HttpMethod::Post,
            TEI_ERRORS.add_to(
                operation("teiRerank", "Rerank texts (text-embeddings-inference)")
                    .description(Some(
                        "Every text's `score` is the cosine similarity of its embedding and the \
                         query's (a bi-encoder's semantic ranking; `raw_scores` changes nothing, \
                         as there are no logits), with the `default_model` variable's model.",
                    ))
                    .request_body(body("TeiRerankRequest"))
                    .response(
                        "200",
                        embedded(json(
                            "Every text, highest score first",
                            schema_ref("TeiRerankResponse"),
                        ))
                        .build(),
                    ),
            ),
        ),
        (
            "/tokenize",
            HttpMethod::Post,
            TEI_ERRORS.add_to(
                operation("teiTokenize", "Tokenize (text-embeddings-inference)")
                    .description(Some(
                        "Every token of each input, not truncated; `start` and `stop` count \
                         characters (Unicode scalar values), not bytes.",
                    ))
                    .request_body(body("TeiTokenizeRequest"))
                    .response(
                        "200",
                        json("Per input, its tokens", schema_ref("TeiTokenizeResponse")).build(),
                    ),
            ),
        ),
        (
            "/decode",
            HttpMethod::Post,
            TEI_ERRORS.add_to(
                operation("teiDecode", "Decode token ids (text-embeddings-inference)")
                    .request_body(body("TeiDecodeRequest"))
                    .response(
                        "200",
                        json("Per id list, its text", schema_ref("TeiDecodeResponse")).build(),
                    ),
            ),
        ),
        (
            "/info",
            HttpMethod::Get,
            INFO_ERRORS.add_to(
                public("teiInfo", "Model and service information (text-embeddings-inference)")
                    .response(
                        "200",
                        json(
                            "TEI's fields for the default model, then this build's and every served model's",
                            schema_ref("TeiInfo"),
                        )
                        .build(),
                    ),
            ),
        ),
    ]
}

fn public_operations() -> Vec<Operation> {
    let public_errors = |operation| PUBLIC_ERRORS.add_to(operation);
    vec![
        (
            "/",
            HttpMethod::Get,
            public_errors(
                public("health", "Load-balancer health check")
                    .response("200", ResponseBuilder::new().description("Healthy (empty body)").build()),
            ),
        ),
        (
            "/v1/ping",
            HttpMethod::Get,
            public_errors(
                public("ping", "Liveness and identity")
                    .response("200", json("Pong", schema_ref("Ping")).build()),
            ),
        ),
        (
            "/health",
            HttpMethod::Get,
            public(
                "readiness",
                "Readiness: the configuration is valid and every served model embeds a test input",
            )
            .response("200", json("Ready", schema_ref("Health")).build())
            .response(
                "503",
                json(
                    "Not ready: an invalid variable (named, with the problem) or a model that cannot embed",
                    schema_ref("ServiceUnavailable"),
                )
                .header("Retry-After", retry_after())
                .build(),
            ),
        ),
        (
            "/openapi.json",
            HttpMethod::Get,
            public_errors(public("openapi", "This document").response(
                "200",
                json("OpenAPI 3.1 document", Object::with_type(Type::Object).into()).build(),
            )),
        ),
        (
            "/docs",
            HttpMethod::Get,
            public_errors(public("docs", "Interactive API documentation").response(
                "200",
                ResponseBuilder::new()
                    .description("HTML page")
                    .content(
                        "text/html",
                        Content::new(Some(Object::with_type(Type::String))),
                    )
                    .build(),
            )),
        ),
    ]
}

fn original_operations() -> Vec<Operation> {
    let errors = |operation| ORIGINAL_EMBEDDING_ERRORS.add_to(operation);
    let ok = |description, schema| embedded(json(description, schema_ref(schema))).build();
    let query = ParameterBuilder::new()
        .name("query")
        .parameter_in(ParameterIn::Query)
        .required(Required::True)
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .pattern(Some(r"\S")),
        ))
        .description(Some(
            "The sentence. Surrounding whitespace is stripped; it must not be empty.",
        ));
    let if_none_match = ParameterBuilder::new()
        .name("If-None-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .schema(Some(Object::with_type(Type::String)))
        .description(Some(
            "An `ETag` from an earlier answer for the same query: answered 304 without embedding.",
        ));
    let encode_get = embedded(json("The embedding", schema_ref("EncodeResponse")))
        .header(
            "ETag",
            string_header("Identifies the model, truncation and query."),
        )
        .header(
            "Cache-Control",
            string_header(
                "`max-age=<cache_ttl_seconds>, s-maxage=<seconds>`: shared caches keyed by URL and \
                 `Authorization` may reuse the answer for `shared_cache_seconds`, never past the bearer \
                 JWT's `exp`; `private, max-age=<cache_ttl_seconds>` when that is 0 or the query came \
                 in a body.",
            ),
        )
        .header(
            "Vary",
            string_header("`Authorization`"),
        );
    let multiple = |id| {
        errors(
            operation(id, "Embed several sentences")
                .description(Some(
                    "GET takes the same JSON body as POST, as the original service did.",
                ))
                .request_body(body("MultipleEncodeRequest"))
                .response(
                    "200",
                    ok("Embeddings in input order", "MultipleEncodeResponse"),
                ),
        )
    };
    vec![
        (
            "/v1/encode",
            HttpMethod::Get,
            errors(
                operation("encodeGet", "Embed one sentence (query string)")
                    .parameter(query)
                    .parameter(if_none_match)
                    .response("200", encode_get.build())
                    .response(
                        "304",
                        ResponseBuilder::new()
                            .description("Not modified: the `If-None-Match` ETag is current")
                            .build(),
                    ),
            ),
        ),
        (
            "/v1/encode",
            HttpMethod::Post,
            errors(
                operation("encodePost", "Embed one sentence (JSON body)")
                    .request_body(body("EncodeRequest"))
                    .response("200", ok("The embedding", "EncodeResponse")),
            ),
        ),
        (
            "/v1/encode/multiple_encode",
            HttpMethod::Get,
            multiple("multipleEncodeGet"),
        ),
        (
            "/v1/encode/multiple_encode",
            HttpMethod::Post,
            multiple("multipleEncodePost"),
        ),
        (
            "/v1/encode/cos_sim_weight",
            HttpMethod::Post,
            errors(
                operation("cosSimWeight", "Cosine similarity of sentences")
                    .request_body(body("CosSimRequest"))
                    .response(
                        "200",
                        ok(
                            "A float for two strings, a matrix when either side is a list",
                            "CosSimResponse",
                        ),
                    ),
            ),
        ),
        (
            "/v1/paraphrase",
            HttpMethod::Post,
            errors(
                operation(
                    "paraphrase",
                    "Paraphrase mining (sentence-transformers `paraphrase_mining`)",
                )
                .request_body(body("ParaphraseRequest"))
                .response(
                    "200",
                    ok("Pairs, highest score first", "ParaphraseResponse"),
                ),
            ),
        ),
    ]
}

fn openai_operations() -> Vec<Operation> {
    let model = ParameterBuilder::new()
        .name("model")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(Object::with_type(Type::String)))
        .example(Some("all-minilm-l6-v2".into()));
    vec![
        (
            "/v1/embeddings",
            HttpMethod::Post,
            EMBEDDINGS_ERRORS.add_to(
                operation("createEmbeddings", "Create embeddings (OpenAI-compatible)")
                    .request_body(body("EmbeddingsRequest"))
                    .response(
                        "200",
                        embedded(json("Embeddings", schema_ref("EmbeddingsResponse"))).build(),
                    ),
            ),
        ),
        (
            "/v1/models",
            HttpMethod::Get,
            MODELS_ERRORS.add_to(
                operation("listModels", "List models (OpenAI-compatible)")
                    .response("200", json("Models", schema_ref("ModelList")).build()),
            ),
        ),
        (
            "/v1/models/{model}",
            HttpMethod::Get,
            MODEL_ERRORS.add_to(
                operation("retrieveModel", "Retrieve a model (OpenAI-compatible)")
                    .parameter(model)
                    .response("200", json("The model", schema_ref("Model")).build()),
            ),
        ),
        (
            "/v1/tokenize",
            HttpMethod::Post,
            EMBEDDINGS_ERRORS.add_to(
                operation("tokenize", "Tokenize as /v1/embeddings does")
                    .description(Some(
                        "The token ids the model sees for each input of the same \
                         `/v1/embeddings` request (`[CLS]` and `[SEP]` included, truncated to \
                         256 unless `truncate` is false); `usage` is that request's.",
                    ))
                    .request_body(body("TokenizeRequest"))
                    .response(
                        "200",
                        json("Token ids per input", schema_ref("TokenizeResponse")).build(),
                    ),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACKED: &str = include_str!("../../docs/openapi.json");
    const REGENERATE: &str = "cargo test -p sbert-service openapi_write -- --ignored";

    #[test]
    fn the_tracked_document_is_the_generated_one() {
        assert!(
            TRACKED == document(),
            "docs/openapi.json differs from the document the types generate; regenerate it with `{REGENERATE}`"
        );
    }

    /// Writes `docs/openapi.json` from the types (run with `--ignored`).
    #[test]
    #[ignore = "rewrites docs/openapi.json"]
    fn openapi_write_the_generated_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        std::fs::write(path, document()).unwrap();
    }

    #[test]
    fn every_schema_reference_resolves() {
        let document: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "{name}");
        }
    }
}
