//! The OpenAPI 3.1 document, generated: the schemas are derived from the request and response
//! types (`utoipa::ToSchema`), the operations are built here beside one description of each
//! family's errors. `docs/openapi.json` is this document written out and is what `/openapi.json`
//! serves byte for byte (no generation per request); a test fails when the two differ, and
//! `cargo test -p sbert-service openapi_write -- --ignored` rewrites the file.

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use super::openai::{EmbeddingsRequest, EmbeddingsResponse, ModelList, ModelObject};
use super::original::{
    CosSimWeightRequest, CosSimWeightResponse, EncodeRequest, EncodeResponse, HealthResponse,
    MultipleEncodeResponse, ParaphraseRequest, ParaphraseResponse, PingResponse, SentencesRequest,
};
use crate::http::error::{
    Family, HttpErrorBody, InternalErrorBody, OpenAiErrorBody, UnavailableBody,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sbert-service",
        version = "0.1.0",
        description = "Sentence embeddings from sentence-transformers/all-MiniLM-L6-v2 (384 dimensions; fp32, and int8 weights as `all-minilm-l6-v2-int8`), served by a Spin component. Original routes (`/v1/encode`, `/v1/encode/multiple_encode`, `/v1/encode/cos_sim_weight`, `/v1/paraphrase`) keep the shapes of the service they replace and use the `default_model` variable's model; `/v1/embeddings` and `/v1/models` follow OpenAI's embeddings API. Every route answers with or without a trailing slash. Every route except `/`, `/v1/ping`, `/health`, `/openapi.json` and `/docs` needs `Authorization: Bearer <API key or HS256 JWT>`. An invalid variable makes every route answer 503 naming it. Under load the host refuses a request with 429 (overloaded) or 503 (draining, not ready) and `Retry-After: 1` before the component sees it.",
    ),
    servers((url = "/")),
    security(("bearer" = [])),
    components(schemas(
        PingResponse, HealthResponse, EncodeRequest, EncodeResponse, SentencesRequest,
        MultipleEncodeResponse, CosSimWeightRequest, CosSimWeightResponse, ParaphraseRequest,
        ParaphraseResponse, EmbeddingsRequest, EmbeddingsResponse, ModelObject, ModelList,
        HttpErrorBody, InternalErrorBody, OpenAiErrorBody, UnavailableBody,
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
    all
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
