"""What the deployment tests compare the deployment files with: the code.

- which service serves which HTTP path: from the service classes' ``@api`` entrypoints
  (crm.runner.SERVICES + service_class), the way tests/unit/test_api_contract.py finds them;
- which queues a service consumes: from its ``@consume`` entrypoint's table;
- which commands the distributed test mode runs: from the integration harness's source;
- whether ``python -m crm`` accepts a container's arguments: crm.__main__'s own parser.
"""
from __future__ import annotations

import ast
import inspect
import json
import os
import re
import types

import pytest
import yaml

from crm.runner import SERVICES, service_class
from crm_common.config import DEFAULT_PORTS
from crm_common.consumer import EventConsumer, partition_queues
from crm_common.http import ApiEntrypoint
from crm_common.ops import openapi_document

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
HARNESS = os.path.join(ROOT, "tests", "integration", "conftest.py")


def root_path(*parts: str) -> str:
    return os.path.join(ROOT, *parts)


def load_yaml(*parts: str):
    with open(root_path(*parts)) as handle:
        return yaml.safe_load(handle)


def load_schema(name: str) -> dict:
    with open(os.path.join(SCHEMAS, name)) as handle:
        return json.load(handle)


def _entrypoints(service: str):
    for _, member in inspect.getmembers(service_class(service)):
        yield from getattr(member, "nameko_entrypoints", ())


def openapi_path(url: str) -> str:
    """werkzeug's /v1/tasks/<task_id> as OpenAPI's /v1/tasks/{task_id}."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", url)


def path_owners() -> dict[str, set[str]]:
    """Every HTTP path served by any service -> the services serving it."""
    owners: dict[str, set[str]] = {}
    for service in SERVICES:
        for entrypoint in _entrypoints(service):
            if isinstance(entrypoint, ApiEntrypoint):
                owners.setdefault(openapi_path(entrypoint.url), set()).add(service)
    return owners


def consumed_queues(service: str, partitions: int = 8) -> list[str]:
    """The partition queues ``<service>.events.p<i>`` the service's @consume entrypoint reads on RabbitMQ."""
    return sorted({queue.name for entrypoint in _entrypoints(service) if isinstance(entrypoint, EventConsumer)
                   for queue in partition_queues(service, entrypoint.table.routing_keys, range(partitions),
                                                 "amqp://")})


def sample_url(path: str) -> str:
    """A concrete URL for an OpenAPI path: /v1/tasks/{task_id} -> /v1/tasks/x7."""
    return re.sub(r"\{[^}]+\}", "x7", path)


def harness_commands() -> set[tuple[str, ...]]:
    """The subcommands the integration harness runs as ``python -m crm <subcommand> <service>``.

    Read from tests/integration/conftest.py: every list literal that starts with
    ``sys.executable, "-m", "crm"``; returns the constant words after "crm" (e.g. ("serve",)).
    """
    with open(HARNESS) as handle:
        tree = ast.parse(handle.read())
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.List) or len(node.elts) < 4:
            continue
        head = node.elts[:3]
        if not (isinstance(head[0], ast.Attribute) and head[0].attr == "executable"
                and all(isinstance(e, ast.Constant) for e in head[1:])
                and [e.value for e in head[1:]] == ["-m", "crm"]):
            continue
        words = []
        for element in node.elts[3:]:
            if isinstance(element, ast.Constant):
                words.append(element.value)
            else:
                break  # the service name, a variable
        found.add(tuple(words))
    return found


def parse_cli(argv: list[str], monkeypatch) -> dict:
    """Run crm.__main__'s parser on argv with the commands stubbed; returns the parsed args."""
    import crm.__main__ as cli

    seen = {}

    def record(args):
        seen.update(vars(args))

    for name in ("_serve", "_migrate", "_embedded", "_demo", "_token", "_docs_events"):
        monkeypatch.setattr(cli, name, record)
    cli.main(list(argv))
    seen.pop("func", None)
    return seen


@pytest.fixture(scope="session")
def deploy():
    """The helpers above, for the test modules (conftest is not importable under importlib mode)."""
    return types.SimpleNamespace(
        ROOT=ROOT, SERVICES=tuple(SERVICES), DEFAULT_PORTS=dict(DEFAULT_PORTS),
        root_path=root_path, load_yaml=load_yaml, load_schema=load_schema, openapi_path=openapi_path,
        consumed_queues=consumed_queues, sample_url=sample_url, harness_commands=harness_commands,
        parse_cli=parse_cli, openapi_document=openapi_document)


@pytest.fixture(scope="session")
def owners() -> dict[str, set[str]]:
    """HTTP path -> the services serving it."""
    return path_owners()
