//! The embedding cache in the Spin key-value store `default`, behind the small [`Kv`] seam
//! (`wasm::kv` in the component, a map in unit tests).
//!
//! # Buckets of a few entries
//! Spin's key-value store has neither expiry nor a size limit, so the bound is structural: the
//! cache owns `cache_max_entries / 4` keys, `emb:v3:<bucket>`, each holding at most four entries,
//! and an input's bucket is its entry hash modulo the bucket count. A miss costs one `get` (the
//! lookup reads the bucket) and one `set` (the bucket rewritten with the new entry), a hit one
//! `get`, and the store never holds more than `cache_max_entries` entries of this layout,
//! whatever requests race: a lost race loses an entry, never the bound.
//!
//! Why buckets, not one entry per key: with one slot per hash, inputs whose hashes share a slot
//! evict each other for ever. At 100,000 slots about 5% of the 5,540 load-test questions do, and
//! each such repeat was a miss and an inference (the warm load test halved). Four entries per
//! bucket make an overflow before the store is nearly full rare (a Poisson tail), while a bucket
//! stays one small value: a nearly empty store reads about one entry per lookup.
//!
//! A full bucket drops its expired entries first, then its oldest written entry.
//!
//! Keys the layout does not own (another layout's version, buckets beyond a `cache_max_entries`
//! that shrank) are deleted by a sweep that lists the store's keys; it runs when bucket 0 is
//! written, on average once per bucket-count writes, so its cost (proportional to the store)
//! is constant per write.
//!
//! # Values
//! A bucket is its entries one after another, each the full hash (32 bytes), the expiry (unix
//! seconds, u64), the token count (u32, for `usage`), then the vector (f32), all little-endian.
//! A value that is not a whole number of entries is treated as empty; an expired or foreign
//! entry is a miss.
//!
//! # Failures
//! The cache is an optimization: the first store error of a request switches the cache off for
//! the rest of that request, which is then served uncached. Nothing is logged here: the host
//! reports store outages (once per incident, not once per request).

use std::cell::{Cell, Ref, RefCell};
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::input::Input;
use super::model::Model;
use super::tokenize::Truncation;
use crate::config::CacheSettings;

/// Every key the cache writes starts with this.
const NAMESPACE: &str = "emb:";
/// The version of the key and value layout: changing the layout changes it.
pub const CACHE_VERSION: &str = "v3";

const HASH_BYTES: usize = 32;
const EXPIRY_BYTES: usize = 8;
const TOKENS_BYTES: usize = 4;
const HEADER_BYTES: usize = HASH_BYTES + EXPIRY_BYTES + TOKENS_BYTES;

/// The sha256 that identifies a cached input.
pub type EntryHash = [u8; HASH_BYTES];

/// The key-value store, as the cache uses it.
pub trait Kv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Every key of the store; expensive on a large store, so only the rare sweep calls it.
    fn keys(&self) -> Result<Vec<String>, KvError>;
}

/// A store failure, described by the backend.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

/// The identity of `input` as embedded with `truncation` by the model `model_digest`: the cache
/// key's hash, and the basis of `/v1/encode`'s ETag. Each part is length-prefixed or of fixed
/// size, so no two different triples hash the same bytes.
pub fn entry_hash(model_digest: &str, truncation: Truncation, input: Input) -> EntryHash {
    let mut hasher = Sha256::new();
    hasher.update((model_digest.len() as u64).to_le_bytes());
    hasher.update(model_digest.as_bytes());
    hasher.update([truncation_byte(truncation)]);
    match input {
        Input::Text(text) => {
            hasher.update([0]);
            hasher.update(text.as_bytes());
        }
        Input::Tokens(ids) => {
            hasher.update([1]);
            hasher.update(bytemuck::cast_slice::<u32, u8>(ids));
        }
    }
    hasher.finalize().into()
}

/// How a truncation is written into an entry's hash: 0 and 1 are what `truncate: false` and
/// `true` were before left truncation existed, so entries cached then are still found.
fn truncation_byte(truncation: Truncation) -> u8 {
    match truncation {
        Truncation::Refuse => 0,
        Truncation::Right => 1,
        Truncation::Left => 2,
    }
}

/// A cached embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub vector: Vec<f32>,
    /// Tokens the model saw, `[CLS]` and `[SEP]` included.
    pub tokens: usize,
}

