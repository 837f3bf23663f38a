"""Issue 21, text-embeddings-inference (TEI) drop-in: `POST /embed` and `POST /`, `POST /rerank`, `GET /info`, with
TEI's request and response shapes (from its published OpenAPI document and router types) and error shape
`{"error", "error_type"}`; huggingface_hub's `InferenceClient`, pointed at the service as at a TEI server, gets the
reference vectors. `/embed` also answers Spin's remote llm client (`[llm_compute] type = "remote_http"`)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from conftest import (
    API_KEYS,
    DIMENSIONS,
    MAX_TOKENS,
    MODEL_ID,
    assert_tei_error,
    cosine,
    reference_item,
)

MIN_COSINE = 0.9999  # against sentence-transformers (../shared/README.md)
SCORE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def items(reference) -> list[dict]:
    return reference["items"]


def assert_reference_vectors(vectors, items: list[dict]) -> None:
    assert len(vectors) == len(items)
    for vector, item in zip(vectors, items):
        assert len(vector) == DIMENSIONS
        similarity = cosine(list(vector), item["embedding"])
        assert similarity >= MIN_COSINE, f"{item['text'][:40]!r}: cosine {similarity}"


# --- huggingface_hub's client ------------------------------------------------------------------------------------


def test_inference_client_feature_extraction_gets_the_reference_vectors(server, items):
    client = InferenceClient(base_url=server.base_url, api_key=API_KEYS[0], timeout=60)
    vectors = client.feature_extraction([item["text"] for item in items])
    assert isinstance(vectors, np.ndarray) and vectors.shape == (len(items), DIMENSIONS)
    assert_reference_vectors(vectors, items)
    one = client.feature_extraction(items[0]["text"])
    assert one.shape == (1, DIMENSIONS)
    assert_reference_vectors(one, items[:1])
    short = client.feature_extraction(items[0]["text"], dimensions=64, truncate=True, normalize=True)
    assert short.shape == (1, 64)
    assert abs(float(np.linalg.norm(short[0])) - 1) < 1e-5


def test_inference_client_sees_tei_s_errors(server, items):
    client = InferenceClient(base_url=server.base_url, api_key=API_KEYS[0], timeout=60)
    long_text = next(item["text"] for item in items if item["tokens"] == MAX_TOKENS)
    with pytest.raises(HfHubHTTPError) as refused:
        client.feature_extraction(long_text, truncate=False)
    assert refused.value.response.status_code == 422
    with pytest.raises(HfHubHTTPError) as unauthorized:
        InferenceClient(base_url=server.base_url, api_key="not-a-key").feature_extraction("hello")
    assert unauthorized.value.response.status_code == 401


# --- /embed and POST / over HTTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/embed", "/"])
def test_embed_answers_a_list_of_reference_vectors(server, items, path):
    resp = server.post(path, json={"inputs": [item["text"] for item in items]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-cache"] in ("MISS", "PARTIAL", "HIT")
    assert_reference_vectors(resp.json(), items)
    single = server.post(path, json={"inputs": items[1]["text"], "normalize": False, "truncate": None,
                                     "prompt_name": None, "truncation_direction": "right"})
    assert single.status_code == 200, single.text
    assert_reference_vectors(single.json(), items[1:2])


def test_get_root_stays_the_public_liveness_check(server):
    resp = server.get("/", auth=False)
    assert resp.status_code == 200 and resp.content == b""
    assert_tei_error(server.post("/", auth=False, json={"inputs": "hi"}), 401, "Unauthorized")


def test_dimensions_keep_the_first_ones_renormalized(server, items):
    item = items[2]
    resp = server.post("/embed", json={"inputs": [item["text"]], "dimensions": 128})
    assert resp.status_code == 200, resp.text
    [vector] = resp.json()
    head = np.array(item["embedding"][:128])
    assert len(vector) == 128
    assert cosine(vector, list(head / np.linalg.norm(head))) >= MIN_COSINE


def test_left_truncation_keeps_the_end_from_a_whole_word(server, tokenizer):
    """`truncation_direction: left` keeps the text's last tokens that fit, from the first whole word: the vector is
    the one of that suffix, which the model's tokenizer (in Python) finds independently."""
    text = " ".join([*(f"The cat number {n} sleeps on the warm kitchen mat." for n in range(25)),
                     *(f"Stock index {n} fell sharply after the central bank's decision." for n in range(25))])
    encoding = tokenizer.encode(text)
    assert len(encoding.ids) > MAX_TOKENS
    inner = len(encoding.ids) - 2
    start = inner + 1 - (MAX_TOKENS - 2)
    while encoding.word_ids[start] == encoding.word_ids[start - 1]:
        start += 1
    suffix = text[encoding.offsets[start][0]:]
    assert len(tokenizer.encode(suffix).ids) <= MAX_TOKENS
    left = server.post("/embed", json={"inputs": text, "truncation_direction": "left"})
    whole_suffix = server.post("/embed", json={"inputs": suffix, "truncate": False})
    right = server.post("/embed", json={"inputs": text, "truncation_direction": "Right"})
    assert left.status_code == whole_suffix.status_code == right.status_code == 200
    assert cosine(left.json()[0], whole_suffix.json()[0]) >= 0.999999
    assert cosine(left.json()[0], right.json()[0]) < 0.99, "the two ends of the text differ"


# --- Spin's remote llm client on /embed --------------------------------------------------------------------------


