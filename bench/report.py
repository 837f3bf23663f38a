"""The Markdown report of `make bench`, from the figures bench/run.py collected (also in results.json)."""
from __future__ import annotations

# Issue 13's targets.
NGINX_RATIO_TARGET = 0.25
ORIGINAL_P99_TARGET_MS = 2.0
INT8_RATIO_TARGET = 2.0
PSS_TARGET_MB = 400
# Issue 23's: uncached requests through the edge ÷ the same load on the origin directly.
EDGE_RATIO_TARGET = 0.8
# Issue 24's, for the exact model: one connection's p50 at most this much over the ceiling's median (ms);
# throughput over the single-sentence ceiling at 10 and 40 connections and in 32-input batches; bulk ingestion
# over the ceiling's sorted batches of the same chunks; the portable build at 10 connections.
ONE_CONNECTION_MARGIN_MS = 0.3
TEN_CONNECTIONS_TARGET = 1.5
FORTY_CONNECTIONS_TARGET = 1.8
BATCH_TARGET = 2.0
BULK_TARGET = 0.9
PORTABLE_TARGET = 0.6
MIB_TO_MB = 1.048576


def ms(us: float) -> str:
    return f"{us / 1000:.1f} ms"


def check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def mib(value: float | None) -> str:
    return "unknown (needs root)" if value is None else f"{value:.0f}"


def load_row(name: str, w: dict, throughput: str, ratio: str) -> str:
    onnx = (f"{w['rows_per_run']:.1f} | {w['run_ms']:.1f} ms | {w['onnx_busy']:.0%}" if "rows_per_run" in w
            else "– | – | –")
    return f"| {name} | {throughput} | {ms(w['p50_us'])} | {ms(w['p99_us'])} | {w['errors']} | {onnx} | {ratio} |"


def cpu_line(m: dict) -> str:
    flags = m.get("cpu_flags", {})
    listed = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in flags.items())
    vnni = flags.get("avx512_vnni") or flags.get("avx_vnni")
    return (f"CPU flags: {listed}: int8 dot-product instructions (VNNI) "
            f"{'present' if vnni else 'absent, so int8 is not expected to pay here'}.")


