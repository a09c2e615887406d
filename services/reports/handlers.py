"""Use cases of the reports service: apply an event to the read models, answer report queries.

Every function takes a unit of work (already entered). Writes: ``apply_event``
(one event, one transaction, the customer's state row locked), ``wipe`` (before a
rebuild). Reads: dashboard, tables, distribution and charts, all from the
``counters`` table through ``SqlCounters`` - never from scans of facts.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Iterable

from sqlalchemy import and_, bindparam, delete, false, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import CrmError, NotFound
from crm_common.events import Event, definition
from services.reports import charts, domain as d
from services.reports.domain import book
from services.reports.domain.counters import CounterKey, Number, STOCK_METRICS
from services.reports.models import (
    READ_MODELS, counters, customer_changes, customer_records, customer_state, dimension_values, infrastructure,
    rep_directory,
)

COUNTER_PK = ("dimension", "dimension_value", "period_kind", "period_start", "metric")
ONE_DAY = timedelta(days=1)


# ================================================================ applying events

def apply_event(uow, event: Event, settings: d.ReportSettings, now: datetime) -> None:
    """Apply one event, already claimed in this unit of work (``store.apply_once``: exactly once)."""
    if event.name in book.DIRECTORY_EVENTS:
        _note_rep(uow.session, event)
        return
    if event.name in book.IGNORED_EVENTS:
        return
    customer_id = event.data["customer_id"]
    # the customer's row is the lock: two events about one customer are applied one after the other,
    # by whichever replica, so each sees the other's book complete
    _lock_customer(uow.session, customer_id, now)
    changes, records = book.items_from_event(event.name, event.id, event.time, event.data)
    session = uow.session
    if changes:
        session.execute(insert(customer_changes), [
            {"event_id": c.id, "customer_id": customer_id, "at": c.at, "rank": c.rank, "sets": c.sets,
             "applied": None} for c in changes])
    for record in records:
        if record.kind == book.ALERT and record.at is None:
            record.at = _known_raise(session, customer_id, record.entity)
    if records:
        session.execute(insert(customer_records), [
            {"record_id": r.id, "customer_id": customer_id, "kind": r.kind, "at": r.at, "entity_id": r.entity,
             "data": r.data, "applied": None} for r in records])
    since = book.reconcile_since(changes, records)
    if since is not None:  # else an acknowledgement of an alert whose raise is unknown: stored, it waits
        alerts = {r.entity for r in records if r.kind == book.ALERT}
        # a timeline change can move every later fact; a fact only later facts of its own kind
        kinds = None if changes else {r.kind for r in records} & set(book.DISTINCT_KINDS)
        timeline = _reconcile(session, customer_id, since, {r.id for r in records}, alerts, settings, kinds)
        if changes:
            _save_state(session, customer_id, timeline, now)


def _dialect(session) -> str:
    return session.get_bind().dialect.name


_IGNORING: dict = {}


def _insert_ignore(session, table, rows: list[dict], keys: list[str]) -> None:
    """INSERT rows, skipping those whose key exists (ON CONFLICT DO NOTHING; one cached statement)."""
    if not rows:
        return
    dialect = _dialect(session)
    if dialect in ("postgresql", "sqlite"):
        if (dialect, table.name) not in _IGNORING:
            module = postgresql if dialect == "postgresql" else sqlite
            _IGNORING[(dialect, table.name)] = module.insert(table).on_conflict_do_nothing(index_elements=keys)
        session.execute(_IGNORING[(dialect, table.name)], rows)
        return
    for row in rows:  # portable fallback
        exists = session.execute(select(*[table.c[k] for k in keys])
                                 .where(*[table.c[k] == row[k] for k in keys])).first()
        if exists is None:
            try:
                with session.begin_nested():
                    session.execute(insert(table).values(**row))
            except IntegrityError:
                pass


def _lock_customer(session, customer_id: str, now: datetime) -> None:
    lock = select(customer_state.c.customer_id).where(customer_state.c.customer_id == customer_id).with_for_update()
    if session.execute(lock).first() is None:  # first event about this customer: create its row, then lock it
        _insert_ignore(session, customer_state, [{"customer_id": customer_id, "known": False, "archived": False,
                                                  "first_seen_at": now, "updated_at": now}], ["customer_id"])
        session.execute(lock).one()


def _known_raise(session, customer_id: str, alert_id: str) -> datetime | None:
    """When the alert was raised, if any event of it seen so far says so (its records are dated by it)."""
    at = session.execute(select(customer_records.c.at).where(
        customer_records.c.customer_id == customer_id, customer_records.c.kind == book.ALERT,
        customer_records.c.entity_id == alert_id, customer_records.c.at.is_not(None)).limit(1)).scalar()
    return utc(at)


def _change(row) -> book.Change:
    return book.Change(row.event_id, utc(row.at), row.rank, row.sets, row.applied)


def _record(row) -> book.Record:
    return book.Record(row.record_id, row.kind, utc(row.at), row.entity_id, row.data, row.applied)


def _reconcile(session, customer_id: str, since: datetime, new_ids: set[str], alert_ids: set[str],
               settings: d.ReportSettings, kinds: set[str] | None = None) -> book.Timeline:
    """Recount the customer's items dated at or after `since` (of `kinds` only, when given) and apply
    the difference; returns the customer's timeline."""
    changes = [_change(r) for r in session.execute(
        select(customer_changes).where(customer_changes.c.customer_id == customer_id))]
    timeline = book.Timeline(changes)
    condition = customer_records.c.at >= since
    if kinds is not None:
        condition = and_(condition, customer_records.c.kind.in_(kinds)) if kinds else false()
    if new_ids:
        condition = or_(condition, customer_records.c.record_id.in_(new_ids))
    if alert_ids:  # acknowledgements that waited for their alert's raise
        condition = or_(condition, and_(customer_records.c.kind == book.ALERT, customer_records.c.at.is_(None),
                                        customer_records.c.entity_id.in_(alert_ids)))
    records = [_record(r) for r in session.execute(
        select(customer_records).where(customer_records.c.customer_id == customer_id, condition))]
    knowledge = book.Knowledge(timeline, ack_sla=settings.ack_sla)
    present = {r.kind for r in records}
    if book.PURCHASE in present:
        first = session.execute(select(customer_records.c.at, customer_records.c.record_id).where(
            customer_records.c.customer_id == customer_id, customer_records.c.kind == book.PURCHASE)
            .order_by(customer_records.c.at, customer_records.c.record_id).limit(1)).first()
        knowledge.first_purchase = (utc(first.at), first.record_id) if first else None
    if book.STAGE in present:
        stages = session.execute(select(customer_records.c.at, customer_records.c.record_id,
                                        customer_records.c.data).where(
            customer_records.c.customer_id == customer_id, customer_records.c.kind == book.STAGE))
        knowledge.first_contacts = sorted((utc(s.at), s.record_id) for s in stages
                                          if s.data.get("new_stage") == "first_contact")
    for record in records:
        if record.kind == book.ALERT:
            raised = record.at or book.from_iso(record.data.get("raised_at"))
            if raised is not None:
                knowledge.alert_raised[record.entity] = raised

    def neighbours(start: datetime, end: datetime) -> list[book.Record]:
        return [_record(r) for r in session.execute(select(customer_records).where(
            customer_records.c.customer_id == customer_id, customer_records.c.kind.in_(book.DISTINCT_KINDS),
            customer_records.c.at >= start, customer_records.c.at < end))]

    outcome = book.reconcile(customer_id, knowledge, since, records, neighbours)
    if outcome.changes:
        session.execute(update(customer_changes).where(customer_changes.c.event_id == bindparam("b_id"))
                        .values(applied=bindparam("b_applied")),
                        [{"b_id": c.id, "b_applied": c.applied} for c in outcome.changes])
    if outcome.records:
        session.execute(update(customer_records).where(customer_records.c.record_id == bindparam("b_id"))
                        .values(applied=bindparam("b_applied"), at=bindparam("b_at")),
                        [{"b_id": r.id, "b_applied": r.applied, "b_at": r.at} for r in outcome.records])
    add_to_counters(session, outcome.amounts)
    _insert_ignore(session, dimension_values, [{"dimension": dim, "value": value[:100]}
                                               for dim, value in sorted(outcome.values)], ["dimension", "value"])
    return timeline


