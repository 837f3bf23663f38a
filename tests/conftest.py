"""Integration-test harness: boots the real sbert-host with the real component and model.

Every test talks HTTP to a live server on a free loopback port. Nothing here fakes inference.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"

API_KEYS = ("test-key-alpha", "test-key-beta")
STARTUP_TIMEOUT_S = 60


def host_binary() -> Path:
    explicit = os.environ.get("SBERT_HOST")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "sbert-host"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running sbert-host: its base URL, process and captured output."""

    base_url: str
    process: subprocess.Popen
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return self.base_url + path

    def auth(self, key: str = API_KEYS[0]) -> dict:
        return {"Authorization": f"Bearer {key}"}

    def get(self, path: str, *, auth: bool = True, **kw) -> requests.Response:
        headers = {**(self.auth() if auth else {}), **kw.pop("headers", {})}
        return self.session.get(self.url(path), headers=headers, timeout=60, **kw)

    def post(self, path: str, *, auth: bool = True, **kw) -> requests.Response:
        headers = {**(self.auth() if auth else {}), **kw.pop("headers", {})}
        return self.session.post(self.url(path), headers=headers, timeout=60, **kw)

    def request(self, method: str, path: str, *, auth: bool = True, **kw) -> requests.Response:
        headers = {**(self.auth() if auth else {}), **kw.pop("headers", {})}
        return self.session.request(method, self.url(path), headers=headers, timeout=60, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None


def start_server(workdir: Path, *, manifest: Path = ROOT / "spin.toml", extra_args: list[str] = (),
                 env: dict | None = None, port: int | None = None, stderr=subprocess.STDOUT) -> Server:
    """Start sbert-host on `port` (a free one by default) with a runtime config that keeps state in `workdir`.
    Its stdout goes to `Server.log_path`, and its stderr too unless `stderr` says where else."""
    runtime_config = workdir / "runtime-config.toml"
    if not runtime_config.exists():
        runtime_config.write_text(
            '[key_value_store.default]\ntype = "spin"\npath = "%s"\n' % (workdir / "kv.db")
        )
    port = port or free_port()
    log_path = workdir / f"host-{port}.log"
    child_env = {**os.environ, "SPIN_VARIABLE_API_KEYS": ",".join(API_KEYS), **(env or {})}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(host_binary()), "up", "--from", str(manifest),
             "--listen", f"127.0.0.1:{port}", "--runtime-config-file", str(runtime_config),
             *extra_args],
            stdout=log, stderr=stderr, env=child_env, cwd=workdir,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sbert-host exited with {process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url("/v1/ping"), timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    stop_server(server)
    raise RuntimeError(f"sbert-host did not answer within {STARTUP_TIMEOUT_S}s:\n{server.log()}")


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Asks `process` to stop (SIGTERM), kills it if it has not exited after `timeout` seconds, and reaps it.
    Shared by every harness that starts a server: the tests' sbert-host and redis-server, and the benchmark."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_server(server: Server) -> None:
    stop_process(server.process, timeout=15)


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="sbert-it-") as tmp:
        srv = start_server(Path(tmp))
        yield srv
        assert srv.alive(), f"sbert-host died during the tests:\n{srv.log()}"
        stop_server(srv)


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads((REFERENCE / "all-minilm-l6-v2.embeddings.json").read_text())


@pytest.fixture(scope="session")
def similarity_reference() -> dict:
    return json.loads((REFERENCE / "all-minilm-l6-v2.similarity.json").read_text())


def cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb)


def assert_json_error(resp: requests.Response, status: int) -> dict:
    """Every error is JSON with the original service's shape."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert body["code"] == status
    assert isinstance(body["name"], str) and body["name"]
    assert isinstance(body["description"], str) and body["description"]
    return body


# --- Shared by the full-API tests (issue 4): the OpenAI error shape, the model's names, the tokenizer. ---

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_ALIAS = "all-minilm-l6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256


def assert_openai_error(resp: requests.Response, status: int, *, param=..., code=...) -> dict:
    """An error on /v1/embeddings or /v1/models: `{"error": {message, type, param, code}}`.

    `param`/`code` are checked only when given (`None` is a real expectation: JSON null).
    """
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    error = resp.json()["error"]
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error"), error
    assert "param" in error and "code" in error, error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    if param is not ...:
        assert error["param"] == param, error
    if code is not ...:
        assert error["code"] == code, error
    return error


@pytest.fixture(scope="session")
def tokenizer():
    """The served model's own tokenizer.json, without its shipped 128-token truncation and padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ROOT / "models/all-minilm-l6-v2/tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


# Every similarity score the service answers is held to sentence-transformers' within this.
SCORE_TOLERANCE = 1e-4


def assert_same_pairs(actual, expected):
    """Same pairs in the same order with scores within 1e-4; neighbours whose expected scores are within 1e-4
    of each other may come in either order (the reference is rounded to 6 decimals and computed by torch)."""
    expected_score = {(i, j): score for score, i, j in expected}
    assert [(i, j) for _, i, j in actual if (i, j) not in expected_score] == [], "pairs not in the reference"
    assert len(actual) == len(expected), (len(actual), len(expected))
    for position, ((score, i, j), (ref_score, ref_i, ref_j)) in enumerate(zip(actual, expected)):
        assert score == pytest.approx(expected_score[(i, j)], abs=SCORE_TOLERANCE), (i, j)
        if (i, j) != (ref_i, ref_j):
            assert abs(expected_score[(i, j)] - ref_score) <= SCORE_TOLERANCE, (
                f"position {position}: got pair {(i, j)}, reference has {(ref_i, ref_j)}"
            )


