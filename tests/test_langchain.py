"""LangChain's embeddings client for OpenAI-compatible servers (`langchain_openai.OpenAIEmbeddings`), pointed at
the service as a user of LangChain would point it, against sentence-transformers' reference vectors.

`check_embedding_ctx_length=False` keeps the client from counting tokens with tiktoken, whose encodings it
would download; it then sends the texts as they are, which is how it talks to any non-OpenAI server.
(LangChain's Hugging Face endpoint client no longer accepts a server's URL as its model, so TEI-style use
is covered by huggingface_hub's own client in tests/test_tei.py.)
"""
from __future__ import annotations

import pytest
from langchain_openai import OpenAIEmbeddings

from conftest import API_KEYS, MODEL_ALIAS, cosine

MIN_COSINE = 0.9999  # against sentence-transformers (../shared/README.md)


@pytest.fixture(scope="module")
def embeddings(server) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(model=MODEL_ALIAS, base_url=server.base_url + "/v1", api_key=API_KEYS[0],
                            check_embedding_ctx_length=False, max_retries=0)


def test_embed_query_matches_sentence_transformers(embeddings, reference):
    for item in [item for item in reference["items"] if item["text"].strip()][:20]:
        vector = embeddings.embed_query(item["text"])
        assert cosine(vector, item["embedding"]) >= MIN_COSINE, item["text"][:40]


def test_embed_documents_keeps_their_order(embeddings, reference):
    items = [item for item in reference["items"] if item["text"].strip()]
    vectors = embeddings.embed_documents([item["text"] for item in items])
    assert len(vectors) == len(items)
    for item, vector in zip(items, vectors):
        assert cosine(vector, item["embedding"]) >= MIN_COSINE, item["text"][:40]
