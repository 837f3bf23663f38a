"""Issue 5: the per-input embedding cache in the Spin key-value store `default`, here on SQLite.

The shared `server` (its own SQLite file, default settings) serves the tests that only look at HTTP; tests that
change a cache variable, restart the host or read the SQLite file start their own host in `tmp_path`.
Every test embeds texts nobody has sent before (`unique_text`), so tests never share cache entries.
The Redis backend and store failures are in test_redis.py. GETs here carry `ASK_COMPONENT`, so that the
component answers them, not sbert-host's HTTP cache (tests/test_http_cache.py).
"""
from __future__ import annotations

import base64
import math
import re
import sqlite3
import struct
import time
import tomllib
from contextlib import closing
from pathlib import Path

import pytest

from conftest import (
    API_KEYS, ASK_COMPONENT, CACHE_ENTRY_BYTES, CACHE_STATUSES, MAX_TOKENS, MODEL_ID, ROOT, encode_get, is_embedding_key,
    serving, unique_text,
)

SERVER_TIMING_METRICS = ("tokenize", "cache", "inference")
# The contract leaves the eviction scheme open. The documented one (src/embed/cache.rs, buckets of at most
# four entries addressed by the entry's hash) never holds more than `cache_max_entries` entries, races or not.
MAX_ENTRIES = 20
MAX_ENTRIES_BOUND = MAX_ENTRIES


def cache_entries(db: Path) -> list[tuple[str, bytes]]:
    """Embedding entries (key, value) in the `default` store of a SQLite file in Spin's layout."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute("SELECT key, value FROM spin_key_value WHERE store = 'default'").fetchall()
    return [(key, value) for key, value in rows if is_embedding_key(key)]


def cached_entry_count(db: Path) -> int:
    """Entries in the store's buckets, each `CACHE_ENTRY_BYTES` long."""
    values = cache_values(db)
    assert all(len(value) % CACHE_ENTRY_BYTES == 0 for value in values), "whole entries only"
    return sum(len(value) // CACHE_ENTRY_BYTES for value in values)


def cache_values(db: Path) -> list[bytes]:
    return [value for _, value in cache_entries(db)]


def long_text(label: str, tokenizer) -> str:
    text = unique_text(label) + " The committee reviewed every quarterly budget line item." * 40
    assert len(tokenizer.encode(text).ids) > MAX_TOKENS
    return text


def cache_status(resp) -> str:
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("x-cache") in CACHE_STATUSES, resp.headers
    return resp.headers["x-cache"]


def multiple_encode(server, sentences, **extra):
    resp = server.post("/v1/encode/multiple_encode", json={"sentences": sentences, **extra})
    return cache_status(resp), [item["encoded"] for item in resp.json()["data"]]


def openai_embeddings(server, inputs, **extra):
    resp = server.post("/v1/embeddings", json={"model": MODEL_ID, "input": inputs, **extra})
    return cache_status(resp), [item["embedding"] for item in resp.json()["data"]]


def cache_control(resp) -> dict[str, str | None]:
    """`Cache-Control: max-age=N, s-maxage=M` → {"max-age": "N", "s-maxage": "M"}."""
    directives = [d.strip().lower() for d in resp.headers.get("cache-control", "").split(",") if d.strip()]
    return {name: value or None for name, _, value in (d.partition("=") for d in directives)}


def max_age(resp) -> int:
    age = cache_control(resp).get("max-age")
    assert age is not None and age.isdigit(), resp.headers
    return int(age)


def server_timing(resp) -> dict[str, float]:
    """`Server-Timing: name;dur=1.2, ...` → {name: duration}; every entry must be well-formed."""
    header = resp.headers.get("server-timing")
    assert header, f"no Server-Timing header: {dict(resp.headers)}"
    durations = {}
    for entry in header.split(","):
        name, *params = [part.strip() for part in entry.split(";")]
        assert re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name), header
        for param in params:
            key, _, value = param.partition("=")
            if key.lower() == "dur":
                assert re.fullmatch(r"\d+(\.\d+)?", value), header
                durations[name] = float(value)
    return durations


