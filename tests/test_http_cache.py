"""sbert-host's shared HTTP cache (`--http-cache-mib`, host/src/http/cache.rs), in front of the real component.

A repeated `GET /v1/encode` is answered from the host's memory, without an instance of the component, for the same
URL and `Authorization` only, and for no longer than the answer's `s-maxage`, which the component bounds by a JWT's
`exp`. A replay is told apart from the component's own answer by what only the component writes: `Server-Timing`
(the component's timings of the request) is on every answer it makes and on no replay, and a replay has an `Age`.
"""
from __future__ import annotations

import time

import pytest
import requests

from conftest import API_KEYS, ASK_COMPONENT, assert_json_error, free_port, serving, start_server, stop_server, unique_text
from test_jwt import SECRET, mint, valid_claims


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    metrics_port = free_port()
    srv = start_server(tmp_path_factory.mktemp("http-cache"), env={"SPIN_VARIABLE_JWT_SECRET": SECRET},
                       extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"])
    srv.metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    yield srv
    assert srv.alive(), srv.log()
    stop_server(srv)


def get(srv, text: str, *, token: str = API_KEYS[0], **headers) -> requests.Response:
    return srv.get("/v1/encode", auth=False, params={"query": text},
                   headers={"Authorization": f"Bearer {token}", **headers})


def replayed(resp: requests.Response) -> bool:
    """Whether the host's cache answered (see the module's docstring)."""
    from_host = "age" in resp.headers and "server-timing" not in resp.headers
    assert from_host or ("server-timing" in resp.headers and "age" not in resp.headers), resp.headers
    return from_host


def metric(srv, line_start: str) -> float:
    lines = [line for line in requests.get(srv.metrics, timeout=10).text.splitlines() if line.startswith(line_start)]
    assert len(lines) == 1, lines
    return float(lines[0].rsplit(" ", 1)[1])


def hits(srv) -> float:
    return metric(srv, 'http_cache_lookups_total{result="hit"}')


def test_a_repeated_get_is_the_same_answer_from_the_host(host):
    text = unique_text("http cache")
    first = get(host, text)
    assert first.status_code == 200 and not replayed(first)
    before = hits(host)

    second = get(host, text, **{"X-Request-Id": "replay-1"})
    assert second.status_code == 200 and replayed(second)
    assert int(second.headers["age"]) >= 0
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["x-request-id"] == "replay-1", "each answer has its own request's id"
    assert second.headers["access-control-allow-origin"] == "*"
    assert hits(host) == before + 1
    assert metric(host, "http_cache_bytes ") >= len(first.content)


def test_another_token_is_answered_by_the_component_and_a_bad_one_refused(host):
    text = unique_text("http cache tokens")
    assert not replayed(get(host, text, token=API_KEYS[0]))
    assert replayed(get(host, text, token=API_KEYS[0]))
    other = get(host, text, token=API_KEYS[1])
    assert other.status_code == 200 and not replayed(other)
    assert other.headers["x-cache"] == "HIT", "the component's own cache had it"
    assert_json_error(get(host, text, token="not-a-key"), 401)
    assert_json_error(host.get("/v1/encode", auth=False, params={"query": text}), 401)


def test_a_jwt_answer_is_not_replayed_past_the_token_s_exp(host):
    text = unique_text("http cache jwt")
    exp = int(time.time()) + 3
    token = mint(valid_claims(exp=exp))
    first = get(host, text, token=token)
    assert first.status_code == 200 and not replayed(first)
    assert first.headers["cache-control"] in {f"max-age=86400, s-maxage={s}" for s in (1, 2, 3)}
    assert replayed(get(host, text, token=token))
    time.sleep(max(exp + 1 - time.time(), 0))
    # Past `exp`, within the component's clock-skew leeway: the component still accepts the token, but the
    # host no longer answers for it.
    for accepting_stale in ({}, {"Cache-Control": "max-stale"}):
        after = get(host, text, token=token, **accepting_stale)
        assert after.status_code == 200 and not replayed(after), accepting_stale
        assert after.headers["cache-control"] == "private, max-age=86400"


def test_a_get_with_its_query_in_a_body_is_never_replayed(host):
    answers = []
    for text in (unique_text("body a"), unique_text("body b")):
        resp = host.get("/v1/encode", json={"query": text})
        assert resp.status_code == 200 and not replayed(resp)
        assert resp.json()["query"] == text
        assert resp.headers["cache-control"] == "private, max-age=86400"
        answers.append(resp.json()["encoding"])
    assert answers[0] != answers[1]


def test_conditional_and_no_cache_requests_go_to_the_component(host):
    text = unique_text("http cache conditional")
    first = get(host, text)
    assert replayed(get(host, text))
    not_modified = get(host, text, **{"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304 and "age" not in not_modified.headers
    fresh = get(host, text, **ASK_COMPONENT)
    assert fresh.status_code == 200 and not replayed(fresh)
    assert fresh.headers["x-cache"] == "HIT"


@pytest.mark.parametrize("setting", ["--http-cache-mib 0", "shared_cache_seconds = 0"])
def test_the_cache_can_be_turned_off_on_the_host_or_refused_by_the_component(tmp_path, setting):
    args, env = (["--http-cache-mib", "0"], {}) if setting.startswith("--") else \
        ([], {"SPIN_VARIABLE_SHARED_CACHE_SECONDS": "0"})
    text = unique_text("http cache off")
    with serving(tmp_path, extra_args=args, env=env) as srv:
        answers = [get(srv, text) for _ in range(3)]
    assert [resp.status_code for resp in answers] == [200] * 3
    assert not any(replayed(resp) for resp in answers)
    assert [resp.headers["x-cache"] for resp in answers] == ["MISS", "HIT", "HIT"]
