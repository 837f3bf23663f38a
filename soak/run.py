#!/usr/bin/env python3
"""`make soak`: one sbert-host under SOAK_SECONDS (default 600) of a realistic mix at 40 connections.

It passes when no request gets an unexpected status, the host's PSS (beside what its bounded HTTP cache holds,
from the `http_cache_bytes` metric) and open file descriptors at the end are within 10% of their value at a fifth
of the run (minute 2 of 10), and the p99 latency of every tenth of the
run (after the first) stays within 1.5× the median of those p99s. The report goes to target/soak/report.md
(and report.json); the exit status says whether it passed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "soak"))
from conftest import SHARED, free_port, host_binary, start_server, stop_server  # noqa: E402  (shared with the tests)
from load import Load, Outcome  # noqa: E402
from mix import Mix  # noqa: E402
from report import Interval, Sample, Soak, write  # noqa: E402
from traffic import UniqueQuestions  # noqa: E402

OUT_DIR = ROOT / "target" / "soak"
INTERVALS = 10
SAMPLES_PER_INTERVAL = 6
# How many examples of unexpected answers the report quotes.
EXAMPLES = 20


class Recorder:
    """Receives every outcome from the workers and files it under its tenth of the run."""

    def __init__(self, mix: Mix, started: float, interval_s: float):
        self.mix, self.started, self.interval_s = mix, started, interval_s
        self.lock = threading.Lock()
        self.latencies: dict[int, list[float]] = defaultdict(list)
        self.by_kind: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.unexpected: list[str] = []
        self.unexpected_count = 0

    def __call__(self, outcome: Outcome) -> None:
        index = min(int((outcome.sent - self.started) / self.interval_s), INTERVALS - 1)
        status = outcome.status if outcome.status is not None else outcome.error.split(":")[0]
        with self.lock:
            self.latencies[index].append(outcome.latency)
            self.by_kind[outcome.call.kind].append(outcome.latency)
            self.statuses[outcome.call.kind][status] += 1
            if outcome.status not in self.mix.expected(outcome.call):
                self.unexpected_count += 1
                if len(self.unexpected) < EXAMPLES:
                    detail = outcome.error or outcome.body[:200].decode(errors="replace")
                    self.unexpected.append(f"{outcome.call.kind} {outcome.call.method} "
                                           f"{outcome.call.path[:60]} -> {status}: {detail}")


def sample(pid: int, metrics_url: str, elapsed: float) -> Sample:
    """The host's PSS and RSS, open file descriptors and HTTP cache size now."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    cache_bytes = [float(line.split()[1]) for line in requests.get(metrics_url, timeout=10).text.splitlines()
                   if line.startswith("http_cache_bytes ")]
    if len(cache_bytes) != 1:
        raise RuntimeError(f"{metrics_url} has no http_cache_bytes sample")
    return Sample(elapsed, fields["Pss"] / 1024, fields["Rss"] / 1024, fds, cache_bytes[0] / (1 << 20))


def check_prerequisites() -> None:
    missing = []
    if not host_binary().is_file():
        missing.append(f"{host_binary()} (run `make build`)")
    if not (ROOT / "build/sbert_service.wasm").is_file():
        missing.append("build/sbert_service.wasm (run `make build`)")
    if not (SHARED / "load/questions.json").is_file():
        missing.append(f"{SHARED / 'load/questions.json'} (the shared load-test questions)")
    if not Path(os.environ.get("ORT_DYLIB_PATH", "")).is_file():
        missing.append("ONNX Runtime: set ORT_DYLIB_PATH to libonnxruntime.so (`make soak` does)")
    if missing:
        sys.exit("soak: missing:\n  " + "\n  ".join(missing))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--connections", type=int, default=40)
    args = parser.parse_args()
    check_prerequisites()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    interval_s = args.seconds / INTERVALS
    sample_s = interval_s / SAMPLES_PER_INTERVAL
    mix = Mix(UniqueQuestions("soak"))
    with tempfile.TemporaryDirectory(prefix="sbert-soak-") as tmp:
        metrics_port = free_port()
        srv = start_server(Path(tmp), extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"])
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            port = int(srv.base_url.rsplit(":", 1)[1])
            started = time.monotonic()
            recorder = Recorder(mix, started, interval_s)
            load = Load("127.0.0.1", port, args.connections, mix.next_call, on_outcome=recorder).start()
            samples = []
            print(f"soak: {args.seconds:.0f}s at {args.connections} connections; samples every {sample_s:.1f}s",
                  flush=True)
            while (elapsed := time.monotonic() - started) < args.seconds:
                samples.append(sample(srv.process.pid, metrics_url, elapsed))
                time.sleep(min(sample_s, max(0.0, args.seconds - elapsed)))
            # The last sample ("minute 10") is taken under load, like the others.
            samples.append(sample(srv.process.pid, metrics_url, time.monotonic() - started))
            load.stop()
            alive = srv.alive()
        finally:
            stop_server(srv)
        intervals = [Interval(n, interval_s, recorder.latencies[n]) for n in range(INTERVALS)]
        soak = Soak(args.seconds, args.connections, intervals, samples, recorder.by_kind, recorder.statuses,
                    {k.name: sorted(k.expected) for k in mix.kinds}, recorder.unexpected_count,
                    recorder.unexpected, alive, srv.process.returncode)
    passed = write(soak, OUT_DIR)
    print((OUT_DIR / "report.md").read_text())
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
