//! The embedding cache and HTTP caching headers.

use serde_json::json;

use super::*;

fn cached_variables() -> FakeVariables {
    variables().with(config::MODEL_DIGEST, "sha256:test")
}

#[test]
fn x_cache_and_server_timing_on_every_embedding_route() {
    let (variables, model, kv) = (cached_variables(), FakeModel::default(), FakeKv::default());
    let services = env(&variables, &model, Some(&kv));
    for (method, path, body, status) in [
        ("GET", "/v1/encode?query=hi", "", "MISS"),
        ("POST", "/v1/encode", r#"{"query": "hi"}"#, "HIT"),
        (
            "POST",
            "/v1/encode/multiple_encode",
            r#"{"sentences": ["hi", "x"]}"#,
            "PARTIAL",
        ),
        (
            "POST",
            "/v1/encode/cos_sim_weight",
            r#"{"a": "hi", "b": ["x"]}"#,
            "HIT",
        ),
        (
            "POST",
            "/v1/paraphrase",
            r#"{"sentences": ["hi", "x"]}"#,
            "HIT",
        ),
        (
            "POST",
            "/v1/embeddings",
            r#"{"model": "all-minilm-l6-v2", "input": ["x", "hi"]}"#,
            "HIT",
        ),
    ] {
        let response = handle(&request(method, path, body), &services);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("x-cache"), Some(status), "{path}");
        let timing = response.header("server-timing").unwrap();
        assert!(
            timing.starts_with("tokenize;dur=")
                && timing.contains(", cache;dur=")
                && timing.contains(", inference;dur="),
            "{timing}"
        );
    }
    for response in [
        send(request("GET", "/v1/ping", "")),
        send(request("POST", "/v1/encode", "{")),
    ] {
        assert_eq!(response.header("x-cache"), None);
        assert_eq!(response.header("server-timing"), None);
    }
}

