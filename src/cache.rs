//! The embedding cache: one entry per distinct input in the Spin key-value store `default`,
//! behind the small [`Kv`] seam (`wasm::kv` in the component, a map in unit tests).
//!
//! # Entries
//! Key: `emb:v1:` + hex sha256 of (model digest, truncate flag, kind, the input exactly as
//! embedded): another model, another truncation or another text never shares an entry. Value:
//! expiry (unix seconds, u64 LE) + the vector (f32 LE) + the token count (u32 LE, for `usage`).
//! An expired, unreadable or wrongly sized value is a miss. `v1` is [`CACHE_VERSION`]: changing
//! the layout changes it, and the sweep (below) deletes the old version's keys.
//!
//! # The size bound: a ring of buckets
//! Spin's key-value store has neither expiry nor a size limit, and listing its keys is expensive
//! on a large store, so the bound is kept by an index the cache maintains itself. New entries'
//! hashes are appended to the current bucket (`emb:v1:ring:<slot>`, holding its lap number and up
//! to `capacity` hashes); a full bucket moves the head (`emb:v1:ring:head`) to the next slot of a
//! ring of `buckets` slots. Reusing a slot first deletes the entries its previous lap recorded:
//! the oldest bucket goes when the ring is full, so `buckets × capacity ≤ cache_max_entries`
//! entries are indexed at any time (first in, first out; a hit does not refresh an entry).
//!
//! Concurrent requests may append to the same bucket at once; the last write wins and the other
//! request's hashes are lost from the index. Their entries would never be evicted, so every time
//! the head completes a lap the request that moved it sweeps the store: it lists the keys once
//! (amortized over `cache_max_entries` insertions) and deletes every `emb:` key that the ring no
//! longer knows: orphaned entries, buckets beyond the ring (after `cache_max_entries` shrank) and
//! other cache versions. Between sweeps the store may exceed the bound by the entries lost to
//! such races (at most the concurrent writers' share of one lap); it never grows without limit.
//!
//! # Failures
//! The cache is an optimization: the first store error of a request switches the cache off for
//! the rest of that request, which is then served uncached. Nothing is logged here: the host
//! reports store outages (once per incident, not once per request).

use std::cell::Cell;
use std::collections::HashSet;

use sha2::{Digest, Sha256};

use crate::inputs::Input;

/// The literals behind [`NAMESPACE`] and [`CACHE_VERSION`]: macros, because `concat!` builds
/// the key prefixes below from literals only.
macro_rules! namespace {
    () => {
        "emb:"
    };
}
macro_rules! cache_version {
    () => {
        "v1"
    };
}

/// The version of the key and value layout, part of every key.
pub const CACHE_VERSION: &str = cache_version!();
/// Every key the cache writes starts with this.
const NAMESPACE: &str = namespace!();
/// Entry keys: this, then 64 hex digits.
const ENTRY_PREFIX: &str = concat!(namespace!(), cache_version!(), ":");
/// Ring keys: this, then `head` or a slot number.
const RING_PREFIX: &str = concat!(namespace!(), cache_version!(), ":ring:");
const HEAD_KEY: &str = concat!(namespace!(), cache_version!(), ":ring:head");

/// At most this many hashes per bucket (8 KiB of hashes per bucket value).
const MAX_BUCKET_CAPACITY: u64 = 256;
/// The ring has at least this many buckets (unless `cache_max_entries` is smaller), so that
/// eviction removes a small part of the cache at a time.
const MIN_BUCKETS: u64 = 8;

const EXPIRY_BYTES: usize = 8;
const TOKENS_BYTES: usize = 4;
const HASH_BYTES: usize = 32;

/// The sha256 that identifies a cached input.
pub type EntryHash = [u8; HASH_BYTES];

/// The key-value store, as the cache uses it.
pub trait Kv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Every key of the store; expensive on a large store, so called once per ring lap.
    fn keys(&self) -> Result<Vec<String>, KvError>;
}

/// A store failure, described by the backend.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

