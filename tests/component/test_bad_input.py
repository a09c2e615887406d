"""Bad input never gets a 500: every documented route, fed junk bodies and junk query strings."""
import re

import pytest
import requests

from crm_common.ops import openapi_document

JUNK_BODIES = [None, "not json", "[]", '"a string"', '{"zzz": 1}',
               '{"customer_id": 5, "amount": "x", "occurred_at": "yesterday", "stage": 7, "outcome": null}']
JUNK_QUERY = {"limit": "abc", "cursor": "%%%", "as_of": "never", "period": "2026-Q9", "from": "x", "to": "y",
              "breakdown": "planet", "period_kind": "eon", "sort": "-nothing", "status": "maybe"}


def routes():
    for path, operations in openapi_document()["paths"].items():
        for method in operations:
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), re.sub(r"\{[^}]+\}", "nope", path)


@pytest.mark.parametrize("method,path", sorted(routes()))
def test_no_500_on_junk(embedded_system, token, method, path):
    headers = {"Authorization": f"Bearer {token('admin', 'admin')}", "Content-Type": "application/json"}
    url = embedded_system.base_url + path
    answers = [requests.request(method, url, params=JUNK_QUERY, headers=headers, timeout=60)]
    if method != "GET":
        answers += [requests.request(method, url, data=body, headers=headers, timeout=60) for body in JUNK_BODIES]
    for answer in answers:
        assert answer.status_code < 500, (answer.request.body, answer.status_code, answer.text[:500])
        if answer.status_code >= 400:
            assert "error" in answer.json(), answer.text[:300]
