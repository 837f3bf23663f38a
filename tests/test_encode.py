"""The original service's core routes, end to end on the real host, model and ONNX Runtime."""
from urllib.parse import quote

import pytest

from conftest import API_KEYS, assert_json_error, cosine

MIN_COSINE = 0.9999


def non_empty_items(reference):
    return [item for item in reference["items"] if item["text"].strip()]


def test_health_check_is_public_and_empty(server):
    resp = server.get("/", auth=False)
    assert resp.status_code == 200
    assert resp.content == b""


@pytest.mark.parametrize("path", ["/v1/ping", "/v1/ping/"])
def test_ping_is_public(server, path):
    resp = server.get(path, auth=False)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "success"
    assert body["message"] == "pong!"
    assert isinstance(body["container_id"], str) and body["container_id"]


def test_every_reference_sentence_matches_sentence_transformers(server, reference):
    for item in non_empty_items(reference):
        resp = server.get("/v1/encode?query=" + quote(item["text"], safe=""))
        assert resp.status_code == 200, (item["text"][:40], resp.text)
        body = resp.json()
        assert body["query"] == item["text"].strip()
        assert len(body["encoding"]) == 384
        sim = cosine(body["encoding"], item["embedding"])
        assert sim >= MIN_COSINE, f"{item['text'][:40]!r}: cosine {sim}"


def test_empty_string_embedding_matches_reference_through_similarities(server, reference):
    # `/v1/encode` rejects an empty query (as the original did), but the empty string is still a
    # valid input elsewhere: its similarity to every other reference sentence pins its vector.
    empty = next(item for item in reference["items"] if item["text"] == "")
    for item in non_empty_items(reference)[:10]:
        resp = server.post("/v1/encode/cos_sim_weight", json={"a": "", "b": item["text"]})
        assert resp.status_code == 200, resp.text
        expected = sum(x * y for x, y in zip(empty["embedding"], item["embedding"]))
        assert resp.json()["cos_sim_weight"] == pytest.approx(expected, abs=1e-4)


def test_post_and_get_agree(server):
    text = "The quick brown fox jumps over the lazy dog."
    via_get = server.get("/v1/encode", params={"query": text}).json()
    via_post = server.post("/v1/encode", json={"query": text}).json()
    via_get_body = server.get("/v1/encode", json={"query": text}).json()
    assert via_get["query"] == via_post["query"] == via_get_body["query"] == text
    assert cosine(via_get["encoding"], via_post["encoding"]) >= 0.999999
    assert cosine(via_get["encoding"], via_get_body["encoding"]) >= 0.999999


def test_answers_declare_their_length_instead_of_chunking(server):
    for resp in (server.get("/v1/encode", params={"query": "length"}),
                 server.post("/v1/encode", json={"query": "x" * 10_000}),
                 server.get("/v1/encode", auth=False)):
        assert resp.headers.get("content-length") == str(len(resp.content)), resp.headers
        assert "transfer-encoding" not in resp.headers, resp.headers


def test_trailing_slash_is_served_directly(server):
    resp = server.get("/v1/encode/?query=hello", allow_redirects=False)
    assert resp.status_code == 200
    assert len(resp.json()["encoding"]) == 384


def test_query_is_stripped(server):
    body = server.get("/v1/encode", params={"query": "  hello world \n"}).json()
    assert body["query"] == "hello world"


@pytest.mark.parametrize(
    "method,kwargs",
    [
        ("GET", {}),
        ("GET", {"params": {"query": ""}}),
        ("GET", {"params": {"query": "   "}}),
        ("POST", {"json": {}}),
        ("POST", {"json": {"query": ""}}),
        ("POST", {"json": {"query": " \t "}}),
    ],
)
def test_missing_or_empty_query_is_400(server, method, kwargs):
    resp = server.request(method, "/v1/encode", **kwargs)
    # The original's body, `{"query": ["required field"]}`, inside our standard error shape.
    body = assert_json_error(resp, 400)
    assert body["query"] == ["required field"]


def test_cos_sim_weight_hello_hi(server, similarity_reference):
    # sentence-transformers' score for the pair, from the shared reference's paraphrase mining.
    mining = similarity_reference["paraphrase_mining"]
    a, b = mining["sentences"].index("hello world"), mining["sentences"].index("hi world")
    [expected] = [score for score, i, j in mining["pairs"] if {i, j} == {a, b}]
    resp = server.post("/v1/encode/cos_sim_weight", json={"a": "hello world", "b": "hi world"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["cos_sim_weight"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("path", ["/v1/encode?query=hi", "/v1/encode/cos_sim_weight"])
def test_missing_key_is_401(server, path):
    resp = server.request("POST" if "cos" in path else "GET", path, auth=False,
                          json={"a": "x", "b": "y"})
    assert_json_error(resp, 401)
    assert resp.headers.get("www-authenticate", "").lower().startswith("bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-key", "Basic dGVzdDp0ZXN0", "Bearer", "Bearer " + API_KEYS[0] + "x", API_KEYS[0]],
)
def test_wrong_credentials_are_401(server, header):
    resp = server.get("/v1/encode?query=hi", auth=False, headers={"Authorization": header})
    body = assert_json_error(resp, 401)
    assert API_KEYS[0] not in resp.text and API_KEYS[1] not in resp.text, body


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
@pytest.mark.parametrize("key", API_KEYS)
def test_every_configured_key_works_with_any_scheme_case(server, scheme, key):
    resp = server.get("/v1/encode?query=hi", auth=False, headers={"Authorization": f"{scheme} {key}"})
    assert resp.status_code == 200, resp.text