// The values are little-endian; the casts below are native-endian (see lib.rs).

/// The most entries one bucket holds.
const BUCKET_ENTRIES: u64 = 4;

/// How `max_entries` is split: (bucket count, entries per bucket), their product ≤ `max_entries`.
fn bucket_shape(max_entries: u64) -> (u64, usize) {
    let per_bucket = BUCKET_ENTRIES.min(max_entries).max(1);
    ((max_entries / per_bucket).max(1), per_bucket as usize)
}

/// The bucket `hash` lives in, of `buckets`.
fn bucket_of(hash: &EntryHash, buckets: u64) -> u64 {
    let head: [u8; 8] = hash[..8].try_into().unwrap_or_default();
    u64::from_le_bytes(head) % buckets.max(1)
}

fn bucket_key(bucket: u64) -> String {
    format!("{NAMESPACE}{CACHE_VERSION}:{bucket}")
}

/// Whether `key` is one of the current layout's buckets.
fn is_owned_bucket(key: &str, buckets: u64) -> bool {
    key.strip_prefix(NAMESPACE)
        .and_then(|rest| rest.strip_prefix(CACHE_VERSION))
        .and_then(|rest| rest.strip_prefix(':'))
        .filter(|digits| {
            // Only the canonical spelling of a bucket number: `0`, `17`, never `017`.
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (*digits == "0" || !digits.starts_with('0'))
        })
        .and_then(|digits| digits.parse::<u64>().ok())
        .is_some_and(|bucket| bucket < buckets)
}

fn encode_entry(hash: &EntryHash, expires_at: u64, vector: &[f32], tokens: usize) -> Vec<u8> {
    let tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
    let mut value = Vec::with_capacity(HEADER_BYTES + size_of_val(vector));
    value.extend_from_slice(hash);
    value.extend_from_slice(&expires_at.to_le_bytes());
    value.extend_from_slice(&tokens.to_le_bytes());
    value.extend_from_slice(bytemuck::cast_slice(vector));
    value
}

/// One encoded entry: its bytes, and their parts.
struct RawEntry<'v> {
    bytes: &'v [u8],
    hash: &'v [u8],
    expires_at: u64,
    tokens: u32,
    vector: &'v [u8],
}

/// The entries of a bucket value whose entries are `dimensions` wide; a value that is not a
/// whole number of such entries (another width, a torn write) holds none.
fn bucket_entries(value: &[u8], dimensions: usize) -> impl Iterator<Item = RawEntry<'_>> {
    let size = HEADER_BYTES + dimensions * size_of::<f32>();
    let whole = if value.len().is_multiple_of(size) {
        value
    } else {
        &[]
    };
    whole.chunks_exact(size).map(|bytes| {
        let (hash, rest) = bytes.split_at(HASH_BYTES);
        let (expiry, rest) = rest.split_at(EXPIRY_BYTES);
        let (tokens, vector) = rest.split_at(TOKENS_BYTES);
        RawEntry {
            bytes,
            hash,
            expires_at: u64::from_le_bytes(expiry.try_into().unwrap_or_default()),
            tokens: u32::from_le_bytes(tokens.try_into().unwrap_or_default()),
            vector,
        }
    })
}

/// `hash`'s entry in the bucket `value` if it is there and not expired at `now`.
fn find_entry(value: &[u8], hash: &EntryHash, dimensions: usize, now: u64) -> Option<Entry> {
    bucket_entries(value, dimensions)
        .find(|entry| entry.hash == hash && now < entry.expires_at)
        .map(|entry| Entry {
            vector: bytemuck::pod_collect_to_vec(entry.vector),
            tokens: entry.tokens as usize,
        })
}

/// The bucket `value` with `entry` (encoded, for `hash`) written into it: the entries still
/// live at `now` and not `hash`'s, oldest first, then `entry`; the oldest dropped beyond
/// `capacity`.
fn with_entry(
    value: &[u8],
    hash: &EntryHash,
    entry: &[u8],
    dimensions: usize,
    capacity: usize,
    now: u64,
) -> Vec<u8> {
    let kept: Vec<&[u8]> = bucket_entries(value, dimensions)
        .filter(|kept| kept.hash != hash && now < kept.expires_at)
        .map(|kept| kept.bytes)
        .collect();
    let skip = (kept.len() + 1).saturating_sub(capacity);
    let mut bucket = Vec::with_capacity((kept.len() + 1 - skip) * entry.len());
    for bytes in &kept[skip..] {
        bucket.extend_from_slice(bytes);
    }
    bucket.extend_from_slice(entry);
    bucket
}

