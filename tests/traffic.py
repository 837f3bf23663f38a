"""The requests the load, fault and soak runs send: real user questions (../shared/load/questions.json) in
this API's routes, as `load.Call`s, and the checks of the answers that every such run shares."""
from __future__ import annotations

import itertools
import json
import uuid
from urllib.parse import urlencode

from conftest import API_KEYS, MODEL_ALIAS, SHARED
from load import Call, Outcome

AUTH = {"Authorization": f"Bearer {API_KEYS[0]}"}
JSON = {"Content-Type": "application/json"}


def questions() -> list[str]:
    """The distinct shared questions, in their file's order."""
    return list(dict.fromkeys(json.loads((SHARED / "load/questions.json").read_text())))


class UniqueQuestions:
    """Real questions made unique (nothing has cached them yet) by a run-specific suffix; thread-safe."""

    def __init__(self, label: str):
        self.pool = questions()
        self.counter = itertools.count()
        self.run = f"{label} {uuid.uuid4().hex[:8]}"

    def next(self) -> str:
        n = next(self.counter)  # itertools.count is atomic under the GIL
        return f"{self.pool[n % len(self.pool)]} ({self.run} #{n})"

    def take(self, count: int) -> list[str]:
        return [self.next() for _ in range(count)]


def encode_get(text: str, kind: str = "get", headers: dict | None = None) -> Call:
    return Call("GET", "/v1/encode?" + urlencode({"query": text}), headers={**AUTH, **(headers or {})}, kind=kind)


def multiple_encode(texts: list[str], kind: str = "batch") -> Call:
    return Call("POST", "/v1/encode/multiple_encode", json.dumps({"sentences": texts}).encode(),
                {**AUTH, **JSON}, kind)


def openai_embeddings(inputs: str | list, kind: str = "openai") -> Call:
    body = json.dumps({"model": MODEL_ALIAS, "input": inputs}).encode()
    return Call("POST", "/v1/embeddings", body, {**AUTH, **JSON}, kind)


def original_error(outcome: Outcome, status: int) -> dict:
    """The original API family's error body (`{"code", "name", "description"}`), checked."""
    assert outcome.headers.get("content-type", "").startswith("application/json"), outcome.headers
    body = json.loads(outcome.body)
    assert body.get("code") == status, body
    assert isinstance(body.get("name"), str) and body["name"], body
    assert isinstance(body.get("description"), str) and body["description"], body
    return body


def openai_error(outcome: Outcome) -> dict:
    """OpenAI's error body (`{"error": {"message", "type", "param", "code"}}`), checked."""
    assert outcome.headers.get("content-type", "").startswith("application/json"), outcome.headers
    error = json.loads(outcome.body)["error"]
    assert isinstance(error.get("message"), str) and error["message"], error
    assert isinstance(error.get("type"), str) and error["type"], error
    assert "param" in error and "code" in error, error
    return error


def assert_refusal(outcome: Outcome, status: int) -> None:
    """A host refusal (429 overloaded, 503 draining): `Retry-After` in whole seconds and a JSON body in the
    shape of the route's family (OpenAI's under /v1/embeddings, the original API's elsewhere)."""
    assert outcome.status == status, (outcome.status, outcome.body[:300])
    retry_after = outcome.headers.get("retry-after", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, f"Retry-After {retry_after!r}: {outcome.headers}"
    if outcome.call.path.startswith("/v1/embeddings"):
        openai_error(outcome)
    else:
        original_error(outcome, status)