def _save_state(session, customer_id: str, timeline: book.Timeline, now: datetime) -> None:
    """The customer's current attributes, for operators (reports read counters only)."""
    current = timeline.current
    session.execute(update(customer_state).where(customer_state.c.customer_id == customer_id).values(
        known=timeline.exists, archived=timeline.archived, team=current["team"], owner_id=current["rep"],
        tier=current["tier"], lifecycle=current["lifecycle"], industry=current["industry"],
        health_score=current["score"], updated_at=now))


def _stored(metric: str, amount: Number) -> int:
    if metric == d.counters.REVENUE:
        return int((Decimal(amount) * 100).to_integral_exact())
    return int(amount)


# PostgreSQL: every row of an event in one statement with a fixed text (arrays as parameters), so it is
# one round trip and one prepared plan whatever the number of rows; rows are taken in array order.
_PG_UPSERT = text(
    "INSERT INTO counters (dimension, dimension_value, period_kind, period_start, metric, value) "
    "SELECT * FROM unnest(CAST(:dimensions AS varchar[]), CAST(:dimension_values AS varchar[]), "
    "CAST(:period_kinds AS varchar[]), CAST(:period_starts AS date[]), CAST(:metrics AS varchar[]), "
    "CAST(:amounts AS bigint[])) "
    "ON CONFLICT (dimension, dimension_value, period_kind, period_start, metric) "
    "DO UPDATE SET value = counters.value + excluded.value")
