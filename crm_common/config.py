"""Configuration from environment variables with defaults that run out of the box.

Distributed mode reads e.g. CRM_AMQP_URI and CUSTOMERS_DATABASE_URL; embedded mode
overrides the transport with ``memory://`` and points every database at SQLite.
"""
from __future__ import annotations

import os

SERVICES = ("customers", "followups", "alerts", "reports")
DEFAULT_PORTS = {"customers": 8001, "followups": 8002, "alerts": 8003, "reports": 8004}
DEV_SECRET = "dev-only-secret-change-me-never-in-production"
MIN_SECRET_LENGTH = 32


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def database_url(service: str, data_dir: str | None = None) -> str:
    url = env(f"{service.upper()}_DATABASE_URL")
    if url:
        return url
    data_dir = data_dir or env("CRM_DATA_DIR", "data")
    return f"sqlite:///{os.path.join(data_dir, service + '.db')}"


def nameko_config(service: str, overrides: dict | None = None) -> dict:
    """The nameko config dict for one service; keys in CAPS are read by our extensions."""
    config = {
        "AMQP_URI": env("CRM_AMQP_URI", "amqp://guest:guest@localhost:5672/"),
        # seconds; a process frozen twice as long loses its connection (the broker hands its messages back)
        "HEARTBEAT": int(env("CRM_AMQP_HEARTBEAT", "60")),
        "WEB_SERVER_ADDRESS": env(f"{service.upper()}_HTTP_ADDRESS",
                                  env("CRM_HTTP_ADDRESS", f"0.0.0.0:{DEFAULT_PORTS[service]}")),
        "max_workers": int(env("CRM_MAX_WORKERS", "10")),
        "serializer": "json",
        "DATABASE_URL": database_url(service),
        "AUTH_SECRET": env("CRM_AUTH_SECRET", None if env("CRM_OIDC_ISSUER") else DEV_SECRET),
        "TOKEN_ISSUER": env("CRM_TOKEN_ISSUER", "crm"),
        "TOKEN_TTL_SECONDS": int(env("CRM_TOKEN_TTL_SECONDS", "3600")),
        "OIDC": oidc_settings(),
        "FROZEN_TIME": env("CRM_FROZEN_TIME"),
        "OUTBOX_POLL_SECONDS": float(env("CRM_OUTBOX_POLL_SECONDS", "1.0")),
        "EVENT_MAX_ATTEMPTS": int(env("CRM_EVENT_MAX_ATTEMPTS", "5")),
        "MAX_BODY_BYTES": int(env("CRM_MAX_BODY_BYTES", str(1024 * 1024))),
        "EVENT_BATCH_SIZE": int(env("CRM_EVENT_BATCH_SIZE", "500")),
        "EVENT_BATCH_MS": int(env("CRM_EVENT_BATCH_MS", "20")),
        "EVENT_PARTITIONS": int(env("CRM_EVENT_PARTITIONS", "4")),
        "SERVICE_SETTINGS": {k: v for k, v in os.environ.items() if k.startswith(service.upper() + "_")},
    }
    config.update(overrides or {})
    return config


def oidc_settings():
    """The organisation's OpenID Connect provider, if one is configured (all three variables or none)."""
    from crm_common.auth import OidcSettings
    names = ("CRM_OIDC_ISSUER", "CRM_OIDC_AUDIENCE", "CRM_OIDC_JWKS_URL")
    values = [env(name) for name in names]
    if not any(values):
        return None
    missing = [name for name, value in zip(names, values) if not value]
    if missing:
        raise SystemExit(f"OpenID Connect half configured: set {', '.join(missing)} too (or none of {', '.join(names)})")
    return OidcSettings(*values, user_claim=env("CRM_OIDC_USER_CLAIM", "sub"))


def insecure_settings() -> list[str]:
    """Why a service must not start outside embedded mode: no issuer at all, or a token signing secret anyone
    can read in this repository. CRM_ALLOW_DEV_SECRET=1 lets a laptop (docker compose, the test suite) run with
    it. With an OpenID Connect provider alone (CRM_OIDC_*) the built-in sign-in is off."""
    if env("CRM_ALLOW_DEV_SECRET", "0").lower() in ("1", "true", "yes"):
        return []
    secret = env("CRM_AUTH_SECRET")
    if secret is None:
        if oidc_settings() is not None:
            return []
        return ["no token issuer configured: set CRM_AUTH_SECRET (the built-in sign-in; the same random secret "
                "in every service: openssl rand -hex 32) and/or CRM_OIDC_ISSUER, CRM_OIDC_AUDIENCE and "
                "CRM_OIDC_JWKS_URL (the organisation's OpenID Connect provider)"]
    if secret == DEV_SECRET:
        return ["CRM_AUTH_SECRET is the development secret that ships in the code: anyone could sign tokens; "
                "set a random one (openssl rand -hex 32)"]
    if len(secret) < MIN_SECRET_LENGTH:
        return [f"CRM_AUTH_SECRET is shorter than {MIN_SECRET_LENGTH} characters; use openssl rand -hex 32"]
    return []
