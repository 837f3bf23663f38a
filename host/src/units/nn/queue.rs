//! The work waiting for a model's sessions, and the jobs it belongs to.
//!
//! A job whose rows may be batched ([`Batching`]) is queued as its rows; any other job is queued whole. A
//! worker that frees up takes the oldest entry, and with a row, the queued rows that may share its run.
//! Nothing waits for a batch to fill: at low load each job runs as soon as it arrives; under load rows queue
//! while every session is busy, and the next free session takes them in one run. Waiting was measured slower
//! (docs/design-notes.md, "The batcher does not wait for a batch to fill").
//!
//! A graph may have two kinds of session ([`Role`]). A latency session spreads each run over several threads:
//! the fastest for one request. Throughput sessions run on one thread each, side by side: under load on a
//! few cores that the guests and clients also use, a run spread over threads keeps waiting for whichever of
//! them was descheduled, and one-thread runs never wait. So the latency session serves while what waits is
//! one request's work, and once several requests' work waits the throughput sessions take over until the
//! queue empties; the two kinds never run at the same time, which would put more busy threads than cores on
//! the graph.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use wasmtime::format_err;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};

use super::assembly::Assembly;
use super::batch::{Batching, RowSource};
use super::metrics::NnMetrics;

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
    fn dequeued(&self, metrics: &NnMetrics) {
        self.forget(metrics);
        metrics.queue_wait(self.queued_at.elapsed());
    }

    /// Takes the entry off the queue's books.
    fn forget(&self, metrics: &NnMetrics) {
        metrics.queued_tokens.sub(self.tokens);
    }
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
    /// Where each role's idle workers wait. Only workers that may take the queued work are woken
    /// ([`Self::wakeups`]): one woken for nothing takes a core from the run that has work (docs/design-notes.md).
    latency_ready: Condvar,
    throughput_ready: Condvar,
    batching: Option<Batching>,
    /// Whether one of the workers has [`Role::Latency`].
    has_latency: bool,
    metrics: NnMetrics,
}

/// Whose waiting workers to wake ([`JobQueue::wakeups`]).
struct Wakeups {
    latency: bool,
    throughput: bool,
}

/// What a session's worker is for (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs while what waits is one request's work, with every thread it has.
    Latency,
    /// Runs on one thread beside the others while several requests' work waits; a graph without a latency
    /// session has only these, and they take whatever is queued.
    Throughput,
}

#[derive(Default)]
struct Pending {
    entries: VecDeque<Entry>,
    closed: bool,
    /// Whether the latency session is running, and how many throughput sessions are.
    latency_running: bool,
    throughput_running: usize,
}

impl JobQueue {
    /// A queue whose jobs are batched as `batching` allows, or never with `None`, for workers of which one has
    /// [`Role::Latency`] if `has_latency`; its waiting tokens and waits count in `metrics`.
    pub fn new(batching: Option<Batching>, has_latency: bool, metrics: NnMetrics) -> Self {
        Self {
            pending: Mutex::default(),
            latency_ready: Condvar::new(),
            throughput_ready: Condvar::new(),
            batching,
            has_latency,
            metrics,
        }
    }

    pub fn metrics(&self) -> &NnMetrics {
        &self.metrics
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
        self.metrics.queued_tokens.add(tokens);
        pending.entries.extend(entries);
        let wakeups = self.wakeups(&pending);
        drop(pending);
        self.notify(wakeups);
        Ok(outputs)
    }