/// The cache as one request sees it for one model: the store, the settings and the time.
pub struct Cache<'a> {
    kv: &'a dyn Kv,
    settings: CacheSettings,
    model: &'a Model,
    /// Unix seconds at the start of the request.
    now: u64,
    /// Set by the first store error: the rest of the request goes uncached.
    failed: Cell<bool>,
    /// The buckets this request read, by number (an absent key as empty): a write after a
    /// lookup rewrites what was read instead of reading it again.
    read: RefCell<BTreeMap<u64, Vec<u8>>>,
}

impl<'a> Cache<'a> {
    /// `None` when the settings disable caching or the model's digest is unknown (an entry
    /// must never outlive a change of model).
    pub fn new(
        kv: &'a dyn Kv,
        settings: CacheSettings,
        model: &'a Model,
        now: u64,
    ) -> Option<Self> {
        (settings.enabled() && !model.digest.is_empty()).then_some(Self {
            kv,
            settings,
            model,
            now,
            failed: Cell::new(false),
            read: RefCell::default(),
        })
    }

    pub fn hash(&self, input: Input, truncation: Truncation) -> EntryHash {
        entry_hash(&self.model.digest, truncation, input)
    }

    /// Runs one store call unless the store already failed in this request.
    fn attempt<T>(&self, call: impl FnOnce(&dyn Kv) -> Result<T, KvError>) -> Option<T> {
        if self.failed.get() {
            return None;
        }
        call(self.kv).inspect_err(|_| self.failed.set(true)).ok()
    }

