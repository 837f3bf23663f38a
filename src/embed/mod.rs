//! Inputs → unit-length sentence embeddings: deduplicate, look up the cache, tokenize, run the
//! model once through [`Infer`] with every uncached input in request order, cache the new
//! vectors, and put the results back in input order.
//!
//! Batching is the host's job: the guest neither sorts nor chunks; the backend pads the one
//! batch only as far as its longest sequence.

mod ascii_wordpiece;
#[cfg(test)]
mod ascii_wordpiece_tests;
pub mod cache;
mod input;
pub mod model;
pub mod pooling;
pub mod tokenize;
mod vocab_trie;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use self::input::Input;

use self::cache::{Cache, Entry, EntryHash};
use self::model::{Model, MAX_TOKENS};
use self::tokenize::{TextTokenizer, TokenizeError, TooManyTokens, Truncation};
use crate::backend::{Infer, InferError, Sequence};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Input `index` is longer than the model takes and truncation was not allowed.
    #[error("input {index} has {tokens} tokens")]
    TooManyTokens { index: usize, tokens: usize },
    #[error("tokenizer: {0}")]
    Tokenize(#[from] TokenizeError),
    #[error("inference: {0}")]
    Infer(#[from] InferError),
    #[error("the backend returned {vectors} vectors of widths {widths:?} for {inputs} inputs (expected width {expected})")]
    OutputShape {
        inputs: usize,
        vectors: usize,
        widths: Vec<usize>,
        expected: usize,
    },
}

/// Where the time of one embedding call went, for the `Server-Timing` header.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub tokenize: Duration,
    pub cache: Duration,
    pub inference: Duration,
}

impl Timings {
    /// `tokenize;dur=0.412, cache;dur=0.031, inference;dur=9.870` (milliseconds).
    pub fn server_timing(&self) -> String {
        [
            ("tokenize", self.tokenize),
            ("cache", self.cache),
            ("inference", self.inference),
        ]
        .map(|(name, duration)| format!("{name};dur={:.3}", duration.as_secs_f64() * 1e3))
        .join(", ")
    }
}

/// How much of a request the cache answered, over its distinct inputs (`X-Cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Every input came from the cache.
    Hit,
    /// None did (or the cache is off, or failed).
    Miss,
    Partial,
}

impl CacheStatus {
    fn of(hits: usize, inputs: usize) -> Self {
        match hits {
            0 => Self::Miss,
            hits if hits == inputs => Self::Hit,
            _ => Self::Partial,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Partial => "PARTIAL",
        }
    }
}

/// The result of embedding a request's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One unit-length vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Per input: the tokens the model saw, `[CLS]` and `[SEP]` included, after truncation.
    pub token_counts: Vec<usize>,
    pub timings: Timings,
    pub cache: CacheStatus,
}

/// An input made ready for the model: its framed, fitted ids and the text they cover.
struct Prepared<'t> {
    ids: Vec<u32>,
    text: Option<&'t str>,
}

pub struct Embedder<'a> {
    tokenizer: &'a TextTokenizer,
    infer: &'a dyn Infer,
    model: &'a Model,
    cache: Option<&'a Cache<'a>>,
}

impl<'a> Embedder<'a> {
    pub fn new(tokenizer: &'a TextTokenizer, infer: &'a dyn Infer, model: &'a Model) -> Self {
        Self {
            tokenizer,
            infer,
            model,
            cache: None,
        }
    }

    /// Embeddings are looked up in, and new ones written to, `cache` (which must be `model`'s).
    pub fn with_cache(self, cache: Option<&'a Cache<'a>>) -> Self {
        Self { cache, ..self }
    }

