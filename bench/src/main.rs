//! The ceiling of `make bench`: what no server can beat.
//!
//! Runs the same ONNX model (its pooled `sentence_embedding` output) through the same ONNX Runtime
//! library, with the same intra-op thread count as sbert-host, in-process, using the component's own
//! tokenizer and embedding path (compiled natively). Prints one JSON line of figures for `bench/run.py`.
//! With `--sessions` above 1, that many sessions run side by side, each on a thread of its own, as
//! sbert-host's one-thread throughput sessions do under load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use ort::session::{builder::GraphOptimizationLevel, Session};
use ort::value::TensorRef;
use sbert_model::{ATTENTION_MASK, INPUT_IDS, SENTENCE_EMBEDDING, TOKEN_TYPE_IDS};
use sbert_service::backend::{Infer, InferError, Sequence, TokenBatch};
use sbert_service::embed::model::{Model, ModelKind};
use sbert_service::embed::tokenize::{TextTokenizer, Truncation};
use sbert_service::embed::{Embedder, Input};

/// Measure in-process inference: one sentence at a time, then length-sorted batches of 32.
#[derive(Parser)]
struct Args {
    /// The ONNX model
    #[arg(long)]
    model: PathBuf,
    /// The tokenizer.json the component embeds
    #[arg(long)]
    tokenizer: PathBuf,
    /// Questions, one per line
    #[arg(long)]
    questions: PathBuf,
    /// Seconds for each of the two measurements
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// ONNX Runtime intra-op threads of each session
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    threads: usize,
    /// Sessions running side by side, each on a thread of its own
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    sessions: u64,
    /// The ONNX Runtime shared library
    #[arg(long, env = "ORT_DYLIB_PATH")]
    onnxruntime: PathBuf,
    /// Measure only one of the two (both by default)
    #[arg(long, value_enum)]
    only: Option<Measurement>,
}

/// One of the ceiling's two measurements.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Measurement {
    /// One sentence at a time
    Single,
    /// Length-sorted batches of 32
    Batches,
}

/// ONNX Runtime behind the component's `Infer` seam, counting the positions its runs take (rows × longest
/// row, padding included) and their time. `Session::run` takes `&mut self`; each session has a thread of
/// its own, so the lock is never contended.
struct OrtModel {
    session: Mutex<Session>,
    runs: Mutex<RunTotals>,
}

#[derive(Default)]
struct RunTotals {
    positions: usize,
    time: Duration,
}

impl OrtModel {
    fn load(args: &Args) -> Result<Self> {
        let session = Session::builder()?
            .with_optimization_level(GraphOptimizationLevel::Level3)?
            .with_intra_threads(args.threads)?
            // As sbert-host's sessions run (host/src/units/nn/onnx.rs), so the ceiling is the best of the same
            // settings.
            .with_config_entry("session.dynamic_block_base", "8")?
            .commit_from_file(&args.model)
            .with_context(|| format!("loading {}", args.model.display()))?;
        Ok(Self {
            session: Mutex::new(session),
            runs: Mutex::default(),
        })
    }

    fn take_totals(&self) -> RunTotals {
        std::mem::take(&mut *self.runs.lock().expect("benchmark totals lock"))
    }
}

/// The microseconds a position took in the runs of `models` since the last call, summed over sessions.
fn take_us_per_position(models: &[OrtModel]) -> f64 {
    let (time, positions) = models
        .iter()
        .map(OrtModel::take_totals)
        .fold((Duration::ZERO, 0), |(time, positions), totals| {
            (time + totals.time, positions + totals.positions)
        });
    time.as_secs_f64() * 1e6 / positions.max(1) as f64
}

