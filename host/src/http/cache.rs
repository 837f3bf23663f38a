//! A shared HTTP cache in front of the components, as a CDN in front of a service: a plain `GET` whose answer
//! the component marks reusable by shared caches (`Cache-Control` with `s-maxage` or `public`) is kept in
//! memory, and a later request for the same URL and `Host`, with the same values of the request headers the
//! answer's `Vary` names, is answered from memory without an instance of the component.
//!
//! What may be stored and when a stored answer is fresh is RFC 9111, judged by the `http-cache-semantics`
//! crate as a shared cache: `private` and `no-store` answers are never kept, a request with `Authorization`
//! only reuses an answer that allows it and names `Authorization` in `Vary`, and a request's own
//! `Cache-Control: no-cache` goes to the component. Nothing is kept longer than its freshness lifetime, and
//! the whole is bounded in bytes (least recently used out first).

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, CONTENT_LENGTH, DATE, HOST, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_RANGE, IF_UNMODIFIED_SINCE,
};
use http::{HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::metrics::{self, HttpCacheLookup};

/// Answers larger than this are passed through, never kept: one must not evict thousands of small ones.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Stored answers per URL: one per combination of the values of the request headers its `Vary` names (for
/// example one per API key). More and the oldest goes.
const MAX_VARIANTS: usize = 4;

/// Bytes counted for an answer beyond its body and twice its headers' bytes (the request's and the response's
/// header maps): the maps' own tables, the policy's parsed `Cache-Control`s, the URI and the map's entry.
/// Measured: 4,000 new `GET /v1/encode` answers (4.8 KB bodies) grew the process's PSS by 7.7 KB each.
const ENTRY_OVERHEAD_BYTES: u64 = 2048;

/// `Server-Timing` describes the request that made the answer; a replay has timings of its own.
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The cache, shared by every connection.
pub struct HttpCache {
    /// By `Host` + path and query.
    answers: Cache<String, Variants, AnswerBytes>,
}

/// The answers kept for one URL, newest first.
type Variants = Arc<Vec<Arc<StoredAnswer>>>;

struct StoredAnswer {
    /// The request and response heads, and what RFC 9111 makes of them.
    policy: CachePolicy,
    body: Bytes,
    bytes: u64,
}

/// Weighs a URL's answers by the bytes they hold.
#[derive(Clone)]
struct AnswerBytes;

impl Weighter<String, Variants> for AnswerBytes {
    fn weight(&self, key: &String, variants: &Variants) -> u64 {
        key.len() as u64 + variants.iter().map(|answer| answer.bytes).sum::<u64>()
    }
}

/// The head of a request whose answer may be kept, taken before the request goes to the component.
pub struct Candidate {
    key: String,
    request: Request<()>,
}

impl HttpCache {
    /// A cache of at most `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        // A typical answer (one embedding as JSON) is ~5 KB; the estimate only sizes the map up front.
        let estimated_answers = usize::try_from(capacity_bytes / 8192)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            answers: Cache::with_weighter(estimated_answers, capacity_bytes, AnswerBytes),
        }
    }

    /// The stored answer for `request`, if one is fresh for it. `hit_headers` are set on the answer.
    pub fn lookup<B>(
        &self,
        request: &Request<B>,
        hit_headers: &HeaderMap,
    ) -> Option<Response<HyperOutgoingBody>> {
        self.lookup_at(request, hit_headers, SystemTime::now())
    }

    fn lookup_at<B>(
        &self,
        request: &Request<B>,
        hit_headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Response<HyperOutgoingBody>> {
        let key = cache_key(request)?;
        let hit = self.answers.get(&key).and_then(|variants| {
            variants
                .iter()
                .find_map(|answer| match answer.policy.before_request(request, now) {
                    BeforeRequest::Fresh(parts) => {
                        Some(Response::from_parts(parts, full(answer.body.clone())))
                    }
                    BeforeRequest::Stale { .. } => None,
                })
        });
        metrics::record_http_cache_lookup(if hit.is_some() {
            HttpCacheLookup::Hit
        } else {
            HttpCacheLookup::Miss
        });
        hit.map(|mut response| {
            let headers = response.headers_mut();
            // The crate writes `Date` in RFC 2822's form (`+0000`), not HTTP's; hyper adds a proper one.
            headers.remove(DATE);
            headers.extend(hit_headers.clone());
            response
        })
    }

    /// What to remember of `request` to keep its answer, if it is a request whose answer may be kept.
    pub fn candidate<B>(&self, request: &Request<B>) -> Option<Candidate> {
        let key = cache_key(request)?;
        let mut head = Request::new(());
        *head.method_mut() = request.method().clone();
        // Owned copies: what hyper parsed shares the connection's read buffer, which a stored answer would
        // otherwise keep alive (measured: ~10 KB per answer instead of its ~1 KB of headers).
        let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        *head.uri_mut() =
            Uri::from_maybe_shared(Bytes::copy_from_slice(path_and_query.as_bytes())).ok()?;
        *head.headers_mut() = owned(request.headers());
        Some(Candidate { key, request: head })
    }

    /// Keeps `response` if RFC 9111 lets a shared cache store it with a freshness lifetime, and returns it
    /// (with its body read, when kept). An answer the cache already holds fresh for the same request (one
    /// that asked `no-cache`, or lost a race) is passed through and the held one stays: replacing it would
    /// cost a copy of every such answer for nothing. An error is a body that failed while being read:
    /// nothing was sent yet.
    pub async fn keep(
        &self,
        candidate: Candidate,
        response: Response<HyperOutgoingBody>,
    ) -> Result<Response<HyperOutgoingBody>> {
        let now = SystemTime::now();
        let held = self.answers.get(&candidate.key).unwrap_or_default();
        if held.iter().any(|stored| {
            same_variant(stored, &candidate.request, now) && !stored.policy.is_stale(now)
        }) {
            return Ok(response);
        }
        let (head, body) = response.into_parts();
        let mut stored_head = Response::new(());
        *stored_head.status_mut() = head.status;
        *stored_head.headers_mut() = owned(&head.headers);
        stored_head.headers_mut().remove(SERVER_TIMING);
        let policy = CachePolicy::new_options(&candidate.request, &stored_head, now, SHARED_CACHE);
        let declared_length = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
        let keep = policy.is_storable()
            && !policy.time_to_live(now).is_zero()
            && declared_length.is_some_and(|length| length <= MAX_ANSWER_BYTES);
        if !keep {
            return Ok(Response::from_parts(head, body));
        }
        let collected = body
            .collect()
            .await
            .map_err(|code| anyhow!("the component's answer failed while being read: {code:?}"))?
            .to_bytes();
        // Exactly the body's bytes: one frame may be a slice of a larger buffer.
        let body = Bytes::copy_from_slice(&collected);
        let header_bytes: usize = head
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        let answer = Arc::new(StoredAnswer {
            bytes: (body.len() + 2 * header_bytes) as u64 + ENTRY_OVERHEAD_BYTES,
            policy,
            body: body.clone(),
        });
        self.insert(candidate, answer, now);
        Ok(Response::from_parts(head, full(body)))
    }

    /// Stores `answer` for its URL as the newest variant. It replaces the (stale) variant the same request
    /// would have been answered with, and drops stale ones.
    fn insert(&self, candidate: Candidate, answer: Arc<StoredAnswer>, now: SystemTime) {
        let older = self.answers.get(&candidate.key).unwrap_or_default();
        let others = older.iter().filter(|stored| {
            !same_variant(stored, &candidate.request, now) && !stored.policy.is_stale(now)
        });
        let variants: Vec<_> = std::iter::once(answer)
            .chain(others.cloned())
            .take(MAX_VARIANTS)
            .collect();
        self.answers.insert(candidate.key, Arc::new(variants));
        metrics::set_http_cache_bytes(self.answers.weight());
    }
}

