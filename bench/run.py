#!/usr/bin/env python3
"""`make bench`: every figure in one run on one machine, written as a Markdown report.

Scenarios:
 1. ceiling    the model in-process through the same ONNX Runtime library, one sentence at a time
               (and in length-sorted batches of 32), with the component's own tokenizer and pooling
 2. uncached   GET /v1/encode with unique questions (each in turn), cache off, 1 / 10 / 40 connections
 3. original   the original load test: random questions with repeats, 10 connections, cache warm
 4. batches    POST /v1/embeddings with 32 unique inputs, cache off
 5. start-up (process start to the first 200) and memory (RSS idle and at peak)
 6. int8       the quantized model's accuracy and speed
 plus sequential latency probes (bench/latency.py).

Each load scenario runs BENCH_SECONDS (default 15) seconds and the ceiling 3 × BENCH_SECONDS in all; with
warming the cache and checking accuracy the whole run takes about 9 × BENCH_SECONDS plus two minutes.
Every server started here is stopped, whatever happens.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
HOST_BIN = TARGET / "release" / "sbert-host"
BENCH_BIN = TARGET / "release" / "sbert-bench"
WASM = ROOT / "build" / "sbert_service.wasm"
FP32 = ROOT / "models/all-minilm-l6-v2/model.onnx"
INT8 = ROOT / "models/all-minilm-l6-v2-int8/model.onnx"
TOKENIZER = ROOT / "models/all-minilm-l6-v2/tokenizer.json"
QUESTIONS = SHARED / "load/questions.json"
OUT_DIR = ROOT / "target" / "bench"
KEY = "bench-key"
STARTUP_TIMEOUT_S = 60

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from conftest import free_port, stop_process  # noqa: E402  (shared with the tests)
import latency  # noqa: E402


class BenchError(Exception):
    """A problem that stops the benchmark, described for the person who ran it."""


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def check_prerequisites():
    missing = [f"{path} (run `make build`)" for path in (HOST_BIN, BENCH_BIN, WASM) if not path.is_file()]
    missing += [f"{path} (run `make models`)" for path in (FP32, INT8, TOKENIZER) if not path.is_file()]
    if not QUESTIONS.is_file():
        missing.append(f"{QUESTIONS} (the shared load-test questions)")
    library = os.environ.get("ORT_DYLIB_PATH")
    if not library or not Path(library).is_file():
        missing.append("ONNX Runtime: set ORT_DYLIB_PATH to libonnxruntime.so (`make bench` does)")
    if shutil.which("wrk") is None:
        missing.append("wrk (`make bench` installs it; or apt-get install wrk)")
    if missing:
        raise BenchError("missing:\n  " + "\n  ".join(missing))


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), platform.processor())
    isa = "AVX-512" if " avx512f" in cpuinfo else "AVX2" if " avx2" in cpuinfo else "SSE"
    # `wrk --version` prints its version and usage, and exits with status 1.
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu} ({isa})", "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(), "rustc": sh("rustc", "--version"),
        "wrk": " ".join(wrk_version.split()[:2]),
        "onnxruntime": Path(os.environ["ORT_DYLIB_PATH"]).resolve().name,
        "commit": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "load_before": os.getloadavg()[0],
    }


class Host:
    """sbert-host serving the component on a free port, with its start-up time and memory readings.
    A context manager: the process is stopped on leaving, whatever happened."""

    def __init__(self, workdir: Path, model: Path, variables: dict[str, str], args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None):
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
            [str(HOST_BIN), "up", "--from", str(manifest_for(model, workdir)),
             "--listen", f"127.0.0.1:{self.port}", "--runtime-config-file", str(runtime_config),
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}", *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        self.settings = self._ready_line()

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

    def _ready_line(self) -> dict:
        """The host's `ready` log record: its inference settings."""
        self.log.flush()
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("message") == "ready":
                    return record
        return {}

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def memory_mib(self) -> tuple[float, float, float]:
        """(current RSS, peak RSS, current PSS) in MiB. RSS counts a page once per mapping of it: each
        instance slot that has read a page of the component's snapshot maps that same page, so under load
        RSS overstates what the process holds. PSS divides shared pages among their mappings."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", status, re.M)}
        rollup = Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text()
        pss = int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))
        return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024, pss / 1024

    def inference_totals(self) -> dict[str, float]:
        """ONNX runs, their rows and their seconds so far, from the host's metrics."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        rows = dict(re.findall(r"^nn_inference_batch_size_(count|sum) (\S+)$", text, re.M))
        seconds = re.search(r"^nn_inference_duration_seconds_sum (\S+)$", text, re.M)
        return {"runs": float(rows.get("count", 0)), "rows": float(rows.get("sum", 0)),
                "seconds": float(seconds.group(1)) if seconds else 0.0}

    def stop(self):
        stop_process(self.proc, timeout=20)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def manifest_for(model: Path, workdir: Path) -> Path:
    """The project's spin.toml, with absolute paths and `model` as the graph."""
    text = (ROOT / "spin.toml").read_text()
    text = text.replace('source = "build/', f'source = "{ROOT}/build/')
    text = text.replace('"models/all-minilm-l6-v2/model.onnx"', f'"{model}"')
    path = workdir / "spin.toml"
    path.write_text(text)
    return path


