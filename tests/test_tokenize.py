"""Issue 21, the tokenizer's routes: TEI's `POST /tokenize` and `POST /decode`, and `POST /v1/tokenize` beside OpenAI's
embeddings. Token ids, specials and offsets come from the model's tokenizer.json run by Python's `tokenizers` (whose
offsets count characters); `/v1/tokenize`'s counts are `/v1/embeddings`' usage."""
from __future__ import annotations

import pytest

from conftest import MAX_TOKENS, MODEL_ALIAS, assert_openai_error, assert_tei_error

UNICODE = "naïve café 東京は日本の首都です。🙂 e\u0301"


@pytest.fixture(scope="module")
def texts(reference) -> list[str]:
    return [item["text"] for item in reference["items"]] + [UNICODE]


def expected_tokens(tokenizer, text: str, add_special_tokens: bool = True) -> list[dict]:
    """TEI's token objects for `text`, from the model's tokenizer in Python (character offsets)."""
    encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    tokens = []
    for id_, token, special, (start, stop) in zip(encoding.ids, encoding.tokens, encoding.special_tokens_mask,
                                                  encoding.offsets):
        if special:
            tokens.append({"id": id_, "text": token, "special": True, "start": None, "stop": None})
        else:
            tokens.append({"id": id_, "text": text[start:stop], "special": False, "start": start, "stop": stop})
    return tokens


def test_tokenize_matches_the_models_tokenizer_with_character_offsets(server, tokenizer, texts):
    resp = server.post("/tokenize", json={"inputs": texts})
    assert resp.status_code == 200, resp.text
    answered = resp.json()
    assert len(answered) == len(texts)
    for text, tokens in zip(texts, answered):
        assert tokens == expected_tokens(tokenizer, text), text[:40]
    unicode_tokens = answered[-1]
    assert [token["text"] for token in unicode_tokens if token["text"] in ("café", "🙂")] == ["café", "🙂"]
    cafe = next(token for token in unicode_tokens if token["text"] == "café")
    assert (cafe["start"], cafe["stop"]) == (6, 10), "characters, not bytes (é is two bytes)"


def test_tokenize_one_string_without_special_tokens(server, tokenizer):
    resp = server.post("/tokenize", json={"inputs": UNICODE, "add_special_tokens": False})
    assert resp.status_code == 200, resp.text
    assert resp.json() == [expected_tokens(tokenizer, UNICODE, add_special_tokens=False)]
    long = "word " * 400
    whole = server.post("/tokenize", json={"inputs": long}).json()[0]
    assert len(whole) == 402, "/tokenize does not truncate"


def test_decode_matches_the_models_tokenizer(server, tokenizer, texts):
    ids = [tokenizer.encode(text).ids for text in texts if text]
    for skip in (True, False):
        resp = server.post("/decode", json={"ids": ids, "skip_special_tokens": skip})
        assert resp.status_code == 200, resp.text
        assert resp.json() == [tokenizer.decode(one, skip_special_tokens=skip) for one in ids]
    single = server.post("/decode", json={"ids": ids[0]})
    assert single.json() == [tokenizer.decode(ids[0])]


@pytest.mark.parametrize("body,status,error_type,names", [
    ({"ids": [101, 30522]}, 422, "Validation", "30521"),
    ({"ids": [[101], [-1]]}, 422, "Validation", "item 1"),
    ({"ids": [1.5]}, 422, "Validation", "ids"),
    ({"ids": ["hello"]}, 422, "Validation", "ids"),
    ({"ids": []}, 400, "Empty", "ids"),
    ({"ids": [[7592], []]}, 400, "Empty", "ids"),
    ({}, 400, "Validation", "ids"),
])
def test_decode_refuses_ids_outside_the_vocabulary_and_empty_lists(server, body, status, error_type, names):
    message = assert_tei_error(server.post("/decode", json=body), status, error_type)
    assert names in message, message


@pytest.mark.parametrize("body,status,error_type,names", [
    ({"inputs": []}, 400, "Empty", "inputs"),
    ({"inputs": [1]}, 422, "Validation", "inputs"),
    ({"inputs": "a", "prompt_name": "query"}, 422, "Validation", "prompt_name"),
    ({"inputs": ["a"] * 2049}, 413, "Validation", "2049"),
    ({"inputs": ["a " * 9_999] * 52}, 413, "Validation", "131072"),
])
def test_tokenize_refuses_bad_input(server, body, status, error_type, names):
    message = assert_tei_error(server.post("/tokenize", json=body), status, error_type)
    assert names in message, message


def test_v1_tokenize_counts_what_v1_embeddings_reports(server, tokenizer, texts):
    body = {"model": MODEL_ALIAS, "input": texts}
    tokenized = server.post("/v1/tokenize", json=body)
    embedded = server.post("/v1/embeddings", json={**body, "encoding_format": "base64"})
    assert tokenized.status_code == embedded.status_code == 200, (tokenized.text, embedded.text)
    answer = tokenized.json()
    assert answer["usage"] == embedded.json()["usage"]
    for row, text in zip(answer["data"], texts):
        ids = tokenizer.encode(text).ids
        expected = ids if len(ids) <= MAX_TOKENS else ids[:MAX_TOKENS - 1] + [ids[-1]]
        assert row["tokens"] == expected and row["count"] == len(expected), text[:40]
    one = server.post("/v1/tokenize", json={"model": MODEL_ALIAS, "input": "hello world"}).json()
    assert one["data"] == [{"object": "tokens", "index": 0, "tokens": [101, 7592, 2088, 102], "count": 4}]


def test_v1_tokenize_errors_are_openais(server):
    assert_openai_error(server.post("/v1/tokenize", json={"model": MODEL_ALIAS, "input": "word " * 300,
                                                          "truncate": False}), 422, param="input")
    assert_openai_error(server.post("/v1/tokenize", json={"model": "gpt-4", "input": "x"}), 404,
                        code="model_not_found")
    assert_openai_error(server.post("/v1/tokenize", json={"model": MODEL_ALIAS, "input": []}), 422, param="input")
    assert_openai_error(server.post("/v1/tokenize", json={"input": "x"}), 400, param="model")
