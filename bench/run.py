#!/usr/bin/env python3
"""`make bench`: every figure in one run on one machine, written as a Markdown report.

Scenarios:
 1. ceiling    the model in-process through the same ONNX Runtime library, one sentence at a time
               (and in length-sorted batches of 32, in one session and in one one-thread session per core side
               by side, as sbert-host's throughput sessions run), with the component's own tokenizer and pooling
 2. uncached   GET /v1/encode with unique questions (each in turn), cache off, 1 / 10 / 40 connections; and
               POST /v1/embeddings with one input at 1 connection
 3. original   the original load test: random questions with repeats, 10 connections, cache warm (answered
               by sbert-host's HTTP cache); again with `Cache-Control: no-cache`, so that an instance of the
               component answers each from its key-value cache; beside them the machine's limit for that
               answer: nginx serving the same JSON body as a static file (bench/nginx.py), same wrk settings
 4. batches    POST /v1/embeddings with 32 unique inputs, cache off; and bulk ingestion: 32 chunks of ~200
               tokens per request (the questions joined), beside the ceiling's sorted batches of the same chunks
 5. start-up (process start to the first 200) and memory (RSS, peak RSS, PSS and its sampled peak, and the
    cgroup-style charge: bench/memory.py) after every scenario
 6. int8       the quantized model (OpenAI `model` all-minilm-l6-v2-int8, served beside fp32): its accuracy on
               the shared reference and the truth set, its ceiling, and uncached POST /v1/embeddings at 1 and 10
               connections
 7. edge       the edge build (spin-edge.toml) on sbert-host in front of an origin sbert-host (the fast build):
               uncached GET /v1/encode at 1 / 10 / 40 connections through the edge, each beside the same load on
               the origin directly; 32-input batches through the edge; the original load test through the edge
               with its caches warm
 8. rerank     one new query against 100 documents (POST /v2/rerank), one client: with the documents in the
               cache (only the query is embedded), and with the cache off (all 101 inputs)
 plus sequential latency probes (bench/latency.py). The report is written by bench/report.py.

Each load scenario runs BENCH_SECONDS (default 15) seconds. The ceiling is measured between the scenarios
compared with it (BENCH_SECONDS / 3 each, at least 2 s: the machine's speed drifts within a run, so each
scenario is compared with the readings just before and after it). With warming the cache and checking accuracy
the whole run takes about 17 × BENCH_SECONDS plus a minute (178 s with BENCH_SECONDS=8), and the edge scenarios
about 10 × BENCH_SECONDS more.
Every server started here is stopped, whatever happens.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
HOST_BIN = TARGET / "release" / "sbert-host"
BENCH_BIN = TARGET / "release" / "sbert-bench"
WASM = ROOT / "build" / "sbert_service.wasm"
EDGE_WASM = ROOT / "build" / "sbert_service_edge.wasm"
FP32 = ROOT / "models/all-minilm-l6-v2/model.onnx"
INT8 = ROOT / "models/all-minilm-l6-v2-int8/model.onnx"
TOKENIZER = ROOT / "models/all-minilm-l6-v2/tokenizer.json"
QUESTIONS = SHARED / "load/questions.json"
OUT_DIR = ROOT / "target" / "bench"
KEY = "bench-key"
STARTUP_TIMEOUT_S = 60

INT8_MODEL_ID = "all-minilm-l6-v2-int8"
# Sequential rerank requests per probe: an uncached one embeds 101 inputs (tens of milliseconds or more), a cached
# one a single query.
RERANK_UNCACHED_SAMPLES = 20
RERANK_CACHED_SAMPLES = 100
# Any fixed seed: the same order in every run, so runs compare.
QUESTION_ORDER_SEED = 13

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "models"))
from conftest import free_port, stop_process  # noqa: E402  (shared with the tests)
import latency  # noqa: E402
import memory  # noqa: E402
from nginx import StaticNginx  # noqa: E402
from report import render  # noqa: E402


class BenchError(Exception):
    """A problem that stops the benchmark, described for the person who ran it."""


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def check_prerequisites():
    missing = [f"{path} (run `make build`)" for path in (HOST_BIN, BENCH_BIN, WASM, EDGE_WASM) if not path.is_file()]
    missing += [f"{path} (run `make models`)" for path in (FP32, INT8, TOKENIZER) if not path.is_file()]
    if not QUESTIONS.is_file():
        missing.append(f"{QUESTIONS} (the shared load-test questions)")
    library = os.environ.get("ORT_DYLIB_PATH")
    if not library or not Path(library).is_file():
        missing.append("ONNX Runtime: set ORT_DYLIB_PATH to libonnxruntime.so (`make bench` does)")
    if shutil.which("wrk") is None:
        missing.append("wrk (`make bench` installs it; or apt-get install wrk)")
    if shutil.which("nginx") is None:
        missing.append("nginx (`make bench` installs it; or apt-get install nginx)")
    if missing:
        raise BenchError("missing:\n  " + "\n  ".join(missing))


def busy_share(seconds: float = 3.0) -> float:
    """The share of every core's time that was not idle over the last `seconds` (/proc/stat). Unlike the load
    average, which still carries the minute before (`make bench`'s own build), this is what the run starts on."""
    def times() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle and iowait
        return sum(fields[:8]) - idle, sum(fields[:8])
    busy_before, total_before = times()
    time.sleep(seconds)
    busy_after, total_after = times()
    return (busy_after - busy_before) / max(total_after - total_before, 1)


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), platform.processor())
    isa = "AVX-512" if " avx512f" in cpuinfo else "AVX2" if " avx2" in cpuinfo else "SSE"
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    # `wrk --version` prints its version and usage, and exits with status 1.
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu} ({isa})", "cores": os.cpu_count(),
        # The instruction sets int8 inference depends on: VNNI (AVX-512 or AVX) has the int8 dot products.
        "cpu_flags": {flag: flag in flags for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")},
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(), "rustc": sh("rustc", "--version"),
        "wrk": " ".join(wrk_version.split()[:2]),
        "onnxruntime": Path(os.environ["ORT_DYLIB_PATH"]).resolve().name,
        "commit": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "load_before": os.getloadavg()[0],
        "busy_before": busy_share(),
    }


