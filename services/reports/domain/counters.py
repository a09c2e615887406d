"""Facts the reports service folds into counters, and the counters each one moves.

Figures are read from maintained counters, never from scans. A counter is keyed
by (metric, period_kind, period_start, dimension, dimension_value): one row per
metric x period bucket (day, ISO week, month, quarter, half-year, year) x slice.
A custom date range is read as the sum of the buckets that tile it for additive
metrics, and exactly for distinct ones (see ``range_flow``).

Slices. A slice is "all", a scope (team or rep), a breakdown value (tier,
lifecycle or industry), or a scope crossed with a breakdown value, so that a
manager's "my team by tier" is one counter row too. Every fact moves the 12
slices its dimensions fall in:

    all | team | rep  x  (nothing) | tier | lifecycle | industry

encoded as dimension "all", "team", "rep.tier", ... and dimension_value "*",
"east", "r7|A", ... (a missing value is "(none)", a literal "|" or "\\" inside a
value is escaped with "\\").

Flows and stocks. Most metrics are flows: what happened in the bucket. Stocks
(customers per lifecycle, health score sum and count) are kept as net flows
(+1 in, -1 out) in the bucket of the change; a stock's value at a date is the
sum of its flows before that date (see periods.stock_plan).

Distinct deltas. A delta with ``distinct_of`` counts an entity (customer or
alert) at most once per counter key: it counts only if no other fact of that
entity already put it under that key (InMemoryCounters keeps markers; the
service decides from the customer's own records, see book.py, so a fact can
also be taken back). Everything else is a plain increment. Applying every fact
exactly once (deduplicated on event id) then yields exact figures.

From events to facts (the service adds what its per-customer rows know):

    customer.created / .archived / .updated (team, owner, industry, tier, lifecycle),
    customer.tier_changed / .lifecycle_changed / .owner_changed,
    health.score_changed                     -> CustomerChangeFact(before row, after row)
    purchase.recorded                        -> PurchaseFact (+ the customer's earliest purchase date so far)
    interaction.logged                       -> InteractionFact (rep_id and team of the event)
    task.overdue / completed / skipped / missed -> TaskFact (assignee and team of the event)
    customer.stage_changed                   -> StageChangeFact (+ when it last entered first_contact)
    alert.raised / acknowledged / escalated / resolved -> AlertFact (+ raised_at of the alert)

task.scheduled / rescheduled / reassigned / due move no counter.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import lru_cache
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Iterable, NamedTuple, Protocol

from .periods import PERIOD_KINDS, DateRange, Period, PeriodKind, period_start, stock_plan, utc_date

Number = int | Decimal

TIERS = ("A", "B", "C")
LIFECYCLES = ("potential", "new", "active", "dormant", "at_risk", "churned")
PIPELINE_STAGES = ("first_contact", "needs_analysis", "proposal", "won", "lost")
PHASES = ("pre_sale", "post_sale")
ALERT_OUTCOMES = ("recovered", "lost", "false_alarm")
DEFAULT_ACK_SLA = timedelta(hours=48)

NONE_VALUE = "(none)"
ALL_DIMENSION = "all"
ALL_VALUE = "*"


class Dimension(str, Enum):
    TEAM = "team"
    REP = "rep"
    TIER = "tier"
    LIFECYCLE = "lifecycle"
    INDUSTRY = "industry"


SCOPE_DIMENSIONS = (Dimension.TEAM, Dimension.REP)
BREAKDOWN_DIMENSIONS = (Dimension.TIER, Dimension.LIFECYCLE, Dimension.INDUSTRY)

# --- metric names -----------------------------------------------------------
PURCHASES = "purchases"
REVENUE = "revenue"                      # sum of amount_base (Decimal)
BUYERS = "buyers"                        # distinct customers
REPEAT_BUYERS = "repeat_buyers"          # distinct customers
CHURNED = "churned"                      # distinct customers
HEALTH_SUM = "health.sum"                # stock
HEALTH_SCORED = "health.scored"          # stock
INTERACTIONS = "interactions"
SATISFACTION_SUM = "satisfaction.sum"
SATISFACTION_COUNT = "satisfaction.count"
COMPLAINTS = "complaints"
TASKS_CAME_DUE = "tasks.came_due"
TASKS_COMPLETED = "tasks.completed"
TASKS_COMPLETED_ON_TIME = "tasks.completed_on_time"
TASKS_SKIPPED = "tasks.skipped"
TASKS_MISSED = "tasks.missed"
TASKS_OVERDUE = "tasks.overdue"
CUSTOMERS_DUE = "followup.customers_due"          # distinct customers
CUSTOMERS_TOUCHED = "followup.customers_touched"  # distinct customers
WON_CYCLE_SECONDS = "won.cycle_seconds"
WON_WITH_CYCLE = "won.with_cycle"
ALERTS_RAISED = "alerts.raised"
ALERTS_HANDLED = "alerts.handled"                  # distinct alerts
ALERTS_HANDLED_IN_TIME = "alerts.handled_in_time"  # distinct alerts
ALERTS_ESCALATED = "alerts.escalated"              # distinct alerts


def customers_in(lifecycle: str) -> str:
    """Stock: customers currently in `lifecycle` (archived customers are out)."""
    return f"customers:{lifecycle}"


def interactions_in(phase: str) -> str:
    return f"interactions:{phase}"


def stage_entered(stage: str) -> str:
    """Distinct customers that entered pipeline `stage`."""
    return f"stage.entered:{stage}"


def moved(dimension: Dimension | str, old: str, new: str) -> str:
    return f"moved.{Dimension(dimension).value}:{old}>{new}"


def alerts_resolved(outcome: str) -> str:
    """Distinct alerts resolved with `outcome`."""
    return f"alerts.resolved:{outcome}"


STOCK_METRICS = tuple(customers_in(lc) for lc in LIFECYCLES) + (HEALTH_SUM, HEALTH_SCORED)
# counters that count an entity (customer or alert) once per key: they do not add up over buckets
DISTINCT_METRICS = frozenset({CHURNED, BUYERS, REPEAT_BUYERS, CUSTOMERS_DUE, CUSTOMERS_TOUCHED,
                              ALERTS_HANDLED, ALERTS_HANDLED_IN_TIME, ALERTS_ESCALATED})


# distinct counters whose entities are customers: the customers behind such a figure can be listed
CUSTOMER_METRICS = (BUYERS, REPEAT_BUYERS, CHURNED, CUSTOMERS_DUE, CUSTOMERS_TOUCHED,
                    *(f"stage.entered:{stage}" for stage in PIPELINE_STAGES))


def is_distinct(metric: str) -> bool:
    """Whether a metric counts distinct customers or alerts (so a longer period is not the sum of shorter ones)."""
    return metric in DISTINCT_METRICS or metric.startswith(("stage.entered:", "alerts.resolved:"))


# --- slices and keys --------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


@dataclass(frozen=True)
class Slice:
    """Which customers a counter covers: at most one scope and one breakdown value."""
    team: str | None = None
    rep: str | None = None
    tier: str | None = None
    lifecycle: str | None = None
    industry: str | None = None

    def __post_init__(self):
        if self.team is not None and self.rep is not None:
            raise ValueError("a slice has at most one scope: team or rep")
        if sum(v is not None for v in (self.tier, self.lifecycle, self.industry)) > 1:
            raise ValueError("a slice has at most one breakdown: tier, lifecycle or industry")

    def _parts(self) -> list[tuple[Dimension, str]]:
        return [(d, getattr(self, d.value)) for d in (*SCOPE_DIMENSIONS, *BREAKDOWN_DIMENSIONS)
                if getattr(self, d.value) is not None]

    @property
    def dimension(self) -> str:
        return ".".join(d.value for d, _ in self._parts()) or ALL_DIMENSION

    @property
    def value(self) -> str:
        return "|".join(_escape(v) for _, v in self._parts()) or ALL_VALUE

    @property
    def scope(self) -> tuple[Dimension, str] | None:
        return next(((d, v) for d, v in self._parts() if d in SCOPE_DIMENSIONS), None)

    def with_value(self, dimension: Dimension | str, value: str) -> Slice:
        return replace(self, **{Dimension(dimension).value: value})


ALL = Slice()


class CounterKey(NamedTuple):
    """Immutable and hashable like a frozen dataclass; a named tuple because an event makes hundreds."""
    metric: str
    period_kind: PeriodKind
    period_start: date
    dimension: str
    dimension_value: str

    @classmethod
    def of(cls, metric: str, period: Period, slice_: Slice = ALL) -> CounterKey:
        return cls(metric, period.kind, period.start, slice_.dimension, slice_.value)


class CounterDelta(NamedTuple):
    key: CounterKey
    amount: Number
    distinct_of: str | None = None  # entity id: count once per key (see module doc)


# --- facts ------------------------------------------------------------------
@dataclass(frozen=True)
class Dims:
    """The dimensions a fact is counted under, as they were when it happened.

    rep is the customer's owner for customer facts, the acting rep for an
    interaction and the assignee for a task; team likewise.
    """
    team: str | None = None
    rep: str | None = None
    tier: str | None = None
    lifecycle: str | None = None
    industry: str | None = None


def slices_for(dims: Dims) -> list[Slice]:
    def v(value: str | None) -> str:
        return NONE_VALUE if value is None else value

    scopes = [{}, {"team": v(dims.team)}, {"rep": v(dims.rep)}]
    breakdowns = [{}, {"tier": v(dims.tier)}, {"lifecycle": v(dims.lifecycle)}, {"industry": v(dims.industry)}]
    return [Slice(**scope, **breakdown) for scope in scopes for breakdown in breakdowns]


@lru_cache(maxsize=8192)
def _slice_keys(dims: Dims) -> tuple[tuple[str, str], ...]:
    """(dimension, value) of every slice of `dims`, encoded once: a batch meets the same dims over and over."""
    return tuple((s.dimension, s.value) for s in slices_for(dims))


@dataclass(frozen=True)
class CustomerState:
    """The per-customer row the reports service keeps (owner is dims.rep)."""
    dims: Dims
    health_score: int | None = None


@dataclass(frozen=True)
class CustomerChangeFact:
    """The customer's state before and after one event.

    customer.created: before=None; customer.archived: after=None; tier_changed,
    lifecycle_changed, owner_changed, customer.updated (team, industry) and
    health.score_changed: both states. Moves stocks, counts tier and lifecycle
    moves, and churn (a move into "churned").
    """
    customer_id: str
    at: datetime
    before: CustomerState | None
    after: CustomerState | None


@dataclass(frozen=True)
class PurchaseFact:
    customer_id: str
    purchase_id: str
    amount_base: Decimal
    purchased_at: datetime
    dims: Dims
    # the customer's earliest purchase known before this one, None if this is the first recorded
    previous_first_purchase_at: datetime | None


@dataclass(frozen=True)
class InteractionFact:
    interaction_id: str
    customer_id: str
    kind: str
    phase: str
    occurred_at: datetime
    satisfaction: int | None
    dims: Dims


class TaskEvent(str, Enum):
    OVERDUE = "overdue"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    MISSED = "missed"


@dataclass(frozen=True)
class TaskFact:
    task_id: str
    customer_id: str
    event: TaskEvent
    due_at: datetime  # every task counter is bucketed by the task's (final) due time
    dims: Dims
    on_time: bool = False


@dataclass(frozen=True)
class StageChangeFact:
    customer_id: str
    old_stage: str | None
    new_stage: str
    changed_at: datetime
    dims: Dims
    # when the customer last entered first_contact before this change, if known
    first_contact_at: datetime | None = None


class AlertEvent(str, Enum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertFact:
    alert_id: str
    customer_id: str
    event: AlertEvent
    at: datetime         # when this event happened
    raised_at: datetime  # every alert counter is bucketed by the raise (a cohort)
    dims: Dims
    outcome: str | None = None  # resolved only


Fact = CustomerChangeFact | PurchaseFact | InteractionFact | TaskFact | StageChangeFact | AlertFact


# --- fact -> counter deltas -------------------------------------------------
def _spread(amounts: dict[str, Number], at: date | datetime, dims: Dims,
            distinct_of: str | None = None) -> list[CounterDelta]:
    """The same amounts in the bucket of `at` of every period kind, in every slice of `dims`."""
    slices = _slice_keys(dims)
    amounts = [(metric, amount) for metric, amount in amounts.items() if amount]
    # an event makes hundreds of these: tuple.__new__ skips the named tuples' Python-level __new__
    make = tuple.__new__
    return [make(CounterDelta, (make(CounterKey, (metric, kind, start, dimension, value)), amount, distinct_of))
            for kind, start in _bucket_starts(utc_date(at)) for dimension, value in slices
            for metric, amount in amounts]


@lru_cache(maxsize=4096)
def _bucket_starts(day: date) -> tuple[tuple[PeriodKind, date], ...]:
    return tuple((kind, period_start(kind, day)) for kind in PERIOD_KINDS)


def _stock_share(state: CustomerState | None) -> dict[tuple[str, str, str], int]:
    """(metric, dimension, value) -> the customer's share of that stock."""
    if state is None:
        return {}
    metrics = {customers_in(state.dims.lifecycle or NONE_VALUE): 1}
    if state.health_score is not None:
        metrics.update({HEALTH_SUM: state.health_score, HEALTH_SCORED: 1})
    return {(m, dimension, value): amount for dimension, value in _slice_keys(state.dims)
            for m, amount in metrics.items()}


