"""The machine's limit for answering a cached embedding: nginx serving the same JSON body as a static file.

The distribution's nginx (`make bench` installs the `nginx` package), started on a free loopback port with a
minimal configuration of its own in a temporary directory: keep-alive on, no access log, `location
/v1/encode` answering the body sbert-host gave for a cached query, so the same wrk script (query string and
Authorization header included, which nginx ignores) drives both servers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from conftest import free_port, stop_process

STARTUP_TIMEOUT_S = 10

CONFIG = """\
# Written by bench/nginx.py for one benchmark run.
daemon off;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/encode {{
            default_type application/json;
            alias {prefix}/encode.json;
        }}
    }}
}}
"""


class StaticNginx:
    """nginx serving `body` at /v1/encode on a free loopback port; a context manager that stops it."""

    def __init__(self, body: bytes, workers: int = os.cpu_count() or 1):
        if shutil.which("nginx") is None:
            raise RuntimeError("nginx is not installed (`make bench` installs the Debian package)")
        # Readable by nginx's worker user (it drops root), unlike a 0700 TemporaryDirectory.
        self.prefix = Path(tempfile.mkdtemp(prefix="sbert-bench-nginx-"))
        self.prefix.chmod(0o755)
        (self.prefix / "encode.json").write_bytes(body)
        (self.prefix / "encode.json").chmod(0o644)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        config = self.prefix / "nginx.conf"
        config.write_text(CONFIG.format(workers=workers, prefix=self.prefix, port=self.port))
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c", str(config), "-e", str(self.prefix / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(len(body))
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, size: int):
        started = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise RuntimeError(f"nginx did not answer within {STARTUP_TIMEOUT_S} s: {self.log_tail()}")
            try:
                response = requests.get(self.url + "/v1/encode?query=start", timeout=2)
                if response.status_code == 200 and len(response.content) == size:
                    return
                raise RuntimeError(f"nginx answered {response.status_code} with {len(response.content)} bytes")
            except requests.ConnectionError:
                time.sleep(0.02)

    def log_tail(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text()[-2000:] if log.exists() else "(no error log)"

    def stop(self):
        stop_process(self.proc, timeout=10)
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
