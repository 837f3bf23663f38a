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
use crate::http::answers::AnswerStyle;
use crate::http::config::HttpTool;
use crate::http::guest::{start_epoch_ticker, RequestLimits, ServedComponent};
use crate::http::layer::{Guard, HostResponse, Layer, Refusal};
use crate::http::router::Router;
use crate::unit::ComponentIndex;

/// A wasi:http handler component whose `handle` runs the core wasm `body` (its locals 0 and 1 are the request and
/// the response outparam) and sets no response unless `body` calls `$respond`.
fn handler(body: &str) -> String {
    format!("{HANDLER_HEAD}(func (export \"handle\") (param i32 i32) {body}){HANDLER_TAIL}")
}

/// `(call $respond (local.get 1) (i32.const chunks))` answers 200 and then, with the response head sent,
/// writes `chunks` × [`CHUNK`] bytes of `x` to its body (chunked: it has no `Content-Length`), each write
/// waiting until the previous one was taken: a body streamed from the guest while hyper sends it.
const HANDLER_HEAD: &str = r#"(component $handler-component
    (import "wasi:io/error@0.2.0" (instance $io-error (export "error" (type (sub resource)))))
    (alias export $io-error "error" (type $error))
    (import "wasi:io/streams@0.2.0" (instance $streams
        (alias outer $handler-component $error (type $outer-error))
        (export "error" (type $error (eq $outer-error)))
        (export "output-stream" (type $output-stream (sub resource)))
        (type $stream-error-def (variant (case "last-operation-failed" (own $error)) (case "closed")))
        (export "stream-error" (type $stream-error (eq $stream-error-def)))
        (export "[method]output-stream.blocking-write-and-flush" (func
            (param "self" (borrow $output-stream)) (param "contents" (list u8))
            (result (result (error $stream-error)))))))
    (alias export $streams "output-stream" (type $output-stream))
    (import "wasi:http/types@0.2.0" (instance $types
        (alias outer $handler-component $output-stream (type $outer-output-stream))
        (export "output-stream" (type $output-stream (eq $outer-output-stream)))
        (export "fields" (type $fields (sub resource)))
        (export "headers" (type $headers (eq $fields)))
        (export "trailers" (type $trailers (eq $fields)))
        (export "incoming-request" (type (sub resource)))
        (export "outgoing-response" (type $outgoing-response (sub resource)))
        (export "outgoing-body" (type $outgoing-body (sub resource)))
        (export "response-outparam" (type $response-outparam (sub resource)))
        (type $dns-def (record (field "rcode" (option string)) (field "info-code" (option u16))))
        (export "DNS-error-payload" (type $dns (eq $dns-def)))
        (type $tls-def (record (field "alert-id" (option u8)) (field "alert-message" (option string))))
        (export "TLS-alert-received-payload" (type $tls (eq $tls-def)))
        (type $field-size-def (record (field "field-name" (option string)) (field "field-size" (option u32))))
        (export "field-size-payload" (type $field-size (eq $field-size-def)))
        (type $error-code-def (variant
            (case "DNS-timeout") (case "DNS-error" $dns) (case "destination-not-found")
            (case "destination-unavailable") (case "destination-IP-prohibited")
            (case "destination-IP-unroutable") (case "connection-refused") (case "connection-terminated")
            (case "connection-timeout") (case "connection-read-timeout") (case "connection-write-timeout")
            (case "connection-limit-reached") (case "TLS-protocol-error") (case "TLS-certificate-error")
            (case "TLS-alert-received" $tls) (case "HTTP-request-denied")
            (case "HTTP-request-length-required") (case "HTTP-request-body-size" (option u64))
            (case "HTTP-request-method-invalid") (case "HTTP-request-URI-invalid")
            (case "HTTP-request-URI-too-long") (case "HTTP-request-header-section-size" (option u32))
            (case "HTTP-request-header-size" (option $field-size))
            (case "HTTP-request-trailer-section-size" (option u32))
            (case "HTTP-request-trailer-size" $field-size) (case "HTTP-response-incomplete")
            (case "HTTP-response-header-section-size" (option u32))
            (case "HTTP-response-header-size" $field-size) (case "HTTP-response-body-size" (option u64))
            (case "HTTP-response-trailer-section-size" (option u32))
            (case "HTTP-response-trailer-size" $field-size)
            (case "HTTP-response-transfer-coding" (option string))
            (case "HTTP-response-content-coding" (option string)) (case "HTTP-response-timeout")
            (case "HTTP-upgrade-failed") (case "HTTP-protocol-error") (case "loop-detected")
            (case "configuration-error") (case "internal-error" (option string))))
        (export "error-code" (type $error-code (eq $error-code-def)))
        (export "[constructor]fields" (func (result (own $fields))))
        (export "[constructor]outgoing-response" (func
            (param "headers" (own $headers)) (result (own $outgoing-response))))
        (export "[method]outgoing-response.body" (func
            (param "self" (borrow $outgoing-response)) (result (result (own $outgoing-body)))))
        (export "[method]outgoing-body.write" (func
            (param "self" (borrow $outgoing-body)) (result (result (own $output-stream)))))
        (export "[static]outgoing-body.finish" (func
            (param "this" (own $outgoing-body)) (param "trailers" (option (own $trailers)))
            (result (result (error $error-code)))))
        (export "[static]response-outparam.set" (func
            (param "param" (own $response-outparam))
            (param "response" (result (own $outgoing-response) (error $error-code)))))))
    (alias export $types "incoming-request" (type $request))
    (alias export $types "response-outparam" (type $outparam))
    ;; `realloc` is for the strings an error-code may carry back, which these guests never get.
    (core module $memory-module
        (memory (export "memory") 1)
        (global $free (mut i32) (i32.const 16384))
        (func (export "realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
            (local $at i32)
            (local.set $at (i32.and (i32.add (global.get $free) (i32.const 7)) (i32.const -8)))
            (global.set $free (i32.add (local.get $at) (local.get $size)))
            (local.get $at)))
    (core instance $memory-instance (instantiate $memory-module))
    (alias core export $memory-instance "memory" (core memory $memory))
    (alias core export $memory-instance "realloc" (core func $realloc))
    (core func $new-fields (canon lower (func $types "[constructor]fields")))
    (core func $new-response (canon lower (func $types "[constructor]outgoing-response")))
    (core func $response-body (canon lower (func $types "[method]outgoing-response.body") (memory $memory)))
    (core func $body-write (canon lower (func $types "[method]outgoing-body.write") (memory $memory)))
    (core func $body-finish (canon lower (func $types "[static]outgoing-body.finish")
        (memory $memory) (realloc $realloc)))
    (core func $set-response (canon lower (func $types "[static]response-outparam.set") (memory $memory)))
    (core func $write (canon lower (func $streams "[method]output-stream.blocking-write-and-flush")
        (memory $memory)))
    (core func $drop-stream (canon resource.drop $output-stream))
    (core module $m
        (import "host" "memory" (memory 1))
        (import "host" "new-fields" (func $new-fields (result i32)))
        (import "host" "new-response" (func $new-response (param i32) (result i32)))
        (import "host" "response-body" (func $response-body (param i32 i32)))
        (import "host" "body-write" (func $body-write (param i32 i32)))
        (import "host" "body-finish" (func $body-finish (param i32 i32 i32 i32)))
        (import "host" "set-response" (func $set-response (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
        (import "host" "write" (func $write (param i32 i32 i32 i32)))
        (import "host" "drop-stream" (func $drop-stream (param i32)))
        ;; Results come back at address 0 (a result's case at 0, its value at 4); the chunk is at 4096.
        (func $respond (param $outparam i32) (param $chunks i32)
            (local $response i32) (local $body i32) (local $stream i32)
            (memory.fill (i32.const 4096) (i32.const 120) (i32.const 4096))
            (local.set $response (call $new-response (call $new-fields)))
            (call $response-body (local.get $response) (i32.const 0))
            (local.set $body (i32.load (i32.const 4)))
            (call $body-write (local.get $body) (i32.const 0))
            (local.set $stream (i32.load (i32.const 4)))
            (call $set-response (local.get $outparam) (i32.const 0) (local.get $response)
                (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
            (block $written
                (loop $chunk
                    (br_if $written (i32.eqz (local.get $chunks)))
                    (call $write (local.get $stream) (i32.const 4096) (i32.const 4096) (i32.const 0))
                    (if (i32.load8_u (i32.const 0)) (then unreachable))
                    (local.set $chunks (i32.sub (local.get $chunks) (i32.const 1)))
                    (br $chunk)))
            (call $drop-stream (local.get $stream))
            (call $body-finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 0)))
        "#;

const HANDLER_TAIL: &str = r#")
    (core instance $i (instantiate $m (with "host" (instance
        (export "memory" (memory $memory))
        (export "new-fields" (func $new-fields))
        (export "new-response" (func $new-response))
        (export "response-body" (func $response-body))
        (export "body-write" (func $body-write))
        (export "body-finish" (func $body-finish))
        (export "set-response" (func $set-response))
        (export "write" (func $write))
        (export "drop-stream" (func $drop-stream))))))
    (func $handle (param "request" (own $request)) (param "response-out" (own $outparam))
        (canon lift (core func $i "handle")))
    (instance $handler
        (export "incoming-request" (type $request))
        (export "response-outparam" (type $outparam))
        (export "handle" (func $handle)))
    (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#;

/// The bytes of each write of `$respond` (the 4096 in its WAT).
const CHUNK: usize = 4096;

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

/// Serves `router` on a free port.
async fn start(router: Arc<Router>) -> Server {
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

/// A router for `routes` (route, handler body, manifest section), with `layers` on the request path.
fn router(
    routes: &[(&str, &str, &str)],
    layers: Vec<Arc<dyn Layer>>,
    deadline: Duration,
) -> Arc<Router> {
    let engine = Engine::new(Config::new().epoch_interruption(true)).unwrap();
    start_epoch_ticker(&engine).unwrap();
    let mut linker = Linker::new(&engine);
    crate::instance::add_to_linker(&mut linker).unwrap();
    let routes = routes
        .iter()
        .enumerate()
        .map(|(index, (route, body, tool))| {
            let component = Component::new(&engine, handler(body)).unwrap();
            let pre = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
            let tool: HttpTool = toml::from_str(tool).unwrap();
            let served = ServedComponent {
                id: route.trim_matches(|c| c == '/' || c == '.').to_string(),
                index: ComponentIndex(index),
                pre,
                units: Arc::new([]),
                answers: AnswerStyle::of(&tool),
                counted_header: None,
            };
            (route.to_string(), Arc::new(served))
        })
        .collect();
    let request_limits = RequestLimits {
        timeout: deadline,
        memory: 1 << 20,
    };
    Arc::new(
        Router::new(
            routes,
            request_limits,
            layers,
            tokio::runtime::Handle::current(),
        )
        .unwrap(),
    )
}

/// Short enough for the tests of timeouts to be quick.
const SHORT_DEADLINE: Duration = Duration::from_millis(300);

/// Lets one request run at a time, and refuses the others with 429.
#[derive(Default)]
struct OneAtATime(Arc<std::sync::atomic::AtomicBool>);

/// Frees [`OneAtATime`]'s place.
struct Running(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Layer for OneAtATime {
    fn admit(&self, _: &http::request::Parts) -> Result<Option<Guard>, Refusal> {
        if self.0.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Err(Refusal {
                status: http::StatusCode::TOO_MANY_REQUESTS,
                kind: "overloaded",
                message: "the server is busy; retry in a second",
                reason: "test",
            });
        }
        Ok(Some(Box::new(Running(self.0.clone()))))
    }
}

/// Answers `GET /cached` itself with `{}`, as the HTTP cache answers what it holds.
struct Stored;

impl Layer for Stored {
    fn answer(&self, request: &http::request::Parts, _: ComponentIndex) -> Option<HostResponse> {
        use http_body_util::{BodyExt, Full};
        (request.uri.path() == "/cached").then(|| {
            http::Response::builder()
                .header("age", "0")
                .body(
                    Full::new(bytes::Bytes::from_static(b"{}"))
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .unwrap()
        })
    }
}

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

/// The payload of a body in HTTP/1.1's chunked coding.
fn dechunk(mut body: &str) -> String {
    let mut payload = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return payload;
        }
        payload.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_json_errors_in_the_configured_shape_with_a_request_id() {
    let server = start(router(
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
        Vec::new(),
        SHORT_DEADLINE,
    ))
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
async fn a_refused_request_is_answered_at_once_and_admitted_ones_drain_on_shutdown() {
    // The handler spins until its deadline, holding the only permit meanwhile. The deadline is ten
    // times the head start the holder gets, so that on a loaded machine (cargo runs tests in
    // parallel) the holder is surely admitted before, and still running after, the requests that
    // must be refused (with 300 ms and a 100 ms head start, a CI run once saw it finish first).
    let deadline = Duration::from_secs(3);
    let server = start(router(
        &[("/...", "(loop (br 0))", STYLED)],
        vec![Arc::new(OneAtATime::default())],
        deadline,
    ))
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
async fn a_layer_answers_without_the_component_and_not_while_draining() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};

    let request = || {
        http::Request::get("/cached")
            .header("host", "test")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // The component traps: only the layer can answer 200.
    let router = router(
        &[("/...", "unreachable", STYLED)],
        vec![Arc::new(Stored)],
        SHORT_DEADLINE,
    );
    let address: SocketAddr = "127.0.0.1:3000".parse().unwrap();

    let hit = router.handle(request(), address, address).await;
    assert_eq!(hit.status(), 200);
    assert!(hit.headers().contains_key("age"));
    assert_eq!(hit.into_body().collect().await.unwrap().to_bytes(), "{}");

    router.start_draining();
    let refused = router.handle(request(), address, address).await;
    assert_eq!(
        refused.status(),
        503,
        "a draining host refuses every request"
    );
}

#[test]
fn the_front_answers_stored_answers_and_host_answers_while_every_component_worker_is_busy() {
    // Components get a runtime of their own with two workers, the clients (and `serve`'s task) another: each
    // spinning guest below holds a component worker until its deadline, and nothing else needs those workers.
    let components = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Duration::from_secs(3);
    let router = clients.block_on(async {
        // `router` hands misses to the runtime it is built in.
        let _components = components.enter();
        router(
            &[
                ("/spin", "(loop (br 0))", ""),
                ("/cached", "unreachable", ""),
            ],
            vec![Arc::new(Stored)],
            deadline,
        )
    });
    clients.block_on(async {
        let server = start(router.clone()).await;
        let address = server.address;
        let spinners = [
            tokio::spawn(get(address, "/spin", "")),
            tokio::spawn(get(address, "/spin", "")),
        ];
        while router.in_flight() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let (status, head, body) = get(address, "/cached", "").await;
        assert_eq!((status, body.as_str()), (200, "{}"));
        assert!(head.contains("age: "), "{head}");
        let (status, _, _) = get(address, "/nowhere", "").await;
        assert_eq!(status, 404);
        assert!(
            spinners.iter().all(|spinner| !spinner.is_finished()),
            "the front answered only after a guest stopped: it waited for the component runtime"
        );

        for spinner in spinners {
            let (status, _, body) = spinner.await.unwrap();
            assert_eq!(
                (status, json_body(&body)["error"].clone()),
                (503, json!("timeout"))
            );
        }
        server.stop.send(()).unwrap();
        server.task.await.unwrap().unwrap();
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_streams_from_the_guest_through_the_front_and_finishes_while_draining() {
    // 16 MiB, more than loopback's socket buffers take (4 MiB to send at most): a guest's writes wait for
    // its client's reading, so the slow client's answer is still streaming when the host drains.
    const CHUNKS: usize = 4096;
    let respond = format!("(call $respond (local.get 1) (i32.const {CHUNKS}))");
    let server = start(router(
        &[("/stream", &respond, "")],
        Vec::new(),
        Duration::from_secs(30),
    ))
    .await;
    let address = server.address;

    // One client reads the start of its answer and stops reading, its guest still writing...
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut start = [0; 1024];
    let started = slow.read(&mut start).await.unwrap();
    assert!(start[..started].starts_with(b"HTTP/1.1 200"));

    // ... while another gets the whole body, streamed: chunked, with no length known up front.
    let (status, head, body) = get(address, "/stream", "").await;
    assert_eq!(status, 200);
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let body = dechunk(&body);
    assert_eq!(body.len(), CHUNKS * CHUNK);
    assert!(body.bytes().all(|byte| byte == b'x'));

    // Shut down: the slow client still gets the rest of its answer, and the host waits for it.
    server.stop.send(()).unwrap();
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest).await.unwrap();
    let response = String::from_utf8([&start[..started], &rest[..]].concat()).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    assert_eq!(dechunk(body).len(), CHUNKS * CHUNK);
    server.task.await.unwrap().unwrap();
}