    /// Embeds `inputs`; identical inputs are embedded once, cached ones not at all. With
    /// [`Truncation::Refuse`], an input over the model's token limit fails the whole call, naming
    /// the first such input (a cached entry for it exists only for inputs that fit).
    pub fn embed(
        &self,
        inputs: &[Input],
        truncation: Truncation,
    ) -> Result<Embeddings, EmbedError> {
        let distinct = Distinct::of(inputs);
        let mut timings = Timings::default();

        let started = Instant::now();
        let hashes: Vec<EntryHash> = match self.cache {
            Some(cache) => distinct
                .inputs
                .iter()
                .map(|&input| cache.hash(input, truncation))
                .collect(),
            None => Vec::new(),
        };
        let mut found = match self.cache {
            Some(cache) => cache.lookup(&hashes),
            None => vec![None; distinct.inputs.len()],
        };
        timings.cache = started.elapsed();
        let missing: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();

        let started = Instant::now();
        let prepared = missing
            .iter()
            .map(|&i| self.prepare(distinct.inputs[i], truncation, distinct.first_index[i]))
            .collect::<Result<Vec<_>, _>>()?;
        timings.tokenize = started.elapsed();

        let started = Instant::now();
        let vectors = self.run_model(&prepared)?;
        timings.inference = started.elapsed();

        let started = Instant::now();
        if let Some(cache) = self.cache {
            let new: Vec<_> = missing
                .iter()
                .zip(&vectors)
                .zip(&prepared)
                .map(|((&i, vector), input)| (hashes[i], vector.as_slice(), input.ids.len()))
                .collect();
            cache.store(&new);
        }
        timings.cache += started.elapsed();

        let status = CacheStatus::of(found.len() - missing.len(), found.len());
        for ((i, vector), input) in missing.into_iter().zip(vectors).zip(&prepared) {
            found[i] = Some(Entry {
                vector,
                tokens: input.ids.len(),
            });
        }
        // Every distinct input is now either found or embedded: nothing is dropped here.
        let embedded: Vec<Entry> = found.into_iter().flatten().collect();
        let (vectors, token_counts) = distinct
            .scatter(&embedded)
            .into_iter()
            .map(|entry| (entry.vector, entry.tokens))
            .unzip();
        Ok(Embeddings {
            vectors,
            token_counts,
            timings,
            cache: status,
        })
    }

    /// The framed token sequence of `input` as the model will see it, and the text it covers.
    fn prepare<'t>(
        &self,
        input: Input<'t>,
        truncation: Truncation,
        index: usize,
    ) -> Result<Prepared<'t>, EmbedError> {
        let (ids, text) =
            model_sequence(self.tokenizer, input, truncation).map_err(|error| match error {
                SequenceError::TooManyTokens(TooManyTokens(tokens)) => {
                    EmbedError::TooManyTokens { index, tokens }
                }
                SequenceError::Tokenize(error) => EmbedError::Tokenize(error),
            })?;
        Ok(Prepared { ids, text })
    }

    /// One vector per input, in order, from one backend call; checks the backend's answer.
    fn run_model(&self, prepared: &[Prepared]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let sequences: Vec<Sequence> = prepared
            .iter()
            .map(|input| Sequence {
                ids: &input.ids,
                text: input.text,
            })
            .collect();
        let vectors = self.infer.embed(self.model, &sequences)?;
        let expected = self.model.dimensions;
        if vectors.len() != sequences.len() || vectors.iter().any(|v| v.len() != expected) {
            return Err(EmbedError::OutputShape {
                inputs: sequences.len(),
                vectors: vectors.len(),
                widths: vectors.iter().map(Vec::len).collect(),
                expected,
            });
        }
        Ok(vectors)
    }
}

/// Why an input has no sequence for the model.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    #[error("{} tokens", .0.0)]
    TooManyTokens(TooManyTokens),
    #[error("tokenizer: {0}")]
    Tokenize(#[from] TokenizeError),
}

