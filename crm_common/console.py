"""The web console's files, served on the API's own port in embedded mode.

The console (console/ at the project root) is static files and a client of the public HTTP API only; in
docker compose and Kubernetes the front door (nginx) serves the same folder. Any GET that is not an API
path and names no file gets index.html, so a page's address can be bookmarked and reloaded.
"""
from __future__ import annotations

import os

from werkzeug.exceptions import NotFound
from werkzeug.utils import send_from_directory

CONSOLE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "console")
API_PREFIXES = ("/v1/", "/health", "/metrics", "/openapi.json")


def console_response(request):
    """The console file for this GET, or None when the path is the API's (it then answers its own 404)."""
    path = request.path
    if request.method not in ("GET", "HEAD") or path.startswith(API_PREFIXES) or path == "/v1":
        return None
    if not os.path.isfile(os.path.join(CONSOLE_DIR, "index.html")):
        return None
    relative = path.lstrip("/") or "index.html"
    try:
        response = send_from_directory(CONSOLE_DIR, relative, request.environ)
    except NotFound:
        response = send_from_directory(CONSOLE_DIR, "index.html", request.environ)
    # index.html always fresh (it names the versioned assets); the assets may be cached
    response.headers["Cache-Control"] = "no-cache" if response.mimetype == "text/html" else "public, max-age=3600"
    # the console holds a token: no MIME sniffing, no framing by other sites, no address leaking to others
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
