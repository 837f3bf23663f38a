"""Bounded HTTP load on loopback for the fault, scale-out and soak runs.

Each worker is a thread with one keep-alive connection (the standard library's `http.client`); it sends the
calls its `next_call` gives it, one at a time, records every outcome (status, latency, headers; the body only
for non-2xx answers) and reconnects after a connection error. Threads, not asyncio: most of a worker's time
is spent blocked in `recv` (which releases the GIL), and the interpreter lock caps the client at about one of
the machine's two cores, so the server under test always keeps the other one.
"""
from __future__ import annotations

import http.client
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable


@dataclass(frozen=True)
class Call:
    """One request to send. `kind` groups outcomes in assertions and reports (for example "get-unique")."""

    method: str
    path: str
    body: bytes | None = None
    headers: dict = field(default_factory=dict)
    kind: str = ""


@dataclass
class Outcome:
    """What became of one call. `status` is None when no HTTP response came back (the connection was
    refused, reset or closed, or timed out); `error` then says which."""

    call: Call
    worker: int
    sent: float  # time.monotonic() just before the request was written
    done: float
    status: int | None
    error: str | None = None
    headers: dict = field(default_factory=dict)  # lower-cased names
    body: bytes = b""  # kept for answers outside 2xx only: they are the ones assertions look into

    @property
    def latency(self) -> float:
        return self.done - self.sent

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of `values`; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def statuses(outcomes: Iterable[Outcome]) -> Counter:
    """Outcomes counted by status; connection errors count under their error's type name."""
    return Counter(o.status if o.status is not None else o.error.split(":")[0] for o in outcomes)


class Load:
    """`workers` threads sending `next_call(worker, sequence)` to host:port until `stop()` (or `run`'s end).

    `on_outcome` receives every outcome (from the worker threads; it must be thread-safe); by default they are
    kept in `self.outcomes`. `pause(outcome)` may return seconds for that worker to wait before its next
    call (a client honouring Retry-After, for example); by default workers never wait.
    """

    def __init__(self, host: str, port: int, workers: int, next_call: Callable[[int, int], Call], *,
                 timeout: float = 60, on_outcome: Callable[[Outcome], None] | None = None,
                 pause: Callable[[Outcome], float] | None = None):
        self.host, self.port, self.timeout = host, port, timeout
        self.next_call = next_call
        self.pause = pause
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self.on_outcome = on_outcome or self._keep
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(n,), daemon=True, name=f"load-{n}")
                         for n in range(workers)]

    def _keep(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        """The outcomes kept so far (a copy)."""
        with self._lock:
            return list(self.outcomes)

    def start(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """Lets every worker finish its current call, then returns the kept outcomes."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a load worker did not finish its last call"
        return self.snapshot()

    def run(self, seconds: float) -> list[Outcome]:
        """Starts, sends for `seconds`, stops."""
        self.start()
        self._stopping.wait(seconds)
        return self.stop()

    def _work(self, worker: int) -> None:
        connection = None
        sequence = 0
        while not self._stopping.is_set():
            call = self.next_call(worker, sequence)
            sequence += 1
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            sent = time.monotonic()
            try:
                connection.request(call.method, call.path, body=call.body, headers=call.headers)
                response = connection.getresponse()
                body = response.read()
                outcome = Outcome(call, worker, sent, time.monotonic(), response.status,
                                  headers={k.lower(): v for k, v in response.getheaders()},
                                  body=b"" if 200 <= response.status < 300 else body)
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                outcome = Outcome(call, worker, sent, time.monotonic(), None, f"{type(error).__name__}: {error}")
                connection.close()
                connection = None
            self.on_outcome(outcome)
            wait = self.pause(outcome) if self.pause else 0
            if wait > 0:
                self._stopping.wait(wait)
        if connection is not None:
            connection.close()
