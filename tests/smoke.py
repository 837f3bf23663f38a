"""Checks every component build must pass on a live server, whichever backend computes its embeddings.

Each build's test module starts sbert-host with its manifest and calls these: the fast build's own tests go
further, these are the set the other builds (spin-llm, portable) share.
"""
from __future__ import annotations

import statistics
from urllib.parse import quote

from conftest import DIMENSIONS, MODEL_ALIAS, Server, assert_json_error, cosine, unique_text


def reference_cosines(server: Server, reference: dict) -> list[float]:
    """Per reference item, its lowest cosine to sentence-transformers served two ways: all items in one
    multiple_encode request, where texts of every length share a request (the server must not have seen
    them: the request must be a cache MISS), then one request per item (GET /v1/encode; the empty string,
    which that refuses, through multiple_encode), which the cache may answer."""
    texts = [item["text"] for item in reference["items"]]
    resp = server.post("/v1/encode/multiple_encode", json={"sentences": texts})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-cache"] == "MISS", "the reference texts must reach the model: use a fresh server"
    together = [encoded["encoded"] for encoded in resp.json()["data"]]
    alone = []
    for text in texts:
        if text.strip():
            resp = server.get("/v1/encode?query=" + quote(text, safe=""))
            assert resp.status_code == 200, (text[:40], resp.text)
            alone.append(resp.json()["encoding"])
        else:
            resp = server.post("/v1/encode/multiple_encode", json={"sentences": [text]})
            assert resp.status_code == 200, resp.text
            alone.append(resp.json()["data"][0]["encoded"])
    assert len(together) == len(alone) == len(texts)
    cosines = []
    for item, one, other in zip(reference["items"], together, alone):
        assert len(one) == len(other) == DIMENSIONS
        cosines.append(min(cosine(one, item["embedding"]), cosine(other, item["embedding"])))
    return cosines


def assert_reference(server: Server, reference: dict, *, min_cosine: float, mean_cosine: float) -> tuple[float, float]:
    """Every reference item at least `min_cosine`, their mean at least `mean_cosine`; returns (mean, min)."""
    cosines = reference_cosines(server, reference)
    texts = [item["text"][:40] for item in reference["items"]]
    worst = min(range(len(cosines)), key=cosines.__getitem__)
    assert cosines[worst] >= min_cosine, f"{texts[worst]!r}: cosine {cosines[worst]}"
    mean = statistics.fmean(cosines)
    assert mean >= mean_cosine, f"mean cosine {mean}"
    return mean, cosines[worst]


def assert_auth_required(server: Server) -> None:
    """No token, a wrong token: 401 JSON with `WWW-Authenticate: Bearer`; public routes stay public."""
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        resp = server.get("/v1/encode", auth=False, params={"query": "hello"}, headers=headers)
        assert_json_error(resp, 401)
        assert resp.headers["www-authenticate"].lower().startswith("bearer"), resp.headers
    assert server.get("/v1/ping", auth=False).status_code == 200


def assert_cache_hit_on_repeat(server: Server) -> None:
    """A new text is a MISS, the same text again a HIT with the same vector."""
    text = unique_text("smoke")
    first = server.get("/v1/encode", params={"query": text})
    again = server.get("/v1/encode", params={"query": text})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.headers["x-cache"] == "MISS", first.headers
    assert again.headers["x-cache"] == "HIT", again.headers
    assert again.json()["encoding"] == first.json()["encoding"]


def assert_openai_client(server: Server, reference: dict, *, min_cosine: float) -> None:
    """The official OpenAI client gets reference-quality vectors, in input order, with usage in real tokens."""
    from openai import OpenAI

    items = [item for item in reference["items"] if item["text"].strip()][:8]
    client = OpenAI(base_url=server.url("/v1"), api_key=server.auth()["Authorization"].split()[1])
    result = client.embeddings.create(model=MODEL_ALIAS, input=[item["text"] for item in items])
    assert [datum.index for datum in result.data] == list(range(len(items)))
    for item, datum in zip(items, result.data):
        similarity = cosine(datum.embedding, item["embedding"])
        assert similarity >= min_cosine, f"{item['text'][:40]!r}: cosine {similarity}"
    assert result.usage.prompt_tokens == sum(item["tokens"] for item in items)


def assert_retrieval_routes(server: Server, reference: dict, *, build: str, min_cosine: float,
                            score_tolerance: float) -> None:
    """The retrieval routes (issue 21) answer in this build: Cohere's and TEI's rerank score every document with the
    reference cosine (within `score_tolerance`, the build's own accuracy) and rank the paraphrase first, TEI's and
    Spin's `/embed` give reference vectors, `/tokenize` the model's ids, and `/info` names the build."""
    query = "How old are you?"
    documents = [item for item in reference["items"] if item["text"] not in (query, "")][:12]
    texts = [item["text"] for item in documents]
    query_vector = next(item["embedding"] for item in reference["items"] if item["text"] == query)
    expected = [cosine(query_vector, item["embedding"]) for item in documents]
    best = texts.index("What is your age?")

    cohere = server.post("/v2/rerank", json={"model": MODEL_ALIAS, "query": query, "documents": texts, "top_n": 3})
    assert cohere.status_code == 200, cohere.text
    results = cohere.json()["results"]
    assert len(results) == 3 and results[0]["index"] == best, results
    tei = server.post("/rerank", json={"query": query, "texts": texts})
    assert tei.status_code == 200, tei.text
    ranks = tei.json()
    assert ranks[0]["index"] == best and len(ranks) == len(texts), ranks
    for index, score in [(r["index"], r["relevance_score"]) for r in results] + [(r["index"], r["score"])
                                                                                 for r in ranks]:
        assert abs(score - expected[index]) <= score_tolerance, (texts[index], score, expected[index])

    embedded = server.post("/embed", json={"inputs": texts[:4]})
    spin = server.post("/embed", json={"model": MODEL_ALIAS, "input": texts[:4]})
    assert embedded.status_code == spin.status_code == 200, (embedded.text, spin.text)
    for vectors in (embedded.json(), spin.json()["embeddings"]):
        for vector, item in zip(vectors, documents[:4], strict=True):
            assert cosine(vector, item["embedding"]) >= min_cosine, item["text"][:40]
    assert spin.json()["usage"]["promptTokenCount"] == sum(item["tokens"] for item in documents[:4])

    tokens = server.post("/tokenize", json={"inputs": "hello world"})
    assert tokens.status_code == 200, tokens.text
    assert [token["id"] for token in tokens.json()[0]] == [101, 7592, 2088, 102]
    info = server.get("/info", auth=False)
    assert info.status_code == 200, info.text
    assert info.json()["build"] == build, info.json()
    refused = server.post("/v1/rerank", auth=False, json={"query": query, "documents": texts})
    assert refused.status_code == 401 and set(refused.json()) == {"message"}, refused.text
