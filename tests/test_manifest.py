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


def test_secrets_are_declared_secret():
    variables = tomllib.loads((ROOT / "spin.toml").read_text())["variables"]
    assert variables["api_keys"]["secret"] is True
    assert variables["jwt_secret"]["secret"] is True
