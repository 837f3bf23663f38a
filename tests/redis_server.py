"""A real, throwaway `redis-server` for the Redis key-value tests.

It listens on a free loopback port, keeps nothing on disk (`--save "" --appendonly no`), and can be
stopped and started again on the same port, so a running sbert-host sees an outage and a recovery.
Install it with `scripts/apt_install.sh redis-server:redis-server`.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from conftest import free_port, stop_process

STARTUP_TIMEOUT_S = 10


class RedisServer:
    """One redis-server process at a time, always on the same port; its output goes to `workdir`."""

    def __init__(self, workdir: Path, port: int | None = None):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/apt_install.sh redis-server:redis-server")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        """Starts the server and waits until it answers PING."""
        assert self.process is None, "redis-server is already running"
        with open(self.workdir / f"redis-{self.port}.log", "a") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} (port {self.port} taken?)")
            try:
                if self.command("PING") == "PONG":
                    return self
            except (OSError, RuntimeError):  # not listening yet, or still loading
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {STARTUP_TIMEOUT_S}s")

    def stop(self) -> None:
        """Stops the server (its data is gone: nothing is persisted) and waits until the port is closed."""
        if self.process is None:
            return
        stop_process(self.process, timeout=10)
        self.process = None

    def kill(self) -> None:
        """Kills the server with SIGKILL, as a crash would: no clean shutdown, its data is gone."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def command(self, *args: str):
        """Sends one command and returns its decoded reply (str, int, None or list)."""
        request = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(arg.encode()), arg.encode()) for arg in args
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(request)
            return _read_reply(conn.makefile("rb"))

    def keys(self, pattern: str = "*") -> list[str]:
        """Every key matching `pattern`, by SCAN (never KEYS, which blocks a big server)."""
        found, cursor = [], "0"
        while True:
            cursor, batch = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
            found.extend(batch)
            if cursor == "0":
                return found


def _read_reply(stream):
    line = stream.readline()
    if not line:
        raise ConnectionError("redis-server closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"redis error: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = stream.read(int(rest) + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected redis reply {line!r}")
