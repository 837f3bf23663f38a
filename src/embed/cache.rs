//! The embedding cache in the Spin key-value store `default`, behind the small [`Kv`] seam
//! (`wasm::kv` in the component, a map in unit tests).
//!
//! # A fixed number of slots
//! Spin's key-value store has neither expiry nor a size limit, so the bound is structural: the
//! cache owns `cache_max_entries` keys, `emb:v2:<slot>`, and an input's slot is its entry hash
//! modulo that count. The value carries the full hash, so an entry of another input (or another
//! model: the model's digest is part of the hash) in the same slot reads as a miss, and writing
//! replaces it. A miss therefore costs one `get` and one `set`, a hit one `get`, and the store
//! never holds more than `cache_max_entries` entries of this layout, whatever requests race.
//! A slot collision evicts the older entry early; at the default 100,000 slots that is rare.
//!
//! Keys the layout does not own (another layout's version, slots beyond a `cache_max_entries`
//! that shrank) are deleted by a sweep that lists the store's keys; it runs when an entry is
//! written to slot 0, on average once per `cache_max_entries` writes, so its cost (proportional
//! to the store) is constant per write.
//!
//! # Values
//! The full hash (32 bytes), the expiry (unix seconds, u64), the token count (u32, for `usage`),
//! then the vector (f32), all little-endian. An expired, foreign or wrongly sized value is a miss.
//!
//! # Failures
//! The cache is an optimization: the first store error of a request switches the cache off for
//! the rest of that request, which is then served uncached. Nothing is logged here: the host
//! reports store outages (once per incident, not once per request).

use std::cell::Cell;

use sha2::{Digest, Sha256};

use super::input::Input;
use super::model::Model;
use crate::config::CacheSettings;

/// Every key the cache writes starts with this.
const NAMESPACE: &str = "emb:";
/// The version of the key and value layout: changing the layout changes it.
pub const CACHE_VERSION: &str = "v2";

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
            hasher.update(bytemuck::cast_slice::<u32, u8>(ids));
        }
    }
    hasher.finalize().into()
}

/// A cached embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub vector: Vec<f32>,
    /// Tokens the model saw, `[CLS]` and `[SEP]` included.
    pub tokens: usize,
}

// The values are little-endian; the casts below are native-endian (see lib.rs).

fn encode_entry(hash: &EntryHash, expires_at: u64, vector: &[f32], tokens: usize) -> Vec<u8> {
    let tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
    let mut value = Vec::with_capacity(HEADER_BYTES + size_of_val(vector));
    value.extend_from_slice(hash);
    value.extend_from_slice(&expires_at.to_le_bytes());
    value.extend_from_slice(&tokens.to_le_bytes());
    value.extend_from_slice(bytemuck::cast_slice(vector));
    value
}

/// The entry in `value` if it is `hash`'s, `dimensions` wide and not expired at `now`.
fn decode_entry(value: &[u8], hash: &EntryHash, dimensions: usize, now: u64) -> Option<Entry> {
    if value.len() != HEADER_BYTES + dimensions * size_of::<f32>() {
        return None;
    }
    let (stored_hash, rest) = value.split_at(HASH_BYTES);
    let (expiry, rest) = rest.split_at(EXPIRY_BYTES);
    let (tokens, vector) = rest.split_at(TOKENS_BYTES);
    if stored_hash != hash || now >= u64::from_le_bytes(expiry.try_into().ok()?) {
        return None;
    }
    Some(Entry {
        vector: bytemuck::pod_collect_to_vec(vector),
        tokens: u32::from_le_bytes(tokens.try_into().ok()?) as usize,
    })
}

/// The slot `hash` lives in, of `slots`.
fn slot(hash: &EntryHash, slots: u64) -> u64 {
    let head: [u8; 8] = hash[..8].try_into().unwrap_or_default();
    u64::from_le_bytes(head) % slots.max(1)
}

fn slot_key(slot: u64) -> String {
    format!("{NAMESPACE}{CACHE_VERSION}:{slot}")
}