# --- Hits and misses ----------------------------------------------------------------------------------------

def test_second_identical_get_is_a_hit_with_the_identical_vector(server):
    text = unique_text("repeat")
    first, vector = encode_get(server, text)
    second, again = encode_get(server, text)
    assert (first, second) == ("MISS", "HIT")
    assert again == vector
    resp = server.post("/v1/encode", json={"query": text})
    assert cache_status(resp) == "HIT", "GET and POST of one text share an entry"
    assert resp.json()["encoding"] == vector


def test_the_key_is_the_text_as_encoded(server):
    text = unique_text("strip")
    assert encode_get(server, text)[0] == "MISS"
    # `query` is stripped before it is encoded (like the original), so the padded text is the same input.
    resp = server.post("/v1/encode", json={"query": f"  {text}\n"})
    assert cache_status(resp) == "HIT"
    assert encode_get(server, text + ".")[0] == "MISS", "a different text never hits"


def test_a_batch_reuses_single_entries_and_singles_reuse_batch_entries(server):
    a, b, c = (unique_text(f"batch {n}") for n in "abc")
    _, vec_a = encode_get(server, a)
    _, vec_b = encode_get(server, b)
    status, vectors = multiple_encode(server, [a, b, c])
    assert status == "PARTIAL"
    assert vectors[:2] == [vec_a, vec_b]
    status, again = multiple_encode(server, [c, a, b])
    assert status == "HIT"
    assert again == [vectors[2], vec_a, vec_b]
    assert encode_get(server, c) == ("HIT", vectors[2])


def test_a_batch_of_only_new_texts_is_a_miss_even_with_duplicates(server):
    a, b = unique_text("dup a"), unique_text("dup b")
    status, vectors = multiple_encode(server, [a, b, a])
    assert status == "MISS"
    assert vectors[0] == vectors[2]
    assert multiple_encode(server, [a, b, a]) == ("HIT", vectors)


def test_openai_embeddings_share_entries_with_the_original_routes(server):
    a, b = unique_text("openai a"), unique_text("openai b")
    _, vec_a = encode_get(server, a)
    status, vectors = openai_embeddings(server, [a, b])
    assert status == "PARTIAL"
    assert vectors[0] == vec_a
    assert openai_embeddings(server, [b, a]) == ("HIT", [vectors[1], vec_a])
    assert openai_embeddings(server, b) == ("HIT", [vectors[1]])
    assert encode_get(server, b) == ("HIT", vectors[1])


def test_openai_usage_token_ids_and_base64_are_unchanged_by_the_cache(server, tokenizer):
    a, b = unique_text("usage a"), unique_text("usage b")
    ids = tokenizer.encode(unique_text("usage ids"), add_special_tokens=False).ids
    payload = {"model": MODEL_ID, "input": [a, b]}
    first = server.post("/v1/embeddings", json=payload)
    again = server.post("/v1/embeddings", json=payload)
    assert (cache_status(first), cache_status(again)) == ("MISS", "HIT")
    assert again.json()["usage"] == first.json()["usage"], "token counts are kept with the vectors"
    assert first.json()["usage"]["prompt_tokens"] == sum(len(tokenizer.encode(t).ids) for t in (a, b))

    as_base64 = server.post("/v1/embeddings", json={**payload, "encoding_format": "base64"})
    assert cache_status(as_base64) == "HIT"
    for item, floats in zip(as_base64.json()["data"], first.json()["data"]):
        decoded = struct.unpack("<384f", base64.b64decode(item["embedding"]))
        assert list(decoded) == [struct.unpack("<f", struct.pack("<f", x))[0] for x in floats["embedding"]]

    token_input = {"model": MODEL_ID, "input": [ids]}
    first = server.post("/v1/embeddings", json=token_input)
    again = server.post("/v1/embeddings", json=token_input)
    assert (cache_status(first), cache_status(again)) == ("MISS", "HIT")
    assert again.json() == first.json()


