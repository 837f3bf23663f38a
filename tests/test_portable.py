"""Issue 11, the portable build: build/sbert_service_portable.wasm runs the model inside the wasm (8-bit
block weights, sbert-engine) and must fit Akamai Functions' limits: at most 50 MiB of application and
128 MiB of instance memory. Served by the real sbert-host from spin-portable.toml, over HTTP."""
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, cosine, serving, spread_questions
from smoke import assert_retrieval_routes

PORTABLE_WASM = ROOT / "build" / "sbert_service_portable.wasm"
MAX_APP_BYTES = 50 * 1024 * 1024
REQUEST_MEMORY_MIB = 128
# The bar for 8-bit weights (issue 11); measured 0.99956 min, 0.99981 mean.
MIN_COSINE = 0.99
MIN_MEAN_COSINE = 0.999
# How far a rerank score may be from the reference cosine with 8-bit weights (each vector within MIN_COSINE).
SCORE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def portable_server():
    assert PORTABLE_WASM.exists(), f"{PORTABLE_WASM} is missing; run `make build` first"
    with tempfile.TemporaryDirectory(prefix="sbert-portable-") as tmp:
        with serving(Path(tmp), manifest=ROOT / "spin-portable.toml",
                     extra_args=["--request-memory", str(REQUEST_MEMORY_MIB)]) as server:
            yield server


def embeddings(server, texts: list[str]) -> list[list[float]]:
    resp = server.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": texts})
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert [item["index"] for item in data] == list(range(len(texts)))
    return [item["embedding"] for item in data]


def test_the_component_fits_the_application_size_limit():
    assert PORTABLE_WASM.exists(), f"{PORTABLE_WASM} is missing; run `make build` first"
    size = PORTABLE_WASM.stat().st_size
    assert size <= MAX_APP_BYTES, f"{PORTABLE_WASM.name} is {size / 2**20:.1f} MiB, the limit is 50 MiB"


def test_every_reference_item_matches_sentence_transformers(portable_server, reference):
    items = reference["items"]
    # One request with every item: rows of different lengths share padded batches, which the engine
    # must run unpadded; then each item alone.
    together = embeddings(portable_server, [item["text"] for item in items])
    alone = [embeddings(portable_server, [item["text"]])[0] for item in items]
    for vectors in (together, alone):
        cosines = [cosine(vector, item["embedding"]) for vector, item in zip(vectors, items)]
        worst = min(range(len(items)), key=lambda i: cosines[i])
        assert cosines[worst] >= MIN_COSINE, f"{items[worst]['text'][:40]!r}: cosine {cosines[worst]}"
        mean = sum(cosines) / len(cosines)
        assert mean >= MIN_MEAN_COSINE, f"mean cosine {mean}"


def test_a_full_batch_of_longest_inputs_fits_the_instance_memory(portable_server):
    # 33 inputs truncated to 256 tokens: more than one batch of 32 rows at the longest sequence.
    texts = [f"{question} " * 60 for question in spread_questions(33, offset=7)]
    vectors = embeddings(portable_server, texts)
    assert len(vectors) == 33
    for vector in vectors:
        assert abs(sum(v * v for v in vector) - 1.0) < 1e-4
    assert portable_server.alive(), portable_server.log()


def test_the_retrieval_routes_answer(portable_server, reference):
    assert_retrieval_routes(portable_server, reference, build="portable", min_cosine=MIN_COSINE,
                            score_tolerance=SCORE_TOLERANCE)
