"""CORS on every answer (successes, errors, preflights) and the public API documents: /openapi.json and the
self-contained Swagger UI page at /docs."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from conftest import ROOT, assert_json_error, assert_openai_error

ORIGIN = "https://app.example.test"
EXPOSED = {"x-cache", "x-request-id", "server-timing", "etag"}


def header_set(resp, name: str) -> set[str]:
    return {item.strip().lower() for item in resp.headers.get(name, "").split(",") if item.strip()}


def assert_cors(resp):
    assert resp.headers.get("access-control-allow-origin") == "*", (resp.status_code, dict(resp.headers))
    assert EXPOSED <= header_set(resp, "access-control-expose-headers"), dict(resp.headers)


# --- CORS on ordinary answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,kwargs,status",
    [
        ("GET", "/", {"auth": False}, 200),
        ("GET", "/v1/ping", {"auth": False}, 200),
        ("GET", "/v1/encode?query=hi", {}, 200),
        ("POST", "/v1/encode/multiple_encode", {"json": {"sentences": ["hi"]}}, 200),
        ("POST", "/v1/encode/cos_sim_weight", {"json": {"a": "x", "b": "y"}}, 200),
        ("POST", "/v1/paraphrase", {"json": {"sentences": ["x", "y"]}}, 200),
        ("POST", "/v1/embeddings", {"json": {"model": "all-minilm-l6-v2", "input": "hi"}}, 200),
        ("GET", "/v1/models", {}, 200),
        ("GET", "/openapi.json", {"auth": False}, 200),
        ("GET", "/docs", {"auth": False}, 200),
    ],
)
def test_cors_on_successes(server, method, path, kwargs, status):
    resp = server.request(method, path, headers={"Origin": ORIGIN}, **kwargs)
    assert resp.status_code == status, resp.text[:300]
    assert_cors(resp)


@pytest.mark.parametrize(
    "method,path,kwargs,status,openai_shape",
    [
        ("GET", "/v1/encode?query=hi", {"auth": False}, 401, False),
        ("POST", "/v1/embeddings", {"auth": False, "json": {"model": "x", "input": "y"}}, 401, True),
        ("GET", "/v1/nope", {}, 404, False),
        ("GET", "/v1/w2v/x", {}, 404, False),
        ("GET", "/v1/models/nope", {}, 404, True),
        ("DELETE", "/v1/encode", {}, 405, False),
        ("POST", "/v1/encode", {"data": b"{", "headers": {"Content-Type": "application/json"}}, 400, False),
        ("POST", "/v1/encode", {"data": b"q=1", "headers": {"Content-Type": "text/plain"}}, 415, False),
        ("POST", "/v1/paraphrase", {"json": {"sentences": ["a"], "top_k": 0}}, 422, False),
        ("POST", "/v1/embeddings", {"json": {"model": "all-minilm-l6-v2", "input": "a", "dimensions": 0}}, 422, True),
        ("POST", "/v1/encode/multiple_encode", {"json": {"sentences": ["a"] * 2049}}, 413, False),
    ],
)
def test_cors_on_errors(server, method, path, kwargs, status, openai_shape):
    headers = {"Origin": ORIGIN, **kwargs.pop("headers", {})}
    resp = server.request(method, path, headers=headers, **kwargs)
    if openai_shape:
        assert_openai_error(resp, status)
    else:
        assert_json_error(resp, status)
    assert_cors(resp)


@pytest.mark.parametrize(
    "path,method",
    [
        ("/v1/ping", "GET"),
        ("/v1/ping/", "GET"),
        ("/v1/encode", "GET"),
        ("/v1/encode/", "POST"),
        ("/v1/encode/multiple_encode", "POST"),
        ("/v1/encode/cos_sim_weight", "POST"),
        ("/v1/paraphrase", "POST"),
        ("/v1/embeddings", "POST"),
        ("/v1/models", "GET"),
        ("/v1/models/sentence-transformers/all-MiniLM-L6-v2", "GET"),
        ("/v1/no/such/route", "POST"),
    ],
)
def test_preflight_allows_authorization_and_content_type_without_auth(server, path, method):
    resp = server.request("OPTIONS", path, auth=False, headers={
        "Origin": ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    # 200, as the replaced service answered: its clients' tests assert `status_code == 200`.
    assert resp.status_code == 200, resp.text
    assert resp.content == b""
    assert resp.headers.get("access-control-allow-origin") == "*"
    assert method in {m.upper() for m in header_set(resp, "access-control-allow-methods")}, dict(resp.headers)
    assert {"authorization", "content-type"} <= header_set(resp, "access-control-allow-headers"), dict(resp.headers)
    assert resp.headers.get("access-control-max-age") == "86400"


def test_preflight_without_request_headers_still_allows_both(server):
    resp = server.request("OPTIONS", "/v1/embeddings", auth=False, headers={"Origin": ORIGIN})
    assert resp.status_code == 200
    assert {"authorization", "content-type"} <= header_set(resp, "access-control-allow-headers")


# --- /openapi.json --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/openapi.json", "/openapi.json/"])
def test_openapi_document_is_public_openapi_3_1_and_the_generated_file(server, path):
    # docs/openapi.json is generated from the Rust types; the unit test
    # `the_tracked_document_is_the_generated_one` fails when it differs from what they generate, so
    # byte equality here proves the real host serves the generated document.
    resp = server.get(path, auth=False, allow_redirects=False)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-type"].startswith("application/json")
    document = resp.json()
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"]), document["openapi"]
    assert resp.content == (ROOT / "docs/openapi.json").read_bytes()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_openapi_document_describes_every_route(server):
    paths = server.get("/openapi.json", auth=False).json()["paths"]
    for path in ("/v1/encode", "/v1/encode/multiple_encode", "/v1/encode/cos_sim_weight", "/v1/paraphrase",
                 "/v1/embeddings", "/v1/models", "/v1/models/{model}", "/v1/tokenize", "/v1/rerank", "/v2/rerank",
                 "/embed", "/rerank", "/tokenize", "/decode", "/info"):
        assert path in paths, path
    # `GET /` and `/info` are public; TEI's `POST /` needs the bearer token like every other embedding route.
    assert paths["/"]["get"]["security"] == [] and paths["/info"]["get"]["security"] == []
    assert "security" not in paths["/"]["post"] and "security" not in paths["/v1/rerank"]["post"]


# --- /docs ----------------------------------------------------------------------------------------------------


class References(HTMLParser):
    """Every URL the page makes a browser load through src= or href= attributes."""

    def __init__(self):
        super().__init__()
        self.loaded: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.loaded.append(value)


def page(server, path="/docs"):
    resp = server.get(path, auth=False, allow_redirects=False)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-type"].startswith("text/html"), resp.headers
    return resp


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_docs_is_public_html_with_only_local_urls(server, path):
    html = page(server, path).text
    assert "<html" in html.lower()
    local = urlsplit(server.base_url).netloc
    for url in re.findall(r"""(?:https?:)?//[^\s"'<>()]+""", html):
        host = urlsplit(url if url.startswith("http") else "http:" + url).netloc
        assert host in ("", local), f"/docs loads from another host: {url}"


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_docs_assets_load_from_this_service(server, path):
    html = page(server, path).text
    parser = References()
    parser.feed(html)
    # Resolve as a browser does from this very URL: a relative "swagger-ui.css" means something different
    # under /docs and /docs/, and both must work.
    urls = {urljoin(server.url(path), ref) for ref in parser.loaded if not ref.startswith(("#", "data:"))}
    wanted = {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css"}
    found = set()
    for url in urls:
        assert urlsplit(url).netloc == urlsplit(server.base_url).netloc, url
        resp = server.session.get(url, timeout=60, allow_redirects=False)
        assert resp.status_code == 200, f"{url}: {resp.status_code}"
        for name, content_type in wanted.items():
            if urlsplit(url).path.endswith(name):
                assert content_type in resp.headers["content-type"], (url, resp.headers["content-type"])
                assert len(resp.content) > 10_000, url  # the real bundle, not a placeholder
                found.add(name)
    assert found == set(wanted), f"/docs does not load {set(wanted) - found}"
    assert "openapi.json" in html, "the page must point Swagger UI at this service's document"


@pytest.mark.parametrize("asset,content_type", [("swagger-ui-bundle.js", "javascript"),
                                                ("swagger-ui.css", "text/css")])
def test_docs_assets_are_public_and_the_fetched_files(server, asset, content_type):
    resp = server.get(f"/docs/{asset}", auth=False)
    assert resp.status_code == 200
    assert content_type in resp.headers["content-type"]
    assert resp.content == (ROOT / "build/docs-assets" / asset).read_bytes()
    assert_cors(resp)
