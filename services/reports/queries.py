"""Report queries: dashboard, figure tables, distribution, charts, status.

Every figure is read from the counters table through ``SqlCounters`` - never from scans of
facts; the rules of what a request may ask live in domain/requests.py and domain/access.py.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from crm_common.auth import Principal
from crm_common.cursors import decode_cursor, encode_cursor
from crm_common.db import utc
from crm_common.errors import CrmError, NotFound
from services.reports import charts, domain as d, mark_table
from services.reports.counter_table import SqlCounters
from services.reports.domain.requests import ONE_DAY, scope_json, scope_label
from services.reports.models import (
    counters, customer_changes, customer_records, customer_state, dimension_values, infrastructure, rep_directory,
)

CHARTS = ("churn", "repurchase", "funnel", "coverage")
DASHBOARD_CSV_COLUMNS = ("as_of", "scope", *d.HEADLINE_COLUMNS, "active_base_at_as_of", "average_health_score_at_as_of")


# ================================================================ scope

def scope_of(uow, principal: Principal, team: str | None, rep: str | None,
             breakdown: str | None = None) -> d.Slice:
    """The slice asked for (default: the caller's own scope), after the role rules allowed it."""
    requested = d.requested_slice(team, rep, principal.role, principal.user_id, principal.team)
    rep_team = uow.session.execute(select(rep_directory.c.team).where(
        rep_directory.c.rep_id == requested.rep)).scalar() if requested.rep else None
    d.check_access(principal.role, principal.user_id, principal.team, requested, breakdown, rep_team)
    return requested


def _registered(session, dimension: str) -> list[str]:
    return sorted(session.execute(select(dimension_values.c.value)
                                  .where(dimension_values.c.dimension == dimension)).scalars())


def breakdown_parts(uow, scope: d.Slice, breakdown: str | None) -> list[tuple[str | None, d.Slice]]:
    """(value, slice) per breakdown value: tiers and lifecycles in their order, others sorted."""
    if breakdown is None:
        return [(None, scope)]
    d.check_breakdown(scope, breakdown)
    session = uow.session
    if breakdown in ("tier", "lifecycle", "industry"):
        values = {"tier": list(d.TIERS), "lifecycle": list(d.LIFECYCLES)}.get(breakdown) \
            or _registered(session, "industry")
        return [(v, scope.with_value(breakdown, v)) for v in values]
    if breakdown == "team":
        return [(v, d.Slice(team=v)) for v in _registered(session, "team")]
    # reps of the directory, and anyone else (a manager, an admin) only where figures name them
    with_figures = set(_registered(session, "rep"))
    directory = select(rep_directory.c.rep_id, rep_directory.c.role)
    if scope.team is not None:
        directory = directory.where(rep_directory.c.team == scope.team)
    people = session.execute(directory).all()
    reps = {p.rep_id for p in people if p.role in (None, "rep") or p.rep_id in with_figures}
    if scope.team is None:
        reps |= with_figures
    return [(v, d.Slice(rep=v)) for v in sorted(reps)]


# ================================================================ queries

def dashboard(uow, principal: Principal, params: dict, today: date, settings: d.ReportSettings | None = None) -> dict:
    """Headline figures of one period (or custom range) for one slice, and the customer base as of the end
    of `as_of`."""
    as_of = d.as_of_day(params.get("as_of"), today)
    stocks_at = as_of + ONE_DAY
    period = d.dashboard_period(params.get("period"), as_of, today, params.get("from"), params.get("to"), settings)
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


def customers_behind(uow, principal: Principal, params: dict, today: date, settings: d.ReportSettings) -> dict:
    """The customers a distinct figure counts (buyers, churned, a funnel stage's entries, ...) in one period or
    custom range of one slice: as many as the figure says, listed by id, a page at a time."""
    period = d.dashboard_period(params.get("period"), today, today, params.get("from"), params.get("to"), settings)
    scope = scope_of(uow, principal, params.get("team"), params.get("rep"))
    values = [(name, params[name]) for name in ("tier", "lifecycle", "industry") if params.get(name)]
    if len(values) > 1:
        raise CrmError("give at most one of tier, lifecycle and industry", field=values[1][0])
    slice_ = scope.with_value(*values[0]) if values else scope
    after = decode_cursor(params["cursor"], lambda key: str(key["after"])) if params.get("cursor") else None
    total, page = mark_table.entities(uow.session, params["metric"], period.start, period.end, slice_,
                                      params["limit"] + 1, after)
    more = len(page) > params["limit"]
    page = page[:params["limit"]]
    return {"metric": params["metric"], "period": {"label": period.label, "start": period.start, "end": period.end},
            "scope": scope_json(scope), **dict(values), "total": total,
            "items": [{"customer_id": entity, "first_day": first} for entity, first in page],
            "next_cursor": encode_cursor({"after": page[-1][0]}) if more else None}


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
    periods = d.period_range(kind, params.get("from"), params.get("to"), today, settings)
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
    rows = d.without_empty_none(rows, breakdown, table.columns)
    first, last = (periods[0].start.isoformat(), periods[0].last_day.isoformat()) if kind == "range" else \
        (periods[0].label, periods[-1].label)
    return {"figure": figure, "description": table.description, "period_kind": kind, "from": first, "to": last,
            "scope": scope_json(scope), "breakdown": breakdown,
            "columns": ["period", *([breakdown] if breakdown else []), *table.columns], "rows": rows}


def distribution(uow, principal: Principal, params: dict, today: date) -> dict:
    """Customers per tier, lifecycle or industry value as of the end of `as_of`."""
    as_of = d.as_of_day(params.get("as_of"), today)
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


def chart(uow, principal: Principal, name: str, params: dict, today: date, settings: d.ReportSettings) -> str:
    """An SVG document: churn or repurchase rate over time, the funnel of a period, coverage by rep."""
    if name not in CHARTS:
        raise NotFound(f"no chart {name!r}; charts: {', '.join(CHARTS)}", field="name")
    src = SqlCounters(uow.session)
    if name in ("churn", "repurchase"):
        kind, breakdown = params["period_kind"], params.get("breakdown")
        periods = d.period_range(kind, params.get("from"), params.get("to"), today, settings)
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
    period = d.period_of(params["period"], "period", settings) if params.get("period") else \
        d.Period.containing(default_kind, today)
    if name == "funnel":
        scope = scope_of(uow, principal, params.get("team"), params.get("rep"))
        steps = d.funnel(src, period, scope)
        return charts.funnel_chart([(s.stage, s.entered) for s in steps],
                                   f"Pipeline funnel {period.label} - {scope_label(scope)}")
    by = d.coverage_bars(principal.is_admin, params.get("team"), params.get("rep"))
    scope = scope_of(uow, principal, params.get("team"), params.get("rep"), by)
    parts = breakdown_parts(uow, scope, by)
    src.preload_flows([s for _, s in parts], [period], d.TABLES["followups"].metrics)
    return charts.bar_chart([(value, d.followup_coverage(src, period, s)) for value, s in parts],
                            f"Follow-up coverage by {by} {period.label} - {scope_label(scope)}",
                            "customers touched / due", percent=True)


def status(uow) -> dict:
    """Sizes of the read models and how far event application got (operators)."""
    session = uow.session
    processed = infrastructure["processed_events"]

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
        "events_applied": count(processed),
        "last_event_applied_at": utc(session.execute(select(func.max(processed.c.processed_at))).scalar()),
    }
