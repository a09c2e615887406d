"""Health, metrics and the API document: the same on every service."""
from __future__ import annotations

import os

import yaml
from kombu import Connection
from nameko.dependency_providers import Config
from nameko.rpc import rpc
from sqlalchemy import text
from werkzeug.wrappers import Response

from crm_common import metrics
from crm_common.http import api, json_response

OPENAPI_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "openapi")
_openapi_cache: dict = {}


def openapi_document() -> dict:
    """One document for the whole API: base.yaml plus each service's paths and schemas."""
    if "doc" not in _openapi_cache:
        with open(os.path.join(OPENAPI_DIR, "base.yaml")) as handle:
            document = yaml.safe_load(handle)
        for name in sorted(os.listdir(OPENAPI_DIR)):
            if name == "base.yaml" or not name.endswith(".yaml"):
                continue
            with open(os.path.join(OPENAPI_DIR, name)) as handle:
                part = yaml.safe_load(handle) or {}
            document["paths"].update(part.get("paths", {}))
            document["components"]["schemas"].update(part.get("components", {}).get("schemas", {}))
        _openapi_cache["doc"] = document
    return _openapi_cache["doc"]


class Operations:
    """Mixed into every service class; expects a ``store`` dependency."""

    config = Config()

    @api("GET", "/health", auth=False)
    def health(self, request):
        """Liveness and readiness in one: 200 when the database and the broker answer."""
        checks = {}
        try:
            with self.store() as uow:
                uow.session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            with Connection(self.config["AMQP_URI"], connect_timeout=2) as conn:
                conn.connect()  # one attempt: a health check must answer fast
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return (200 if healthy else 503), {"service": self.name, "status": "ok" if healthy else "degraded",
                                           "checks": checks}

    @api("GET", "/health/live", auth=False)
    def liveness(self, request):
        """The process answers HTTP: restart it only when this fails, not when a dependency is down."""
        return {"service": self.name, "status": "alive"}

    @api("GET", "/metrics", auth=False)
    def metrics(self, request):
        body, content_type = metrics.exposition()
        return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)

    @api("GET", "/openapi.json", auth=False)
    def openapi(self, request):
        return json_response(openapi_document())

    @rpc
    def replay_events(self, consumer: str, routing_keys: list):
        """Re-send this service's past events to one consumer's queues (read-model rebuilds)."""
        return self.store.replay(consumer, list(routing_keys))
