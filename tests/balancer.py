"""A real HAProxy on a free loopback port, configured by the repository's own deploy/haproxy.cfg (the file a
deployment uses; the replicas' addresses and the health-check interval come from the environment).
Install it with `scripts/apt_install.sh haproxy:haproxy` (`make test-services` does)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import requests

from conftest import ROOT, free_port, stop_process

CONFIG = ROOT / "deploy/haproxy.cfg"
STARTUP_TIMEOUT_S = 10
# The file's replicas, in order.
REPLICA_VARIABLES = ("SBERT_REPLICA_1", "SBERT_REPLICA_2", "SBERT_REPLICA_3")


class Balancer:
    """HAProxy in the foreground (`-db`), logging one line per request to `workdir/haproxy.log`."""

    def __init__(self, workdir: Path, replicas: list[str], check_interval: str = "250ms"):
        binary = shutil.which("haproxy")
        if binary is None:
            raise RuntimeError("haproxy is not installed: run scripts/apt_install.sh haproxy:haproxy")
        assert len(replicas) == len(REPLICA_VARIABLES), "deploy/haproxy.cfg names three replicas"
        self.binary = binary
        self.port = free_port()
        self.log_path = workdir / "haproxy.log"
        self.env = {**os.environ, "SBERT_LB_LISTEN": f"127.0.0.1:{self.port}",
                    "SBERT_CHECK_INTERVAL": check_interval, **dict(zip(REPLICA_VARIABLES, replicas))}
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Balancer":
        check = subprocess.run([self.binary, "-c", "-f", str(CONFIG)], env=self.env, capture_output=True, text=True)
        assert check.returncode == 0, f"{CONFIG} is invalid:\n{check.stdout}{check.stderr}"
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen([self.binary, "-db", "-f", str(CONFIG)], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.log()}")
            try:
                requests.get(self.base_url + "/v1/ping", timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not listen within {STARTUP_TIMEOUT_S}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
