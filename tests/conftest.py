"""Integration-test harness: boots the real sbert-host with the real component and model.

Every test talks HTTP to a live server on a free loopback port. Nothing here fakes inference.
"""
from __future__ import annotations

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


def start_server(workdir: Path, *, manifest: Path = ROOT / "spin.toml",
                 extra_args: list[str] = (), env: dict | None = None) -> Server:
    """Start sbert-host on a free port with a runtime config that keeps state in `workdir`."""
    runtime_config = workdir / "runtime-config.toml"
    if not runtime_config.exists():
        runtime_config.write_text(
            '[key_value_store.default]\ntype = "spin"\npath = "%s"\n' % (workdir / "kv.db")
        )
    port = free_port()
    log_path = workdir / f"host-{port}.log"
    child_env = {**os.environ, "SPIN_VARIABLE_API_KEYS": ",".join(API_KEYS), **(env or {})}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(host_binary()), "up", "--from", str(manifest),
             "--listen", f"127.0.0.1:{port}", "--runtime-config-file", str(runtime_config),
             *extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=workdir,
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


def stop_server(server: Server) -> None:
    if server.alive():
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


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
