"""Issue 23: the edge build (build/sbert_service_edge.wasm, spin-edge.toml) in front of an inference origin.

Every process is real and on loopback: an origin sbert-host serving the fast build (spin.toml, the real model
and ONNX Runtime), and an edge sbert-host serving the edge build, which sends its cache misses to the origin
over outbound HTTP (sbert-host's `allowed_outbound_hosts` and connection pool). Every test that checks vectors
uses the real origin. The status-code faults (a stalled origin, an origin's 429, a destination outside the
allow-list) use tiny stub servers instead, since inference is not what they test.
"""
from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from balancer import Balancer
from conftest import (ASK_COMPONENT, LOG_SETTLE_S, MODEL_ALIAS, ROOT, Server, assert_json_error, assert_openai_error,
                      cosine, free_port, is_request_record, log_once, log_records, start_server, stop_server,
                      unique_text)
from load import Load, statuses
from smoke import assert_auth_required, assert_cache_hit_on_repeat, assert_openai_client, assert_reference
from traffic import UniqueQuestions, encode_get, multiple_encode

EDGE_MANIFEST = ROOT / "spin-edge.toml"
# The one API key of the origins: what the edges send as `inference_token`.
ORIGIN_TOKEN = "origin-token-for-edges"
MIN_COSINE = 0.9999
# The edge's `inference_timeout_seconds` in the stalled-origin test.
SHORT_TIMEOUT_S = 1


def start_origin(workdir: Path, **kw) -> Server:
    """An sbert-host serving the fast build, whose only API key is ORIGIN_TOKEN."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SPIN_VARIABLE_API_KEYS": ORIGIN_TOKEN, **kw.pop("env", {})}
    return start_server(workdir, env=env, **kw)


def start_edge(workdir: Path, inference_url: str, *, token: str = ORIGIN_TOKEN, env: dict | None = None,
               manifest: Path = EDGE_MANIFEST, **kw) -> Server:
    """An sbert-host serving the edge build against `inference_url`; clients use conftest's API keys."""
    workdir.mkdir(parents=True, exist_ok=True)
    variables = {"SPIN_VARIABLE_INFERENCE_URL": inference_url, "SPIN_VARIABLE_INFERENCE_TOKEN": token}
    return start_server(workdir, manifest=manifest, env={**variables, **(env or {})}, **kw)


@contextlib.contextmanager
def running(server: Server):
    try:
        yield server
        assert server.alive(), f"sbert-host died:\n{server.log()[-3000:]}"
    finally:
        stop_server(server)


def embedding_calls(origin: Server) -> int:
    """The origin's answered `POST /v1/embeddings`, from its request log."""
    return sum(1 for r in log_records(origin.log())
               if is_request_record(r) and r["path"] == "/v1/embeddings" and r["method"] == "POST")


def settled_embedding_calls(origin: Server) -> int:
    """`embedding_calls` once the log has stopped growing: its writer thread puts each line out just after
    the answer, so a count read right after a request may miss the last ones."""
    count = embedding_calls(origin)
    deadline = time.monotonic() + LOG_SETTLE_S
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = embedding_calls(origin)
        if again == count:
            return count
        count = again
    return count


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    with running(start_origin(tmp_path_factory.mktemp("origin"))) as server:
        yield server


@pytest.fixture(scope="module")
def edge(tmp_path_factory, origin):
    with running(start_edge(tmp_path_factory.mktemp("edge"), origin.base_url)) as server:
        yield server


# --- Answers: the reference embeddings through edge → origin ---

def test_every_reference_item_matches_sentence_transformers_through_the_edge(edge, reference):
    mean, worst = assert_reference(edge, reference, min_cosine=MIN_COSINE, mean_cosine=MIN_COSINE)
    print(f"edge → origin: cosine to reference mean {mean:.9f}, min {worst:.9f}")


def test_openai_client_through_the_edge(edge, reference):
    assert_openai_client(edge, reference, min_cosine=MIN_COSINE)


def test_the_edge_answers_what_the_origin_answers_directly(edge, origin, tokenizer):
    """Texts of every kind (empty, short, over the 256-token limit), token-id inputs and both models: the same
    vectors and token counts as the origin's own answer to the same request."""
    texts = ["", "hello world", "Où est la gare ?", "word " * 300, unique_text("edge equals origin")]
    ids = tokenizer.encode("Token ids pass through the edge as they are.", add_special_tokens=False).ids
    for model in (MODEL_ALIAS, "all-minilm-l6-v2-int8"):
        for inputs in (texts, [ids, ids[:3]]):
            body = {"model": model, "input": inputs}
            through_edge = edge.post("/v1/embeddings", json=body)
            direct = origin.post("/v1/embeddings", json=body, headers={"Authorization": f"Bearer {ORIGIN_TOKEN}"})
            assert through_edge.status_code == direct.status_code == 200, (through_edge.text, direct.text)
            a, b = through_edge.json(), direct.json()
            assert a["usage"] == b["usage"], (a["usage"], b["usage"])
            assert a["model"] == b["model"]
            for x, y in zip(a["data"], b["data"], strict=True):
                assert cosine(x["embedding"], y["embedding"]) >= 0.99999, (model, x["index"])


