"""Judging one customer as of a moment (its score, the rules that fire, the alerts to raise), and when its
verdict can next change if no new fact arrives, so the daily sweep can leave it alone until then.

``next_check`` is a lower bound: it may name a day on which nothing changes after all (the sweep then looks
and finds nothing), never a day later than the first on which the band or a rule's verdict changes. What can
change a verdict with time alone (docs/alerts.md, "The sweep"):

* a fact dated after ``as_of`` becoming known on its day;
* a threshold day: silence (days without contact reach the tier's limit), no_repurchase (days since the last
  purchase pass the limit), open_complaint (a complaint open longer than allowed);
* the score's steps: a purchase leaving the 12-month window, a missed task leaving its window, recency
  starting to fall once the reference gap has passed;
* the score's slide: recency and silence lower it a little every day; the band changes only once the slide
  has used up the distance to the band's lower edge;
* a rule resolved within the re-alert cooldown may be raised again once the cooldown ends.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Mapping

from services.alerts.domain.common import utc_day
from services.alerts.domain.config import AlertsConfig
from services.alerts.domain.health import HealthBreakdown, band, health_breakdown, recency_reference
from services.alerts.domain.lifecycle import alerts_to_raise
from services.alerts.domain.rules import FiredRule, evaluate, no_repurchase_limit
from services.alerts.domain.signals import ROLLING_YEAR, CustomerSignals, Known

# even a customer whose verdict cannot change is looked at again this often: a cheap net under this analysis
RECHECK_AT_LEAST_EVERY = timedelta(days=90)


@dataclass(frozen=True)
class Judgement:
    breakdown: HealthBreakdown
    band: str
    fired: list[FiredRule]             # the rules that fire
    to_raise: list[FiredRule]          # those with no open alert, nor one resolved within the cooldown
    next_check_at: datetime | None     # None unless asked for


def judge(signals: CustomerSignals, as_of: datetime, cfg: AlertsConfig, open_rules: Iterable[str] = (),
          resolved_at_by_rule: Mapping[str, datetime] | None = None, only: frozenset[str] | None = None,
          schedule: bool = False) -> Judgement:
    """Score and rules (of ``only``, when given) as of ``as_of``; with ``schedule``, when to look again."""
    known = Known(signals, as_of)
    breakdown = health_breakdown(signals, as_of, cfg.health, cfg.rules, known)
    fired = evaluate(signals, cfg.rules, as_of, known, only) if only is None or only else []
    to_raise = alerts_to_raise(fired, open_rules, resolved_at_by_rule=resolved_at_by_rule or None, as_of=as_of,
                               cooldown=cfg.realert_cooldown) if fired else []
    next_at = next_check(known, cfg, breakdown, resolved_at_by_rule) if schedule else None
    return Judgement(breakdown, band(breakdown.score, cfg.health.bands), fired, to_raise, next_at)


def next_check(known: Known, cfg: AlertsConfig, breakdown: HealthBreakdown,
               resolved_at_by_rule: Mapping[str, datetime] | None = None) -> datetime:
    """The first moment after ``known.as_of`` at which the band or a rule's verdict may differ (see above)."""
    today, s, rules, health = known.day, known.signals, cfg.rules, cfg.health
    days: list[date] = [today + RECHECK_AT_LEAST_EVERY]

    # facts dated later become known on their day
    days += [utc_day(p.purchased_at) for p in s.purchases[len(known.purchases):]]
    days += [utc_day(r.rated_at) for r in s.satisfaction if utc_day(r.rated_at) > today]
    days += [utc_day(m) for m in s.missed_tasks.values() if utc_day(m) > today]
    since = s.last_contact_at or s.created_at
    if since is not None:
        days.append(utc_day(since))

    # silence: the rule's threshold, where the score's silence penalty also stops growing
    silence_limit = rules.silence.days_for(s.tier)
    if since is not None:
        days.append(utc_day(since) + timedelta(days=silence_limit))
    # open complaints turning too old
    days += [utc_day(opened) + timedelta(days=rules.open_complaint.max_open_days + 1)
             for opened in s.open_complaints.values()]
    # missed tasks leaving their window
    days += [utc_day(m) + timedelta(days=health.missed_task_window_days) for m in s.missed_tasks.values()]

    last_purchase, recency_slope = None, 0.0
    if known.purchases:
        last_purchase = known.purchase_days[-1]
        limit, _ = no_repurchase_limit(known, rules)
        days.append(last_purchase + timedelta(days=math.floor(limit) + 1))
        # purchases leaving the 12-month window (the oldest one inside goes first)
        first_inside = today - timedelta(days=ROLLING_YEAR - 1)
        inside = [d for d in known.purchase_days if d >= first_inside]
        if inside:
            days.append(inside[0] + timedelta(days=ROLLING_YEAR))
        reference = recency_reference(known, health)
        since_purchase = (today - last_purchase).days
        days.append(last_purchase + timedelta(days=math.floor(reference) + 1))   # recency starts to fall
        if reference < since_purchase < reference * health.recency_zero_ratio:
            recency_slope = 1 / (reference * (health.recency_zero_ratio - 1))

    slide = _slide_days(known, cfg, breakdown, recency_slope, silence_limit)
    if slide is not None:
        days.append(today + timedelta(days=slide))

    moment = _midnight(min(d for d in days if d > today))
    cooldown = cfg.realert_cooldown
    for resolved_at in (resolved_at_by_rule or {}).values():
        if known.as_of < resolved_at + cooldown < moment:
            moment = resolved_at + cooldown
    return moment


def _slide_days(known: Known, cfg: AlertsConfig, breakdown: HealthBreakdown, recency_slope: float,
                silence_limit: int) -> int | None:
    """Whole days the score can slide (recency and silence, no other change) before it may leave its band."""
    health = cfg.health
    thresholds = health.bands
    edge = (thresholds.healthy if breakdown.score >= thresholds.healthy
            else thresholds.watch if breakdown.score >= thresholds.watch else None)
    if edge is None:
        return None                          # at_risk: sliding further changes no band
    silence_slope = 0.0
    silent = known.days_without_contact
    if silent is not None and silent < silence_limit:
        silence_slope = health.penalties.max_silence / silence_limit
    w = health.weights
    per_day = (w.recency * recency_slope + w.engagement * silence_slope) / w.total
    if per_day <= 0:
        return None
    # the band holds while 100 * weighted + 0.5 stays >= edge (health.score_of), so for margin / per_day days
    margin = (breakdown.weighted * 100 + 0.5 - edge) / 100
    return max(1, math.floor(margin / per_day - 1e-9) + 1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)
