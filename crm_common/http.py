"""The JSON HTTP entrypoint every service uses.

``@api("GET", "/v1/customers/<customer_id>")`` gives the method a request whose
``principal`` is the authenticated caller; the method returns a JSON-able value
or ``(status, value)``. Errors become JSON 4xx answers naming the field at
fault; anything unexpected is a logged 500 that leaks no internals.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import date, datetime
from decimal import Decimal
from functools import partial

from eventlet.event import Event
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp

from crm_common import metrics
from crm_common.auth import BUILTIN_ISSUER, principal_from_header
from crm_common.config import DEV_SECRET
from crm_common.console import console_response
from crm_common.db import is_transient
from crm_common.errors import CrmError, TooManyRequests, Unauthorized

log = logging.getLogger(__name__)


class JSONEncoder(json.JSONEncoder):
    def default(self, value):
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (set, frozenset)):
            return sorted(value)
        return super().default(value)


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, cls=JSONEncoder), status=status, headers=headers,
                    mimetype="application/json")


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> Response:
    body = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return json_response(body, status)


MAX_BODY_BYTES = 1024 * 1024     # CRM_MAX_BODY_BYTES overrides it; the import upload has its own
MAX_DEPTH = 32
MAX_STRING = 100_000
MAX_ITEMS = 10_000


def json_body(request) -> dict:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    raw = request.get_data(as_text=True)  # bounded: a body over the limit is refused (413) before it is read
    if not raw.strip():
        raise CrmError("request body is empty; expected a JSON object", field="body")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise CrmError(f"request body is nested more than {MAX_DEPTH} levels deep", field="body") from None
    except ValueError as exc:
        raise CrmError(f"request body is not valid JSON: {exc}", field="body") from None
    if not isinstance(body, dict):
        raise CrmError("request body must be a JSON object", field="body")
    _check_bounds(body, "body", 1)
    return body


def client_address(request) -> str | None:
    """The caller's address: the last X-Forwarded-For hop (the one our front door appended), else the peer."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-1][:64] if hops else request.remote_addr


