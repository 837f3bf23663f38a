//! Inputs → normalized sentence embeddings: deduplicate, look up the cache, tokenize, batch, run
//! the model through [`Infer`], pool, cache, and put the results back in input order.
//!
//! Batching follows what makes a CPU model fast: inputs are sorted by token length and cut into
//! chunks of at most [`BATCH_ROWS`], each padded only to its own longest member, so short
//! texts never pay for a long one's padding. The model is behind a trait so this path runs in
//! native unit tests with a fake; in the component it is `wasm::nn`, the wasi:nn adapter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cache::{Cache, Entry, EntryHash};
use crate::inputs::Input;
use crate::pooling::{l2_normalize, mean_pool};
use crate::tokenize::{self, TextTokenizer, TokenBatch, TokenizeError, TooManyTokens};

/// Rows per model run.
pub const BATCH_ROWS: usize = 32;
/// The width of all-MiniLM-L6-v2's hidden state, and so of every embedding.
pub const DIMENSIONS: usize = 384;

/// The model's last hidden state for a batch: row-major `[batch, seq, hidden]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenStates {
    pub values: Vec<f32>,
    pub hidden: usize,
}

/// Runs the sentence-transformer on a tokenized batch.
pub trait Infer {
    fn infer(&self, batch: &TokenBatch) -> Result<HiddenStates, InferError>;
}