class Host:
    """sbert-host serving the component on a free port, with its start-up time and memory readings.
    A context manager: the process is stopped on leaving, whatever happened."""

    def __init__(self, workdir: Path, variables: dict[str, str], args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, manifest: str = "spin.toml"):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.metrics_port = free_port(), free_port()
        # Where the next `sequence` or `batch` wrk run starts in the questions.
        self.sequence_position = 0
        self.url = f"http://127.0.0.1:{self.port}"
        runtime_config = workdir / "runtime-config.toml"
        runtime_config.write_text(f'[key_value_store.default]\ntype = "spin"\npath = "{workdir / "kv.db"}"\n')
        env = {**os.environ, **(env or {}), "SPIN_VARIABLE_API_KEYS": KEY,
               **{f"SPIN_VARIABLE_{k.upper()}": v for k, v in variables.items()}}
        # A debugging setting, not a serving one: with it, wasmtime captures a backtrace for every request's
        # store teardown.
        for name in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE"):
            env.pop(name, None)
        self.log_path = workdir / f"host-{self.port}.log"
        self.log = open(self.log_path, "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(HOST_BIN), "up", "--from", str(manifest_for(workdir, manifest)),
             "--listen", f"127.0.0.1:{self.port}", "--runtime-config-file", str(runtime_config),
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}", *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        self.settings = self._startup_settings()

    def _wait_ready(self, started: float):
        headers = {"Authorization": f"Bearer {KEY}"}
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"sbert-host exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise BenchError(f"sbert-host did not answer within {STARTUP_TIMEOUT_S} s:\n{self.log_tail()}")
            try:
                response = requests.get(self.url + "/v1/encode?query=start", headers=headers, timeout=5)
                if response.status_code == 200:
                    return
                raise BenchError(f"GET /v1/encode answered {response.status_code}: {response.text[:300]}")
            except requests.ConnectionError:
                time.sleep(0.005)

    def _startup_settings(self) -> dict:
        """The fields of the host's start-up log records, up to its `ready` one: each unit logs its settings
        (wasi:nn its threads and sessions). The host's log writer thread may put them out just after the first
        answer, so they are looked for for up to a second."""
        deadline = time.monotonic() + 1
        while True:
            settings = {}
            for line in self.log_path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    settings.update(record)
                    if record.get("message") == "ready":
                        return settings
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.01)

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def memory(self) -> memory.Memory:
        return memory.read(self.proc.pid)

    def wait_idle(self, timeout_s: float = 30):
        """Returns once no request is in flight: the requests a load left running when its client stopped are done,
        so that they do not count against (or overlap with) the next scenario."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
            if re.search(r"^http_requests_in_flight 0$", text, re.M):
                return
            time.sleep(0.02)
        raise BenchError(f"{self.url} still had requests in flight after {timeout_s} s")

    def inference_totals(self) -> dict[str, float]:
        """ONNX runs, their rows, real tokens, positions (padding included) and seconds; rows' seconds waiting for
        a session; requests and their seconds (every route): so far, from the host's metrics."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text

        def value(name: str) -> float:
            """A metric's value, summed over its label sets."""
            return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))
        return {"runs": value("nn_inference_batch_size_count"), "rows": value("nn_inference_batch_size_sum"),
                "seconds": value("nn_inference_duration_seconds_sum"), "tokens": value("nn_tokens_processed_total"),
                "positions": value("nn_positions_run_total"), "waited": value("nn_queue_wait_seconds_sum"),
                "requests": value("http_request_duration_seconds_count"),
                "request_seconds": value("http_request_duration_seconds_sum")}

    def stop(self):
        stop_process(self.proc, timeout=20)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def manifest_for(workdir: Path, manifest: str) -> Path:
    """One of the project's manifests (spin.toml, spin-llm.toml, spin-portable.toml) with absolute paths to
    its component and models."""
    text = (ROOT / manifest).read_text()
    text = text.replace('source = "build/', f'source = "{ROOT}/build/')
    text = text.replace('"models/', f'"{ROOT}/models/')
    path = workdir / "spin.toml"
    path.write_text(text)
    return path


