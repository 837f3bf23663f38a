//! The work waiting for a model's sessions, and the jobs it belongs to.
//!
//! A job whose rows may be batched ([`Batching`]) is queued as its rows; any other job is queued whole. A
//! worker that frees up takes the oldest entry, and with a row, the queued rows that may share its run.
//! Nothing waits for a batch to fill: at low load each job runs as soon as it arrives; under load rows queue
//! while every session is busy, and the next free session takes them in one run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::assembly::Assembly;
use super::batch::{Batching, RowSource};
use crate::metrics;

type Reply = Result<Vec<NamedTensor>, BackendError>;

/// One inference, run as it was given: named inputs in, named outputs (or the failure) back to the waiting
/// request.
pub struct Job {
    pub inputs: Vec<NamedTensor>,
    reply: mpsc::SyncSender<Reply>,
}

impl Job {
    pub fn finish(self, result: Reply) {
        // The requester may have gone away (its request was cancelled); nothing is waiting then.
        let _ = self.reply.send(result);
    }
}

/// One inference whose rows are run separately, each wherever it fits best; the worker that completes the
/// last row replies.
pub struct RowJob {
    inputs: Vec<NamedTensor>,
    progress: Mutex<Progress>,
    reply: mpsc::SyncSender<Reply>,
}

struct Progress {
    /// The outputs so far; `None` once the job has been answered.
    assembly: Option<Assembly>,
    /// Rows not yet in.
    remaining: usize,
}

impl RowJob {
    /// Takes row `row` of this job from row `from` of a run's `outputs`.
    pub fn complete_row(&self, outputs: &[NamedTensor], from: usize, row: usize, len: usize) {
        let mut progress = lock(&self.progress);
        let Some(assembly) = progress.assembly.as_mut() else {
            return; // Already failed.
        };
        if let Err(error) = assembly.fill(outputs, from, row, len) {
            progress.assembly = None;
            return self.reply(Err(error));
        }
        progress.remaining -= 1;
        if progress.remaining == 0 {
            if let Some(done) = progress.assembly.take() {
                self.reply(Ok(done.finish()));
            }
        }
    }

    /// Fails the job, unless it has already been answered.
    pub fn fail(&self, error: BackendError) {
        if lock(&self.progress).assembly.take().is_some() {
            self.reply(Err(error));
        }
    }

    fn reply(&self, result: Reply) {
        // As for [`Job::finish`].
        let _ = self.reply.send(result);
    }
}

/// One row of a queued job, trimmed to `len` tokens.
#[derive(Clone)]
pub struct JobRow {
    pub job: Arc<RowJob>,
    pub row: usize,
    pub len: usize,
}

impl JobRow {
    /// Where [`super::batch::join`] finds this row's inputs.
    pub fn source(&self) -> RowSource<'_> {
        RowSource {
            inputs: &self.job.inputs,
            row: self.row,
            len: self.len,
        }
    }
}

/// What a worker runs next.
pub enum Task {
    /// A job, run as it was given.
    Whole(Job),
    /// Rows of one or more jobs, joined into one run.
    Rows(Vec<JobRow>),
}

enum Work {
    Whole(Job),
    Row(JobRow),
}

/// Queued work, with what admission and the metrics need to know about it.
struct Entry {
    work: Work,
    /// Tokens the work will run, padding within it included.
    tokens: usize,
    queued_at: Instant,
}

impl Entry {
    fn new(work: Work, tokens: usize) -> Self {
        Self {
            work,
            tokens,
            queued_at: Instant::now(),
        }
    }

    /// The row's length, for [`Batching::select`]; `None` for a whole job.
    fn len(&self) -> Option<usize> {
        match &self.work {
            Work::Whole(_) => None,
            Work::Row(row) => Some(row.len),
        }
    }

    /// Takes the entry off the queue's books as it goes to a worker.
    fn dequeued(&self) {
        self.forget();
        metrics::record_queue_wait(self.queued_at.elapsed());
    }

    /// Takes the entry off the queue's books.
    fn forget(&self) {
        QUEUED_TOKENS.fetch_sub(self.tokens, Ordering::AcqRel);
        metrics::add_queued_tokens(-(self.tokens as i64));
    }
}

/// Tokens waiting in every model's queue, which admission control bounds.
static QUEUED_TOKENS: AtomicUsize = AtomicUsize::new(0);

/// Tokens (padding within a job run whole included) waiting for an inference session, in all queues.
pub fn queued_tokens() -> usize {
    QUEUED_TOKENS.load(Ordering::Acquire)
}

