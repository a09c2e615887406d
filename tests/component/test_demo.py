"""The README's first command keeps working: the embedded demo loads, tours and writes its charts."""
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_runs_end_to_end(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data_dir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "crm", "demo", "--customers", "40", "--no-serve", "--port", str(port),
         "--data-dir", str(data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for expected in ("Loaded 40 customers", "customers.csv: customers, 40 rows: imported 40, unchanged 0, rejected 0",
                     "Value tier", "answers HTTP 404", "work list today", "Churn early warning",
                     "Charts and tables for a manager"):
        assert expected in out, f"{expected!r} missing from the demo's output:\n{out[-3000:]}"
    assert sorted(os.listdir(data_dir / "import")) == ["customers.csv", "purchases.csv", "stages.csv"]  # to look at
    charts = os.listdir(data_dir / "reports")
    assert {"churn-by-team.svg", "repurchase-by-team.svg", "summary-by-team-monthly.csv"} <= set(charts)


def documented_fields(schema, document):
    """The property names a request schema documents ($refs resolved), nested objects and arrays included."""
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    names = {}
    for part in schema.get("allOf", []):
        names.update(documented_fields(part, document))
    for name, prop in schema.get("properties", {}).items():
        inner = prop.get("items", prop)
        nested = any(key in inner for key in ("$ref", "properties", "allOf"))
        names[name] = documented_fields(inner, document) if nested else None
    return names


def undocumented(body, fields, where=""):
    """The keys of a body (recursively) that the documented fields do not name."""
    found = []
    for key, value in body.items():
        if key not in fields:
            found.append(f"{where}{key}")
        elif fields[key] is not None:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    found += undocumented(item, fields[key], f"{where}{key}.")
    return found


def test_the_demo_sends_only_documented_fields(tmp_path):
    """Its loader is a client like any other: its files have only the import templates' columns, and every
    field of its interaction and task bodies is in the OpenAPI."""
    import csv
    import random
    from datetime import datetime, timezone

    from crm import demo, demo_followups
    from crm_common.contracts.imports import TEMPLATES, detect_kind
    from crm_common.ops import openapi_document

    document = openapi_document()

    def request_fields(path):
        return documented_fields(document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
                                 ["schema"], document)
    rng, now = random.Random(3), datetime.now(timezone.utc)
    owner = {"id": "rep-north-1"}
    histories = [demo.customer_history(rng, i, owner, now) for i in range(200)]
    for path, kind in zip(demo.write_import_files(str(tmp_path), histories), ("customers", "stages", "purchases")):
        with open(path, newline="", encoding="utf-8") as handle:
            headers = next(csv.reader(handle))
        assert set(headers) <= set(TEMPLATES[kind]) and detect_kind(headers) == kind, (path, headers)
    plans = [demo_followups._plan(rng, f"c{i}", "rep-north-1", lifecycle, now, diligence)
             for i, lifecycle in enumerate(("potential", "new", "active", "at_risk", "dormant", "churned") * 30)
             for diligence in (0.0, 1.0)]
    sent = {"/v1/interactions": [demo_followups.interaction_body(t, ["int_1", "int_2", "int_3"]) for p in plans
                                 for t in p["touches"] + ([p["answer"]] if p["answer"] else [])],
            "/v1/tasks": [p["follow_up"] for p in plans if p["follow_up"]]}
    for path, bodies in sent.items():
        fields = request_fields(path)
        assert bodies and not {key for body in bodies for key in undocumented(body, fields)}, path
