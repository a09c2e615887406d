"""Import jobs in the customers service (real SQLite): a stopped job resumed by another replica ends exactly like
one run straight through; a re-run changes nothing; a dry run writes only its report; leases keep two replicas
off one job; interactions go to followups with their customer and rep resolved."""
import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from crm_common.auth import Principal
from crm_common.clock import FixedClock
from crm_common.testing import InMemoryStore
from services.customers import commands, import_rows, imports, models
from services.customers.domain import ClassificationPolicy

NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
ADMIN = Principal("admin", "admin")
MANAGER_NORTH = Principal("mgr-north", "manager", "north")
POLICY = ClassificationPolicy()

CUSTOMERS = "external_id,company,owner,contact_name,contact_email,tags\n" + "".join(
    f"C{i},Company {i},{'rep-n1' if i % 2 else 'n2@example.com'},Person {i},p{i}@example.com,a;b\n"
    for i in range(1, 12))
PURCHASES = "customer,amount,currency,purchased_at,invoice_ref\n" + "".join(
    f"C{i % 11 + 1},{100 + i}.50,USD,2026-0{i % 5 + 1}-1{i % 9},{'INV' + str(i) if i % 3 else ''}\n"
    for i in range(1, 30))


class FakeFollowups:
    """import_interactions as followups answers it: each external_ref once."""

    def __init__(self):
        self.stored = {}

    def import_interactions(self, actor, rows, dry_run):
        answers = []
        for row in rows:
            key = (row["customer_id"], row["external_ref"])
            if key in self.stored:
                answers.append({"status": "unchanged"})
            elif row["kind"] == "complaint" and not row["summary"]:
                answers.append({"status": "rejected", "field": "summary", "reason": "say what the complaint is"})
            else:
                if not dry_run:
                    self.stored[key] = row
                answers.append({"status": "imported"})
        return answers


def make_store(path):
    store = InMemoryStore(models.metadata, models.infrastructure, "customers", str(path))
    for rep in ({"id": "mgr-north", "name": "M", "team": "north", "role": "manager"},
                {"id": "rep-n1", "name": "N1", "team": "north", "email": "n1@example.com"},
                {"id": "rep-n2", "name": "N2", "team": "north", "email": "N2@Example.com"},
                {"id": "rep-s1", "name": "S1", "team": "south"}):
        store.run(commands.register_rep, ADMIN, rep, NOW)
    return store


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path / "customers.db")


def start(store, content: str, actor=ADMIN, encoding="utf-8", **options) -> str:
    data = {"kind": None, "filename": "f.csv", "dry_run": False, "mapping": {}, "timezone": "UTC", **options}
    job = store.run(imports.create_job, actor, data, NOW)
    imports.store_file(store, actor, job["id"], io.BytesIO(content.encode(encoding)), NOW)
    return job["id"]


def run_all(store, followups=None):
    while (job := imports.claim_next(store)) is not None:
        imports.run(store, job, FixedClock(NOW), POLICY, followups or FakeFollowups())


def view(store, job_id):
    return store.run(imports.get_job, ADMIN, job_id)


def content_of(store) -> dict:
    """What the import made, without generated ids and times: customers, contacts, tags, purchases, events."""
    with store() as uow:
        s = uow.session
        customers = sorted(s.execute(select(models.customers.c.external_id, models.customers.c.company,
                                            models.customers.c.owner_id, models.customers.c.team,
                                            models.customers.c.rolling_12m_total, models.customers.c.tier)).all())
        contacts = s.execute(select(func.count()).select_from(models.contacts)).scalar()
        tags = s.execute(select(func.count()).select_from(models.customer_tags)).scalar()
        bought = sorted(s.execute(select(models.customers.c.external_id, models.purchases.c.amount,
                                         models.purchases.c.external_ref).join(
            models.customers, models.customers.c.id == models.purchases.c.customer_id)).all())
    names = sorted(e.name for e in store.events())
    return {"customers": customers, "contacts": contacts, "tags": tags, "purchases": bought, "events": names}