/// The tokens of a job run whole: rows × sequence length of its first input, if it has that shape.
fn whole_job_tokens(inputs: &[NamedTensor]) -> usize {
    inputs.first().map_or(0, |input| {
        input
            .tensor
            .dimensions
            .iter()
            .take(2)
            .map(|&d| d as usize)
            .product()
    })
}

/// A model's queue, shared by the requests that submit jobs and the workers that run them.
pub struct JobQueue {
    pending: Mutex<Pending>,
    /// Signalled when work arrives or the queue closes.
    ready: Condvar,
    batching: Option<Batching>,
}

#[derive(Default)]
struct Pending {
    entries: VecDeque<Entry>,
    closed: bool,
}

impl JobQueue {
    /// A queue whose jobs are batched as `batching` allows, or never with `None`.
    pub fn new(batching: Option<Batching>) -> Self {
        Self {
            pending: Mutex::default(),
            ready: Condvar::new(),
            batching,
        }
    }

    /// Queues `inputs` and returns where the outputs will arrive.
    pub fn submit(
        &self,
        mut inputs: Vec<NamedTensor>,
    ) -> Result<mpsc::Receiver<Reply>, BackendError> {
        let rows = self.batching.as_ref().and_then(|batching| {
            let lengths = batching.prepare(&mut inputs)?;
            let seq = inputs[0].tensor.dimensions[1] as usize;
            let assembly = batching.assembly(lengths.len(), seq);
            Some((lengths, assembly))
        });
        let (reply, outputs) = mpsc::sync_channel(1);
        let entries: Vec<Entry> = match rows {
            None => {
                let tokens = whole_job_tokens(&inputs);
                vec![Entry::new(Work::Whole(Job { inputs, reply }), tokens)]
            }
            Some((lengths, assembly)) => {
                let job = Arc::new(RowJob {
                    inputs,
                    progress: Mutex::new(Progress {
                        assembly: Some(assembly),
                        remaining: lengths.len(),
                    }),
                    reply,
                });
                lengths
                    .into_iter()
                    .enumerate()
                    .map(|(row, len)| {
                        let work = Work::Row(JobRow {
                            job: job.clone(),
                            row,
                            len,
                        });
                        Entry::new(work, len)
                    })
                    .collect()
            }
        };
        let mut pending = lock(&self.pending);
        if pending.closed {
            return Err(BackendError::BackendAccess(format_err!(
                "the inference workers have stopped"
            )));
        }
        let tokens: usize = entries.iter().map(|entry| entry.tokens).sum();
        QUEUED_TOKENS.fetch_add(tokens, Ordering::AcqRel);
        metrics::add_queued_tokens(tokens as i64);
        pending.entries.extend(entries);
        drop(pending);
        self.ready.notify_one();
        Ok(outputs)
    }

    /// Waits for work: the oldest entry, with the queued rows that may share its run. `None` once the queue
    /// is closed.
    pub fn next_task(&self) -> Option<Task> {
        let mut pending = lock(&self.pending);
        loop {
            if pending.closed {
                return None;
            }
            if let Some(first) = pending.entries.pop_front() {
                first.dequeued();
                let task = match (first.work, &self.batching) {
                    (Work::Whole(job), _) => Task::Whole(job),
                    (Work::Row(first), batching) => {
                        let joined = batching.as_ref().map_or_else(Vec::new, |batching| {
                            batching.select(first.len, pending.entries.iter().map(Entry::len))
                        });
                        let mut rows = Vec::with_capacity(1 + joined.len());
                        rows.push(first);
                        // `select` returns ascending positions; taking them from the back keeps the rest valid.
                        for &position in joined.iter().rev() {
                            if let Some(entry) = pending.entries.remove(position) {
                                entry.dequeued();
                                if let Work::Row(row) = entry.work {
                                    rows.push(row);
                                }
                            }
                        }
                        Task::Rows(rows)
                    }
                };
                // More work than this worker takes: wake another one for it.
                if !pending.entries.is_empty() {
                    self.ready.notify_one();
                }
                return Some(task);
            }
            pending = self
                .ready
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the workers; work still queued is dropped, so its requesters see the workers gone.
    pub fn close(&self) {
        let mut pending = lock(&self.pending);
        pending.closed = true;
        for entry in pending.entries.drain(..) {
            entry.forget();
        }
        drop(pending);
        self.ready.notify_all();
    }
}

/// Nothing panics while holding these locks, but a poisoned lock still guards consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
