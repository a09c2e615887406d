"""Bulk import through its public interfaces on the embedded system: `python -m crm import` as a user runs it
(a subprocess against the served API) and the HTTP job routes. Every kind of bad row comes back in the
rejected-rows file with its row, column, value and reason, and leaves nothing half-written; the good rows go
in and publish the same events as rows typed in one by one (followups, alerts and reports learn of them); a
re-run changes nothing; a dry run writes only its report."""
import csv
import io
import subprocess
import sys
import time
import zipfile

import pytest
import requests
from openpyxl import Workbook

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

TEAM, OTHER = "imp-north", "imp-south"
ADMIN = issue_token(DEV_SECRET, "admin", "admin")
MANAGER = issue_token(DEV_SECRET, "imp-mgr", "manager", TEAM)
REP = issue_token(DEV_SECRET, "imp-rep1", "rep", TEAM)


def call(method, base, path, token=ADMIN, **kwargs):
    return requests.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs)


def eventually(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout}s")


@pytest.fixture(scope="module")
def base(embedded_system):
    url = embedded_system.base_url
    for rep in ({"id": "imp-mgr", "name": "Mgr", "team": TEAM, "role": "manager"},
                {"id": "imp-rep1", "name": "Rep One", "team": TEAM, "email": "one@imp.example"},
                {"id": "imp-rep2", "name": "Rep Two", "team": TEAM, "email": "two@imp.example"},
                {"id": "imp-south", "name": "South", "team": OTHER},
                {"id": "imp-south-mgr", "name": "South Manager", "team": OTHER, "role": "manager"}):
        assert call("POST", url, "/v1/reps", json=rep).status_code == 201
    return url