def _customer_change(fact: CustomerChangeFact) -> list[CounterDelta]:
    # stocks: take the customer out of the slices it was in, put it into the new ones;
    # only the net difference is emitted, so an unchanged slice moves by nothing.
    net: dict[tuple[str, str, str], int] = defaultdict(int)
    for key, amount in _stock_share(fact.after).items():
        net[key] += amount
    for key, amount in _stock_share(fact.before).items():
        net[key] -= amount
    deltas = []
    moves = [(metric, dimension, value, amount) for (metric, dimension, value), amount in net.items() if amount]
    for kind, start in _bucket_starts(utc_date(fact.at)):
        deltas += [CounterDelta(CounterKey(metric, kind, start, dimension, value), amount)
                   for metric, dimension, value, amount in moves]
    before, after = fact.before, fact.after
    if before is None or after is None:
        return deltas
    # moves and churn are counted where the customer came from, so they line up
    # with the stock at period start that rates divide by
    for dimension in (Dimension.TIER, Dimension.LIFECYCLE):
        old, new = getattr(before.dims, dimension.value), getattr(after.dims, dimension.value)
        if old is not None and new is not None and old != new:
            deltas += _spread({moved(dimension, old, new): 1}, fact.at, before.dims)
    if after.dims.lifecycle == "churned" and before.dims.lifecycle != "churned":
        deltas += _spread({CHURNED: 1}, fact.at, before.dims, distinct_of=fact.customer_id)
    return deltas


