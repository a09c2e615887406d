"""The machine-readable event contract on disk (docs/asyncapi.yaml, docs/schemas/*.json) is current and valid,
and each payload JSON Schema agrees with its marshmallow contract: a real payload passes both, a broken
one fails both. The JSON Schemas describe what producers publish, so they are stricter than the lenient
marshmallow loaders in places (a Boolean given as "yes", an Integer as "5"); these tests avoid such values."""
import copy
import json
import pathlib
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.validators import validator_for
from marshmallow import fields, validate
from referencing import Registry, Resource

from crm import event_docs
from crm_common.events import EVENTS_EXCHANGE, REGISTRY, SEQUENCE_HEADER, SUBJECT_HEADER, make_event, to_envelope
from crm_common.outbox import event_headers

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
SPECS = [REGISTRY[key] for key in sorted(REGISTRY)]
FORMATS = Draft202012Validator.FORMAT_CHECKER
WHEN = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)
STRINGS = {"company": "Nordwind Logistik GmbH", "industry": "logistics", "source_channel": "trade fair",
           "team": "north", "tags": "key-account", "changed_fields": "tier", "rule": "no_contact_90d",
           "reason": "cadence", "summary": "Called about the renewal", "email": "ana.lima@example.com"}


def by_key(specs):
    return pytest.mark.parametrize("spec", specs, ids=[spec.routing_key for spec in specs])


def load_json(relative: str) -> dict:
    return json.loads((DOCS / relative).read_text(encoding="utf-8"))


@lru_cache
def asyncapi() -> dict:
    return yaml.safe_load((DOCS / event_docs.ASYNCAPI_FILE).read_text(encoding="utf-8"))


@lru_cache
def payload_validator(routing_key: str) -> Draft202012Validator:
    return Draft202012Validator(load_json(f"{event_docs.SCHEMAS_DIR}/{routing_key}.json"), format_checker=FORMATS)


def resolve(document: dict, ref: str):
    """Follows an internal JSON pointer ("#/components/...")."""
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node):
    if isinstance(node, dict):
        yield from ([node["$ref"]] if "$ref" in node else [])
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


# --- realistic payloads, built as the producers build them: Python values dumped by the contract ---

def choices(field):
    return next((v.choices for v in field.validators if isinstance(v, validate.OneOf)), None)


def example_integer(field) -> int:
    bounds = next((v for v in field.validators if isinstance(v, validate.Range)), None)
    if bounds is None:
        return 64
    if bounds.max is None:
        return bounds.min + 1
    return (bounds.min + bounds.max) // 2


def example_string(name: str, field) -> str:
    if choices(field):
        return choices(field)[0]
    if any(isinstance(v, validate.Length) and v.equal == 3 for v in field.validators):
        return "EUR"
    return f"{name.removesuffix('_id')}-1042" if name.endswith("_id") else STRINGS.get(name, f"the {name}")


def example_value(name: str, field):
    if isinstance(field, fields.Nested):
        return example_object(field.schema)
    if isinstance(field, fields.List):
        return [example_value(name, field.inner)]
    simple = ((fields.Decimal, Decimal("1250.00")), (fields.AwareDateTime, WHEN), (fields.Date, date(2019, 5, 2)),
              (fields.Boolean, True), (fields.Raw, 0.82))
    for cls, value in simple:
        if isinstance(field, cls):
            return value
    return example_integer(field) if isinstance(field, fields.Integer) else example_string(name, field)


def example_object(schema, required_only: bool = False) -> dict:
    return {name: example_value(name, field) for name, field in schema.fields.items()
            if field.required or not required_only}


def payloads(spec) -> dict[str, dict]:
    full = example_object(spec.validator)
    nulls = {**full, **{name: None for name, field in spec.validator.fields.items() if field.allow_none}}
    variants = {"every field": full, "required fields only": example_object(spec.validator, required_only=True),
                "nullable fields null": nulls}
    return {label: json.loads(json.dumps(spec.validator.dump(value))) for label, value in variants.items()}


def verdicts(spec, payload) -> tuple[bool, bool]:
    """(marshmallow accepts, JSON Schema accepts)."""
    return not spec.validator.validate(payload), payload_validator(spec.routing_key).is_valid(payload)


def wrong_type(field):
    # wrong for both: marshmallow takes "5" as an Integer and 5 as a Decimal, so these are not used
    return 12345 if isinstance(field, (fields.String, fields.DateTime)) else "many"


def broken_payloads(spec):
    good = payloads(spec)["every field"]
    for name, field in spec.validator.fields.items():
        if field.required:
            yield f"without {name}", {key: value for key, value in good.items() if key != name}
        if not field.allow_none:
            yield f"{name} null", {**good, name: None}
        if choices(field):
            yield f"{name} not one of its choices", {**good, name: "not-a-choice"}
        if not isinstance(field, fields.Raw):
            yield f"{name} of the wrong type", {**good, name: wrong_type(field)}
    yield "an unknown field", {**good, "colour": "red"}


# --- the files ------------------------------------------------------------------------------------

def test_generated_files_are_up_to_date():
    stale = event_docs.out_of_date(str(DOCS))
    assert not stale, f"out of date in docs/: {', '.join(stale)}; run: python -m crm docs-events"


def test_format_checks_are_on():
    # without rfc3339-validator jsonschema silently skips date-time, and the timestamp cases below prove nothing
    assert {"date", "date-time", "email"} <= set(FORMATS.checkers)