_SQLITE_UPSERT = None


def add_to_counters(session, amounts: dict[CounterKey, Number]) -> None:
    """Atomic increments (value = value + delta) of every counter an event moves, in one batch.

    ON CONFLICT DO UPDATE SET value = counters.value + excluded.value is atomic in PostgreSQL
    and SQLite, so replicas applying events that share counter rows lose no increment. Rows go
    in key order, so two transactions touching the same rows lock them in the same order."""
    global _SQLITE_UPSERT
    rows = sorted((k.dimension, k.dimension_value, k.period_kind.value, k.period_start, k.metric,
                   _stored(k.metric, v)) for k, v in amounts.items())
    rows = [r for r in rows if r[5]]
    if not rows:
        return
    dialect = _dialect(session)
    if dialect == "postgresql":
        columns = list(zip(*rows))
        session.execute(_PG_UPSERT, {"dimensions": list(columns[0]), "dimension_values": list(columns[1]),
                                     "period_kinds": list(columns[2]), "period_starts": list(columns[3]),
                                     "metrics": list(columns[4]), "amounts": list(columns[5])})
        return
    if dialect == "sqlite":  # one prepared statement, run per row inside sqlite3 (no network, no SQL parsing)
        if _SQLITE_UPSERT is None:
            statement = sqlite.insert(counters)
            _SQLITE_UPSERT = str(statement.on_conflict_do_update(
                index_elements=list(COUNTER_PK), set_={"value": counters.c.value + statement.excluded.value})
                .compile(dialect=sqlite.dialect()))
        session.connection().exec_driver_sql(  # (?, ?, ?, ?, ?, ?) in COUNTER_PK order, then value
            _SQLITE_UPSERT, [(r[0], r[1], r[2], r[3].isoformat(), r[4], r[5]) for r in rows])
        return
    params = [dict(zip((*COUNTER_PK[:4], "metric", "value"), r)) for r in rows]
    for row in params:  # portable: UPDATE, then INSERT when there was nothing to update
        done = session.execute(update(counters).where(*[counters.c[c] == row[c] for c in COUNTER_PK])
                               .values(value=counters.c.value + row["value"]))
        if done.rowcount == 0:
            session.execute(insert(counters).values(**row))


def _note_rep(session, event: Event) -> None:
    data = event.data
    row = session.execute(select(rep_directory.c.updated_at).where(rep_directory.c.rep_id == data["rep_id"])
                          .with_for_update()).first()
    values = {"name": data.get("name"), "team": data.get("team"), "role": data.get("role"),
              "active": bool(data.get("active", True)), "updated_at": event.time}
    if row is None:
        _insert_ignore(session, rep_directory, [{"rep_id": data["rep_id"], **values}], ["rep_id"])
    elif utc(row.updated_at) <= event.time:  # the directory keeps the latest entry, whatever the order
        session.execute(update(rep_directory).where(rep_directory.c.rep_id == data["rep_id"]).values(**values))


