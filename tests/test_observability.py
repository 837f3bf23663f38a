"""Issue 5: one JSON log line per request, request ids, and Prometheus metrics on `--metrics-listen`.

The request-log tests read the shared server's output (each finds its own lines by request id). The metrics
tests run their own host that nothing else talks to, so metric deltas between two scrapes are exactly what
the test in between sent.
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    CACHE_STATUSES, MODEL_ALIAS, MODEL_ID, free_port, is_request_record, log_once, log_records, start_server,
    stop_server, unique_text,
)

# Counters may be updated just after the response leaves; polls wait at most this long.
SETTLE_S = 5

METRIC_FAMILIES = {
    # family (as the exposition parser names it: counters without `_total`) → (type, required labels)
    "http_requests": ("counter", {"route", "method", "status"}),
    "http_request_duration_seconds": ("histogram", {"route"}),
    "http_response_header_values": ("counter", {"header", "value"}),
    "http_requests_in_flight": ("gauge", set()),
    "nn_inference_duration_seconds": ("histogram", set()),
    "nn_inference_batch_size": ("histogram", set()),
    "nn_tokens_processed": ("counter", set()),
    "nn_positions_run": ("counter", set()),
    "nn_queued_tokens": ("gauge", set()),
    "nn_queue_wait_seconds": ("histogram", set()),
    "nn_model_load_seconds": ("gauge", {"graph"}),
    "log_lines_dropped": ("counter", set()),
}

# The response header spin.toml names as counted (`counted_header`), as the metrics label it.
COUNTED_HEADER = "x-cache"


@pytest.fixture(scope="module")
def metered(tmp_path_factory):
    metrics_port = free_port()
    srv = start_server(tmp_path_factory.mktemp("metrics"),
                       extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"])
    srv.metrics = f"http://127.0.0.1:{metrics_port}"
    yield srv
    assert srv.alive(), srv.log()
    stop_server(srv)


def request_record(srv, request_id: str) -> dict:
    """The one request line logged for `request_id`."""
    log = log_once(srv, lambda log: request_id in log)
    found = [r for r in log_records(log) if is_request_record(r) and r.get("request_id") == request_id]
    assert len(found) == 1, f"{request_id}: {found}"
    return found[0]


class Scrape:
    """One parsed /metrics response."""

    def __init__(self, text: str):
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def samples(self, name: str, **labels):
        """`name`'s samples (`x_total`, `x_bucket`, ...) whose labels include `labels`."""
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    yield sample

    def value(self, name: str, **labels) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
        return sum(sample.value for sample in self.samples(name, **labels))