#[test]
fn get_encode_has_an_etag_and_answers_a_matching_if_none_match_with_304() {
    let (variables, model, kv) = (cached_variables(), FakeModel::default(), FakeKv::default());
    let services = env(&variables, &model, Some(&kv));
    let first = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
    let etag = first.header("etag").unwrap().to_owned();
    assert!(
        etag.starts_with("\"v1-") && etag.ends_with('"') && etag.len() == 2 + 3 + 32,
        "{etag}"
    );
    assert_eq!(
        first.header("cache-control"),
        Some("max-age=86400, s-maxage=300")
    );
    assert_eq!(first.header("vary"), Some("Authorization"));
    let same = handle(&request("GET", "/v1/encode?query=+hi+", ""), &services);
    assert_eq!(
        same.header("etag"),
        Some(etag.as_str()),
        "the query as encoded"
    );
    let other = handle(&request("GET", "/v1/encode?query=hello", ""), &services);
    assert_ne!(other.header("etag"), Some(etag.as_str()));
    let post = handle(
        &request("POST", "/v1/encode", r#"{"query": "hi"}"#),
        &services,
    );
    assert_eq!(post.header("etag"), None);

    let calls = model.calls();
    for tags in [etag.clone(), format!("\"x\", W/{etag}"), "*".to_owned()] {
        let mut conditional = request("GET", "/v1/encode?query=hi", "");
        conditional
            .headers
            .push(("If-None-Match".into(), tags.clone()));
        let response = handle(&conditional, &services);
        assert_eq!(response.status, 304, "{tags}");
        assert!(response.body.is_empty());
        assert_eq!(response.header("etag"), Some(etag.as_str()));
        assert_eq!(
            response.header("cache-control"),
            Some("max-age=86400, s-maxage=300")
        );
    }
    assert_eq!(model.calls(), calls, "a 304 embeds nothing");
    let mut stale = request("GET", "/v1/encode?query=hi", "");
    stale
        .headers
        .push(("If-None-Match".into(), "\"v1-other\"".into()));
    assert_eq!(handle(&stale, &services).status, 200);
    let mut unauthorized = without_auth(request("GET", "/v1/encode?query=hi", ""));
    unauthorized.headers.push(("If-None-Match".into(), etag));
    let refused = handle(&unauthorized, &services);
    assert_eq!(refused.status, 401);
    assert_eq!(
        (refused.header("etag"), refused.header("x-cache")),
        (None, None)
    );
}

#[test]
fn shared_caches_may_keep_get_encode_no_longer_than_the_token_or_the_setting() {
    let cache_control = |variables: &FakeVariables, request: Request| {
        let (model, kv) = (FakeModel::default(), FakeKv::default());
        let response = handle(&request, &env(variables, &model, Some(&kv)));
        assert_eq!(response.status, 200);
        response.header("cache-control").unwrap().to_owned()
    };
    let get = || request("GET", "/v1/encode?query=hi", "");
    let with_token = |token: String| {
        let mut request = without_auth(get());
        request
            .headers
            .push(("Authorization".into(), format!("Bearer {token}")));
        request
    };
    let variables = cached_variables().with(config::JWT_SECRET, JWT_SECRET);
    assert_eq!(
        cache_control(&variables, get()),
        "max-age=86400, s-maxage=300"
    );
    assert_eq!(
        cache_control(&variables, with_token(jwt(NOW + 60))),
        "max-age=86400, s-maxage=60"
    );
    assert_eq!(
        cache_control(&variables, with_token(jwt(NOW - 10))),
        "private, max-age=86400",
        "accepted within the leeway, but no longer the token's to share"
    );
    assert_eq!(
        cache_control(
            &variables,
            request("GET", "/v1/encode", r#"{"query": "hi"}"#)
        ),
        "private, max-age=86400",
        "a query in a body is not in the URL that shared caches key on"
    );
    let short_ttl = variables.clone().with(config::CACHE_TTL_SECONDS, "100");
    assert_eq!(
        cache_control(&short_ttl, get()),
        "max-age=100, s-maxage=100"
    );
    let unshared = variables.with(config::SHARED_CACHE_SECONDS, "0");
    assert_eq!(cache_control(&unshared, get()), "private, max-age=86400");
}

#[test]
fn without_a_model_digest_get_encode_has_no_etag_and_never_304() {
    let (model, variables) = (FakeModel::default(), variables());
    let services = env(&variables, &model, None);
    let first = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("etag"), None);
    let mut conditional = request("GET", "/v1/encode?query=hi", "");
    conditional
        .headers
        .push(("If-None-Match".into(), "*".into()));
    let response = handle(&conditional, &services);
    assert_eq!((response.status, response.header("etag")), (200, None));
}

#[test]
fn a_broken_store_serves_uncached_not_500() {
    let (variables, model, kv) = (cached_variables(), FakeModel::default(), FakeKv::default());
    kv.broken.set(true);
    let services = env(&variables, &model, Some(&kv));
    for _ in 0..2 {
        let response = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-cache"), Some("MISS"));
    }
}

#[test]
fn ttl_zero_caches_nothing() {
    let variables = cached_variables().with(config::CACHE_TTL_SECONDS, "0");
    let (model, kv) = (FakeModel::default(), FakeKv::default());
    let services = env(&variables, &model, Some(&kv));
    for _ in 0..2 {
        let response = handle(&request("GET", "/v1/encode?query=hi", ""), &services);
        assert_eq!(response.header("x-cache"), Some("MISS"));
        assert_eq!(response.header("cache-control"), Some("private, max-age=0"));
    }
    assert_eq!(kv.calls.get(), 0);
}

#[test]
fn the_two_models_never_share_cache_entries() {
    let variables = cached_variables().with(config::INT8_MODEL_DIGEST, "sha256:int8");
    let (model, kv) = (FakeModel::default(), FakeKv::default());
    let services = env(&variables, &model, Some(&kv));
    let embed = |name: &str| {
        let body = json!({"model": name, "input": "hi"}).to_string();
        handle(&request("POST", "/v1/embeddings", &body), &services)
    };
    assert_eq!(embed("all-minilm-l6-v2").header("x-cache"), Some("MISS"));
    assert_eq!(
        embed("all-minilm-l6-v2-int8").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        embed("all-minilm-l6-v2-int8").header("x-cache"),
        Some("HIT")
    );
    assert_eq!(embed("all-minilm-l6-v2").header("x-cache"), Some("HIT"));
    assert_eq!(model.calls(), 2);
}