# ================================================================ rebuild

def replay_plan() -> dict[str, list[str]]:
    """Routing keys to ask each producer to replay: every event this service counts
    (task.scheduled, .due, .rescheduled and .reassigned are consumed but move no counter)."""
    plan: dict[str, list[str]] = defaultdict(list)
    for name in book.CONSUMED_EVENTS:
        if name in book.IGNORED_EVENTS:
            continue
        spec = definition(name)
        plan[spec.producer].append(spec.routing_key)
    return dict(plan)


def wipe(uow, actor: Principal) -> dict[str, int]:
    """Empty every read model and the processed-event ids, so replayed history is applied afresh."""
    session = uow.session
    tables = [*READ_MODELS, infrastructure["processed_events"]]
    counts = {t.name: session.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}
    if _dialect(session) == "postgresql":
        # waits for in-flight events and keeps new ones out until commit, locking in the order an event
        # does (its claim in processed_events, then its customer's row, then counters...): no deadlock.
        # An event applied after the wipe starts from an empty book and is skipped when replayed.
        names = ", ".join(t.name for t in (tables[-1], *tables[:-1]))
        session.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
        session.execute(text(f"TRUNCATE {names}"))
    else:
        for table in tables:
            session.execute(delete(table))
    uow.audit(actor, "reports.rebuilt", "reports", "read-models", {"wiped": counts})
    return counts


def status(uow) -> dict:
    session = uow.session

    def count(table, *where) -> int:
        return session.execute(select(func.count()).select_from(table).where(*where)).scalar_one()

    return {
        "customers": count(customer_state),
        "customers_without_created_event": count(customer_state, customer_state.c.known.is_(False)),
        "timeline_changes": count(customer_changes),
        "fact_records": count(customer_records),
        "alert_events_waiting_for_their_raise": count(customer_records, customer_records.c.at.is_(None)),
        "counter_rows": count(counters),
        "reps_in_directory": count(rep_directory),
        "events_applied": count(infrastructure["processed_events"]),
        "last_event_applied_at": utc(session.execute(
            select(func.max(infrastructure["processed_events"].c.processed_at))).scalar()),
    }


# ================================================================ reading counters

