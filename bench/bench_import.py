"""Bulk import on RabbitMQ + PostgreSQL, end to end, next to PostgreSQL's own COPY (issue 11 item 6).

    python bench/bench_import.py [--customers 1000] [--purchases 10000] [--interactions 10000] [--full]
                                 [--skip-xlsx] [--skip-settle] [--skip-floor] [--json PATH]

On CRM_AMQP_URI and <SERVICE>_DATABASE_URL if set, else on a private RabbitMQ + PostgreSQL (scripts/infra.sh).
The four services run as processes (python -m crm serve NAME); a few reps are registered through POST /v1/reps;
realistic customers, purchases and interactions files are generated as CSV and as .xlsx (openpyxl write-only),
one data set per format (its own external ids, so the second is imported, not "unchanged"), and imported with
the real CLI as a subprocess (python -m crm import FILE --quiet), one file after the other. Measured: rows/s per
kind and format (the CLI's wall time; the job's own created -> finished too), the time until every service that
consumes events (customers, followups, alerts, reports) applied all the events the import caused, the peak RSS
of each importer subprocess (wait4 ru_maxrss) and of the services (VmHWM, and VmRSS sampled per phase), and the
floor: COPY of the same CSV files into plain tables of a scratch database. bench/README.md has the targets.
"""
import argparse
import csv
import json
import os
import random
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from datetime import date, datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported with the service classes

from sqlalchemy import func, select, text  # noqa: E402

from bench.benchlib import (  # noqa: E402
    PROCESSED, ROOT, broker, consumed_events, migrate, private_infra, queue_depth, start_service, stop_service,
    write_json)
from crm_common.auth import issue_token  # noqa: E402
from crm_common.config import DEV_SECRET, SERVICES, database_url, env  # noqa: E402
from crm_common.db import make_engine, utc  # noqa: E402
from crm_common.events import REGISTRY  # noqa: E402

FULL = {"customers": 100_000, "purchases": 1_000_000, "interactions": 1_000_000}
TARGETS = {"settled_s_at_full_size": 600, "importer_rss_mb": 300}
KINDS = ("customers", "purchases", "interactions")
MB = 1024 * 1024

# ------------------------------------------------------------------ realistic data

TEAMS = ("华东销售部", "华南销售部", "华北销售部", "大客户部")
REP_NAMES = ("zhangwei", "wangfang", "lina", "liuyang", "chenjing", "yangli", "zhaolei", "huangmin", "zhoujie",
             "wuhao", "xuting", "sunqiang", "majun", "zhuyan", "huxin", "guolin", "heping", "linfeng", "luoyi",
             "gaoyuan")
CITIES = ("上海", "北京", "深圳", "广州", "杭州", "苏州", "南京", "成都", "武汉", "天津", "宁波", "青岛")
CITIES_EN = ("Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Suzhou", "Nanjing", "Chengdu")
WORDS = ("华信", "恒通", "瑞丰", "金石", "宏达", "新锐", "博远", "鼎盛", "嘉禾", "安捷", "联创", "天成", "汇智", "中科")
TRADES = (("贸易", "批发零售"), ("精密机械", "制造业"), ("电子科技", "电子"), ("医疗器械", "医疗"), ("物流", "物流"),
          ("食品", "快消"), ("软件", "IT服务"), ("建材", "建筑"), ("化工", "化工"), ("服装", "纺织服装"))
EN_TRADES = (("Precision Parts", "Manufacturing"), ("Trading", "Wholesale"), ("Logistics", "Logistics"),
             ("Medical Devices", "Healthcare"), ("Software", "IT Services"))
CHANNELS = ("展会", "online", "转介绍", "cold call", "partner", "广告", "event", "其他", "官网", "代理商", "Referral")
TAGS = ("VIP", "重点客户", "华东", "制造", "年框", "潜力", "老客户", "渠道", "key account", "export")
ROLES = ("采购经理", "总经理", "财务总监", "CTO", "Purchasing Manager", "运营总监", "行政主管")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "强", "军", "洋", "艳", "杰", "涛", "明", "超", "秀英", "建华", "志强")
NOTES = ("年度框架协议客户", "春节前需回访", "对价格敏感，注意报价策略", "Prefers email; English-speaking buyer",
         "采购周期约一个季度", "上次投诉已处理\n需持续关注交付时间", "")
KIND_WORDS = {"call": ("call", "电话", "phone"), "message": ("微信", "wechat", "message"), "email": ("email", "邮件"),
              "visit": ("拜访", "visit", "上门"), "meeting": ("meeting", "会议"), "survey": ("回访", "survey"),
              "complaint": ("投诉", "complaint")}
KIND_WEIGHTS = {"call": 35, "message": 25, "email": 10, "visit": 12, "meeting": 8, "survey": 5, "complaint": 2}
OUTCOME_WORDS = {"reached": ("reached", "已接通", "联系上"), "no_answer": ("未接通", "no answer"),
                 "positive": ("有意向", "positive"), "neutral": ("一般", "neutral"), "negative": ("无意向", "negative"),
                 "declined": ("拒绝", "declined"), "open": ("待处理", "open"), "resolved": ("已解决", "resolved")}
OUTCOME_WEIGHTS = {"reached": 35, "no_answer": 20, "positive": 15, "neutral": 12, "negative": 5, "declined": 5}
SUMMARIES = ("确认下季度采购计划", "客户询问新品报价，已发送资料", "跟进合同续签事宜", "电话未接通，稍后再联系",
             "Discussed delivery schedule for the next order", "客户反馈交货延迟，已协调物流", "介绍新产品线，客户有兴趣",
             "满意度回访", "安排下周上门演示", "")