/// The framed ids the model sees for `input` (truncated as `truncation` says), and for a text
/// the part of it those ids cover: what the embedding routes embed and the tokenize routes count.
pub fn model_sequence<'t>(
    tokenizer: &TextTokenizer,
    input: Input<'t>,
    truncation: Truncation,
) -> Result<(Vec<u32>, Option<&'t str>), SequenceError> {
    let (whole, text) = match input {
        Input::Text(text) => (tokenizer.encode(text)?, Some(text)),
        Input::Tokens(ids) => (tokenize::framed(ids), None),
    };
    let whole_length = whole.len();
    if let (Truncation::Left, Some(text), true) = (truncation, text, whole_length > MAX_TOKENS) {
        let (ids, suffix) = tokenizer.keep_end(text)?;
        return Ok((ids, Some(suffix)));
    }
    let ids = match truncation {
        Truncation::Left => tokenize::keep_last(whole),
        truncation => tokenize::fit(whole, truncation == Truncation::Right)
            .map_err(SequenceError::TooManyTokens)?,
    };
    let text = match text {
        Some(text) if ids.len() < whole_length => Some(tokenizer.covered_prefix(text, ids.len())?),
        text => text,
    };
    Ok((ids, text))
}

/// A request's distinct inputs, and for every input which distinct one it is.
struct Distinct<'i> {
    inputs: Vec<Input<'i>>,
    /// Per distinct input: the position of its first occurrence in the request.
    first_index: Vec<usize>,
    /// Per request input: its distinct input.
    slot: Vec<usize>,
}