class SqlCounters:
    """``CounterSource`` over the counters table, loading whole (slice, bucket) groups per query."""

    def __init__(self, session):
        self.session = session
        self._flows: dict[tuple, dict[str, int]] = {}
        self._loaded: dict[tuple, frozenset | None] = {}  # metrics loaded per bucket; None: all of them
        self._stocks: dict[tuple, dict[str, int]] = {}

    @staticmethod
    def _value(metric: str, stored: int) -> Number:
        if metric == d.counters.REVENUE:
            return (Decimal(stored) / 100).quantize(Decimal("0.01"))
        return stored

    def _groups(self, slices: Iterable[d.Slice]) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = defaultdict(set)
        for slice_ in slices:
            groups[slice_.dimension].add(slice_.value)
        return {dimension: sorted(values) for dimension, values in groups.items()}

    def preload_flows(self, slices: Iterable[d.Slice], periods: Iterable[d.Period],
                      metrics: Iterable[str] | None = None) -> None:
        """Load the flows of these slices in these periods (only `metrics`, when given) in few queries."""
        slices, periods = list(slices), list(periods)
        metrics = None if metrics is None else frozenset(metrics)
        by_kind: dict[str, list[date]] = defaultdict(list)
        for period in periods:
            by_kind[period.kind.value].append(period.start)
        for dimension, values in self._groups(slices).items():
            for kind, starts in by_kind.items():
                for value in values:
                    for start in starts:
                        self._flows[(dimension, value, kind, start)] = {}
                        self._loaded[(dimension, value, kind, start)] = metrics
                only = [] if metrics is None else [counters.c.metric.in_(sorted(metrics))]
                for offset in range(0, len(values), 500):
                    rows = self.session.execute(select(
                        counters.c.dimension_value, counters.c.period_start, counters.c.metric, counters.c.value)
                        .where(counters.c.dimension == dimension,
                               counters.c.dimension_value.in_(values[offset:offset + 500]),
                               counters.c.period_kind == kind, counters.c.period_start >= min(starts),
                               counters.c.period_start <= max(starts), *only))
                    for row in rows:
                        bucket = self._flows.get((dimension, row.dimension_value, kind, row.period_start))
                        if bucket is not None:
                            bucket[row.metric] = row.value

    def preload_stocks(self, slices: Iterable[d.Slice], days: Iterable[date]) -> None:
        """Every stock metric of these slices at the start of these days, with one query per slice group."""
        days = sorted(set(days))
        if not days:
            return
        plans = {day: d.stock_plan(day) for day in days}
        last_quarter = max(plan[0][2] for plan in plans.values())
        first_quarter = min(plan[1][1] for plan in plans.values())
        last_month = max(plan[1][2] for plan in plans.values())
        # day buckets: only the days of each date's own month before it (none for a month start)
        spans: list[list[date]] = []
        for low, high in sorted((plan[2][1], plan[2][2]) for plan in plans.values() if plan[2][1] < plan[2][2]):
            if spans and low <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], high)
            else:
                spans.append([low, high])
        ranges = [and_(counters.c.period_kind == "quarter", counters.c.period_start < last_quarter),
                  and_(counters.c.period_kind == "month", counters.c.period_start >= first_quarter,
                       counters.c.period_start < last_month)]
        ranges += [and_(counters.c.period_kind == "day", counters.c.period_start >= low, counters.c.period_start < high)
                   for low, high in spans]
        for dimension, values in self._groups(slices).items():
            found: dict[str, dict[str, dict[date, dict[str, int]]]] = defaultdict(lambda: defaultdict(dict))
            for offset in range(0, len(values), 500):
                for bucket_range in ranges:  # one query per range: each is an index range scan (an OR is not)
                    rows = self.session.execute(select(
                        counters.c.dimension_value, counters.c.period_kind, counters.c.period_start,
                        counters.c.metric, counters.c.value).where(
                        counters.c.dimension == dimension,
                        counters.c.dimension_value.in_(values[offset:offset + 500]),
                        bucket_range, counters.c.metric.in_(STOCK_METRICS)))
                    for row in rows:
                        found[row.dimension_value][row.period_kind].setdefault(
                            row.period_start, {})[row.metric] = row.value
            for value in values:
                buckets = found.get(value, {})
                quarters = sorted(buckets.get("quarter", {}).items())
                months, day_rows = buckets.get("month", {}), buckets.get("day", {})
                for day, plan in plans.items():
                    totals: dict[str, int] = defaultdict(int)
                    parts = [metrics for start, metrics in quarters if start < plan[0][2]]
                    month = plan[1][1]
                    while month < plan[1][2]:  # at most two months of the quarter
                        parts.append(months.get(month, {}))
                        month = d.period_end("month", month)
                    parts += [day_rows.get(plan[2][1] + timedelta(days=n), {})
                              for n in range((plan[2][2] - plan[2][1]).days)]  # at most 30 days of the month
                    for metrics in parts:
                        for metric, amount in metrics.items():
                            totals[metric] += amount
                    self._stocks[(dimension, value, day)] = dict(totals)

    def flow(self, metric: str, period: d.Period, slice_: d.Slice = d.ALL) -> Number:
        key = (slice_.dimension, slice_.value, period.kind.value, period.start)
        if key not in self._flows or (self._loaded[key] is not None and metric not in self._loaded[key]):
            self.preload_flows([slice_], [period])
        return self._value(metric, self._flows[key].get(metric, 0))

    def stock(self, metric: str, at: date, slice_: d.Slice = d.ALL) -> Number:
        key = (slice_.dimension, slice_.value, at)
        if key not in self._stocks:
            self.preload_stocks([slice_], [at])
        return self._value(metric, self._stocks[key].get(metric, 0))


# ================================================================ scope and parameters

def _rep_team(session, rep_id: str) -> str | None:
    return session.execute(select(rep_directory.c.team).where(rep_directory.c.rep_id == rep_id)).scalar()


def scope_of(uow, principal: Principal, team: str | None, rep: str | None,
             breakdown: str | None = None) -> d.Slice:
    """The slice asked for (default: the caller's own scope), after the role rules allowed it."""
    if team and rep:
        raise CrmError("give team or rep, not both", field="rep")
    if team:
        requested = d.Slice(team=team)
    elif rep:
        requested = d.Slice(rep=rep)
    else:
        requested = d.default_slice(principal.role, principal.user_id, principal.team)
    rep_team = _rep_team(uow.session, requested.rep) if requested.rep else None
    d.check_access(principal.role, principal.user_id, principal.team, requested, breakdown, rep_team)
    return requested


