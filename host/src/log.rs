//! The host's own output on stderr: one JSON object per line (request lines, warnings, errors), each with
//! its `timestamp` and `level`, written by `tracing-subscriber`'s JSON formatter.
//!
//! The formatter renders each event into a buffer on the thread that logs it; a writer thread of its own
//! (`tracing-appender`'s non-blocking writer) puts each line on stderr in one `write`, so lines of concurrent
//! requests never interleave. The HTTP front thread serves every connection and logs every request: if it
//! wrote to stderr itself, a reader of stderr that stops reading (a full pipe) would stall all connections.
//! Instead, lines wait in a bounded queue, and when it is full they are dropped and counted
//! (`log_lines_dropped_total` in the metrics): serving never waits for the log.

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines that may wait for a slow stderr: at ~400 bytes a request line, about 2 MB.
const QUEUED_LINES: usize = 4096;

/// Installs the JSON subscriber for the whole process. Call once, first thing; keep the guard until the
/// process ends: dropping it writes out the lines still queued. The counter counts the lines dropped.
pub fn init() -> (WorkerGuard, ErrorCounter) {
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .init();
    (guard, dropped)
}
