use std::time::Duration;

use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, VARY};
use http::HeaderValue;

use super::*;
use crate::units::http_cache::CacheMetrics;

const KEY: &str = "Bearer key-a";

/// The head of a `GET` of `uri`, as the cache sees requests.
fn get(uri: &str, authorization: Option<&str>) -> Parts {
    let mut request = Request::get(uri).header(HOST, "127.0.0.1:3000");
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    request.body(()).unwrap().into_parts().0
}

fn answer(cache_control: Option<&str>, body: &str) -> Response<HyperOutgoingBody> {
    let mut response = Response::builder()
        .header(VARY, "Authorization")
        .header(CONTENT_LENGTH, body.len())
        .header("server-timing", "embed;dur=3.1")
        .header("x-cache", "MISS");
    if let Some(cache_control) = cache_control {
        response = response.header(CACHE_CONTROL, cache_control);
    }
    response.body(full(Bytes::from(body.to_owned()))).unwrap()
}

fn hit_headers() -> HeaderMap {
    HeaderMap::from_iter([(
        HeaderName::from_static("x-cache"),
        HeaderValue::from_static("HIT"),
    )])
}

async fn body_of(response: Response<HyperOutgoingBody>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

/// Offers `response` to `request`'s answer, and checks that what the client gets is the answer unchanged.
async fn offer(cache: &HttpCache, request: &Parts, response: Response<HyperOutgoingBody>) {
    let body = response.headers()[CONTENT_LENGTH].clone();
    let pending = cache.pending(request).expect("a plain GET may be kept");
    assert!(matches!(pending, Pending::Keep(_)));
    let passed = cache.settle(pending, response).await.unwrap();
    assert_eq!(passed.status(), 200);
    assert!(
        passed.headers().contains_key("server-timing"),
        "the answer itself is unchanged"
    );
    let length = body.to_str().unwrap().parse::<usize>().unwrap();
    assert_eq!(body_of(passed).await.len(), length);
}

/// An empty cache and the request the tests ask it about.
fn cache_and_request() -> (HttpCache, Parts) {
    (
        HttpCache::new(1 << 20, CacheMetrics::default()),
        get("/v1/encode?query=hi", Some(KEY)),
    )
}

/// [`cache_and_request`], with the request's answer offered to the cache.
async fn cache_holding(cache_control: &str, body: &str) -> (HttpCache, Parts) {
    let (cache, request) = cache_and_request();
    offer(&cache, &request, answer(Some(cache_control), body)).await;
    (cache, request)
}

fn lookup(cache: &HttpCache, request: &Parts) -> Option<Response<HyperOutgoingBody>> {
    cache.lookup(request, &hit_headers())
}

#[tokio::test]
async fn a_shared_answer_is_replayed_for_the_same_url_and_authorization_only() {
    let (cache, _) = cache_holding("max-age=86400, s-maxage=300", "[1,2]").await;

    let hit = lookup(&cache, &get("/v1/encode?query=hi", Some(KEY))).expect("a fresh answer");
    assert_eq!(
        hit.headers()["x-cache"],
        "HIT",
        "the hit headers replace the component's"
    );
    assert_eq!(hit.headers()["age"], "0");
    assert!(
        hit.headers().get(DATE).is_none(),
        "hyper writes the date when it sends the answer"
    );
    assert!(
        hit.headers().get("server-timing").is_none(),
        "timings of another request"
    );
    assert_eq!(hit.headers()[CACHE_CONTROL], "max-age=86400, s-maxage=300");
    assert_eq!(body_of(hit).await, "[1,2]");

    assert!(lookup(&cache, &get("/v1/encode?query=hi", Some("Bearer key-b"))).is_none());
    assert!(lookup(&cache, &get("/v1/encode?query=hi", None)).is_none());
    assert!(lookup(&cache, &get("/v1/encode?query=ho", Some(KEY))).is_none());
    let mut other_host = get("/v1/encode?query=hi", Some(KEY));
    other_host
        .headers
        .insert(HOST, HeaderValue::from_static("other:3000"));
    assert!(lookup(&cache, &other_host).is_none());
}

#[tokio::test]
async fn answers_a_shared_cache_must_not_keep_are_passed_through() {
    for cache_control in [
        Some("private, max-age=86400"),
        Some("no-store, s-maxage=300"),
        Some("no-cache, s-maxage=300"),
        Some("max-age=86400, s-maxage=0"),
        // Without `s-maxage` or `public`, an answer to a request with `Authorization` is not shared.
        Some("max-age=86400"),
        None,
    ] {
        let (cache, request) = cache_and_request();
        offer(&cache, &request, answer(cache_control, "[1,2]")).await;
        assert!(
            lookup(&cache, &request).is_none(),
            "{cache_control:?} was kept"
        );
    }
}

#[tokio::test]
async fn an_answer_without_a_declared_length_or_over_the_limit_is_passed_through() {
    let cache = HttpCache::new(64 << 20, CacheMetrics::default());
    let request = get("/v1/encode?query=hi", Some(KEY));
    let mut unknown_length = answer(Some("s-maxage=300"), "[1,2]");
    unknown_length.headers_mut().remove(CONTENT_LENGTH);
    let pending = cache.pending(&request).unwrap();
    let passed = cache.settle(pending, unknown_length).await.unwrap();
    assert_eq!(body_of(passed).await, "[1,2]");
    assert!(lookup(&cache, &request).is_none());

    let large = "x".repeat(MAX_ANSWER_BYTES + 1);
    offer(&cache, &request, answer(Some("s-maxage=300"), &large)).await;
    assert!(lookup(&cache, &request).is_none());
}

#[tokio::test]
async fn requests_the_cache_must_not_answer_go_to_the_component() {
    let (cache, request) = cache_holding("s-maxage=300", "[1,2]").await;
    assert!(lookup(&cache, &request).is_some());

    let with = |name: &'static str, value: &'static str| {
        let mut request = get("/v1/encode?query=hi", Some(KEY));
        request
            .headers
            .insert(name, HeaderValue::from_static(value));
        request
    };
    // The client asks for a new answer: it goes to the component, and that answer may be kept.
    for request in [
        with("cache-control", "no-cache"),
        with("pragma", "no-cache"),
    ] {
        assert!(lookup(&cache, &request).is_none(), "{:?}", request.headers);
        assert!(matches!(cache.pending(&request), Some(Pending::Keep(_))));
    }
    // Conditional requests, and GETs that carry their query in a body (the URL does not say what
    // they ask), are the component's alone.
    for request in [
        with("if-none-match", "\"v1-abc\""),
        with("if-modified-since", "Mon, 30 Nov 2026 12:00:00 GMT"),
        with("content-length", "16"),
        with("transfer-encoding", "chunked"),
    ] {
        assert!(lookup(&cache, &request).is_none(), "{:?}", request.headers);
        assert!(cache.pending(&request).is_none());
    }
    let mut post = get("/v1/encode?query=hi", Some(KEY));
    post.method = Method::POST;
    assert!(lookup(&cache, &post).is_none());
    assert!(matches!(cache.pending(&post), Some(Pending::Invalidate(_))));
}

#[tokio::test]
async fn an_answer_is_fresh_for_its_shared_lifetime_only() {
    let (cache, request) = cache_holding("max-age=86400, s-maxage=30", "[1,2]").await;
    let at = |seconds| {
        cache.lookup_at(
            &request,
            &hit_headers(),
            SystemTime::now() + Duration::from_secs(seconds),
        )
    };
    let aged = at(20).expect("fresh for 30 s");
    assert_eq!(aged.headers()["age"], "20");
    assert!(
        at(31).is_none(),
        "s-maxage, not max-age, bounds a shared cache"
    );
}

#[tokio::test]
async fn each_authorization_keeps_its_own_answer_up_to_four_per_url() {
    let cache = HttpCache::new(1 << 20, CacheMetrics::default());
    let keys: Vec<String> = (0..5).map(|i| format!("Bearer key-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let body = format!("[{i}]");
        offer(
            &cache,
            &get("/v1/encode?query=hi", Some(key)),
            answer(Some("s-maxage=300"), &body),
        )
        .await;
    }
    assert!(
        lookup(&cache, &get("/v1/encode?query=hi", Some(&keys[0]))).is_none(),
        "the oldest went"
    );
    for (i, key) in keys.iter().enumerate().skip(1) {
        let hit = lookup(&cache, &get("/v1/encode?query=hi", Some(key))).unwrap();
        assert_eq!(body_of(hit).await, format!("[{i}]"));
    }
}

#[tokio::test]
async fn a_fresh_answer_is_kept_and_a_stale_one_replaced() {
    let (cache, request) = cache_holding("s-maxage=1", "[1]").await;
    let mut asked_anew = get("/v1/encode?query=hi", Some(KEY));
    asked_anew
        .headers
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    offer(&cache, &asked_anew, answer(Some("s-maxage=300"), "[2]")).await;
    let hit = lookup(&cache, &request).unwrap();
    assert_eq!(body_of(hit).await, "[1]", "the fresh answer held stays");

    std::thread::sleep(Duration::from_millis(1100));
    assert!(lookup(&cache, &request).is_none());
    offer(&cache, &request, answer(Some("s-maxage=300"), "[3]")).await;
    let hit = lookup(&cache, &request).unwrap();
    assert_eq!(body_of(hit).await, "[3]");
    let variants = cache.answers.get(&cache_key(&request).unwrap()).unwrap();
    assert_eq!(
        variants.len(),
        1,
        "the stale one was replaced, not kept beside it"
    );
}

#[tokio::test]
async fn the_cache_holds_no_more_bytes_than_its_capacity() {
    let capacity = 64 * 1024;
    let cache = HttpCache::new(capacity, CacheMetrics::default());
    let body = "x".repeat(2000);
    for i in 0..200 {
        let request = get(&format!("/v1/encode?query={i}"), Some(KEY));
        offer(&cache, &request, answer(Some("s-maxage=300"), &body)).await;
        assert!(cache.answers.weight() <= capacity);
    }
    let kept = (0..200)
        .filter(|i| lookup(&cache, &get(&format!("/v1/encode?query={i}"), Some(KEY))).is_some())
        .count();
    assert!(
        (10..=32).contains(&kept),
        "{kept} answers of ~4.2 KB (with their overhead) in 64 KiB"
    );
}

#[tokio::test]
async fn a_stale_answer_is_never_served_whatever_the_request_accepts() {
    let (cache, _) = cache_holding("max-age=86400, s-maxage=30", "[1,2]").await;
    for accepts_stale in ["max-stale", "max-stale=3600"] {
        let mut asking = get("/v1/encode?query=hi", Some(KEY));
        asking
            .headers
            .insert("cache-control", HeaderValue::from_static(accepts_stale));
        let later = SystemTime::now() + Duration::from_secs(31);
        assert!(
            cache.lookup_at(&asking, &hit_headers(), later).is_none(),
            "{accepts_stale}"
        );
    }
}

#[tokio::test]
async fn an_answer_s_age_counts_from_when_the_component_was_asked() {
    let (cache, request) = cache_and_request();
    let Some(Pending::Keep(mut candidate)) = cache.pending(&request) else {
        panic!("a plain GET may be kept")
    };
    // The component took 10 s to answer an answer that is fresh for 30 s.
    candidate.asked_at -= Duration::from_secs(10);
    let passed = cache
        .settle(Pending::Keep(candidate), answer(Some("s-maxage=30"), "[1]"))
        .await
        .unwrap();
    assert_eq!(body_of(passed).await, "[1]");
    let at = |seconds| {
        cache.lookup_at(
            &request,
            &hit_headers(),
            SystemTime::now() + Duration::from_secs(seconds),
        )
    };
    assert!(at(15).is_some());
    assert!(at(21).is_none(), "30 s after the component was asked");
}

#[tokio::test]
async fn an_authorized_answer_that_does_not_vary_on_authorization_is_not_kept() {
    let (cache, request) = cache_and_request();
    let mut unvaried = answer(Some("s-maxage=300"), "[1]");
    unvaried.headers_mut().remove(VARY);
    offer(&cache, &request, unvaried).await;
    assert!(lookup(&cache, &request).is_none());
    let anonymous = get("/v1/encode?query=hi", None);
    let mut unvaried = answer(Some("s-maxage=300"), "[1]");
    unvaried.headers_mut().remove(VARY);
    offer(&cache, &anonymous, unvaried).await;
    assert!(
        lookup(&cache, &anonymous).is_some(),
        "without credentials there is nothing to vary on"
    );
}

#[tokio::test]
async fn an_answer_that_ends_short_is_an_error_and_not_kept() {
    let (cache, request) = cache_and_request();
    let mut short = answer(Some("s-maxage=300"), "[1,2]");
    short
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
    let pending = cache.pending(&request).unwrap();
    assert!(cache.settle(pending, short).await.is_err());
    assert!(lookup(&cache, &request).is_none());
}

#[tokio::test]
async fn only_the_headers_an_answer_is_matched_on_are_kept_of_its_request() {
    let cache = HttpCache::new(1 << 20, CacheMetrics::default());
    let mut request = get("/v1/encode?query=hi", Some(KEY));
    let padding = HeaderValue::try_from("x".repeat(100_000)).unwrap();
    request.headers.insert("x-padding", padding);
    offer(&cache, &request, answer(Some("s-maxage=300"), "[1]")).await;
    assert!(lookup(&cache, &request).is_some());
    assert!(
        cache.answers.weight() < 4096,
        "{} bytes",
        cache.answers.weight()
    );
}

#[tokio::test]
async fn a_successful_unsafe_request_drops_what_is_kept_for_its_url() {
    let (cache, request) = cache_holding("s-maxage=300", "[1]").await;
    let mut post = get("/v1/encode?query=hi", Some(KEY));
    post.method = Method::POST;
    let refused = Response::builder()
        .status(400)
        .body(full(Bytes::new()))
        .unwrap();
    cache
        .settle(cache.pending(&post).unwrap(), refused)
        .await
        .unwrap();
    assert!(
        lookup(&cache, &request).is_some(),
        "a failed POST changes nothing"
    );
    let done = Response::builder()
        .status(200)
        .body(full(Bytes::new()))
        .unwrap();
    cache
        .settle(cache.pending(&post).unwrap(), done)
        .await
        .unwrap();
    assert!(lookup(&cache, &request).is_none());
}

#[tokio::test]
async fn a_replayed_answer_keeps_every_value_of_a_repeated_header() {
    let (cache, request) = cache_and_request();
    let mut response = answer(Some("s-maxage=300"), "[1,2]");
    let headers = response.headers_mut();
    headers.append("link", HeaderValue::from_static("</docs>; rel=help"));
    headers.append(
        "link",
        HeaderValue::from_static("</openapi.json>; rel=describedby"),
    );
    offer(&cache, &request, response).await;

    let hit = lookup(&cache, &request).expect("a fresh answer");
    let links: Vec<_> = hit.headers().get_all("link").iter().collect();
    assert_eq!(
        links,
        ["</docs>; rel=help", "</openapi.json>; rel=describedby"],
        "both values, in their order"
    );
}
