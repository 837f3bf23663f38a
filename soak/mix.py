"""The soak's request mix: what a day of real traffic looks like, as weighted kinds of call, each with the
statuses it may get. Anything else (a 5xx, a 429 below the admission bound, a connection error) is an
unexpected status and fails the soak."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable

from load import Call
from traffic import AUTH, JSON, UniqueQuestions, encode_get, multiple_encode, openai_embeddings, questions

# The texts repeated through the run (a few hundred popular questions): mostly cache hits after their first use.
REPEATED_POOL = 400
BATCH = 32


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    expected: frozenset
    make: Callable[[random.Random], Call]


def _post(path: str, body: bytes, kind: str, auth: bool = True) -> Call:
    return Call("POST", path, body, {**(AUTH if auth else {}), **JSON}, kind)


def kinds(unique: UniqueQuestions) -> list[Kind]:
    pool = questions()[:REPEATED_POOL]
    long_text = " ".join(pool[:40])  # well over the model's 256 tokens

    def repeated(rng: random.Random) -> str:
        return pool[min(int(rng.expovariate(1 / 40)), REPEATED_POOL - 1)]  # a few questions are asked most

    ok = frozenset({200})
    return [
        Kind("get-repeated", 30, ok, lambda rng: encode_get(repeated(rng), "get-repeated")),
        Kind("get-unique", 15, ok, lambda rng: encode_get(unique.next(), "get-unique")),
        Kind("batch-32", 6, ok, lambda rng: multiple_encode(
            [repeated(rng) if i % 2 else unique.next() for i in range(BATCH)], "batch-32")),
        Kind("openai", 15, ok, lambda rng: openai_embeddings(
            [repeated(rng) if rng.random() < 0.6 else unique.next() for _ in range(rng.randint(1, 4))],
            "openai")),
        Kind("similarity", 5, ok, lambda rng: _post(
            "/v1/encode/cos_sim_weight", json.dumps({"a": repeated(rng), "b": [repeated(rng), repeated(rng)]})
            .encode(), "similarity")),
        Kind("paraphrase", 4, ok, lambda rng: _post(
            "/v1/paraphrase", json.dumps({"sentences": [repeated(rng) for _ in range(6)]}).encode(), "paraphrase")),
        Kind("ping", 5, ok, lambda rng: Call("GET", "/v1/ping", kind="ping")),
        # Bad inputs, each with the status the API documents for it.
        Kind("bad-no-auth", 4, frozenset({401}), lambda rng: Call(
            "GET", "/v1/encode?query=who", kind="bad-no-auth")),
        Kind("bad-json", 4, frozenset({400}), lambda rng: _post(
            "/v1/encode/multiple_encode", b'{"sentences": ["a", ', "bad-json")),
        Kind("bad-model", 4, frozenset({404}), lambda rng: _post(
            "/v1/embeddings", json.dumps({"model": "no-such-model", "input": repeated(rng)}).encode(), "bad-model")),
        Kind("bad-too-long", 4, frozenset({422}), lambda rng: _post(
            "/v1/encode", json.dumps({"query": long_text, "truncate": False}).encode(), "bad-too-long")),
        Kind("bad-too-many", 2, frozenset({413}), lambda rng: _post(
            "/v1/encode/multiple_encode", json.dumps({"sentences": ["hi"] * 2049}).encode(), "bad-too-many")),
        Kind("bad-route", 2, frozenset({404}), lambda rng: Call("GET", "/v1/w2v", headers=AUTH, kind="bad-route")),
    ]


class Mix:
    """Picks each worker's next call by weight, from a per-worker seeded generator (a repeatable run)."""

    def __init__(self, unique: UniqueQuestions, seed: int = 12):
        self.kinds = kinds(unique)
        self.by_name = {kind.name: kind for kind in self.kinds}
        self.seed = seed
        self.rngs: dict[int, random.Random] = {}

    def next_call(self, worker: int, sequence: int) -> Call:
        rng = self.rngs.setdefault(worker, random.Random(self.seed * 1000 + worker))
        kind = rng.choices(self.kinds, weights=[k.weight for k in self.kinds])[0]
        return kind.make(rng)

    def expected(self, call: Call) -> frozenset:
        return self.by_name[call.kind].expected