impl<'i> Distinct<'i> {
    fn of(inputs: &[Input<'i>]) -> Self {
        let mut slots = HashMap::new();
        let mut distinct = Self {
            inputs: Vec::new(),
            first_index: Vec::new(),
            slot: Vec::with_capacity(inputs.len()),
        };
        for (index, &input) in inputs.iter().enumerate() {
            let slot = *slots.entry(input).or_insert_with(|| {
                distinct.inputs.push(input);
                distinct.first_index.push(index);
                distinct.inputs.len() - 1
            });
            distinct.slot.push(slot);
        }
        distinct
    }

    /// Per-distinct values → per-input values, in request order.
    fn scatter<T: Clone>(&self, values: &[T]) -> Vec<T> {
        self.slot.iter().map(|&slot| values[slot].clone()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::embed::cache::tests::{settings, FakeKv};
    use crate::embed::model::{ModelKind, DIMENSIONS};
    use crate::embed::pooling::l2_normalize;

    /// One recorded backend call: the graph and, per row, the ids and the text.
    pub(crate) type Call = (String, Vec<(Vec<u32>, Option<String>)>);

    /// A stand-in backend whose vector for ids `[a, b, …]` is the unit vector along
    /// `[Σ ids mod 97, len, 1, 0, …]`, so distinct sequences get distinct vectors. It records
    /// every call.
    #[derive(Default)]
    pub(crate) struct FakeModel {
        pub recorded: RefCell<Vec<Call>>,
    }

    impl FakeModel {
        pub(crate) fn calls(&self) -> usize {
            self.recorded.borrow().len()
        }

        pub(crate) fn vector(ids: &[u32]) -> Vec<f32> {
            let mut vector = vec![0.0; DIMENSIONS];
            let sum: u64 = ids.iter().map(|&id| u64::from(id)).sum();
            vector[..3].copy_from_slice(&[(sum % 97) as f32, ids.len() as f32, 1.0]);
            l2_normalize(&mut vector);
            vector
        }
    }

    impl Infer for FakeModel {
        fn embed(
            &self,
            model: &Model,
            sequences: &[Sequence<'_>],
        ) -> Result<Vec<Vec<f32>>, InferError> {
            let rows = sequences
                .iter()
                .map(|s| (s.ids.to_vec(), s.text.map(str::to_owned)))
                .collect();
            self.recorded
                .borrow_mut()
                .push((model.graph.to_owned(), rows));
            Ok(sequences.iter().map(|s| Self::vector(s.ids)).collect())
        }
    }

    struct WrongWidth;

    impl Infer for WrongWidth {
        fn embed(
            &self,
            _: &Model,
            sequences: &[Sequence<'_>],
        ) -> Result<Vec<Vec<f32>>, InferError> {
            Ok(vec![vec![0.0; 5]; sequences.len()])
        }
    }

    fn fp32() -> Model {
        Model::new(ModelKind::Fp32, String::new())
    }

    fn embed(
        infer: &dyn Infer,
        inputs: &[Input],
        truncate: bool,
    ) -> Result<Embeddings, EmbedError> {
        let model = fp32();
        Embedder::new(tokenize::shared().unwrap(), infer, &model)
            .embed(inputs, Truncation::from_flag(truncate))
    }

    fn texts(texts: &[&'static str]) -> Vec<Input<'static>> {
        texts.iter().map(|&text| Input::Text(text)).collect()
    }

    #[test]
    fn one_backend_call_with_every_new_input_in_request_order() {
        let model = FakeModel::default();
        let sentences = texts(&[
            "a much longer sentence with many words",
            "hi",
            "",
            "hello world",
        ]);
        let embedded = embed(&model, &sentences, true).unwrap();
        let recorded = model.recorded.borrow();
        assert_eq!(recorded.len(), 1);
        let (graph, rows) = &recorded[0];
        assert_eq!(graph, "all-minilm-l6-v2");
        let texts: Vec<_> = rows
            .iter()
            .map(|(_, text)| text.as_deref().unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "a much longer sentence with many words",
                "hi",
                "",
                "hello world"
            ]
        );
        assert_eq!(rows[1].0, vec![101, 7632, 102]);
        for (vector, (ids, _)) in embedded.vectors.iter().zip(rows) {
            assert_eq!(vector, &FakeModel::vector(ids));
        }
        assert_eq!(embedded.token_counts, vec![9, 3, 2, 4]);
    }

    #[test]
    fn identical_inputs_are_embedded_once_and_repeated_in_place() {
        let model = FakeModel::default();
        let embedded = embed(
            &model,
            &texts(&["hello world", "hi", "hello world", "hello world"]),
            true,
        )
        .unwrap();
        assert_eq!(model.recorded.borrow()[0].1.len(), 2);
        let v = &embedded.vectors;
        assert!(v[0] == v[2] && v[2] == v[3] && v[0] != v[1]);
        assert_eq!(embedded.token_counts, vec![4, 3, 4, 4]);
    }

    #[test]
    fn token_ids_embed_like_their_text_without_a_text() {
        let model = FakeModel::default();
        let by_ids = embed(&model, &[Input::Tokens(&[7592, 2088])], true).unwrap();
        let by_text = embed(&model, &texts(&["hello world"]), true).unwrap();
        assert_eq!(by_ids.vectors, by_text.vectors);
        assert_eq!(by_ids.token_counts, vec![4]);
        assert_eq!(model.recorded.borrow()[0].1[0].1, None);
    }

    #[test]
    fn a_truncated_text_is_sent_with_the_prefix_its_ids_cover() {
        let model = FakeModel::default();
        let long = "word ".repeat(300);
        embed(&model, &[Input::Text(&long)], true).unwrap();
        let (ids, text) = &model.recorded.borrow()[0].1[0];
        assert_eq!(ids.len(), 256);
        assert_eq!(text.as_deref(), Some("word ".repeat(254).trim_end()));
    }

    #[test]
    fn without_truncate_the_first_over_long_input_is_named() {
        let model = FakeModel::default();
        let long = "word ".repeat(300);
        let inputs = [Input::Text("short"), Input::Text(&long), Input::Text(&long)];
        let error = embed(&model, &inputs, false).unwrap_err();
        assert!(
            matches!(
                error,
                EmbedError::TooManyTokens {
                    index: 1,
                    tokens: 302
                }
            ),
            "{error}"
        );
        assert_eq!(model.calls(), 0, "refused before any model work");
        let ids = vec![7592; 255];
        let error = embed(&model, &[Input::Tokens(&ids)], false).unwrap_err();
        assert!(matches!(
            error,
            EmbedError::TooManyTokens {
                index: 0,
                tokens: 257
            }
        ));
        let truncated = embed(&model, &inputs, true).unwrap();
        assert_eq!(truncated.token_counts, vec![3, 256, 256]);
    }

    #[test]
    fn no_inputs_means_no_model_call() {
        let model = FakeModel::default();
        assert!(embed(&model, &[], true).unwrap().vectors.is_empty());
        assert_eq!(model.calls(), 0);
    }

    #[test]
    fn a_wrongly_shaped_answer_is_an_error() {
        assert!(matches!(
            embed(&WrongWidth, &texts(&["hi"]), true),
            Err(EmbedError::OutputShape {
                vectors: 1,
                expected: 384,
                ..
            })
        ));
    }

    mod cached {
        use super::*;

        const NOW: u64 = 1_700_000_000;

        fn embed_cached(
            model: &FakeModel,
            kv: &FakeKv,
            inputs: &[Input],
            truncate: bool,
        ) -> Embeddings {
            let served = crate::embed::cache::tests::model();
            let cache = Cache::new(kv, settings(100), &served, NOW);
            Embedder::new(tokenize::shared().unwrap(), model, &served)
                .with_cache(cache.as_ref())
                .embed(inputs, Truncation::from_flag(truncate))
                .unwrap()
        }

        #[test]
        fn a_second_request_is_a_hit_without_model_work() {
            let (model, kv) = (FakeModel::default(), FakeKv::default());
            let first = embed_cached(&model, &kv, &texts(&["hello world", "hi"]), true);
            assert_eq!(first.cache, CacheStatus::Miss);
            assert_eq!(model.calls(), 1);
            let second = embed_cached(&model, &kv, &texts(&["hi", "hello world", "hi"]), true);
            assert_eq!(second.cache, CacheStatus::Hit);
            assert_eq!(model.calls(), 1, "no inference for a hit");
            let v = &first.vectors;
            assert_eq!(
                second.vectors,
                vec![v[1].clone(), v[0].clone(), v[1].clone()]
            );
            assert_eq!(second.token_counts, vec![3, 4, 3]);
        }

        #[test]
        fn a_mix_is_partial_and_only_new_inputs_reach_the_model() {
            let (model, kv) = (FakeModel::default(), FakeKv::default());
            embed_cached(&model, &kv, &texts(&["hi"]), true);
            let mixed = embed_cached(&model, &kv, &texts(&["hi", "hello world"]), true);
            assert_eq!(mixed.cache, CacheStatus::Partial);
            assert_eq!(model.recorded.borrow()[1].1.len(), 1);
            let alone = embed(&model, &texts(&["hi", "hello world"]), true).unwrap();
            assert_eq!(mixed.vectors, alone.vectors);
        }

        #[test]
        fn truncate_is_part_of_the_key() {
            let (model, kv) = (FakeModel::default(), FakeKv::default());
            embed_cached(&model, &kv, &texts(&["hi"]), true);
            assert_eq!(
                embed_cached(&model, &kv, &texts(&["hi"]), false).cache,
                CacheStatus::Miss
            );
            let long = "word ".repeat(300);
            embed_cached(&model, &kv, &[Input::Text(&long)], true);
            let served = crate::embed::cache::tests::model();
            let strict = Cache::new(&kv, settings(100), &served, NOW);
            let refused = Embedder::new(tokenize::shared().unwrap(), &model, &served)
                .with_cache(strict.as_ref())
                .embed(&[Input::Text(&long)], Truncation::Refuse);
            assert!(matches!(
                refused,
                Err(EmbedError::TooManyTokens { tokens: 302, .. })
            ));
        }

        #[test]
        fn a_broken_store_serves_uncached() {
            let (model, kv) = (FakeModel::default(), FakeKv::default());
            kv.broken.set(true);
            let embedded = embed_cached(&model, &kv, &texts(&["hi", "x"]), true);
            assert_eq!(embedded.cache, CacheStatus::Miss);
            assert_eq!(embedded.vectors.len(), 2);
        }

        #[test]
        fn no_cache_is_always_a_miss_with_timings() {
            let model = FakeModel::default();
            let embedded = embed(&model, &texts(&["hi"]), true).unwrap();
            assert_eq!(embedded.cache, CacheStatus::Miss);
            let header = embedded.timings.server_timing();
            let names: Vec<_> = header
                .split(", ")
                .map(|entry| entry.split(';').next().unwrap())
                .collect();
            assert_eq!(names, ["tokenize", "cache", "inference"]);
            assert!(
                header
                    .split(", ")
                    .all(|e| e.split_once(";dur=").unwrap().1.parse::<f64>().is_ok()),
                "{header}"
            );
        }
    }
}
