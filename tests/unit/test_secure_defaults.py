"""Issue 12 item 2: outside embedded mode a service refuses to start with the development secret or none,
naming the variable; CRM_ALLOW_DEV_SECRET=1 is the explicit way round it (a laptop, the test suite)."""
import subprocess
import sys

import pytest

from crm_common.config import DEV_SECRET, insecure_settings


OIDC = {"CRM_OIDC_ISSUER": "https://sso.example.com/realms/sales", "CRM_OIDC_AUDIENCE": "crm",
        "CRM_OIDC_JWKS_URL": "https://sso.example.com/realms/sales/protocol/openid-connect/certs"}


@pytest.mark.parametrize("secret,allowed,refused", [
    (None, None, "no token issuer configured"), (DEV_SECRET, None, "development secret"), ("x" * 31, None, "shorter than 32"),
    (DEV_SECRET, "0", "development secret"), ("k" * 32, None, None), (DEV_SECRET, "1", None), (None, "true", None),
])
def test_insecure_settings_name_the_variable(monkeypatch, secret, allowed, refused):
    for name in OIDC:
        monkeypatch.delenv(name, raising=False)
    for name, value in (("CRM_AUTH_SECRET", secret), ("CRM_ALLOW_DEV_SECRET", allowed)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    problems = insecure_settings()
    if refused is None:
        assert problems == []
    else:
        [problem] = problems
        assert "CRM_AUTH_SECRET" in problem and refused in problem


def test_an_identity_provider_alone_is_an_issuer_and_half_a_provider_is_refused(monkeypatch):
    monkeypatch.delenv("CRM_AUTH_SECRET", raising=False)
    monkeypatch.delenv("CRM_ALLOW_DEV_SECRET", raising=False)
    for name, value in OIDC.items():
        monkeypatch.setenv(name, value)
    assert insecure_settings() == []
    monkeypatch.delenv("CRM_OIDC_JWKS_URL")
    with pytest.raises(SystemExit, match="CRM_OIDC_JWKS_URL"):
        insecure_settings()


def test_serve_refuses_to_start_with_the_development_secret(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CRM_AUTH_SECRET": DEV_SECRET, "CRM_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "crm", "serve", "reports"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "refusing to start" in done.stderr and "CRM_AUTH_SECRET" in done.stderr