    /// `bucket`'s value, read from the store once per request (an absent key as empty); `None`
    /// once the store has failed.
    fn bucket(&self, bucket: u64) -> Option<Ref<'_, Vec<u8>>> {
        if !self.read.borrow().contains_key(&bucket) {
            let value = self.attempt(|kv| kv.get(&bucket_key(bucket)))?;
            self.read
                .borrow_mut()
                .insert(bucket, value.unwrap_or_default());
        }
        Some(Ref::map(self.read.borrow(), |read| &read[&bucket]))
    }

    /// The live entry of each hash, if there is one: one `get` per distinct bucket.
    pub fn lookup(&self, hashes: &[EntryHash]) -> Vec<Option<Entry>> {
        let (buckets, _) = bucket_shape(self.settings.max_entries);
        hashes
            .iter()
            .map(|hash| {
                let value = self.bucket(bucket_of(hash, buckets))?;
                find_entry(&value, hash, self.model.dimensions, self.now)
            })
            .collect()
    }

    /// Writes new entries: one `set` per bucket they fall in, plus a `get` for a bucket this
    /// request did not look up.
    pub fn store(&self, entries: &[(EntryHash, &[f32], usize)]) {
        let (buckets, capacity) = bucket_shape(self.settings.max_entries);
        let expires_at = self.now.saturating_add(self.settings.ttl_seconds);
        let dimensions = self.model.dimensions;
        let mut written = Vec::new();
        for (hash, vector, tokens) in entries {
            let bucket = bucket_of(hash, buckets);
            let Some(value) = self.bucket(bucket) else {
                return;
            };
            let entry = encode_entry(hash, expires_at, vector, *tokens);
            let updated = with_entry(&value, hash, &entry, dimensions, capacity, self.now);
            drop(value);
            self.read.borrow_mut().insert(bucket, updated);
            if !written.contains(&bucket) {
                written.push(bucket);
            }
        }
        for &bucket in &written {
            let read = self.read.borrow();
            if self
                .attempt(|kv| kv.set(&bucket_key(bucket), &read[&bucket]))
                .is_none()
            {
                return;
            }
        }
        if written.contains(&0) {
            self.sweep(buckets);
        }
    }

    /// Deletes every key of the cache's namespace that the current layout does not own.
    fn sweep(&self, buckets: u64) {
        let Some(keys) = self.attempt(|kv| kv.keys()) else {
            return;
        };
        for key in keys.iter().filter(|key| key.starts_with(NAMESPACE)) {
            if !is_owned_bucket(key, buckets) && self.attempt(|kv| kv.delete(key)).is_none() {
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
    use crate::embed::model::ModelKind;

    /// A map, with a switch to make every call fail and a count of calls.
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

        /// Entries of 384-wide vectors (the model's) in the cache's keys.
        pub(crate) fn entry_count(&self) -> usize {
            self.map
                .borrow()
                .iter()
                .filter(|(key, _)| key.starts_with(NAMESPACE))
                .map(|(_, value)| value.len() / (32 + 8 + 4 + 384 * 4))
                .sum()
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
            ttl_seconds: 100,
            max_entries,
            ..CacheSettings::default()
        }
    }

    pub(crate) fn model() -> Model {
        Model::new(ModelKind::Fp32, "sha256:test".into())
    }

    const NOW: u64 = 1_700_000_000;

    fn text_hash(text: &str) -> EntryHash {
        entry_hash("sha256:test", Truncation::Right, Input::Text(text))
    }

    fn store_texts(cache: &Cache, texts: &[String]) {
        let vector = [0.5f32; 384];
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
    fn keys_depend_on_model_truncation_kind_and_exact_text() {
        let right = Truncation::Right;
        let base = entry_hash("m", right, Input::Text("hi"));
        assert_ne!(base, entry_hash("m2", right, Input::Text("hi")));
        assert_ne!(base, entry_hash("m", Truncation::Refuse, Input::Text("hi")));
        assert_ne!(base, entry_hash("m", Truncation::Left, Input::Text("hi")));
        assert_ne!(base, entry_hash("m", right, Input::Text("hi ")));
        assert_ne!(base, entry_hash("m", right, Input::Tokens(&[7632])));
        // Length prefixes keep the digest and the text apart.
        assert_ne!(
            entry_hash("ab", right, Input::Text("c")),
            entry_hash("a", right, Input::Text("bc"))
        );
        // sha256 of the definition's bytes: u64 LE length, digest, truncate, kind, text.
        let mut bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"m\x01\x00hi");
        let expected: EntryHash = Sha256::digest(&bytes).into();
        assert_eq!(base, expected);
    }

    #[test]
    fn buckets_split_the_bound_and_are_the_hash_modulo_their_count() {
        assert_eq!(bucket_shape(100_000), (25_000, 4));
        assert_eq!(bucket_shape(22), (5, 4), "never more than the bound");
        assert_eq!(bucket_shape(3), (1, 3));
        assert_eq!(bucket_shape(1), (1, 1));
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&1_000_003u64.to_le_bytes());
        assert_eq!(bucket_of(&hash, 1000), 3);
        assert_eq!(bucket_key(3), "emb:v3:3");
        assert!(is_owned_bucket("emb:v3:0", 1) && is_owned_bucket("emb:v3:19", 20));
        for foreign in [
            "emb:v3:20",
            "emb:v2:3",
            "emb:v3:03",
            "emb:v3:",
            "emb:v3:ring:3",
            "emb:v3:-1",
        ] {
            assert!(!is_owned_bucket(foreign, 20), "{foreign}");
        }
    }

    #[test]
    fn an_entry_is_hash_expiry_tokens_and_vector_and_a_bucket_their_sequence() {
        let (x, y) = (text_hash("x"), text_hash("y"));
        let value = encode_entry(&x, NOW + 5, &[1.0, -0.5], 7);
        assert_eq!(value.len(), 32 + 8 + 4 + 2 * 4);
        assert_eq!(value[..32], x);
        assert_eq!(value[32..40], (NOW + 5).to_le_bytes());
        assert_eq!(value[40..44], 7u32.to_le_bytes());
        assert_eq!(value[44..48], 1.0f32.to_le_bytes());
        assert_eq!(value[48..], (-0.5f32).to_le_bytes());
        let entry = Some(Entry {
            vector: vec![1.0, -0.5],
            tokens: 7,
        });
        assert_eq!(find_entry(&value, &x, 2, NOW), entry);
        assert_eq!(find_entry(&value, &x, 2, NOW + 4), entry);
        assert_eq!(find_entry(&value, &x, 2, NOW + 5), None, "expired");
        assert_eq!(find_entry(&value, &y, 2, NOW), None, "another input");
        assert_eq!(find_entry(&value, &x, 3, NOW), None, "another width");
        assert_eq!(find_entry(&value[..40], &x, 2, NOW), None, "truncated");
        assert_eq!(find_entry(&[], &x, 2, NOW), None, "empty");

        let bucket = [encode_entry(&y, NOW + 9, &[2.0, 3.0], 4), value.clone()].concat();
        assert_eq!(find_entry(&bucket, &x, 2, NOW), entry);
        assert_eq!(find_entry(&bucket, &y, 2, NOW).unwrap().vector, [2.0, 3.0]);
        assert_eq!(find_entry(&bucket[1..], &x, 2, NOW), None, "torn");
    }

    #[test]
    fn a_full_bucket_drops_expired_entries_then_the_oldest() {
        let entry =
            |text: &str, expires_at: u64| encode_entry(&text_hash(text), expires_at, &[1.0], 1);
        let bucket = |entries: &[(&str, u64)]| -> Vec<u8> {
            entries
                .iter()
                .flat_map(|&(text, at)| entry(text, at))
                .collect()
        };
        // Capacity 3; every written entry expires at NOW + 9.
        let write = |value: &[u8], text: &str| {
            with_entry(value, &text_hash(text), &entry(text, NOW + 9), 1, 3, NOW)
        };
        let written = write(&bucket(&[("a", NOW + 1), ("b", NOW), ("c", NOW + 1)]), "d");
        assert_eq!(
            written,
            bucket(&[("a", NOW + 1), ("c", NOW + 1), ("d", NOW + 9)])
        );
        let written = write(&written, "e");
        assert_eq!(
            written,
            bucket(&[("c", NOW + 1), ("d", NOW + 9), ("e", NOW + 9)])
        );
        // Rewriting an input replaces its entry, which becomes the newest.
        let written = write(&written, "c");
        assert_eq!(
            written,
            bucket(&[("d", NOW + 9), ("e", NOW + 9), ("c", NOW + 9)])
        );
        // A torn bucket is replaced by the new entry alone.
        assert_eq!(write(&written[1..], "f"), entry("f", NOW + 9));
    }

    #[test]
    fn a_disabled_cache_is_none() {
        let kv = FakeKv::default();
        let (model, undigested) = (model(), Model::new(ModelKind::Fp32, String::new()));
        for (settings, model) in [
            (
                CacheSettings {
                    ttl_seconds: 0,
                    ..settings(10)
                },
                &model,
            ),
            (
                CacheSettings {
                    max_entries: 0,
                    ..settings(10)
                },
                &model,
            ),
            (settings(10), &undigested),
        ] {
            assert!(
                Cache::new(&kv, settings, model, NOW).is_none(),
                "{settings:?}"
            );
        }
    }

    #[test]
    fn stored_entries_are_found_until_they_expire() {
        let (kv, model) = (FakeKv::default(), model());
        let cache = Cache::new(&kv, settings(100), &model, NOW).unwrap();
        store_texts(&cache, &texts("t", 2));
        let found = cache.lookup(&[text_hash("t 0"), text_hash("other"), text_hash("t 1")]);
        assert_eq!(
            found.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(found[0].as_ref().unwrap().tokens, 3);
        let later = Cache::new(&kv, settings(100), &model, NOW + 100).unwrap();
        assert_eq!(later.lookup(&[text_hash("t 0")]), vec![None]);
    }

    #[test]
    fn a_miss_costs_one_get_and_one_set_and_a_hit_one_get() {
        let (kv, model) = (FakeKv::default(), model());
        // Writing bucket 0 would add the sweep's calls: this text's bucket is another one.
        let cache = Cache::new(&kv, settings(1 << 40), &model, NOW).unwrap();
        assert_ne!(bucket_of(&text_hash("miss"), bucket_shape(1 << 40).0), 0);
        assert_eq!(cache.lookup(&[text_hash("miss")]), vec![None]);
        store_texts(&cache, &["miss".to_owned()]);
        assert_eq!(kv.calls.get(), 2);
        let next_request = Cache::new(&kv, settings(1 << 40), &model, NOW).unwrap();
        assert!(next_request.lookup(&[text_hash("miss")])[0].is_some());
        assert_eq!(kv.calls.get(), 3);
    }

    #[test]
    fn the_store_never_holds_more_than_max_entries() {
        let (kv, model) = (FakeKv::default(), model());
        let cache = Cache::new(&kv, settings(20), &model, NOW).unwrap();
        for (i, text) in texts("one at a time", 200).iter().enumerate() {
            store_texts(&cache, std::slice::from_ref(text));
            assert!(
                kv.entry_count() <= 20,
                "after {} texts: {}",
                i + 1,
                kv.entry_count()
            );
            assert!(
                cache.lookup(&[text_hash(text)])[0].is_some(),
                "the newest is kept"
            );
        }
        store_texts(&cache, &texts("batch", 60));
        assert!(kv.entry_count() <= 20);
    }

    #[test]
    fn inputs_sharing_a_bucket_are_all_kept_up_to_its_size_in_one_get_and_one_set() {
        let (kv, model) = (FakeKv::default(), model());
        // Four entries: one bucket of four.
        let cache = Cache::new(&kv, settings(4), &model, NOW).unwrap();
        let four = texts("shared", 4);
        let hashes: Vec<_> = four.iter().map(|t| text_hash(t)).collect();
        assert_eq!(cache.lookup(&hashes), vec![None; 4]);
        store_texts(&cache, &four);
        // get, set, and the sweep's listing (bucket 0 was written).
        assert_eq!((kv.calls.get(), kv.key_listings.get()), (3, 1));
        let later = Cache::new(&kv, settings(4), &model, NOW + 1).unwrap();
        assert!(later.lookup(&hashes).iter().all(Option::is_some));
        store_texts(&later, &["fifth".to_owned()]);
        assert_eq!(kv.entry_count(), 4);
        let found = later.lookup(&hashes);
        assert!(found[0].is_none(), "the oldest made room");
        assert!(found[1..].iter().all(Option::is_some));
    }

    #[test]
    fn colliding_inputs_replace_each_other_and_never_answer_for_each_other() {
        let (kv, model) = (FakeKv::default(), model());
        let cache = Cache::new(&kv, settings(1), &model, NOW).unwrap();
        store_texts(&cache, &["first".to_owned()]);
        assert_eq!(cache.lookup(&[text_hash("second")]), vec![None]);
        store_texts(&cache, &["second".to_owned()]);
        assert_eq!(cache.lookup(&[text_hash("first")]), vec![None]);
        assert!(cache.lookup(&[text_hash("second")])[0].is_some());
        assert_eq!(kv.entry_count(), 1);
    }

    #[test]
    fn writing_bucket_0_sweeps_keys_the_layout_does_not_own() {
        let (kv, model) = (FakeKv::default(), model());
        for key in ["emb:v1:0123", "emb:v2:0", "emb:v3:99", "emb:v3:x"] {
            kv.set(key, b"old").unwrap();
        }
        kv.set("unrelated", b"not ours").unwrap();
        // With one bucket every write is to bucket 0.
        let cache = Cache::new(&kv, settings(1), &model, NOW).unwrap();
        store_texts(&cache, &["t".to_owned()]);
        assert_eq!(kv.key_listings.get(), 1);
        let keys: Vec<_> = kv.map.borrow().keys().cloned().collect();
        assert_eq!(keys, ["emb:v3:0", "unrelated"]);
    }

    #[test]
    fn a_store_error_switches_the_cache_off_for_the_request() {
        let (kv, model) = (FakeKv::default(), model());
        let cache = Cache::new(&kv, settings(20), &model, NOW).unwrap();
        kv.broken.set(true);
        let hashes: Vec<_> = texts("t", 5).iter().map(|t| text_hash(t)).collect();
        assert_eq!(cache.lookup(&hashes), vec![None; 5]);
        store_texts(&cache, &texts("t", 5));
        assert_eq!(kv.calls.get(), 1, "no store call after the first failure");
    }

    #[test]
    fn models_never_share_entries() {
        let kv = FakeKv::default();
        let (fp32, int8) = (model(), Model::new(ModelKind::Int8, "sha256:int8".into()));
        let one = Cache::new(&kv, settings(100), &fp32, NOW).unwrap();
        let other = Cache::new(&kv, settings(100), &int8, NOW).unwrap();
        let vector = [0.5f32; 384];
        one.store(&[(
            one.hash(Input::Text("hi"), Truncation::Right),
            &vector[..],
            3,
        )]);
        assert!(one.lookup(&[one.hash(Input::Text("hi"), Truncation::Right)])[0].is_some());
        assert_eq!(
            other.lookup(&[other.hash(Input::Text("hi"), Truncation::Right)]),
            vec![None]
        );
    }
}
