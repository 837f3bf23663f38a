//! The jobs waiting for a model's sessions.
//!
//! A worker that frees up takes the oldest job, together with the queued jobs [`Batching`] lets share its run.
//! Nothing waits for a batch to fill: at low load each job runs as soon as it arrives, alone; under load jobs
//! queue while every session is busy, and the next free session takes them in one run.

use std::collections::VecDeque;
use std::sync::{mpsc, Condvar, Mutex, MutexGuard, PoisonError};

use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::batch::{Batching, Rows};

/// One inference: named inputs in, named outputs (or the failure) back to the waiting request.
pub struct Job {
    pub inputs: Vec<NamedTensor>,
    /// The job's place in a joined run; `None` if it runs alone.
    pub rows: Option<Rows>,
    pub reply: mpsc::SyncSender<Result<Vec<NamedTensor>, BackendError>>,
}

/// A model's queue, shared by the requests that submit jobs and the workers that run them.
pub struct JobQueue {
    pending: Mutex<Pending>,
    /// Signalled when a job arrives or the queue closes.
    ready: Condvar,
    batching: Option<Batching>,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl JobQueue {
    /// A queue whose jobs are joined as `batching` allows, or never with `None`.
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
    ) -> Result<mpsc::Receiver<Result<Vec<NamedTensor>, BackendError>>, BackendError> {
        let rows = self
            .batching
            .as_ref()
            .and_then(|batching| batching.prepare(&mut inputs));
        let (reply, outputs) = mpsc::sync_channel(1);
        let mut pending = self.lock();
        if pending.closed {
            return Err(BackendError::BackendAccess(format_err!(
                "the inference workers have stopped"
            )));
        }
        pending.jobs.push_back(Job {
            inputs,
            rows,
            reply,
        });
        drop(pending);
        self.ready.notify_one();
        Ok(outputs)
    }

    /// Waits for work: the oldest job first, then the queued jobs that may share its run, in queue order.
    /// `None` once the queue is closed.
    pub fn next_batch(&self) -> Option<Vec<Job>> {
        let mut pending = self.lock();
        loop {
            if pending.closed {
                return None;
            }
            if let Some(first) = pending.jobs.pop_front() {
                let joined = match (&self.batching, first.rows) {
                    (Some(batching), Some(rows)) => {
                        batching.select(rows, pending.jobs.iter().map(|job| job.rows))
                    }
                    _ => Vec::new(),
                };
                let mut batch = Vec::with_capacity(1 + joined.len());
                batch.push(first);
                // `select` returns ascending positions; removing from the back keeps the others valid.
                let start = batch.len();
                for &index in joined.iter().rev() {
                    batch.extend(pending.jobs.remove(index));
                }
                batch[start..].reverse();
                return Some(batch);
            }
            pending = self
                .ready
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the workers; jobs still queued are dropped, so their requesters see the workers gone.
    pub fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        pending.jobs.clear();
        drop(pending);
        self.ready.notify_all();
    }

    /// Nothing panics while holding the lock, but a poisoned queue is still a consistent queue.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
