"""Issue 5: the embedding cache on a real Redis (`type = "redis"` in the runtime config), and what happens
when Redis goes away and comes back: requests keep succeeding uncached, the host warns once per incident,
and caching resumes on its own.
"""
from __future__ import annotations

import json
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import (
    ASK_COMPONENT, CACHE_ENTRY_BYTES, CACHE_RECOVERY_S, ROOT, caching_resumes, encode_get, free_port, is_embedding_key,
    is_request_record, log_once, log_records, serving, start_server, stop_server, unique_text,
)
from redis_server import RedisServer

REQUESTS_WHILE_DOWN = 25
# "One warning per incident": a reconnect attempt may add a second line, never one per request.
MAX_LINES_PER_INCIDENT = 2


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def redis_config(workdir: Path, url: str) -> None:
    """The runtime config `start_server` picks up instead of writing its SQLite one."""
    (workdir / "runtime-config.toml").write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{url}"\n')




def test_miss_then_hit_on_redis(tmp_path, redis):
    redis_config(tmp_path, redis.url)
    text, other = unique_text("redis"), unique_text("redis other")
    with serving(tmp_path) as srv:
        status, vector = encode_get(srv, text)
        assert status == "MISS"
        assert encode_get(srv, text) == ("HIT", vector)
        batch = srv.post("/v1/encode/multiple_encode", json={"sentences": [text, other]})
        assert batch.status_code == 200 and batch.headers["x-cache"] == "PARTIAL"
        assert batch.json()["data"][0]["encoded"] == vector
    buckets = [key for key in redis.keys("emb:*") if is_embedding_key(key)]
    entries = sum(redis.command("STRLEN", key) for key in buckets) / CACHE_ENTRY_BYTES
    assert entries == 2, f"one entry per distinct text: {buckets}"


def test_the_same_component_serves_both_backends(tmp_path, redis):
    manifest = tomllib.loads((ROOT / "spin.toml").read_text())
    assert manifest["component"]["sbert-service"]["source"] == "build/sbert_service.wasm"
    text = unique_text("both backends")
    vectors = {}
    for backend in ("sqlite", "redis"):
        workdir = tmp_path / backend
        workdir.mkdir()
        if backend == "redis":
            redis_config(workdir, redis.url)
        with serving(workdir) as srv:  # the repository's spin.toml: build/sbert_service.wasm, unchanged
            assert encode_get(srv, text)[0] == "MISS"
            status, vectors[backend] = encode_get(srv, text)
            assert status == "HIT"
    assert vectors["sqlite"] == vectors["redis"]


def test_the_host_starts_while_redis_is_down_and_caches_once_it_is_up(tmp_path):
    redis = RedisServer(tmp_path, port=free_port())
    redis_config(tmp_path, redis.url)
    with serving(tmp_path) as srv:
        text = unique_text("late redis")
        assert encode_get(srv, text)[0] == "MISS"
        assert encode_get(srv, text)[0] == "MISS", "nothing to cache in"
        redis.start()
        try:
            assert caching_resumes(srv, "late redis"), f"no HIT within {CACHE_RECOVERY_S}s:\n{srv.log()}"
        finally:
            redis.stop()


def other_lines(lines: list[str]) -> list[str]:
    """The output lines that are not one-per-request log lines (warnings, errors, plain text)."""
    return [line for line in lines if line.strip() and not any(map(is_request_record, log_records(line)))]


@dataclass
class Incident:
    """What happened around one Redis outage."""

    statuses_while_down: list = field(default_factory=list)
    vectors_while_down: list = field(default_factory=list)
    lines_while_down: list = field(default_factory=list)  # output lines other than request lines
    requests_logged_while_down: list = field(default_factory=list)
    recovered: bool = False
    lines_while_recovering: list = field(default_factory=list)


@dataclass
class Outages:
    cached_vector: list
    incidents: list
    keys_after: list
    log: str