def test_a_stopped_job_resumed_by_another_replica_ends_like_one_run(tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 4)
    straight = make_store(tmp_path / "straight.db")
    for content in (CUSTOMERS, PURCHASES):
        start(straight, content)
        run_all(straight)

    stopped = make_store(tmp_path / "stopped.db")
    real_apply, calls = import_rows.apply, {"n": 0}

    def crash_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("replica killed")
        return real_apply(*args, **kwargs)

    for content in (CUSTOMERS, PURCHASES):
        job_id = start(stopped, content)
        calls["n"] = 0
        monkeypatch.setattr(import_rows, "apply", crash_on_third_batch)
        with pytest.raises(RuntimeError):
            imports.run(stopped, imports.claim_next(stopped), FixedClock(NOW), POLICY, FakeFollowups())
        half = view(stopped, job_id)
        assert (half["status"], half["rows_processed"]) == ("running", 8)  # two batches committed, one lost
        assert imports.claim_next(stopped) is None  # still leased to the stopped replica
        monkeypatch.setattr(import_rows, "apply", real_apply)
        monkeypatch.setattr(imports, "REPLICA", imports.REPLICA + "-other")
        stopped.run(lambda uow: uow.session.execute(update(models.import_jobs).values(
            lease_until=datetime.now(timezone.utc) - timedelta(seconds=1))))
        run_all(stopped)
        assert view(stopped, job_id)["status"] == "done"

    assert content_of(stopped) == content_of(straight)
    assert len(content_of(straight)["purchases"]) == 29
    # resumed after the last committed batch: no row applied twice (it would be "the same as row N"), none skipped
    figures = [(j["imported"], j["unchanged"], j["rejected"]) for j in stopped.run(imports.list_jobs, ADMIN, 10)["items"]]
    assert sorted(figures) == [(11, 0, 0), (29, 0, 0)]


def test_running_the_same_file_again_changes_nothing(store):
    for content in (CUSTOMERS, PURCHASES):
        start(store, content)
    run_all(store)
    before = content_of(store)
    again = [start(store, CUSTOMERS), start(store, PURCHASES)]
    run_all(store)
    assert content_of(store) == before
    assert [(view(store, j)["imported"], view(store, j)["unchanged"]) for j in again] == [(0, 11), (0, 29)]


def test_a_dry_run_writes_its_report_and_nothing_else(store):
    job_id = start(store, CUSTOMERS + "C1,Again,,,,\nC99,,,,,\n", dry_run=True)
    run_all(store)
    job = view(store, job_id)
    assert (job["imported"], job["rejected"], job["status"]) == (11, 2, "done")
    assert content_of(store)["customers"] == [] and store.events() == [r for r in store.events()
                                                                         if r.name.startswith("rep.")]
    rows = [(r.row, r.column, r.reason) for r in store.run(imports.rejections_page, ADMIN, job_id, 0)]
    assert rows == [(13, "external_id", "the same as row 2 of this file"),
                    (14, "company", "required; the cell is empty")]


def test_owners_by_id_or_email_and_a_manager_only_into_their_team(store):
    job_id = start(store, "external_id,company,owner\nM1,Mine,N2@EXAMPLE.com\nM2,South's,rep-s1\nM3,Nobody's,\n",
                   actor=MANAGER_NORTH)
    run_all(store)
    assert content_of(store)["customers"] == [("M1", "Mine", "rep-n2", "north", 0, "C"),
                                              ("M3", "Nobody's", None, "north", 0, "C")]
    [rejection] = store.run(imports.rejections_page, MANAGER_NORTH, job_id, 0)
    assert (rejection.row, rejection.column, rejection.value) == (3, "owner", "rep-s1")
    assert "not in your team" in rejection.reason


def test_a_file_without_a_required_column_fails_before_any_row(store):
    job_id = start(store, "external_id,industry\nX1,tools\n", kind="customers")
    run_all(store)
    job = view(store, job_id)
    assert job["status"] == "failed" and "company" in job["error"] and content_of(store)["customers"] == []