def test_unicode_and_empty_texts_are_cached(server):
    texts = ["", unique_text("naïve café 東京 🙂 Ünïcödé")]
    status, vectors = multiple_encode(server, texts)
    assert status in ("MISS", "PARTIAL")  # the empty string may have been cached by another test
    assert multiple_encode(server, texts) == ("HIT", vectors)
    assert encode_get(server, texts[1]) == ("HIT", vectors[1])


def test_openai_dimensions_are_cut_from_the_cached_vector(server):
    text = unique_text("dimensions")
    _, full = encode_get(server, text)
    status, [short] = openai_embeddings(server, text, dimensions=8)
    assert status == "HIT"
    norm = math.sqrt(sum(x * x for x in full[:8]))
    assert short == pytest.approx([x / norm for x in full[:8]], abs=1e-6)


def test_similarity_routes_use_the_cache(server):
    a, b, c = (unique_text(f"similarity {n}") for n in "abc")
    assert cache_status(server.post("/v1/encode/cos_sim_weight", json={"a": a, "b": b})) == "MISS"
    assert cache_status(server.post("/v1/encode/cos_sim_weight", json={"a": b, "b": a})) == "HIT"
    assert cache_status(server.post("/v1/paraphrase", json={"sentences": [a, b, c]})) == "PARTIAL"
    assert cache_status(server.post("/v1/paraphrase", json={"sentences": [c, b, a]})) == "HIT"
    assert encode_get(server, c)[0] == "HIT"


# --- truncate is part of the key ----------------------------------------------------------------------------

def test_truncate_false_on_a_short_text_caches_the_same_vector(server):
    text = unique_text("short no truncate")
    _, vector = encode_get(server, text)
    payload = {"query": text, "truncate": False}
    first = server.post("/v1/encode", json=payload)
    cache_status(first)  # a separate entry (MISS) or the default one (HIT): both are fine for a text that fits
    second = server.post("/v1/encode", json=payload)
    assert cache_status(second) == "HIT"
    assert first.json()["encoding"] == second.json()["encoding"] == vector


def test_a_422_for_truncate_false_neither_writes_nor_reads_the_default_entry(server, tokenizer):
    text = long_text("long", tokenizer)
    strict = {"query": text, "truncate": False}

    rejected = server.post("/v1/encode", json=strict)
    assert rejected.status_code == 422, rejected.text
    assert rejected.headers.get("x-cache") != "HIT"

    first = server.post("/v1/encode", json={"query": text})
    assert cache_status(first) == "MISS", "the 422 wrote nothing"
    second = server.post("/v1/encode", json={"query": text})
    assert cache_status(second) == "HIT"
    assert second.json()["encoding"] == first.json()["encoding"]

    # The truncated vector is cached now; asking not to truncate must still fail, never serve it.
    again = server.post("/v1/encode", json=strict)
    assert again.status_code == 422, again.text
    assert again.headers.get("x-cache") != "HIT"
    assert cache_status(server.post("/v1/encode", json={"query": text})) == "HIT"


# --- Settings: TTL, size bound, model digest ----------------------------------------------------------------

def test_ttl_zero_disables_the_cache_and_writes_nothing(tmp_path):
    a, b = unique_text("ttl0 a"), unique_text("ttl0 b")
    with serving(tmp_path, env={"SPIN_VARIABLE_CACHE_TTL_SECONDS": "0"}) as srv:
        for _ in range(3):
            assert encode_get(srv, a)[0] == "MISS"
            assert multiple_encode(srv, [a, b])[0] == "MISS"
            assert openai_embeddings(srv, [b])[0] == "MISS"
        assert cached_entry_count(tmp_path / "kv.db") == 0