def wrk(host: Host | StaticNginx, questions: Path, mode: str, connections: int, seconds: int, batch: int = 32,
        model: str = "all-minilm-l6-v2") -> dict:
    """One wrk run and its figures, including (for sbert-host) what its ONNX Runtime session did meanwhile. wrk
    gets one thread: the server needs the cores more than the client. Modes `sequence`, `openai` and `batch`
    continue the host's walk through the questions where its previous run stopped."""
    is_host = isinstance(host, Host)
    if is_host:
        host.wait_idle()
    before = host.inference_totals() if is_host else None
    position = host.sequence_position if is_host else 0
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s",
               "-s", str(ROOT / "bench" / "wrk" / "scenario.lua"), host.url,
               "--", str(questions), KEY, mode, str(batch), str(position), "1", model]
    done = subprocess.run(command, capture_output=True, text=True)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({' '.join(command)}):\n{done.stdout}{done.stderr}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    r["connections"] = connections
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["non2xx"] + r["socket_errors"]
    if not is_host:
        return r
    host.sequence_position += {"sequence": 1, "openai": 1, "batch": batch}.get(mode, 0) * r["requests"]
    after = host.inference_totals()
    runs = after["runs"] - before["runs"]
    if runs == 0:  # no ONNX Runtime behind this build (the portable one infers inside the wasm)
        return r
    r["rows_per_run"] = (after["rows"] - before["rows"]) / max(runs, 1)
    r["run_ms"] = 1000 * (after["seconds"] - before["seconds"]) / max(runs, 1)
    # The share of the time a session was running: how close the load came to keeping ONNX Runtime busy.
    r["onnx_busy"] = (after["seconds"] - before["seconds"]) / (r["duration_us"] / 1e6)
    positions = after["positions"] - before["positions"]
    if positions:
        r["padding"] = 1 - (after["tokens"] - before["tokens"]) / positions
        r["us_per_position"] = 1e6 * (after["seconds"] - before["seconds"]) / positions
    # The mean request as the host timed it, and its parts: waiting for a session, and the run (per request
    # when each request is one run, as at one connection).
    requests_served = after["requests"] - before["requests"]
    if requests_served:
        r["host_request_ms"] = 1000 * (after["request_seconds"] - before["request_seconds"]) / requests_served
        r["queue_wait_ms"] = 1000 * (after["waited"] - before["waited"]) / max(after["rows"] - before["rows"], 1)
    return r


