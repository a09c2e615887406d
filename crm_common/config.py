"""Configuration from environment variables with defaults that run out of the box.

Distributed mode reads e.g. CRM_AMQP_URI and CUSTOMERS_DATABASE_URL; embedded mode
overrides the transport with ``memory://`` and points every database at SQLite.
"""
from __future__ import annotations

import os

SERVICES = ("customers", "followups", "alerts", "reports")
DEFAULT_PORTS = {"customers": 8001, "followups": 8002, "alerts": 8003, "reports": 8004}
DEV_SECRET = "dev-only-secret-change-me"
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
        "WEB_SERVER_ADDRESS": env(f"{service.upper()}_HTTP_ADDRESS",
                                  env("CRM_HTTP_ADDRESS", f"0.0.0.0:{DEFAULT_PORTS[service]}")),
        "max_workers": int(env("CRM_MAX_WORKERS", "10")),
        "serializer": "json",
        "DATABASE_URL": database_url(service),
        "AUTH_SECRET": env("CRM_AUTH_SECRET", DEV_SECRET),
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


def insecure_settings() -> list[str]:
    """Why a service must not start outside embedded mode: a token signing secret anyone can read in this
    repository, or none. CRM_ALLOW_DEV_SECRET=1 lets a laptop (docker compose, the test suite) run with it."""
    if env("CRM_ALLOW_DEV_SECRET", "0").lower() in ("1", "true", "yes"):
        return []
    secret = env("CRM_AUTH_SECRET")
    if secret is None:
        return ["CRM_AUTH_SECRET is not set: give every service the same random secret (openssl rand -hex 32)"]
    if secret == DEV_SECRET:
        return ["CRM_AUTH_SECRET is the development secret that ships in the code: anyone could sign tokens; "
                "set a random one (openssl rand -hex 32)"]
    if len(secret) < MIN_SECRET_LENGTH:
        return [f"CRM_AUTH_SECRET is shorter than {MIN_SECRET_LENGTH} characters; use openssl rand -hex 32"]
    return []