def scrape(srv) -> Scrape:
    resp = requests.get(srv.metrics + "/metrics", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain"), resp.headers
    return Scrape(resp.text)


def scrape_when(srv, settled) -> Scrape:
    """Scrapes until `settled(scrape)` holds or SETTLE_S passes; returns the last scrape either way."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        current = scrape(srv)
        if settled(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


COUNTED = (
    "nn_inference_duration_seconds_count",
    "nn_inference_batch_size_count",
    "nn_inference_batch_size_sum",
    "nn_tokens_processed_total",
    "nn_positions_run_total",
)


# --- Request log -----------------------------------------------------------------------------------------

def test_every_request_writes_one_json_line_with_its_fields(server):
    cases = [
        ("GET", "/v1/ping", {}, True),
        ("GET", "/v1/encode", {"params": {"query": unique_text("log")}}, True),
        ("POST", "/v1/encode/multiple_encode", {"json": {"sentences": [unique_text("log batch")]}}, True),
        ("GET", "/v1/encode", {"params": {"query": "x"}}, False),  # 401
        ("GET", "/v1/no-such-route", {}, True),  # 404
        ("POST", "/v1/encode", {"data": b"{oops"}, True),  # 400
        ("OPTIONS", "/v1/encode", {}, False),  # 200 preflight
    ]
    for method, path, kw, auth in cases:
        request_id = f"obs-{uuid.uuid4().hex}"
        resp = server.request(method, path, auth=auth, headers={"X-Request-Id": request_id}, **kw)
        record = request_record(server, request_id)
        assert record["method"] == method
        assert record["path"] == path
        assert record["status"] == resp.status_code
        assert isinstance(record["duration_ms"], (int, float)) and record["duration_ms"] >= 0
        assert record["counted_header"] == resp.headers.get("x-cache", "-"), (path, record)
        logged_at = datetime.fromisoformat(record["timestamp"])
        assert logged_at.tzinfo is not None, record["timestamp"]
        assert abs(time.time() - logged_at.timestamp()) < 3600, "the time is now, not some other clock"


def test_the_query_string_is_never_logged(server):
    secret = f"sk-live-{uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"
    request_id = f"obs-{uuid.uuid4().hex}"
    resp = server.get("/v1/encode", params={"query": secret, "access_token": token},
                        headers={"X-Request-Id": request_id})
    assert resp.status_code == 200, resp.text
    assert request_record(server, request_id)["path"] == "/v1/encode"
    log = server.log()
    assert secret not in log and token not in log


def test_the_counted_header_field_follows_x_cache(server):
    a, b = unique_text("log cache a"), unique_text("log cache b")
    for method, path, kw, expected in [
        ("GET", "/v1/encode", {"params": {"query": a}}, "MISS"),
        ("GET", "/v1/encode", {"params": {"query": a}}, "HIT"),
        ("POST", "/v1/embeddings", {"json": {"model": MODEL_ID, "input": [a, b]}}, "PARTIAL"),
        ("GET", "/v1/ping", {}, "-"),
    ]:
        request_id = f"obs-{uuid.uuid4().hex}"
        resp = server.request(method, path, headers={"X-Request-Id": request_id}, **kw)
        assert resp.headers.get("x-cache", "-") == expected
        assert request_record(server, request_id)["counted_header"] == expected


def test_a_sent_request_id_is_echoed_and_logged(server):
    request_id = f"client-{uuid.uuid4().hex}"
    resp = server.get("/v1/ping", headers={"X-Request-Id": request_id})
    assert resp.headers["x-request-id"] == request_id
    assert request_record(server, request_id)["status"] == 200


def sane_request_id(value: str) -> bool:
    return 1 <= len(value) <= 128 and all(33 <= ord(c) <= 126 for c in value)


def test_a_missing_request_id_is_generated_returned_and_logged(server):
    ids = []
    for _ in range(2):
        resp = server.get("/v1/ping")
        request_id = resp.headers.get("x-request-id", "")
        assert sane_request_id(request_id), resp.headers
        assert request_record(server, request_id)["path"] == "/v1/ping"
        ids.append(request_id)
    assert ids[0] != ids[1]


@pytest.mark.parametrize("bad", ["x" * 200, "has space", ""])
def test_an_unusable_request_id_is_replaced(server, bad):
    resp = server.get("/v1/ping", headers={"X-Request-Id": bad})
    request_id = resp.headers.get("x-request-id", "")
    assert request_id != bad and sane_request_id(request_id), resp.headers
    request_record(server, request_id)


# --- Metrics ---------------------------------------------------------------------------------------------

def test_metrics_are_prometheus_text_with_the_contract_families(metered):
    metered.get("/v1/encode", params={"query": unique_text("metrics families")})
    current = scrape(metered)
    for name, (kind, labels) in METRIC_FAMILIES.items():
        assert name in current.families, f"{name} missing; have {sorted(current.families)}"
        family = current.families[name]
        assert family.type == kind, (name, family.type)
        assert family.samples, name
        for sample in family.samples:
            assert labels <= sample.labels.keys(), (name, sample)
    for sample in current.families["http_requests"].samples:
        assert sample.name == "http_requests_total"


@pytest.mark.parametrize("path", ["/", "/metrics/extra", "/v1/encode", "/metricsx"])
def test_the_metrics_listener_serves_only_metrics(metered, path):
    assert requests.get(metered.metrics + path, timeout=10).status_code == 404


def test_model_load_time_is_a_gauge_per_graph(metered):
    loaded = list(scrape(metered).samples("nn_model_load_seconds", graph=MODEL_ALIAS))
    assert len(loaded) == 1 and loaded[0].value > 0, loaded


def test_request_counters_and_latency_move_by_route_and_status(metered):
    before = scrape(metered)
    secret_query = f"sk-live-{uuid.uuid4().hex}"
    stray = [f"/v1/stray-{uuid.uuid4().hex}" for _ in range(3)]
    assert metered.get("/v1/encode", params={"query": secret_query}).status_code == 200
    assert metered.get("/v1/encode", params={"query": secret_query}).status_code == 200
    assert metered.get("/v1/encode", auth=False, params={"query": "x"}).status_code == 401
    for path in stray:
        assert metered.get(path).status_code == 404
    sent = 6

    def delta(current, name, **labels):
        return current.value(name, **labels) - before.value(name, **labels)

    after = scrape_when(metered, lambda s: delta(s, "http_request_duration_seconds_count") >= sent)
    assert delta(after, "http_requests_total") == sent
    assert delta(after, "http_requests_total", method="GET", status="200") == 2
    assert delta(after, "http_requests_total", method="GET", status="401") == 1
    assert delta(after, "http_requests_total", method="GET", status="404") == 3
    assert delta(after, "http_request_duration_seconds_count") == sent
    assert delta(after, "http_request_duration_seconds_sum") > 0

    routes = {s.labels["route"] for s in after.samples("http_requests_total")}
    encode_moved = {route: delta(after, "http_requests_total", route=route, method="GET", status="200")
                    for route in routes}
    encode_routes = [route for route, moved in encode_moved.items() if moved]
    # The contract allows the manifest's route pattern (`/...`) or the path family as the label.
    assert encode_routes in (["/v1/encode"], ["/..."]) and encode_moved[encode_routes[0]] == 2, encode_moved
    for route in routes:
        assert "?" not in route and secret_query not in route and not any(p in route for p in stray), route
    before_routes = {s.labels["route"] for s in before.samples("http_requests_total")}
    assert len(routes - before_routes) <= 2, f"raw paths became route labels: {routes - before_routes}"

    for route in routes:
        buckets = sorted(
            ((float(s.labels["le"]), s.value) for s in after.samples("http_request_duration_seconds_bucket",
                                                                        route=route)),
        )
        counts = [count for _, count in buckets]
        assert buckets and buckets[-1][0] == float("inf"), route
        assert counts == sorted(counts), f"{route}: buckets are not cumulative"
        assert counts[-1] == after.value("http_request_duration_seconds_count", route=route)


def test_inference_token_batch_and_cache_metrics_follow_the_work_done(metered, tokenizer):
    a, b, c = (unique_text(f"metrics work {n}") for n in "abc")

    def tokens(*texts):
        return sum(len(tokenizer.encode(t).ids) for t in texts)

    def work(send) -> dict:
        """What one request moved: the COUNTED metrics and the cache responses by status."""
        before = scrape(metered)
        resp = send()
        assert resp.status_code == 200, resp.text
        after = scrape_when(metered, lambda s: s.value("http_response_header_values_total", header=COUNTED_HEADER)
                            > before.value("http_response_header_values_total", header=COUNTED_HEADER))
        moved = {name: after.value(name) - before.value(name) for name in COUNTED}
        for status in CACHE_STATUSES:
            labels = {"header": COUNTED_HEADER, "value": status}
            moved[status] = (after.value("http_response_header_values_total", **labels)
                             - before.value("http_response_header_values_total", **labels))
        return moved

    miss = work(lambda: metered.get("/v1/encode", params={"query": a}))
    assert miss["nn_inference_duration_seconds_count"] >= 1
    assert miss["nn_inference_batch_size_sum"] == 1, "one row embedded"
    assert miss["nn_tokens_processed_total"] == tokens(a)
    assert miss["nn_positions_run_total"] == tokens(a), "one row runs unpadded"
    assert (miss["MISS"], miss["HIT"], miss["PARTIAL"]) == (1, 0, 0)

    hit = work(lambda: metered.get("/v1/encode", params={"query": a}))
    assert hit["nn_inference_duration_seconds_count"] == 0, "a HIT runs no inference"
    assert hit["nn_inference_batch_size_count"] == 0
    assert hit["nn_tokens_processed_total"] == 0
    assert hit["nn_positions_run_total"] == 0
    assert (hit["MISS"], hit["HIT"], hit["PARTIAL"]) == (0, 1, 0)

    partial = work(lambda: metered.post("/v1/encode/multiple_encode", json={"sentences": [a, b, c]}))
    assert partial["nn_inference_batch_size_sum"] == 2, "only the two new texts are embedded"
    assert partial["nn_inference_batch_size_count"] >= 1
    assert partial["nn_inference_duration_seconds_count"] == partial["nn_inference_batch_size_count"]
    assert partial["nn_tokens_processed_total"] == tokens(b, c)
    # Together the two rows pad to the longer one; apart, neither is padded.
    assert tokens(b, c) <= partial["nn_positions_run_total"] <= 2 * max(tokens(b), tokens(c))
    assert (partial["MISS"], partial["HIT"], partial["PARTIAL"]) == (0, 0, 1)


# More request lines than the host queues for a slow stderr (host/src/log.rs) plus what a pipe buffers.
UNREAD_LOG_REQUESTS = 6000


def test_a_stderr_nobody_reads_never_stalls_serving(tmp_path):
    """The host's stderr is a pipe nobody reads: once it is full, writing a line would block. Every
    request must still be answered (the front thread logs every request); lines that do not fit are dropped
    and counted, and what does reach the pipe is whole JSON lines."""
    metrics_port = free_port()
    srv = start_server(tmp_path, extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"],
                       stderr=subprocess.PIPE)
    try:
        # Answered from sbert-host's HTTP cache on its front thread, which logs each one.
        statuses = [srv.session.get(srv.url("/v1/encode"), params={"query": "unread log"}, headers=srv.auth(),
                                    timeout=10).status_code
                    for _ in range(UNREAD_LOG_REQUESTS)]
        assert statuses == [200] * UNREAD_LOG_REQUESTS
        dropped = Scrape(requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text)
        assert dropped.value("log_lines_dropped_total") > 0, "the pipe cannot have held every line"
    finally:
        stop_server(srv)
    lines = srv.process.stderr.read().decode().splitlines()
    assert lines, "the lines that fitted are there"
    for line in lines:
        assert isinstance(json.loads(line), dict), line
