"""The spin-llm build (build/sbert_service_spin_llm.wasm, spin-llm.toml) on the real sbert-host: embeddings
come from fermyon:spin/llm `generate-embeddings`, which sbert-host runs on the same ONNX Runtime graph as
wasi:nn, with the model's tokenizer, and must equal sentence-transformers."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, cosine, log_once, start_server, stop_server
from smoke import (
    assert_auth_required,
    assert_cache_hit_on_repeat,
    assert_openai_client,
    assert_reference,
    assert_retrieval_routes,
)

MANIFEST = ROOT / "spin-llm.toml"
MIN_COSINE = 0.9999
# What Spin answers a component that did not list the model in `ai_models` (spin's factor-llm).
SPIN_ACCESS_ERROR = ("The component does not have access to use 'all-minilm-l6-v2'. To give the component access, "
                     "add 'all-minilm-l6-v2' to the 'ai_models' key for the component in your spin.toml manifest")


@pytest.fixture(scope="module")
def spin_llm_server():
    with tempfile.TemporaryDirectory(prefix="sbert-spin-llm-") as tmp:
        server = start_server(Path(tmp), manifest=MANIFEST)
        yield server
        assert server.alive(), f"sbert-host died during the tests:\n{server.log()}"
        stop_server(server)


def test_the_manifest_serves_the_spin_llm_build():
    text = MANIFEST.read_text()
    assert re.search(r'^source = "build/sbert_service_spin_llm\.wasm"$', text, re.M)
    assert re.search(r'^ai_models = \["all-minilm-l6-v2"\]$', text, re.M)


def test_every_reference_item_matches_sentence_transformers(spin_llm_server, reference):
    mean, worst = assert_reference(spin_llm_server, reference, min_cosine=MIN_COSINE, mean_cosine=MIN_COSINE)
    print(f"spin-llm on sbert-host: cosine to reference mean {mean:.9f}, min {worst:.9f} (1 - min = {1 - worst:.1e})")


def test_auth(spin_llm_server):
    assert_auth_required(spin_llm_server)


def test_cache_hit_on_repeat(spin_llm_server):
    assert_cache_hit_on_repeat(spin_llm_server)


def test_openai_client(spin_llm_server, reference):
    assert_openai_client(spin_llm_server, reference, min_cosine=MIN_COSINE)


def test_the_retrieval_routes_answer(spin_llm_server, reference):
    assert_retrieval_routes(spin_llm_server, reference, build="spin-llm", min_cosine=MIN_COSINE,
                            score_tolerance=1e-4)


def test_token_id_inputs_embed_like_their_text(spin_llm_server, tokenizer):
    text = "Token ids through the spin-llm build are decoded to text first."
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    by_text = spin_llm_server.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": text})
    by_ids = spin_llm_server.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": [ids]})
    assert by_text.status_code == by_ids.status_code == 200, (by_text.text, by_ids.text)
    assert cosine(by_text.json()["data"][0]["embedding"], by_ids.json()["data"][0]["embedding"]) >= 0.999999
    assert by_ids.json()["usage"]["prompt_tokens"] == len(ids) + 2


def test_a_component_without_ai_models_gets_spins_refusal(tmp_path):
    """The same build, its manifest without `ai_models`: sbert-host refuses the llm call with Spin's own words.
    The client gets a JSON 500; or, where sbert-host runs an embedding at start-up (its `GET /health` check),
    sbert-host refuses to start, saying why."""
    manifest = tmp_path / "spin-llm.toml"
    text = MANIFEST.read_text().replace('ai_models = ["all-minilm-l6-v2"]\n', "")
    text = re.sub(r'^source = "(.*)"$', lambda m: f'source = "{ROOT / m.group(1)}"', text, flags=re.M)
    text = re.sub(r'"(models/[^"]+)"', lambda m: f'"{ROOT / m.group(1)}"', text)
    assert "ai_models" not in text
    manifest.write_text(text)
    try:
        server = start_server(tmp_path, manifest=manifest)
    except RuntimeError as refused:
        assert SPIN_ACCESS_ERROR in str(refused), str(refused)[-2000:]
        return
    try:
        resp = server.get("/v1/encode", params={"query": "refused by the allow-list"})
        assert resp.status_code == 500, resp.text
        assert resp.headers["content-type"].startswith("application/json"), resp.headers
        log = log_once(server, lambda log: SPIN_ACCESS_ERROR in log)
        assert SPIN_ACCESS_ERROR in log, log[-2000:]
    finally:
        stop_server(server)
