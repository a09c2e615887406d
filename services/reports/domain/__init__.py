"""Pure core of the reports service: periods, facts -> counters, customer books, range marks, figures, tables,
access, CSV.

No nameko, HTTP or SQL here. The service keeps one book per customer (book.py:
its timeline of attribute changes and its fact records, whatever order events
arrive in; entries.py: what each event adds to it), turns them into facts with
the customer's dimensions as they were, applies the counter deltas ``reconcile``
derives (once per customer per batch of events), and answers queries
(requests.py: what a request may ask) with the figure functions and tables over
a ``CounterSource`` backed by its counter table.
"""
from .access import ReportAccessDenied, check_access, default_slice, scope_for
from .counters import (
    ALL, ALL_DIMENSION, ALL_VALUE, BREAKDOWN_DIMENSIONS, CUSTOMER_METRICS, DEFAULT_ACK_SLA, LIFECYCLES, NONE_VALUE,
    PIPELINE_STAGES, SCOPE_DIMENSIONS, STOCK_METRICS, TIERS, AlertEvent, AlertFact, CounterDelta, CounterKey,
    DISTINCT_METRICS, CounterSource, CustomerChangeFact, CustomerState, Dimension, Dims, Fact, InMemoryCounters,
    InteractionFact,
    PurchaseFact, Slice, StageChangeFact, TaskEvent, TaskFact, counter_updates, is_distinct, slices_for,
)
from .export import format_cell, to_csv
from .figures import (
    ACTIVE_BASE_LIFECYCLES, FUNNEL_STAGES, HEADLINE_COLUMNS, AlertSummary, FunnelStep, InteractionCounts,
    active_base, alert_summary, average_cycle_days, average_health_score, average_satisfaction, churn_rate,
    complaints, distribution, followup_coverage, funnel, handled_in_time_rate, headline_figures, interaction_counts,
    interactions_per_rep, missed_followup_rate, movements, ratio, recovery_rate, repurchase_rate,
    retention_rate, revenue, win_rate,
)
from .periods import (
    PERIOD_KINDS, DateRange, InvalidPeriod, Period, PeriodKind, format_period, parse_period, parse_range,
    period_end, period_start, periods_between, stock_plan, utc_date,
)
from .book import DISTINCT_KINDS, Change, Knowledge, Outcome, Recount, Record, Timeline, reconcile, recount_for
from .entries import Origin
from .requests import (
    as_of_day, check_breakdown, coverage_bars, dashboard_period, date_range, period_of, period_range, requested_slice,
    scope_json, scope_label, without_empty_none,
)
from .tables import TABLE_NAMES, TABLES, FigureTable
from .settings import ReportSettings
