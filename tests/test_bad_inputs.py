"""A hand-written table of bad requests, each with the status and error shape the contract gives it; then a
table of odd-but-valid requests that must be served; then proof that none of it hurt the server.

Original routes answer `{"code", "name", "description"}`; /v1/embeddings and /v1/models answer
`{"error": {"message", "type", "param", "code"}}`. No answer may leak a key, a panic or a source path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from conftest import API_KEYS, MODEL_ID, assert_json_error, assert_openai_error, cosine, names_field

MODEL = "all-minilm-l6-v2"


def j(value) -> bytes:
    return json.dumps(value).encode()


@dataclass(frozen=True)
class Bad:
    id: str
    method: str
    path: str
    body: bytes | None
    status: int | tuple[int, ...]
    # The field the error must name (in a 422's `description`, or as OpenAI's `param`).
    field: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def emb(**fields) -> bytes:
    return j({"model": MODEL, "input": "hello", **fields})


DEEP = 100_000
HUGE = 2**64
TEN_MB = 10 * 1024 * 1024

BAD = [
    # --- bodies that are not a usable JSON object ---
    Bad("empty-body-multiple-encode", "POST", "/v1/encode/multiple_encode", None, 400),
    Bad("empty-object-multiple-encode", "POST", "/v1/encode/multiple_encode", b"{}", 400),
    Bad("whitespace-body-paraphrase", "POST", "/v1/paraphrase", b" \r\n\t ", 400),
    Bad("empty-body-embeddings", "POST", "/v1/embeddings", None, 400),
    Bad("truncated-json", "POST", "/v1/encode/multiple_encode", b'{"sentences": ["a", ', 400),
    Bad("single-quoted-json", "POST", "/v1/encode", b"{'query': 'hi'}", 400),
    Bad("trailing-garbage", "POST", "/v1/encode/cos_sim_weight", b'{"a": "x", "b": "y"} }', 400),
    Bad("nan-literal", "POST", "/v1/paraphrase", b'{"sentences": ["a"], "top_k": NaN}', 400),
    Bad("form-body-declared-json", "POST", "/v1/encode", b"query=hello", 400),
    Bad("json-array-body", "POST", "/v1/encode/multiple_encode", b'["hello"]', 422),
    Bad("json-string-body", "POST", "/v1/encode", b'"hello"', 422),
    Bad("json-null-body", "POST", "/v1/paraphrase", b"null", 422),
    Bad("json-array-body-embeddings", "POST", "/v1/embeddings", b'[{"model": "x"}]', 422),
    Bad("malformed-json-embeddings", "POST", "/v1/embeddings", b'{"model": "x", "input": [1,', 400),
    # --- encodings the JSON parser must refuse (never a trap) ---
    Bad("invalid-utf8-bytes", "POST", "/v1/encode/multiple_encode", b'{"sentences": ["ok", "\xff\xfe\xfd"]}', 400),
    Bad("overlong-utf8", "POST", "/v1/encode", b'{"query": "\xc0\xaf"}', 400),
    Bad("invalid-utf8-embeddings", "POST", "/v1/embeddings", b'{"model": "x", "input": "\xed\xa0\x80"}', 400),
    Bad("lone-high-surrogate", "POST", "/v1/encode/multiple_encode", b'{"sentences": ["\\ud800"]}', 400),
    Bad("lone-low-surrogate", "POST", "/v1/encode", b'{"query": "x\\udc00y"}', 400),
    Bad("lone-surrogate-embeddings", "POST", "/v1/embeddings",
        b'{"model": "all-minilm-l6-v2", "input": ["\\ud83d"]}', 400),
    Bad("invalid-utf8-query-string", "GET", "/v1/encode?query=%FF%FE", None, 400),
    # --- nesting and size ---
    Bad("deep-nesting-unclosed", "POST", "/v1/encode/multiple_encode", b'{"sentences": ' + b"[" * DEEP, 400),
    Bad("deep-nesting-closed", "POST", "/v1/paraphrase",
        b'{"sentences": ' + b"[" * DEEP + b"]" * DEEP + b"}", 400),
    Bad("deep-nesting-embeddings", "POST", "/v1/embeddings",
        b'{"model": "all-minilm-l6-v2", "input": ' + b"[" * DEEP + b"]" * DEEP + b"}", 400),
    Bad("ten-mb-body", "POST", "/v1/encode/multiple_encode", b'{"sentences": ["' + b"x" * TEN_MB + b'"]}', 413),
    Bad("ten-mb-body-embeddings", "POST", "/v1/embeddings",
        b'{"model": "all-minilm-l6-v2", "input": "' + b"y" * TEN_MB + b'"}', 413),
    Bad("ten-thousand-inputs", "POST", "/v1/encode/multiple_encode", j({"sentences": ["hi"] * 10_000}), 413),
    Bad("ten-thousand-inputs-paraphrase", "POST", "/v1/paraphrase", j({"sentences": ["hi"] * 10_000}), 413),
    Bad("ten-thousand-inputs-embeddings", "POST", "/v1/embeddings", emb(input=["hi"] * 10_000), 413),
    Bad("ten-thousand-token-lists", "POST", "/v1/embeddings", emb(input=[[7592]] * 10_000), 413),
    Bad("one-input-over-max-chars", "POST", "/v1/encode/cos_sim_weight", j({"a": "q" * 20_001, "b": "x"}), 413),
    # --- missing, null and wrong types on the original routes ---
    Bad("sentences-null", "POST", "/v1/encode/multiple_encode", j({"sentences": None}), 422, "sentences"),
    Bad("sentences-string", "POST", "/v1/encode/multiple_encode", j({"sentences": "hello"}), 422, "sentences"),
    Bad("sentences-numbers", "POST", "/v1/encode/multiple_encode", j({"sentences": [1, 2]}), 422, "sentences"),
    Bad("sentences-null-item", "POST", "/v1/encode/multiple_encode", j({"sentences": ["a", None]}), 422,
        "sentences"),
    Bad("sentences-nested-list", "POST", "/v1/encode/multiple_encode", j({"sentences": [["a"]]}), 422,
        "sentences"),
    Bad("sentences-object", "POST", "/v1/paraphrase", j({"sentences": {"0": "a"}}), 422, "sentences"),
    Bad("truncate-string", "POST", "/v1/encode/multiple_encode", j({"sentences": ["a"], "truncate": "yes"}), 422,
        "truncate"),
    Bad("truncate-number", "POST", "/v1/encode", j({"query": "a", "truncate": 1}), 422, "truncate"),
    Bad("query-number", "POST", "/v1/encode", j({"query": 3.5}), 422, "query"),
    Bad("query-object", "POST", "/v1/encode", j({"query": {"text": "hi"}}), 422, "query"),
    Bad("query-null", "POST", "/v1/encode", j({"query": None}), 422, "query"),
    Bad("get-with-json-query-number", "GET", "/v1/encode", j({"query": 12}), 422, "query"),
    Bad("cos-missing-b", "POST", "/v1/encode/cos_sim_weight", j({"a": "x"}), 400),
    Bad("cos-a-number", "POST", "/v1/encode/cos_sim_weight", j({"a": 5, "b": "x"}), 422, "a"),
    Bad("cos-b-null", "POST", "/v1/encode/cos_sim_weight", j({"a": "x", "b": None}), 422, "b"),
    Bad("cos-b-mixed-list", "POST", "/v1/encode/cos_sim_weight", j({"a": "x", "b": ["y", 2]}), 422, "b"),
    Bad("paraphrase-missing-sentences", "POST", "/v1/paraphrase", j({"top_k": 3}), 400),
    Bad("top-k-zero", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "top_k": 0}), 422, "top_k"),
    Bad("top-k-negative", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "top_k": -1}), 422, "top_k"),
    Bad("top-k-float", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "top_k": 1.5}), 422, "top_k"),
    Bad("top-k-string", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "top_k": "10"}), 422, "top_k"),
    Bad("top-k-2-pow-64", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "top_k": HUGE}), 422, "top_k"),
    Bad("top-k-minus-2-pow-64", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "top_k": -HUGE}), 422,
        "top_k"),
    # 1e400 is valid JSON grammar but no f64: refusing the document (400) or the value (422) both hold.
    Bad("top-k-1e400", "POST", "/v1/paraphrase", b'{"sentences": ["a", "b"], "top_k": 1e400}', (400, 422),
        "top_k"),
    Bad("max-pairs-zero", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "max_pairs": 0}), 422,
        "max_pairs"),
    Bad("max-pairs-negative", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "max_pairs": -5}), 422,
        "max_pairs"),
    Bad("max-pairs-bool", "POST", "/v1/paraphrase", j({"sentences": ["a", "b"], "max_pairs": True}), 422,
        "max_pairs"),
    # --- the OpenAI route's fields ---
    Bad("input-missing", "POST", "/v1/embeddings", j({"model": MODEL}), 400, "input"),
    Bad("model-missing", "POST", "/v1/embeddings", j({"input": "hello"}), 400, "model"),
    Bad("input-empty-list", "POST", "/v1/embeddings", emb(input=[]), 422, "input"),
    Bad("input-empty-token-list", "POST", "/v1/embeddings", emb(input=[[]]), 422, "input"),
    Bad("input-null", "POST", "/v1/embeddings", emb(input=None), 422, "input"),
    Bad("input-number", "POST", "/v1/embeddings", emb(input=42), 422, "input"),
    Bad("input-object", "POST", "/v1/embeddings", emb(input={"text": "hi"}), 422, "input"),
    Bad("input-mixed-ids-and-text", "POST", "/v1/embeddings", emb(input=[7592, "world"]), 422, "input"),
    Bad("input-mixed-lists-and-text", "POST", "/v1/embeddings", emb(input=[[7592], "world"]), 422, "input"),
    Bad("token-id-vocab-size", "POST", "/v1/embeddings", emb(input=[7592, 30522]), 422, "input"),
    Bad("token-id-negative", "POST", "/v1/embeddings", emb(input=[-1]), 422, "input"),
    Bad("token-id-2-pow-64", "POST", "/v1/embeddings", emb(input=[[7592], [HUGE]]), 422, "input"),
    Bad("token-id-float", "POST", "/v1/embeddings", emb(input=[7592.5]), 422, "input"),
    Bad("model-null", "POST", "/v1/embeddings", emb(model=None), 422, "model"),
    Bad("model-number", "POST", "/v1/embeddings", emb(model=3), 422, "model"),
    Bad("model-unknown", "POST", "/v1/embeddings", emb(model="text-embedding-ada-002"), 404, "model"),
    Bad("encoding-format-unknown", "POST", "/v1/embeddings", emb(encoding_format="int8"), 422, "encoding_format"),
    Bad("encoding-format-number", "POST", "/v1/embeddings", emb(encoding_format=1), 422, "encoding_format"),
    Bad("dimensions-zero", "POST", "/v1/embeddings", emb(dimensions=0), 422, "dimensions"),
    Bad("dimensions-385", "POST", "/v1/embeddings", emb(dimensions=385), 422, "dimensions"),
    Bad("dimensions-negative", "POST", "/v1/embeddings", emb(dimensions=-384), 422, "dimensions"),
    Bad("dimensions-2-pow-64", "POST", "/v1/embeddings", emb(dimensions=HUGE), 422, "dimensions"),
    Bad("dimensions-1e400", "POST", "/v1/embeddings", b'{"model": "all-minilm-l6-v2", "input": "a", '
        b'"dimensions": 1e400}', (400, 422), "dimensions"),
    Bad("dimensions-float", "POST", "/v1/embeddings", emb(dimensions=64.5), 422, "dimensions"),
    Bad("dimensions-string", "POST", "/v1/embeddings", emb(dimensions="64"), 422, "dimensions"),
    Bad("truncate-string-embeddings", "POST", "/v1/embeddings", emb(truncate="no"), 422, "truncate"),
    Bad("retrieve-unknown-model", "GET", "/v1/models/gpt-4", None, 404),
    # --- content types, methods, routes, query strings ---
    Bad("text-plain", "POST", "/v1/encode/multiple_encode", j({"sentences": ["a"]}), 415,
        headers=(("Content-Type", "text/plain"),)),
    Bad("form-urlencoded", "POST", "/v1/encode", b"query=hello", 415,
        headers=(("Content-Type", "application/x-www-form-urlencoded"),)),
    Bad("text-plain-embeddings", "POST", "/v1/embeddings", emb(), 415, headers=(("Content-Type", "text/plain"),)),
    Bad("octet-stream-paraphrase", "POST", "/v1/paraphrase", j({"sentences": ["a"]}), 415,
        headers=(("Content-Type", "application/octet-stream"),)),
    Bad("query-params-instead-of-body", "POST", "/v1/encode/multiple_encode?sentences=hello", None, 400),
    Bad("delete-encode", "DELETE", "/v1/encode", None, 405),
    Bad("put-multiple-encode", "PUT", "/v1/encode/multiple_encode", j({"sentences": ["a"]}), 405),
    Bad("get-cos-sim", "GET", "/v1/encode/cos_sim_weight", None, 405),
    Bad("get-paraphrase", "GET", "/v1/paraphrase", None, 405),
    Bad("get-embeddings", "GET", "/v1/embeddings", None, 405),
    Bad("post-models", "POST", "/v1/models", emb(), 405),
    Bad("unknown-route", "GET", "/v1/encode/multiple", None, 404),
    Bad("unknown-version", "POST", "/v0/encode", j({"query": "x"}), 404),
    Bad("double-slash", "GET", "//v1/encode?query=hi", None, 404),
]


def is_openai_route(path: str) -> bool:
    return path.startswith(("/v1/embeddings", "/v1/models"))


def send(server, case: Bad):
    headers = dict(case.headers)
    if case.body is not None and "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    return server.request(case.method, case.path, data=case.body, headers=headers, allow_redirects=False)


def assert_nothing_leaked(resp):
    text = resp.text
    for secret in API_KEYS:
        assert secret not in text
    for internal in ("panicked", "RUST_BACKTRACE", ".rs:", "wasm backtrace", "wasmtime"):
        assert internal not in text, text[:500]


def test_the_bad_table_is_big_enough():
    assert len(BAD) >= 40
    assert len({case.id for case in BAD}) == len(BAD), "duplicate ids"


@pytest.mark.parametrize("case", BAD, ids=[case.id for case in BAD])
def test_bad_input(server, case):
    resp = send(server, case)
    statuses = case.status if isinstance(case.status, tuple) else (case.status,)
    assert resp.status_code in statuses, f"{resp.status_code}: {resp.text[:500]}"
    assert_nothing_leaked(resp)
    assert resp.headers.get("access-control-allow-origin") == "*"
    if is_openai_route(case.path):
        error = assert_openai_error(resp, resp.status_code)
        if case.field and resp.status_code in (400, 404, 422):
            assert error["param"] == case.field, error
        if resp.status_code == 404 and case.field == "model":
            assert error["code"] == "model_not_found", error
    else:
        body = assert_json_error(resp, resp.status_code)
        if case.field and resp.status_code == 422:
            assert names_field(body["description"], case.field), body
    if resp.status_code == 405:
        assert resp.headers.get("allow"), resp.headers
        assert case.method not in {m.strip().upper() for m in resp.headers["allow"].split(",")}


# --- accepted oddities: valid requests that look wrong and must be served ---------------------------------


@dataclass(frozen=True)
class Odd:
    id: str
    method: str
    path: str
    body: bytes | None
    # What the 200 must say: the `original`s of multiple_encode, or None to check only the shape.
    originals: list | None = None


ODD = [
    # NUL is a valid character in JSON text (\u0000): it is text, so it is embedded.
    Odd("nul-in-sentence", "POST", "/v1/encode/multiple_encode", j({"sentences": ["a\u0000b", "\u0000"]}),
        ["a\u0000b", "\u0000"]),
    Odd("nul-in-query", "POST", "/v1/encode", j({"query": "hello\u0000world"})),
    Odd("nul-in-embeddings", "POST", "/v1/embeddings", emb(input="\u0000")),
    Odd("control-characters", "POST", "/v1/encode/multiple_encode", j({"sentences": ["\u0001\u0007\u001f\t"]}),
        ["\u0001\u0007\u001f\t"]),
    Odd("escaped-surrogate-pair", "POST", "/v1/encode/multiple_encode", b'{"sentences": ["\\ud83d\\ude42"]}',
        ["\U0001F642"]),
    Odd("noncharacter-uffff", "POST", "/v1/encode/multiple_encode", j({"sentences": ["\uffff\ufffe"]}),
        ["\uffff\ufffe"]),
    Odd("combining-and-rtl", "POST", "/v1/encode/multiple_encode", j({"sentences": ["e\u0301\u200f\u05e9"]}),
        ["e\u0301\u200f\u05e9"]),
    Odd("whitespace-only-sentence", "POST", "/v1/encode/multiple_encode", j({"sentences": ["   ", "\n"]}),
        ["   ", "\n"]),
    Odd("truncate-null-is-default", "POST", "/v1/encode/multiple_encode", j({"sentences": ["a"], "truncate": None}),
        ["a"]),
    Odd("top-k-and-max-pairs-null", "POST", "/v1/paraphrase",
        j({"sentences": ["a", "b"], "top_k": None, "max_pairs": None})),
    Odd("top-k-huge-but-valid", "POST", "/v1/paraphrase", j({"sentences": ["a", "b", "c"], "top_k": 2**62,
                                                            "max_pairs": 2**62})),
    Odd("optional-openai-fields-null", "POST", "/v1/embeddings",
        emb(encoding_format=None, dimensions=None, user=None)),
    Odd("unknown-extra-field", "POST", "/v1/encode/multiple_encode", j({"sentences": ["a"], "extra": [1, {}]}),
        ["a"]),
    Odd("unknown-extra-field-embeddings", "POST", "/v1/embeddings", emb(logprobs=True)),
    Odd("query-params-on-post-ignored", "POST", "/v1/encode/multiple_encode?sentences=zzz&truncate=maybe",
        j({"sentences": ["a"]}), ["a"]),
    Odd("surrounding-json-whitespace", "POST", "/v1/encode/multiple_encode", b'\n\t {"sentences": ["a"]} \r\n',
        ["a"]),
    Odd("token-id-zero-and-max", "POST", "/v1/embeddings", emb(input=[0, 30521])),
]


@pytest.mark.parametrize("case", ODD, ids=[case.id for case in ODD])
def test_accepted_oddity(server, case):
    resp = server.request(case.method, case.path, data=case.body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text[:500]
    body = resp.json()
    if case.path.startswith("/v1/encode/multiple_encode"):
        assert [row["original"] for row in body["data"]] == case.originals
        assert all(len(row["encoded"]) == 384 for row in body["data"])
    elif case.path == "/v1/encode":
        assert len(body["encoding"]) == 384
    elif case.path == "/v1/paraphrase":
        assert isinstance(body["pairs"], list) and body["pairs"]
    elif case.path == "/v1/embeddings":
        assert body["model"] == MODEL_ID and len(body["data"][0]["embedding"]) == 384


# --- afterwards -----------------------------------------------------------------------------------------------


def test_server_is_healthy_after_all_of_it(server, reference):
    """Runs last in this file: the tables above must have left the host up and serving real embeddings."""
    assert server.alive(), server.log()
    ping = server.get("/v1/ping", auth=False)
    assert ping.status_code == 200 and ping.json()["message"] == "pong!"
    item = reference["items"][0]
    resp = server.post("/v1/encode", json={"query": item["text"]})
    assert resp.status_code == 200, resp.text
    assert cosine(resp.json()["encoding"], item["embedding"]) >= 0.9999
    resp = server.post("/v1/embeddings", json={"model": MODEL, "input": [item["text"]]})
    assert resp.status_code == 200, resp.text
    assert cosine(resp.json()["data"][0]["embedding"], item["embedding"]) >= 0.9999
    assert "panicked" not in server.log()
    assert server.alive()
