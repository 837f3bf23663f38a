"""Issue 5: HS256 JSON Web Tokens signed with the `jwt_secret` variable, beside the API keys.

Tokens are minted here by hand (hmac + base64url), so every malformation can be built exactly.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from conftest import (
    API_KEYS, MODEL_ID, assert_json_error, assert_openai_error, is_request_record, log_once, log_records, start_server,
    stop_server,
)

SECRET = f"jwt-secret-{uuid.uuid4().hex}"
# The contract allows a leeway of up to 60 s on exp/nbf; these are well past it.
PAST, FUTURE = -120, 120


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value) -> str:
    return b64url(value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode())


def sign(signing_input: str, *, secret: str = SECRET, digest=hashlib.sha256) -> str:
    return b64url(hmac.new(secret.encode(), signing_input.encode(), digest).digest())


def mint(claims: dict | None = None, *, header=None, secret: str = SECRET, digest=hashlib.sha256) -> str:
    """A JWT over `header` (HS256 by default) and `claims` (a fresh, valid set by default)."""
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    claims = valid_claims() if claims is None else claims
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{sign(signing_input, secret=secret, digest=digest)}"


def valid_claims(**changes) -> dict:
    now = int(time.time())
    return {"sub": "integration-test", "iat": now, "exp": now + 600, **changes}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("jwt"), env={"SPIN_VARIABLE_JWT_SECRET": SECRET})
    # Every response of this module is kept for the leak check at the end.
    srv.responses = []
    srv.session.hooks["response"].append(lambda resp, *args, **kw: srv.responses.append(resp))
    yield srv
    assert srv.alive(), srv.log()
    stop_server(srv)


def encode(srv, token: str):
    return srv.get("/v1/encode", auth=False, params={"query": "tokens all the way down"}, headers=bearer(token))


def test_a_valid_hs256_token_is_accepted_on_every_protected_route(jwt_server):
    token = mint()
    assert encode(jwt_server, token).status_code == 200
    for path, body in [
        ("/v1/encode/multiple_encode", {"sentences": ["a", "b"]}),
        ("/v1/embeddings", {"model": MODEL_ID, "input": "a"}),
    ]:
        resp = jwt_server.post(path, auth=False, json=body, headers=bearer(token))
        assert resp.status_code == 200, (path, resp.text)
    assert jwt_server.get("/v1/models", auth=False, headers=bearer(token)).status_code == 200


def test_a_token_whose_nbf_has_passed_is_accepted(jwt_server):
    now = int(time.time())
    assert encode(jwt_server, mint(valid_claims(nbf=now - 10))).status_code == 200


def test_every_api_key_still_works(jwt_server):
    for key in API_KEYS:
        assert encode(jwt_server, key).status_code == 200, key


def _tampered() -> str:
    header, _, signature = mint().split(".")
    return f"{header}.{segment(valid_claims(sub='admin'))}.{signature}"


def _signed_raw(header: bytes, claims: bytes) -> str:
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    return f"{signing_input}.{sign(signing_input)}"


REJECTED_TOKENS = {
    "expired": lambda: mint(valid_claims(exp=int(time.time()) + PAST)),
    "expired long ago": lambda: mint(valid_claims(exp=int(time.time()) - 86400)),
    "nbf in the future": lambda: mint(valid_claims(nbf=int(time.time()) + FUTURE)),
    "nbf far in the future": lambda: mint(valid_claims(nbf=int(time.time()) + 86400)),
    "signed with another secret": lambda: mint(secret=SECRET + "x"),
    "signed with the empty secret": lambda: mint(secret=""),
    "payload changed after signing": _tampered,
    "empty signature": lambda: mint().rsplit(".", 1)[0] + ".",
    "alg none, unsigned": lambda: f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(valid_claims())}.",
    "alg none, HMAC-signed": lambda: mint(header={"alg": "none", "typ": "JWT"}),
    "alg NONE": lambda: f"{segment({'alg': 'NONE'})}.{segment(valid_claims())}.",
    "RS256 header, HMAC-signed with the secret": lambda: mint(header={"alg": "RS256", "typ": "JWT"}),
    "HS512 with the same secret": lambda: mint(header={"alg": "HS512", "typ": "JWT"}, digest=hashlib.sha512),
    "HS384 with the same secret": lambda: mint(header={"alg": "HS384", "typ": "JWT"}, digest=hashlib.sha384),
    "no alg": lambda: mint(header={"typ": "JWT"}),
    "two parts": lambda: mint().rsplit(".", 1)[0],
    "four parts": lambda: mint() + "." + segment({}),
    "bad base64": lambda: "!!!.@@@.###",
    "header with stray padding": lambda: mint().replace(".", "==.", 1),
    "header is not JSON": lambda: _signed_raw(b"not json", json.dumps(valid_claims()).encode()),
    "claims are not JSON": lambda: _signed_raw(b'{"alg":"HS256","typ":"JWT"}', b"not json"),
    "claims are not an object": lambda: _signed_raw(b'{"alg":"HS256","typ":"JWT"}', b"[1,2,3]"),
    "header is not an object": lambda: _signed_raw(b'"HS256"', json.dumps(valid_claims()).encode()),
    "exp is not a number": lambda: mint(valid_claims(exp="tomorrow")),
    "only dots": lambda: "..",
}


def assert_unauthorized(resp) -> None:
    assert resp.headers.get("www-authenticate", "").split(" ")[0].lower() == "bearer", resp.headers
    assert SECRET not in resp.text


@pytest.mark.parametrize("case", REJECTED_TOKENS)
def test_an_invalid_token_is_401_with_a_json_reason(jwt_server, case):
    resp = encode(jwt_server, REJECTED_TOKENS[case]())
    assert_json_error(resp, 401)
    assert_unauthorized(resp)


@pytest.mark.parametrize("case", ["expired", "alg none, unsigned", "HS512 with the same secret", "bad base64"])
def test_an_invalid_token_on_the_openai_route_is_an_openai_401(jwt_server, case):
    resp = jwt_server.post(
        "/v1/embeddings", auth=False, json={"model": MODEL_ID, "input": "a"}, headers=bearer(REJECTED_TOKENS[case]())
    )
    assert_openai_error(resp, 401, code="invalid_api_key")
    assert_unauthorized(resp)


def test_jwt_is_disabled_when_the_secret_is_empty(server):
    # The shared server runs with the manifest's default: jwt_secret = "".
    for token in (mint(secret=""), mint()):
        resp = server.get("/v1/encode", auth=False, params={"query": "x"}, headers=bearer(token))
        assert_json_error(resp, 401)
        assert_unauthorized(resp)


def test_the_secret_keys_and_tokens_never_leak(jwt_server):
    token = mint()
    for headers in (bearer(token), bearer(API_KEYS[1]), bearer(mint(secret="other")), {}):
        for method, path, kw in [
            ("GET", "/v1/encode", {"params": {"query": "leak check"}}),
            ("POST", "/v1/embeddings", {"json": {"model": MODEL_ID, "input": 5}}),  # a 422
            ("POST", "/v1/encode", {"data": b"{not json"}),  # a 400
            ("GET", "/v1/nowhere", {}),  # a 404
            ("GET", "/v1/ping", {}),
        ]:
            jwt_server.request(method, path, auth=False, headers=headers, **kw)
    forbidden = [SECRET, token, *API_KEYS]
    for resp in jwt_server.responses:
        seen = resp.text + json.dumps(dict(resp.headers))
        for value in forbidden:
            assert value not in seen, (resp.request.method, resp.url, resp.status_code)
    # Every request's line is in (the start-up probes' too), so a late line cannot escape the check.
    log = log_once(jwt_server, lambda log: len([r for r in log_records(log) if is_request_record(r)])
                   >= len(jwt_server.responses))
    for value in forbidden:
        assert value not in log, f"{value[:12]}... is in the host's output"
