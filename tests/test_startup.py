"""sbert-host fails fast, with one clear line, on anything it cannot serve; and backend failures are JSON."""
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import API_KEYS, ROOT, host_binary, log_once, log_records, start_server, stop_server

MANIFEST = (ROOT / "spin.toml").read_text()
MODEL = ROOT / "models/all-minilm-l6-v2/model.onnx"
WASM = ROOT / "build/sbert_service.wasm"


def manifest_in(tmp: Path, text: str) -> Path:
    """A copy of spin.toml in `tmp` whose relative paths point back into the repository."""
    text = text.replace('source = "build/', f'source = "{ROOT}/build/')
    text = text.replace('= "models/', f'= "{ROOT}/models/')
    path = tmp / "spin.toml"
    path.write_text(text)
    return path


def run_up(manifest: Path, env_overrides: dict, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPIN_VARIABLE_API_KEYS": ",".join(API_KEYS), **env_overrides}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [str(host_binary()), "up", "--from", str(manifest), "--listen", "127.0.0.1:0", *extra],
        capture_output=True, text=True, env=env, timeout=60, cwd=manifest.parent,
    )


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="sbert-startup-") as d:
        yield Path(d)


def error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Serving http" not in result.stdout
    return lines[0]


def test_missing_model_names_file_and_fix(tmp):
    manifest = manifest_in(tmp, MANIFEST.replace("models/all-minilm-l6-v2/model.onnx", "models/nope/model.onnx"))
    line = error_line(run_up(manifest, {}))
    assert "models/nope/model.onnx" in line and "make models" in line


def test_missing_onnxruntime_names_fix(tmp):
    manifest = manifest_in(tmp, MANIFEST)
    line = error_line(run_up(manifest, {"ORT_DYLIB_PATH": str(tmp / "libonnxruntime.so")}))
    assert "libonnxruntime.so" in line and "make" in line


def test_required_variable_unset(tmp):
    manifest = manifest_in(tmp, MANIFEST)
    line = error_line(run_up(manifest, {"SPIN_VARIABLE_API_KEYS": None}))
    assert "api_keys" in line


def test_unknown_variable_on_command_line(tmp):
    manifest = manifest_in(tmp, MANIFEST)
    line = error_line(run_up(manifest, {}, "--variable", "no_such_variable=1"))
    assert "no_such_variable" in line


def test_bad_manifest_names_the_file(tmp):
    manifest = manifest_in(tmp, MANIFEST.replace("[application]", "[application]\nbogus_field = 1"))
    line = error_line(run_up(manifest, {}))
    assert "spin.toml" in line and "bogus_field" in line


def test_missing_component_names_fix(tmp):
    manifest = manifest_in(tmp, MANIFEST.replace("build/sbert_service.wasm", "build/missing.wasm"))
    line = error_line(run_up(manifest, {}))
    assert "missing.wasm" in line and "make" in line


def test_secret_never_printed(tmp):
    manifest = manifest_in(tmp, MANIFEST.replace("models/all-minilm-l6-v2/model.onnx", "models/nope/model.onnx"))
    result = run_up(manifest, {"SPIN_VARIABLE_API_KEYS": "super-secret-value"})
    assert "super-secret-value" not in result.stdout + result.stderr


def test_backend_failure_is_a_json_500(tmp):
    # The manifest offers the model under another name: `load-by-name` fails inside the component.
    # Without a start-up check, which would stop the host on that failure before it listens.
    without_check = re.sub(r'^startup_check = ".*"\n', "", MANIFEST, flags=re.M)
    manifest = manifest_in(tmp, without_check.replace('"all-minilm-l6-v2" =', '"another-graph" ='))
    srv = start_server(tmp, manifest=manifest)
    try:
        resp = srv.get("/v1/encode?query=hello")
        assert resp.status_code == 500
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        assert set(body) == {"error", "message"}
        assert "another-graph" not in resp.text and "wasi" not in resp.text.lower()
        assert srv.get("/v1/ping", auth=False).status_code == 200
    finally:
        stop_server(srv)