def test_spins_remote_llm_call_gets_its_own_shape(server, items):
    """What Spin's `remote_http` llm engine sends (crates/llm-remote-http, default api_type): POST {url}/embed, a JSON
    body without a Content-Type, `Authorization: bearer <token>`; it reads `embeddings` and `usage.promptTokenCount`."""
    chosen = items[:6]
    body = json.dumps({"model": "all-minilm-l6-v2", "input": [item["text"] for item in chosen]})
    resp = requests.post(server.url("/embed"), data=body.encode(), timeout=60,
                         headers={"authorization": f"bearer {API_KEYS[0]}"})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert set(answer) == {"embeddings", "usage"}
    assert_reference_vectors(answer["embeddings"], chosen)
    assert answer["usage"] == {"promptTokenCount": sum(item["tokens"] for item in chosen)}


@pytest.mark.parametrize("body,status,error_type,names", [
    ({"model": "all-minilm-l6-v2"}, 400, "Validation", "inputs"),
    ({}, 400, "Validation", "inputs"),
    ({"inputs": "a", "input": ["a"], "model": "all-minilm-l6-v2"}, 422, "Validation", "input"),
    ({"input": ["a"]}, 400, "Validation", "model"),
    ({"input": ["a"], "model": "nomic-embed-text"}, 404, "Validation", "nomic-embed-text"),
])
def test_an_embed_body_that_is_neither_or_both_is_refused(server, body, status, error_type, names):
    message = assert_tei_error(server.post("/embed", json=body), status, error_type)
    assert names in message, message


# --- /rerank -----------------------------------------------------------------------------------------------------


def test_tei_rerank_scores_every_text_with_the_reference_cosine(server, reference, items):
    query = "What is your favorite food?"
    texts = [item["text"] for item in items if item["text"] != query]
    resp = server.post("/rerank", json={"query": query, "texts": texts, "return_text": True})
    assert resp.status_code == 200, resp.text
    ranks = resp.json()
    query_vector = reference_item(reference, query)["embedding"]
    assert sorted(rank["index"] for rank in ranks) == list(range(len(texts)))
    scores = [rank["score"] for rank in ranks]
    assert scores == sorted(scores, reverse=True)
    for rank in ranks:
        expected = cosine(query_vector, reference_item(reference, texts[rank["index"]])["embedding"])
        assert abs(rank["score"] - expected) <= SCORE_TOLERANCE, (rank, expected)
        assert rank["text"] == texts[rank["index"]]
    assert texts[ranks[0]["index"]] == "I love pizza with extra cheese."
    raw = server.post("/rerank", json={"query": query, "texts": texts, "raw_scores": True}).json()
    assert [rank["score"] for rank in raw] == scores, "a bi-encoder has no logits: the same cosine"
    assert all("text" not in rank for rank in raw)


# --- /info -------------------------------------------------------------------------------------------------------


def test_info_is_public_has_tei_s_fields_and_no_secret(server):
    resp = server.get("/info", auth=False)
    assert resp.status_code == 200, resp.text
    info = resp.json()
    for name, kind in [("model_id", str), ("model_dtype", str), ("model_type", dict), ("max_input_length", int),
                       ("max_batch_tokens", int), ("max_client_batch_size", int), ("auto_truncate", bool),
                       ("version", str), ("build", str), ("backend", str), ("models", list)]:
        assert isinstance(info[name], kind), (name, info)
    for name in ("model_sha", "max_concurrent_requests", "max_batch_requests", "tokenization_workers"):
        assert name in info, name
    assert info["model_id"] == MODEL_ID and info["model_dtype"] == "float32"
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["max_input_length"] == MAX_TOKENS and info["max_client_batch_size"] == 2048
    assert (info["build"], info["backend"]) == ("fast", "wasi-nn")
    models = {model["id"]: model for model in info["models"]}
    assert set(models) == {MODEL_ID, "all-minilm-l6-v2-int8"}
    assert all(model["dimensions"] == DIMENSIONS and model["digest"].startswith("sha256:")
               for model in models.values())
    assert not any(key in resp.text for key in API_KEYS)


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,body,status,error_type,names", [
    ("/embed", {"inputs": []}, 400, "Empty", "inputs"),
    ("/", {"inputs": []}, 400, "Empty", "inputs"),
    ("/embed", {"inputs": ["a", 3]}, 422, "Validation", "inputs"),
    ("/embed", {"inputs": "a", "truncation_direction": "middle"}, 422, "Validation", "truncation_direction"),
    ("/embed", {"inputs": "a", "dimensions": 0}, 422, "Validation", "dimensions"),
    ("/embed", {"inputs": "a", "prompt_name": "query"}, 422, "Validation", "prompt_name"),
    ("/embed", {"inputs": "word " * 300, "truncate": False}, 422, "Validation", "302 tokens"),
    ("/rerank", {"query": "q", "texts": []}, 400, "Empty", "texts"),
    ("/rerank", {"query": "q", "texts": ["a", None]}, 422, "Validation", "texts"),
    ("/rerank", {"query": 1, "texts": ["a"]}, 422, "Validation", "query"),
    ("/rerank", {"query": "q", "texts": ["a"], "truncation_direction": "up"}, 422, "Validation",
     "truncation_direction"),
    ("/embed", {"inputs": ["a"] * 2049}, 413, "Validation", "2049"),
    ("/rerank", {"query": "q", "texts": ["a"] * 2049}, 413, "Validation", "2049"),
])
def test_bad_input_is_a_tei_error(server, path, body, status, error_type, names):
    message = assert_tei_error(server.post(path, json=body), status, error_type)
    assert names in message, message


def test_malformed_bodies_and_credentials_are_tei_errors(server):
    assert_tei_error(server.post("/embed", data=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_tei_error(server.post("/embed", data=b"inputs=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    assert_tei_error(server.post("/rerank", auth=False, json={"query": "q", "texts": ["a"]}), 401, "Unauthorized")
    wrong = server.get("/embed")
    assert_tei_error(wrong, 405)
    assert wrong.headers["allow"] == "POST, OPTIONS"
