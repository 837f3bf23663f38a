//! A shared HTTP cache in front of the components, as a CDN in front of a service: a plain `GET` whose answer
//! the component marks reusable by shared caches (`Cache-Control` with `s-maxage` or `public`) is kept in
//! memory, and a later request for the same URL and `Host`, with the same values of the request headers the
//! answer's `Vary` names, is answered from memory without an instance of the component.
//!
//! What may be stored and when a stored answer is fresh is RFC 9111, judged by the `http-cache-semantics`
//! crate as a shared cache, with three rules of this host on top: an answer to a request with `Authorization`
//! is kept only if its `Vary` names `Authorization` (one client's answer never reaches another credential);
//! a stale answer is never served, whatever the request's `max-stale` accepts (a lifetime a token's expiry
//! bounded ends there); and an answer's age counts from when the component was asked. `private` and
//! `no-store` answers are never kept, a request's own `Cache-Control: no-cache` goes to the component, and a
//! successful unsafe request (`POST`, ...) drops what is kept for its URL. The whole is bounded in bytes
//! (least recently used out first).

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, AUTHORIZATION, CONTENT_LENGTH, DATE, HOST, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, VARY, WARNING,
};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::CacheMetrics;
use crate::http::headers::may_have_body;

/// Answers larger than this are passed through, never kept: one must not evict thousands of small ones.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Stored answers per URL: one per combination of the values of the request headers its `Vary` names (for
/// example one per API key). More and the oldest goes.
const MAX_VARIANTS: usize = 4;

/// Bytes counted for an answer beyond its body, its response headers' bytes twice (the bytes, and the map's
/// entries that hold them), the request headers it keeps and its key: the maps' own tables, the policy's
/// parsed `Cache-Control`s, the URI and the map's entry (docs/design-notes.md, "HTTP cache size").
const ENTRY_OVERHEAD_BYTES: u64 = 2048;

/// `Server-Timing` describes the request that made the answer; a replay has timings of its own.
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The cache, shared by every connection.
pub struct HttpCache {
    /// By `Host` + path and query.
    answers: Cache<String, Variants, AnswerBytes>,
    /// Larger answers are passed through: [`MAX_ANSWER_BYTES`], or less where a shard of the map (which
    /// refuses a URL heavier than itself) could not hold a URL's variants of that size.
    max_answer_bytes: u64,
    metrics: CacheMetrics,
}

/// The answers kept for one URL, newest first.
type Variants = Arc<Vec<Arc<StoredAnswer>>>;

struct StoredAnswer {
    /// The request and response heads, and what RFC 9111 makes of them.
    policy: CachePolicy,
    /// Every value of each response header the component sent more than once (`Link`, `Set-Cookie`): the
    /// policy replays one value per name (http-cache-semantics 3.0 copies a stored head with `insert`), so
    /// these are put back on each replay. Usually empty.
    repeated: HeaderMap,
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

/// What the cache does with a request's answer, decided before the request goes to the component.
pub enum Pending {
    /// A plain GET: its answer may be kept.
    Keep(Box<Candidate>),
    /// An unsafe method (POST, PUT, DELETE, ...): a successful answer makes what is kept for its URL stale
    /// (RFC 9111 section 4.4), so it is dropped. The URL's key.
    Invalidate(String),
}

/// The head of a GET whose answer may be kept.
pub struct Candidate {
    key: String,
    request: Request<()>,
    /// When the request went to the component: the answer's age counts from here, so the time the component
    /// took is not added to its freshness (a JWT-bound lifetime ends when the token does).
    asked_at: SystemTime,
}

impl HttpCache {
    /// A cache of at most `capacity_bytes`, counting its lookups and size in `metrics`.
    pub fn new(capacity_bytes: u64, metrics: CacheMetrics) -> Self {
        // A typical answer (one embedding as JSON) is ~5 KB; the estimate only sizes the map up front.
        let estimated_answers = usize::try_from(capacity_bytes / 8192)
            .unwrap_or(usize::MAX)
            .max(16);
        let answers = Cache::with_weighter(estimated_answers, capacity_bytes, AnswerBytes);
        let max_answer_bytes =
            (MAX_ANSWER_BYTES as u64).min(answers.shard_capacity() / (2 * MAX_VARIANTS as u64));
        Self {
            answers,
            max_answer_bytes,
            metrics,
        }
    }