# the headers each format's files carry: CSV the template's names, .xlsx what a Chinese Excel user calls them
HEADERS = {
    "csv": {
        "customers": ("external_id", "company", "industry", "source_channel", "owner", "team", "tags", "notes",
                      "contact_name", "contact_role", "contact_phone", "contact_email", "contact_is_decision_maker",
                      "birthday", "contract_anniversary"),
        "purchases": ("customer", "amount", "currency", "purchased_at", "invoice_ref"),
        "interactions": ("customer", "rep", "kind", "outcome", "occurred_at", "summary", "satisfaction"),
    },
    "xlsx": {
        "customers": ("客户编号", "客户名称", "行业", "客户来源", "负责人", "团队", "标签", "备注", "联系人", "职位",
                      "手机", "邮箱", "是否决策人", "生日", "签约日期"),
        "purchases": ("客户编号", "金额", "币种", "成交日期", "发票号"),
        "interactions": ("客户编号", "跟进人", "跟进方式", "跟进结果", "跟进时间", "跟进内容", "满意度"),
    },
}


def make_reps(count: int, tag: str) -> list[dict]:
    return [{"id": f"{REP_NAMES[k % len(REP_NAMES)]}{k // len(REP_NAMES) or ''}-{tag}",
             "name": f"{SURNAMES[k % len(SURNAMES)]}{GIVEN[k % len(GIVEN)]}", "team": TEAMS[k % len(TEAMS)],
             "email": f"{REP_NAMES[k % len(REP_NAMES)]}{k}.{tag}@sales.example.cn"} for k in range(count)]


def _day_text(rng, value: date) -> str:
    pick = rng.random()
    if pick < 0.6:
        return value.isoformat()
    if pick < 0.9:
        return f"{value.year}/{value.month}/{value.day}"
    return f"{value.year}年{value.month}月{value.day}日"


def customer_rows(fmt: str, n: int, reps: list[dict], prefix: str, seed: int):
    """(typed values; owner rep) per customer; CSV cells are written as people type them, .xlsx as typed cells."""
    rng = random.Random(seed)
    for k in range(n):
        rep = reps[k % len(reps)] if rng.random() < 0.7 else rng.choice(reps)
        if rng.random() < 0.8:
            trade, industry = rng.choice(TRADES)
            company = f"{rng.choice(CITIES)}{rng.choice(WORDS)}{trade}有限公司"
        else:
            trade, industry = rng.choice(EN_TRADES)
            brand = rng.choice(("Hengtong", "Ruifeng", "Jinshi", "Boyuan"))
            company = f"{rng.choice(CITIES_EN)} {brand} {trade} Co., Ltd."
        has_contact = rng.random() < 0.85
        person = f"{rng.choice(SURNAMES)}{rng.choice(GIVEN)}"
        birthday = date(rng.randrange(1960, 1996), rng.randrange(1, 13), rng.randrange(1, 29))
        anniversary = date(rng.randrange(2015, 2026), rng.randrange(1, 13), rng.randrange(1, 29))
        yes = rng.random() < 0.4
        cells = {
            "external_id": f"{prefix}{k + 1:07d}", "company": company,
            "industry": industry if rng.random() < 0.9 else "",
            "source_channel": rng.choice(CHANNELS) if rng.random() < 0.8 else "",
            "owner": rep["id"] if rng.random() < 0.6 else rep["email"].upper() if rng.random() < 0.1 else rep["email"],
            "team": rep["team"] if rng.random() < 0.5 else "",
            "tags": "、".join(rng.sample(TAGS, rng.randrange(0, 3))) if fmt == "xlsx" else
                    rng.choice((",", "、", ";")).join(rng.sample(TAGS, rng.randrange(0, 3))),
            "notes": rng.choice(NOTES),
            "contact_name": person if has_contact else "",
            "contact_role": rng.choice(ROLES) if has_contact and rng.random() < 0.8 else "",
            "contact_phone": (f"+86 1{rng.randrange(30, 90)} {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}"
                              if rng.random() < 0.7 else f"021-{rng.randrange(5000, 6999)} {rng.randrange(1000, 9999)}")
                             if has_contact else "",
            "contact_email": f"contact{k}.{prefix.lower()}@client{k % 997}.example.com"
                             if has_contact and rng.random() < 0.6 else "",
            "contact_is_decision_maker": (("是", "yes", "Y") if yes else ("否", "no", "N"))[rng.randrange(3)]
                                         if has_contact else "",
            "birthday": birthday if has_contact and rng.random() < 0.3 else None,
            "contract_anniversary": anniversary if rng.random() < 0.5 else None,
        }
        if fmt == "csv":
            for field in ("birthday", "contract_anniversary"):
                cells[field] = _day_text(rng, cells[field]) if cells[field] else ""
        yield [cells[f] for f in HEADERS["csv"]["customers"]], rep


def _past(rng, now: datetime, days: int = 3 * 365) -> datetime:
    """A moment in the last `days`, at least two days ago (never in the future in any time zone), whole minutes."""
    moment = now - timedelta(days=2) - timedelta(minutes=rng.randrange(days * 24 * 60))
    return moment.replace(second=0, microsecond=0, tzinfo=None)


