//! The shared HTTP cache in front of the components (`--http-cache-mib`), as a CDN in front of a service:
//! [`cache`] holds the answers and RFC 9111's rules; this unit puts it on the request path.

mod cache;

use std::sync::Arc;

use anyhow::Result;
use http::request::Parts;
use http::HeaderMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;

use crate::http::host_answers::HeaderValues;
use crate::http::{AfterCall, BoxFuture, HostResponse, Layer};
use crate::unit::{ComponentIndex, Configure, Nothing, Start, Unit};

pub use cache::{HttpCache, Pending};

/// `sbert-host up` flags of the HTTP cache.
#[derive(Debug, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// MiB of answers the shared HTTP cache may hold; 0 turns it off. It keeps the answers to plain GETs that
    /// their component marks reusable by shared caches (`Cache-Control: s-maxage` or `public`, with `Vary`
    /// naming the request headers they depend on), for as long as they say, and answers the same requests
    /// from memory, without an instance, as a CDN in front of the service would.
    // Why 64: docs/design-notes.md, "HTTP cache size".
    #[arg(long, value_name = "MIB", default_value = "64", value_parser = clap::value_parser!(u32).range(0..=65536))]
    http_cache_mib: u32,
}

/// The HTTP cache's key of `[component.<id>.tool.sbert-host]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Headers set on the answers the cache replays, for example `{ "X-Cache" = "HIT" }`: the component's
    /// own value was about the answer it made, not the replay.
    #[serde(default)]
    http_cache_hit_headers: HeaderValues,
}

pub struct HttpCacheUnit {
    flags: Flags,
    /// Per served component: the headers of its replayed answers.
    hit_headers: Vec<HeaderMap>,
    /// `None` when the cache is off.
    layer: Option<Arc<CacheLayer>>,
}

impl Unit for HttpCacheUnit {
    const NAME: &'static str = "http cache";
    type Flags = Flags;
    type Tool = Tool;
    type RuntimeConfig = Nothing;

    fn new(flags: Flags) -> Self {
        Self {
            flags,
            hit_headers: Vec::new(),
            layer: None,
        }
    }

    fn configure(&mut self, _: &Configure<'_>, tools: Vec<Tool>, _: Nothing) -> Result<()> {
        self.hit_headers = tools
            .into_iter()
            .map(|tool| tool.http_cache_hit_headers.0)
            .collect();
        Ok(())
    }

    fn start(&mut self, ctx: &mut Start<'_>) -> Result<()> {
        if self.flags.http_cache_mib == 0 {
            return Ok(());
        }
        let metrics = CacheMetrics::default();
        metrics.register(ctx);
        let cache = HttpCache::new(u64::from(self.flags.http_cache_mib) << 20, metrics);
        self.layer = Some(Arc::new(CacheLayer {
            cache: Arc::new(cache),
            hit_headers: std::mem::take(&mut self.hit_headers),
        }));
        Ok(())
    }

    fn report(&self) {
        tracing::info!(http_cache_mib = self.flags.http_cache_mib, "http cache");
    }

    fn layer(&self) -> Option<Arc<dyn Layer>> {
        self.layer.clone().map(|layer| layer as Arc<dyn Layer>)
    }
}

/// The cache on the request path: fresh answers at once, answers of the component kept when they may be.
struct CacheLayer {
    cache: Arc<HttpCache>,
    hit_headers: Vec<HeaderMap>,
}

impl Layer for CacheLayer {
    fn answer(&self, request: &Parts, component: ComponentIndex) -> Option<HostResponse> {
        self.cache.lookup(request, &self.hit_headers[component.0])
    }

    fn before_call(&self, request: &Parts) -> Option<Box<dyn AfterCall>> {
        let pending = self.cache.pending(request)?;
        Some(Box::new(Settle {
            cache: self.cache.clone(),
            pending,
        }))
    }
}

/// Keeps (or invalidates) what the component answered, as [`HttpCache::pending`] decided.
struct Settle {
    cache: Arc<HttpCache>,
    pending: Pending,
}

impl AfterCall for Settle {
    fn after(self: Box<Self>, response: HostResponse) -> BoxFuture<Result<HostResponse>> {
        Box::pin(async move { self.cache.settle(self.pending, response).await })
    }
}

/// What the cache counts.
#[derive(Clone, Default)]
pub struct CacheMetrics {
    lookups: Family<ResultLabel, Counter>,
    bytes: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

impl CacheMetrics {
    fn register(&self, ctx: &Start<'_>) {
        // Exported from zero, so that a hit ratio is defined from the first scrape.
        for result in ["hit", "miss"] {
            drop(self.lookups.get_or_create(&ResultLabel { result }));
        }
        ctx.metrics.register(
            "http_cache_lookups",
            "Lookups in the HTTP cache (--http-cache-mib), by result: hit (answered from memory) or miss",
            self.lookups.clone(),
        );
        ctx.metrics.register(
            "http_cache_bytes",
            "Bytes the HTTP cache holds",
            self.bytes.clone(),
        );
    }

    fn lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.lookups.get_or_create(&ResultLabel { result }).inc();
    }

    fn bytes(&self, bytes: u64) {
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