impl Infer for OrtModel {
    fn embed(
        &self,
        _model: &Model,
        sequences: &[Sequence<'_>],
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let batch = TokenBatch::new(sequences);
        let shape = [batch.rows, batch.longest];
        let run = || -> ort::Result<Vec<Vec<f32>>> {
            let mut session = self.session.lock().expect("benchmark session lock");
            let started = Instant::now();
            let outputs = session.run(ort::inputs! {
                INPUT_IDS => TensorRef::from_array_view((shape, batch.input_ids.as_slice()))?,
                ATTENTION_MASK => TensorRef::from_array_view((shape, batch.attention_mask.as_slice()))?,
                TOKEN_TYPE_IDS => TensorRef::from_array_view((shape, batch.token_type_ids.as_slice()))?,
            })?;
            let mut totals = self.runs.lock().expect("benchmark totals lock");
            totals.time += started.elapsed();
            totals.positions += batch.rows * batch.longest;
            let (dims, values) = outputs[SENTENCE_EMBEDDING].try_extract_tensor::<f32>()?;
            let width = *dims.last().unwrap_or(&0) as usize;
            Ok(values.chunks(width.max(1)).map(<[f32]>::to_vec).collect())
        };
        run().map_err(|e| InferError::new(e.to_string()))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    ort::init_from(args.onnxruntime.display().to_string())
        .commit()
        .context("loading ONNX Runtime")?;
    let models = (0..args.sessions)
        .map(|_| OrtModel::load(&args))
        .collect::<Result<Vec<_>>>()?;
    let tokenizer = TextTokenizer::from_json(&std::fs::read(&args.tokenizer)?)?;
    // The served model's identity only names the graph; the sessions above are what run.
    let model = Model::new(ModelKind::Fp32, String::new());
    let sessions = Sessions {
        models: &models,
        tokenizer: &tokenizer,
        model: &model,
    };
    let text = std::fs::read_to_string(&args.questions)?;
    let questions: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let budget = Duration::from_secs(args.seconds);

    // Warm-up: the first runs allocate ONNX Runtime's arenas.
    sessions.side_by_side(|_, embedder| {
        for q in questions.iter().take(20) {
            embed(embedder, &[q])?;
        }
        Ok(())
    })?;
    take_us_per_position(&models);

    let mut figures = serde_json::json!({ "threads": args.threads, "sessions": args.sessions });
    if args.only != Some(Measurement::Batches) {
        // Each session starts at its own place in the questions.
        let offset = questions.len() / models.len();
        let started = Instant::now();
        let mut latencies = sessions
            .side_by_side(|session, embedder| {
                let mut latencies = Vec::new();
                for q in questions.iter().cycle().skip(session * offset) {
                    let t = Instant::now();
                    embed(embedder, &[q])?;
                    latencies.push(t.elapsed());
                    if started.elapsed() >= budget {
                        break;
                    }
                }
                Ok(latencies)
            })?
            .concat();
        let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
        latencies.sort();
        figures["sentences_per_s"] = rate.into();
        figures["p50_ms"] = percentile(&latencies, 0.5).into();
        figures["p99_ms"] = percentile(&latencies, 0.99).into();
        figures["samples"] = latencies.len().into();
        figures["us_per_position"] = take_us_per_position(&models).into();
    }

    if args.only != Some(Measurement::Single) {
        // Batches of 32 from all the questions sorted by length: the least padding any batching reaches.
        let mut by_length: Vec<&str> = questions.clone();
        by_length.sort_by_key(|q| q.len());
        let batches: Vec<&[&str]> = by_length.chunks(32).collect();
        let next = AtomicUsize::new(0);
        let started = Instant::now();
        let sentences: usize = sessions
            .side_by_side(|_, embedder| {
                let mut sentences = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let batch = batches[i % batches.len()];
                    embed(embedder, batch)?;
                    sentences += batch.len();
                    if started.elapsed() >= budget && i + 1 >= batches.len().min(8) {
                        return Ok(sentences);
                    }
                }
            })?
            .into_iter()
            .sum();
        figures["batch32_sentences_per_s"] =
            (sentences as f64 / started.elapsed().as_secs_f64()).into();
        figures["batch32_us_per_position"] = take_us_per_position(&models).into();
    }
    println!("{figures}");
    Ok(())
}

fn embed(embedder: &Embedder<'_>, texts: &[&str]) -> Result<()> {
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Text(t)).collect();
    embedder.embed(&inputs, Truncation::Right)?;
    Ok(())
}

/// The sessions a measurement runs on, and what each needs to embed.
struct Sessions<'a> {
    models: &'a [OrtModel],
    tokenizer: &'a TextTokenizer,
    model: &'a Model,
}

impl Sessions<'_> {
    /// Runs `measure` with an embedder on every session at once, each on a thread of its own, and gathers
    /// what each returns.
    fn side_by_side<T: Send>(
        &self,
        measure: impl Fn(usize, &Embedder<'_>) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        std::thread::scope(|scope| {
            let measure = &measure;
            let threads: Vec<_> = self
                .models
                .iter()
                .enumerate()
                .map(|(session, onnx)| {
                    scope.spawn(move || {
                        measure(session, &Embedder::new(self.tokenizer, onnx, self.model))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("a measuring thread panicked"))
                .collect()
        })
    }
}