/// The cache's settings (variables `model_digest`, `cache_ttl_seconds`, `cache_max_entries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// The served model's identity; without one, nothing is cached (an entry must never
    /// outlive a change of model).
    pub model_digest: String,
    /// Entry lifetime; 0 disables the cache.
    pub ttl_seconds: u64,
    /// The bound on entries (see the module documentation for how closely it is kept).
    pub max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            model_digest: String::new(),
            ttl_seconds: 86_400,
            max_entries: 100_000,
        }
    }
}

impl CacheSettings {
    pub fn enabled(&self) -> bool {
        self.ttl_seconds > 0 && self.max_entries > 0 && !self.model_digest.is_empty()
    }
}

/// The identity of `input` as embedded with `truncate` by the model `model_digest`: the cache
/// key's hash, and the basis of `/v1/encode`'s ETag. Each part is length-prefixed or of fixed
/// size, so no two different triples hash the same bytes.
pub fn entry_hash(model_digest: &str, truncate: bool, input: Input) -> EntryHash {
    let mut hasher = Sha256::new();
    hasher.update((model_digest.len() as u64).to_le_bytes());
    hasher.update(model_digest.as_bytes());
    hasher.update([u8::from(truncate)]);
    match input {
        Input::Text(text) => {
            hasher.update([0]);
            hasher.update(text.as_bytes());
        }
        Input::Tokens(ids) => {
            hasher.update([1]);
            ids.iter().for_each(|id| hasher.update(id.to_le_bytes()));
        }
    }
    hasher.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn entry_key(hash: &EntryHash) -> String {
    format!("{ENTRY_PREFIX}{}", hex(hash))
}

/// A cached embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub vector: Vec<f32>,
    /// Tokens the model saw, `[CLS]` and `[SEP]` included.
    pub tokens: usize,
}

fn encode_entry(expires_at: u64, vector: &[f32], tokens: usize) -> Vec<u8> {
    let tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
    let mut value = Vec::with_capacity(EXPIRY_BYTES + vector.len() * 4 + TOKENS_BYTES);
    value.extend_from_slice(&expires_at.to_le_bytes());
    vector
        .iter()
        .for_each(|v| value.extend_from_slice(&v.to_le_bytes()));
    value.extend_from_slice(&tokens.to_le_bytes());
    value
}

/// The entry in `value` if it is well-formed, `dimensions` wide and not expired at `now`.
fn decode_entry(value: &[u8], dimensions: usize, now: u64) -> Option<Entry> {
    if value.len() != EXPIRY_BYTES + dimensions * 4 + TOKENS_BYTES {
        return None;
    }
    let (expiry, rest) = value.split_at(EXPIRY_BYTES);
    let (vector, tokens) = rest.split_at(dimensions * 4);
    if now >= u64::from_le_bytes(expiry.try_into().ok()?) {
        return None;
    }
    Some(Entry {
        vector: vector
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        tokens: u32::from_le_bytes(tokens.try_into().ok()?) as usize,
    })
}

/// How the ring is laid out for a given `cache_max_entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RingShape {
    buckets: u64,
    capacity: u64,
}

impl RingShape {
    fn for_max_entries(max_entries: u64) -> Self {
        let max_entries = max_entries.max(1);
        let buckets = max_entries
            .div_ceil(MAX_BUCKET_CAPACITY)
            .max(MIN_BUCKETS.min(max_entries));
        Self {
            buckets,
            capacity: max_entries / buckets,
        }
    }

    fn entries(self) -> u64 {
        self.buckets * self.capacity
    }
}

/// One slot of the ring: the lap it belongs to and the hashes recorded in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket {
    lap_position: u64,
    hashes: Vec<EntryHash>,
}

impl Bucket {
    fn encode(&self) -> Vec<u8> {
        let mut value = self.lap_position.to_le_bytes().to_vec();
        self.hashes
            .iter()
            .for_each(|hash| value.extend_from_slice(hash));
        value
    }