def _check_bounds(value, path: str, depth: int) -> None:
    """Depth, string and array sizes a client may send, named by the field at fault."""
    if depth > MAX_DEPTH:
        raise CrmError(f"nested more than {MAX_DEPTH} levels deep", field=path)
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise CrmError(f"longer than {MAX_STRING} characters", field=path)
    if isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise CrmError(f"more than {MAX_ITEMS} items", field=path)
        for index, item in enumerate(value):
            _check_bounds(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            raise CrmError(f"more than {MAX_ITEMS} fields", field=path)
        for key, item in value.items():
            _check_bounds(item, key if path == "body" else f"{path}.{key}", depth + 1)


class JsonWsgiApp(WsgiApp):
    """Unknown paths and wrong methods answer JSON like everything else."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            console = console_response(request) if exc.code == 404 else None
            if console is not None:
                return console(environ, start_response)
            return error_response(exc.code or 400, "http_error", exc.description or str(exc))(
                environ, start_response)
        request.path_values = values
        return provider.handle_request(request)(environ, start_response)


class CrmWebServer(WebServer):
    """nameko's web server, able to share one port among the services of one process.

    In embedded mode (config SHARED_HTTP_SERVER) the first service to start owns the
    socket and later ones add their routes to it, giving one front door.
    """

    _owners: dict = {}

    def __init__(self):
        super().__init__()
        self.guests: list[CrmWebServer] = []
        self.owner: CrmWebServer | None = None

    def start(self):
        if self.container.config.get("SHARED_HTTP_SERVER"):
            owner = self._owners.get(self.bind_addr)
            if owner is not None and owner is not self:
                self.owner = owner
                owner.guests.append(self)
                owner._serv.app = owner.get_wsgi_app()
                return
            self._owners[self.bind_addr] = self
        super().start()

    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def make_url_map(self):
        url_map = Map()
        for server in [self] + self.guests:
            for provider in server._providers:
                rule = provider.get_url_rule()
                rule.endpoint = provider
                url_map.add(rule)
        return url_map

    def stop(self):
        if self.owner is not None:
            self.owner.guests.remove(self)
            super(WebServer, self).stop()
            return
        if self._owners.get(self.bind_addr) is self:
            del self._owners[self.bind_addr]
        super().stop()


class ApiEntrypoint(HttpRequestHandler):
    server = CrmWebServer()

    def __init__(self, method, url, auth=True, max_body_bytes=None, **kwargs):
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        # answered 4xx on purpose: nameko logs these as warnings, not tracebacks
        kwargs.setdefault("expected_exceptions", (CrmError, ValidationError))
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        request.shallow = False
        started = time.perf_counter()
        response = self._respond(request)
        service = self.container.service_name
        metrics.HTTP_REQUESTS.labels(service, request.method, self.url, str(response.status_code)).inc()
        metrics.HTTP_LATENCY.labels(service, request.method, self.url).observe(time.perf_counter() - started)
        return response

    def _respond(self, request):
        try:
            # werkzeug refuses a longer body (413) when it is read, declared length or chunked alike
            request.max_content_length = self.max_body_bytes or int(
                self.container.config.get("MAX_BODY_BYTES", MAX_BODY_BYTES))
            if request.content_length is not None and request.content_length > request.max_content_length:
                return error_response(413, "body_too_large",
                                      f"request body is over {request.max_content_length} bytes")
            if self.auth:
                request.principal = self._authenticate(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            done = Event()
            self.container.spawn_worker(self, args, kwargs, context_data={},
                                        handle_result=partial(self.handle_result, done))
            return self.response_from_result(done.wait())
        except Exception as exc:  # every failure becomes an answer, never a dropped connection
            return self.response_from_exception(exc)

    def _authenticate(self, request):
        """The caller as the reps directory has them now; a refusal is counted and audited, then answered 401."""
        config = self.container.config
        directory = self._directory()
        try:
            principal = principal_from_header(config.get("AUTH_SECRET", DEV_SECRET), request.headers.get("Authorization"),
                                              oidc=config.get("OIDC"), issuer=config.get("TOKEN_ISSUER", BUILTIN_ISSUER))
            return directory.check(principal) if directory is not None else principal
        except Unauthorized as exc:
            service = self.container.service_name
            metrics.AUTH_REFUSED.labels(service, exc.reason).inc()
            if directory is not None:
                directory.record_refusal(exc, route=f"{request.method} {self.url}", remote=client_address(request))
            raise

    def _directory(self):
        """The reps directory of this service's store (crm_common.directory.Directory), if it declares one."""
        for provider in self.container.dependencies:
            if getattr(provider, "directory", None) is not None:
                return provider.directory
        return None

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple):
            status, payload = result
            return json_response(payload, status)
        return json_response(result)

    def response_from_exception(self, exc):
        if isinstance(exc, TooManyRequests):
            return json_response(exc.to_dict(), exc.status, headers={"Retry-After": str(exc.retry_after)})
        if isinstance(exc, CrmError):
            return json_response(exc.to_dict(), exc.status)
        if isinstance(exc, ValidationError):
            messages = exc.messages if isinstance(exc.messages, dict) else {"body": exc.messages}
            return error_response(400, "validation_failed", "request has invalid fields", messages)
        if isinstance(exc, HTTPException):
            return error_response(exc.code or 400, "http_error", exc.description or str(exc))
        if is_transient(exc):  # the database is away or kept losing races: the caller may try again
            log.warning("database unavailable in %s %s: %s", self.method, self.url, exc)
            response = error_response(503, "unavailable", "the database is unavailable; try again shortly")
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled error in %s %s", self.method, self.url)
        return error_response(500, "internal_error", "internal error; it has been logged")


api = ApiEntrypoint.decorator