def wrk(host: Host, questions: Path, mode: str, connections: int, seconds: int, batch: int = 32) -> dict:
    """One wrk run and its figures, including what the host's ONNX Runtime session did meanwhile. wrk gets one
    thread: the server needs the cores more than the client. Modes `sequence` and `batch` continue the host's
    walk through the questions where its previous run stopped."""
    before = host.inference_totals()
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s",
               "-s", str(ROOT / "bench" / "wrk" / "scenario.lua"), host.url,
               "--", str(questions), KEY, mode, str(batch), str(host.sequence_position), "1"]
    done = subprocess.run(command, capture_output=True, text=True)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({' '.join(command)}):\n{done.stdout}{done.stderr}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    r["connections"] = connections
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    host.sequence_position += {"sequence": 1, "batch": batch}.get(mode, 0) * r["requests"]
    r["errors"] = r["non2xx"] + r["socket_errors"]
    after = host.inference_totals()
    runs = after["runs"] - before["runs"]
    r["rows_per_run"] = (after["rows"] - before["rows"]) / max(runs, 1)
    r["run_ms"] = 1000 * (after["seconds"] - before["seconds"]) / max(runs, 1)
    # The share of the time a session was running: how close the load came to keeping ONNX Runtime busy.
    r["onnx_busy"] = (after["seconds"] - before["seconds"]) / (r["duration_us"] / 1e6)
    return r