    /// Waits for work a worker of `role` may take: the oldest entry, with the queued rows that may share its
    /// run. `finished` says the worker has just finished its previous task. `None` once the queue is closed.
    pub fn next_task(&self, role: Role, finished: bool) -> Option<Task> {
        let mut pending = lock(&self.pending);
        if finished {
            match role {
                Role::Latency => pending.latency_running = false,
                Role::Throughput => pending.throughput_running -= 1,
            }
            // Workers of the other role may take work now.
            self.notify(self.wakeups(&pending));
        }
        // A throughput worker that has just finished goes on while there is work: the queue stays in their
        // hands until it empties.
        let mut going_on = finished;
        loop {
            if pending.closed {
                return None;
            }
            if !pending.entries.is_empty() && self.may_take(&pending, role, going_on) {
                match role {
                    Role::Latency => pending.latency_running = true,
                    Role::Throughput => pending.throughput_running += 1,
                }
                let task = self.take(&mut pending);
                // More work than this worker takes: another may take the rest.
                let wakeups = self.wakeups(&pending);
                drop(pending);
                self.notify(wakeups);
                return Some(task);
            }
            going_on = false;
            let ready = match role {
                Role::Latency => &self.latency_ready,
                Role::Throughput => &self.throughput_ready,
            };
            pending = ready.wait(pending).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Which roles have a worker that may take the queued work now: nothing is woken for an empty queue, and
    /// one worker of a role at a time (one that takes only part of the work wakes the next).
    fn wakeups(&self, pending: &Pending) -> Wakeups {
        let waiting = !pending.entries.is_empty();
        Wakeups {
            latency: waiting && self.has_latency && self.may_take(pending, Role::Latency, false),
            throughput: waiting && self.may_take(pending, Role::Throughput, false),
        }
    }

    /// Wakes the workers `wakeups` names; called without the lock where the caller can, so that a woken worker
    /// does not wait for it.
    fn notify(&self, wakeups: Wakeups) {
        if wakeups.latency {
            self.latency_ready.notify_one();
        }
        if wakeups.throughput {
            self.throughput_ready.notify_one();
        }
    }

    /// Whether a worker of `role` may take the queued work now.
    fn may_take(&self, pending: &Pending, role: Role, going_on: bool) -> bool {
        // `one_job` reads the queue: only asked when nothing else decides (never for a graph of one session).
        match role {
            Role::Latency => pending.throughput_running == 0 && one_job(&pending.entries),
            Role::Throughput => {
                !pending.latency_running
                    && (!self.has_latency
                        || going_on
                        || pending.throughput_running > 0
                        || !one_job(&pending.entries))
            }
        }
    }

    /// Takes the oldest entry off the queue, with the queued rows that may share its run.
    fn take(&self, pending: &mut Pending) -> Task {
        let first = pending.entries.pop_front().expect("the queue is not empty");
        first.dequeued(&self.metrics);
        match (first.work, &self.batching) {
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
                        entry.dequeued(&self.metrics);
                        if let Work::Row(row) = entry.work {
                            rows.push(row);
                        }
                    }
                }
                Task::Rows(rows)
            }
        }
    }

    /// Stops the workers; work still queued is dropped, so its requesters see the workers gone.
    pub fn close(&self) {
        let mut pending = lock(&self.pending);
        pending.closed = true;
        for entry in pending.entries.drain(..) {
            entry.forget(&self.metrics);
        }
        drop(pending);
        self.latency_ready.notify_all();
        self.throughput_ready.notify_all();
    }
}

/// Whether everything queued is one job's: one request's rows (the latency session runs them fastest), not
/// the work of several requests that arrive faster than one session serves them.
fn one_job(entries: &VecDeque<Entry>) -> bool {
    let Some(first) = entries.front() else {
        return true;
    };
    match &first.work {
        Work::Whole(_) => entries.len() == 1,
        Work::Row(first) => entries.iter().all(
            |entry| matches!(&entry.work, Work::Row(row) if Arc::ptr_eq(&row.job, &first.job)),
        ),
    }
}