/// Whether `stored` answers `request` when fresh: same URL and `Host`, same values of the headers its
/// `Vary` names.
fn same_variant(stored: &StoredAnswer, request: &Request<()>, now: SystemTime) -> bool {
    match stored.policy.before_request(request, now) {
        BeforeRequest::Fresh(_) => true,
        BeforeRequest::Stale { matches, .. } => matches,
    }
}

/// Judged as a shared cache, with no heuristic freshness: only answers that state a lifetime are kept.
const SHARED_CACHE: CacheOptions = CacheOptions {
    shared: true,
    cache_heuristic: 0.0,
    immutable_min_time_to_live: std::time::Duration::ZERO,
    ignore_cargo_cult: false,
};

/// The key of a request the cache may answer: a `GET` with no body (a body would be part of what is asked)
/// and no conditional header (the component answers those, cheaply, with 304 or the full answer).
fn cache_key<B>(request: &Request<B>) -> Option<String> {
    let headers = request.headers();
    let plain = request.method() == Method::GET
        && !super::router::may_have_body(headers)
        && ![
            IF_NONE_MATCH,
            IF_MATCH,
            IF_MODIFIED_SINCE,
            IF_UNMODIFIED_SINCE,
            IF_RANGE,
        ]
        .iter()
        .any(|name| headers.contains_key(name));
    if !plain {
        return None;
    }
    let host = headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Some(format!("{host}{path_and_query}"))
}

/// `headers` in allocations of their own.
fn owned(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_str().as_bytes()).ok()?;
            Some((name, HeaderValue::from_bytes(value.as_bytes()).ok()?))
        })
        .collect()
}

fn full(body: Bytes) -> HyperOutgoingBody {
    Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests;
