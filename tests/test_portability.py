"""Offline proof of where each component build runs, checked against Spin's own world.

`wasm-tools component targets` (pinned in the Makefile, `make wasm-tools`) checks a component against a WIT
world: every import must be one the world offers, every export the world expects must be there. The worlds
are in wit/spin-check/world.wit: `spin-http` is Spin's `platform` world (spin-sdk 5.2.0's `spin:up@3.6.0`,
copied out of the crate by scripts/fetch_wit.py) plus the HTTP trigger's export; `spin-http-with-nn` adds
wasi:nn. Every build `make build` lists (`make print-wasm-builds`) must exist; those meant for any Spin host
must target `spin-http`, and the fast build must need exactly wasi:nn beyond it.
"""
from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT

CHECK_WIT = ROOT / "wit" / "spin-check"
FAST_BUILD = "build/sbert_service.wasm"
MANIFESTS = {
    "build/sbert_service.wasm": "spin.toml",
    "build/sbert_service_spin_llm.wasm": "spin-llm.toml",
    "build/sbert_service_portable.wasm": "spin-portable.toml",
    "build/sbert_service_edge.wasm": "spin-edge.toml",
}
EDGE_BUILD = "build/sbert_service_edge.wasm"
NN_INTERFACES = {f"wasi:nn/{name}@0.2.0-rc-2024-10-28" for name in ("errors", "tensor", "inference", "graph")}


def wasm_tools() -> Path:
    tool = Path(os.environ.get("WASM_TOOLS", ""))
    assert tool.is_file(), f"wasm-tools not found at WASM_TOOLS={tool!s}: run `make wasm-tools` (make test does)"
    return tool


def listed_builds() -> list[str]:
    out = subprocess.run(["make", "-s", "--no-print-directory", "print-wasm-builds"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    builds = out.split()
    assert FAST_BUILD in builds and "build/sbert_service_spin_llm.wasm" in builds, builds
    return builds


BUILDS = listed_builds()


def targets(build: str, world: str) -> subprocess.CompletedProcess:
    """`component targets`, matching interfaces by semver like wasmtime's linker (and so Spin) does: Rust's
    wasm32-wasip2 std imports WASI 0.2.12 while Spin's world names 0.2.6, and wasmtime type-checks the one
    against the other instead of refusing the newer patch version."""
    return subprocess.run([str(wasm_tools()), "component", "targets", str(CHECK_WIT), str(ROOT / build),
                           "--world", world, "--semver-compatible"], capture_output=True, text=True)


def imported_interfaces(build: str) -> set[str]:
    """The interfaces a component imports, from the WIT that wasm-tools prints for it."""
    wit = subprocess.run([str(wasm_tools()), "component", "wit", str(ROOT / build)],
                         check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"^\s*import ([a-z][\w-]*:[\w/.@-]+);", wit, re.M))


@pytest.mark.parametrize("build", BUILDS)
def test_every_listed_build_was_built(build):
    assert (ROOT / build).is_file(), f"{build} is listed in the Makefile's WASM_BUILDS but missing: run `make build`"


@pytest.mark.parametrize("build", [b for b in BUILDS if b != FAST_BUILD])
def test_builds_for_any_spin_host_import_only_spins_world(build):
    result = targets(build, "spin-http")
    assert result.returncode == 0, f"{build} does not target Spin's world:\n{result.stderr}"
    assert not imported_interfaces(build) & NN_INTERFACES


def test_the_fast_build_needs_exactly_wasi_nn_beyond_spins_world():
    without_nn = targets(FAST_BUILD, "spin-http")
    assert without_nn.returncode != 0, "the fast build imports wasi:nn, so Spin's own world must refuse it"
    assert "wasi:nn/" in without_nn.stderr, without_nn.stderr
    with_nn = targets(FAST_BUILD, "spin-http-with-nn")
    assert with_nn.returncode == 0, f"Spin's world plus wasi:nn must accept the fast build:\n{with_nn.stderr}"
    nn_imports = {name for name in imported_interfaces(FAST_BUILD) if name.startswith("wasi:nn/")}
    assert nn_imports == NN_INTERFACES


@pytest.mark.parametrize("build", BUILDS)
def test_each_builds_manifest_builds_and_serves_that_build(build):
    manifest = tomllib.loads((ROOT / MANIFESTS[build]).read_text())
    [component] = manifest["component"].values()
    assert component["source"] == build
    command = component["build"]["command"]
    assert command == f"make {build}" or (build == FAST_BUILD and command == "make component"), command
    declares_model = component.get("ai_models") == ["all-minilm-l6-v2"]
    assert declares_model == (build == "build/sbert_service_spin_llm.wasm"), component.get("ai_models")


def test_only_the_edge_build_sends_outbound_http_and_only_to_its_inference_url():
    """The edge reaches its inference service through wasi:http's outgoing handler, which every Spin host has;
    its manifest allows exactly the `inference_url` variable's destination (Spin's template syntax), and no
    other manifest allows any."""
    assert any(name.startswith("wasi:http/outgoing-handler@0.2.") for name in imported_interfaces(EDGE_BUILD))
    for build, name in MANIFESTS.items():
        manifest = tomllib.loads((ROOT / name).read_text())
        [component] = manifest["component"].values()
        allowed = component.get("allowed_outbound_hosts", [])
        if build == EDGE_BUILD:
            assert allowed == ["{{ inference_url }}"], allowed
            assert manifest["variables"]["inference_url"] == {"required": True}
            assert manifest["variables"]["inference_token"] == {"required": True, "secret": True}
        else:
            assert allowed == [], (name, allowed)