def test_the_ttl_sets_the_entry_s_expiry_and_max_age(tmp_path):
    # Expiry itself (an entry is a miss from its expiry on) is unit-tested with an injected clock
    # (src/embed/cache.rs); here the host's real clock only has to put the expiry `ttl` seconds after now.
    ttl = 3
    text = unique_text("ttl")
    with serving(tmp_path, env={"SPIN_VARIABLE_CACHE_TTL_SECONDS": str(ttl)}) as srv:
        before = int(time.time())
        assert encode_get(srv, text)[0] == "MISS"
        after = int(time.time())
        resp = srv.get("/v1/encode", params={"query": text}, headers=ASK_COMPONENT)
        assert cache_status(resp) == "HIT"
        assert max_age(resp) == ttl
        [value] = cache_values(tmp_path / "kv.db")
        # The value's layout (src/embed/cache.rs): sha256 of the input, then the expiry as u64 LE.
        (expires_at,) = struct.unpack_from("<Q", value, 32)
        assert before + ttl <= expires_at <= after + ttl + 1


def test_cache_max_entries_bounds_the_store(tmp_path):
    db = tmp_path / "kv.db"
    with serving(tmp_path, env={"SPIN_VARIABLE_CACHE_MAX_ENTRIES": str(MAX_ENTRIES)}) as srv:
        texts = [unique_text(f"bound {i}") for i in range(200)]
        for i, text in enumerate(texts):
            assert encode_get(srv, text)[0] == "MISS"
            if i % 25 == 24:
                assert cached_entry_count(db) <= MAX_ENTRIES_BOUND, f"after {i + 1} texts"
        assert encode_get(srv, texts[-1])[0] == "HIT", "the newest entry survives eviction"
        # One request with more new texts than the bound.
        assert multiple_encode(srv, [unique_text(f"bound batch {i}") for i in range(3 * MAX_ENTRIES)])[0] == "MISS"
        assert cached_entry_count(db) <= MAX_ENTRIES_BOUND
        assert 0 < cached_entry_count(db)


def test_a_cached_text_is_a_hit_after_a_host_restart(tmp_path):
    text = unique_text("persist")
    with serving(tmp_path) as srv:
        assert encode_get(srv, text)[0] == "MISS"
        _, vector = encode_get(srv, text)
    with serving(tmp_path) as srv:  # same runtime config, same SQLite file
        assert encode_get(srv, text) == ("HIT", vector)


def test_another_model_digest_never_serves_the_old_vectors(tmp_path):
    text, batched = unique_text("digest"), unique_text("digest batched")
    with serving(tmp_path) as srv:
        assert encode_get(srv, text)[0] == "MISS"
        assert encode_get(srv, text)[0] == "HIT"
        assert multiple_encode(srv, [batched])[0] == "MISS"
    with serving(tmp_path, env={"SPIN_VARIABLE_MODEL_DIGEST": "sha256:" + "0" * 64}) as srv:
        assert encode_get(srv, text)[0] == "MISS"
        assert multiple_encode(srv, [batched, unique_text("digest other")])[0] == "MISS"
        assert encode_get(srv, text)[0] == "HIT"
    with serving(tmp_path) as srv:
        assert encode_get(srv, text)[0] == "HIT", "the original digest's entries are still there"
        assert multiple_encode(srv, [batched])[0] == "HIT"


# --- Auth comes before any cache read ------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "Bearer not-a-key", "Basic " + API_KEYS[0], "Bearer"])
def test_unauthorized_requests_learn_nothing_from_the_cache(server, authorization):
    cached, uncached = unique_text("auth cached"), unique_text("auth uncached")
    encode_get(server, cached)
    assert encode_get(server, cached)[0] == "HIT"
    headers = {} if authorization is None else {"Authorization": authorization}

    def refused(method, path, **kw):
        resp = server.request(method, path, auth=False, headers=headers, **kw)
        assert resp.status_code == 401, resp.text
        assert "x-cache" not in resp.headers, resp.headers
        assert resp.headers.get("www-authenticate", "").lower().startswith("bearer"), resp.headers
        return resp.content

    for method, path, body in [
        ("GET", "/v1/encode", lambda t: {"params": {"query": t}}),
        ("POST", "/v1/encode", lambda t: {"json": {"query": t}}),
        ("POST", "/v1/encode/multiple_encode", lambda t: {"json": {"sentences": [t]}}),
        ("POST", "/v1/embeddings", lambda t: {"json": {"model": MODEL_ID, "input": t}}),
    ]:
        assert refused(method, path, **body(cached)) == refused(method, path, **body(uncached)), path