@pytest.fixture(scope="module")
def outages(tmp_path_factory):
    """Runs the scenario once and records it; the tests below judge it. Redis goes down twice, so "one
    warning per incident" is told apart from "one warning per process"."""
    workdir = tmp_path_factory.mktemp("redis-outage")
    redis = RedisServer(workdir).start()
    redis_config(workdir, redis.url)
    srv = start_server(workdir)
    try:
        cached_text = unique_text("outage cached")
        assert encode_get(srv, cached_text)[0] == "MISS"
        _, cached_vector = encode_get(srv, cached_text)
        incidents = []
        for number, requests_while_down in enumerate([REQUESTS_WHILE_DOWN, 5]):
            incident = Incident()
            start = len(srv.log().splitlines())
            redis.stop()
            sent_ids = []
            for i in range(requests_while_down):
                text = cached_text if i % 2 else unique_text(f"outage {number} {i}")
                sent_ids.append(f"outage-{number}-{i}-{uuid.uuid4().hex[:8]}")
                resp = srv.get("/v1/encode", params={"query": text}, headers={**ASK_COMPONENT, "X-Request-Id": sent_ids[-1]})
                incident.statuses_while_down.append((resp.status_code, resp.headers.get("x-cache")))
                if resp.status_code == 200 and text == cached_text:
                    incident.vectors_while_down.append(resp.json()["encoding"])
            down = log_once(srv, lambda log: all(i in log for i in sent_ids)).splitlines()[start:]
            incident.lines_while_down = other_lines(down)
            incident.requests_logged_while_down = [
                r for r in log_records("\n".join(down)) if is_request_record(r) and r.get("request_id") in sent_ids
            ]
            redis.start()
            incident.recovered = caching_resumes(srv, f"recovery {number}")
            incident.lines_while_recovering = other_lines(srv.log().splitlines()[start + len(down):])
            incidents.append(incident)
        entries = [key for key in redis.keys("emb:*") if is_embedding_key(key)]
        yield Outages(cached_vector, incidents, entries, srv.log())
    finally:
        stop_server(srv)
        redis.stop()


def test_requests_succeed_uncached_while_redis_is_down(outages):
    for incident in outages.incidents:
        assert incident.statuses_while_down, "the scenario sent requests"
        assert all(status == (200, "MISS") for status in incident.statuses_while_down), incident.statuses_while_down
        assert all(vector == outages.cached_vector for vector in incident.vectors_while_down)
        assert [r.get("counted_header") for r in incident.requests_logged_while_down] == ["MISS"] * len(
            incident.statuses_while_down
        )


def level(records: list, *levels: str) -> list:
    return [r for r in records if str(r.get("level", "")).lower() in levels]


def test_the_host_warns_once_per_incident_not_once_per_request(outages):
    for number, incident in enumerate(outages.incidents):
        lines = incident.lines_while_down
        assert 1 <= len(lines) <= MAX_LINES_PER_INCIDENT, f"incident {number}: {lines}"
        warnings = level(log_records("\n".join(lines)), "warn", "warning")
        assert warnings, f"incident {number}: no warning-level JSON line: {lines}"
        assert any("unavailable" in json.dumps(r).lower() for r in warnings), warnings
        # Retrying while Redis comes back is part of the same incident: no more warnings for it.
        later = [line for line in incident.lines_while_recovering if not level(log_records(line), "info")]
        assert len(lines) + len(later) <= MAX_LINES_PER_INCIDENT, f"incident {number}: {lines + later}"


def test_writes_and_hits_resume_after_redis_restarts(outages):
    for number, incident in enumerate(outages.incidents):
        assert incident.recovered, f"incident {number}: no HIT within {CACHE_RECOVERY_S}s:\n{outages.log}"
    assert outages.keys_after, "entries were written to the restarted Redis"


def test_the_recovery_is_logged(outages):
    for number, incident in enumerate(outages.incidents):
        infos = level(log_records("\n".join(incident.lines_while_recovering)), "info")
        assert infos, f"incident {number}: no info line on recovery: {incident.lines_while_recovering}"