def ceiling(model: Path, questions: Path, seconds: int, threads: int, only: str | None = None,
            sessions: int = 1) -> dict:
    command = [str(BENCH_BIN), "--model", str(model), "--tokenizer", str(TOKENIZER),
               "--questions", str(questions), "--seconds", str(seconds), "--threads", str(threads),
               "--sessions", str(sessions), *(["--only", only] if only else [])]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"sbert-bench failed ({' '.join(command)}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def accuracy(model: Path, on_truth_set: bool) -> dict:
    """Cosine to sentence-transformers on the shared reference (and, for a quantized model, on the truth set
    `make models` builds), through ONNX Runtime in this process."""
    from truth import DEFAULT_TRUTH, compare, load_truth
    from verify import DEFAULT_REFERENCE, verify

    report = verify(model, TOKENIZER, DEFAULT_REFERENCE)
    result = {"mean_cosine": report.mean_cosine, "min_cosine": report.min_cosine,
              "batch_min_cosine": report.batch_min_cosine}
    if on_truth_set:
        if not DEFAULT_TRUTH.is_file():
            raise BenchError(f"{DEFAULT_TRUTH} is missing (run `make models`)")
        texts, truth = load_truth(DEFAULT_TRUTH)
        found = compare(model, texts, truth)
        result |= {"truth_mean_cosine": found.mean_cosine, "truth_min_cosine": found.min_cosine,
                   "truth_items": found.items, "truth_worst": found.worst_text[:40]}
    return result