def scope_json(slice_: d.Slice) -> dict:
    return {k: v for k, v in (("team", slice_.team), ("rep", slice_.rep)) if v is not None}


def scope_label(slice_: d.Slice) -> str:
    if slice_.team is not None:
        return f"team {slice_.team}"
    if slice_.rep is not None:
        return f"rep {slice_.rep}"
    return "all customers"


def _registered(session, dimension: str) -> list[str]:
    return sorted(session.execute(select(dimension_values.c.value)
                                  .where(dimension_values.c.dimension == dimension)).scalars())


def breakdown_parts(uow, scope: d.Slice, breakdown: str | None) -> list[tuple[str | None, d.Slice]]:
    """(value, slice) per breakdown value: tiers and lifecycles in their order, others sorted."""
    if breakdown is None:
        return [(None, scope)]
    session = uow.session
    if breakdown in ("tier", "lifecycle", "industry"):
        values = {"tier": list(d.TIERS), "lifecycle": list(d.LIFECYCLES)}.get(breakdown) \
            or _registered(session, "industry")
        return [(v, scope.with_value(breakdown, v)) for v in values]
    if scope != d.ALL and not (breakdown == "rep" and scope.team is not None):
        raise CrmError(f"breakdown={breakdown} lists every {breakdown}: drop the team and rep filters"
                       if breakdown == "team" else "breakdown=rep goes with a team filter or none, not a rep",
                       field="breakdown")
    if breakdown == "team":
        return [(v, d.Slice(team=v)) for v in _registered(session, "team")]
    if scope.team is not None:
        reps = session.execute(select(rep_directory.c.rep_id).where(
            rep_directory.c.team == scope.team, or_(rep_directory.c.role.is_(None), rep_directory.c.role != "admin"))
            .order_by(rep_directory.c.rep_id)).scalars().all()
    else:
        reps = sorted(set(_registered(session, "rep")) | set(session.execute(select(rep_directory.c.rep_id).where(
            or_(rep_directory.c.role.is_(None), rep_directory.c.role != "admin"))).scalars()))
    return [(v, d.Slice(rep=v)) for v in reps]


def _label(value: str, field: str) -> d.Period:
    try:
        return d.parse_period(value)
    except d.InvalidPeriod as exc:
        raise CrmError(exc.message, field=field) from None


def period_range(kind: str, first: str | None, last: str | None, today: date,
                 settings: d.ReportSettings) -> list[d.Period]:
    """Periods of `kind` from the one holding `from` to the one holding the end of `to` (labels or dates)."""
    last_day = _label(last, "to").end - ONE_DAY if last else today
    if first:
        first_day = _label(first, "from").start
    else:
        first_day = d.Period.containing(kind, last_day).start
        for _ in range(settings.default_periods - 1):
            first_day = d.Period.containing(kind, first_day - ONE_DAY).start
    if first_day > last_day:
        raise CrmError(f"from ({first}) is after to ({last or today})", field="from")
    periods = d.periods_between(kind, first_day, last_day)
    if len(periods) > settings.max_periods:
        raise CrmError(f"{len(periods)} {kind} periods asked; at most {settings.max_periods} at once",
                       field="from")
    return periods


def _as_of(value: date | None, today: date) -> date:
    if value is None:
        return today
    if value > today:
        raise CrmError(f"as_of {value} is in the future (today is {today})", field="as_of")
    return value


# ================================================================ queries

