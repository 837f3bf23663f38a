//! The batcher with the real model and the real ONNX Runtime, checked against sentence-transformers' own
//! embeddings in `../shared/reference`. These tests need `make models`, and fail saying so without it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::session::Session;
use serde::Deserialize;
use wasmtime_wasi_nn::backend::NamedTensor;

use super::batch::Batching;
use super::initializers::SharedInitializers;
use super::metrics::NnMetrics;
use super::onnx::tests::{i64_tensor, output, runtime};
use super::onnx::{new_session, run, run_rows, OnnxModel, SessionOptions};
use super::queue::{JobQueue, Role, Task};

/// The graph's output: one unit-length 384-float vector per input row.
const SENTENCE_EMBEDDING: &str = "sentence_embedding";
const DIMENSIONS: usize = 384;
/// The model's sequence limit, `[CLS]` and `[SEP]` included (the reference's `max_seq_length`).
const MAX_SEQ: usize = 256;
/// The reference's bar: every embedding within this cosine of sentence-transformers' own.
const MIN_COSINE: f32 = 0.9999;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fp32 model's bytes; fails, naming the fix, when `make models` has not run.
fn model() -> Vec<u8> {
    let path = repository().join("models/all-minilm-l6-v2/model.onnx");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|error| panic!("{}: {error} (run `make models`)", path.display()));
    runtime();
    bytes
}

#[derive(Deserialize)]
struct ReferenceFile {
    max_seq_length: usize,
    items: Vec<ReferenceItem>,
}

