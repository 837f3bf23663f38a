"""Issue 12: a request past sbert-host's admission bound is refused at once with 429, `Retry-After` and a body
in its route family's error shape (as spin.toml's `error_bodies` configure it), and the host stays healthy."""
from __future__ import annotations

import socket
import threading
import time

import requests

from conftest import free_port, serving, unique_text

# Enough work to keep the only admission slot busy for a while: long unique sentences, never cached.
BUSY_SENTENCES = 96
BUSY_WORDS = 120
# Bounded: the probes stop once the busy request is answered, or after this many rounds.
MAX_PROBE_ROUNDS = 2000
# Bounded wait for the busy request to be admitted (polls of the metrics listener, which takes no slot).
ADMITTED_POLLS = 400


def in_flight(metrics_url: str) -> float:
    text = requests.get(metrics_url, timeout=10).text
    return float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith("http_requests_in_flight ")))


def test_a_request_over_the_bound_gets_429_with_retry_after_and_the_configured_body(tmp_path):
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    with serving(tmp_path, extra_args=["--max-concurrent-requests", "1",
                                       "--metrics-listen", f"127.0.0.1:{metrics_port}"]) as srv:
        sentences = [unique_text(f"busy {n} " + "word " * BUSY_WORDS) for n in range(BUSY_SENTENCES)]
        busy: dict = {}

        def hold_the_slot():
            busy["response"] = srv.post("/v1/encode/multiple_encode", json={"sentences": sentences})

        holder = threading.Thread(target=hold_the_slot)
        holder.start()
        refused: dict[str, requests.Response] = {}
        # A path of each family with the body its clients send.
        probes = {"/v1/ping": None, "/v1/embeddings": {"input": "x", "model": "m"},
                  "/v2/rerank": {"query": "q", "documents": ["d"]}, "/embed": {"inputs": "x"}}
        try:
            # Probe only once the busy request holds the slot (a probe in flight could take it first).
            for _ in range(ADMITTED_POLLS):
                if in_flight(metrics_url) == 1 or not holder.is_alive():
                    break
                time.sleep(0.005)
            for _ in range(MAX_PROBE_ROUNDS):
                if not holder.is_alive() or len(refused) == len(probes):
                    break
                for path, body in probes.items():
                    if path in refused:
                        continue
                    resp = srv.request("GET" if body is None else "POST", path, auth=body is not None, json=body)
                    if resp.status_code == 429:
                        refused[path] = resp
        finally:
            holder.join(timeout=120)
        assert busy["response"].status_code == 200, busy["response"].text
        assert set(refused) == set(probes), "the busy request held the only slot"

        for path, resp in refused.items():
            assert resp.headers["retry-after"] == "1", resp.headers
            assert resp.headers["content-type"].startswith("application/json"), resp.headers
            assert resp.headers["access-control-allow-origin"] == "*", resp.headers
        # The original service's shape for its routes, OpenAI's, Cohere's and TEI's for theirs.
        assert refused["/v1/ping"].json() == {
            "code": 429, "name": "Too Many Requests", "description": "the server is busy; retry in a second"}
        # The refused POST's body was never read: the host closes that connection and says so.
        assert refused["/v1/embeddings"].headers["connection"] == "close", refused["/v1/embeddings"].headers
        error = refused["/v1/embeddings"].json()["error"]
        assert error == {"message": "the server is busy; retry in a second", "type": "invalid_request_error",
                         "param": None, "code": None}
        assert refused["/v2/rerank"].json() == {"message": "the server is busy; retry in a second"}
        assert refused["/embed"].json() == {"error": "the server is busy; retry in a second",
                                            "error_type": "overloaded"}

        # Once the slot is free again, requests are admitted.
        assert srv.get("/v1/ping", auth=False).status_code == 200


def test_a_request_without_a_host_header_is_served(server):
    # HTTP/1.0 clients and load balancers' default health checks send no Host header; wasi:http needs an
    # authority, which the host takes from its listen address.
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"GET /v1/ping HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"200", answer
    assert b'"pong!"' in rest, answer