def _purchase(fact: PurchaseFact) -> list[CounterDelta]:
    deltas = _spread({PURCHASES: 1, REVENUE: fact.amount_base}, fact.purchased_at, fact.dims)
    deltas += _spread({BUYERS: 1}, fact.purchased_at, fact.dims, distinct_of=fact.customer_id)
    first = fact.previous_first_purchase_at
    if first is not None:
        # a purchase after the known first one is a repeat; one backdated before it
        # becomes the new first, which turns the old first into a repeat purchase
        repeat_at = fact.purchased_at if fact.purchased_at >= first else first
        deltas += _spread({REPEAT_BUYERS: 1}, repeat_at, fact.dims, distinct_of=fact.customer_id)
    return deltas


def _interaction(fact: InteractionFact) -> list[CounterDelta]:
    amounts: dict[str, Number] = {INTERACTIONS: 1, interactions_in(fact.phase): 1}
    if fact.satisfaction is not None:
        amounts.update({SATISFACTION_SUM: fact.satisfaction, SATISFACTION_COUNT: 1})
    if fact.kind == "complaint":
        amounts[COMPLAINTS] = 1
    return _spread(amounts, fact.occurred_at, fact.dims)


def _task(fact: TaskFact) -> list[CounterDelta]:
    event = TaskEvent(fact.event)
    if event is TaskEvent.OVERDUE:
        return _spread({TASKS_OVERDUE: 1}, fact.due_at, fact.dims)
    # a task settles exactly once (completed, skipped or missed): that is when it counts as come due
    amounts = {TASKS_CAME_DUE: 1,
               TASKS_COMPLETED: int(event is TaskEvent.COMPLETED),
               TASKS_COMPLETED_ON_TIME: int(event is TaskEvent.COMPLETED and fact.on_time),
               TASKS_SKIPPED: int(event is TaskEvent.SKIPPED),
               TASKS_MISSED: int(event is TaskEvent.MISSED)}
    deltas = _spread(amounts, fact.due_at, fact.dims)
    if event is not TaskEvent.SKIPPED:  # a skipped task means no touch was due after all
        deltas += _spread({CUSTOMERS_DUE: 1, CUSTOMERS_TOUCHED: int(event is TaskEvent.COMPLETED)},
                          fact.due_at, fact.dims, distinct_of=fact.customer_id)
    return deltas