/// A failure of the model backend, described for the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InferError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Input `index` is longer than the model takes and truncation was not allowed.
    #[error("input {index} has {tokens} tokens")]
    TooManyTokens { index: usize, tokens: usize },
    #[error("tokenizer: {0}")]
    Tokenize(#[from] TokenizeError),
    #[error("inference: {0}")]
    Infer(#[from] InferError),
    #[error("the model returned {values} values of width {hidden} for a [{batch}, {seq}] batch (expected width {DIMENSIONS})")]
    OutputShape {
        values: usize,
        hidden: usize,
        batch: usize,
        seq: usize,
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

pub struct Embedder<'a> {
    tokenizer: &'a TextTokenizer,
    infer: &'a dyn Infer,
    cache: Option<&'a Cache<'a>>,
}

impl<'a> Embedder<'a> {
    pub fn new(tokenizer: &'a TextTokenizer, infer: &'a dyn Infer) -> Self {
        Self {
            tokenizer,
            infer,
            cache: None,
        }
    }

    /// Embeddings are looked up in, and new ones written to, `cache`.
    pub fn with_cache(self, cache: Option<&'a Cache<'a>>) -> Self {
        Self { cache, ..self }
    }

    /// One unit-length embedding per text, in input order, truncating like sentence-transformers.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inputs: Vec<_> = texts.iter().map(|&text| Input::Text(text)).collect();
        Ok(self.embed_inputs(&inputs, true)?.vectors)
    }

    /// Embeds `inputs`; identical inputs are embedded once, cached ones not at all. Without
    /// `truncate`, an input over the model's token limit fails the whole call, naming the first
    /// such input (a cached entry for `truncate: false` exists only for inputs that fit).
    pub fn embed_inputs(&self, inputs: &[Input], truncate: bool) -> Result<Embeddings, EmbedError> {
        let distinct = Distinct::of(inputs);
        let mut timings = Timings::default();

        let started = Instant::now();
        let hashes: Vec<EntryHash> = match self.cache {
            Some(cache) => distinct
                .inputs
                .iter()
                .map(|&input| cache.hash(input, truncate))
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
        let sequences = missing
            .iter()
            .map(|&i| self.sequence(distinct.inputs[i], truncate, distinct.first_index[i]))
            .collect::<Result<Vec<_>, _>>()?;
        timings.tokenize = started.elapsed();

        let started = Instant::now();
        let vectors = self.run_model(&sequences)?;
        timings.inference = started.elapsed();

        let started = Instant::now();
        if let Some(cache) = self.cache {
            let new: Vec<_> = missing
                .iter()
                .zip(&vectors)
                .zip(&sequences)
                .map(|((&i, vector), sequence)| (hashes[i], vector.as_slice(), sequence.len()))
                .collect();
            cache.store(&new);
        }
        timings.cache += started.elapsed();

        let status = CacheStatus::of(found.len() - missing.len(), found.len());
        for ((i, vector), sequence) in missing.into_iter().zip(vectors).zip(&sequences) {
            found[i] = Some(Entry {
                vector,
                tokens: sequence.len(),
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

    /// The framed token sequence of `input` as the model will see it.
    fn sequence(&self, input: Input, truncate: bool, index: usize) -> Result<Vec<u32>, EmbedError> {
        let sequence = match input {
            Input::Text(text) => self.tokenizer.encode(text)?,
            Input::Tokens(ids) => tokenize::framed(ids),
        };
        tokenize::fit(sequence, truncate)
            .map_err(|TooManyTokens(tokens)| EmbedError::TooManyTokens { index, tokens })
    }

    /// One vector per sequence, in order: length-sorted chunks of at most [`BATCH_ROWS`].
    fn run_model(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut by_length: Vec<usize> = (0..sequences.len()).collect();
        by_length.sort_by_key(|&i| sequences[i].len());
        let mut vectors = vec![Vec::new(); sequences.len()];
        for chunk in by_length.chunks(BATCH_ROWS) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| sequences[i].as_slice()).collect();
            for (&i, vector) in chunk.iter().zip(self.run_batch(&rows)?) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    fn run_batch(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = TokenBatch::from_sequences(rows);
        let states = self.infer.infer(&batch)?;
        if states.hidden != DIMENSIONS
            || states.values.len() != batch.batch * batch.seq * DIMENSIONS
        {
            return Err(EmbedError::OutputShape {
                values: states.values.len(),
                hidden: states.hidden,
                batch: batch.batch,
                seq: batch.seq,
            });
        }
        let mut embeddings = mean_pool(
            &states.values,
            &batch.attention_mask,
            batch.seq,
            states.hidden,
        );
        embeddings
            .iter_mut()
            .for_each(|embedding| l2_normalize(embedding));
        Ok(embeddings)
    }
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

    /// A stand-in model whose token vector is `[id % 10, position + 1, 1, 0, …]`, so pooled
    /// results are predictable and padding that leaked into the mean would show. It records every
    /// batch.
    #[derive(Default)]
    pub(crate) struct FakeModel {
        pub batches: RefCell<Vec<TokenBatch>>,
    }

    impl FakeModel {
        pub(crate) fn calls(&self) -> usize {
            self.batches.borrow().len()
        }
    }

    impl Infer for FakeModel {
        fn infer(&self, batch: &TokenBatch) -> Result<HiddenStates, InferError> {
            self.batches.borrow_mut().push(batch.clone());
            let mut values = vec![0.0; batch.input_ids.len() * DIMENSIONS];
            for (i, (&id, token)) in batch
                .input_ids
                .iter()
                .zip(values.chunks_exact_mut(DIMENSIONS))
                .enumerate()
            {
                token[..3].copy_from_slice(&[(id % 10) as f32, (i % batch.seq + 1) as f32, 1.0]);
            }
            Ok(HiddenStates {
                values,
                hidden: DIMENSIONS,
            })
        }
    }

    struct BrokenModel(HiddenStates);

    impl Infer for BrokenModel {
        fn infer(&self, _: &TokenBatch) -> Result<HiddenStates, InferError> {
            Ok(self.0.clone())
        }
    }

    fn embedder(model: &dyn Infer) -> Embedder<'_> {
        Embedder::new(tokenize::shared().unwrap(), model)
    }

    fn texts(texts: &[&'static str]) -> Vec<Input<'static>> {
        texts.iter().map(|&text| Input::Text(text)).collect()
    }

    #[test]
    fn pools_over_real_tokens_and_normalizes() {
        // "hi" → [CLS]=101, "hi"=7632, [SEP]=102 at positions 1..=3.
        let embedding = &embedder(&FakeModel::default()).embed(&["hi"]).unwrap()[0];
        let mean = [(1.0 + 2.0 + 2.0) / 3.0, 2.0, 1.0];
        let norm = mean.iter().map(|v: &f32| v * v).sum::<f32>().sqrt();
        for (got, want) in embedding.iter().zip(mean.map(|v| v / norm)) {
            assert!((got - want).abs() < 1e-6, "{embedding:?}");
        }
        assert_eq!(embedding.len(), DIMENSIONS);
    }

    #[test]
    fn batching_restores_input_order_and_equals_one_at_a_time() {
        let model = FakeModel::default();
        let sentences = [
            "a much longer sentence with many more words in it",
            "hi",
            "hello world",
            "",
            "medium length text",
        ];
        let together = embedder(&model).embed(&sentences).unwrap();
        let alone: Vec<_> = sentences
            .iter()
            .map(|&text| embedder(&model).embed(&[text]).unwrap().remove(0))
            .collect();
        assert_eq!(together, alone);
    }

    #[test]
    fn chunks_are_length_sorted_at_most_32_rows_and_padded_to_their_own_longest() {
        let model = FakeModel::default();
        let words: Vec<String> = (1..=70).rev().map(|n| "word ".repeat(n % 35 + 1)).collect();
        let inputs: Vec<_> = words.iter().map(|w| Input::Text(w)).collect();
        let embedded = embedder(&model).embed_inputs(&inputs, true).unwrap();
        let batches = model.batches.borrow();
        assert_eq!(
            batches.iter().map(|b| b.batch).collect::<Vec<_>>(),
            vec![32, 3],
            "70 inputs, 35 distinct"
        );
        assert_eq!(batches[0].seq, 34, "the first chunk holds the 32 shortest");
        assert_eq!(batches[1].seq, 37);
        for (word, count) in words.iter().zip(&embedded.token_counts) {
            assert_eq!(*count, word.split_whitespace().count() + 2);
        }
    }

    #[test]
    fn identical_inputs_are_embedded_once_and_repeated_in_place() {
        let model = FakeModel::default();
        let embedded = embedder(&model)
            .embed_inputs(
                &texts(&["hello world", "hi", "hello world", "hello world"]),
                true,
            )
            .unwrap();
        assert_eq!(model.batches.borrow()[0].batch, 2);
        let v = &embedded.vectors;
        assert!(v[0] == v[2] && v[2] == v[3] && v[0] != v[1]);
        assert_eq!(embedded.token_counts, vec![4, 3, 4, 4]);
    }

    #[test]
    fn token_ids_embed_like_their_text() {
        let model = FakeModel::default();
        let ids = [7592, 2088];
        let by_ids = embedder(&model)
            .embed_inputs(&[Input::Tokens(&ids)], true)
            .unwrap();
        let by_text = embedder(&model)
            .embed_inputs(&texts(&["hello world"]), true)
            .unwrap();
        assert_eq!(by_ids.vectors, by_text.vectors);
        assert_eq!(by_ids.token_counts, vec![4]);
    }

    #[test]
    fn without_truncate_the_first_over_long_input_is_named() {
        let model = FakeModel::default();
        let long = "word ".repeat(300);
        let inputs = [Input::Text("short"), Input::Text(&long), Input::Text(&long)];
        let error = embedder(&model).embed_inputs(&inputs, false).unwrap_err();
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
        let error = embedder(&model)
            .embed_inputs(&[Input::Tokens(&ids)], false)
            .unwrap_err();
        assert!(matches!(
            error,
            EmbedError::TooManyTokens {
                index: 0,
                tokens: 257
            }
        ));
        let truncated = embedder(&model).embed_inputs(&inputs, true).unwrap();
        assert_eq!(truncated.token_counts, vec![3, 256, 256]);
    }

    #[test]
    fn no_inputs_means_no_model_call() {
        let model = FakeModel::default();
        let embedded = embedder(&model).embed_inputs(&[], true).unwrap();
        assert!(embedded.vectors.is_empty());
        assert_eq!(model.calls(), 0);
    }

    #[test]
    fn a_wrongly_shaped_output_is_an_error() {
        let model = BrokenModel(HiddenStates {
            values: vec![0.0; 5],
            hidden: 384,
        });
        assert!(matches!(
            embedder(&model).embed(&["hi"]),
            Err(EmbedError::OutputShape { values: 5, .. })
        ));
        let model = BrokenModel(HiddenStates {
            values: Vec::new(),
            hidden: 0,
        });
        assert!(matches!(
            embedder(&model).embed(&["hi"]),
            Err(EmbedError::OutputShape { .. })
        ));
    }

    mod cached {
        use super::*;
        use crate::cache::tests::{settings, FakeKv};
        use crate::cache::CacheSettings;

        const NOW: u64 = 1_700_000_000;

        fn embed_cached(
            model: &FakeModel,
            kv: &FakeKv,
            settings: &CacheSettings,
            inputs: &[Input],
            truncate: bool,
        ) -> Embeddings {
            let cache = Cache::new(kv, settings, NOW, DIMENSIONS);
            embedder(model)
                .with_cache(cache.as_ref())
                .embed_inputs(inputs, truncate)
                .unwrap()
        }

        #[test]
        fn a_second_request_is_a_hit_without_model_work() {
            let (model, kv, settings) = (FakeModel::default(), FakeKv::default(), settings(100));
            let first = embed_cached(&model, &kv, &settings, &texts(&["hello world", "hi"]), true);
            assert_eq!(first.cache, CacheStatus::Miss);
            assert_eq!(model.calls(), 1);
            let second = embed_cached(
                &model,
                &kv,
                &settings,
                &texts(&["hi", "hello world", "hi"]),
                true,
            );
            assert_eq!(second.cache, CacheStatus::Hit);
            assert_eq!(model.calls(), 1, "no inference for a hit");
            assert_eq!(
                second.vectors,
                vec![
                    first.vectors[1].clone(),
                    first.vectors[0].clone(),
                    first.vectors[1].clone()
                ]
            );
            assert_eq!(second.token_counts, vec![3, 4, 3]);
        }

        #[test]
        fn a_mix_is_partial_and_only_new_inputs_reach_the_model() {
            let (model, kv, settings) = (FakeModel::default(), FakeKv::default(), settings(100));
            embed_cached(&model, &kv, &settings, &texts(&["hi"]), true);
            let mixed = embed_cached(&model, &kv, &settings, &texts(&["hi", "hello world"]), true);
            assert_eq!(mixed.cache, CacheStatus::Partial);
            assert_eq!(model.batches.borrow()[1].batch, 1);
            let alone = embedder(&model)
                .embed_inputs(&texts(&["hi", "hello world"]), true)
                .unwrap();
            assert_eq!(mixed.vectors, alone.vectors);
        }

        #[test]
        fn truncate_is_part_of_the_key() {
            let (model, kv, settings) = (FakeModel::default(), FakeKv::default(), settings(100));
            embed_cached(&model, &kv, &settings, &texts(&["hi"]), true);
            assert_eq!(
                embed_cached(&model, &kv, &settings, &texts(&["hi"]), false).cache,
                CacheStatus::Miss
            );
            let long = "word ".repeat(300);
            embed_cached(&model, &kv, &settings, &[Input::Text(&long)], true);
            let strict = Cache::new(&kv, &settings, NOW, DIMENSIONS);
            let refused = embedder(&model)
                .with_cache(strict.as_ref())
                .embed_inputs(&[Input::Text(&long)], false);
            assert!(matches!(
                refused,
                Err(EmbedError::TooManyTokens { tokens: 302, .. })
            ));
        }

        #[test]
        fn a_broken_store_serves_uncached() {
            let (model, kv, settings) = (FakeModel::default(), FakeKv::default(), settings(100));
            kv.broken.set(true);
            let embedded = embed_cached(&model, &kv, &settings, &texts(&["hi", "x"]), true);
            assert_eq!(embedded.cache, CacheStatus::Miss);
            assert_eq!(embedded.vectors.len(), 2);
        }

        #[test]
        fn no_cache_is_always_a_miss_with_timings() {
            let model = FakeModel::default();
            let embedded = embedder(&model)
                .embed_inputs(&texts(&["hi"]), true)
                .unwrap();
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