def cli(base, *args, token=ADMIN):
    done = subprocess.run([sys.executable, "-m", "crm", "import", *map(str, args), "--api", base, "--token", token,
                           "--quiet"], capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def report(path) -> dict:
    """Rejected rows by row number: [(column, value, reason)]."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    found = {}
    for r in rows:
        found.setdefault(int(r["row"]), []).append((r["column"], r["value"], r["reason"]))
    return found


def customer(base, external_id):
    items = call("GET", base, "/v1/customers", params={"external_id": external_id}).json()["items"]
    return items[0] if items else None


def test_a_chinese_excel_csv_goes_in_and_every_bad_row_is_named(base, tmp_path):
    path = tmp_path / "客户.csv"
    lines = ["客户编号,客户名称,行业,来源,负责人,联系人,邮箱,决策人,生日",
             "CN-1,杭州精工,制造,展会,one@imp.example,王伟,wang@example.cn,是,1982-03-08",  # 2: good, owner by e-mail
             "CN-2,,食品,网络,imp-rep2,,,,",                                               # 3: no company
             "CN-3,宁波海联,物流,,nobody,,,,",                                              # 4: unknown owner
             "CN-4,苏州云帆,食品,,imp-rep1,李娜,,否,1980-02-30",                            # 5: no such date
             "CN-1,杭州精工二,制造,,imp-rep1,,,,",                                          # 6: external id again
             "CN-6,上海某某,零售,火星,imp-rep1,,,,",                                        # 7: unknown channel
             "CN-7,广州南方,制造,,imp-south,,,,"]                                           # 8: another team's rep
    data = "\r\n".join(lines).encode("gb18030") + b"\r\nCN-8,\xff\xfe\x81\x20bad,,,,,,,\r\n"  # 9: not GBK text
    path.write_bytes(data)
    code, out = cli(base, path, token=MANAGER)
    assert code == 1, out
    assert "customers, 8 rows: imported 1, unchanged 0, rejected 7" in out, out
    rejected = report(str(path) + ".rejected.csv")
    assert sorted(rejected) == [3, 4, 5, 6, 7, 8, 9]
    assert rejected[3] == [("客户名称", "", "required; the cell is empty")]
    assert rejected[4][0][:2] == ("负责人", "nobody") and "directory" in rejected[4][0][2]
    assert rejected[5][0][:2] == ("生日", "1980-02-30")
    assert rejected[6] == [("客户编号", "CN-1", "the same as row 2 of this file")]
    assert rejected[7][0][:2] == ("来源", "火星")
    assert rejected[8][0][0] == "负责人" and "not in your team" in rejected[8][0][2]
    assert rejected[9][0][0] == "客户名称" and "gb18030" in rejected[9][0][2]
    good = customer(base, "CN-1")
    assert (good["company"], good["owner_id"], good["team"], good["industry"]) == ("杭州精工", "imp-rep1", TEAM, "制造")
    full = call("GET", base, f"/v1/customers/{good['id']}").json()
    assert full["source_channel"] == "exhibition" and full["contacts"][0]["is_decision_maker"] is True
    assert full["important_dates"] == [{"kind": "birthday", "date": "1982-03-08", "label": "王伟"}]
    for missing in ("CN-2", "CN-3", "CN-4", "CN-6", "CN-7", "CN-8"):
        assert customer(base, missing) is None, f"{missing} was refused, yet written"


def test_excel_formula_and_error_cells_are_refused_and_date_cells_read(base, tmp_path):
    from datetime import date
    book = Workbook()
    sheet = book.active
    sheet.append(["External ID", "Company Name", "Owner", "Contact", "Birthday"])
    sheet.append(["XL-1", "Formula Free Ltd", "imp-rep1", "Ann", date(1990, 7, 1)])
    sheet.append(["XL-2", "=CONCAT(\"Acme\", \" Ltd\")", "imp-rep1", None, None])
    sheet.append(["XL-3", "#N/A", "imp-rep1", None, None])
    sheet.append([4, "Numbered Ltd", "imp-rep2", None, None])   # a number cell as the id: "4"
    path = tmp_path / "customers.xlsx"
    book.save(path)
    code, out = cli(base, path, "--errors", tmp_path / "bad.csv")
    assert code == 1, out
    rejected = report(tmp_path / "bad.csv")
    assert sorted(rejected) == [3, 4]
    assert rejected[3][0][:2] == ("Company Name", '=CONCAT("Acme", " Ltd")') and "formula" in rejected[3][0][2]
    assert rejected[4][0][:2] == ("Company Name", "#N/A") and "error" in rejected[4][0][2]
    first = call("GET", base, f"/v1/customers/{customer(base, 'XL-1')['id']}").json()
    assert first["important_dates"] == [{"kind": "birthday", "date": "1990-07-01", "label": "Ann"}]
    assert customer(base, "4")["company"] == "Numbered Ltd"
    assert customer(base, "XL-2") is None and customer(base, "XL-3") is None


def test_purchases_and_interactions_publish_their_events_and_a_rerun_changes_nothing(base, tmp_path):
    customers = tmp_path / "c.csv"
    customers.write_text("external_id;company;owner\nEV-1;Event One;imp-rep1\nEV-2;Event Two;imp-rep2\n")
    purchases = tmp_path / "p.csv"
    purchases.write_text("customer,amount,currency,purchased_at,invoice_ref\n"
                         "EV-1,\"25,000.00\",USD,2026-09-01,INV-1\n"   # 2 good
                         "EV-1,-5,USD,2026-09-02,INV-2\n"              # 3 negative
                         "EV-1,10,XYZ,2026-09-03,INV-3\n"              # 4 unknown currency
                         "EV-1,10,USD,2099-01-01,INV-4\n"              # 5 future
                         "EV-1,10,USD,someday,INV-5\n"                 # 6 bad date
                         "EV-9,10,USD,2026-09-03,INV-6\n"              # 7 unknown customer
                         "EV-2,¥300,,2026/9/4,\n")                     # 8 good, CNY from the sign, no invoice
    interactions = tmp_path / "i.csv"
    interactions.write_text("customer,rep,kind,outcome,occurred_at,summary,satisfaction\n"
                            "EV-1,,visit,positive,2026-09-05 10:00,plant tour,5\n"
                            "EV-2,two@imp.example,电话,未接通,2026-09-06,,\n"
                            "EV-2,imp-rep2,call,reached,2026-09-07,,6\n")
    code, out = cli(base, interactions, purchases, customers)   # taken customers, purchases, interactions
    assert code == 1, out
    assert out.index("c.csv:") < out.index("p.csv:") < out.index("i.csv:"), out
    assert sorted(report(str(purchases) + ".rejected.csv")) == [3, 4, 5, 6, 7]
    assert [(c, v) for c, v, _ in report(str(interactions) + ".rejected.csv")[4]] == [("satisfaction", "6")]

    one, two = customer(base, "EV-1"), customer(base, "EV-2")
    bought = call("GET", base, f"/v1/customers/{one['id']}/purchases").json()["items"]
    assert [(p["amount"], p["external_ref"]) for p in bought] == [("25000.00", "INV-1")]
    assert one["rolling_12m_total"] == "25000.00" and one["tier"] == "B"
    [cny] = call("GET", base, f"/v1/customers/{two['id']}/purchases").json()["items"]
    assert (cny["currency"], cny["amount"]) == ("CNY", "300.00")
    # the same events as facts typed in: followups has the touches with their reps, alerts and reports the buyers
    touches = eventually(lambda: call("GET", base, f"/v1/customers/{two['id']}/interactions").json()["items"],
                         "followups to have the imported touch")
    assert [(t["rep_id"], t["kind"], t["outcome"]) for t in touches] == [("imp-rep2", "call", "no_answer")]
    health = eventually(lambda: call("GET", base, f"/v1/customers/{one['id']}/health").json()
                        if call("GET", base, f"/v1/customers/{one['id']}/health").status_code == 200 else None,
                        "alerts to know the imported customer")
    assert health["customer_id"] == one["id"]

    code, out = cli(base, customers, purchases, interactions)
    assert code == 1, out  # the same bad rows again; nothing else
    assert "imported 0, unchanged 2, rejected 0" in out and "imported 0, unchanged 2, rejected 5" in out, out
    assert "imported 0, unchanged 2, rejected 1" in out, out
    assert len(call("GET", base, f"/v1/customers/{one['id']}/purchases").json()["items"]) == 1
    assert len(call("GET", base, f"/v1/customers/{two['id']}/interactions").json()["items"]) == 1


def test_a_stages_file_makes_the_dated_pipeline_and_a_rerun_changes_nothing(base, tmp_path):
    customers = tmp_path / "c.csv"
    customers.write_text("external_id,company,owner,created_at\nST-1,Stage One,imp-rep1,2025-01-01\n"
                         "ST-2,Stage Two,imp-rep2,2025-01-01\n")
    stages = tmp_path / "s.csv"
    stages.write_text("客户编号,销售阶段,日期\n"
                      "ST-1,需求分析,2025-02-01\n"      # 2 good (Chinese names)
                      "ST-1,proposal,2025-03-01\n"      # 3 good
                      "ST-1,won,2025-04-01\n"           # 4 good
                      "ST-1,lost,2025-05-01\n"          # 5 won is final
                      "ST-2,proposal,2025-03-01\n"      # 6 good (skipping is allowed)
                      "ST-2,needs_analysis,2025-04-01\n"  # 7 backwards
                      "ST-2,lost,2024-12-01\n"          # 8 before the customer's last move (its creation)
                      "ST-2,on hold,2025-05-01\n"       # 9 no such stage
                      "ST-2,lost,2099-01-01\n"          # 10 future
                      "ST-9,won,2025-05-01\n"           # 11 unknown customer
                      "ST-1,won,2025-04-01\n")          # 12 the same move as row 4
    code, out = cli(base, stages, customers)   # customers are taken first
    assert code == 1, out
    assert out.index("c.csv:") < out.index("s.csv:"), out
    rejected = report(str(stages) + ".rejected.csv")
    assert sorted(rejected) == [5, 7, 8, 9, 10, 11, 12], rejected
    assert {row: problems[0][0] for row, problems in rejected.items()} == {
        5: "销售阶段", 7: "销售阶段", 8: "日期", 9: "销售阶段", 10: "日期", 11: "客户编号", 12: "销售阶段"}
    one = customer(base, "ST-1")
    moves = call("GET", base, f"/v1/customers/{one['id']}/history").json()["stages"]
    assert [(m["to_stage"], m["changed_at"][:10]) for m in moves] == [
        ("first_contact", "2025-01-01"), ("needs_analysis", "2025-02-01"), ("proposal", "2025-03-01"),
        ("won", "2025-04-01")]
    assert one["pipeline_stage"] == "won" and customer(base, "ST-2")["pipeline_stage"] == "proposal"
    code, out = cli(base, customers, stages)
    assert "imported 0, unchanged 4, rejected 7" in out, out  # the same bad rows again; nothing else
    assert len(call("GET", base, f"/v1/customers/{one['id']}/history").json()["stages"]) == 4


def test_a_dry_run_checks_everything_and_writes_only_the_report(base, tmp_path):
    path = tmp_path / "dry.csv"
    path.write_text("external_id,company,owner\nDRY-1,Dry One,imp-rep1\nDRY-2,,imp-rep1\n")
    code, out = cli(base, path, "--dry-run")
    assert code == 1 and "would import 1, unchanged 0, rejected 1" in out, out
    assert customer(base, "DRY-1") is None
    assert sorted(report(str(path) + ".rejected.csv")) == [3]


def test_the_http_job_routes(base):
    job = call("POST", base, "/v1/imports", MANAGER, json={"filename": "team.csv", "timezone": "Asia/Shanghai"})
    assert job.status_code == 201 and job.json()["status"] == "awaiting_file"
    job_id = job.json()["id"]
    body = "external_id,company,created_at\nHT-1,Http One,2026-03-01 08:00\nHT-2,Http Two,2026-13-01\n".encode()
    queued = call("PUT", base, f"/v1/imports/{job_id}/file", MANAGER, data=body)
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert call("PUT", base, f"/v1/imports/{job_id}/file", MANAGER, data=body).status_code == 409
    done = eventually(lambda: (j := call("GET", base, f"/v1/imports/{job_id}", MANAGER).json())["status"] == "done"
                      and j, "the job to finish")
    assert (done["kind"], done["rows_total"], done["imported"], done["rejected"]) == ("customers", 2, 1, 1), \
        call("GET", base, f"/v1/imports/{job_id}/rejections", MANAGER).text
    record = call("GET", base, f"/v1/customers/{customer(base, 'HT-1')['id']}").json()
    assert record["created_at"] == "2026-03-01T00:00:00+00:00" and record["team"] == TEAM  # 08:00 in Shanghai
    download = call("GET", base, f"/v1/imports/{job_id}/rejections", MANAGER)
    assert download.headers["Content-Type"].startswith("text/csv") and download.content.startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))[1][:3] == ["3", "created_at",
                                                                                          "2026-13-01"]
    assert job_id in [j["id"] for j in call("GET", base, "/v1/imports", MANAGER).json()["items"]]
    south = issue_token(DEV_SECRET, "imp-south-mgr", "manager", OTHER)
    assert call("GET", base, f"/v1/imports/{job_id}", south).status_code == 404
    assert call("GET", base, f"/v1/imports/{job_id}", REP).status_code == 403
    assert call("POST", base, "/v1/imports", REP, json={"filename": "x.csv"}).status_code == 403


@pytest.mark.parametrize("options,field", [({"kind": "orders"}, "kind"), ({"timezone": "Mars/Olympus"}, "timezone"),
                                           ({"mapping": {"Company": "nonsense"}}, "mapping"),
                                           ({"sha256": "abc"}, "sha256"), ({"dry_run": "maybe"}, "dry_run")])
def test_bad_job_options_name_the_field(base, options, field):
    answer = call("POST", base, "/v1/imports", json={"filename": "x.csv", **options})
    assert answer.status_code == 400 and field in answer.json()["fields"], answer.text


def test_bad_uploads_are_refused_and_unreadable_files_fail_with_the_reason(base):
    def new_job(**options):
        return call("POST", base, "/v1/imports", json={"filename": "x.csv", **options}).json()["id"]
    empty = call("PUT", base, f"/v1/imports/{new_job()}/file", data=b"")
    assert empty.status_code == 400 and "file" in empty.json()["fields"]
    wrong = call("PUT", base, f"/v1/imports/{new_job(sha256='0' * 64)}/file", data=b"external_id,company\n")
    assert wrong.status_code == 400 and "SHA-256" in wrong.json()["message"]
    assert call("PUT", base, "/v1/imports/imp_nope/file", data=b"a").status_code == 404
    not_a_workbook = io.BytesIO()
    with zipfile.ZipFile(not_a_workbook, "w") as archive:
        archive.writestr("hello.txt", "a zip, but no workbook inside")
    for content, reason in ((not_a_workbook.getvalue(), "xlsx"), (b"name;age\nAnn;3\n", "cannot tell"),
                            (bytes(range(128, 256)) * 50, "neither UTF-8 nor GBK")):
        job_id = new_job()
        assert call("PUT", base, f"/v1/imports/{job_id}/file", data=content).status_code == 202
        job = eventually(lambda: (j := call("GET", base, f"/v1/imports/{job_id}").json())["status"] == "failed" and j,
                         f"the job of {content[:10]!r} to fail")
        assert reason in job["error"], job["error"]
