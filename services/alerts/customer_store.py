"""Customer rows: the read model (customer_signals), its health (customer_health) and the score history,
read and written a batch or a page at a time (one statement each way, never one per customer)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, and_, cast, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_common.db import utc
from services.alerts import bulk, domain
from services.alerts.models import customer_health, customer_signals, health_history

SIGNALS_COLUMNS = ("signals", "profile_versions", "known", "owner_id", "team", "tier", "lifecycle", "archived",
                   "last_fact_at", "updated_at")
HEALTH_COLUMNS = ("judged", "score", "band", "breakdown", "scored_at", "recorded_score", "next_check_at", "revenue_12m",
                  "stake")
_JOINED = select(customer_signals, *(customer_health.c[name] for name in HEALTH_COLUMNS)).join(
    customer_health, customer_health.c.customer_id == customer_signals.c.customer_id)


def model_of(row) -> domain.ReadModel:
    return domain.ReadModel(domain.signals_from_dict(row.signals), row.profile_versions or {}, row.known,
                            utc(row.last_fact_at))


def signals_values(customer_id: str, model: domain.ReadModel, now: datetime) -> dict:
    s = model.signals
    return {"customer_id": customer_id, "signals": domain.signals_to_dict(s), "profile_versions": dict(model.versions),
            "known": model.known, "owner_id": s.owner_id, "team": s.team, "tier": s.tier, "lifecycle": s.lifecycle,
            "archived": s.archived, "last_fact_at": model.last_fact_at, "updated_at": now}


def health_values(row) -> dict:
    """A joined row's health columns, as upsert_health takes them."""
    return {"customer_id": row.customer_id, **{name: getattr(row, name) for name in HEALTH_COLUMNS}}


def breakdown_dict(b: domain.HealthBreakdown) -> dict:
    return {"recency": b.recency, "frequency": b.frequency, "monetary": b.monetary, "engagement": b.engagement}


def scored(values: dict, b: domain.HealthBreakdown, band: str, at: datetime) -> dict:
    return {**values, "score": b.score, "band": band, "breakdown": breakdown_dict(b), "scored_at": at,
            "revenue_12m": b.revenue_12m, "stake": domain.value_at_stake(b.revenue_12m, b.score)}


def score_change(signals: domain.CustomerSignals, previous: int | None, b: domain.HealthBreakdown,
                 cfg: domain.AlertsConfig, at: datetime, cause: str) -> tuple[dict | None, dict | None]:
    """(history row, health.score_changed payload) when the score moved since the last recorded one; the
    payload only when it crossed into another band."""
    if previous == b.score:
        return None, None
    row = {"customer_id": signals.customer_id, "as_of": at, "score": b.score,
           "band": domain.band(b.score, cfg.health.bands), "cause": cause, "recorded_at": at, **breakdown_dict(b)}
    change = domain.band_change(previous, b.score, cfg.health.bands)
    payload = None if change is None else {
        "customer_id": signals.customer_id, "old_score": previous, "new_score": b.score, "old_band": change.old_band,
        "new_band": change.new_band, "owner_id": signals.owner_id, "team": signals.team, "as_of": at}
    return row, payload


def record_scores(uow, history: list[dict], band_moves: list[dict], at: datetime) -> None:
    bulk.write(uow, health_history, history)
    for payload in band_moves:
        uow.emit("health.score_changed", payload["customer_id"], payload, time=at)


# ---------------------------------------------------------------- locking and writing

def lock_customers(uow, ids: list[str], now: datetime) -> dict:
    """The customers' joined rows (signals and health), locked (SELECT ... FOR UPDATE) so concurrent batches
    and the sweep take turns on a customer; rows are created first for customers seen for the first time."""
    query = _JOINED.order_by(customer_signals.c.customer_id).with_for_update()
    rows = {r.customer_id: r for r in uow.session.execute(query.where(customer_signals.c.customer_id.in_(ids)))}
    missing = [cid for cid in ids if cid not in rows]
    if missing:
        bulk.write(uow, customer_signals, [signals_values(cid, domain.ReadModel(domain.CustomerSignals(cid)), now)
                                           for cid in missing], ignore_existing=True)
        bulk.write(uow, customer_health, [{"customer_id": cid, "judged": False} for cid in missing],
                   ignore_existing=True)
        rows.update((r.customer_id, r) for r in uow.session.execute(
            query.where(customer_signals.c.customer_id.in_(missing))))
    return rows


def add_missing_health_rows(uow) -> None:
    """A health row for every customer that has none (read models written straight into customer_signals)."""
    judged = and_(customer_signals.c.known.is_(True), customer_signals.c.archived.is_(False))
    orphans = select(customer_signals.c.customer_id, judged).where(~exists().where(
        customer_health.c.customer_id == customer_signals.c.customer_id))
    uow.session.execute(_insert(uow, customer_health).from_select(["customer_id", "judged"], orphans)
                        .on_conflict_do_nothing())


def _judged(query, as_of: datetime, only_due: bool):
    query = query.where(customer_health.c.judged.is_(True))
    if only_due:
        query = query.where(or_(customer_health.c.next_check_at.is_(None), customer_health.c.next_check_at <= as_of))
    return query


def page_bounds(uow, as_of: datetime, only_due: bool, size: int) -> list[tuple[str | None, str | None]]:
    """The judged customers (due by ``as_of`` when ``only_due``) cut into ranges of about ``size`` by id:
    (after, up to) pairs, None for open ends; pages of the ranges can be swept side by side."""
    numbered = _judged(select(customer_health.c.customer_id, func.row_number().over(
        order_by=customer_health.c.customer_id).label("n")), as_of, only_due).subquery()
    cuts = list(uow.session.execute(select(numbered.c.customer_id).where(numbered.c.n % size == 0)
                                    .order_by(numbered.c.customer_id)).scalars())
    return list(zip([None, *cuts], [*cuts, None]))


def lock_page(uow, after: str | None, up_to: str | None, as_of: datetime, only_due: bool) -> list:
    """The judged customers (due by ``as_of`` when ``only_due``) with ids in (after, up_to]: (customer_id,
    signals as JSON text, recorded_score) by id; their health rows locked."""
    query = _judged(select(customer_signals.c.customer_id, cast(customer_signals.c.signals, Text).label("signals"),
                           customer_health.c.recorded_score).join(
        customer_health, customer_health.c.customer_id == customer_signals.c.customer_id), as_of, only_due)
    if after is not None:
        query = query.where(customer_health.c.customer_id > after)
    if up_to is not None:
        query = query.where(customer_health.c.customer_id <= up_to)
    return uow.session.execute(query.order_by(customer_health.c.customer_id)
                               .with_for_update(of=customer_health)).all()


def upsert_signals(uow, rows: list[dict]) -> None:
    bulk.write(uow, customer_signals, rows, update=SIGNALS_COLUMNS)


def upsert_health(uow, rows: list[dict]) -> None:
    bulk.write(uow, customer_health, rows, update=HEALTH_COLUMNS)


def update_health(uow, rows: list[dict]) -> None:
    """Health rows that exist (locked by lock_page)."""
    bulk.update(uow, customer_health, rows, HEALTH_COLUMNS)


def due_by(uow, customer_id: str, moment: datetime) -> None:
    """The sweep must judge the customer again from ``moment`` on at the latest (NULL stays: due now)."""
    uow.session.execute(update(customer_health).where(
        and_(customer_health.c.customer_id == customer_id, customer_health.c.next_check_at > moment))
        .values(next_check_at=moment))


def _insert(uow, table):
    dialect = postgresql if uow.session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
