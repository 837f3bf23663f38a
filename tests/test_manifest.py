"""spin.toml stays consistent with the model files `make models` produces and verifies."""
import tomllib

import pytest

from conftest import ROOT


def recorded_checksums() -> dict[str, str]:
    lines = (ROOT / "models/checksums.sha256").read_text().splitlines()
    return {path: digest for digest, path in (line.split() for line in lines if line.strip())}


@pytest.mark.parametrize("graph,variable", [("all-minilm-l6-v2", "model_digest"),
                                            ("all-minilm-l6-v2-int8", "int8_model_digest")])
def test_model_digest_variables_name_the_served_models(graph, variable):
    # The digest is part of every cache key: if it drifted from the model file, a new model
    # could be served old vectors from the cache.
    manifest = tomllib.loads((ROOT / "spin.toml").read_text())
    graph_path = manifest["component"]["sbert-service"]["tool"]["sbert-host"]["graphs"][graph]
    digest = manifest["variables"][variable]["default"]
    assert digest == "sha256:" + recorded_checksums()[graph_path]


@pytest.mark.parametrize("variable", ["model_digest", "int8_model_digest"])
def test_the_edge_keys_its_cache_by_the_digests_of_the_models_its_origin_serves(variable):
    # The edge caches the origin's vectors under these digests: a stale one would serve another model's vectors.
    served = tomllib.loads((ROOT / "spin.toml").read_text())["variables"][variable]["default"]
    edge = tomllib.loads((ROOT / "spin-edge.toml").read_text())["variables"][variable]["default"]
    assert edge == served


def test_secrets_are_declared_secret():
    variables = tomllib.loads((ROOT / "spin.toml").read_text())["variables"]
    assert variables["api_keys"]["secret"] is True
    assert variables["jwt_secret"]["secret"] is True
