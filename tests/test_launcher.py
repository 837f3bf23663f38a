"""`make run`'s launcher (scripts/run.sh): what it hands sbert-host (a stand-in script that prints what it was
given), and what the real host it starts answers on this machine's CPU."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import (
    API_KEYS,
    SCORE_TOLERANCE,
    STARTUP_TIMEOUT_S,
    assert_same_pairs,
    cosine,
    free_port,
    host_binary,
    stop_process,
)

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "scripts" / "run.sh"
INT8, FP32 = "all-minilm-l6-v2-int8", "all-minilm-l6-v2"
MIN_COSINE = 0.9999


@pytest.fixture
def launch(tmp_path):
    host = tmp_path / "sbert-host"
    host.write_text('#!/bin/sh\necho "default_model=${SPIN_VARIABLE_DEFAULT_MODEL:-} args=$*"\n')
    host.chmod(0o755)

    def run(**variables: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIN_VARIABLE_")}
        env.update(SBERT_HOST=str(host), SPIN_VARIABLE_API_KEYS="test-key", **variables)
        done = subprocess.run([str(LAUNCHER), "--listen", "127.0.0.1:0"], env=env, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def test_without_a_choice_every_route_serves_the_exact_model_whatever_the_cpu(launch):
    out = launch()
    # The manifest's default (fp32) applies: the launcher picks nothing by CPU flags.
    assert "default_model= " in out, out
    assert f"SPIN_VARIABLE_DEFAULT_MODEL={INT8} opts in" in out, out
    assert "args=up --from spin.toml --runtime-config-file runtime-config.toml --listen 127.0.0.1:0" in out, out


@pytest.mark.parametrize("chosen", [FP32, INT8])
def test_a_chosen_default_model_passes_through_unchanged(launch, chosen):
    out = launch(SPIN_VARIABLE_DEFAULT_MODEL=chosen)
    assert f"default_model={chosen} " in out, out
    assert "opts in" not in out, out


def test_make_run_answers_the_original_routes_like_sentence_transformers(reference, similarity_reference):
    """The real launcher and host, as `make run` starts them, on whatever CPU this is: no model chosen."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIN_VARIABLE_")}
    # No embedding cache: every answer is computed now, by the model the launcher left in place.
    env.update(SBERT_HOST=str(host_binary()), SPIN_VARIABLE_API_KEYS=API_KEYS[0], SPIN_VARIABLE_CACHE_TTL_SECONDS="0")
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen([str(LAUNCHER), "--listen", f"127.0.0.1:{port}", "--http-cache-mib", "0"],
                                   env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_serving(base, process, output)
            auth = {"Authorization": f"Bearer {API_KEYS[0]}"}
            for item in reference["items"]:
                if not item["text"].strip():
                    continue
                resp = requests.get(base + "/v1/encode", params={"query": item["text"]}, headers=auth, timeout=60)
                assert resp.status_code == 200, resp.text
                assert cosine(resp.json()["encoding"], item["embedding"]) >= MIN_COSINE, item["text"][:40]
            cos = similarity_reference["cos_sim"]
            resp = requests.post(base + "/v1/encode/cos_sim_weight", json={"a": cos["a"], "b": cos["b"]},
                                 headers=auth, timeout=60)
            assert resp.status_code == 200, resp.text
            for got, expected in zip(resp.json()["cos_sim_weight"], cos["matrix"], strict=True):
                assert got == pytest.approx(expected, abs=SCORE_TOLERANCE)
            mining = similarity_reference["paraphrase_mining"]
            resp = requests.post(base + "/v1/paraphrase", json={"sentences": mining["sentences"]}, headers=auth,
                                 timeout=60)
            assert resp.status_code == 200, resp.text
            assert_same_pairs(resp.json()["pairs"], [tuple(pair) for pair in mining["pairs"]])
        finally:
            stop_process(process, timeout=15)


def wait_until_serving(base: str, process: subprocess.Popen, output) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output.seek(0)
            raise AssertionError(f"the launcher exited with {process.returncode}:\n{output.read().decode()}")
        try:
            if requests.get(base + "/v1/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"nothing answered on {base} within {STARTUP_TIMEOUT_S}s")


def test_the_manifest_is_spin_toml_unless_another_is_named(launch):
    assert "--from spin.toml " in launch()
    assert "--from spin-edge.toml " in launch(MANIFEST="spin-edge.toml")