def dashboard(uow, principal: Principal, params: dict, today: date) -> dict:
    """Headline figures of one period for one slice, and the customer base as of the end of `as_of`.

    Live (as_of today, the default) the period may still be running: its figures are
    so far. For a past as_of the period must have ended by then (default: the last
    quarter that had), or later events would leak into it.
    """
    as_of = _as_of(params.get("as_of"), today)
    stocks_at = as_of + ONE_DAY
    if params.get("period"):
        period = _label(params["period"], "period")
    elif as_of >= today:
        period = d.Period.containing("quarter", as_of)
    else:
        period = d.Period.containing("quarter", d.Period.containing("quarter", stocks_at).start - ONE_DAY)
    if as_of < today and period.end > stocks_at:
        raise CrmError(f"{period.label} had not ended by {as_of}: its figures would include later events; "
                       f"ask for an ended period or leave as_of out", field="period")
    if period.start > as_of:
        raise CrmError(f"{period.label} starts after {as_of}", field="period")
    scope = scope_of(uow, principal, params.get("team"), params.get("rep"))
    src = SqlCounters(uow.session)
    tiers = [scope.with_value("tier", t) for t in d.TIERS]
    src.preload_flows([scope], [period])
    src.preload_stocks([scope, *tiers], [period.start, period.end, stocks_at])
    figures = d.headline_figures(src, period, scope)
    summary = d.alert_summary(src, period, scope)
    return {
        "as_of": as_of,
        "period": {"label": period.label, "kind": period.kind.value, "start": period.start, "end": period.end,
                   "complete": period.end <= today},
        "scope": scope_json(scope),
        "figures": figures,
        "funnel": [{"stage": s.stage, "entered": s.entered, "conversion": s.conversion}
                   for s in d.funnel(src, period, scope)],
        "alerts": {**{k: getattr(summary, k) for k in ("raised", "handled", "handled_in_time", "escalated",
                                                        "recovered", "lost", "false_alarm")},
                   "open": summary.open},
        "movements": {dim: [{"from": a, "to": b, "moves": n}
                            for (a, b), n in sorted(d.movements(src, period, dim, scope).items())]
                      for dim in ("tier", "lifecycle")},
        "base": {
            "stocks_at": stocks_at,
            "active_base": d.active_base(src, stocks_at, scope),
            "average_health_score": d.average_health_score(src, stocks_at, scope),
            "by_lifecycle": d.distribution(src, stocks_at, "lifecycle", list(d.LIFECYCLES), scope),
            "by_tier": d.distribution(src, stocks_at, "tier", list(d.TIERS), scope),
        },
    }


DASHBOARD_CSV_COLUMNS = ("as_of", "scope", *d.HEADLINE_COLUMNS, "active_base_at_as_of", "average_health_score_at_as_of")


def dashboard_row(board: dict) -> dict:
    scope = board["scope"]
    return {"as_of": board["as_of"], "scope": scope_label(d.Slice(**scope)), **board["figures"],
            "active_base_at_as_of": board["base"]["active_base"],
            "average_health_score_at_as_of": board["base"]["average_health_score"]}


def figure_table(uow, principal: Principal, figure: str, params: dict, today: date,
                 settings: d.ReportSettings) -> dict:
    """One row per period (x breakdown value) of one figure table."""
    table = d.TABLES.get(figure)
    if table is None:
        raise NotFound(f"no report {figure!r}; reports: {', '.join(d.TABLE_NAMES)}", field="figure")
    kind, breakdown = params["period_kind"], params.get("breakdown")
    periods = period_range(kind, params.get("from"), params.get("to"), today, settings)
    scope = scope_of(uow, principal, params.get("team"), params.get("rep"), breakdown)
    parts = breakdown_parts(uow, scope, breakdown)
    src = SqlCounters(uow.session)
    src.preload_flows([s for _, s in parts], periods, table.metrics)
    src.preload_stocks([s for _, s in parts], {day for p in periods for day in table.stock_dates(p)})
    rows = []
    for period in periods:
        for value, slice_ in parts:
            for row in table.rows(src, period, slice_):
                rows.append({"period": period.label, **({breakdown: value} if breakdown else {}), **row})
    if breakdown and all(_empty(r, table.columns) for r in rows if r[breakdown] == d.NONE_VALUE):
        # "(none)" is listed once something was counted there, possibly only until the customer's
        # creation arrived and moved it: leave it out when it holds nothing in these periods
        rows = [r for r in rows if r[breakdown] != d.NONE_VALUE]
    return {"figure": figure, "description": table.description, "period_kind": kind,
            "from": periods[0].label, "to": periods[-1].label, "scope": scope_json(scope), "breakdown": breakdown,
            "columns": ["period", *([breakdown] if breakdown else []), *table.columns], "rows": rows}


