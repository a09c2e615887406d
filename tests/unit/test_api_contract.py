"""Every HTTP route of every service is in the one OpenAPI document, and the document is valid."""
import inspect
import re

import pytest
from openapi_spec_validator import validate

from crm.runner import SERVICES, service_class
from crm_common.http import ApiEntrypoint
from crm_common.ops import openapi_document


def routes():
    found = set()
    for name in SERVICES:
        for _, member in inspect.getmembers(service_class(name)):
            for entrypoint in getattr(member, "nameko_entrypoints", ()):
                if isinstance(entrypoint, ApiEntrypoint):
                    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", entrypoint.url)
                    for method in entrypoint.method.split(","):
                        found.add((method.lower(), path))
    return sorted(found)


def test_document_is_valid_openapi():
    validate(openapi_document())


@pytest.mark.parametrize("method,path", routes())
def test_route_is_documented(method, path):
    paths = openapi_document()["paths"]
    assert path in paths, f"{path} missing from docs/openapi/*.yaml"
    assert method in paths[path], f"{method.upper()} {path} missing from docs/openapi/*.yaml"


def test_every_documented_route_exists():
    served = set(routes())
    documented = {(m, p) for p, ops in openapi_document()["paths"].items() for m in ops
                  if m in ("get", "post", "put", "patch", "delete")}
    assert documented <= served, f"documented but not served: {sorted(documented - served)}"