def int8_refusal(host: Host) -> str | None:
    """Why this build does not serve the int8 model through OpenAI's `model` field, or None when it does."""
    response = requests.post(host.url + "/v1/embeddings", json={"model": INT8_MODEL_ID, "input": "hello world"},
                             headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    if response.status_code == 200:
        return None
    return f"{response.status_code}: {response.text[:200]}"


def edge_scenarios(tmp: Path, questions: Path, question_list: list[str], seconds: int, cache_env: dict) -> dict:
    """Issue 23: the edge build in front of an origin, on this machine's loopback. The origin is sbert-host serving
    the fast build with its cache off; uncached loads go through an edge with its cache off too, each right after
    the same load on the origin directly (same connections, same questions from the start), so that the two are
    compared within seconds of each other. The warm scenario uses a second edge with its caches on."""
    results: dict = {"uncached": {}}
    with Host(tmp / "origin", {"cache_ttl_seconds": "0"}, env=cache_env) as origin:
        edge_variables = {"inference_url": origin.url, "inference_token": KEY}
        with Host(tmp / "edge", {"cache_ttl_seconds": "0", **edge_variables}, env=cache_env,
                  manifest="spin-edge.toml") as edge:
            for connections in (1, 10, 40):
                direct = wrk(origin, questions, "sequence", connections, seconds)
                origin.wait_idle()
                through = wrk(edge, questions, "sequence", connections, seconds)
                results["uncached"][connections] = {"direct": direct, "edge": through}
            direct = wrk(origin, questions, "batch", 2, seconds)
            origin.wait_idle()
            results["batch32"] = {"direct": direct, "edge": wrk(edge, questions, "batch", 2, seconds)}
            results["memory_uncached"] = edge.memory().as_dict()
        with Host(tmp / "edge-cached", edge_variables, env=cache_env, manifest="spin-edge.toml") as edge:
            results["startup_s"] = edge.startup_s
            results["warm_hit_ratio"] = warm_cache(edge, question_list)
            results["original"] = wrk(edge, questions, "random", 10, seconds)
            results["original_component"] = wrk(edge, questions, "random-component", 10, seconds)
            results["memory_warm"] = edge.memory().as_dict()
    return results


def cached_answer(host: Host, question: str) -> bytes:
    """The body sbert-host answers for `question` from its cache (the one nginx then serves)."""
    response = requests.get(encode_url(host, question), headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    response.raise_for_status()
    if response.headers.get("X-Cache") != "HIT":
        raise BenchError(f"GET /v1/encode for a warmed question was not a cache hit: {response.headers}")
    return response.content


def encode_url(host: Host, question: str) -> str:
    """The URL bench/wrk/questions.lua asks `question` with (its `urlencode`: every byte but [A-Za-z0-9-_.~]
    percent-encoded), so that what is warmed here is what wrk asks: sbert-host's HTTP cache keys on the URL."""
    return f"{host.url}/v1/encode?query={urllib.parse.quote(question, safe='-_.~')}"


class Ceilings:
    """The fp32 single-sentence ceiling, measured between the scenarios compared with it. This machine's speed
    drifts by tens of percent within one run, so each scenario is compared with the mean of the measurements
    just before and just after it, not with a figure taken minutes away."""

    def __init__(self, questions: Path, seconds: int, threads: int):
        self.questions, self.seconds, self.threads = questions, seconds, threads
        self.readings: list[dict] = []
        self.side_by_side: list[dict] = []

    def measure(self, only: str | None = "single") -> dict:
        reading = ceiling(FP32, self.questions, self.seconds, self.threads, only)
        self.readings.append(reading)
        return reading

    def measure_side_by_side(self) -> None:
        """Sorted batches in one one-thread session per ceiling thread, side by side: the batch ceiling of
        sbert-host's throughput sessions, which run a graph's batches under load."""
        self.side_by_side.append(ceiling(FP32, self.questions, self.seconds, 1, "batches", self.threads))

    def compare(self, result: dict) -> dict:
        """Measures again after `result`'s scenario and gives it the mean of the readings around it."""
        before, after = self.readings[-1], self.measure()
        result["ceiling"] = {key: (before[key] + after[key]) / 2 for key in ("sentences_per_s", "p50_ms")}
        return result


def warm_cache(host: Host, questions: list[str]) -> float:
    """Asks every question once, as the load test asks them, and returns the share of cache hits after."""
    def get(session: requests.Session, question: str) -> requests.Response:
        response = session.get(encode_url(host, question), headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        response.raise_for_status()
        return response

    def ask_all(part: list[str]):
        with requests.Session() as session:
            for question in part:
                get(session, question)

    workers = 16
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(ask_all, [questions[i::workers] for i in range(workers)]))
    with requests.Session() as session:
        sample = questions[::max(len(questions) // 200, 1)]
        hits = sum(get(session, q).headers.get("X-Cache") == "HIT" for q in sample)
    return hits / len(sample)


def load_questions() -> tuple[list[str], Path]:
    """The load-test questions as the original test sends them (stripped, non-empty), also written one per
    line for wrk, in one fixed shuffled order. The file's own order is not uniform (its 1,000th to 1,500th
    questions average 22 tokens, the first 500 15), and the ceiling reads a few seconds' worth from the start
    while each scenario goes on where the last stopped: shuffled, every stretch of them has the same mix."""
    questions = [q.replace("\n", " ").strip() for q in json.loads(QUESTIONS.read_text())]
    questions = [q for q in questions if q]
    random.Random(QUESTION_ORDER_SEED).shuffle(questions)
    path = OUT_DIR / "questions.txt"
    path.write_text("\n".join(questions) + "\n")
    return questions, path


# Bulk ingestion (issue 24): requests of 32 chunks of about this many tokens, as a RAG indexer sends them.
CHUNK_TOKENS = 200


def load_chunks(questions: list[str]) -> Path:
    """Texts of about CHUNK_TOKENS tokens each (the questions joined in their shuffled order, as a document's
    chunks), one per line for wrk and the ceiling."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_truncation()
    chunks, current, tokens = [], [], 2  # [CLS] and [SEP]
    for question in questions:
        current.append(question)
        tokens += len(tokenizer.encode(question, add_special_tokens=False).ids)
        if tokens >= CHUNK_TOKENS:
            chunks.append(" ".join(current))
            current, tokens = [], 2
    path = OUT_DIR / "chunks.txt"
    path.write_text("\n".join(chunks) + "\n")
    return path


def run(seconds: int) -> dict:
    check_prerequisites()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    question_list, questions = load_questions()
    threads = os.cpu_count() or 1
    results: dict = {"machine": machine(), "seconds": seconds, "ceiling_threads": threads, "memory": {}}
    started = time.monotonic()
    ceilings = Ceilings(questions, max(seconds // 3, 2), threads)

    def step(what: str):
        print(f"[{time.monotonic() - started:5.0f} s] {what} ...", file=sys.stderr, flush=True)

    def load(host: Host, name: str, mode: str, connections: int, model: str = "all-minilm-l6-v2") -> dict:
        with memory.PeakPss(host.proc.pid) as peak:
            result = wrk(host, questions, mode, connections, seconds, model=model)
        reading = host.memory()
        reading.peak_pss_mib = max(peak.peak_mib, reading.pss_mib)
        results["memory"][name] = reading.as_dict()
        return result

    def compared(host: Host, name: str, mode: str, connections: int, model: str = "all-minilm-l6-v2") -> dict:
        """A scenario compared with the ceiling measured just before and just after it."""
        return ceilings.compare(load(host, name, mode, connections, model))

    step("ceiling: in-process ONNX Runtime")
    ceilings.measure(only=None)
    ceilings.measure_side_by_side()

    with tempfile.TemporaryDirectory(prefix="sbert-bench-") as tmp:
        tmp = Path(tmp)
        # A compilation cache of this run's own: the first server starts with it empty and compiles the
        # component; the others find it there, as after `make build`.
        cache_env = {"XDG_CACHE_HOME": str(tmp / "cache")}
        step("uncached single queries, 1 / 10 / 40 connections")
        with Host(tmp / "uncached", {"cache_ttl_seconds": "0"}, env=cache_env) as host:
            results["host"] = {k: host.settings.get(k) for k in ("nn_threads", "graph_sessions")}
            results["startup_cold_s"] = host.startup_s
            results["memory"]["idle"] = host.memory().as_dict()
            results["probe_short"] = latency.short_query_ms(host.url, KEY)
            results["uncached"] = {c: compared(host, f"uncached, {c} conn.", "sequence", c) for c in (1, 10, 40)}
            results["openai_1"] = compared(host, "POST /v1/embeddings, 1 conn.", "openai", 1)
            step("POST /v1/embeddings, 32 inputs")
            results["batch32"] = compared(host, "32-input batches", "batch", 2)
            step("bulk ingestion: 32 chunks of ~200 tokens per request, beside the ceiling for the same chunks")
            chunks = load_chunks(question_list)
            around = ceiling(FP32, chunks, ceilings.seconds, threads, "batches")
            results["bulk"] = wrk(host, chunks, "batch", 2, seconds)
            after = ceiling(FP32, chunks, ceilings.seconds, threads, "batches")
            results["bulk"]["ceiling_batch32"] = (around["batch32_sentences_per_s"]
                                                  + after["batch32_sentences_per_s"]) / 2
            results["probe_batch"] = latency.batch_vs_singles(host.url, KEY, question_list)
            step("rerank, one query against 100 documents, cache off")
            results["rerank_uncached"] = latency.rerank_ms(host.url, KEY, question_list, RERANK_UNCACHED_SAMPLES)
            step("int8 model (OpenAI `model` field), uncached, 1 / 10 connections")
            results["int8_refused"] = int8_refusal(host)
            if results["int8_refused"] is None:
                results["int8_uncached"] = {c: compared(host, f"int8, uncached, {c} conn.", "openai", c, INT8_MODEL_ID)
                                            for c in (1, 10)}

        # The other two builds on the same host (issue 11): Spin's llm interface over the same ONNX graph, and the
        # engine inside the wasm within Akamai Functions' 128 MiB per instance.
        for build, manifest, args in (("spin-llm", "spin-llm.toml", ()),
                                      ("portable", "spin-portable.toml", ("--request-memory", "128"))):
            step(f"{build} build, uncached, 1 / 10 connections")
            with Host(tmp / build, {"cache_ttl_seconds": "0"}, args=args, env=cache_env, manifest=manifest) as host:
                results.setdefault("builds", {})[build] = {
                    c: compared(host, f"{build}, uncached, {c} conn.", "sequence", c) for c in (1, 10)}

        step("edge → origin: uncached 1 / 10 / 40 connections beside the origin directly, batches, cache warm")
        results["edge"] = edge_scenarios(tmp, questions, question_list, seconds, cache_env)

        step("original load test, cache warm; then nginx with the same answer")
        with Host(tmp / "cached", {}, env=cache_env) as host:
            results["startup_warm_s"] = host.startup_s
            results["warm_hit_ratio"] = warm_cache(host, question_list)
            results["memory"]["cache warmed"] = host.memory().as_dict()
            results["original"] = load(host, "original load test", "random", 10)
            results["original_component"] = load(host, "original load test, no-cache", "random-component", 10)
            results["probe_cache"] = latency.cache_hit_vs_miss(host.url, KEY)
            step("rerank, one query against 100 cached documents")
            results["rerank_cached"] = latency.rerank_ms(host.url, KEY, question_list, RERANK_CACHED_SAMPLES)
            body = cached_answer(host, question_list[0])
        try:
            with StaticNginx(body) as nginx:
                results["nginx"] = wrk(nginx, questions, "random", 10, seconds)
                results["nginx"] |= {"body_bytes": len(body), "workers": nginx.workers}
        except RuntimeError as error:
            raise BenchError(str(error)) from error

    step("ceiling again, and the int8 model's")
    ceilings.measure(only="batches")
    ceilings.measure_side_by_side()
    readings = ceilings.readings
    results["ceilings"] = readings
    results["ceiling"] = {key: sum(c[key] for c in readings if key in c) / sum(key in c for c in readings)
                          for key in ("sentences_per_s", "p50_ms", "p99_ms", "batch32_sentences_per_s")}
    side_by_side = [c["batch32_sentences_per_s"] for c in ceilings.side_by_side]
    results["ceiling"]["side_by_side_batch32_sentences_per_s"] = sum(side_by_side) / len(side_by_side)
    results["ceiling_int8"] = ceiling(INT8, questions, ceilings.seconds, threads)
    step("accuracy against sentence-transformers (reference) and the truth set")
    results["accuracy"] = {"fp32": accuracy(FP32, on_truth_set=False), "int8": accuracy(INT8, on_truth_set=True)}
    results["total_s"] = time.monotonic() - started
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "15")),
                        help="duration of each load scenario (default: BENCH_SECONDS or 15)")
    args = parser.parse_args()
    # Leave through the `with` blocks (which stop the servers) on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    try:
        results = run(args.seconds)
    except BenchError as error:
        print(f"make bench: {error}", file=sys.stderr)
        return 1
    report = render(results)
    (OUT_DIR / "report.md").write_text(report)
    (OUT_DIR / "results.json").write_text(json.dumps(results, indent=2))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
