"""The soak's verdicts and its report (Markdown for people, JSON for tools)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from load import percentile

# The bounds: PSS (beside what the bounded HTTP cache holds) and open file descriptors at minute 10 within
# 10% of minute 2 (scaled to the run's length), and a p99 that does not drift: every tenth's p99 (after the first, which warms up) within 1.5× of
# the median of those p99s.
DRIFT_BOUND = 0.10
DRIFT_FROM = 0.2  # minute 2 of 10
P99_SPREAD_BOUND = 1.5


@dataclass
class Interval:
    index: int
    seconds: float
    latencies: list[float]

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


@dataclass
class Sample:
    elapsed: float
    pss_mib: float
    rss_mib: float
    fds: int
    # What the host's HTTP cache holds (its `http_cache_bytes` metric): bounded by `--http-cache-mib`, it fills
    # with the mix's unique GETs for most of the run, which is growth by design, not a leak.
    http_cache_mib: float

    @property
    def pss_beside_cache_mib(self) -> float:
        return self.pss_mib - self.http_cache_mib


@dataclass
class Soak:
    seconds: float
    connections: int
    intervals: list[Interval]
    samples: list[Sample]
    latencies_by_kind: dict[str, list[float]]
    statuses_by_kind: dict[str, dict]
    expected_by_kind: dict[str, list[int]]
    unexpected: int
    unexpected_examples: list[str]
    host_alive_at_end: bool
    host_exit_code: int | None


def drift(soak: Soak) -> dict:
    """PSS and file descriptors at the end against the sample nearest `DRIFT_FROM` of the run."""
    start = min(soak.samples, key=lambda s: abs(s.elapsed - DRIFT_FROM * soak.seconds))
    end = soak.samples[-1]
    return {
        "from_s": round(start.elapsed, 1), "to_s": round(end.elapsed, 1),
        "pss_from_mib": round(start.pss_mib, 1), "pss_to_mib": round(end.pss_mib, 1),
        "http_cache_from_mib": round(start.http_cache_mib, 1), "http_cache_to_mib": round(end.http_cache_mib, 1),
        "pss_drift": (end.pss_beside_cache_mib - start.pss_beside_cache_mib) / start.pss_beside_cache_mib,
        "fds_from": start.fds, "fds_to": end.fds,
        "fds_drift": (end.fds - start.fds) / start.fds,
    }


def verdicts(soak: Soak) -> dict[str, tuple[bool, str]]:
    moved = drift(soak)
    p99s = [interval.p99_ms for interval in soak.intervals[1:]]
    median = statistics.median(p99s)
    worst = max(p99s)
    return {
        "no unexpected status": (soak.unexpected == 0, f"{soak.unexpected} unexpected"),
        "host alive to the end": (soak.host_alive_at_end and soak.host_exit_code == 0,
                                  f"alive {soak.host_alive_at_end}, exit code {soak.host_exit_code}"),
        "PSS drift within 10%, beside the HTTP cache's bytes": (
            abs(moved["pss_drift"]) <= DRIFT_BOUND,
            f"PSS {moved['pss_from_mib']} → {moved['pss_to_mib']} MiB, of which the HTTP cache "
            f"{moved['http_cache_from_mib']} → {moved['http_cache_to_mib']} MiB: {moved['pss_drift']:+.1%} beside it"),
        "open files drift within 10%": (abs(moved["fds_drift"]) <= DRIFT_BOUND,
                                        f"{moved['fds_from']} → {moved['fds_to']} ({moved['fds_drift']:+.1%})"),
        "p99 stable": (worst <= P99_SPREAD_BOUND * median,
                       f"worst tenth {worst:.0f} ms, median {median:.0f} ms ({worst / median:.2f}×)"),
    }


def _sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(soak: Soak, judged: dict) -> str:
    root = Path(__file__).resolve().parent.parent
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(len(i.latencies) for i in soak.intervals)
    lines = [
        "# Soak report", "",
        f"{now}, commit {_sh('git', '-C', str(root), 'rev-parse', '--short', 'HEAD')}, {os.cpu_count()} cores, "
        f"{platform.release()}: {soak.seconds:.0f} s at {soak.connections} connections, {total:,} requests "
        f"({total / soak.seconds:.0f}/s). The client runs on the same cores as the host.", "",
        "| verdict | result | figures |", "|---|---|---|",
        *[f"| {name} | {'pass' if ok else '**FAIL**'} | {figures} |" for name, (ok, figures) in judged.items()],
        "", "## Mix", "", "| kind | expected | requests | statuses | p50 ms | p99 ms |", "|---|---|---|---|---|---|",
    ]
    for kind, latencies in sorted(soak.latencies_by_kind.items()):
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(soak.statuses_by_kind[kind].items(), key=str))
        lines.append(f"| {kind} | {soak.expected_by_kind[kind]} | {len(latencies):,} | {counts} | "
                     f"{percentile(latencies, 50) * 1000:.1f} | {percentile(latencies, 99) * 1000:.1f} |")
    lines += ["", "## Tenths of the run", "",
              "| tenth | from s | requests/s | p50 ms | p99 ms | PSS MiB | HTTP cache MiB | RSS MiB | open fds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for interval in soak.intervals:
        at = (interval.index + 1) * interval.seconds
        sample = min(soak.samples, key=lambda s: abs(s.elapsed - at))
        lines.append(f"| {interval.index + 1} | {interval.index * interval.seconds:.0f} | "
                     f"{len(interval.latencies) / interval.seconds:.0f} | {interval.p50_ms:.1f} | "
                     f"{interval.p99_ms:.1f} | {sample.pss_mib:.1f} | {sample.http_cache_mib:.1f} | "
                     f"{sample.rss_mib:.1f} | {sample.fds} |")
    if soak.unexpected_examples:
        lines += ["", "## Unexpected answers (first ones)", "", *[f"- `{e}`" for e in soak.unexpected_examples]]
    return "\n".join(lines) + "\n"


def write(soak: Soak, out_dir: Path) -> bool:
    """Writes report.md and report.json into `out_dir`; returns whether every verdict passed."""
    judged = verdicts(soak)
    (out_dir / "report.md").write_text(render(soak, judged))
    figures = {
        "seconds": soak.seconds, "connections": soak.connections, "drift": drift(soak),
        "verdicts": {name: {"pass": ok, "figures": text} for name, (ok, text) in judged.items()},
        "tenths": [{"requests": len(i.latencies), "p50_ms": i.p50_ms, "p99_ms": i.p99_ms} for i in soak.intervals],
        "statuses_by_kind": {k: {str(s): n for s, n in v.items()} for k, v in soak.statuses_by_kind.items()},
        "samples": [s.__dict__ for s in soak.samples],
    }
    (out_dir / "report.json").write_text(json.dumps(figures, indent=1))
    return all(ok for ok, _ in judged.values())