/// Nothing panics while holding these locks, but a poisoned lock still guards consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use wasmtime_wasi_nn::wit::TensorType;
    use wasmtime_wasi_nn::Tensor;

    use super::*;

    /// A whole job (the queue has no batching), its one input naming it.
    fn job(queue: &JobQueue, name: &str) -> mpsc::Receiver<Reply> {
        let tensor = Tensor::new(vec![1, 1], TensorType::I64, vec![0; 8]);
        let input = NamedTensor {
            name: name.into(),
            tensor,
        };
        queue.submit(vec![input]).unwrap()
    }

    /// Which role ran each job, by name, and whether the two roles ever ran at once.
    #[derive(Default)]
    struct Record {
        ran: Mutex<Vec<(String, Role)>>,
        latency_running: AtomicBool,
        throughput_running: AtomicUsize,
        overlapped: AtomicBool,
    }

    /// Workers as a graph with a latency session and two throughput sessions has, each "run" a short sleep.
    fn workers(queue: &Arc<JobQueue>, record: &Arc<Record>) -> Vec<std::thread::JoinHandle<()>> {
        [Role::Latency, Role::Throughput, Role::Throughput]
            .into_iter()
            .map(|role| {
                let (queue, record) = (queue.clone(), record.clone());
                std::thread::spawn(move || {
                    let mut finished = false;
                    while let Some(task) = queue.next_task(role, finished) {
                        finished = true;
                        let (label, answer): (String, Box<dyn FnOnce()>) = match task {
                            Task::Whole(job) => (
                                job.inputs[0].name.clone(),
                                Box::new(move || job.finish(Ok(Vec::new()))),
                            ),
                            // A BERT job's rows: answered with an error, which is enough to know who ran them.
                            Task::Rows(rows) => (
                                format!("{} rows", rows.len()),
                                Box::new(move || {
                                    for row in rows {
                                        row.job.fail(BackendError::BackendAccess(format_err!(
                                            "not run"
                                        )));
                                    }
                                }),
                            ),
                        };
                        // Each marks itself running, then looks at the other role (SeqCst: of two that
                        // overlap, at least one sees the other).
                        let other_running = match role {
                            Role::Latency => {
                                record.latency_running.store(true, Ordering::SeqCst);
                                record.throughput_running.load(Ordering::SeqCst) > 0
                            }
                            Role::Throughput => {
                                record.throughput_running.fetch_add(1, Ordering::SeqCst);
                                record.latency_running.load(Ordering::SeqCst)
                            }
                        };
                        if other_running {
                            record.overlapped.store(true, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(3));
                        match role {
                            Role::Latency => record.latency_running.store(false, Ordering::SeqCst),
                            Role::Throughput => {
                                record.throughput_running.fetch_sub(1, Ordering::SeqCst);
                            }
                        }
                        lock(&record.ran).push((label, role));
                        answer();
                    }
                })
            })
            .collect()
    }

    fn role_of(record: &Record, name: &str) -> Role {
        lock(&record.ran)
            .iter()
            .find(|(ran, _)| ran == name)
            .map(|&(_, role)| role)
            .unwrap_or_else(|| panic!("{name} did not run"))
    }

    #[test]
    fn one_request_s_rows_are_the_latency_session_s_however_many() {
        let queue = Arc::new(JobQueue::new(
            Some(super::super::batch::tests::bert()),
            true,
            NnMetrics::default(),
        ));
        let record = Arc::new(Record::default());
        let threads = workers(&queue, &record);
        let rows: Vec<Vec<i64>> = (0..6).map(|n| vec![101; 4 + n]).collect();
        let rows: Vec<&[i64]> = rows.iter().map(Vec::as_slice).collect();
        let reply = queue
            .submit(super::super::batch::tests::bert_job(&rows))
            .unwrap();
        assert!(
            reply.recv().unwrap().is_err(),
            "answered by the test's worker"
        );
        let ran = lock(&record.ran).clone();
        assert!(
            !ran.is_empty() && ran.iter().all(|(_, role)| *role == Role::Latency),
            "{ran:?}"
        );
        queue.close();
        for thread in threads {
            thread.join().unwrap();
        }
    }

    #[test]
    fn only_workers_that_may_take_the_queued_work_are_woken() {
        let queue = JobQueue::new(None, true, NnMetrics::default());
        let woken = |queue: &JobQueue| {
            let wakeups = queue.wakeups(&lock(&queue.pending));
            (wakeups.latency, wakeups.throughput)
        };
        assert_eq!(woken(&queue), (false, false), "an empty queue wakes no one");

        let _first = job(&queue, "first");
        assert_eq!(
            woken(&queue),
            (true, false),
            "one job is the latency session's"
        );

        lock(&queue.pending).latency_running = true;
        let _second = job(&queue, "second");
        assert_eq!(
            woken(&queue),
            (false, false),
            "the throughput sessions wait for the latency session"
        );

        let mut pending = lock(&queue.pending);
        (pending.latency_running, pending.throughput_running) = (false, 1);
        drop(pending);
        assert_eq!(
            woken(&queue),
            (false, true),
            "two jobs are the throughput sessions'"
        );
        queue.close();
    }

    #[test]
    fn the_latency_session_serves_a_light_queue_and_the_throughput_sessions_a_deep_one() {
        let queue = Arc::new(JobQueue::new(None, true, NnMetrics::default()));
        let record = Arc::new(Record::default());
        let threads = workers(&queue, &record);

        // One job at a time: the latency session runs each.
        for n in 0..3 {
            job(&queue, &format!("alone {n}")).recv().unwrap().unwrap();
            assert_eq!(role_of(&record, &format!("alone {n}")), Role::Latency);
        }

        // Twelve at once: several jobs wait, and the throughput sessions run them side by side.
        let replies: Vec<_> = (0..12)
            .map(|n| job(&queue, &format!("queued {n}")))
            .collect();
        for reply in replies {
            reply.recv().unwrap().unwrap();
        }
        let throughput = (0..12)
            .filter(|n| role_of(&record, &format!("queued {n}")) == Role::Throughput)
            .count();
        assert!(
            throughput >= 11,
            "{throughput} of 12 on the throughput sessions"
        );

        // Once the queue has emptied and the throughput sessions have stopped (one that has just answered still
        // takes whatever is queued when it looks), a lone job is the latency session's again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lock(&queue.pending).throughput_running > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the throughput sessions never stopped"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        job(&queue, "alone again").recv().unwrap().unwrap();
        assert_eq!(role_of(&record, "alone again"), Role::Latency);
        assert!(
            !record.overlapped.load(Ordering::SeqCst),
            "the latency session never runs beside the throughput sessions"
        );

        queue.close();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
