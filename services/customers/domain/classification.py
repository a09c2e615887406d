"""Value tier and lifecycle of a customer, from the facts known as of a moment.

value tier
    rolling 12-month purchases in base currency (purchases dated in
    (as_of - 365 days, as_of]) against descending thresholds, e.g. A >= 100000,
    B >= 20000, C >= 0.

lifecycle, checked in this order
    potential  no purchase yet
    churned    last purchase older than ``churned_days`` and no interaction
               within ``churn_contact_days`` (a customer still talking to us is dormant)
    new        first purchase within ``new_days``
    active     last purchase within ``active_days``
    at_risk    last purchase older than ``active_days`` but within ``at_risk_days`` (going quiet)
    dormant    otherwise
and then an open churn alert's flag turns new or active into at_risk (AT_RISK_IS_NEWS): a dormant
customer stays dormant, and a flagged customer still goes dormant on the day its silence says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from crm_common.contracts.fields import AT_RISK_IS_NEWS
from crm_common.errors import DomainError

TIERS = ("A", "B", "C")
LIFECYCLES = ("potential", "new", "active", "dormant", "at_risk", "churned")
FIRST_LIFECYCLE = "potential"
DAY_SETTINGS = ("new_days", "active_days", "at_risk_days", "churned_days", "churn_contact_days")


@dataclass(frozen=True)
class ClassificationPolicy:
    # (tier, minimum rolling 12-month total), highest first; the last minimum is 0
    tier_thresholds: tuple[tuple[str, Decimal], ...] = (("A", Decimal(100000)), ("B", Decimal(20000)),
                                                        ("C", Decimal(0)))
    new_days: int = 90
    active_days: int = 180
    at_risk_days: int = 270
    churned_days: int = 540
    churn_contact_days: int = 180
    base_currency: str = "USD"
    # units of base currency per unit of the currency
    fx_rates: dict = field(default_factory=lambda: {"USD": Decimal(1), "EUR": Decimal("1.08"),
                                                    "GBP": Decimal("1.27"), "CNY": Decimal("0.14"),
                                                    "JPY": Decimal("0.0067")})

    def with_overrides(self, overrides: dict) -> "ClassificationPolicy":
        """This policy with what an admin stored (PUT /v1/classification/settings): tier minimums by tier and
        day counts; each relation that must hold is checked, naming the field that breaks it."""
        minimums = {**dict(self.tier_thresholds), **{tier: Decimal(str(v))
                                                      for tier, v in overrides.get("tier_minimums", {}).items()}}
        days = {name: overrides.get(name, getattr(self, name)) for name in DAY_SETTINGS}
        ordered = [tier for tier, _ in self.tier_thresholds]
        for higher, lower in zip(ordered, ordered[1:]):
            if minimums[lower] >= minimums[higher]:
                raise DomainError(f"must be below tier {higher}'s minimum ({minimums[higher]})",
                                  field=f"tier_minimums.{lower}")
        if minimums[ordered[-1]] != 0:
            raise DomainError("the lowest tier starts at 0", field=f"tier_minimums.{ordered[-1]}")
        for shorter, longer in (("active_days", "at_risk_days"), ("at_risk_days", "churned_days")):
            if not days[shorter] < days[longer]:
                raise DomainError(f"must be more than {shorter} ({days[shorter]})", field=longer)
        return replace(self, tier_thresholds=tuple((tier, minimums[tier]) for tier in ordered), **days)

    def __post_init__(self):
        minimums = [m for _, m in self.tier_thresholds]
        if not self.tier_thresholds or minimums != sorted(minimums, reverse=True) or minimums[-1] != 0:
            raise DomainError("tier thresholds must descend and end at 0", field="tier_thresholds")
        days = [self.new_days, self.active_days, self.at_risk_days, self.churned_days, self.churn_contact_days]
        if min(days) <= 0:
            raise DomainError("day counts must be positive", field="lifecycle_days")
        if not self.active_days < self.at_risk_days < self.churned_days:
            raise DomainError("active_days < at_risk_days < churned_days must hold", field="lifecycle_days")

    @classmethod
    def from_settings(cls, settings: dict) -> "ClassificationPolicy":
        """CUSTOMERS_TIER_THRESHOLDS="A:100000,B:20000,C:0", CUSTOMERS_ACTIVE_DAYS=180, ..."""
        kwargs = {}
        if settings.get("CUSTOMERS_TIER_THRESHOLDS"):
            pairs = []
            for item in settings["CUSTOMERS_TIER_THRESHOLDS"].split(","):
                tier, _, minimum = item.partition(":")
                pairs.append((tier.strip(), Decimal(minimum.strip())))
            kwargs["tier_thresholds"] = tuple(pairs)
        for name in ("new_days", "active_days", "at_risk_days", "churned_days", "churn_contact_days"):
            key = f"CUSTOMERS_{name.upper()}"
            if settings.get(key):
                kwargs[name] = int(settings[key])
        if settings.get("CUSTOMERS_BASE_CURRENCY"):
            kwargs["base_currency"] = settings["CUSTOMERS_BASE_CURRENCY"]
        if settings.get("CUSTOMERS_FX_RATES"):
            rates = {}
            for item in settings["CUSTOMERS_FX_RATES"].split(","):
                code, _, rate = item.partition(":")
                rates[code.strip().upper()] = Decimal(rate.strip())
            kwargs["fx_rates"] = rates
        return cls(**kwargs)

    def to_base(self, amount: Decimal, currency: str) -> Decimal:
        if currency == self.base_currency:
            return amount
        try:
            rate = self.fx_rates[currency]
        except KeyError:
            raise DomainError(f"unsupported currency {currency}; known: {sorted(self.fx_rates)}",
                              field="currency") from None
        return (amount * rate).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class CustomerFacts:
    """What classification looks at, as of a moment."""
    rolling_12m_total: Decimal
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    last_interaction_at: datetime | None
    flagged_at_risk: bool = False


def facts_known_at(as_of: datetime, rolling_12m_total: Decimal, first_purchase_at: datetime | None,
                   last_purchase_at: datetime | None, last_interaction_at: datetime | None,
                   flagged_at_risk: bool) -> CustomerFacts:
    """The facts as they stood at as_of: a later interaction had not happened yet, so a past
    as_of replays history (demo, backfill). Purchases come already limited to as_of."""
    if last_interaction_at is not None and last_interaction_at > as_of:
        last_interaction_at = None
    return CustomerFacts(rolling_12m_total, first_purchase_at, last_purchase_at, last_interaction_at,
                         flagged_at_risk)


def tier_for(total: Decimal, policy: ClassificationPolicy) -> str:
    for tier, minimum in policy.tier_thresholds:
        if total >= minimum:
            return tier
    return policy.tier_thresholds[-1][0]


def lifecycle_for(facts: CustomerFacts, as_of: datetime, policy: ClassificationPolicy) -> tuple[str, str]:
    """Returns (lifecycle, reason)."""
    if facts.last_purchase_at is None:
        return "potential", "no purchase yet"
    since_purchase = (as_of - facts.last_purchase_at).days
    since_first = (as_of - facts.first_purchase_at).days
    if since_purchase > policy.churned_days:
        if facts.last_interaction_at is None or (as_of - facts.last_interaction_at).days > policy.churn_contact_days:
            return "churned", f"no purchase for {since_purchase} days and no contact for {policy.churn_contact_days}"
    if since_first <= policy.new_days:
        stage, reason = "new", f"first purchase {since_first} days ago"
    elif since_purchase <= policy.active_days:
        stage, reason = "active", f"last purchase {since_purchase} days ago"
    elif since_purchase <= policy.at_risk_days:
        stage, reason = "at_risk", f"no purchase for {since_purchase} days"
    else:
        stage, reason = "dormant", f"no purchase for {since_purchase} days"
    if facts.flagged_at_risk and stage in AT_RISK_IS_NEWS:
        return "at_risk", "open churn alert"
    return stage, reason


@dataclass(frozen=True)
class Classification:
    tier: str
    lifecycle: str
    reason: str


def classify(facts: CustomerFacts, as_of: datetime, policy: ClassificationPolicy) -> Classification:
    lifecycle, reason = lifecycle_for(facts, as_of, policy)
    return Classification(tier_for(facts.rolling_12m_total, policy), lifecycle, reason)


def rolling_window_start(as_of: datetime) -> datetime:
    return as_of - timedelta(days=365)


def refreshes_recency(last_interaction_at: datetime | None, occurred_at: datetime) -> bool:
    """Only a later interaction moves recency: backdated history logged now changes nothing."""
    return last_interaction_at is None or occurred_at > last_interaction_at


def resolution_clears_flag(clears_at_risk: bool | None, outcome: str) -> bool:
    """The alerts service says whether the at-risk flag goes (no other alert still open); producers
    that predate that field mean: a recovered customer is no longer at risk."""
    if clears_at_risk is None:
        return outcome == "recovered"
    return clears_at_risk