    /// A malformed bucket reads as an empty one from position 0, so it is reset when reached.
    fn decode(value: &[u8]) -> Self {
        let (position, hashes) = value.split_at(EXPIRY_BYTES.min(value.len()));
        match (<[u8; 8]>::try_from(position), hashes.len() % HASH_BYTES) {
            (Ok(position), 0) => Self {
                lap_position: u64::from_le_bytes(position),
                hashes: hashes
                    .chunks_exact(HASH_BYTES)
                    .filter_map(|hash| hash.try_into().ok())
                    .collect(),
            },
            _ => Self {
                lap_position: 0,
                hashes: Vec::new(),
            },
        }
    }
}

fn bucket_key(slot: u64) -> String {
    format!("{RING_PREFIX}{slot}")
}

/// The cache as one request sees it: the store, the settings, and the time.
pub struct Cache<'a> {
    kv: &'a dyn Kv,
    settings: &'a CacheSettings,
    /// Unix seconds at the start of the request.
    now: u64,
    /// The width of the vectors it holds.
    dimensions: usize,
    /// Set by the first store error: the rest of the request goes uncached.
    failed: Cell<bool>,
}

impl<'a> Cache<'a> {
    /// `None` when the settings disable caching.
    pub fn new(
        kv: &'a dyn Kv,
        settings: &'a CacheSettings,
        now: u64,
        dimensions: usize,
    ) -> Option<Self> {
        settings.enabled().then_some(Self {
            kv,
            settings,
            now,
            dimensions,
            failed: Cell::new(false),
        })
    }

    pub fn hash(&self, input: Input, truncate: bool) -> EntryHash {
        entry_hash(&self.settings.model_digest, truncate, input)
    }

    /// Runs one store call unless the store already failed in this request.
    fn attempt<T>(&self, call: impl FnOnce(&dyn Kv) -> Result<T, KvError>) -> Option<T> {
        if self.failed.get() {
            return None;
        }
        call(self.kv).inspect_err(|_| self.failed.set(true)).ok()
    }

    /// The live entry of each hash, if there is one.
    pub fn lookup(&self, hashes: &[EntryHash]) -> Vec<Option<Entry>> {
        hashes
            .iter()
            .map(|hash| {
                self.attempt(|kv| kv.get(&entry_key(hash)))
                    .flatten()
                    .and_then(|value| decode_entry(&value, self.dimensions, self.now))
            })
            .collect()
    }

    /// Writes new entries, then records them in the ring (evicting the oldest as needed).
    pub fn store(&self, entries: &[(EntryHash, &[f32], usize)]) {
        let shape = RingShape::for_max_entries(self.settings.max_entries);
        // Entries past the ring's size would be evicted by this same call: skip them.
        let skip = entries
            .len()
            .saturating_sub(usize::try_from(shape.entries()).unwrap_or(usize::MAX));
        let entries = &entries[skip..];
        let expires_at = self.now.saturating_add(self.settings.ttl_seconds);
        for (hash, vector, tokens) in entries {
            let value = encode_entry(expires_at, vector, *tokens);
            if self
                .attempt(|kv| kv.set(&entry_key(hash), &value))
                .is_none()
            {
                return;
            }
        }
        let hashes: Vec<EntryHash> = entries.iter().map(|(hash, _, _)| *hash).collect();
        self.record(&hashes, shape);
    }

