"""Issue 12 item 1, single sign-on: tokens of the organisation's OpenID Connect provider are accepted, its keys
fetched from its JWKS URL and cached, a rotated key followed; everything else about such a token is refused.

The provider here is a small HTTP server publishing a JWKS document whose keys the test changes. The embedded
system is started with CRM_OIDC_* pointing at it, next to the built-in issuer."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from crm_common.auth import OidcSettings, issue_token, verify_token
from crm_common.config import DEV_SECRET
from crm_common.errors import Unauthorized

ISSUER, AUDIENCE = "https://sso.example.test/realms/sales", "crm-console"


class Provider:
    """A JWKS endpoint whose published keys the test sets; it counts how often it is asked."""

    def __init__(self):
        self.keys: dict[str, object] = {}
        self.published: list[str] = []
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                provider.fetches += 1
                body = json.dumps({"keys": [provider.jwk(kid) for kid in provider.published]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/protocol/openid-connect/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def new_key(self, kid: str, kind: str = "rsa"):
        self.keys[kid] = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
        return self.keys[kid]

    def jwk(self, kid: str) -> dict:
        key = self.keys[kid].public_key()
        algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPublicKey) else jwt.algorithms.ECAlgorithm
        return {**json.loads(algorithm.to_jwk(key)), "kid": kid, "use": "sig"}

    def token(self, kid: str, user: str = "sso-rep", **overrides) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"uuid-of-{user}", "preferred_username": user,
                  "iat": now, "exp": now + 300, **overrides}
        algorithm = "RS256" if isinstance(self.keys[kid], rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(claims, self.keys[kid], algorithm=algorithm, headers={"kid": kid})


@pytest.fixture(scope="module")
def provider():
    provider = Provider()
    provider.new_key("k1")
    provider.published = ["k1"]
    yield provider
    provider.server.shutdown()


@pytest.fixture
def settings(provider, monkeypatch):
    from crm_common import auth
    auth._jwks_clients.clear()  # each test starts with an empty key cache
    monkeypatch.setattr(auth, "JWKS_REFETCH_COOLDOWN_SECONDS", 1.0)
    return OidcSettings(ISSUER, AUDIENCE, provider.url, user_claim="preferred_username")


def reason_of(token, settings, secret=DEV_SECRET):
    with pytest.raises(Unauthorized) as refused:
        verify_token(secret, token, oidc=settings)
    return refused.value.reason


def test_keys_are_fetched_once_and_a_rotated_key_is_followed(provider, settings):
    provider.published = ["k1"]
    before = provider.fetches
    for _ in range(5):
        principal = verify_token(DEV_SECRET, provider.token("k1"), oidc=settings)
    assert (principal.user_id, principal.role) == ("sso-rep", "rep")  # the directory gives the real role
    assert provider.fetches == before + 1, "the key set is cached"
    provider.new_key("k2", kind="ec")
    provider.published = ["k2"]  # the provider rotated: k1 withdrawn, k2 signs from now on
    assert reason_of(provider.token("k2"), settings) == "forged"  # asked again within the cooldown: not yet
    assert provider.fetches == before + 1, "unknown key ids do not refetch within the cooldown"
    time.sleep(1.1)
    assert verify_token(DEV_SECRET, provider.token("k2"), oidc=settings).user_id == "sso-rep"
    assert provider.fetches == before + 2, "an unknown key id refetches the set"
    assert reason_of(provider.token("k1"), settings) == "forged"  # withdrawn keys stop working


def test_what_is_not_the_providers_own_is_refused(provider, settings):
    provider.published = ["k1"]
    provider.new_key("stranger")  # a key the provider never published
    assert reason_of(provider.token("stranger"), settings) == "forged"
    assert reason_of(provider.token("k1", aud="another-app"), settings) == "wrong_issuer"
    assert reason_of(provider.token("k1", exp=int(time.time()) - 60), settings) == "expired"
    assert reason_of(provider.token("k1", preferred_username=None), settings) == "malformed"
    tampered = provider.token("k1")
    header, payload, signature = tampered.split(".")
    other = provider.token("k1", preferred_username="admin").split(".")[1]
    assert reason_of(f"{header}.{other}.{signature}", settings) == "forged"
    unreachable = OidcSettings(ISSUER, AUDIENCE, "http://127.0.0.1:9/certs", user_claim="preferred_username")
    assert reason_of(provider.token("k1"), unreachable) == "jwks_unavailable"
    # the built-in issuer still works beside the provider, and only with its own secret and algorithm
    assert verify_token(DEV_SECRET, issue_token(DEV_SECRET, "admin", "admin"), oidc=settings).user_id == "admin"
    assert reason_of(issue_token(DEV_SECRET, "admin", "admin"), settings, secret=None) == "wrong_issuer"


def test_an_hs256_token_claiming_the_providers_issuer_is_refused(provider, settings):
    """The algorithm confusion attack: a symmetric token passed off as the provider's."""
    now = int(time.time())
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "preferred_username": "admin", "iat": now,
                         "exp": now + 60}, DEV_SECRET, algorithm="HS256")
    assert reason_of(forged, settings) == "forged"


@pytest.fixture(scope="module")
def sso_system(provider, tmp_path_factory):
    """The embedded system with the provider configured (its own, so the other modules keep theirs)."""
    from crm import runner
    from crm_common import memory_transport
    from tests.conftest import free_port

    names = {"CRM_AUTH_SECRET": DEV_SECRET, "CRM_OIDC_ISSUER": ISSUER, "CRM_OIDC_AUDIENCE": AUDIENCE,
             "CRM_OIDC_JWKS_URL": provider.url,
             "CRM_OIDC_USER_CLAIM": "preferred_username"}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    memory_transport.install()
    memory_transport.reset()
    port = free_port()
    try:
        system = runner.embedded(str(tmp_path_factory.mktemp("sso")), port)
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    system.start()
    system.base_url = f"http://127.0.0.1:{port}"
    yield system
    system.stop()


def test_every_service_accepts_the_providers_tokens_for_users_of_the_directory(provider, sso_system):
    base = sso_system.base_url
    provider.published = ["k1"]
    admin = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}
    for rep in ({"id": "sso-mgr", "name": "SSO Manager", "team": "sso", "role": "manager"},
                {"id": "sso-rep", "name": "SSO Rep", "team": "sso"}):
        assert requests.post(base + "/v1/reps", json=rep, headers=admin, timeout=10).status_code == 201
    requests.post(base + "/v1/customers", json={"company": "SSO Ltd", "owner_id": "sso-rep"}, headers=admin,
                  timeout=10).raise_for_status()
    routes = ["/v1/customers", "/v1/worklist", "/v1/alerts", "/v1/reports/summary"]
    manager = {"Authorization": f"Bearer {provider.token('k1', user='sso-mgr')}"}
    deadline = time.monotonic() + 15
    while [requests.get(base + r, headers=manager, timeout=10).status_code for r in routes] != [200] * 4:
        assert time.monotonic() < deadline, "every service to accept the provider's token"
        time.sleep(0.3)
    me = requests.get(base + "/v1/auth/me", headers=manager, timeout=10).json()
    assert (me["id"], me["role"], me["team"]) == ("sso-mgr", "manager", "sso")  # the role from the directory
    listing = requests.get(base + "/v1/customers", headers=manager, timeout=10).json()
    assert [item["company"] for item in listing["items"]] == ["SSO Ltd"]
    stranger = {"Authorization": f"Bearer {provider.token('k1', user='never-registered')}"}
    assert requests.get(base + "/v1/customers", headers=stranger, timeout=10).status_code == 401