/// Whether `key` is one of the current layout's slots.
fn is_owned_slot(key: &str, slots: u64) -> bool {
    key.strip_prefix(NAMESPACE)
        .and_then(|rest| rest.strip_prefix(CACHE_VERSION))
        .and_then(|rest| rest.strip_prefix(':'))
        .filter(|digits| {
            // Only the canonical spelling of a slot number: `0`, `17`, never `017`.
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (*digits == "0" || !digits.starts_with('0'))
        })
        .and_then(|digits| digits.parse::<u64>().ok())
        .is_some_and(|slot| slot < slots)
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
        })
    }

    pub fn hash(&self, input: Input, truncate: bool) -> EntryHash {
        entry_hash(&self.model.digest, truncate, input)
    }

    /// Runs one store call unless the store already failed in this request.
    fn attempt<T>(&self, call: impl FnOnce(&dyn Kv) -> Result<T, KvError>) -> Option<T> {
        if self.failed.get() {
            return None;
        }
        call(self.kv).inspect_err(|_| self.failed.set(true)).ok()
    }

    /// The live entry of each hash, if there is one: one `get` per hash.
    pub fn lookup(&self, hashes: &[EntryHash]) -> Vec<Option<Entry>> {
        let slots = self.settings.max_entries;
        hashes
            .iter()
            .map(|hash| {
                self.attempt(|kv| kv.get(&slot_key(slot(hash, slots))))
                    .flatten()
                    .and_then(|value| decode_entry(&value, hash, self.model.dimensions, self.now))
            })
            .collect()
    }

    /// Writes new entries, one `set` each, replacing whatever held their slots.
    pub fn store(&self, entries: &[(EntryHash, &[f32], usize)]) {
        let slots = self.settings.max_entries;
        let expires_at = self.now.saturating_add(self.settings.ttl_seconds);
        let mut sweep = false;
        for (hash, vector, tokens) in entries {
            let slot = slot(hash, slots);
            let value = encode_entry(hash, expires_at, vector, *tokens);
            if self.attempt(|kv| kv.set(&slot_key(slot), &value)).is_none() {
                return;
            }
            sweep |= slot == 0;
        }
        if sweep {
            self.sweep();
        }
    }

    /// Deletes every key of the cache's namespace that the current layout does not own.
    fn sweep(&self) {
        let Some(keys) = self.attempt(|kv| kv.keys()) else {
            return;
        };
        for key in keys.iter().filter(|key| key.starts_with(NAMESPACE)) {
            if !is_owned_slot(key, self.settings.max_entries)
                && self.attempt(|kv| kv.delete(key)).is_none()
            {
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

        pub(crate) fn entry_count(&self) -> usize {
            self.map
                .borrow()
                .keys()
                .filter(|key| key.starts_with(NAMESPACE))
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
            ttl_seconds: 100,
            max_entries,
        }
    }

    pub(crate) fn model() -> Model {
        Model::new(ModelKind::Fp32, "sha256:test".into())
    }

    const NOW: u64 = 1_700_000_000;

    fn text_hash(text: &str) -> EntryHash {
        entry_hash("sha256:test", true, Input::Text(text))
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
        // sha256 of the definition's bytes: u64 LE length, digest, truncate, kind, text.
        let mut bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"m\x01\x00hi");
        let expected: EntryHash = Sha256::digest(&bytes).into();
        assert_eq!(base, expected);
    }

    #[test]
    fn slots_are_the_hash_modulo_the_bound() {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&1_000_003u64.to_le_bytes());
        assert_eq!(slot(&hash, 1000), 3);
        assert_eq!(slot_key(3), "emb:v2:3");
        assert!(is_owned_slot("emb:v2:0", 1) && is_owned_slot("emb:v2:19", 20));
        for foreign in [
            "emb:v2:20",
            "emb:v1:3",
            "emb:v2:03",
            "emb:v2:",
            "emb:v2:ring:3",
            "emb:v2:-1",
        ] {
            assert!(!is_owned_slot(foreign, 20), "{foreign}");
        }
    }

    #[test]
    fn the_value_is_hash_expiry_tokens_and_vector() {
        let hash = text_hash("x");
        let value = encode_entry(&hash, NOW + 5, &[1.0, -0.5], 7);
        assert_eq!(value.len(), 32 + 8 + 4 + 2 * 4);
        assert_eq!(value[..32], hash);
        assert_eq!(value[32..40], (NOW + 5).to_le_bytes());
        assert_eq!(value[40..44], 7u32.to_le_bytes());
        assert_eq!(value[44..48], 1.0f32.to_le_bytes());
        assert_eq!(value[48..], (-0.5f32).to_le_bytes());
        let entry = Some(Entry {
            vector: vec![1.0, -0.5],
            tokens: 7,
        });
        assert_eq!(decode_entry(&value, &hash, 2, NOW), entry);
        assert_eq!(decode_entry(&value, &hash, 2, NOW + 4), entry);
        assert_eq!(decode_entry(&value, &hash, 2, NOW + 5), None, "expired");
        assert_eq!(
            decode_entry(&value, &text_hash("y"), 2, NOW),
            None,
            "another input"
        );
        assert_eq!(decode_entry(&value, &hash, 3, NOW), None, "another width");
        assert_eq!(decode_entry(&value[..40], &hash, 2, NOW), None, "truncated");
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
        // Writing slot 0 would add the sweep's calls: this text's slot is another one.
        let cache = Cache::new(&kv, settings(1 << 40), &model, NOW).unwrap();
        assert_ne!(slot(&text_hash("miss"), 1 << 40), 0);
        assert_eq!(cache.lookup(&[text_hash("miss")]), vec![None]);
        store_texts(&cache, &["miss".to_owned()]);
        assert_eq!(kv.calls.get(), 2);
        assert!(cache.lookup(&[text_hash("miss")])[0].is_some());
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
    fn writing_slot_0_sweeps_keys_the_layout_does_not_own() {
        let (kv, model) = (FakeKv::default(), model());
        for key in ["emb:v1:0123", "emb:v1:ring:head", "emb:v2:99", "emb:v2:x"] {
            kv.set(key, b"old").unwrap();
        }
        kv.set("unrelated", b"not ours").unwrap();
        // With one slot every write is to slot 0.
        let cache = Cache::new(&kv, settings(1), &model, NOW).unwrap();
        store_texts(&cache, &["t".to_owned()]);
        assert_eq!(kv.key_listings.get(), 1);
        let keys: Vec<_> = kv.map.borrow().keys().cloned().collect();
        assert_eq!(keys, ["emb:v2:0", "unrelated"]);
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
        one.store(&[(one.hash(Input::Text("hi"), true), &vector[..], 3)]);
        assert!(one.lookup(&[one.hash(Input::Text("hi"), true)])[0].is_some());
        assert_eq!(
            other.lookup(&[other.hash(Input::Text("hi"), true)]),
            vec![None]
        );
    }
}