    /// Appends `hashes` to the ring from the head on.
    fn record(&self, mut hashes: &[EntryHash], shape: RingShape) {
        let Some(head) = self.attempt(|kv| kv.get(HEAD_KEY)) else {
            return;
        };
        let start = head
            .and_then(|value| <[u8; 8]>::try_from(value.as_slice()).ok())
            .map_or(0, u64::from_le_bytes);
        let mut position = start;
        let mut lap_completed = false;
        while !hashes.is_empty() {
            let slot = position % shape.buckets;
            let Some(value) = self.attempt(|kv| kv.get(&bucket_key(slot))) else {
                return;
            };
            let mut bucket = value.map_or(
                Bucket {
                    lap_position: position,
                    hashes: Vec::new(),
                },
                |value| Bucket::decode(&value),
            );
            if bucket.lap_position != position {
                // The slot still holds an earlier lap: its entries are the oldest.
                for hash in &bucket.hashes {
                    self.attempt(|kv| kv.delete(&entry_key(hash)));
                }
                bucket = Bucket {
                    lap_position: position,
                    hashes: Vec::new(),
                };
            }
            let room = usize::try_from(shape.capacity)
                .unwrap_or(usize::MAX)
                .saturating_sub(bucket.hashes.len());
            let (taken, rest) = hashes.split_at(room.min(hashes.len()));
            bucket.hashes.extend_from_slice(taken);
            hashes = rest;
            if !taken.is_empty()
                && self
                    .attempt(|kv| kv.set(&bucket_key(slot), &bucket.encode()))
                    .is_none()
            {
                return;
            }
            if bucket.hashes.len() as u64 >= shape.capacity {
                position += 1;
                lap_completed |= position % shape.buckets == 0;
            }
        }
        if position != start
            && self
                .attempt(|kv| kv.set(HEAD_KEY, &position.to_le_bytes()))
                .is_none()
        {
            return;
        }
        if lap_completed {
            self.sweep(shape);
        }
    }

