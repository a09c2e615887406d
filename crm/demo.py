"""Realistic demo data, loaded like a sales org moving in: customers, their pipeline moves and purchases as
spreadsheet files through the bulk importer (the files stay in the demo's data folder), the reps directory
through the public HTTP API."""
from __future__ import annotations

import csv
import json
import os
import random
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone

from crm import importer
from crm_common.auth import issue_token

TEAMS = ("north", "south", "east", "west")
REPS_PER_TEAM = 5
# who can sign in to the demo (POST /v1/auth/login, the console), one per role; a demo password, nothing more
DEMO_LOGINS = {"rep": "rep-north-1", "manager": "mgr-north", "admin": "admin"}
DEMO_PASSWORD = "demo-crm-2026"
INDUSTRIES = ("manufacturing", "retail", "healthcare", "logistics", "software", "construction", "food", "energy")
CHANNELS = ("exhibition", "online", "referral", "cold_call", "partner", "advertising")
FIRST = ("Ada", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jia", "Kofi", "Lena", "Mateo",
         "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vik", "Wen", "Yara", "Zoe")
LAST = ("Smith", "Wang", "Garcia", "Okafor", "Novak", "Tanaka", "Rossi", "Dubois", "Kim", "Silva", "Berg", "Khan")
WORDS = ("Apex", "Blue", "Cedar", "Delta", "Echo", "Forge", "Granite", "Harbor", "Iron", "Juniper", "Keystone",
         "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer", "Quartz", "Ridge", "Summit", "Titan", "Union", "Vertex")
SUFFIX = ("Industries", "Foods", "Logistics", "Systems", "Health", "Builders", "Energy", "Retail", "Labs", "Works")

# (share of customers, how their history looks)
PROFILES = (
    (0.15, "prospect"),      # never bought: pipeline only
    (0.45, "regular"),       # buys on a steady cycle up to now
    (0.10, "new"),           # first purchase in the last 3 months
    (0.12, "slowing"),       # used to buy, stopped 7-8 months ago
    (0.10, "dormant"),       # stopped 10-16 months ago
    (0.08, "lost"),          # last bought 18-19 months ago, silent since
)


class Api:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body=None, token: str | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def directory(secret: str) -> tuple[list[dict], dict[str, str]]:
    people = [{"id": "admin", "name": "Avery Admin", "role": "admin", "team": None}]
    for team in TEAMS:
        people.append({"id": f"mgr-{team}", "name": f"{team.title()} Manager", "role": "manager", "team": team})
        for i in range(1, REPS_PER_TEAM + 1):
            people.append({"id": f"rep-{team}-{i}", "name": f"{random.choice(FIRST)} {random.choice(LAST)}",
                           "role": "rep", "team": team, "manager_id": f"mgr-{team}"})
    tokens = {p["id"]: issue_token(secret, p["id"], p["role"], p["team"]) for p in people}
    return people, tokens


def _profile(rng: random.Random) -> str:
    roll, acc = rng.random(), 0.0
    for share, name in PROFILES:
        acc += share
        if roll < acc:
            return name
    return PROFILES[-1][1]