def test_interactions_go_to_followups_with_customer_and_rep_resolved(store):
    start(store, "external_id,company,owner\nC1,One,rep-n1\nC2,Two,\n")
    run_all(store)
    followups = FakeFollowups()
    content = ("customer,rep,kind,outcome,occurred_at,summary\n"
               "C1,,call,reached,2026-06-01 10:00,hi\n"            # the owner had it
               "C1,n2@example.com,visit,positive,2026-06-02,\n"    # a rep by e-mail
               "C2,,call,reached,2026-06-03,\n"                    # no owner, no rep
               "C1,rep-n1,complaint,open,2026-06-04,\n"            # followups refuses it
               "C1,,call,reached,2026-06-01 10:00,hi\n")           # the same as row 2: a second, equal touch
    job_id = start(store, content, timezone="Asia/Shanghai")
    run_all(store, followups)
    job = view(store, job_id)
    assert (job["kind"], job["imported"], job["rejected"]) == ("interactions", 3, 2)
    sent = sorted((r["rep_id"], r["kind"], r["occurred_at"]) for r in followups.stored.values())
    assert sent == [("rep-n1", "call", "2026-06-01T02:00:00+00:00"), ("rep-n1", "call", "2026-06-01T02:00:00+00:00"),
                    ("rep-n2", "visit", "2026-06-01T16:00:00+00:00")]
    rejected = {(r.row, r.column) for r in store.run(imports.rejections_page, ADMIN, job_id, 0)}
    assert rejected == {(4, "rep"), (5, "summary")}
    again = start(store, content, timezone="Asia/Shanghai")
    run_all(store, followups)
    assert (view(store, again)["imported"], view(store, again)["unchanged"]) == (0, 3)


def test_a_rep_cannot_import_nor_see_imports(store):
    job_id = start(store, CUSTOMERS)
    rep = Principal("rep-n1", "rep", "north")
    for call in (lambda: store.run(imports.create_job, rep, {"filename": "x", "dry_run": False,
                                                             "timezone": "UTC"}, NOW),
                 lambda: store.run(imports.get_job, rep, job_id),
                 lambda: store.run(imports.list_jobs, rep, 10)):
        with pytest.raises(Exception) as refused:
            call()
        assert getattr(refused.value, "status", None) == 403


def test_imported_customers_publish_customer_created_with_their_external_id(store):
    start(store, "external_id,company,owner\nEXT-9,Nine Ltd,rep-n1\n")
    run_all(store)
    [created] = store.events("customer.created")
    assert (created.data["external_id"], created.data["company"], created.data["owner_id"]) == \
        ("EXT-9", "Nine Ltd", "rep-n1")


def test_equal_rows_without_an_invoice_are_each_a_purchase_and_a_rerun_finds_them_all(store):
    start(store, "external_id,company,owner\nC1,One,rep-n1\n")
    run_all(store)
    content = "customer,amount,currency,purchased_at\n" + "C1,99.00,USD,2026-05-01\n" * 3 + "C1,99.00,USD,2026-05-02\n"
    first = start(store, content)
    run_all(store)
    assert (view(store, first)["imported"], view(store, first)["rejected"]) == (4, 0)
    with store() as uow:
        refs = sorted(uow.session.execute(select(models.purchases.c.external_ref)).scalars())
    assert len(refs) == len(set(refs)) == 4 and sum(ref.endswith(("#2", "#3")) for ref in refs) == 2
    again = start(store, content)
    run_all(store)
    assert (view(store, again)["imported"], view(store, again)["unchanged"]) == (0, 4)


def _state(store) -> dict:
    """Per customer (by external id) its record, purchases and published facts, without generated ids."""
    with store() as uow:
        s = uow.session
        rows = s.execute(select(models.customers).order_by(models.customers.c.external_id)).all()
        ids = {r.id: r.external_id for r in rows}
        record = [(r.external_id, r.company, r.owner_id, r.team, r.tier, r.lifecycle, r.rolling_12m_total,
                   r.purchase_count, r.first_purchase_at, r.last_purchase_at, r.next_review_at, r.classified_until)
                  for r in rows]
        bought = sorted((ids[p.customer_id], p.amount, p.currency, p.amount_base, p.purchased_at, p.external_ref)
                        for p in s.execute(select(models.purchases)))
        audit = sorted((a.action, ids.get(a.entity_id)) for a in s.execute(select(models.infrastructure["audit_log"]))
                       if a.entity == "customer")
    events = []
    for e in store.events():
        if e.name.startswith("rep."):
            continue
        data = {k: v for k, v in e.data.items() if k not in ("customer_id", "purchase_id")}
        events.append((e.name, ids[e.subject], e.sequence, e.time, sorted(data.items(), key=str)))
    return {"customers": record, "purchases": bought, "audit": audit, "events": events}