def _empty(row: dict, columns: Iterable[str]) -> bool:
    return all(row.get(c) in (None, 0) or (isinstance(row.get(c), str) and c in ("attribute", "from", "to"))
               for c in columns)


def distribution(uow, principal: Principal, params: dict, today: date) -> dict:
    """Customers per tier, lifecycle or industry value as of the end of `as_of`."""
    as_of = _as_of(params.get("as_of"), today)
    at = as_of + ONE_DAY
    dimension = params["dimension"]
    scope = scope_of(uow, principal, params.get("team"), params.get("rep"), dimension)
    lifecycles = d.ACTIVE_BASE_LIFECYCLES if params.get("base") == "active" else d.LIFECYCLES
    values = {"tier": list(d.TIERS), "lifecycle": list(d.LIFECYCLES)}.get(dimension) \
        or _registered(uow.session, "industry")
    src = SqlCounters(uow.session)
    slices = [scope] if dimension == "lifecycle" else [scope.with_value(dimension, v) for v in values]
    src.preload_stocks(slices, [at])
    counts = d.distribution(src, at, dimension, values, scope, tuple(lifecycles))
    if dimension == "industry":
        counts = {k: v for k, v in counts.items() if v}
    return {"as_of": as_of, "stocks_at": at, "dimension": dimension, "scope": scope_json(scope),
            "base": params.get("base", "all"), "lifecycles": list(lifecycles),
            "values": [{"value": k, "customers": v} for k, v in counts.items()], "total": sum(counts.values())}


CHARTS = ("churn", "repurchase", "funnel", "coverage")


def chart(uow, principal: Principal, name: str, params: dict, today: date, settings: d.ReportSettings) -> str:
    """An SVG document: churn or repurchase rate over time, the funnel of a period, coverage by rep."""
    if name not in CHARTS:
        raise NotFound(f"no chart {name!r}; charts: {', '.join(CHARTS)}", field="name")
    src = SqlCounters(uow.session)
    if name in ("churn", "repurchase"):
        kind, breakdown = params["period_kind"], params.get("breakdown")
        periods = period_range(kind, params.get("from"), params.get("to"), today, settings)
        scope = scope_of(uow, principal, params.get("team"), params.get("rep"), breakdown)
        parts = breakdown_parts(uow, scope, breakdown)
        figure = d.churn_rate if name == "churn" else d.repurchase_rate
        src.preload_flows([s for _, s in parts], periods, d.TABLES[name].metrics)
        if name == "churn":
            src.preload_stocks([s for _, s in parts], [p.start for p in periods])
        series = {(value if value is not None else scope_label(scope)): [(p.label, figure(src, p, s)) for p in periods]
                  for value, s in parts}
        if all(v is None for _, v in series.get(d.NONE_VALUE, [])):
            series.pop(d.NONE_VALUE, None)
        title = f"{'Churn' if name == 'churn' else 'Repurchase'} rate by {kind} - {scope_label(scope)}"
        if breakdown:
            title += f", by {breakdown}"
        return charts.line_chart(series, title, "churned / active base at start" if name == "churn"
                                 else "repeat buyers / buyers", percent=True)
    default_kind = "quarter" if name == "funnel" else "month"
    period = _label(params["period"], "period") if params.get("period") else d.Period.containing(default_kind, today)
    if name == "funnel":
        scope = scope_of(uow, principal, params.get("team"), params.get("rep"))
        steps = d.funnel(src, period, scope)
        return charts.funnel_chart([(s.stage, s.entered) for s in steps],
                                   f"Pipeline funnel {period.label} - {scope_label(scope)}")
    # by rep of a team; an admin looking at everyone gets one bar per team (pick a team for its reps)
    by = "team" if principal.is_admin and not params.get("team") and not params.get("rep") else "rep"
    scope = scope_of(uow, principal, params.get("team"), params.get("rep"), by)
    parts = breakdown_parts(uow, scope, by)
    src.preload_flows([s for _, s in parts], [period], d.TABLES["followups"].metrics)
    return charts.bar_chart([(value, d.followup_coverage(src, period, s)) for value, s in parts],
                            f"Follow-up coverage by {by} {period.label} - {scope_label(scope)}",
                            "customers touched / due", percent=True)