def customer_history(rng: random.Random, index: int, owner: dict, now: datetime) -> dict:
    profile = _profile(rng)
    company = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(SUFFIX)} {index}"
    first_purchase = now - timedelta(days=rng.randint(5, 80))  # for a new customer
    created = {
        "lost": now - timedelta(days=rng.randint(620, 660)),  # history older than the 540-day churn horizon
        "prospect": now - timedelta(days=rng.randint(15, 250)),  # the pipeline is busy right now
        "new": first_purchase - timedelta(days=rng.randint(25, 60)),  # won just before its first order
    }.get(profile, now - timedelta(days=rng.randint(540, 560)))
    size = rng.choice((1, 1, 1, 2, 2, 3, 5, 8))  # a few big accounts drive the A tier
    cycle = rng.randint(25, 75)
    won = created + timedelta(days=20)
    start, stop = {
        "prospect": (None, None),
        "regular": (won + timedelta(days=rng.randint(1, 40)), now),
        "new": (first_purchase, now),
        "slowing": (won + timedelta(days=1), now - timedelta(days=rng.randint(190, 250))),
        "dormant": (won + timedelta(days=1), now - timedelta(days=rng.randint(300, 480))),
        "lost": (won + timedelta(days=1), now - timedelta(days=rng.randint(545, 580))),
    }[profile]
    purchases, day = [], start
    while day is not None and day <= stop:
        amount = round(rng.uniform(800, 6000) * size, 2)
        purchases.append({"amount": f"{amount:.2f}", "currency": rng.choice(("USD", "USD", "USD", "EUR")),
                          "purchased_at": day.isoformat(), "external_ref": f"demo-{index}-{len(purchases)}"})
        day = day + timedelta(days=max(7, int(rng.gauss(cycle, cycle / 5))))
    stages = [{"stage": "needs_analysis", "changed_at": (created + timedelta(days=7)).isoformat()}]
    if purchases:
        stages += [{"stage": "proposal", "changed_at": (created + timedelta(days=14)).isoformat()},
                   {"stage": "won", "changed_at": won.isoformat()}]
    else:
        stages = stages[:rng.choice((0, 1, 1))]
        if rng.random() < 0.3:  # lost some time after the last move (a week after creation at the earliest)
            lost_at = created + timedelta(days=8 + rng.randint(0, max((now - created).days - 9, 0)))
            stages.append({"stage": "lost", "changed_at": min(lost_at, now).isoformat()})
    contact = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    birthday = datetime(1960 + rng.randint(0, 35), rng.randint(1, 12), rng.randint(1, 28)).date()
    return {
        "customer": {
            "external_id": f"DEMO-{index:05d}", "company": company, "industry": rng.choice(INDUSTRIES), "source_channel": rng.choice(CHANNELS),
            "owner_id": owner["id"], "tags": rng.sample(["key-account", "distributor", "export", "smb", "enterprise",
                                                         "government", "renewal-due"], k=rng.randint(0, 2)),
            "contacts": [{"name": contact, "role": rng.choice(("CEO", "Purchasing", "CTO", "Operations")),
                          "email": f"{contact.split()[0].lower()}@example.com", "phone": "+1 555 0100",
                          "is_decision_maker": True, "birthday": birthday.isoformat()}],
            "important_dates": [{"kind": "birthday", "date": birthday.isoformat(), "label": contact},
                                {"kind": "contract_anniversary", "date": created.date().isoformat(),
                                 "label": "first contract"}],
            "created_at": created.isoformat(),
        },
        "stages": stages,
        "purchases": purchases,
    }


CUSTOMER_COLUMNS = ("external_id", "company", "industry", "source_channel", "owner", "tags", "contact_name",
                    "contact_role", "contact_phone", "contact_email", "contact_is_decision_maker", "birthday",
                    "contract_anniversary", "created_at")
PURCHASE_COLUMNS = ("customer", "amount", "currency", "purchased_at", "invoice_ref")
STAGE_COLUMNS = ("customer", "stage", "changed_at")


def _cell_time(iso_text: str) -> str:
    """A spreadsheet's date and time (UTC), as people type them."""
    return datetime.fromisoformat(iso_text).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def customer_row(history: dict) -> dict:
    customer, contact = history["customer"], history["customer"]["contacts"][0]
    dates = {d["kind"]: d["date"] for d in customer["important_dates"]}
    return {"external_id": customer["external_id"], "company": customer["company"], "industry": customer["industry"],
            "source_channel": customer["source_channel"], "owner": customer["owner_id"],
            "tags": ";".join(customer["tags"]), "contact_name": contact["name"], "contact_role": contact["role"],
            "contact_phone": contact["phone"], "contact_email": contact["email"],
            "contact_is_decision_maker": "yes" if contact["is_decision_maker"] else "no",
            "birthday": dates["birthday"], "contract_anniversary": dates["contract_anniversary"],
            "created_at": _cell_time(customer["created_at"])}


