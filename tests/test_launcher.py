"""`make run`'s launcher (scripts/run.sh): what it hands sbert-host. sbert-host is replaced by a script that
prints what it was given, since what is under test is the launcher's choices, not the server."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "scripts" / "run.sh"
INT8, FP32 = "all-minilm-l6-v2-int8", "all-minilm-l6-v2"


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


def has_int8_dot_products() -> bool:
    return re.search(r"\b(avx512_vnni|avx_vnni)\b", Path("/proc/cpuinfo").read_text()) is not None


def test_without_a_choice_the_default_model_is_the_fastest_for_this_cpu(launch):
    out = launch()
    expected = INT8 if has_int8_dot_products() else FP32
    assert f"default_model={expected} " in out, out
    assert f"Original routes serve {expected}" in out, out
    assert "args=up --from spin.toml --runtime-config-file runtime-config.toml --listen 127.0.0.1:0" in out, out


@pytest.mark.parametrize("chosen", [FP32, INT8])
def test_a_chosen_default_model_passes_through_unchanged(launch, chosen):
    out = launch(SPIN_VARIABLE_DEFAULT_MODEL=chosen)
    assert f"default_model={chosen} " in out, out
    assert "picked for this CPU" not in out, out


def test_the_manifest_is_spin_toml_unless_another_is_named(launch):
    assert "--from spin.toml " in launch()
    assert "--from spin-edge.toml " in launch(MANIFEST="spin-edge.toml")