def test_a_request_is_one_call_to_the_origin_whatever_its_number_of_inputs(edge, origin):
    before = settled_embedding_calls(origin)
    texts = [unique_text(f"one call {n}") for n in range(7)]
    resp = edge.post("/v1/encode/multiple_encode", json={"sentences": texts})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-cache"] == "MISS"
    assert settled_embedding_calls(origin) == before + 1
    # A repeat is answered from the edge's cache: no call at all.
    again = edge.post("/v1/encode/multiple_encode", json={"sentences": texts})
    assert again.headers["x-cache"] == "HIT"
    assert settled_embedding_calls(origin) == before + 1


def test_auth_and_the_edges_own_cache(edge):
    assert_auth_required(edge)
    assert_cache_hit_on_repeat(edge)


# --- Faults ---

def assert_unavailable(resp: requests.Response, family: str) -> None:
    """503 with Retry-After, in the route family's error shape, saying nothing of the origin."""
    assert resp.status_code == 503, resp.text
    assert resp.headers.get("retry-after", "").isdigit(), resp.headers
    if family == "openai":
        error = assert_openai_error(resp, 503, code="inference_unavailable")
        message = error["message"]
    else:
        assert resp.json()["error"] == "inference_unavailable", resp.text
        message = resp.json()["message"]
    assert "127.0.0.1" not in message and ORIGIN_TOKEN not in resp.text, resp.text


def test_cache_hits_keep_answering_while_the_origin_is_down(tmp_path):
    origin = start_origin(tmp_path / "origin")
    with contextlib.ExitStack() as stack:
        stack.callback(stop_server, origin)
        edge = stack.enter_context(running(start_edge(tmp_path / "edge", origin.base_url)))
        cached = unique_text("cached before the outage")
        first = edge.get("/v1/encode", params={"query": cached}, headers=ASK_COMPONENT)
        assert first.status_code == 200 and first.headers["x-cache"] == "MISS", first.text
        origin.process.send_signal(signal.SIGKILL)
        origin.process.wait()

        hit = edge.get("/v1/encode", params={"query": cached}, headers=ASK_COMPONENT)
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT", hit.text
        assert hit.json()["encoding"] == first.json()["encoding"]
        batch = edge.post("/v1/encode/multiple_encode", json={"sentences": [cached, cached]})
        assert batch.status_code == 200 and batch.headers["x-cache"] == "HIT", batch.text

        assert_unavailable(edge.get("/v1/encode", params={"query": unique_text("a miss")}), "original")
        missed = edge.post("/v1/embeddings", json={"model": MODEL_ALIAS, "input": [cached, unique_text("miss")]})
        assert_unavailable(missed, "openai")
        assert edge.get("/v1/ping", auth=False).status_code == 200
        health = edge.get("/health", auth=False)
        assert health.status_code == 503, health.text
        log = log_once(edge, lambda log: "could not be reached" in log)
        assert f"inference service {origin.base_url} could not be reached in 3 tries" in log, log[-2000:]


def test_the_edge_starts_and_answers_without_its_origin(tmp_path):
    """The tiers start in any order: the edge's start-up check reads its variables, not the origin."""
    closed = f"http://127.0.0.1:{free_port()}"
    with running(start_edge(tmp_path, closed)) as edge:
        assert edge.get("/v1/ping", auth=False).status_code == 200
        assert_unavailable(edge.get("/v1/encode", params={"query": unique_text("no origin yet")}), "original")


def test_a_stalled_origin_is_a_503_after_the_edges_timeout(tmp_path):
    with stalled_origin() as url, \
            running(start_edge(tmp_path, url, env={"SPIN_VARIABLE_INFERENCE_TIMEOUT_SECONDS": str(SHORT_TIMEOUT_S)})) as edge:
        started = time.monotonic()
        resp = edge.get("/v1/encode", params={"query": unique_text("stalled")})
        waited = time.monotonic() - started
        assert_unavailable(resp, "original")
        # Bounds, not a speed target: the edge waited for its timeout, and not for the host's 60 s.
        assert SHORT_TIMEOUT_S <= waited < 30, waited
        log = log_once(edge, lambda log: "did not answer within" in log)
        assert f"inference service {url} did not answer within 1s" in log, log[-2000:]