def facts_in_order(events) -> dict:
    """customer.created and purchase.recorded per customer, in their sequence order."""
    facts = {}
    for name, customer, _, at, data in sorted(events, key=lambda e: (e[1], e[2])):
        if name in ("customer.created", "purchase.recorded"):
            facts.setdefault(customer, []).append((name, at, data))
    return facts


def test_a_batch_written_together_equals_the_same_rows_one_by_one_through_the_api(tmp_path):
    """Several purchases of one customer in a batch: the record (counts, first and last dates, tier, lifecycle,
    next review), the rows, the audit and the facts published, in order per customer, as if each had been
    recorded alone. (The class history is computed once per batch, so its steps within one instant may differ:
    what the class was at each moment does not.)"""
    batched = make_store(tmp_path / "batched.db")
    for content in (CUSTOMERS, PURCHASES):
        start(batched, content)
        run_all(batched)

    alone = make_store(tmp_path / "alone.db")
    for line in csv.DictReader(io.StringIO(CUSTOMERS)):
        owner = "rep-n1" if line["owner"] == "rep-n1" else "rep-n2"
        alone.run(commands.create_customer, ADMIN, {
            "company": line["company"], "external_id": line["external_id"], "owner_id": owner, "tags": ["a", "b"],
            "contacts": [{"name": line["contact_name"], "email": line["contact_email"]}]}, NOW, POLICY)
    for line in csv.DictReader(io.StringIO(PURCHASES)):
        customer_id = alone.run(lambda uow: uow.session.execute(select(models.customers.c.id).where(
            models.customers.c.external_id == line["customer"])).scalar())
        when = datetime.fromisoformat(line["purchased_at"]).replace(tzinfo=timezone.utc)
        alone.run(commands.record_purchase, ADMIN, customer_id, {
            "amount": line["amount"], "currency": line["currency"], "purchased_at": when,
            "external_ref": line["invoice_ref"] or None}, NOW, POLICY)

    got, expected = _state(batched), _state(alone)
    unreferenced = lambda rows: [r[:-1] for r in rows]  # noqa: E731 - content keys stand in for missing invoices
    assert unreferenced(got["purchases"]) == unreferenced(expected["purchases"])
    assert got["customers"] == expected["customers"]
    assert got["audit"] == expected["audit"]
    assert facts_in_order(got["events"]) == facts_in_order(expected["events"])
    assert max(c[7] for c in got["customers"]) > 1  # some customer had several purchases in the one batch


@pytest.mark.parametrize("content", [CUSTOMERS, PURCHASES], ids=["customers", "purchases"])
def test_a_unique_key_taken_while_the_batch_was_checked_runs_it_again_cleanly(store, monkeypatch, content):
    """Another writer took a key between the checks and the write (IntegrityError): the batch is undone whole
    (keys, rejections, events, audit) and run once more, so no row is reported as its own duplicate."""
    from sqlalchemy.exc import IntegrityError
    if content is PURCHASES:
        start(store, CUSTOMERS)
        run_all(store)
    calls = {"n": 0}
    name = "insert_customers" if content is CUSTOMERS else "insert_purchases"
    real = getattr(commands, name)

    def raced(*args, **kwargs):
        calls["n"] += 1
        real(*args, **kwargs)
        if calls["n"] == 1:
            raise IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint"))
    monkeypatch.setattr(commands, name, raced)
    before = len(store.events())
    job_id = start(store, content)
    run_all(store)
    job = view(store, job_id)
    rows = 11 if content is CUSTOMERS else 29
    assert (calls["n"], job["status"], job["imported"], job["rejected"]) == (2, "done", rows, 0)
    assert store.run(imports.rejections_page, ADMIN, job_id, 0) == []
    created = [e for e in store.events()[before:] if e.name in ("customer.created", "purchase.recorded")]
    assert len(created) == rows and len({e.id for e in created}) == rows