def ceiling(model: Path, questions: Path, seconds: int, threads: int) -> dict:
    command = [str(BENCH_BIN), "--model", str(model), "--tokenizer", str(TOKENIZER),
               "--questions", str(questions), "--seconds", str(seconds), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"sbert-bench failed ({' '.join(command)}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def accuracy(model: Path) -> dict:
    command = [sys.executable, str(ROOT / "models" / "verify.py"), str(model), "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"models/verify.py gave no JSON ({' '.join(command)}):\n{done.stdout}{done.stderr}")


def warm_cache(host: Host, questions: list[str]) -> float:
    """Asks every question once, as the load test asks them, and returns the share of cache hits after."""
    def get(session: requests.Session, question: str) -> requests.Response:
        response = session.get(host.url + "/v1/encode", params={"query": question},
                               headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
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
    line for wrk."""
    questions = [q.replace("\n", " ").strip() for q in json.loads(QUESTIONS.read_text())]
    questions = [q for q in questions if q]
    path = OUT_DIR / "questions.txt"
    path.write_text("\n".join(questions) + "\n")
    return questions, path


def run(seconds: int) -> dict:
    check_prerequisites()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    question_list, questions = load_questions()
    threads = os.cpu_count() or 1
    results: dict = {"machine": machine(), "seconds": seconds, "ceiling_threads": threads, "rss_mib": {}}
    started = time.monotonic()
    # Half of the ceiling's time before the servers, half after: the machine's speed drifts.
    ceiling_seconds = max(seconds // 2, 3)

    def step(what: str):
        print(f"[{time.monotonic() - started:5.0f} s] {what} ...", file=sys.stderr, flush=True)

    def load(host: Host, name: str, mode: str, connections: int) -> dict:
        result = wrk(host, questions, mode, connections, seconds)
        results["rss_mib"][name] = host.memory_mib()
        return result

    step("ceiling: in-process ONNX Runtime")
    ceilings = [ceiling(FP32, questions, ceiling_seconds, threads)]

    with tempfile.TemporaryDirectory(prefix="sbert-bench-") as tmp:
        tmp = Path(tmp)
        # A compilation cache of this run's own: the first server starts with it empty and compiles the
        # component; the others find it there, as after `make build`.
        cache_env = {"XDG_CACHE_HOME": str(tmp / "cache")}
        step("uncached single queries, 1 / 10 / 40 connections")
        with Host(tmp / "uncached", FP32, {"cache_ttl_seconds": "0"}, env=cache_env) as host:
            results["host"] = {k: host.settings.get(k) for k in ("nn_threads", "nn_sessions")}
            results["startup_cold_s"] = host.startup_s
            results["rss_mib"]["idle"] = host.memory_mib()
            results["probe_short"] = latency.short_query_ms(host.url, KEY)
            results["uncached"] = {c: load(host, f"uncached, {c} conn.", "sequence", c) for c in (1, 10, 40)}
            step("POST /v1/embeddings, 32 inputs")
            results["batch32"] = load(host, "32-input batches", "batch", 2)
            results["probe_batch"] = latency.batch_vs_singles(host.url, KEY, question_list)

        step("original load test, cache warm")
        with Host(tmp / "cached", FP32, {}, env=cache_env) as host:
            results["startup_warm_s"] = host.startup_s
            results["warm_hit_ratio"] = warm_cache(host, question_list)
            results["rss_mib"]["cache warmed"] = host.memory_mib()
            results["original"] = load(host, "original load test", "random", 10)
            results["probe_cache"] = latency.cache_hit_vs_miss(host.url, KEY)

        step("int8 model, uncached, 10 connections")
        with Host(tmp / "int8", INT8, {"cache_ttl_seconds": "0"}, env=cache_env) as host:
            results["int8_uncached_10"] = wrk(host, questions, "sequence", 10, seconds)

    step("ceiling again, and the int8 model's")
    ceilings.append(ceiling(FP32, questions, ceiling_seconds, threads))
    results["ceilings"] = ceilings
    results["ceiling"] = {key: sum(c[key] for c in ceilings) / len(ceilings)
                          for key in ("sentences_per_s", "p50_ms", "p99_ms", "batch32_sentences_per_s")}
    results["ceiling_int8"] = ceiling(INT8, questions, ceiling_seconds, threads)
    step("accuracy against sentence-transformers")
    results["accuracy"] = {"fp32": accuracy(FP32), "int8": accuracy(INT8)}
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


def ms(us: float) -> str:
    return f"{us / 1000:.1f} ms"


def check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(r: dict) -> str:
    m, c = r["machine"], r["ceiling"]
    u1, u10, u40 = (r["uncached"][k] for k in (1, 10, 40))
    b, o = r["batch32"], r["original"]
    single = c["sentences_per_s"]
    batch_sps = b["rps"] * 32
    host = r["host"]
    pb, ps, pc = r["probe_batch"], r["probe_short"], r["probe_cache"]
    spread = " / ".join(f"{x['sentences_per_s']:.0f}" for x in r["ceilings"])
    rss_peak = max(peak for _, peak, _ in r["rss_mib"].values())
    pss_max = max(pss for _, _, pss in r["rss_mib"].values())
    loads = (u1, u10, u40, o, b)

    def load_row(name: str, w: dict, throughput: str, ratio: str) -> str:
        return (f"| {name} | {throughput} | {ms(w['p50_us'])} | {ms(w['p99_us'])} | {w['errors']} "
                f"| {w['rows_per_run']:.1f} | {w['run_ms']:.1f} ms | {w['onnx_busy']:.0%} | {ratio} |")

    lines = [
        "# sbert-service benchmark",
        "",
        f"{m['date']} · {m['cpu']} · {m['cores']} cores · {m['memory_gib']} GiB · Linux {m['kernel']}  ",
        f"{m['rustc']} · {m['wrk']} · ONNX Runtime {m['onnxruntime']} · commit {m['commit']}  ",
        f"Settings: {r['seconds']} s per load scenario, total run {r['total_s']:.0f} s; load average before "
        f"{m['load_before']:.2f}. sbert-host with its defaults: {host['nn_sessions']} ONNX Runtime session(s) × "
        f"{host['nn_threads']} intra-op threads, cross-request batching. Ceiling: one session × "
        f"{r['ceiling_threads']} intra-op threads, measured before and after the servers ({spread} sentences/s; "
        f"the mean is used). wrk: 1 thread, on the same machine.",
        "",
        "## Results",
        "",
        "| scenario | throughput | p50 | p99 | errors | rows per ONNX run | ONNX run | ONNX busy | vs ceiling |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| 1. ceiling: in-process ONNX Runtime, one sentence at a time | {single:.0f} sentences/s "
        f"| {c['p50_ms']:.2f} ms | {c['p99_ms']:.2f} ms | – | 1 | – | – | 1.00× |",
        f"| 1. ceiling: in-process, length-sorted batches of 32 | {c['batch32_sentences_per_s']:.0f} sentences/s "
        f"| – | – | – | 32 | – | – | {c['batch32_sentences_per_s'] / single:.2f}× |",
    ]
    for w in (u1, u10, u40):
        lines.append(load_row(f"2. uncached GET /v1/encode, unique questions, {w['connections']} conn.", w,
                              f"{w['rps']:.0f} req/s", f"{w['rps'] / single:.2f}×"))
    lines += [
        load_row(f"3. original load test (random questions, repeats), 10 conn., cache warm "
                 f"({r['warm_hit_ratio']:.0%} hits after warming)", o, f"{o['rps']:.0f} req/s",
                 f"{o['rps'] / single:.1f}×"),
        load_row("4. POST /v1/embeddings, 32 unique inputs, 2 conn.", b,
                 f"{batch_sps:.0f} sentences/s ({b['rps']:.1f} req/s)", f"{batch_sps / single:.2f}×"),
        "",
        "ONNX run: the mean duration of one ONNX Runtime run; ONNX busy: the share of the time a run was going.",
        "",
        f"5. Start-up (process start to the first 200 of `GET /v1/encode`): {r['startup_warm_s']:.2f} s with the "
        "component in wasmtime's compilation cache (as `make build` leaves it: `sbert-host compile`), "
        f"{r['startup_cold_s']:.2f} s with an empty cache (the host compiles the component while ONNX Runtime "
        "loads the model). Memory of the server process at the end of each scenario, MiB (RSS / peak RSS / PSS): "
        + "; ".join(f"{name} {now:.0f} / {peak:.0f} / {pss:.0f}" for name, (now, peak, pss) in r["rss_mib"].items())
        + ". RSS counts the component's snapshot pages once per instance slot that maps them (one slot per "
        "concurrent request); PSS shares them out, so it is what the process really holds.",
        "",
        f"Sequential probes (one client, cache off unless stated): `GET /v1/encode?query=hello world` median "
        f"{ps['median_ms']:.2f} ms (p90 {ps['p90_ms']:.2f} ms); 32 inputs in one POST /v1/embeddings "
        f"{pb['batch_ms']:.0f} ms vs 32 sequential GETs {pb['singles_ms']:.0f} ms ({pb['speedup']:.1f}×); "
        f"cache on: miss {pc['miss_ms']:.2f} ms, hit {pc['hit_ms']:.2f} ms.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| uncached, 10 conn. ≥ 0.9× ceiling | {u10['rps'] / single:.2f}× ({u10['rps']:.0f} req/s) "
        f"| {check(u10['rps'] >= 0.9 * single)} |",
        f"| uncached, 1 conn. p50 within 1 ms of the ceiling's median | {ms(u1['p50_us'])} vs {c['p50_ms']:.2f} ms: "
        f"{u1['p50_us'] / 1000 - c['p50_ms']:+.2f} ms | {check(u1['p50_us'] / 1000 - c['p50_ms'] <= 1.0)} |",
        f"| uncached, 40 conn. ≥ 1.3× ceiling | {u40['rps'] / single:.2f}× ({u40['rps']:.0f} req/s) "
        f"| {check(u40['rps'] >= 1.3 * single)} |",
        f"| original load test, cache warm: ≥ 5,000 req/s, p99 ≤ 10 ms | {o['rps']:.0f} req/s, p99 {ms(o['p99_us'])} "
        f"| {check(o['rps'] >= 5000 and o['p99_us'] <= 10_000)} |",
        f"| 32-input batches ≥ 1.5× ceiling | {batch_sps / single:.2f}× | {check(batch_sps >= 1.5 * single)} |",
        f"| start-up ≤ 2 s | {r['startup_warm_s']:.2f} s after `make build`, {r['startup_cold_s']:.2f} s with an "
        f"empty compilation cache | {check(r['startup_warm_s'] <= 2)} |",
        f"| RSS ≤ 400 MB at peak | {rss_peak * 1.048576:.0f} MB (PSS at most {pss_max * 1.048576:.0f} MB) "
        f"| {check(rss_peak * 1.048576 <= 400)} |",
        f"| no errors | {sum(w['errors'] for w in loads)} | {check(all(w['errors'] == 0 for w in loads))} |",
        "",
        "## 6. int8 quantized model",
        "",
        "| model | mean cosine | min cosine | ceiling sentences/s | uncached 10 conn. req/s |",
        "|---|---|---|---|---|",
        f"| fp32 (default) | {r['accuracy']['fp32']['mean_cosine']:.6f} | {r['accuracy']['fp32']['min_cosine']:.6f} "
        f"| {single:.0f} | {u10['rps']:.0f} |",
        f"| int8 | {r['accuracy']['int8']['mean_cosine']:.6f} | {r['accuracy']['int8']['min_cosine']:.6f} "
        f"| {r['ceiling_int8']['sentences_per_s']:.0f} | {r['int8_uncached_10']['rps']:.0f} |",
        "",
        "fp32 stays the default unless int8 keeps a minimum cosine ≥ 0.99 against sentence-transformers.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