def purchase_rows(history: dict) -> list[dict]:
    return [{"customer": history["customer"]["external_id"], "amount": p["amount"], "currency": p["currency"],
             "purchased_at": _cell_time(p["purchased_at"]), "invoice_ref": p["external_ref"]}
            for p in history["purchases"]]


def stage_rows(history: dict) -> list[dict]:
    return [{"customer": history["customer"]["external_id"], "stage": move["stage"],
             "changed_at": _cell_time(move["changed_at"])} for move in history["stages"]]


def write_import_files(folder: str, histories: list[dict]) -> list[str]:
    """customers.csv, stages.csv and purchases.csv in the import templates' columns (docs/imports.md)."""
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, name) for name in ("customers.csv", "stages.csv", "purchases.csv")]
    for path, columns, rows in ((paths[0], CUSTOMER_COLUMNS, [customer_row(h) for h in histories]),
                                (paths[1], STAGE_COLUMNS, [r for h in histories for r in stage_rows(h)]),
                                (paths[2], PURCHASE_COLUMNS, [r for h in histories for r in purchase_rows(h)])):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
    return paths


def listed(api: Api, listing: str):
    """Every item of a listing ("/v1/customers?lifecycle=new"), page by page (500 a page)."""
    cursor = None
    while True:
        status, page = api.call("GET", f"{listing}{'&' if '?' in listing else '?'}limit=500"
                                + (f"&cursor={cursor}" if cursor else ""))
        if status != 200:
            raise RuntimeError(f"listing {listing} failed: {status} {page}")
        yield from page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return


def customer_ids_by_external_id(admin: Api) -> dict[str, dict]:
    return {item["external_id"]: item for item in listed(admin, "/v1/customers")}


def load(base_url: str, secret: str, customers: int, folder: str, seed: int = 7) -> dict:
    """The directory, then customers.csv, stages.csv (each customer's dated pipeline moves) and purchases.csv,
    written to `folder`, through the importer."""
    rng = random.Random(seed)
    random.seed(seed)
    people, tokens = directory(secret)
    admin = Api(base_url, tokens["admin"])
    for person in people[1:]:
        status, body = admin.call("POST", "/v1/reps", {k: v for k, v in person.items() if v is not None})
        if status not in (201, 409):
            raise RuntimeError(f"could not register {person['id']}: {status} {body}")
    for user_id in DEMO_LOGINS.values():  # the console's sign-in, one user per role
        status, body = admin.call("PUT", f"/v1/reps/{user_id}/password", {"password": DEMO_PASSWORD})
        if status != 200:
            raise RuntimeError(f"could not set the demo password of {user_id}: {status} {body}")
    reps = [p for p in people if p["role"] == "rep"]
    now = datetime.now(timezone.utc)
    histories = [customer_history(rng, index, reps[index % len(reps)], now) for index in range(customers)]
    files, options = importer.Api(base_url, tokens["admin"]), {"dry_run": False, "mapping": {}, "timezone": "UTC"}
    for path in write_import_files(folder, histories):
        status = importer.import_file(files, path, None, options, path.replace(".csv", ".rejected.csv"), quiet=False)
        if status != importer.EXIT_OK:
            raise RuntimeError(f"the demo's {path} did not import cleanly (exit {status}); see its rejected rows")
    imported = customer_ids_by_external_id(admin)
    return {"people": people, "tokens": tokens, "tiers": Counter(c["tier"] for c in imported.values()),
            "lifecycles": Counter(c["lifecycle"] for c in imported.values()),
            "purchases": sum(len(h["purchases"]) for h in histories), "files": folder,
            "customer_ids": [(imported[h["customer"]["external_id"]]["id"], h["customer"]["owner_id"])
                             for h in histories]}