def _stage_change(fact: StageChangeFact) -> list[CounterDelta]:
    deltas = _spread({stage_entered(fact.new_stage): 1}, fact.changed_at, fact.dims, distinct_of=fact.customer_id)
    start = fact.first_contact_at
    if fact.new_stage == "won" and start is not None and start <= fact.changed_at:
        seconds = int((fact.changed_at - start).total_seconds())
        deltas += _spread({WON_CYCLE_SECONDS: seconds, WON_WITH_CYCLE: 1}, fact.changed_at, fact.dims)
    return deltas


def _alert(fact: AlertFact, ack_sla: timedelta) -> list[CounterDelta]:
    event = AlertEvent(fact.event)
    if event is AlertEvent.RAISED:
        return _spread({ALERTS_RAISED: 1}, fact.raised_at, fact.dims)
    if event is AlertEvent.ESCALATED:
        return _spread({ALERTS_ESCALATED: 1}, fact.raised_at, fact.dims, distinct_of=fact.alert_id)
    # acknowledging or resolving both handle the alert; "in time" if any handling came
    # within the SLA, which is the same as the first one doing so, in whatever order events arrive
    amounts = {ALERTS_HANDLED: 1, ALERTS_HANDLED_IN_TIME: int(fact.at - fact.raised_at <= ack_sla)}
    if event is AlertEvent.RESOLVED:
        if fact.outcome not in ALERT_OUTCOMES:
            raise ValueError(f"alert outcome must be one of {ALERT_OUTCOMES}, not {fact.outcome!r}")
        amounts[alerts_resolved(fact.outcome)] = 1
    return _spread(amounts, fact.raised_at, fact.dims, distinct_of=fact.alert_id)


