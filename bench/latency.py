"""Sequential request latencies for `make bench`: what one client sees, request by request.

- short query: median of 100 warm `GET /v1/encode` requests for a short query, cache off;
- one 32-input `POST /v1/embeddings` against the same 32 inputs sent as 32 single requests, cache off;
- cache: a hit against a miss for the same query, cache on;
- rerank: one new query against the same 100 documents (POST /v2/rerank), with the documents in the
  key-value cache (only the query is embedded) or with the cache off (all 101 inputs are).
"""
from __future__ import annotations

import statistics
import time
import uuid

import requests

SHORT_QUERY = "hello world"


def _timed(fn) -> float:
    started = time.perf_counter()
    resp = fn()
    elapsed = time.perf_counter() - started
    resp.raise_for_status()
    return elapsed * 1000


def short_query_ms(base_url: str, key: str, samples: int = 100) -> dict:
    """Median and p90 of `samples` sequential GET /v1/encode for one short query (cache must be off)."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{base_url}/v1/encode"
    for _ in range(10):
        session.get(url, params={"query": SHORT_QUERY}, headers=headers).raise_for_status()
    times = sorted(_timed(lambda: session.get(url, params={"query": SHORT_QUERY}, headers=headers))
                   for _ in range(samples))
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))], "samples": samples}


def batch_vs_singles(base_url: str, key: str, questions: list[str], rounds: int = 5) -> dict:
    """Best-of-`rounds` time of one 32-input request against 32 sequential single requests (cache off)."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    inputs = questions[:32]
    batch, singles = [], []
    for _ in range(rounds):
        batch.append(_timed(lambda: session.post(f"{base_url}/v1/embeddings", headers=headers,
                                                 json={"model": "all-minilm-l6-v2", "input": inputs})))
        started = time.perf_counter()
        for q in inputs:
            session.get(f"{base_url}/v1/encode", params={"query": q}, headers=headers).raise_for_status()
        singles.append((time.perf_counter() - started) * 1000)
    return {"batch_ms": min(batch), "singles_ms": min(singles), "speedup": min(singles) / min(batch)}


def cache_hit_vs_miss(base_url: str, key: str, samples: int = 50) -> dict:
    """Median latency of a miss (a new query each time), of a hit in the component's key-value cache (the same
    query again, with `Cache-Control: no-cache` so that sbert-host's HTTP cache passes it on) and of a hit in the
    host's HTTP cache (the same query a third time)."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{base_url}/v1/encode"
    misses, component_hits, host_hits = [], [], []
    for _ in range(samples):
        query = f"{SHORT_QUERY} {uuid.uuid4().hex[:8]}"
        misses.append(_timed(lambda: session.get(url, params={"query": query}, headers=headers)))
        component_hits.append(_timed(lambda: session.get(
            url, params={"query": query}, headers={**headers, "Cache-Control": "no-cache"})))
        host_hits.append(_timed(lambda: session.get(url, params={"query": query}, headers=headers)))
    return {"miss_ms": statistics.median(misses), "hit_ms": statistics.median(component_hits),
            "http_hit_ms": statistics.median(host_hits)}


RERANK_DOCUMENTS = 100


def rerank_ms(base_url: str, key: str, questions: list[str], samples: int) -> dict:
    """Median and p90 of `samples` sequential POST /v2/rerank, each a query never sent before against the same
    RERANK_DOCUMENTS questions; the first request (not timed) puts the documents in the cache, when it is on."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{base_url}/v2/rerank"
    documents = questions[-RERANK_DOCUMENTS:]

    def ask(query: str) -> requests.Response:
        return session.post(url, headers=headers, json={"model": "all-minilm-l6-v2", "query": query,
                                                         "documents": documents, "top_n": 10})

    ask(f"warm-up {uuid.uuid4().hex[:8]}").raise_for_status()
    queries = [f"{question} ({uuid.uuid4().hex[:8]})" for question in questions[:samples]]
    times = sorted(_timed(lambda: ask(query)) for query in queries)
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "samples": samples, "documents": RERANK_DOCUMENTS}