def test_the_origins_429_is_passed_on_with_its_retry_after(tmp_path):
    busy = {"error": {"message": "the server is busy; retry in a second", "type": "invalid_request_error",
                      "param": None, "code": None}}
    with stub_origin(429, busy, {"Retry-After": "7"}) as stub, running(start_edge(tmp_path, stub.url)) as edge:
        resp = edge.get("/v1/encode", params={"query": unique_text("busy origin")})
        body = assert_json_error(resp, 429)
        assert resp.headers["retry-after"] == "7"
        assert body["name"] == "Too Many Requests"
        openai = edge.post("/v1/embeddings", json={"model": MODEL_ALIAS, "input": unique_text("busy")})
        assert_openai_error(openai, 429, code="inference_overloaded")
        assert openai.headers["retry-after"] == "7"
        assert stub.calls == 2, "a 429 is passed on, not retried"
        assert stub.authorizations == {f"Bearer {ORIGIN_TOKEN}"}


def test_a_wrong_inference_token_is_a_502_naming_the_cause_in_the_log(tmp_path, origin):
    wrong = "not-the-origins-token"
    with running(start_edge(tmp_path, origin.base_url, token=wrong)) as edge:
        resp = edge.get("/v1/encode", params={"query": unique_text("wrong token")})
        assert resp.status_code == 502, resp.text
        assert resp.json() == {"error": "bad_gateway",
                               "message": "The inference service could not complete the request."}
        assert_openai_error(edge.post("/v1/embeddings", json={"model": MODEL_ALIAS, "input": "x"}), 502,
                            code="bad_gateway")
        log = log_once(edge, lambda log: "inference_token" in log)
        assert re.search(r"refused the `inference_token` \(401: [^)]+\)", log), log[-2000:]
        assert wrong not in log
        served = [r["status"] for r in log_records(log) if is_request_record(r) and r["path"] != "/v1/ping"]
        assert served and 500 not in served, served


def test_a_destination_outside_allowed_outbound_hosts_is_refused(tmp_path):
    """The component's `inference_url` points at a live server the manifest does not allow: the host refuses
    the connection (wasi:http's HttpRequestDenied), logs it as Spin does, and the client gets a 502."""
    with stub_origin(200, {}, {}) as stub:
        allowed = f"http://127.0.0.1:{free_port()}"
        manifest = tmp_path / "spin-edge.toml"
        text = EDGE_MANIFEST.read_text()
        text = text.replace('allowed_outbound_hosts = ["{{ inference_url }}"]', f'allowed_outbound_hosts = ["{allowed}"]')
        text = re.sub(r'^source = "(.*)"$', lambda m: f'source = "{ROOT / m.group(1)}"', text, flags=re.M)
        assert allowed in text
        manifest.write_text(text)
        with running(start_edge(tmp_path, stub.url, manifest=manifest)) as edge:
            resp = edge.get("/v1/encode", params={"query": unique_text("not allowed")})
            assert resp.status_code == 502, resp.text
            # The host's line and the guest's are written by different writers: wait for both.
            host_line = f"Outbound network destination not allowed: {stub.url}"
            guest_line = "allowed_outbound_hosts must allow `inference_url`"
            log = log_once(edge, lambda log: host_line in log and guest_line in log)
            assert host_line in log, log[-2000:]
            assert guest_line in log, log[-2000:]
        assert stub.calls == 0


def test_a_call_lost_in_flight_is_sent_again(tmp_path, origin):
    """Between edge and origin, a proxy that reads the edge's first call and closes the connection without
    an answer, as a replica killed mid-request does, then passes calls on: the edge sends the call again, and
    the client gets the origin's answer."""
    with dropping_proxy(origin.base_url, drop=1) as proxy, running(start_edge(tmp_path, proxy.url)) as edge:
        text = unique_text("lost in flight")
        resp = edge.get("/v1/encode", params={"query": text})
        assert resp.status_code == 200, resp.text
        direct = origin.get("/v1/encode", params={"query": text}, headers={"Authorization": f"Bearer {ORIGIN_TOKEN}"})
        assert cosine(resp.json()["encoding"], direct.json()["encoding"]) >= 0.99999
        assert (proxy.dropped, proxy.passed) == (1, 1)


