//! The listener: accept connections, serve each with hyper, and on shutdown drain: stop accepting, refuse
//! new requests, let every admitted one finish within the grace period, and say how many that was.
//!
//! All of that runs on the front: a thread of its own with a single-threaded runtime, which answers stored
//! answers and the host's own answers itself and hands every request that needs a component to the component
//! runtime (see `router`): on a small machine, a multi-thread runtime's workers all serving connections contend
//! for the cores that components need (docs/design-notes.md, "The HTTP front thread").

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_util::task::TaskTracker;
use wasmtime_wasi_http::io::TokioIo;

use hyper_util::rt::TokioTimer;

use super::request_log::log_error;
use super::router::Router;
use super::HEADER_READ_TIMEOUT;

/// Serves `listener` on the front thread until `shutdown` resolves, then drains: requests already admitted get
/// `grace` to finish. Resolves once the front thread has finished.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<()> {
    // Out of this runtime's reactor, into the front's (still non-blocking).
    let listener = listener.into_std()?;
    let (finished, front_finished) = oneshot::channel();
    std::thread::Builder::new()
        .name("http-front".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the HTTP front's runtime")
                .and_then(|front| {
                    front.block_on(serve_on_front(listener, router, shutdown, grace))
                });
            let _ = finished.send(served);
        })
        .context("cannot start the HTTP front thread")?;
    front_finished
        .await
        .context("the HTTP front thread panicked")?
}

/// [`serve`]'s work, on the front thread's runtime.
async fn serve_on_front(
    listener: std::net::TcpListener,
    router: Arc<Router>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let listen = listener.local_addr()?;
    let connections = TaskTracker::new();
    let (stop, stopping) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Running out of file descriptors and the like: keep serving the connections we have.
                Err(error) => {
                    log_error("-", "-", &anyhow!(error).context("accept failed"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.handle(request, listen, client).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    // New connections are refused from here on; requests that still reach an open connection are refused
    // by the router; open connections close once their current request is answered.
    drop(listener);
    let running = router.start_draining();
    tracing::info!(
        in_flight = running,
        "shutting down: draining admitted requests"
    );
    drop(stop);
    connections.close();
    let drained = tokio::time::timeout(grace, async {
        connections.wait().await;
        router.idle().await;
    })
    .await;
    let unfinished = router.in_flight();
    match drained {
        Ok(()) => tracing::info!(drained = running, "drained; exiting"),
        Err(_) => tracing::warn!(
            drained = running.saturating_sub(unfinished),
            unfinished,
            open_connections = connections.len(),
            "grace period of {grace:?} over; exiting with requests unfinished"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