def purchase_rows(fmt: str, m: int, n: int, prefix: str, tag: str, seed: int, now: datetime):
    rng = random.Random(seed + 1)
    for k in range(m):
        customer = int(n * rng.random() ** 2)  # some customers buy much more often than others
        currency = "CNY" if rng.random() < 0.75 else "USD" if rng.random() < 0.6 else "EUR"
        amount = round(rng.lognormvariate(8.5 if currency == "CNY" else 6.5, 1.1) + 1, 2)
        when = _past(rng, now)
        invoice = f"INV{tag}-{prefix}{k + 1:08d}"
        if fmt == "csv":  # an ERP export: plain numbers, ISO date-times (what COPY takes as they are)
            yield [f"{prefix}{customer + 1:07d}", f"{amount:.2f}", currency,
                   when.strftime("%Y-%m-%d %H:%M:%S") if rng.random() < 0.8 else when.strftime("%Y-%m-%d"), invoice]
        else:
            yield [f"{prefix}{customer + 1:07d}", amount, currency, when, invoice]


def interaction_rows(fmt: str, k_rows: int, customers: list[dict], prefix: str, seed: int, now: datetime):
    """customers: per customer its owner rep; the rep column is the owner (by id or e-mail), another rep of the
    team, or left empty (the importer takes the owner)."""
    rng = random.Random(seed + 2)
    kinds, kind_w = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    outcomes, outcome_w = list(OUTCOME_WEIGHTS), list(OUTCOME_WEIGHTS.values())
    by_team = {}
    for rep in {r["id"]: r for r in customers}.values():
        by_team.setdefault(rep["team"], []).append(rep)
    for k in range(k_rows):
        index = int(len(customers) * rng.random() ** 1.5)
        owner = customers[index]
        pick = rng.random()
        rep = "" if pick < 0.3 else owner["id"] if pick < 0.7 else owner["email"] if pick < 0.85 else \
            rng.choice(by_team[owner["team"]])["id"]
        kind = rng.choices(kinds, kind_w)[0]
        outcome = rng.choice(("open", "resolved")) if kind == "complaint" else \
            "reached" if kind == "survey" else rng.choices(outcomes, outcome_w)[0]
        satisfaction = rng.randrange(1, 6) if kind == "survey" or rng.random() < 0.1 else None
        when = _past(rng, now, 720)
        summary = rng.choice(SUMMARIES)
        if fmt == "csv":
            when_text = when.strftime("%Y-%m-%d %H:%M") if rng.random() < 0.7 else \
                f"{when.year}/{when.month}/{when.day} {when.hour}:{when.minute:02d}"
            yield [f"{prefix}{index + 1:07d}", rep, rng.choice(KIND_WORDS[kind]), rng.choice(OUTCOME_WORDS[outcome]),
                   when_text, summary, "" if satisfaction is None else str(satisfaction)]
        else:
            yield [f"{prefix}{index + 1:07d}", rep or None, rng.choice(KIND_WORDS[kind]),
                   rng.choice(OUTCOME_WORDS[outcome]), when, summary or None, satisfaction]


def write_file(path: str, fmt: str, headers, rows) -> int:
    count = 0
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(headers)
            for row in rows:
                writer.writerow(row)
                count += 1
    else:
        from openpyxl import Workbook
        book = Workbook(write_only=True)
        sheet = book.create_sheet("Sheet1")
        sheet.append(list(headers))
        for row in rows:
            sheet.append([None if cell == "" else cell for cell in row])
            count += 1
        book.save(path)
    return count


def generate(fmt: str, data_dir: str, sizes: dict, reps: list[dict], tag: str, seed: int, now: datetime) -> dict:
    """The three files of one format, each its own data set (customers KH<tag><format letter>...)."""
    prefix = f"KH{tag}{fmt[0].upper()}"
    owners, files = [], {}
    seed += 0 if fmt == "csv" else 1000

    def customers():
        for row, rep in customer_rows(fmt, sizes["customers"], reps, prefix, seed):
            owners.append(rep)
            yield row

    makers = {"customers": customers,
              "purchases": lambda: purchase_rows(fmt, sizes["purchases"], sizes["customers"], prefix, tag, seed, now),
              "interactions": lambda: interaction_rows(fmt, sizes["interactions"], owners, prefix, seed, now)}
    for kind in KINDS:
        path = os.path.join(data_dir, f"{kind}-{tag}.{fmt}")
        started = time.perf_counter()
        rows = write_file(path, fmt, HEADERS[fmt][kind], makers[kind]())
        files[kind] = {"path": path, "rows": rows, "bytes": os.path.getsize(path),
                       "generate_s": round(time.perf_counter() - started, 2)}
        print(f"  {fmt} {kind}: {rows:,} rows, {os.path.getsize(path) / MB:.1f} MB in "
              f"{files[kind]['generate_s']:.1f}s", flush=True)
    return files


def parse_rate(files: dict) -> dict:
    """Rows/s of crm_common.tabular.Table over each file in this process: what reading the format costs alone."""
    figures = {}
    for kind, spec in files.items():
        from crm_common.tabular import Table
        started = time.perf_counter()
        rows = sum(1 for _ in Table(spec["path"]).rows())
        seconds = time.perf_counter() - started
        figures[kind] = {"rows": rows, "seconds": round(seconds, 3), "per_s": round(rows / seconds)}
    return figures


# ------------------------------------------------------------------ the floor: COPY into plain tables

FLOOR_TABLES = {
    "purchases": "customer text, amount numeric(14,2), currency char(3), purchased_at timestamp, invoice_ref text",
    "customers_text": ", ".join(f"{c} text" for c in HEADERS["csv"]["customers"]),
    "purchases_text": ", ".join(f"{c} text" for c in HEADERS["csv"]["purchases"]),
    "interactions_text": ", ".join(f"{c} text" for c in HEADERS["csv"]["interactions"]),
}