    /// Deletes every key of the cache's namespace that the ring does not account for.
    fn sweep(&self, shape: RingShape) {
        let Some(keys) = self.attempt(|kv| kv.keys()) else {
            return;
        };
        let mut indexed = HashSet::new();
        for slot in 0..shape.buckets {
            let Some(value) = self.attempt(|kv| kv.get(&bucket_key(slot))) else {
                return;
            };
            if let Some(value) = value {
                indexed.extend(Bucket::decode(&value).hashes.iter().map(entry_key));
            }
        }
        for key in keys.iter().filter(|key| key.starts_with(NAMESPACE)) {
            let keep = match key.strip_prefix(RING_PREFIX) {
                Some("head") => true,
                Some(slot) => slot.parse::<u64>().is_ok_and(|slot| slot < shape.buckets),
                None => indexed.contains(key),
            };
            if !keep && self.attempt(|kv| kv.delete(key)).is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    /// A map, with switches to make every call fail and a count of calls.
    #[derive(Default)]
    pub(crate) struct FakeKv {
        pub map: RefCell<BTreeMap<String, Vec<u8>>>,
        pub broken: Cell<bool>,
        pub calls: Cell<usize>,
        pub key_listings: Cell<usize>,
    }

    impl FakeKv {
        fn call(&self) -> Result<(), KvError> {
            self.calls.set(self.calls.get() + 1);
            if self.broken.get() {
                Err(KvError("connection refused".into()))
            } else {
                Ok(())
            }
        }

        pub(crate) fn entry_count(&self) -> usize {
            self.map
                .borrow()
                .keys()
                .filter(|key| key.starts_with(ENTRY_PREFIX) && !key.starts_with(RING_PREFIX))
                .count()
        }
    }

    impl Kv for FakeKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
            self.call()?;
            Ok(self.map.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
            self.call()?;
            self.map.borrow_mut().insert(key.to_owned(), value.to_vec());
            Ok(())
        }

        fn delete(&self, key: &str) -> Result<(), KvError> {
            self.call()?;
            self.map.borrow_mut().remove(key);
            Ok(())
        }

        fn keys(&self) -> Result<Vec<String>, KvError> {
            self.call()?;
            self.key_listings.set(self.key_listings.get() + 1);
            Ok(self.map.borrow().keys().cloned().collect())
        }
    }

    pub(crate) fn settings(max_entries: u64) -> CacheSettings {
        CacheSettings {
            model_digest: "sha256:test".into(),
            ttl_seconds: 100,
            max_entries,
        }
    }

    const NOW: u64 = 1_700_000_000;

    fn text_hash(text: &str) -> EntryHash {
        entry_hash("sha256:test", true, Input::Text(text))
    }

    fn store_texts(cache: &Cache, texts: &[String]) {
        let vector = [0.5f32; 2];
        let entries: Vec<_> = texts
            .iter()
            .map(|t| (text_hash(t), &vector[..], 3))
            .collect();
        cache.store(&entries);
    }

    fn texts(prefix: &str, count: usize) -> Vec<String> {
        (0..count).map(|i| format!("{prefix} {i}")).collect()
    }

    #[test]
    fn every_key_prefix_carries_the_cache_version() {
        let versioned = format!("{NAMESPACE}{CACHE_VERSION}:");
        assert_eq!(ENTRY_PREFIX, versioned);
        assert_eq!(RING_PREFIX, format!("{versioned}ring:"));
        assert_eq!(HEAD_KEY, format!("{RING_PREFIX}head"));
    }

    #[test]
    fn keys_depend_on_model_truncate_kind_and_exact_text() {
        let base = entry_hash("m", true, Input::Text("hi"));
        assert_ne!(base, entry_hash("m2", true, Input::Text("hi")));
        assert_ne!(base, entry_hash("m", false, Input::Text("hi")));
        assert_ne!(base, entry_hash("m", true, Input::Text("hi ")));
        assert_ne!(base, entry_hash("m", true, Input::Tokens(&[7632])));
        // Length prefixes keep the digest and the text apart.
        assert_ne!(
            entry_hash("ab", true, Input::Text("c")),
            entry_hash("a", true, Input::Text("bc"))
        );
        let key = entry_key(&base);
        assert!(key.starts_with("emb:v1:") && key.len() == 7 + 64, "{key}");
        assert!(key[7..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn the_value_is_expiry_vector_and_token_count() {
        let value = encode_entry(NOW + 5, &[1.0, -0.5], 7);
        assert_eq!(value.len(), 8 + 2 * 4 + 4);
        assert_eq!(value[..8], (NOW + 5).to_le_bytes());
        assert_eq!(value[8..12], 1.0f32.to_le_bytes());
        assert_eq!(value[16..], 7u32.to_le_bytes());
        assert_eq!(
            decode_entry(&value, 2, NOW),
            Some(Entry {
                vector: vec![1.0, -0.5],
                tokens: 7
            })
        );
        assert_eq!(decode_entry(&value, 2, NOW + 4).map(|e| e.tokens), Some(7));
        assert_eq!(decode_entry(&value, 2, NOW + 5), None, "expired");
        assert_eq!(decode_entry(&value, 3, NOW), None, "another width");
        assert_eq!(decode_entry(&value[..10], 2, NOW), None, "truncated");
        assert_eq!(decode_entry(&[], 0, NOW), None);
    }

    #[test]
    fn a_disabled_cache_is_none() {
        let kv = FakeKv::default();
        for settings in [
            CacheSettings {
                ttl_seconds: 0,
                ..settings(10)
            },
            CacheSettings {
                max_entries: 0,
                ..settings(10)
            },
            CacheSettings {
                model_digest: String::new(),
                ..settings(10)
            },
        ] {
            assert!(Cache::new(&kv, &settings, NOW, 2).is_none(), "{settings:?}");
        }
    }

    #[test]
    fn stored_entries_are_found_until_they_expire() {
        let kv = FakeKv::default();
        let settings = settings(100);
        let cache = Cache::new(&kv, &settings, NOW, 2).unwrap();
        store_texts(&cache, &texts("t", 2));
        let found = cache.lookup(&[text_hash("t 0"), text_hash("other"), text_hash("t 1")]);
        assert_eq!(
            found.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(found[0].as_ref().unwrap().tokens, 3);
        let later = Cache::new(&kv, &settings, NOW + 100, 2).unwrap();
        assert_eq!(later.lookup(&[text_hash("t 0")]), vec![None]);
    }

    #[test]
    fn ring_shapes_stay_within_the_bound() {
        for max_entries in [1, 2, 5, 8, 20, 255, 256, 257, 1000, 100_000, 1 << 40] {
            let shape = RingShape::for_max_entries(max_entries);
            assert!(
                shape.capacity >= 1 && shape.capacity <= MAX_BUCKET_CAPACITY,
                "{max_entries}: {shape:?}"
            );
            assert!(shape.entries() <= max_entries, "{max_entries}: {shape:?}");
            assert!(
                shape.entries() * 2 > max_entries,
                "{max_entries}: {shape:?} wastes half"
            );
        }
        assert_eq!(
            RingShape::for_max_entries(20),
            RingShape {
                buckets: 8,
                capacity: 2
            }
        );
        assert_eq!(
            RingShape::for_max_entries(100_000),
            RingShape {
                buckets: 391,
                capacity: 255
            }
        );
    }

    #[test]
    fn the_oldest_bucket_is_evicted_first_and_the_store_stays_bounded() {
        let kv = FakeKv::default();
        let settings = settings(20);
        let cache = Cache::new(&kv, &settings, NOW, 2).unwrap();
        let all = texts("one at a time", 200);
        for (i, text) in all.iter().enumerate() {
            store_texts(&cache, std::slice::from_ref(text));
            assert!(
                kv.entry_count() <= 20,
                "after {} texts: {}",
                i + 1,
                kv.entry_count()
            );
        }
        let found = cache.lookup(&all.iter().map(|t| text_hash(t)).collect::<Vec<_>>());
        let kept: Vec<_> = found.iter().map(Option::is_some).collect();
        assert!(kept[199] && kept[185], "the newest survive");
        assert!(!kept[0] && !kept[150], "the oldest go");
        assert!(kept.iter().filter(|&&k| k).count() >= 14);
    }

    #[test]
    fn one_large_request_is_bounded_too() {
        let kv = FakeKv::default();
        let settings = settings(20);
        let cache = Cache::new(&kv, &settings, NOW, 2).unwrap();
        store_texts(&cache, &texts("batch", 60));
        assert!((1..=20).contains(&kv.entry_count()), "{}", kv.entry_count());
        assert!(cache.lookup(&[text_hash("batch 59")])[0].is_some());
    }

    #[test]
    fn lost_index_updates_are_swept_at_the_end_of_a_lap() {
        let kv = FakeKv::default();
        let settings = settings(20);
        let cache = Cache::new(&kv, &settings, NOW, 2).unwrap();
        // Entries whose index update was lost to a concurrent writer, and an old layout's key.
        let vector = [0.5f32; 2];
        for text in texts("orphan", 30) {
            kv.set(
                &entry_key(&text_hash(&text)),
                &encode_entry(NOW + 100, &vector, 3),
            )
            .unwrap();
        }
        kv.set("emb:v0:0123", b"old").unwrap();
        kv.set("emb:v1:ring:99", b"a bucket beyond the ring")
            .unwrap();
        kv.set("unrelated", b"not ours").unwrap();
        store_texts(&cache, &texts("indexed", 16));
        assert_eq!(kv.key_listings.get(), 1, "one sweep for one lap");
        assert_eq!(kv.entry_count(), 16);
        let map = kv.map.borrow();
        assert!(!map.contains_key("emb:v0:0123") && !map.contains_key("emb:v1:ring:99"));
        assert!(map.contains_key("unrelated") && map.contains_key(HEAD_KEY));
    }

    #[test]
    fn a_store_error_switches_the_cache_off_for_the_request() {
        let kv = FakeKv::default();
        let settings = settings(20);
        let cache = Cache::new(&kv, &settings, NOW, 2).unwrap();
        kv.broken.set(true);
        let hashes: Vec<_> = texts("t", 5).iter().map(|t| text_hash(t)).collect();
        assert_eq!(cache.lookup(&hashes), vec![None; 5]);
        store_texts(&cache, &texts("t", 5));
        assert_eq!(kv.calls.get(), 1, "no store call after the first failure");
    }

    #[test]
    fn a_garbled_index_is_reset_not_trusted() {
        let kv = FakeKv::default();
        let settings = settings(20);
        let cache = Cache::new(&kv, &settings, NOW, 2).unwrap();
        kv.set(HEAD_KEY, b"garbage").unwrap();
        kv.set(&bucket_key(0), &[1, 2, 3]).unwrap();
        store_texts(&cache, &texts("t", 3));
        assert!(cache.lookup(&[text_hash("t 2")])[0].is_some());
        assert_eq!(
            Bucket::decode(&kv.map.borrow()[&bucket_key(0)])
                .hashes
                .len(),
            2
        );
    }
}