def memory_section(r: dict) -> list[str]:
    lines = [
        "| after scenario | RSS | peak RSS | PSS | peak PSS (sampled) | charge (private + shared once) |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in r["memory"].items():
        peak_pss = "–" if m.get("peak_pss_mib") is None else f"{m['peak_pss_mib']:.0f}"
        lines.append(f"| {name} | {m['rss_mib']:.0f} | {m['peak_rss_mib']:.0f} | {m['pss_mib']:.0f} | {peak_pss} "
                     f"| {mib(m['charge_mib'])} |")
    lines += [
        "",
        "MiB, of the sbert-host process (both graphs loaded: fp32 and int8). RSS counts the component's snapshot "
        "pages once per instance slot that maps them (one slot per concurrent request); PSS shares each page out "
        "among its mappings; the charge counts every physical page the process maps once (from "
        "/proc/PID/pagemap), as a memory cgroup holding only this process would. Peak PSS is sampled every "
        "0.5 s during the scenario's load.",
    ]
    return lines


def vs_ceiling(w: dict) -> float:
    """A scenario's throughput over the ceiling measured around it."""
    return w["rps"] / w["ceiling"]["sentences_per_s"]


def ratio_cell(w: dict, sentences: int = 1) -> str:
    """The "vs ceiling" cell of a scenario compared with the ceiling measured around it."""
    return f"{sentences * vs_ceiling(w):.2f}× (of {w['ceiling']['sentences_per_s']:.0f})"


def one_connection_targets(*scenarios: dict) -> list[str]:
    """Issue 24's one-connection rows: each scenario's p50 against the median of the ceiling around it."""
    rows = []
    for w, name in zip(scenarios, ("uncached GET /v1/encode", "uncached POST /v1/embeddings, one input")):
        over = w["p50_us"] / 1000 - w["ceiling"]["p50_ms"]
        rows.append(f"| {name}, 1 conn.: p50 within {ONE_CONNECTION_MARGIN_MS} ms of the ceiling's median "
                    f"| {ms(w['p50_us'])} vs {w['ceiling']['p50_ms']:.2f} ms: {over:+.2f} ms "
                    f"| {check(over <= ONE_CONNECTION_MARGIN_MS)} |")
    return rows


def int8_section(r: dict, single: float, u10_rps: float) -> tuple[list[str], list[str]]:
    """The int8 table and its target rows."""
    acc = r["accuracy"]
    fp32, int8 = acc["fp32"], acc["int8"]
    ci8 = r["ceiling_int8"]
    # The int8 ceiling is measured right after the last fp32 reading with single sentences.
    fp32_last = next(c for c in reversed(r["ceilings"]) if "sentences_per_s" in c)
    lines = [
        "## 6. int8 model (`all-minilm-l6-v2-int8`)",
        "",
        "| model | reference mean / min cosine | truth set mean / min cosine | padded batch vs single | "
        "ceiling sentences/s (single / batch 32) | uncached 10 conn. | uncached 1 conn. p50 |",
        "|---|---|---|---|---|---|---|",
        f"| fp32 | {fp32['mean_cosine']:.6f} / {fp32['min_cosine']:.6f} | (the truth) | "
        f"{fp32['batch_min_cosine']:.6f} | {single:.0f} / {r['ceiling']['batch32_sentences_per_s']:.0f} "
        f"| {u10_rps:.0f} req/s | {ms(r['uncached'][1]['p50_us'])} |",
    ]
    refused = r.get("int8_refused")
    if refused:
        served = "not served by this build"
        int8_10 = int8_1 = None
    else:
        int8_10, int8_1 = r["int8_uncached"][10], r["int8_uncached"][1]
        served = f"{int8_10['rps']:.0f} req/s ({vs_ceiling(int8_10):.2f}× ceiling)"
    lines.append(
        f"| int8 | {int8['mean_cosine']:.6f} / {int8['min_cosine']:.6f} | {int8['truth_mean_cosine']:.6f} / "
        f"{int8['truth_min_cosine']:.6f} (worst {int8['truth_worst']!r}, {int8['truth_items']} texts) | "
        f"{int8['batch_min_cosine']:.6f} | {ci8['sentences_per_s']:.0f} / {ci8['batch32_sentences_per_s']:.0f} "
        f"({ci8['sentences_per_s'] / fp32_last['sentences_per_s']:.2f}× / {ci8['batch32_sentences_per_s'] / r['ceiling']['batch32_sentences_per_s']:.2f}×) "
        f"| {served} | {'–' if int8_1 is None else ms(int8_1['p50_us'])} |"
    )
    lines += [
        "",
        "int8 rows use POST /v1/embeddings with one input and `\"model\": \"all-minilm-l6-v2-int8\"`, cache off, on "
        "the same server as the fp32 rows. The truth set is `make models`' (models/truth.py): 1,500 load-test "
        "questions plus hard cases, with the fp32 graph's output as the truth.",
    ]
    if refused:
        lines += ["", f"The int8 model is not served by this build (POST /v1/embeddings answered {refused})."]
    holds = (min(int8["min_cosine"], int8["truth_min_cosine"]) >= 0.99
             and min(int8["mean_cosine"], int8["truth_mean_cosine"]) >= 0.998)
    targets = [
        f"| int8 accuracy: min ≥ 0.99 and mean ≥ 0.998 on the reference and the truth set | reference "
        f"{int8['mean_cosine']:.4f} / {int8['min_cosine']:.4f}, truth set {int8['truth_mean_cosine']:.4f} / "
        f"{int8['truth_min_cosine']:.4f} | {check(holds)} |",
    ]
    if int8_10 is None:
        targets += [
            "| int8 uncached, 10 conn. ≥ 2.0× fp32 ceiling | not served by this build | **missed** |",
            "| int8 uncached, 1 conn. p50 below the fp32 ceiling's median | not served by this build | **missed** |",
        ]
    else:
        targets += [
            f"| int8 uncached, 10 conn. ≥ {INT8_RATIO_TARGET:.1f}× fp32 ceiling | {vs_ceiling(int8_10):.2f}× "
            f"({int8_10['rps']:.0f} req/s) | {check(vs_ceiling(int8_10) >= INT8_RATIO_TARGET)} |",
            f"| int8 uncached, 1 conn. p50 below the fp32 ceiling's median | {ms(int8_1['p50_us'])} vs "
            f"{int8_1['ceiling']['p50_ms']:.2f} ms | {check(int8_1['p50_us'] / 1000 < int8_1['ceiling']['p50_ms'])} |",
        ]
    return lines, targets


def edge_loads(r: dict) -> list[dict]:
    """Every wrk run of the edge scenarios."""
    e = r.get("edge")
    if not e:
        return []
    pairs = [*e["uncached"].values(), e["batch32"]]
    return [w for pair in pairs for w in pair.values()] + [e["original"], e["original_component"]]


def edge_section(r: dict) -> tuple[list[str], list[str]]:
    """The edge build in front of an origin: its table and its target rows."""
    e = r.get("edge")
    if not e:
        return [], []
    ratio = {c: pair["edge"]["rps"] / pair["direct"]["rps"] for c, pair in e["uncached"].items()}
    lines = [
        "## 7. Edge → origin",
        "",
        "| scenario | through the edge | p50 | p99 | errors | the origin directly | p50 | p99 | edge ÷ direct |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c, pair in e["uncached"].items():
        x, d = pair["edge"], pair["direct"]
        lines.append(f"| uncached GET /v1/encode, {c} conn. | {x['rps']:.0f} req/s | {ms(x['p50_us'])} | "
                     f"{ms(x['p99_us'])} | {x['errors']} | {d['rps']:.0f} req/s | {ms(d['p50_us'])} | "
                     f"{ms(d['p99_us'])} | {ratio[c]:.2f}× |")
    x, d = e["batch32"]["edge"], e["batch32"]["direct"]
    lines.append(f"| POST /v1/embeddings, 32 unique inputs, 2 conn. | {32 * x['rps']:.0f} sentences/s | "
                 f"{ms(x['p50_us'])} | {ms(x['p99_us'])} | {x['errors']} | {32 * d['rps']:.0f} sentences/s | "
                 f"{ms(d['p50_us'])} | {ms(d['p99_us'])} | {x['rps'] / d['rps']:.2f}× |")
    for name, w in ((f"original load test, 10 conn., caches warm ({e['warm_hit_ratio']:.0%} hits after warming): "
                     "the edge's HTTP cache", e["original"]),
                    ("the same with `Cache-Control: no-cache`: the edge's key-value cache", e["original_component"])):
        lines.append(f"| {name} | {w['rps']:.0f} req/s | {ms(w['p50_us'])} | {ms(w['p99_us'])} | {w['errors']} "
                     "| – | – | – | – |")
    lines += [
        "",
        "Both tiers are sbert-host on this machine's loopback: the edge serves build/sbert_service_edge.wasm "
        "(spin-edge.toml) and sends each request's cache misses in one POST /v1/embeddings (token ids, base64 "
        "vectors) through its connection pool to the origin, which serves the fast build with its cache off. Each "
        "uncached row runs the edge right after the same load on the origin directly. The edge, the origin and wrk "
        "share the same cores, which a deployment would not: the ratios are a floor.",
        "",
        f"Edge start-up {e['startup_s']:.2f} s; its memory (MiB) after the uncached rows: RSS "
        f"{e['memory_uncached']['rss_mib']:.0f}, PSS {e['memory_uncached']['pss_mib']:.0f}; with its caches warm: "
        f"RSS {e['memory_warm']['rss_mib']:.0f}, PSS {e['memory_warm']['pss_mib']:.0f}.",
    ]
    targets = [
        f"| edge uncached, {c} conn. ≥ {EDGE_RATIO_TARGET}× the origin directly | {ratio[c]:.2f}× "
        f"({e['uncached'][c]['edge']['rps']:.0f} vs {e['uncached'][c]['direct']['rps']:.0f} req/s) "
        f"| {check(ratio[c] >= EDGE_RATIO_TARGET)} |"
        for c in (10, 40)
    ]
    return lines, targets


def time_section(r: dict) -> list[str]:
    """Where the serving time goes, from the host's metrics: the profile that explains a miss."""
    readings = [c["us_per_position"] for c in r["ceilings"] if "us_per_position" in c]
    batched = [c["batch32_us_per_position"] for c in r["ceilings"] if "batch32_us_per_position" in c]
    if not readings or not batched or "padding" not in r["uncached"][40]:
        return []
    single_us, batch_us = sum(readings) / len(readings), sum(batched) / len(batched)
    scenarios = [(f"uncached, {c} conn.", r["uncached"][c]) for c in (1, 10, 40)] + [
        ("32-input batches, 2 conn.", r["batch32"])]
    lines = [
        "## Where the time goes",
        "",
        "| | rows per ONNX run | padding (share of the positions run) | ONNX busy | µs per position run |",
        "|---|---|---|---|---|",
        f"| ceiling, one sentence at a time | 1 | 0% | – | {single_us:.1f} |",
        f"| ceiling, length-sorted batches of 32 | 32 | – | – | {batch_us:.1f} |",
        *(f"| {name} | {w['rows_per_run']:.1f} | {w['padding']:.0%} | {w['onnx_busy']:.0%} "
          f"| {w['us_per_position']:.1f} |" for name, w in scenarios),
        "",
        "A position is one token of one row in a run, padding included (`nn_positions_run_total`); its cost is the "
        "runs' time over their positions. While ONNX Runtime is busy nearly all the time, a scenario's sentences/s "
        "is busy ÷ (µs per position × positions per sentence): what holds it back is the padding its runs carry "
        "and what a position costs in runs of that size, not the rest of the server. The ceiling's batches are "
        "sorted by length over all the questions, so they carry almost no padding; a server gets each request's "
        "rows in arrival order and can only group the rows that wait at once.",
    ]
    one = [(name, w) for name, w in (("fp32", r["uncached"][1]), ("int8", r.get("int8_uncached", {}).get(1)))
           if w and "host_request_ms" in w and abs(w.get("rows_per_run", 0) - 1) < 0.05]
    if one:
        lines += ["", "At one connection each request is one run, and its time splits as follows (means, ms):", "",
                  "| | wrk's latency | the host's request time | waiting for a session | ONNX run | the rest |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {name}, 1 conn. | {w['mean_us'] / 1000:.2f} | {w['host_request_ms']:.2f} | "
                  f"{w['queue_wait_ms']:.2f} | {w['run_ms']:.2f} | "
                  f"{w['host_request_ms'] - w['queue_wait_ms'] - w['run_ms']:.2f} |" for name, w in one]
        lines += ["", "The rest is the component's instance (its tokenizer, the JSON in and out) and handing the request "
                  "between threads: the connection's thread, an instance's, the session's and back."]
    return lines


def rerank_rows(r: dict) -> list[str]:
    """Scenario 7: sequential rerank requests, p50 and p90 (too few samples for a p99)."""
    rows = []
    for key, what in (("rerank_cached", "the documents already cached: only the query is embedded"),
                      ("rerank_uncached", "cache off: all 101 inputs are embedded")):
        probe = r.get(key)
        if probe:
            rows.append(f"| 7. POST /v2/rerank, one new query against {probe['documents']} documents, {what}, "
                        f"1 client ({probe['samples']} requests; p90 in the p99 column) | – "
                        f"| {probe['median_ms']:.1f} ms | {probe['p90_ms']:.1f} ms | 0 | – | – | – | – |")
    return rows


def busy_warning(m: dict) -> list[str]:
    """Other work on the machine slows the ceiling and the servers unequally, so ratios stop meaning much."""
    if m["busy_before"] <= 0.25:
        return []
    return [f"**The machine was busy: its cores were {m['busy_before']:.0%} busy in the 3 s before the run. "
            "Throughput and ratios below are not comparable with a quiet run; rerun `make bench` on a quiet "
            "machine before reading them as the service's figures.**", ""]


def render(r: dict) -> str:
    m, c = r["machine"], r["ceiling"]
    u1, u10, u40 = (r["uncached"][k] for k in (1, 10, 40))
    b, o, oc, n = r["batch32"], r["original"], r["original_component"], r["nginx"]
    e1, bulk = r["openai_1"], r["bulk"]
    bulk_ratio = bulk["rps"] * 32 / bulk["ceiling_batch32"]
    batch_ceiling = c["batch32_sentences_per_s"] / c["sentences_per_s"]
    side_by_side_ceiling = c["side_by_side_batch32_sentences_per_s"] / c["sentences_per_s"]
    batch_ceilings = (f"sorted batches of 32 reach {batch_ceiling:.2f}× here, "
                      f"{side_by_side_ceiling:.2f}× in one-thread sessions side by side")
    single = c["sentences_per_s"]
    batch_sps = b["rps"] * 32
    host = r["host"]
    pb, ps, pc = r["probe_batch"], r["probe_short"], r["probe_cache"]
    singles = [x["sentences_per_s"] for x in r["ceilings"] if "sentences_per_s" in x]
    pss_peak = max(max(v["pss_mib"], v.get("peak_pss_mib") or 0) for v in r["memory"].values())
    rss_peak = max(v["peak_rss_mib"] for v in r["memory"].values())
    charges = [v["charge_mib"] for v in r["memory"].values() if v["charge_mib"] is not None]
    builds = r.get("builds", {})
    loads = (u1, u10, u40, e1, o, oc, b, bulk, *r.get("int8_uncached", {}).values(),
             *(w for by_connections in builds.values() for w in by_connections.values()), *edge_loads(r))
    nginx_ratio = o["rps"] / n["rps"]
    int8_lines, int8_targets = int8_section(r, single, u10["rps"])
    edge_lines, edge_targets = edge_section(r)

    lines = [
        "# sbert-service benchmark",
        "",
        f"{m['date']} · {m['cpu']} · {m['cores']} cores · {m['memory_gib']} GiB · Linux {m['kernel']}  ",
        f"{m['rustc']} · {m['wrk']} · ONNX Runtime {m['onnxruntime']} · commit {m['commit']}  ",
        cpu_line(m) + "  ",
        f"Settings: {r['seconds']} s per load scenario, total run {r['total_s']:.0f} s; cores busy in the 3 s "
        f"before {m['busy_before']:.0%} (load average {m['load_before']:.2f}). sbert-host with its defaults: "
        f"ONNX Runtime sessions per graph (threads each) {host['graph_sessions']}, cross-request batching. Ceiling: one session × "
        f"{r['ceiling_threads']} intra-op threads, measured {len(singles)} times, between the scenarios compared "
        f"with it ({min(singles):.0f}–{max(singles):.0f} sentences/s); each scenario is compared with the mean of the "
        "measurements just before and just after it (its \"vs ceiling\" cell names that mean), the ceiling rows "
        "give the mean of all; sorted batches are measured at the start and at the end. wrk: 1 thread, on the same "
        "machine.",
        "",
        *busy_warning(m),
        "## Results",
        "",
        "| scenario | throughput | p50 | p99 | errors | rows per ONNX run | ONNX run | ONNX busy | vs ceiling |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| 1. ceiling: in-process ONNX Runtime, one sentence at a time | {single:.0f} sentences/s "
        f"| {c['p50_ms']:.2f} ms | {c['p99_ms']:.2f} ms | – | 1 | – | – | 1.00× |",
        f"| 1. ceiling: in-process, length-sorted batches of 32 | {c['batch32_sentences_per_s']:.0f} sentences/s "
        f"| – | – | – | 32 | – | – | {batch_ceiling:.2f}× |",
        f"| 1. ceiling: in-process, length-sorted batches of 32 in {r['ceiling_threads']} one-thread sessions side "
        f"by side, as sbert-host's throughput sessions run | {c['side_by_side_batch32_sentences_per_s']:.0f} "
        f"sentences/s | – | – | – | 32 | – | – | {side_by_side_ceiling:.2f}× |",
    ]
    for w in (u1, u10, u40):
        lines.append(load_row(f"2. uncached GET /v1/encode, unique questions, {w['connections']} conn.", w,
                              f"{w['rps']:.0f} req/s", ratio_cell(w)))
    lines.append(load_row("2. uncached POST /v1/embeddings, one input, 1 conn.", e1, f"{e1['rps']:.0f} req/s",
                          ratio_cell(e1)))
    for build, by_connections in builds.items():
        for w in by_connections.values():
            lines.append(load_row(f"2. {build} build, uncached GET /v1/encode, {w['connections']} conn.", w,
                                  f"{w['rps']:.0f} req/s", ratio_cell(w)))
    lines += [
        load_row(f"3. original load test (random questions, repeats), 10 conn., cache warm "
                 f"({r['warm_hit_ratio']:.0%} hits after warming)", o, f"{o['rps']:.0f} req/s",
                 f"{o['rps'] / single:.1f}×; {nginx_ratio:.3f}× nginx"),
        load_row("3. the same with `Cache-Control: no-cache`: sbert-host's HTTP cache passes every request on, "
                 "and an instance of the component answers it from its key-value cache", oc,
                 f"{oc['rps']:.0f} req/s", f"{oc['rps'] / single:.1f}×; {oc['rps'] / n['rps']:.3f}× nginx"),
        load_row(f"3. limit: nginx, the same {n['body_bytes']:,}-byte answer as a static file, 10 conn. "
                 f"({n['workers']} workers)", n, f"{n['rps']:.0f} req/s", "1.000× nginx"),
        load_row("4. POST /v1/embeddings, 32 unique inputs, 2 conn.", b,
                 f"{batch_sps:.0f} sentences/s ({b['rps']:.1f} req/s)", ratio_cell(b, sentences=32)),
        load_row("4. bulk ingestion: POST /v1/embeddings, 32 chunks of ~200 tokens, 2 conn.", bulk,
                 f"{bulk['rps'] * 32:.0f} chunks/s ({bulk['rps']:.1f} req/s)",
                 f"{bulk_ratio:.2f}× of the ceiling's sorted batches of the same chunks "
                 f"({bulk['ceiling_batch32']:.0f} chunks/s)"),
        *rerank_rows(r),
        "",
        "ONNX run: the mean duration of one ONNX Runtime run; ONNX busy: the runs' time over the scenario's, summed "
        "over sessions that run side by side (a graph's two one-thread sessions: up to 200%). "
        "nginx runs the same wrk script (its query string and Authorization header are ignored) right after the "
        "original load test, on the same cores.",
        "",
        f"5. Start-up (process start to the first 200 of `GET /v1/encode`): {r['startup_warm_s']:.2f} s with the "
        "component in wasmtime's compilation cache (as `make build` leaves it: `sbert-host compile`), "
        f"{r['startup_cold_s']:.2f} s with an empty cache (the host compiles the component while ONNX Runtime "
        "loads the models).",
        "",
        *memory_section(r),
        "",
        f"Sequential probes (one client, cache off unless stated): `GET /v1/encode?query=hello world` median "
        f"{ps['median_ms']:.2f} ms (p90 {ps['p90_ms']:.2f} ms); 32 inputs in one POST /v1/embeddings "
        f"{pb['batch_ms']:.0f} ms vs 32 sequential GETs {pb['singles_ms']:.0f} ms ({pb['speedup']:.1f}×); "
        f"cache on: miss {pc['miss_ms']:.2f} ms, hit in the component's key-value cache {pc['hit_ms']:.2f} ms, "
        f"hit in sbert-host's HTTP cache {pc['http_hit_ms']:.2f} ms.",
        "",
        *time_section(r),
        "",
        *int8_lines,
        "",
        *edge_lines,
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *one_connection_targets(u1, e1),
        f"| uncached, 10 conn. ≥ {TEN_CONNECTIONS_TARGET}× ceiling ({batch_ceilings}) | {vs_ceiling(u10):.2f}× "
        f"({u10['rps']:.0f} req/s) | {check(vs_ceiling(u10) >= TEN_CONNECTIONS_TARGET)} |",
        f"| uncached, 40 conn. ≥ {FORTY_CONNECTIONS_TARGET}× ceiling | {vs_ceiling(u40):.2f}× ({u40['rps']:.0f} req/s) "
        f"| {check(vs_ceiling(u40) >= FORTY_CONNECTIONS_TARGET)} |",
        f"| 32-input batches ≥ {BATCH_TARGET}× ceiling ({batch_ceilings}) "
        f"| {32 * vs_ceiling(b):.2f}× "
        f"| {check(32 * vs_ceiling(b) >= BATCH_TARGET)} |",
        f"| bulk ingestion ≥ {BULK_TARGET}× the ceiling's sorted batches of the same chunks | {bulk_ratio:.2f}× "
        f"| {check(bulk_ratio >= BULK_TARGET)} |",
        f"| original load test, cache warm: ≥ 5,000 req/s, p99 ≤ 10 ms | {o['rps']:.0f} req/s, p99 {ms(o['p99_us'])} "
        f"| {check(o['rps'] >= 5000 and o['p99_us'] <= 10_000)} |",
        f"| original load test ≥ {NGINX_RATIO_TARGET}× nginx's static answer, p99 ≤ {ORIGINAL_P99_TARGET_MS:.0f} ms "
        f"| {nginx_ratio:.3f}× ({o['rps']:.0f} vs {n['rps']:.0f} req/s), p99 {ms(o['p99_us'])} "
        f"| {check(nginx_ratio >= NGINX_RATIO_TARGET and o['p99_us'] <= ORIGINAL_P99_TARGET_MS * 1000)} |",
        f"| start-up ≤ 2 s | {r['startup_warm_s']:.2f} s after `make build`, {r['startup_cold_s']:.2f} s with an "
        f"empty compilation cache | {check(r['startup_warm_s'] <= 2)} |",
        f"| PSS ≤ {PSS_TARGET_MB} MB at peak, every scenario (int8 loaded beside fp32) | {pss_peak * MIB_TO_MB:.0f} MB "
        f"(RSS peak {rss_peak * MIB_TO_MB:.0f} MB, charge at most "
        f"{'unknown' if not charges else f'{max(charges) * MIB_TO_MB:.0f} MB'}) "
        f"| {check(pss_peak * MIB_TO_MB <= PSS_TARGET_MB)} |",
        *int8_targets,
        *edge_targets,
        *([f"| portable build, uncached, 10 conn. ≥ {PORTABLE_TARGET}× ceiling "
           f"| {vs_ceiling(builds['portable'][10]):.2f}× ({builds['portable'][10]['rps']:.0f} req/s) "
           f"| {check(vs_ceiling(builds['portable'][10]) >= PORTABLE_TARGET)} |"]
          if "portable" in builds else []),
        f"| no errors | {sum(w['errors'] for w in loads)} | {check(all(w['errors'] == 0 for w in loads))} |",
    ]
    return "\n".join(lines) + "\n"