    /// The stored answer for `request`, if one is fresh for it. `hit_headers` are set on the answer.
    pub fn lookup(
        &self,
        request: &Parts,
        hit_headers: &HeaderMap,
    ) -> Option<Response<HyperOutgoingBody>> {
        self.lookup_at(request, hit_headers, SystemTime::now())
    }

    fn lookup_at(
        &self,
        request: &Parts,
        hit_headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Response<HyperOutgoingBody>> {
        let key = cache_key(request)?;
        let hit = self.answers.get(&key).and_then(|variants| {
            variants
                .iter()
                .find_map(|answer| match answer.policy.before_request(request, now) {
                    // A request's `max-stale` makes the crate call a stale answer fresh; a shared cache must
                    // not serve an `s-maxage` answer stale (RFC 9111 section 5.2.2.10), least of all one
                    // whose lifetime a token's expiry bounded.
                    BeforeRequest::Fresh(mut parts) if !answer.policy.is_stale(now) => {
                        restore_repeated(&mut parts.headers, &answer.repeated);
                        Some(Response::from_parts(parts, full(answer.body.clone())))
                    }
                    _ => None,
                })
        });
        self.metrics.lookup(hit.is_some());
        hit.map(|mut response| {
            let headers = response.headers_mut();
            // The crate writes `Date` in RFC 2822's form (`+0000`), not HTTP's; hyper adds a proper one.
            headers.remove(DATE);
            headers.extend(hit_headers.clone());
            response
        })
    }

    /// What to do with `request`'s answer, if anything.
    pub fn pending(&self, request: &Parts) -> Option<Pending> {
        if !request.method.is_safe() {
            return Some(Pending::Invalidate(url_key(request)));
        }
        let key = cache_key(request)?;
        let mut head = Request::new(());
        *head.method_mut() = request.method.clone();
        // An owned copy of the URI, which a stored answer keeps: what hyper parsed shares the connection's
        // read buffer, which it would otherwise keep alive (docs/design-notes.md). The headers are only shared
        // here; `keep` copies the few it stores.
        let path_and_query = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
        *head.uri_mut() =
            Uri::from_maybe_shared(Bytes::copy_from_slice(path_and_query.as_bytes())).ok()?;
        *head.headers_mut() = request.headers.clone();
        Some(Pending::Keep(Box::new(Candidate {
            key,
            request: head,
            asked_at: SystemTime::now(),
        })))
    }

    /// Acts on `response` as `pending` says, and returns it (with its body read, when kept).
    pub async fn settle(
        &self,
        pending: Pending,
        response: Response<HyperOutgoingBody>,
    ) -> Result<Response<HyperOutgoingBody>> {
        match pending {
            Pending::Keep(candidate) => self.keep(*candidate, response).await,
            Pending::Invalidate(key) => {
                if response.status().is_success() || response.status().is_redirection() {
                    self.answers.remove(&key);
                }
                Ok(response)
            }
        }
    }

    /// Keeps `response` if RFC 9111 lets a shared cache store it with a freshness lifetime, it names
    /// `Authorization` in `Vary` when the request carried one, and its body is whole. An answer the cache
    /// already holds fresh for the same request (one that asked `no-cache`, or lost a race) is passed
    /// through and the held one stays: replacing it would cost a copy of every such answer for nothing. An
    /// error is a body that failed or ended short while being read: nothing was sent yet.
    async fn keep(
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
        *stored_head.headers_mut() = owned(&head.headers, |name| name != SERVER_TIMING);
        let judged = CachePolicy::new_options(
            &candidate.request,
            &stored_head,
            candidate.asked_at,
            SHARED_CACHE,
        );
        let declared_length = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        let varied = vary_names(&head.headers);
        let keep = judged.is_storable()
            && !judged.time_to_live(now).is_zero()
            && (!candidate.request.headers().contains_key(AUTHORIZATION)
                || varied.iter().any(|name| name == AUTHORIZATION.as_str()))
            && declared_length.is_some_and(|length| length <= self.max_answer_bytes);
        if !keep {
            return Ok(Response::from_parts(head, body));
        }
        let collected = body
            .collect()
            .await
            .map_err(|code| anyhow!("the component's answer failed while being read: {code:?}"))?
            .to_bytes();
        if Some(collected.len() as u64) != declared_length {
            // A guest stopped mid-body ends its body early rather than with an error.
            bail!(
                "the component's answer ended after {} of its {declared_length:?} bytes",
                collected.len()
            );
        }
        // Exactly the body's bytes: one frame may be a slice of a larger buffer.
        let body = Bytes::copy_from_slice(&collected);
        // What later requests are matched on: the URL, `Host` and the headers `Vary` names. The rest of the
        // request (user agents, cookies, padding) is neither needed nor worth its memory.
        let mut matched = Request::new(());
        *matched.uri_mut() = candidate.request.uri().clone();
        *matched.headers_mut() = owned(candidate.request.headers(), |name| {
            name == HOST || varied.iter().any(|varied| varied == name.as_str())
        });
        let policy =
            CachePolicy::new_options(&matched, &stored_head, candidate.asked_at, SHARED_CACHE);
        let stored_headers = stored_head.headers();
        let repeated = owned(stored_headers, |name| {
            stored_headers.get_all(name).iter().nth(1).is_some()
        });
        let answer = Arc::new(StoredAnswer {
            bytes: (body.len()
                + 2 * header_bytes(&head.headers)
                + header_bytes(&repeated)
                + header_bytes(matched.headers())
                + candidate.key.len()) as u64
                + ENTRY_OVERHEAD_BYTES,
            policy,
            repeated,
            body: body.clone(),
        });
        self.insert(candidate.key, &matched, answer, now);
        Ok(Response::from_parts(head, full(body)))
    }

    /// Stores `answer` for its URL as the newest variant. It replaces the (stale) variant the same request
    /// would have been answered with, and drops stale ones.
    fn insert(
        &self,
        key: String,
        request: &Request<()>,
        answer: Arc<StoredAnswer>,
        now: SystemTime,
    ) {
        // Read again, not taken from `keep`'s look: the body was read since, and another request may have
        // stored a variant for this URL meanwhile.
        let older = self.answers.get(&key).unwrap_or_default();
        let others = older
            .iter()
            .filter(|stored| !same_variant(stored, request, now) && !stored.policy.is_stale(now));
        let variants: Vec<_> = std::iter::once(answer)
            .chain(others.cloned())
            .take(MAX_VARIANTS)
            .collect();
        self.answers.insert(key, Arc::new(variants));
        self.metrics.bytes(self.answers.weight());
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
fn cache_key(request: &Parts) -> Option<String> {
    let headers = &request.headers;
    let plain = request.method == Method::GET
        && !may_have_body(headers)
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
    Some(url_key(request))
}

/// `Host` + path and query: the key of everything kept for a URL.
fn url_key(request: &Parts) -> String {
    let host = request
        .headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| request.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let path_and_query = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{host}{path_and_query}")
}

/// The header names a response's `Vary` lists, lower-case.
fn vary_names(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

/// Puts every value of the `repeated` headers back where the policy kept one (a header it drops, hop-by-hop,
/// stays dropped). `Warning` is left as the policy joined and filtered it.
fn restore_repeated(headers: &mut HeaderMap, repeated: &HeaderMap) {
    for name in repeated.keys() {
        if name != WARNING && headers.remove(name).is_some() {
            for value in repeated.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// The `headers` whose names `wanted` accepts, in allocations of their own.
fn owned(headers: &HeaderMap, wanted: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| wanted(name))
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