#[derive(Deserialize)]
struct ReferenceItem {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct TokenizerFile {
    model: WordPieceVocab,
}

#[derive(Deserialize)]
struct WordPieceVocab {
    vocab: std::collections::HashMap<String, i64>,
}

/// One reference text as token ids, with sentence-transformers' embedding of it.
struct Reference {
    ids: Vec<i64>,
    embedding: Vec<f32>,
}

/// The reference items whose text is ASCII made of whole words of the model's vocabulary, tokenized by
/// BERT's definition for such text: lower-case, split at white space and punctuation, one id per word,
/// `[CLS] … [SEP]`, truncated to the model's limit. (Other texts need WordPiece splitting or Unicode rules,
/// which are the component's business, not the batcher's.) Each one's id count matches the reference's.
fn references() -> Vec<Reference> {
    let read = |path: PathBuf| {
        std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    };
    let reference: ReferenceFile = serde_json::from_slice(&read(
        repository().join("../shared/reference/all-minilm-l6-v2.embeddings.json"),
    ))
    .unwrap();
    assert_eq!(reference.max_seq_length, MAX_SEQ);
    let tokenizer: TokenizerFile = serde_json::from_slice(&read(
        repository().join("models/all-minilm-l6-v2/tokenizer.json"),
    ))
    .unwrap();
    let vocab = tokenizer.model.vocab;
    let found: Vec<Reference> = reference
        .items
        .into_iter()
        .filter_map(|item| {
            if !item.text.is_ascii() {
                return None;
            }
            let lower = item.text.to_ascii_lowercase();
            let mut words = Vec::new();
            for word in lower.split_ascii_whitespace() {
                let mut start = 0;
                for (at, c) in word.char_indices() {
                    if c.is_ascii_punctuation() {
                        words.extend([&word[start..at], &word[at..at + 1]]);
                        start = at + 1;
                    }
                }
                words.push(&word[start..]);
            }
            let mut ids = vec![vocab["[CLS]"]];
            for word in words.into_iter().filter(|w| !w.is_empty()) {
                ids.push(*vocab.get(word)?);
            }
            ids.truncate(MAX_SEQ - 1);
            ids.push(vocab["[SEP]"]);
            assert_eq!(ids.len(), item.tokens, "{:?}", item.text);
            Some(Reference {
                ids,
                embedding: item.embedding,
            })
        })
        .collect();
    assert!(
        found.len() >= 15,
        "only {} reference texts are whole words",
        found.len()
    );
    assert!(
        found.iter().any(|r| r.ids.len() == MAX_SEQ),
        "a truncated text"
    );
    found
}

/// The three BERT inputs of one job, as a guest sends them: its rows in their own order, padded with zeros
/// to the longest.
fn job(rows: &[&[i64]]) -> Vec<NamedTensor> {
    let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let dimensions = vec![rows.len() as u32, seq as u32];
    let padded = |value: fn(i64) -> i64| -> Vec<i64> {
        rows.iter()
            .flat_map(|row| (0..seq).map(|i| row.get(i).map_or(0, |&id| value(id))))
            .collect()
    };
    let tensor = |name: &str, values: Vec<i64>| NamedTensor {
        name: name.into(),
        tensor: i64_tensor(dimensions.clone(), &values),
    };
    vec![
        tensor("input_ids", padded(|id| id)),
        tensor("attention_mask", padded(|_| 1)),
        tensor("token_type_ids", padded(|_| 0)),
    ]
}

/// The job's `sentence_embedding`, one vector per row.
fn embeddings(outputs: &[NamedTensor]) -> Vec<Vec<f32>> {
    let embedding = output(outputs, SENTENCE_EMBEDDING);
    assert_eq!(
        outputs.len(),
        1,
        "the graph's only output is {SENTENCE_EMBEDDING}"
    );
    let values: Vec<f32> = bytemuck::pod_collect_to_vec(&embedding.data);
    assert_eq!(embedding.dimensions[1] as usize, DIMENSIONS);
    values
        .chunks_exact(DIMENSIONS)
        .map(<[f32]>::to_vec)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn assert_matches(got: &[Vec<f32>], expected: &[&Reference]) {
    assert_eq!(got.len(), expected.len());
    for (row, (got, expected)) in got.iter().zip(expected).enumerate() {
        let similarity = cosine(got, &expected.embedding);
        assert!(
            similarity >= MIN_COSINE,
            "row {row}: cosine {similarity} to the reference"
        );
    }
}

/// One run: how many rows it had, and from how many jobs.
#[derive(Debug, PartialEq)]
struct RunShape {
    rows: usize,
    jobs: usize,
}

/// Runs every task `queue` holds (`rows` rows in all) on `session`, as a worker would.
fn drain(queue: &JobQueue, session: &mut Session, mut rows: usize) -> Vec<RunShape> {
    let mut runs = Vec::new();
    let mut finished = false;
    while rows > 0 {
        let task = queue.next_task(Role::Throughput, finished).unwrap();
        finished = true;
        match task {
            Task::Whole(job) => panic!("BERT jobs are batched, got {:?}", job.inputs[0].name),
            Task::Rows(task) => {
                rows -= task.len();
                let mut jobs: Vec<*const _> =
                    task.iter().map(|row| Arc::as_ptr(&row.job)).collect();
                jobs.sort_unstable();
                jobs.dedup();
                runs.push(RunShape {
                    rows: task.len(),
                    jobs: jobs.len(),
                });
                run_rows(session, &task, &NnMetrics::default());
            }
        }
    }
    runs
}

#[test]
fn rows_grouped_across_jobs_come_back_in_each_jobs_order_and_match_the_reference() {
    let references = references();
    let mut session = new_session(&model(), 2, None).unwrap();
    let batching = Batching::of(&session.inputs, &session.outputs);
    assert!(batching.is_some(), "the model's jobs may be batched");
    let queue = JobQueue::new(batching, false, NnMetrics::default());
    // Three requests' rows, unsorted, each padded to its own longest (one of them the 256-token limit).
    let long = references
        .iter()
        .position(|r| r.ids.len() == MAX_SEQ)
        .unwrap();
    let mut others = (0..references.len()).filter(|&i| i != long);
    let jobs: Vec<Vec<&Reference>> = [
        others.by_ref().take(5).collect::<Vec<_>>(),
        others.by_ref().take(3).chain([long]).collect(),
        others.collect(),
    ]
    .into_iter()
    .map(|indices| indices.into_iter().map(|i| &references[i]).collect())
    .collect();
    let replies: Vec<_> = jobs
        .iter()
        .map(|rows| {
            let ids: Vec<&[i64]> = rows.iter().map(|r| r.ids.as_slice()).collect();
            queue.submit(job(&ids)).unwrap()
        })
        .collect();
    let runs = drain(&queue, &mut session, references.len());
    assert!(
        runs.iter().any(|run| run.jobs > 1),
        "rows of different requests share runs: {runs:?}"
    );
    assert_eq!(
        runs.iter().map(|run| run.rows).sum::<usize>(),
        references.len()
    );

    for (rows, reply) in jobs.iter().zip(replies) {
        let outputs = reply.recv().unwrap().unwrap();
        assert_eq!(
            output(&outputs, SENTENCE_EMBEDDING).dimensions,
            [rows.len() as u32, DIMENSIONS as u32]
        );
        assert_matches(&embeddings(&outputs), rows);
    }

    // A token id outside the vocabulary fails the joined run; each job is then retried on its own, so only
    // the bad one fails.
    let good = queue.submit(job(&[&references[0].ids])).unwrap();
    let bad = queue.submit(job(&[&[101, 999_999, 102]])).unwrap();
    assert_eq!(
        drain(&queue, &mut session, 2),
        [RunShape { rows: 2, jobs: 2 }]
    );
    assert_matches(
        &embeddings(&good.recv().unwrap().unwrap()),
        &[&references[0]],
    );
    assert!(bad.recv().unwrap().is_err());

    // A job run whole, without the batcher, gives the same vectors.
    let alone = run(
        &mut session,
        &job(&[&references[1].ids]),
        &NnMetrics::default(),
    )
    .unwrap();
    assert_matches(&embeddings(&alone), &[&references[1]]);
}

#[test]
fn concurrent_requests_get_their_own_rows() {
    concurrent_requests_match_the_references(SessionOptions {
        intra_threads: 1,
        sessions: 1,
    });
}

#[test]
fn a_latency_session_and_throughput_sessions_sharing_the_weights_give_the_reference_vectors() {
    let shared = SharedInitializers::read(&model()).unwrap();
    // Each of the six layers' four weight matrices (the served graph packs Q, K and V in one) and the word
    // and position embedding tables, at the least.
    assert!(shared.0.len() >= 6 * 4 + 2, "{} shared", shared.0.len());
    concurrent_requests_match_the_references(SessionOptions {
        intra_threads: 2,
        sessions: 2,
    });
}

/// 24 requests at once, each of one to three rows, on a model run as `options` say: most of them queue and
/// run batched, and each gets the reference vectors of its own rows.
fn concurrent_requests_match_the_references(options: SessionOptions) {
    let references = Arc::new(references());
    let model = Arc::new(OnnxModel::load(&model(), &options, NnMetrics::default()).unwrap());
    let threads: Vec<_> = (0..24)
        .map(|n: usize| {
            let (model, references) = (model.clone(), references.clone());
            std::thread::spawn(move || {
                let picked: Vec<&Reference> = (0..1 + n % 3)
                    .map(|k| &references[(n * 5 + k * 7) % references.len()])
                    .collect();
                let ids: Vec<&[i64]> = picked.iter().map(|r| r.ids.as_slice()).collect();
                let outputs = model.infer(job(&ids)).unwrap();
                assert_matches(&embeddings(&outputs), &picked);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}