def names_field(message: str, field: str) -> bool:
    """Whether an error message names `field` as a field: `` `top_k` ``, `'a'`, `"b"`, `sentences: …`, or
    (for names longer than one letter) the bare word. A single-letter field must be quoted or followed by ':',
    so the article "a" in a sentence does not count as naming field `a`."""
    import re

    quoted = re.search(rf"[`'\"]{re.escape(field)}[`'\"]|(?<![\w-]){re.escape(field)}:", message)
    if quoted or len(field) == 1:
        return quoted is not None
    return re.search(rf"(?<![\w-]){re.escape(field)}(?![\w-])", message) is not None


def spread_questions(count: int, offset: int = 0) -> list[str]:
    """`count` distinct real user questions (../shared/load) spread from the shortest to the longest, in a
    shuffled order; different `offset`s give disjoint picks, so tests never share (cached) texts."""
    import random

    questions = sorted(set(json.loads((SHARED / "load/questions.json").read_text())), key=len)
    step = (len(questions) - 1 - offset) // (count - 1)
    picked = [questions[offset + k * step] for k in range(count)]
    random.Random(count + offset).shuffle(picked)
    return picked


# --- Shared by the issue 5 tests (cache, Redis, JWT, observability). ---

CACHE_STATUSES = ("HIT", "MISS", "PARTIAL")


def unique_text(label: str) -> str:
    """A sentence no other test (or earlier run against the same store) has sent: nothing caches it yet."""
    import uuid

    return f"{label}: how do I reset my password? (ref {uuid.uuid4().hex[:12]})"


# Makes sbert-host's HTTP cache pass a GET on to the component (RFC 9111: a request's `no-cache` must not be
# answered from a stored response), for tests of what the component itself does on every request.
ASK_COMPONENT = {"Cache-Control": "no-cache"}


def encode_get(server: Server, text: str, **kw) -> tuple[str, list]:
    """GET /v1/encode for `text`, answered by the component (not the host's HTTP cache): its `X-Cache` status,
    which is then the component's key-value cache's, and its vector (the request must succeed)."""
    headers = {**ASK_COMPONENT, **kw.pop("headers", {})}
    resp = server.get("/v1/encode", params={"query": text}, headers=headers, **kw)
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("x-cache") in CACHE_STATUSES, resp.headers
    return resp.headers["x-cache"], resp.json()["encoding"]


def log_records(log: str) -> list[dict]:
    """The host's output lines that are JSON objects (request lines, warnings), in order."""
    records = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def is_request_record(record: dict) -> bool:
    """Whether a log record is the one-per-request line (as opposed to a warning or an error)."""
    return {"method", "path", "status"} <= record.keys()


# sbert-host's log writer thread puts a request's line out just after its response: reads of the log wait
# at most this long for the lines they need.
LOG_SETTLE_S = 5


def log_once(srv: Server, ready) -> str:
    """The server's output as soon as `ready(output)` holds, or as it is after LOG_SETTLE_S (the caller's
    assertions then show what is missing)."""
    deadline = time.monotonic() + LOG_SETTLE_S
    while True:
        log = srv.log()
        if ready(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.02)


@contextlib.contextmanager
def serving(workdir: Path, **kw):
    """`start_server(workdir, **kw)` for one block; the host must still be alive at its end."""
    srv = start_server(workdir, **kw)
    try:
        yield srv
        assert srv.alive(), f"sbert-host died:\n{srv.log()}"
    finally:
        stop_server(srv)


# A cache bucket's value is its entries one after another (src/embed/cache.rs): the input's sha256,
# the expiry (u64), the token count (u32), then the vector's 384 f32.
CACHE_ENTRY_BYTES = 32 + 8 + 4 + 384 * 4


def is_embedding_key(key: str) -> bool:
    """A cache entry's key in the key-value store: `emb:v3:<bucket>` (src/embed/cache.rs)."""
    import re

    return re.fullmatch(r"emb:v3:\d+", key) is not None


# How long a recovering cache store (Redis back after its reconnection backoff, a disk with room again) may take
# before caching resumes. Generous: this bounds a polling loop and says nothing about speed.
CACHE_RECOVERY_S = 30


def caching_resumes(srv: Server, label: str) -> bool:
    """Polls with new texts until one is served MISS then HIT (the store takes writes and reads again)."""
    deadline = time.monotonic() + CACHE_RECOVERY_S
    attempt = 0
    while time.monotonic() < deadline:
        text = unique_text(f"{label} {attempt}")
        attempt += 1
        if encode_get(srv, text)[0] == "MISS" and encode_get(srv, text)[0] == "HIT":
            return True
        time.sleep(0.2)
    return False


# --- Shared by the retrieval API's tests (issue 21): the Cohere and TEI error shapes. ---


def assert_cohere_error(resp: requests.Response, status: int) -> str:
    """An error on /v1/rerank or /v2/rerank: Cohere's `{"message": "..."}` and nothing else; returns the message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"message"}, body
    assert isinstance(body["message"], str) and body["message"], body
    return body["message"]


# text-embeddings-inference's `error_type`s (its router's ErrorType, serialized by name), plus `Unauthorized`
# for a refused token, which TEI answers without a body.
TEI_ERROR_TYPES = {"Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty", "Unauthorized"}


def assert_tei_error(resp: requests.Response, status: int, error_type: str | None = None) -> str:
    """An error on a TEI route: `{"error": "...", "error_type": "..."}`; returns the message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error", "error_type"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert body["error_type"] in TEI_ERROR_TYPES, body
    if error_type is not None:
        assert body["error_type"] == error_type, body
    return body["error"]


def reference_item(reference: dict, text: str) -> dict:
    return next(item for item in reference["items"] if item["text"] == text)
