"""Issue 12: SIGTERM under load drains. Every request the host admitted before the signal completes with a
2xx, new connections are refused from the signal on, the process exits within its grace period, and its log
says how many requests it drained.

40 connections (the issue's measurement on main) send unique questions: 36 as single `GET /v1/encode`, 4 as
32-input batches, so that at the signal about 160 sentences of admitted work are in flight (half a second on
an idle 2-core machine, a few seconds on a busy one: always within the grace period).
"""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest

from conftest import log_records, start_server, stop_server
from load import Load, Outcome, statuses
from traffic import UniqueQuestions, assert_refusal, encode_get, multiple_encode

CONNECTIONS = 40
BATCH = 32
BATCH_CONNECTIONS = 4
LOAD_BEFORE_SIGNAL_S = 4
# sbert-host gives open requests this long after SIGTERM (SHUTDOWN_GRACE in host/src/server.rs).
GRACE_S = 10
EXIT_SLACK_S = 2
# A request written this long before the signal has reached the host before it (loopback takes
# microseconds); one written closer to the signal may be refused or cut off before it was read, which is
# not a lost admitted request.
ADMITTED_MARGIN_S = 0.05
# Errors a client may see on a request the host never admitted: its new connection is refused, or its
# idle keep-alive connection is closed without an answer.
NOT_ADMITTED_ERRORS = ("ConnectionRefusedError", "RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")


@dataclass
class Drain:
    outcomes: list[Outcome]
    signalled: float
    exited: float | None
    returncode: int | None
    refused_while_alive: bool
    log: str


def probe_refusals(port: int, process, until: float) -> bool:
    """Whether a new connection to `port` was refused while `process` was still running."""
    while time.monotonic() < until and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return process.poll() is None
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def drain(tmp_path_factory) -> Drain:
    workdir = tmp_path_factory.mktemp("drain")
    unique = UniqueQuestions("drain")

    def next_call(worker: int, sequence: int):
        return multiple_encode(unique.take(BATCH)) if worker < BATCH_CONNECTIONS else encode_get(unique.next())

    srv = start_server(workdir)
    try:
        port = int(srv.base_url.rsplit(":", 1)[1])
        # After a connection error a worker waits a little, so refused reconnections do not spin.
        load = Load("127.0.0.1", port, CONNECTIONS, next_call,
                    pause=lambda outcome: 0.05 if outcome.status is None else 0).start()
        time.sleep(LOAD_BEFORE_SIGNAL_S)
        signalled = time.monotonic()
        srv.process.send_signal(signal.SIGTERM)
        refused = {}
        probe = threading.Thread(target=lambda: refused.setdefault(
            "alive", probe_refusals(port, srv.process, signalled + GRACE_S)))
        probe.start()
        try:
            srv.process.wait(timeout=GRACE_S + EXIT_SLACK_S)
            exited = time.monotonic()
        except subprocess.TimeoutExpired:  # judged by test_the_host_exits_within_its_grace_period
            exited = None
        probe.join()
        outcomes = load.stop()
        return Drain(outcomes, signalled, exited, srv.process.poll(), refused.get("alive", False), srv.log())
    finally:
        stop_server(srv)


def before_signal(run: Drain) -> list[Outcome]:
    return [o for o in run.outcomes if o.sent < run.signalled - ADMITTED_MARGIN_S]


def in_flight_at_signal(run: Drain) -> list[Outcome]:
    return [o for o in before_signal(run) if o.done > run.signalled]


def test_every_request_admitted_before_the_signal_completes_with_2xx(drain):
    before = before_signal(drain)
    assert len(before) >= 40, f"the load barely ran: {statuses(drain.outcomes)}"
    failed = [o for o in before if not o.ok and o.status != 429]  # a 429 was refused, never admitted
    assert not failed, f"{len(failed)} admitted request(s) lost: {statuses(failed)}"
    in_flight = in_flight_at_signal(drain)
    # At least the batches (each takes longer than the margin) were in flight: the drain had work to finish.
    assert len(in_flight) >= BATCH_CONNECTIONS, f"only {len(in_flight)} requests were in flight at the signal"
    print(f"\ndrain figures: {len(in_flight)} requests in flight at SIGTERM, all 2xx; "
          f"statuses overall {dict(statuses(drain.outcomes))}")


def test_requests_after_the_signal_are_refused_never_failed(drain):
    after = [o for o in drain.outcomes if o.sent >= drain.signalled - ADMITTED_MARGIN_S]
    for outcome in after:
        if outcome.status is None:
            assert outcome.error.startswith(NOT_ADMITTED_ERRORS), outcome.error
        elif outcome.status == 503:
            assert_refusal(outcome, 503)
        else:
            assert outcome.ok or outcome.status == 429, (outcome.status, outcome.body[:300])


def test_new_connections_are_refused_while_draining(drain):
    assert drain.refused_while_alive, "a new connection was accepted (or never refused) while the host drained"


def test_the_host_exits_within_its_grace_period(drain):
    assert drain.exited is not None, f"still running {GRACE_S + EXIT_SLACK_S}s after SIGTERM"
    assert drain.returncode == 0, drain.log[-2000:]
    assert drain.exited - drain.signalled <= GRACE_S + EXIT_SLACK_S


def drained_count(log: str) -> int | None:
    """The number in the host's drain line: a JSON log record whose message speaks of draining."""
    for record in log_records(log):
        message = str(record.get("message", ""))
        if "drain" not in message.lower():
            continue
        counts = [v for k, v in record.items() if isinstance(v, int) and not isinstance(v, bool)
                  and re.search(r"drain|request|in_flight", k)]
        if counts:
            return counts[0]
        found = re.search(r"(\d+)\s+(?:in-flight\s+)?requests?", message)
        if found:
            return int(found.group(1))
    return None


def test_the_log_says_how_many_requests_were_drained(drain):
    count = drained_count(drain.log)
    lines = [json.dumps(r) for r in log_records(drain.log) if "drain" in json.dumps(r).lower()]
    assert count is not None, f"no drain line with a count: {lines or drain.log[-2000:]}"
    # The lower bound counts only answers the clients saw well after the signal: a client thread may record an
    # answer the host finished just before it a little late (the same margin as for sending).
    surely_in_flight = len([o for o in in_flight_at_signal(drain) if o.done > drain.signalled + ADMITTED_MARGIN_S])
    in_flight = len(in_flight_at_signal(drain))
    assert surely_in_flight <= count <= CONNECTIONS, (count, surely_in_flight, in_flight, lines)
    print(f"\ndrain figures: the host says it drained {count} request(s); the clients saw {in_flight}")
