"""Issue 12: a flood at several times the admission bound is turned away cleanly.

One host with `--max-concurrent-requests 64` gets, in turn, exactly that many connections of unique
(uncached) `GET /v1/encode` questions — its admitted latency there is the "unloaded" baseline, the latency of
a host working at its bound but not past it — and 400 connections flooding it (unique questions, a tenth of
them as `POST /v1/embeddings`, so both route families are refused), each refused client waiting the
`Retry-After` it was given, as clients are asked to. The phases alternate twice, so a neighbour's load on this
shared machine weighs on both figures alike. A last phase, the storm, is the same flood with `Retry-After`
ignored (every client asks again at once): it must still get only answers and refusals, never an error or a
reset, but its latency says little, since its 400 busy client threads share the host's two cores. The tests
below judge that one run.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import pytest

from conftest import ROOT, log_records, serving
from load import Load, Outcome, percentile, statuses
from traffic import UniqueQuestions, assert_refusal, encode_get, openai_embeddings
from wasm_memory import initial_memory_bytes

BOUND = 64
FLOOD_CONNECTIONS = 400
# (phase, seconds), in order: about 15 s in all.
PHASES = (("baseline", 3), ("flood", 4), ("baseline", 3), ("flood", 4), ("storm", 3))
# Requests sent in a phase's first half second are left out of its latency: connections open, the queue fills.
WARMUP_S = 0.5
# The bound: past the admission bound, admitted requests wait at most twice as long as at it.
P99_RATIO_BOUND = 2.0


@dataclass
class Flood:
    outcomes: dict[str, list[Outcome]] = field(default_factory=lambda: {"baseline": [], "flood": [], "storm": []})
    # Admitted GET latencies after each phase's warm-up.
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"baseline": [], "flood": [], "storm": []})
    health_after: tuple[int, dict] = (0, {})
    normal_after: int = 0
    log: str = ""

    @property
    def baseline(self) -> list[Outcome]:
        return self.outcomes["baseline"]

    @property
    def flood(self) -> list[Outcome]:
        return self.outcomes["flood"]

    @property
    def storm(self) -> list[Outcome]:
        return self.outcomes["storm"]


def retry_after(outcome: Outcome) -> float:
    """The seconds a refused client was asked to wait (`Retry-After`); none after an answer."""
    return float(outcome.headers.get("retry-after", 0)) if outcome.status == 429 else 0.0


@pytest.fixture(scope="module")
def flood(tmp_path_factory) -> Flood:
    workdir = tmp_path_factory.mktemp("flood")
    unique = UniqueQuestions("flood")

    def get_only(worker: int, sequence: int):
        return encode_get(unique.next())

    def mixed(worker: int, sequence: int):
        return openai_embeddings(unique.next()) if worker % 10 == 9 else encode_get(unique.next())

    run = Flood()
    with serving(workdir, extra_args=["--max-concurrent-requests", str(BOUND)]) as srv:
        port = int(srv.base_url.rsplit(":", 1)[1])
        for phase, seconds in PHASES:
            if phase == "baseline":
                load = Load("127.0.0.1", port, BOUND, get_only)
            elif phase == "flood":
                load = Load("127.0.0.1", port, FLOOD_CONNECTIONS, mixed, pause=retry_after)
            else:
                load = Load("127.0.0.1", port, FLOOD_CONNECTIONS, mixed)
            started = time.monotonic()
            outcomes = load.run(seconds)
            run.outcomes[phase] += outcomes
            run.latencies[phase] += [o.latency for o in outcomes
                                     if o.ok and o.call.kind == "get" and o.sent >= started + WARMUP_S]
        health = srv.get("/health", auth=False)
        health_body = health.json() if health.headers.get("content-type", "").startswith("application/json") else {}
        run.health_after = (health.status_code, health_body)
        run.normal_after = srv.get("/v1/encode", params={"query": "still answering after the flood?"}).status_code
        run.log = srv.log()
    print(f"\nflood figures: {json.dumps(summary(run))}")
    return run


def summary(run: Flood) -> dict:
    """The figures the issue asks for, printed with `pytest -s`."""
    base, flooded = run.latencies["baseline"], run.latencies["flood"]
    return {
        "baseline_statuses": dict(statuses(run.baseline)),
        "flood_statuses": dict(statuses(run.flood)),
        "baseline_p50_ms": round(percentile(base, 50) * 1000, 1),
        "baseline_p99_ms": round(percentile(base, 99) * 1000, 1),
        "flood_admitted_p50_ms": round(percentile(flooded, 50) * 1000, 1),
        "flood_admitted_p99_ms": round(percentile(flooded, 99) * 1000, 1),
        "storm_statuses": dict(statuses(run.storm)),
        "storm_admitted_p99_ms": round(percentile(run.latencies["storm"], 99) * 1000, 1),
    }


def test_the_baseline_at_the_bound_is_served(flood):
    counts = statuses(flood.baseline)
    assert counts[200] >= 50, f"the baseline barely ran: {counts}"
    # At exactly the bound a client's next request can arrive before the host has released the previous
    # one's permit, so a few refusals are allowed; anything else is not.
    assert set(counts) <= {200, 429}, counts
    assert counts[429] <= counts[200] // 20, f"the bound refused more than 5% of its own load: {counts}"


@pytest.mark.parametrize("phase", ["flood", "storm"])
def test_the_flood_gets_only_2xx_and_429(flood, phase):
    counts = statuses(flood.outcomes[phase])
    assert set(counts) <= {200, 429}, f"5xx or connection errors in the {phase}: {counts}\n{flood.log[-3000:]}"
    assert counts[429] > counts[200], f"{FLOOD_CONNECTIONS} connections never went past the bound: {counts}"
    assert counts[200] >= 50, counts


@pytest.mark.parametrize("phase", ["flood", "storm"])
def test_every_refusal_has_retry_after_and_the_route_familys_json(flood, phase):
    refused = [o for o in flood.outcomes[phase] if o.status == 429]
    assert {o.call.kind for o in refused} == {"get", "openai"}, "both route families were refused"
    for outcome in refused:
        assert_refusal(outcome, 429)


def test_admitted_p99_stays_within_twice_the_unloaded_p99(flood):
    figures = summary(flood)
    assert figures["flood_admitted_p99_ms"] <= P99_RATIO_BOUND * figures["baseline_p99_ms"], figures


def test_the_host_is_healthy_after_the_flood(flood):
    status, body = flood.health_after
    assert status == 200 and body.get("status") == "ok", (status, body)
    assert flood.normal_after == 200
    assert "trapped" not in flood.log, "no request trapped during the flood"


# --- A guest trap in the middle of a flood -------------------------------------------------------------------

# Linear memory a request's instance may use beyond the component's own snapshot: a short query needs under
# 2 MiB of it, a 1024 × 1024 similarity matrix (its floats and its ~8 MB of JSON) needs over 17 MiB, so that
# request's allocation fails and the guest traps (its allocator aborts), after computing only two embeddings.
TRAP_HEADROOM_MIB = 12
TRAP_SIDE = 1024
TRAP_FLOOD_CONNECTIONS = 200
TRAP_FLOOD_SECONDS = 6
TRAP_REQUEST_ID = "the-trapping-request"


def test_a_guest_trap_in_a_flood_fails_that_request_only(tmp_path):
    unique = UniqueQuestions("trap")
    snapshot_mib = initial_memory_bytes(ROOT / "build/sbert_service.wasm") / 2**20
    limit_mib = math.ceil(snapshot_mib) + TRAP_HEADROOM_MIB
    hog = {"a": ["how do I reset my password?"] * TRAP_SIDE, "b": ["where is my parcel?"] * TRAP_SIDE}
    with serving(tmp_path, extra_args=["--max-concurrent-requests", str(BOUND),
                                       "--request-memory", str(limit_mib)]) as srv:
        port = int(srv.base_url.rsplit(":", 1)[1])
        # Its clients honour Retry-After like the judged flood's: clients that ask again at once take every
        # permit the moment it frees, and the trapping request could wait out its deadline refused.
        flood_load = Load("127.0.0.1", port, TRAP_FLOOD_CONNECTIONS,
                          lambda worker, sequence: encode_get(unique.next()), pause=retry_after).start()
        time.sleep(TRAP_FLOOD_SECONDS / 2)
        # Refused (429) while the flood holds every permit: ask again until admitted.
        deadline = time.monotonic() + TRAP_FLOOD_SECONDS
        while True:
            trap = srv.post("/v1/encode/cos_sim_weight", json=hog, headers={"X-Request-Id": TRAP_REQUEST_ID})
            if trap.status_code != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(TRAP_FLOOD_SECONDS / 2)
        flood = flood_load.stop()
        after = srv.get("/v1/encode", params={"query": "still fine after a trap?"})
        log = srv.log()
    assert trap.status_code == 500, (trap.status_code, trap.text[:300])
    assert trap.headers["content-type"].startswith("application/json") and trap.json(), trap.text[:300]
    counts = statuses(flood)
    assert set(counts) <= {200, 429}, f"the trap hurt other requests: {counts}"
    assert counts[200] >= 50, counts
    assert after.status_code == 200
    errors = [r for r in log_records(log) if str(r.get("level", "")).lower() == "error"]
    assert [r.get("request_id") for r in errors] == [TRAP_REQUEST_ID], errors[:5]
    assert "trap" in json.dumps(errors[0]).lower(), errors[0]