@pytest.mark.parametrize("path", sorted((DOCS / event_docs.SCHEMAS_DIR).glob("*.json")), ids=lambda p: p.name)
def test_each_schema_file_is_valid_json_schema_2020_12(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert validator_for(schema, default=None) is Draft202012Validator
    Draft202012Validator.check_schema(schema)


@by_key(SPECS)
def test_payload_schema_is_named_by_the_envelopes_dataschema(spec):
    assert load_json(event_docs.schema_path(spec))["$id"] == spec.dataschema


# --- marshmallow and JSON Schema agree ------------------------------------------------------------

@by_key(SPECS)
def test_real_payloads_pass_both_the_contract_and_the_json_schema(spec):
    for label, payload in payloads(spec).items():
        errors = [error.message for error in payload_validator(spec.routing_key).iter_errors(payload)]
        assert (spec.validator.validate(payload), errors) == ({}, []), f"{label}: {payload}"


@by_key(SPECS)
def test_broken_payloads_fail_both(spec):
    disagreements = [f"{label} (marshmallow accepts: {ok[0]}, JSON Schema accepts: {ok[1]})"
                     for label, payload in broken_payloads(spec) if (ok := verdicts(spec, payload)) != (False, False)]
    assert not disagreements, disagreements


@pytest.mark.parametrize("name,field,value", [
    ("purchase.recorded", "currency", "EURO"),
    ("purchase.recorded", "amount", "12,50"),
    ("alert.raised", "health_score", 101),
    ("alert.raised", "signals", []),
    ("alert.raised", "signals", [{"value": 3}]),
    ("alert.raised", "signals", [{"name": "no_contact", "value": 3, "colour": "red"}]),
    ("customer.created", "important_dates", [{"kind": "birthday", "date": "1984-13-01"}]),
    ("customer.created", "important_dates", [{"kind": "wedding", "date": "1984-06-01"}]),
    ("customer.created", "customer_id", ""),
    ("interaction.logged", "occurred_at", "yesterday"),
    ("interaction.logged", "satisfaction", 0),
])
def test_values_breaking_a_validator_or_a_nested_schema_fail_both(name, field, value):
    spec = REGISTRY[(name, 1)]
    assert verdicts(spec, {**payloads(spec)["every field"], field: value}) == (False, False)


# --- the AsyncAPI document -----------------------------------------------------------------------

def test_asyncapi_references_all_resolve():
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    for ref in set(refs(document)):
        if ref.startswith("#/"):
            resolve(document, ref)  # raises KeyError when dangling
        else:
            assert load_json(ref), ref


@by_key(SPECS)
def test_every_event_has_a_channel_on_the_events_exchange(spec):
    document, key = asyncapi(), spec.routing_key
    channel = document["channels"][key]
    binding = resolve(document, channel["bindings"]["$ref"])["amqp"]
    assert (channel["address"], binding["is"], binding["exchange"]) == (
        key, "routingKey", {"name": EVENTS_EXCHANGE, "type": "topic", "durable": True, "autoDelete": False})
    message = resolve(document, channel["messages"][key]["$ref"])
    envelope, specific = message["payload"]["allOf"]
    assert message["contentType"] == "application/json"
    assert envelope["$ref"] == f"./{event_docs.ENVELOPE_FILE}"
    assert load_json(specific["properties"]["data"]["$ref"])["$id"] == spec.dataschema
    headers = resolve(document, message["headers"]["$ref"])
    assert {SUBJECT_HEADER, SEQUENCE_HEADER} <= set(headers["required"])
    for schema in (message["payload"], headers):  # AsyncAPI's default schema format is a draft-07 superset
        Draft7Validator.check_schema(schema)
    actions = {op["action"] for op in document["operations"].values() if op["channel"]["$ref"] == f"#/channels/{key}"}
    assert actions == {"send", "receive"}


def message_validator(spec) -> Draft202012Validator:
    """The channel's message payload schema, its ./schemas/... references read from disk."""
    document = asyncapi()
    payload = resolve(document, document["channels"][spec.routing_key]["messages"][spec.routing_key]["$ref"])["payload"]
    registry = Registry(retrieve=lambda uri: Resource.from_contents(json.loads(pathlib.Path(uri[7:]).read_text())))
    base = (DOCS / event_docs.ASYNCAPI_FILE).as_uri()  # file:///...: the refs are relative to the document
    return Draft202012Validator({"$id": base, **payload}, registry=registry, format_checker=FORMATS)


@by_key(SPECS)
def test_what_a_producer_publishes_matches_its_asyncapi_message(spec):
    event = replace(make_event(spec.name, "c-1042", example_object(spec.validator), source=f"crm/{spec.producer}",
                               time=WHEN, version=spec.version), sequence=7)
    envelope = json.loads(json.dumps(to_envelope(event)))
    validator = message_validator(spec)
    assert [error.message for error in validator.iter_errors(envelope)] == []
    headers = resolve(asyncapi(), "#/components/schemas/cloudEventsHeaders")
    assert Draft202012Validator(headers).is_valid(event_headers(event.subject, event.sequence))
    unsequenced, other = copy.deepcopy(envelope), {**envelope, "type": "crm.some.other_event"}
    del unsequenced["sequence"]
    assert not validator.is_valid(unsequenced) and not validator.is_valid(other)