def test_an_unauthorized_conditional_get_is_401_not_304(server):
    text = unique_text("etag auth")
    etag = server.get("/v1/encode", params={"query": text}).headers["etag"]
    resp = server.get("/v1/encode", auth=False, params={"query": text}, headers={"If-None-Match": etag})
    assert resp.status_code == 401, resp.text
    assert "etag" not in resp.headers and "x-cache" not in resp.headers, resp.headers


# --- Response headers ----------------------------------------------------------------------------------------

def test_etag_and_if_none_match(server):
    text = unique_text("etag")
    first = server.get("/v1/encode", params={"query": text})
    etag = first.headers.get("etag")
    assert cache_status(first) == "MISS" and etag, first.headers
    assert re.fullmatch(r'(W/)?"[\x21\x23-\x7e]*"', etag), etag
    second = server.get("/v1/encode", params={"query": text})
    assert cache_status(second) == "HIT" and second.headers["etag"] == etag

    not_modified = server.get("/v1/encode", params={"query": text}, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304, not_modified.text
    assert not_modified.content == b""
    assert not_modified.headers.get("etag") == etag

    changed = server.get("/v1/encode", params={"query": text}, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.json() == first.json()
    assert server.get("/v1/encode", params={"query": unique_text("etag other")}).headers["etag"] != etag


def manifest_default(variable: str) -> int:
    return int(tomllib.loads((ROOT / "spin.toml").read_text())["variables"][variable]["default"])


def test_cache_control_gives_the_ttl_to_private_caches_and_the_shared_lifetime_to_shared_ones(server):
    text = unique_text("cache-control")
    for expected in ("MISS", "HIT"):
        resp = server.get("/v1/encode", params={"query": text}, headers=ASK_COMPONENT)
        assert cache_status(resp) == expected
        assert cache_control(resp) == {"max-age": str(manifest_default("cache_ttl_seconds")),
                                       "s-maxage": str(manifest_default("shared_cache_seconds"))}
        assert resp.headers["vary"] == "Authorization"


EMBEDDING_REQUESTS = {
    "encode GET": lambda t: ("GET", "/v1/encode", {"params": {"query": t}}),
    "encode POST": lambda t: ("POST", "/v1/encode", {"json": {"query": t}}),
    "multiple_encode": lambda t: ("POST", "/v1/encode/multiple_encode", {"json": {"sentences": [t, t + " too"]}}),
    "cos_sim_weight": lambda t: ("POST", "/v1/encode/cos_sim_weight", {"json": {"a": t, "b": [t + " too"]}}),
    "paraphrase": lambda t: ("POST", "/v1/paraphrase", {"json": {"sentences": [t, t + " too", t + " also"]}}),
    "embeddings": lambda t: ("POST", "/v1/embeddings", {"json": {"model": MODEL_ID, "input": [t]}}),
}


@pytest.mark.parametrize("route", EMBEDDING_REQUESTS)
def test_server_timing_lists_tokenize_cache_and_inference(server, route):
    method, path, kw = EMBEDDING_REQUESTS[route](unique_text(f"timing {route}"))
    for expected in ("MISS", "HIT"):
        resp = server.request(method, path, headers=ASK_COMPONENT, **kw)
        assert cache_status(resp) == expected
        durations = server_timing(resp)
        for metric in SERVER_TIMING_METRICS:
            assert metric in durations, f"{expected}: {resp.headers['server-timing']}"
            assert math.isfinite(durations[metric]) and durations[metric] >= 0