def counter_updates(fact: Fact, *, ack_sla: timedelta = DEFAULT_ACK_SLA) -> list[CounterDelta]:
    """The counter increments one fact causes (apply once per event id)."""
    match fact:
        case CustomerChangeFact():
            return _customer_change(fact)
        case PurchaseFact():
            return _purchase(fact)
        case InteractionFact():
            return _interaction(fact)
        case TaskFact():
            return _task(fact)
        case StageChangeFact():
            return _stage_change(fact)
        case AlertFact():
            return _alert(fact, ack_sla)
    raise TypeError(f"not a reports fact: {type(fact).__name__}")


# --- storing counters -------------------------------------------------------
def to_stored(metric: str, amount: Number) -> int:
    """Counters are stored as integers: revenue in cents (hundredths of the base currency)."""
    if metric == REVENUE:
        return int((Decimal(amount) * 100).to_integral_exact())
    return int(amount)


def from_stored(metric: str, stored: int) -> Number:
    if metric == REVENUE:
        return (Decimal(stored) / 100).quantize(Decimal("0.01"))
    return stored


# --- reading counters -------------------------------------------------------
class CounterSource(Protocol):
    """What figures read; the persistence layer implements it over its counter table."""

    def flow(self, metric: str, period: Period | DateRange, slice_: Slice = ALL) -> Number:
        """The counter in that bucket, 0 if absent; over a DateRange, see ``range_flow``."""

    def stock(self, metric: str, at: date, slice_: Slice = ALL) -> Number:
        """Sum of the metric's flows dated before day `at` (see periods.stock_plan)."""


def range_flow(metric: str, span: DateRange, slice_: Slice, bucket_flow, distinct_over) -> Number:
    """A metric over a custom range: additive ones are the sum of the coarsest buckets that tile it;
    distinct ones cannot be summed (a customer buying in February and in April is one buyer of
    February-April), so ``distinct_over(metric, span, slice_)`` counts them over the whole range."""
    if is_distinct(metric):
        return distinct_over(metric, span, slice_)
    total: Number = 0
    for tile in span.tiles():
        total += bucket_flow(metric, tile, slice_)
    return total


@dataclass
class InMemoryCounters:
    """Reference implementation of applying deltas and reading counters (tests, fakes)."""
    values: dict[CounterKey, Number] = field(default_factory=dict)
    markers: set[tuple[CounterKey, str]] = field(default_factory=set)

    def apply(self, deltas: Iterable[CounterDelta]) -> None:
        for delta in deltas:
            if delta.distinct_of is not None:
                marker = (delta.key, delta.distinct_of)
                if marker in self.markers:
                    continue
                self.markers.add(marker)
            self.values[delta.key] = self.values.get(delta.key, 0) + delta.amount

    def flow(self, metric: str, period: Period | DateRange, slice_: Slice = ALL) -> Number:
        if isinstance(period, DateRange):
            return range_flow(metric, period, slice_, self.flow, self._distinct_over)
        return self.values.get(CounterKey.of(metric, period, slice_), 0)

    def _distinct_over(self, metric: str, span: DateRange, slice_: Slice) -> int:
        """Entities marked under the day buckets of the range (each day bucket records who it counted)."""
        return len({entity for key, entity in self.markers
                    if key.metric == metric and key.period_kind is PeriodKind.DAY and span.contains(key.period_start)
                    and key.dimension == slice_.dimension and key.dimension_value == slice_.value})

    def stock(self, metric: str, at: date, slice_: Slice = ALL) -> Number:
        total: Number = 0
        for kind, low, high in stock_plan(at):
            for key, value in self.values.items():
                if (key.metric == metric and key.period_kind is kind and key.dimension == slice_.dimension
                        and key.dimension_value == slice_.value
                        and (low is None or key.period_start >= low) and key.period_start < high):
                    total += value
        return total
