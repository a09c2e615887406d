"""Bodies that would tie a service up are refused with a 4xx that names the problem, never a 500."""
import json

import pytest
import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def api(embedded_system):
    return embedded_system.base_url


def test_a_body_over_the_limit_is_refused_before_it_is_read(api):
    response = requests.post(f"{api}/v1/customers", data=b'{"company": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                             headers=ADMIN)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


def test_a_chunked_body_is_never_read_whole(api):
    """Without a declared length the server does not read the stream at all: the body counts as empty."""
    def chunks():
        yield b'{"company": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'
    response = requests.post(f"{api}/v1/customers", data=chunks(), headers=ADMIN)
    assert response.status_code in (400, 413) and response.json()["error"] in ("bad_request", "body_too_large")


def test_deep_nesting_is_a_400_not_a_recursion_error(api):
    for depth in (100_000, 40):
        body = '{"company": "Deep", "tags": ' + "[" * depth + "]" * depth + "}"
        response = requests.post(f"{api}/v1/customers", data=body, headers=ADMIN)
        assert response.status_code == 400, (depth, response.text)
        assert "nested more than 32 levels" in json.dumps(response.json())


def test_long_strings_and_huge_arrays_name_their_field(api):
    response = requests.post(f"{api}/v1/customers", json={"company": "z" * 100_001}, headers=ADMIN)
    assert response.status_code == 400 and "company" in response.json()["fields"]
    response = requests.post(f"{api}/v1/customers", json={"company": "Many", "tags": ["t"] * 10_001}, headers=ADMIN)
    assert response.status_code == 400 and "tags" in response.json()["fields"]
