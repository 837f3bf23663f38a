//! The listener, the router and admission over real TCP, with tiny handler components written in WAT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::serve;
use crate::app::manifest::HostTool;
use crate::http::admission::{Admission, AdmissionLimits};
use crate::http::answers::AnswerStyle;
use crate::http::cache::HttpCache;
use crate::http::guest::{start_epoch_ticker, RequestLimits, ServedComponent};
use crate::http::router::Router;
use crate::state::ComponentServices;

/// A wasi:http handler component whose `handle` runs the core wasm `body` and never sets a response.
fn handler(body: &str) -> String {
    format!(
        r#"(component
            (import "wasi:http/types@0.2.0" (instance $types
                (export "incoming-request" (type (sub resource)))
                (export "response-outparam" (type (sub resource)))))
            (alias export $types "incoming-request" (type $request))
            (alias export $types "response-outparam" (type $outparam))
            (core module $m (memory 1) (func (export "handle") (param i32 i32) {body}))
            (core instance $i (instantiate $m))
            (func $handle (param "request" (own $request)) (param "response-out" (own $outparam))
                (canon lift (core func $i "handle")))
            (instance $handler
                (export "incoming-request" (type $request))
                (export "response-outparam" (type $outparam))
                (export "handle" (func $handle)))
            (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#
    )
}

/// Host answers as sbert-service configures them: CORS, OpenAI's shape under `/v1/embeddings`, the original
/// service's shapes elsewhere.
const STYLED: &str = r#"
answer_headers = { "Access-Control-Allow-Origin" = "*", "Access-Control-Expose-Headers" = "X-Request-Id" }
[[error_bodies]]
paths = ["/v1/embeddings"]
client_error = '{"error": {"message": {{ message }}, "type": "invalid_request_error", "param": null, "code": null}}'
server_error = '{"error": {"message": {{ message }}, "type": "server_error", "param": null, "code": null}}'
[[error_bodies]]
paths = ["/"]
client_error = '{"code": {{ status }}, "name": {{ reason }}, "description": {{ message }}}'
server_error = '{"error": {{ kind }}, "message": {{ message }}}'
"#;

struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Serves `routes` (route, handler body, manifest section) on a free port; a request's guest may
/// run for `deadline`.
async fn start(
    routes: &[(&str, &str, &str)],
    limits: AdmissionLimits,
    deadline: Duration,
) -> Server {
    let router = router(routes, limits, deadline, None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(
        listener,
        router,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    Server {
        address,
        stop,
        task,
    }
}

/// A router for `routes` (route, handler body, manifest section), with `cache` in front of them.
fn router(
    routes: &[(&str, &str, &str)],
    limits: AdmissionLimits,
    deadline: Duration,
    cache: Option<HttpCache>,
) -> Arc<Router> {
    let engine = Engine::new(Config::new().epoch_interruption(true)).unwrap();
    start_epoch_ticker(&engine).unwrap();
    let mut linker = Linker::new(&engine);
    crate::state::add_to_linker(&mut linker).unwrap();
    let routes = routes
        .iter()
        .map(|(route, body, tool)| {
            let component = Component::new(&engine, handler(body)).unwrap();
            let pre = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
            let tool: HostTool = toml::from_str(tool).unwrap();
            let served = ServedComponent {
                id: route.trim_matches(|c| c == '/' || c == '.').to_string(),
                pre,
                services: ComponentServices::default(),
                answers: AnswerStyle::of(&tool),
                counted_header: None,
                cache_hit_headers: Default::default(),
            };
            (route.to_string(), Arc::new(served))
        })
        .collect();
    let request_limits = RequestLimits {
        timeout: deadline,
        memory: 1 << 20,
    };
    let admission = Admission::new(limits, || 0);
    Arc::new(
        Router::new(
            routes,
            request_limits,
            admission,
            cache,
            tokio::runtime::Handle::current(),
        )
        .unwrap(),
    )
}

/// Short enough for the tests of timeouts to be quick.
const SHORT_DEADLINE: Duration = Duration::from_millis(300);

const ROOMY: AdmissionLimits = AdmissionLimits {
    max_concurrent_requests: 64,
    max_queued_tokens: 1000,
};

/// A GET over a plain TCP connection: (status, lower-cased head, body).
async fn get(address: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn json_body(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_json_errors_in_the_configured_shape_with_a_request_id() {
    let server = start(
        &[
            ("/trap/...", "unreachable", ""),
            ("/v1/...", "unreachable", STYLED),
            ("/silent", "", ""),
            ("/spin", "(loop (br 0))", STYLED),
            // Spin (a 503) when growing memory succeeds, return unanswered (a 500) when it fails.
            (
                "/grow",
                "(if (i32.ne (memory.grow (i32.const 16)) (i32.const -1)) (then (loop (br 0))))",
                "",
            ),
            (
                "/fits",
                "(if (i32.ne (memory.grow (i32.const 8)) (i32.const -1)) (then (loop (br 0))))",
                "",
            ),
        ],
        ROOMY,
        SHORT_DEADLINE,
    )
    .await;
    let address = server.address;

    // A trap, unconfigured: a 500 in the generic shape, nothing about the trap itself, no extra headers.
    let (status, head, body) = get(address, "/trap/x?q=1", "").await;
    assert_eq!(status, 500);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(!head.contains("access-control"), "{head}");
    assert_eq!(
        json_body(&body),
        json!({"error": "internal", "message": "the request could not be completed"})
    );
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("a generated request id");
    assert_eq!(id.len(), 36);

    // Configured: the headers on every host answer, the body by path prefix.
    let (status, head, body) = get(address, "/v1/embeddings", "").await;
    assert_eq!(status, 500);
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(
        head.contains("access-control-expose-headers: x-request-id"),
        "{head}"
    );
    assert_eq!(
        json_body(&body),
        json!({"error": {"message": "the request could not be completed", "type": "server_error", "param": null, "code": null}})
    );
    let (_, _, body) = get(address, "/v1/embeddingsx", "").await;
    assert_eq!(json_body(&body)["error"], "internal");

    // A handler that returns without answering, and a request id that is echoed.
    let (status, head, _) = get(address, "/silent", "X-Request-Id: trace-42\r\n").await;
    assert_eq!(status, 500);
    assert!(head.contains("x-request-id: trace-42"), "{head}");

    // A guest that never yields is stopped at its deadline.
    let (status, _, body) = get(address, "/spin", "").await;
    assert_eq!(status, 503);
    assert_eq!(json_body(&body)["error"], "timeout");

    // Growing memory past the 1 MiB limit is refused; growing within it is granted.
    let (status, _, _) = get(address, "/grow", "").await;
    assert_eq!(status, 500);
    let (status, _, _) = get(address, "/fits", "").await;
    assert_eq!(status, 503);

    // No matching route: the host's own 404, in the generic shape (no component to style it).
    let (status, _, body) = get(address, "/silent/below", "").await;
    assert_eq!(status, 404);
    assert_eq!(
        json_body(&body),
        json!({"error": "not_found", "message": "no route matches /silent/below"})
    );

    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_bound_is_refused_at_once_and_admitted_ones_drain_on_shutdown() {
    let one_at_a_time = AdmissionLimits {
        max_concurrent_requests: 1,
        max_queued_tokens: 1000,
    };
    // The handler spins until its deadline, holding the only permit meanwhile. The deadline is ten
    // times the head start the holder gets, so that on a loaded machine (cargo runs tests in
    // parallel) the holder is surely admitted before, and still running after, the requests that
    // must be refused (with 300 ms and a 100 ms head start, a CI run once saw it finish first).
    let deadline = Duration::from_secs(3);
    let server = start(
        &[("/...", "(loop (br 0))", STYLED)],
        one_at_a_time,
        deadline,
    )
    .await;
    let address = server.address;
    let holder = tokio::spawn(get(address, "/v1/encode", ""));
    tokio::time::sleep(deadline / 10).await;

    let (status, head, body) = get(address, "/v1/embeddings", "").await;
    assert_eq!(status, 429);
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert_eq!(
        json_body(&body),
        json!({"error": {"message": "the server is busy; retry in a second", "type": "invalid_request_error", "param": null, "code": null}})
    );
    let (status, _, body) = get(address, "/v1/encode", "").await;
    assert_eq!(status, 429);
    assert_eq!(json_body(&body)["name"], "Too Many Requests");

    // Shut down while the admitted request runs: it still gets its answer, and the host waits for it.
    server.stop.send(()).unwrap();
    let (status, _, body) = holder.await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(
        json_body(&body)["error"],
        "timeout",
        "the handler's own deadline, not a refusal"
    );
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_cache_answers_without_the_component_and_not_while_draining() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};

    let request = || {
        http::Request::get("/cached")
            .header("host", "test")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let cache = HttpCache::new(1 << 20);
    let stored = http::Response::builder()
        .header("cache-control", "s-maxage=300")
        .header("content-length", "2")
        .body(
            Full::new(Bytes::from_static(b"{}"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap();
    let pending = cache.pending(&request()).unwrap();
    cache.settle(pending, stored).await.unwrap();
    // The component traps: only the cache can answer 200.
    let router = router(
        &[("/...", "unreachable", STYLED)],
        ROOMY,
        SHORT_DEADLINE,
        Some(cache),
    );
    let address: SocketAddr = "127.0.0.1:3000".parse().unwrap();

    let hit = router.handle(request(), address, address).await;
    assert_eq!(hit.status(), 200);
    assert!(hit.headers().contains_key("age"));
    assert_eq!(hit.into_body().collect().await.unwrap().to_bytes(), "{}");

    router.admission().start_draining();
    let refused = router.handle(request(), address, address).await;
    assert_eq!(
        refused.status(),
        503,
        "a draining host refuses every request"
    );
}