def test_a_failing_startup_check_stops_startup_with_one_line(tmp):
    # A protected route asked without credentials answers 401: the host must not start listening.
    manifest = manifest_in(tmp, re.sub(r'^startup_check = ".*"$', 'startup_check = "/v1/encode?query=x"',
                                       MANIFEST, flags=re.M))
    line = error_line(run_up(manifest, {}))
    assert "sbert-service" in line and "start-up check" in line, line
    assert "GET /v1/encode?query=x" in line and "401" in line, line
    # The component's own message, from its body.
    assert "Unauthorized" in line or "token" in line.lower(), line


def up_until_listening_or_exit(manifest: Path, env_overrides: dict) -> subprocess.CompletedProcess:
    """`sbert-host up`, stopped as soon as it listens (so a host that should have refused to start fails the
    test at once instead of running until a timeout)."""
    env = {**os.environ, "SPIN_VARIABLE_API_KEYS": ",".join(API_KEYS), **env_overrides}
    process = subprocess.Popen(
        [str(host_binary()), "up", "--from", str(manifest), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=manifest.parent,
    )
    stdout = []
    for line in process.stdout:
        stdout.append(line)
        if line.startswith("Serving http"):
            process.terminate()
            break
    stderr = process.stderr.read()
    process.wait(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(stdout), stderr)


def test_an_invalid_variable_stops_startup_naming_it(tmp):
    # The component's readiness route (startup_check) answers 503 naming the variable it cannot parse.
    result = up_until_listening_or_exit(manifest_in(tmp, MANIFEST), {"SPIN_VARIABLE_MAX_INPUTS": "three"})
    line = error_line(result)
    assert "max_inputs" in line and "sbert-service" in line, line


def test_startup_check_path_must_be_a_path(tmp):
    manifest = manifest_in(tmp, re.sub(r'^startup_check = ".*"$', 'startup_check = "health"', MANIFEST, flags=re.M))
    line = error_line(run_up(manifest, {}))
    assert "startup_check `health`" in line and "spin.toml" in line, line


@pytest.mark.parametrize("setting, expected", [
    ('nn_sessions = { "all-minilm-l6-v2-int9" = 2 }', "`nn_sessions` names graph `all-minilm-l6-v2-int9`"),
    ('nn_sessions = { "all-minilm-l6-v2-int8" = 0 }', "nn_sessions"),
])
def test_nn_sessions_must_name_a_graph_and_be_positive(tmp, setting, expected):
    text, replaced = re.subn(r"^nn_sessions = .*$", setting, MANIFEST, flags=re.M)
    assert replaced == 1
    line = error_line(run_up(manifest_in(tmp, text), {}))
    assert expected in line, line


def test_graph_sessions_come_from_the_manifest_unless_the_command_line_sets_them(tmp):
    """spin.toml gives each graph a latency session and two one-thread sessions (`nn_sessions`); a graph the
    manifest does not name gets one session; --nn-sessions sets every graph. What each graph got is in the
    wasi:nn unit's start-up log line."""
    int8_only = manifest_in(tmp, re.sub(r"^nn_sessions = .*$", 'nn_sessions = { "all-minilm-l6-v2-int8" = 3 }',
                                        MANIFEST, flags=re.M))
    for manifest, args, expected in [
        (ROOT / "spin.toml", (), "all-minilm-l6-v2: 1×2 + 2×1; all-minilm-l6-v2-int8: 1×2 + 2×1"),
        (int8_only, (), "all-minilm-l6-v2: 1×2; all-minilm-l6-v2-int8: 1×2 + 3×1"),
        (int8_only, ("--nn-sessions", "1"), "all-minilm-l6-v2: 1×2; all-minilm-l6-v2-int8: 1×2"),
    ]:
        srv = start_server(tmp, manifest=manifest, extra_args=["--nn-threads", "2", *args])
        try:
            log = log_once(srv, lambda log: '"ready"' in log)
        finally:
            stop_server(srv)
        [loaded] = [r for r in log_records(log) if r.get("message") == "wasi:nn graphs loaded"]
        assert loaded["graph_sessions"] == expected, loaded
