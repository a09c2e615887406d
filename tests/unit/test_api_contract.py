"""Every HTTP route of every service is in the one OpenAPI document, and the document is valid."""
import inspect
import os
import re

import pytest
import yaml
from openapi_spec_validator import validate

from crm.runner import SERVICES, service_class
from crm_common.http import ApiEntrypoint
from crm_common.ops import OPENAPI_DIR, openapi_document


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


def test_no_two_service_files_define_one_schema_name():
    """ops.py merges the files' components.schemas into one map: a second file's schema of the same name replaced
    the first without a word (alerts' SweepResult was followups' in the served document, so POST /v1/alerts/sweep
    was checked against the wrong shape; found by tests/component/test_fuzz.py's reading of the document)."""
    defined = {}
    for name in sorted(os.listdir(OPENAPI_DIR)):
        if name.endswith(".yaml"):
            with open(os.path.join(OPENAPI_DIR, name)) as handle:
                part = yaml.safe_load(handle) or {}
            for schema in (part.get("components") or {}).get("schemas") or {}:
                assert schema not in defined, f"{schema} is defined in {defined[schema]} and in {name}"
                defined[schema] = name


def test_every_route_behind_a_token_documents_its_401():
    """Every route that needs a token refuses a missing, forged, expired or revoked one with 401
    (tests/component/test_sign_in.py sends them); its documented answers say so."""
    document = openapi_document()
    undocumented = [f"{method.upper()} {path}" for path, item in document["paths"].items()
                    for method, operation in item.items() if method in ("get", "post", "put", "patch", "delete")
                    and operation.get("security", document["security"]) and "401" not in operation["responses"]]
    assert not undocumented, f"no 401 in the document for {undocumented}"