def bench_floor(files: dict) -> dict:
    """COPY each CSV into a plain table (no index, no constraint) of a scratch database: purchases typed, and every
    kind as text. The scratch database comes from CRM_PG_ADMIN_URL (dropped after), else a scratch schema in the
    customers database."""
    import psycopg2
    admin_url, scratch = env("CRM_PG_ADMIN_URL"), f"bench_import_{os.getpid()}"
    if admin_url:
        admin = psycopg2.connect(admin_url)
        admin.autocommit = True
        admin.cursor().execute(f"CREATE DATABASE {scratch}")
        dsn, where = re.sub(r"(//[^/]*)/[^/?]*", f"\\1/{scratch}", admin_url, count=1), f"database {scratch}"
    else:
        dsn, where = database_url("customers").replace("postgresql+psycopg2://", "postgresql://"), \
            f"schema {scratch} of the customers database"
    figures = {"where": where}
    try:
        conn = psycopg2.connect(dsn)
        cursor = conn.cursor()
        if not admin_url:
            cursor.execute(f"CREATE SCHEMA {scratch}; SET search_path TO {scratch}")
        for table, columns in FLOOR_TABLES.items():
            kind = table.removesuffix("_text")
            path = files[kind]["path"]
            cursor.execute(f"CREATE TABLE floor_{table} ({columns})")
            conn.commit()
            started = time.perf_counter()
            with open(path, encoding="utf-8") as handle:
                cursor.copy_expert(f"COPY floor_{table} FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
            conn.commit()
            seconds = time.perf_counter() - started
            cursor.execute(f"SELECT count(*) FROM floor_{table}")
            rows = cursor.fetchone()[0]
            figures[table] = {"rows": rows, "seconds": round(seconds, 3), "per_s": round(rows / seconds),
                              "typed": not table.endswith("_text")}
            print(f"  COPY {kind}{' (text columns)' if table.endswith('_text') else ' (typed)'}: {rows:,} rows in "
                  f"{seconds:.2f}s, {rows / seconds:,.0f} rows/s", flush=True)
        if not admin_url:
            cursor.execute(f"DROP SCHEMA {scratch} CASCADE")
            conn.commit()
        conn.close()
    finally:
        if admin_url:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {scratch}")
            admin.close()
    return figures


# ------------------------------------------------------------------ memory of processes

def proc_status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_snapshot(processes: dict, infra_dir: str | None = None) -> dict:
    """CPU seconds (user + system, with reaped children) so far: each service; PostgreSQL and RabbitMQ (the
    processes whose command line names `infra_dir`, and the postmaster's children; every postgres / beam.smp
    process when the infrastructure is not the bench's own); this bench; and the whole machine (busy time of all
    CPUs in /proc/stat), so what other work on the machine took ("others") can be told apart."""
    tick, totals = os.sysconf("SC_CLK_TCK"), {}

    def of(pid):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                raw = handle.read()
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().decode(errors="replace")
        except OSError:
            return None, 0, "", 0.0
        comm, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        return comm, int(rest[1]), command, sum(int(v) for v in rest[11:15]) / tick

    for name, process in processes.items():
        totals[name] = of(process.pid)[3]
    infra = [(int(pid), *of(pid)) for pid in filter(str.isdigit, os.listdir("/proc"))]
    infra = [row for row in infra if row[1] in ("postgres", "beam.smp")]
    ours = {pid for pid, _, _, command, _ in infra if infra_dir is None or infra_dir in command}
    for pid, comm, ppid, _, seconds in infra:
        if pid in ours or ppid in ours:
            key = "postgresql" if comm == "postgres" else "rabbitmq"
            totals[key] = totals.get(key, 0.0) + seconds
    usage = resource.getrusage(resource.RUSAGE_SELF)
    totals["bench"] = usage.ru_utime + usage.ru_stime
    with open("/proc/stat") as handle:
        jiffies = [int(v) for v in handle.readline().split()[1:]]
    totals["machine"] = (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / tick  # all but idle and iowait
    return totals


def cpu_delta(before: dict, after: dict, importer: float = 0.0) -> dict:
    """Seconds per process group between two snapshots; "others" is the machine's busy time that none of them
    (nor the importer subprocess) accounts for: someone else's work on the machine, the figures' noise."""
    delta = {k: round(after[k] - before.get(k, 0.0), 1) for k in after}
    delta["others"] = round(delta["machine"] - sum(v for k, v in delta.items() if k != "machine") - importer, 1)
    return delta


class RssSampler(threading.Thread):
    """VmRSS of the service processes every half second; the peak per phase."""

    def __init__(self, processes: dict):
        super().__init__(daemon=True)
        self.processes, self.phase, self.peaks, self.stopping = processes, "start", {}, threading.Event()

    def run(self):
        while not self.stopping.wait(0.5):
            for name, process in self.processes.items():
                kb = proc_status_kb(process.pid, "VmRSS")
                if kb is not None:
                    peaks = self.peaks.setdefault(self.phase, {})
                    peaks[name] = max(peaks.get(name, 0), kb)

    def peak_mb(self, phase: str) -> dict:
        return {name: round(kb / 1024, 1) for name, kb in self.peaks.get(phase, {}).items()}


# ------------------------------------------------------------------ settling: every consumer applied every event

def consumed_keys() -> dict[str, set[str]]:
    """Per service, the routing keys of the events it consumes (every version)."""
    return {name: {d.routing_key for (event, _), d in REGISTRY.items() if event in consumed_events(name)}
            for name in SERVICES}


class Settling:
    """Counts, per service: events it should apply (rows of the four outboxes since the baseline whose routing
    key it consumes), events it applied (processed_events), dead letters; and the outboxes' unpublished rows."""

    def __init__(self, engines: dict, uri: str):
        self.engines, self.uri, self.keys = engines, uri, consumed_keys()
        self.base_outbox, self.seen_outbox, self.by_key = {}, {}, {}
        self.base_applied, self.base_dead = {}, {}
        self.baseline()

    def _scalar(self, name: str, sql: str, **params):
        with self.engines[name].connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def dead(self) -> dict:
        connection = broker(self.uri)
        try:
            return {name: queue_depth(connection, f"{name}.dead-letter") or 0 for name in SERVICES}
        finally:
            connection.close()

    def baseline(self) -> None:
        for name in SERVICES:
            top = self._scalar(name, "SELECT coalesce(max(id), 0) FROM outbox")
            self.base_outbox[name] = self.seen_outbox[name] = top
            self.base_applied[name] = self._scalar(name, "SELECT count(*) FROM processed_events")
        self.base_dead, self.by_key = self.dead(), {}
        self.started = datetime.now(timezone.utc)

    def _count_outboxes(self, since: dict) -> dict:
        """Rows per routing key above `since` (per database): new rows only, so polling stays cheap."""
        counts = {}
        for name in SERVICES:
            top = self._scalar(name, "SELECT coalesce(max(id), 0) FROM outbox")
            if top > since[name]:
                with self.engines[name].connect() as conn:
                    for key, count in conn.execute(text(
                            "SELECT routing_key, count(*) FROM outbox WHERE id > :lo AND id <= :hi GROUP BY 1"),
                            {"lo": since[name], "hi": top}):
                        counts[key] = counts.get(key, 0) + count
            since[name] = top
        return counts

    def poll(self, recount: bool = False) -> dict:
        if recount:  # rows committed out of id order are missed by the incremental count: count all again
            self.seen_outbox, self.by_key = dict(self.base_outbox), {}
        for key, count in self._count_outboxes(self.seen_outbox).items():
            self.by_key[key] = self.by_key.get(key, 0) + count
        dead = self.dead()
        state = {"unpublished": {n: self._scalar(n, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
                                 for n in SERVICES}, "services": {}}
        for name in SERVICES:
            state["services"][name] = {
                "expected": sum(self.by_key.get(key, 0) for key in self.keys[name]),
                "applied": self._scalar(name, "SELECT count(*) FROM processed_events") - self.base_applied[name],
                "dead_lettered": dead[name] - self.base_dead[name]}
        state["emitted"] = sum(self.by_key.values())
        return state

    @staticmethod
    def complete(state: dict) -> bool:
        return not any(state["unpublished"].values()) and all(
            s["applied"] + s["dead_lettered"] >= s["expected"] for s in state["services"].values())

    def wait(self, started: datetime, timeout: float, stall: float, interval: float, label: str) -> dict:
        """Poll until complete (confirmed by a full recount), or nothing moved for `stall` s, or `timeout` s."""
        deadline, moved, last, state, outcome = time.monotonic() + timeout, time.monotonic(), None, None, None
        next_print = time.monotonic() + 30
        while outcome is None:
            state = self.poll()
            marker = (state["emitted"], tuple(state["unpublished"].values()),
                      tuple((s["applied"], s["dead_lettered"]) for s in state["services"].values()))
            if marker != last:
                last, moved = marker, time.monotonic()
            if self.complete(state) and self.complete(state := self.poll(recount=True)):
                outcome = "settled"
            elif time.monotonic() - moved > stall:
                outcome = f"stalled (nothing moved for {stall:.0f}s)"
            elif time.monotonic() > deadline:
                outcome = f"timed out after {timeout:.0f}s"
            else:
                if time.monotonic() > next_print:
                    behind = {n: s["expected"] - s["applied"] - s["dead_lettered"]
                              for n, s in state["services"].items()}
                    print(f"    {label}: waiting; events behind per service {behind}, unpublished "
                          f"{state['unpublished']}", flush=True)
                    next_print = time.monotonic() + 30
                time.sleep(interval)
        for name, figures in state["services"].items():  # when each applied its last event of the phase
            with self.engines[name].connect() as conn:
                first, last_at = conn.execute(select(func.min(PROCESSED.c.processed_at),
                                                     func.max(PROCESSED.c.processed_at))
                                              .where(PROCESSED.c.processed_at >= started)).one()
                by_type = dict(conn.execute(select(PROCESSED.c.event_type, func.count())
                                            .where(PROCESSED.c.processed_at >= started)
                                            .group_by(PROCESSED.c.event_type)).all())
            first, last_at = utc(first), utc(last_at)
            figures.update(first_applied=first, last_applied=last_at, applied_by_type=by_type,
                           last_applied_s=round((last_at - started).total_seconds(), 2) if last_at else None,
                           apply_per_s=round(figures["applied"] / (last_at - first).total_seconds())
                           if first and last_at and last_at > first else None)
        lasts = [s["last_applied"] for s in state["services"].values() if s["last_applied"]]
        state.update(outcome=outcome, settled=outcome == "settled",
                     emitted_by_key=dict(sorted(self.by_key.items())),
                     settled_s=round((max(lasts) - started).total_seconds(), 2) if lasts and outcome == "settled"
                     else None)
        return state


# ------------------------------------------------------------------ the API and the CLI

def api_call(base: str, token: str, method: str, path: str, body=None):
    request = urllib.request.Request(base + path, json.dumps(body).encode() if body is not None else None,
                                     {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                                     method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def run_cli(path: str, base: str, token: str, zone: str, run_dir: str) -> dict:
    """python -m crm import PATH --quiet as a subprocess; its wall time, exit code, output and peak RSS (wait4)."""
    log = os.path.join(run_dir, f"import-{os.path.basename(path)}.log")
    errors = path + ".rejected.csv"
    command = [sys.executable, "-m", "crm", "import", path, "--api", base, "--token", token, "--quiet",
               "--timezone", zone, "--errors", errors]
    started = time.perf_counter()
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    with open(log, encoding="utf-8", errors="replace") as handle:
        output = handle.read().strip()
    shown = " ".join(c if " " not in c else repr(c) for c in command).replace(token, "$TOKEN")
    return {"command": shown, "exit": process.returncode, "cli_s": round(seconds, 3),
            "importer_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
            "importer_cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "output": output[-2000:], "log": log,
            "rejected_file": errors if os.path.exists(errors) else None}


def job_of(base: str, token: str, filename: str) -> dict | None:
    jobs = [j for j in api_call(base, token, "GET", "/v1/imports?limit=200")["items"] if j["filename"] == filename]
    return jobs[0] if jobs else None


def import_format(fmt: str, files: dict, base: str, token: str, zone: str, run_dir: str, processes: dict,
                  infra_dir: str | None) -> dict:
    figures = {}
    for kind in KINDS:
        spec = files[kind]
        cpu = cpu_snapshot(processes, infra_dir)
        result = run_cli(spec["path"], base, token, zone, run_dir)
        result["cpu_s"] = cpu_delta(cpu, cpu_snapshot(processes, infra_dir), result["importer_cpu_s"])
        job = job_of(base, token, os.path.basename(spec["path"])) or {}
        server_s = None
        if job.get("finished_at") and job.get("created_at"):
            server_s = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])
                        ).total_seconds()
        result.update(rows=spec["rows"], bytes=spec["bytes"], per_s=round(spec["rows"] / result["cli_s"]),
                      job={k: job.get(k) for k in ("id", "status", "kind", "rows_total", "rows_processed", "imported",
                                                   "unchanged", "rejected", "error", "ignored_columns", "created_at",
                                                   "finished_at")},
                      server_s=server_s and round(server_s, 3),
                      server_per_s=round(spec["rows"] / server_s) if server_s else None)
        if result["rejected_file"]:
            with open(result["rejected_file"], encoding="utf-8-sig", errors="replace") as handle:
                result["rejected_sample"] = [line.rstrip("\n") for _, line in zip(range(11), handle)]
        figures[kind] = result
        print(f"  {fmt} {kind}: {spec['rows']:,} rows in {result['cli_s']:.1f}s = {result['per_s']:,}/s "
              f"(job {server_s and round(server_s, 1)}s), exit {result['exit']}, importer peak RSS "
              f"{result['importer_maxrss_mb']} MB; {result['output'].splitlines()[-1] if result['output'] else ''}",
              flush=True)
        print(f"    CPU seconds meanwhile: {result['cpu_s']}, importer {result['importer_cpu_s']}", flush=True)
    return figures


# ------------------------------------------------------------------ services

def wait_topology(uri: str, timeout: float = 60) -> None:
    """Every service's partition queues declared (events published before would not reach it)."""
    partitions, connection = int(env("CRM_EVENT_PARTITIONS", "4")), broker(uri)
    deadline = time.monotonic() + timeout
    try:
        while any(queue_depth(connection, f"{name}.events.p{i}") is None
                  for name in SERVICES for i in range(partitions)):
            if time.monotonic() > deadline:
                raise RuntimeError("the services' event queues were not declared within a minute")
            time.sleep(0.5)
    finally:
        connection.close()


def log_problems(run_dir: str) -> dict:
    """Per service log: ERROR/CRITICAL lines and tracebacks, counted, the first few kept."""
    problems = {}
    for name in SERVICES:
        path = os.path.join(run_dir, f"{name}.log")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
        hits = [i for i, line in enumerate(lines) if re.search(r"\b(ERROR|CRITICAL)\b|^Traceback", line)]
        if hits:
            problems[name] = {"lines": len(hits), "log": path,
                              "first": [lines[i][:400] for i in hits[:5]],
                              "excerpt": "\n".join(lines[hits[0]:hits[0] + 25])[:4000]}
    return problems


# ------------------------------------------------------------------ report

def report(figures: dict) -> dict:
    rows, verdicts = [], {}
    floor = figures.get("floor", {})
    floor_of = {"customers": floor.get("customers_text"), "purchases": floor.get("purchases"),
                "interactions": floor.get("interactions_text")}
    sizes = figures["sizes"]
    total = sum(sizes.values())
    full_total = sum(FULL.values())
    scale = total / full_total

    def add(label, value, ratio="", target="", verdict=None):
        rows.append((label, value, ratio, target, {True: "PASS", False: "MISS", None: ""}[verdict]))

    for table, result in floor.items():
        if isinstance(result, dict) and "per_s" in result:
            add(f"floor: COPY {table.replace('_text', ' (text columns)')}", f"{result['per_s']:,}/s")
    if "error" in floor:
        add(f"floor FAILED: {floor['error'][:60]}", "-")
    for fmt, rates in figures.get("parse", {}).items():
        add(f"{fmt}: files read in-process (tabular.Table), rows/s",
            " / ".join(f"{r['per_s']:,}" for r in rates.values()), "", "customers / purchases / interactions")
    for fmt, phase in figures.get("formats", {}).items():
        if "error" in phase:
            add(f"{fmt}: FAILED {phase['error'][:60]}", "-")
        for kind, result in phase.get("imports", {}).items():
            base = floor_of.get(kind) or {}
            ratio = result["per_s"] / base["per_s"] if base.get("per_s") else None
            job = result.get("job") or {}
            bad = result["exit"] != 0 or job.get("status") != "done" or job.get("imported") != result["rows"]
            note = "" if not bad else (f" (exit {result['exit']}, {job.get('status')}, imported "
                                       f"{job.get('imported')}, rejected {job.get('rejected')})")
            shown = "" if not ratio else f"{ratio:.3f}" if ratio >= 0.01 else f"1/{1 / ratio:,.0f}"
            add(f"{fmt} {kind}: rows/s, CLI wall{note}", f"{result['per_s']:,}/s", shown, "of COPY" if ratio else "")
        settle = phase.get("settle")
        if settle:
            limit = TARGETS["settled_s_at_full_size"] * scale
            value = settle.get("settled_s")
            ok = value is not None and value <= limit
            projected = value / scale if value is not None else None
            verdicts[f"{fmt}_settled"] = {"value_s": value, "target_s": round(limit, 1), "rows": total,
                                          "full_rows": full_total, "projected_full_s": projected and round(projected),
                                          "pass": ok}
            label = f"{fmt}: import start -> all settled ({total:,} rows)"
            failed = [k for k, r in phase.get("imports", {}).items() if (r.get("job") or {}).get("status") != "done"]
            if failed:
                label += f" [imports failed: {', '.join(failed)}]"
            elif not settle.get("settled"):
                label += f" [{settle.get('outcome')}]"
            add(label, "-" if value is None else f"{value:,.1f} s", "",
                f"<= {limit:,.0f} s (600 s x {scale:.3f})", ok)
            if value is not None and phase.get("import_s") is not None:
                add(f"{fmt}:   of which after the last file's import finished", f"{value - phase['import_s']:,.1f} s")
            if projected:
                add(f"{fmt}:   the same, projected linearly to the full {full_total:,} rows", f"{projected:,.0f} s")
            for name, s in settle.get("services", {}).items():
                add(f"{fmt}:   {name} applied {s['applied']:,} of {s['expected']:,} events"
                    f"{', dead ' + str(s['dead_lettered']) if s['dead_lettered'] else ''}",
                    "-" if s.get("last_applied_s") is None else f"{s['last_applied_s']:,.1f} s",
                    "", f"({s['apply_per_s']:,}/s, import-paced)" if s.get("apply_per_s") else "")
        rss = [r["importer_maxrss_mb"] for r in phase.get("imports", {}).values()]
        if rss:
            ok = max(rss) < TARGETS["importer_rss_mb"]
            verdicts[f"{fmt}_importer_rss"] = {"value_mb": max(rss), "target_mb": TARGETS["importer_rss_mb"],
                                               "pass": ok}
            add(f"{fmt}: importer peak RSS (max of the 3 files)", f"{max(rss):,.1f} MB", "",
                f"< {TARGETS['importer_rss_mb']} MB", ok)
        peaks = phase.get("service_rss_peak_mb", {})
        if peaks.get("customers"):
            add(f"{fmt}: customers service peak RSS (sampled)", f"{peaks['customers']:,.1f} MB")
    for name, mb in figures.get("service_vmhwm_mb", {}).items():
        add(f"{name} service VmHWM (whole run)", f"{mb:,.1f} MB")
    print(f"\nsize run: {sizes['customers']:,} customers, {sizes['purchases']:,} purchases, "
          f"{sizes['interactions']:,} interactions per format ({scale:.3f} of the issue's full size); "
          f"the 10-minute target is scaled by that fraction")
    print(f"\n{'figure':<70}{'value':>14}{'ratio':>10}  {'target':<28}")
    for label, value, ratio, target, verdict in rows:
        print(f"{label:<70}{value:>14}{ratio:>10}  {target:<28}{verdict}")
    return verdicts


# ------------------------------------------------------------------ main

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--purchases", type=int, default=10_000)
    parser.add_argument("--interactions", type=int, default=10_000)
    parser.add_argument("--full", action="store_true", help="the issue's size: 100,000 / 1,000,000 / 1,000,000")
    parser.add_argument("--reps", type=int, help="reps registered first (default customers / 200, 4 to 100)")
    parser.add_argument("--timezone", default="Asia/Shanghai", help="--timezone given to the importer")
    parser.add_argument("--skip-xlsx", action="store_true", help="CSV only")
    parser.add_argument("--skip-csv", action="store_true", help=".xlsx only (the floor still reads CSV files)")
    parser.add_argument("--skip-settle", action="store_true", help="do not wait for the read models after importing")
    parser.add_argument("--skip-floor", action="store_true", help="no COPY floor")
    parser.add_argument("--settle-timeout", type=float, default=1800, help="seconds to wait for settling, at most")
    parser.add_argument("--stall", type=float, default=120, help="give up settling when nothing moved for this long")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between settling polls")
    parser.add_argument("--data-dir", help="where the generated files go (default the run directory)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    args = parser.parse_args()
    sizes = dict(FULL) if args.full else {k: getattr(args, k) for k in KINDS}
    run_dir = os.environ.get("CRM_BENCH_RUN_DIR") or f"/tmp/bench-run-{os.getpid()}"
    data_dir = args.data_dir or os.path.join(run_dir, "files")
    os.makedirs(data_dir, exist_ok=True)
    formats = [f for f, skip in (("csv", args.skip_csv), ("xlsx", args.skip_xlsx)) if not skip]
    tag, now = uuid.uuid4().hex[:4], datetime.now(timezone.utc)
    reps = make_reps(args.reps or max(4, min(100, sizes["customers"] // 200)), tag)
    figures = {"sizes": sizes, "full_size": FULL, "targets": TARGETS, "when": now.isoformat(), "logs": run_dir,
               "formats_run": formats, "reps": len(reps), "timezone": args.timezone, "cpus": os.cpu_count(),
               "formats": {}}
    print(f"generating files in {data_dir}", flush=True)
    files = {fmt: generate(fmt, data_dir, sizes, reps, tag, args.seed, now)
             for fmt in dict.fromkeys(formats + (["csv"] if not args.skip_floor else []))}
    figures["files"] = files
    figures["parse"] = {fmt: parse_rate(specs) for fmt, specs in files.items()}
    for fmt, rates in figures["parse"].items():
        print(f"  read by crm_common.tabular in-process, {fmt}: " +
              ", ".join(f"{k} {r['per_s']:,} rows/s" for k, r in rates.items()), flush=True)
    processes, sampler = {}, None
    with private_infra(run_dir) as private:
        infra_dir = run_dir if private else None
        uri = os.environ["CRM_AMQP_URI"]
        figures.update(broker=uri.split("@")[-1], databases={n: database_url(n).split("@")[-1] for n in SERVICES})
        try:
            if not args.skip_floor:
                print("floor: COPY of the CSV files into plain tables", flush=True)
                try:
                    figures["floor"] = bench_floor(files["csv"])
                except Exception as exc:
                    figures["floor"] = {"error": f"{type(exc).__name__}: {exc}"}
                    print(f"  {figures['floor']}")
            figures["schema_gaps"] = {name: migrate(name, database_url(name)) for name in SERVICES}
            for name in SERVICES:
                processes[name], base = start_service(name, run_dir)
                figures.setdefault("urls", {})[name] = base
            base = figures["urls"]["customers"]
            sampler = RssSampler(processes)
            sampler.start()
            wait_topology(uri)
            token = issue_token(env("CRM_AUTH_SECRET", DEV_SECRET), "admin", "admin")  # announced by benchlib after each service start
            engines = {name: make_engine(database_url(name), pool_size=2) for name in SERVICES}
            settling = Settling(engines, uri)
            for rep in reps:
                api_call(base, token, "POST", "/v1/reps", rep)
            warm = settling.wait(settling.started, 120, 60, 0.5, "reps")
            print(f"{len(reps)} reps registered: {warm['outcome']} in {warm['settled_s']}s", flush=True)
            for fmt in formats:
                phase = figures["formats"][fmt] = {}
                sampler.phase = fmt
                settling.baseline()
                started = settling.started
                print(f"{fmt}: importing with python -m crm import", flush=True)
                phase_cpu = cpu_snapshot(processes, infra_dir)
                try:
                    phase["imports"] = import_format(fmt, files[fmt], base, token, args.timezone, run_dir,
                                                     processes, infra_dir)
                    phase["import_s"] = round((datetime.now(timezone.utc) - started).total_seconds(), 2)
                    importer_cpu = sum(r["importer_cpu_s"] for r in phase["imports"].values())
                    phase["cpu_s_imports"] = cpu_delta(phase_cpu, cpu_snapshot(processes, infra_dir), importer_cpu)
                    phase["cpu_s_imports"]["importers"] = round(importer_cpu, 1)
                    print(f"  {fmt}: CPU seconds over the {phase['import_s']:.0f}s of importing (2 cores: "
                          f"{2 * phase['import_s']:.0f} available): {phase['cpu_s_imports']}", flush=True)
                    if not args.skip_settle:
                        print(f"{fmt}: waiting until every service applied every event", flush=True)
                        cpu = cpu_snapshot(processes, infra_dir)
                        phase["settle"] = settling.wait(started, args.settle_timeout, args.stall, args.poll, fmt)
                        phase["settle"]["cpu_s_after_imports"] = cpu_delta(cpu, cpu_snapshot(processes, infra_dir))
                        s = phase["settle"]
                        print(f"  {fmt}: {s['outcome']}; {s['emitted']:,} events; the last applied "
                              f"{s['settled_s']}s after the first import started (imports took {phase['import_s']}s); "
                              f"CPU s while settling: {s['cpu_s_after_imports']}", flush=True)
                except Exception as exc:
                    phase["error"] = f"{type(exc).__name__}: {exc}"
                    print(f"  {fmt}: {phase['error']}", flush=True)
                phase["service_rss_peak_mb"] = sampler.peak_mb(fmt)
            figures["service_vmhwm_mb"] = {name: round((proc_status_kb(p.pid, "VmHWM") or 0) / 1024, 1)
                                           for name, p in processes.items()}
            for engine in engines.values():
                engine.dispose()
        except Exception as exc:
            figures["error"] = f"{type(exc).__name__}: {exc}"
            print(f"FAILED: {figures['error']}", flush=True)
        finally:
            if sampler:
                sampler.stopping.set()
            for process in processes.values():
                stop_service(process)
            figures["log_problems"] = log_problems(run_dir)
            for name, problem in figures["log_problems"].items():
                print(f"NOTE {name} log: {problem['lines']} ERROR/traceback lines, first: {problem['first'][0]}")
            figures["verdicts"] = report(figures)
            write_json(args.json, figures)


if __name__ == "__main__":
    main()
