#!/usr/bin/env python3
"""`make bench`: every figure in one run on one machine, written as a Markdown report.

Scenarios (see README's Benchmarks section):
 1. ceiling    the model in-process through the same ONNX Runtime library and thread count
 2. uncached   GET /v1/encode with unique questions, cache off, 1 / 10 / 40 connections
 3. original   the original load test: random questions with repeats, 10 connections, cache warm
 4. batches    POST /v1/embeddings with 32 inputs
 5. start-up and memory
 6. int8       the quantized model's accuracy and speed
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OUT_DIR = ROOT / "target" / "bench"
KEY = "bench-key"

sys.path.insert(0, str(ROOT / "tests"))
from conftest import free_port  # noqa: E402  (one way to pick ports, shared with the tests)


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "SSE"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu} ({isa})", "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(), "rustc": sh("rustc", "--version"),
        "wrk": sh("wrk", "--version").splitlines()[0] if sh("wrk", "--version") != "unknown" else "unknown",
        "onnxruntime": Path(os.environ["ORT_DYLIB_PATH"]).resolve().name,
        "commit": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
    }


class Host:
    """sbert-host under test, with its start-up time and memory readings."""

    def __init__(self, workdir: Path, manifest: Path, variables: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rc = workdir / "runtime-config.toml"
        rc.write_text(f'[key_value_store.default]\ntype = "spin"\npath = "{workdir / "kv.db"}"\n')
        env = {**os.environ, "SPIN_VARIABLE_API_KEYS": KEY,
               **{f"SPIN_VARIABLE_{k.upper()}": v for k, v in variables.items()}}
        self.log = open(workdir / f"host-{self.port}.log", "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(TARGET / "release" / "sbert-host"), "up", "--from", str(manifest),
             "--listen", f"127.0.0.1:{self.port}", "--runtime-config-file", str(rc)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        headers = {"Authorization": f"Bearer {KEY}"}
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"sbert-host exited: see {self.log.name}")
            try:
                if requests.get(self.url + "/v1/encode?query=start", headers=headers, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.005)
        self.startup_s = time.monotonic() - started

    def memory_mib(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", status, re.M)}
        return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


def wrk(host: Host, questions: Path, mode: str, connections: int, seconds: int, batch: int = 32) -> dict:
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s",
         "-s", str(ROOT / "bench" / "wrk" / "scenario.lua"), host.url,
         "--", str(questions), KEY, mode, str(batch)],
        capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH_JSON "))
    r = json.loads(line.removeprefix("BENCH_JSON "))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["non2xx"] + r["socket_errors"]
    return r


def ceiling(model: Path, questions: Path, seconds: int, threads: int) -> dict:
    out = subprocess.run(
        [str(TARGET / "release" / "sbert-bench"), "--model", str(model),
         "--tokenizer", str(ROOT / "models/all-minilm-l6-v2/tokenizer.json"),
         "--questions", str(questions), "--seconds", str(seconds), "--threads", str(threads)],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def accuracy(model: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(ROOT / "models" / "verify.py"), str(model), "--json"],
        capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def manifest_for(model: Path, workdir: Path) -> Path:
    text = (ROOT / "spin.toml").read_text()
    text = text.replace('source = "build/', f'source = "{ROOT}/build/')
    text = text.replace('"models/all-minilm-l6-v2/model.onnx"', f'"{model}"')
    path = workdir / "spin.toml"
    path.write_text(text)
    return path


def warm_cache(host: Host, questions: list[str]):
    headers = {"Authorization": f"Bearer {KEY}"}
    for i in range(0, len(questions), 32):
        r = requests.post(host.url + "/v1/embeddings", headers=headers, timeout=120,
                          json={"model": "all-minilm-l6-v2", "input": questions[i:i + 32]})
        r.raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "15")),
                        help="duration of each load scenario (default 15; the whole run stays under 5 minutes)")
    args = parser.parse_args()
    d = args.seconds
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    question_list = [q.replace("\n", " ").strip() for q in json.loads((SHARED / "load/questions.json").read_text())]
    question_list = [q for q in question_list if q]
    questions = OUT_DIR / "questions.txt"
    questions.write_text("\n".join(question_list) + "\n")
    threads = os.cpu_count()
    fp32 = ROOT / "models/all-minilm-l6-v2/model.onnx"
    int8 = ROOT / "models/all-minilm-l6-v2-int8/model.onnx"
    results: dict = {"machine": machine(), "seconds": d, "threads": threads}

    print("ceiling (in-process ONNX Runtime) ...", file=sys.stderr)
    results["ceiling"] = ceiling(fp32, questions, d, threads)
    results["ceiling_int8"] = ceiling(int8, questions, d, threads)
    results["accuracy"] = {"fp32": accuracy(fp32), "int8": accuracy(int8)}

    with tempfile.TemporaryDirectory(prefix="sbert-bench-") as tmp:
        tmp = Path(tmp)
        print("uncached single queries ...", file=sys.stderr)
        host = Host(tmp, manifest_for(fp32, tmp), {"cache_ttl_seconds": "0"})
        results["startup_s"] = host.startup_s
        results["rss_idle_mib"] = host.memory_mib()[0]
        results["uncached"] = {c: wrk(host, questions, "unique", c, d) for c in (1, 10, 40)}
        print("batches of 32 ...", file=sys.stderr)
        results["batch32"] = wrk(host, questions, "batch", 2, d)
        results["rss_peak_mib"] = host.memory_mib()[1]
        host.stop()

        print("original load test, cache warm ...", file=sys.stderr)
        host = Host(tmp, manifest_for(fp32, tmp), {})
        warm_cache(host, question_list)
        results["original"] = wrk(host, questions, "random", 10, d)
        results["rss_peak_mib"] = max(results["rss_peak_mib"], host.memory_mib()[1])
        host.stop()

        print("int8 model, uncached ...", file=sys.stderr)
        (tmp / "int8").mkdir()
        host = Host(tmp / "int8", manifest_for(int8, tmp / "int8"), {"cache_ttl_seconds": "0"})
        results["int8_uncached_10"] = wrk(host, questions, "unique", 10, d)
        host.stop()

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
    b = r["batch32"]
    o = r["original"]
    batch_sps = b["rps"] * 32
    lines = [
        "# sbert-service benchmark",
        "",
        f"{m['date']} · {m['cpu']} · {m['cores']} cores · {m['memory_gib']} GiB · Linux {m['kernel']}",
        f"{m['rustc']} · {m['wrk']} · ONNX Runtime {m['onnxruntime']} · commit {m['commit']}",
        f"Settings: {r['seconds']} s per scenario, {r['threads']} intra-op threads, wrk with 2 threads.",
        "",
        "## Results",
        "",
        "| scenario | throughput | p50 | p99 | errors | vs ceiling |",
        "|---|---|---|---|---|---|",
        f"| ceiling: in-process ONNX Runtime, one sentence at a time | {c['sentences_per_s']:.0f} sentences/s | {c['p50_ms']:.2f} ms | {c['p99_ms']:.2f} ms | – | 1.00× |",
        f"| ceiling: in-process, length-sorted batches of 32 | {c['batch32_sentences_per_s']:.0f} sentences/s | – | – | – | {c['batch32_sentences_per_s'] / c['sentences_per_s']:.2f}× |",
    ]
    for conns, w in ((1, u1), (10, u10), (40, u40)):
        lines.append(f"| uncached GET /v1/encode, unique, {conns} conn. | {w['rps']:.0f} req/s | {ms(w['p50_us'])} | {ms(w['p99_us'])} | {w['errors']} | {w['rps'] / c['sentences_per_s']:.2f}× |")
    lines += [
        f"| original load test (random, repeats), 10 conn., cache warm | {o['rps']:.0f} req/s | {ms(o['p50_us'])} | {ms(o['p99_us'])} | {o['errors']} | {o['rps'] / c['sentences_per_s']:.1f}× |",
        f"| POST /v1/embeddings, 32 inputs, 2 conn. | {batch_sps:.0f} sentences/s ({b['rps']:.1f} req/s) | {ms(b['p50_us'])} | {ms(b['p99_us'])} | {b['errors']} | {batch_sps / c['sentences_per_s']:.2f}× |",
        "",
        f"Start-up (process start to first 200 of `/v1/encode`): {r['startup_s']:.2f} s. "
        f"RSS: {r['rss_idle_mib']:.0f} MiB idle, {r['rss_peak_mib']:.0f} MiB peak.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| uncached, 10 conn. ≥ 0.9× ceiling | {u10['rps'] / c['sentences_per_s']:.2f}× | {check(u10['rps'] >= 0.9 * c['sentences_per_s'])} |",
        f"| uncached, 1 conn. p50 within 1 ms of the ceiling's median | {u1['p50_us'] / 1000 - c['p50_ms']:+.2f} ms | {check(u1['p50_us'] / 1000 - c['p50_ms'] <= 1.0)} |",
        f"| uncached, 40 conn. ≥ 1.3× ceiling | {u40['rps'] / c['sentences_per_s']:.2f}× | {check(u40['rps'] >= 1.3 * c['sentences_per_s'])} |",
        f"| original load test, cache warm ≥ 5,000 req/s, p99 ≤ 10 ms | {o['rps']:.0f} req/s, p99 {ms(o['p99_us'])} | {check(o['rps'] >= 5000 and o['p99_us'] <= 10_000)} |",
        f"| 32-input batches ≥ 1.5× ceiling | {batch_sps / c['sentences_per_s']:.2f}× | {check(batch_sps >= 1.5 * c['sentences_per_s'])} |",
        f"| start-up ≤ 2 s | {r['startup_s']:.2f} s | {check(r['startup_s'] <= 2)} |",
        f"| RSS ≤ 400 MB at peak | {r['rss_peak_mib'] * 1.048576:.0f} MB | {check(r['rss_peak_mib'] * 1.048576 <= 400)} |",
        "",
        "## int8 quantized model",
        "",
        "| model | mean cosine | min cosine | ceiling sentences/s | uncached 10 conn. req/s |",
        "|---|---|---|---|---|",
        f"| fp32 (default) | {r['accuracy']['fp32']['mean_cosine']:.6f} | {r['accuracy']['fp32']['min_cosine']:.6f} | {c['sentences_per_s']:.0f} | {u10['rps']:.0f} |",
        f"| int8 | {r['accuracy']['int8']['mean_cosine']:.6f} | {r['accuracy']['int8']['min_cosine']:.6f} | {r['ceiling_int8']['sentences_per_s']:.0f} | {r['int8_uncached_10']['rps']:.0f} |",
        "",
        "fp32 stays the default unless int8 keeps a minimum cosine ≥ 0.99 against sentence-transformers.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