@pytest.mark.parametrize("variable, value, named", [
    ("INFERENCE_URL", "http://127.0.0.1:9/v1", "allowed_outbound_hosts entry `{{ inference_url }}`"),
    ("INFERENCE_URL", "127.0.0.1:9", "allowed_outbound_hosts entry `{{ inference_url }}`"),
    ("INFERENCE_TIMEOUT_SECONDS", "soon", "variable `inference_timeout_seconds`"),
])
def test_an_invalid_variable_stops_the_edge_before_it_listens(tmp_path, variable, value, named):
    with pytest.raises(RuntimeError) as refused:
        stop_server(start_edge(tmp_path, "http://127.0.0.1:9", env={f"SPIN_VARIABLE_{variable}": value}))
    assert named in str(refused.value), str(refused.value)[-2000:]


# --- Two origins behind HAProxy ---

GET_WORKERS = 6
POST_WORKERS = 3
# Batches keep an origin busy for tens of milliseconds, so that calls are in flight when it is killed.
BATCH = 16
LOAD_BEFORE_KILL_S = 2.5
LOAD_AFTER_KILL_S = 3


def test_two_origins_behind_haproxy_kill_one_under_load_loses_nothing(tmp_path):
    """edge → HAProxy (deploy/haproxy.cfg, the two origins as its replicas) → origins. `kill -9` of an origin
    under load: the edge sends a call that broke or was refused again, and the balancer sends it to the
    other origin, so no client request fails, GET or POST."""
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        origins = []
        for n, port in enumerate(ports):
            # One inference thread each: two origins, the edge, the balancer and the client share two cores.
            origins.append(start_origin(tmp_path / f"origin{n + 1}", port=port, extra_args=["--nn-threads", "1"]))
            stack.callback(stop_server, origins[-1])
        # deploy/haproxy.cfg names three replicas: the first origin stands in for the third.
        balancer = Balancer(tmp_path, [f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}", f"127.0.0.1:{ports[0]}"])
        stack.callback(balancer.stop)
        balancer.start()
        edge = stack.enter_context(running(start_edge(tmp_path / "edge", balancer.base_url)))
        unique = UniqueQuestions("edge kill")

        def next_call(worker: int, sequence: int):
            if worker < POST_WORKERS:
                return multiple_encode(unique.take(BATCH), kind="post")
            return encode_get(unique.next(), kind="get")

        edge_port = int(edge.base_url.rsplit(":", 1)[1])
        load = Load("127.0.0.1", edge_port, GET_WORKERS + POST_WORKERS, next_call).start()
        time.sleep(LOAD_BEFORE_KILL_S)
        victim = origins[1]
        served_before = [embedding_calls(o) for o in origins]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed = time.monotonic()
        time.sleep(LOAD_AFTER_KILL_S)
        outcomes = load.stop()
        failed = [o for o in outcomes if not o.ok]
        after = [o for o in outcomes if o.sent > killed + 0.5]
        lost_in_flight = len(re.findall(r' \S+/\S+/\S+/\S+/\S+ 50[234] ', balancer.log()))
        print(f"\nedge → HAProxy → 2 origins, one killed: {len(outcomes)} requests, {len(failed)} failed; "
              f"origin calls before the kill {served_before}; calls the balancer failed (the edge sent them "
              f"again) {lost_in_flight}")
        assert not failed, f"requests lost: {statuses(failed)} {[o.body[:200] for o in failed[:3]]}"
        assert all(n > 0 for n in served_before), f"both origins must have served before the kill: {served_before}"
        assert len(after) >= 10 and len(outcomes) >= 50, statuses(outcomes)
        assert all(o.headers.get("x-cache") == "MISS" for o in outcomes), "every request reached an origin"
        assert origins[0].alive()


# --- Stub origins (status-code faults only) ---

@contextlib.contextmanager
def stalled_origin():
    """A socket that accepts connections and reads requests, and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = listener.accept()
                held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


class StubOrigin:
    """An HTTP server answering every POST with one fixed status, body and headers, counting the calls."""

    def __init__(self, status: int, body: dict, headers: dict):
        stub = self
        self.calls = 0
        self.authorizations: set[str] = set()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                stub.calls += 1
                stub.authorizations.add(self.headers.get("authorization", ""))
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json",
                                    "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


class DroppingProxy:
    """An HTTP proxy in front of `target` that closes the connection of the first `drop` calls after reading
    them, without answering, and passes the others on."""

    def __init__(self, target: str, drop: int):
        proxy = self
        self.dropped = self.passed = 0
        host, port = target.removeprefix("http://").rsplit(":", 1)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if proxy.dropped < drop:
                    proxy.dropped += 1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                proxy.passed += 1
                upstream = http.client.HTTPConnection(host, int(port), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextlib.contextmanager
def dropping_proxy(target: str, drop: int):
    proxy = DroppingProxy(target, drop)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()


@contextlib.contextmanager
def stub_origin(status: int, body: dict, headers: dict):
    stub = StubOrigin(status, body, headers)
    stub.thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
