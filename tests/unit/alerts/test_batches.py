"""Bulk paths give what one customer at a time gives: a batch of events against the same events one by one;
the paged, set-based sweep against judging each customer with the pure domain functions; and the daily sweep
that skips customers whose verdict cannot change against judging everyone every day."""
from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_common.clock import FixedClock
from crm_common.testing import api_request as request
from services.alerts import domain, jobs, models
from services.alerts.domain import AlertsSettings
from tests.unit.alerts.histories import (
    ADMIN, NOW, created, deliver, event, interaction, make_service, purchase, rep, rows, task_missed,
    tier_changed,
)


def alerts_seen(store):
    """Alerts as the outside sees them (ids differ between stores)."""
    return sorted((r.customer_id, r.rule, r.status, r.trigger, json.dumps(r.signals, sort_keys=True), r.health_score,
                   r.owner_id, r.team, r.raised_at.isoformat(), r.outcome or "", r.resolved_by or "")
                  for r in rows(store, models.alerts))


def health_seen(store):
    return sorted((r.customer_id, r.score, r.band, json.dumps(r.breakdown, sort_keys=True), r.recorded_score)
                  for r in rows(store, models.customer_health))


def read_models(store):
    return sorted((r.customer_id, json.dumps(r.signals, sort_keys=True), json.dumps(r.profile_versions, sort_keys=True),
                   r.known, r.owner_id, r.team, r.tier, r.lifecycle, r.archived, str(r.last_fact_at))
                  for r in rows(store, models.customer_signals))


def latest_history(store):
    latest = {}
    for h in sorted(rows(store, models.health_history), key=lambda h: h.id):
        latest[h.customer_id] = (h.score, h.band)
    return latest


def alert_events(store):
    return sorted((e.name, e.data["customer_id"], e.data["rule"], e.data.get("trigger", ""), e.data.get("outcome", ""))
                  for e in store.events() if e.name.startswith("alert."))


def history(cid, contact_days=5, owner="rep-n1", team="north"):
    """A B-tier customer buying every 30 days up to 10 days ago, last contacted ``contact_days`` ago."""
    return [created(cid, owner=owner, team=team)] + [
        purchase(cid, d, owner=owner, team=team) for d in (250, 220, 190, 160, 130, 100, 70, 40, 10)] + [
        interaction(cid, contact_days)]


def two_services(tmp_path, clock):
    services = [make_service(tmp_path / f"{name}.db", clock) for name in ("one_by_one", "batched")]
    for svc, _ in services:
        deliver(svc, rep("mgr-north", role="manager"), rep("rep-n1", manager_id="mgr-north"),
                rep("rep-s1", team="south"))
    return services


# ---------------------------------------------------------------- a batch against its events one by one

def live_burst():
    """Live facts of several customers, interleaved as a batch receives them."""
    archived = event("customer.archived", "f", {"customer_id": "f", "owner_id": "rep-n1", "team": "north",
                                                "archived_at": NOW}, NOW)
    moved = event("customer.owner_changed", "e", {
        "customer_id": "e", "old_owner_id": "rep-n1", "old_team": "north", "new_owner_id": "rep-s1",
        "new_team": "south", "transfer_id": "t1", "changed_by": "admin"}, NOW)
    return [
        interaction("a", 0, "no_answer", hours=5), purchase("c", 0), interaction("b", 0, satisfaction=4, hours=6),
        interaction("a", 0, "declined", hours=4), tier_changed("d", "B", "A"), moved,
        interaction("b", 0, satisfaction=2, hours=2), interaction("a", 0, "no_answer", hours=3),
        task_missed("g", 0.2, "t1"), archived, created("h"), purchase("h", 40), purchase("h", 70),
        purchase("h", 100), interaction("h", 0, "no_answer", hours=8), interaction("h", 0, "no_answer", hours=7),
        interaction("h", 0, "no_answer", hours=6), task_missed("d", 0.1, "t2"), purchase("g", 0, pid="g-new"),
    ]


def test_a_batch_of_several_events_of_one_customer_gives_what_they_give_one_by_one(tmp_path):
    clock = FixedClock(NOW)
    (one, one_store), (batched, batched_store) = two_services(tmp_path, clock)
    before = [*history("a"), *history("b"), *history("c"), *history("d"), *history("e", contact_days=35),
              *history("f", contact_days=40), *history("g")]
    for svc in (one, batched):
        deliver(svc, *before)
        svc.sweep(NOW)                       # e and f fall silent: open alerts that move and close below
    assert alerts_seen(one_store) == alerts_seen(batched_store) != []

    burst = live_burst()
    assert all(deliver(one, *burst))
    assert [e.id for e in batched.apply_events(burst)] == [e.id for e in burst]

    assert read_models(one_store) == read_models(batched_store)
    assert health_seen(one_store) == health_seen(batched_store)
    assert latest_history(one_store) == latest_history(batched_store)
    assert alerts_seen(one_store) == alerts_seen(batched_store)
    assert alert_events(one_store) == alert_events(batched_store)
    raised = {(a[0], a[1], a[3]) for a in alerts_seen(batched_store)}
    assert {("a", "unanswered_followups", "interaction.logged"), ("b", "low_satisfaction", "interaction.logged"),
            ("h", "unanswered_followups", "interaction.logged")} <= raised
    assert ("e", "silence", "sweep") in raised
    assert [(a[6], a[7]) for a in alerts_seen(batched_store) if a[0] == "e"] == [("rep-s1", "south")]
    assert [a[2] for a in alerts_seen(batched_store) if a[0] == "f"] == ["resolved"]
    assert batched.apply_events(burst) == []  # redelivered: nothing new

    later = NOW + timedelta(days=1)
    for svc in (one, batched):
        svc.sweep(later)
    assert alerts_seen(one_store) == alerts_seen(batched_store)
    assert health_seen(one_store) == health_seen(batched_store)


# ---------------------------------------------------------------- the paged sweep against one customer at a time

def population():
    """A small hand-made population: every rule, healthy customers, an open alert, a cooldown, a prospect."""
    events = []
    for cid, contact in (("healthy1", 3), ("healthy2", 12), ("quiet", 33), ("very_quiet", 80)):
        events += history(cid, contact_days=contact)
    events += [created("never_bought", days_ago=50), created("churned", lifecycle="churned"),
               *[purchase("churned", d) for d in (300, 270, 240)]]
    events += [created("slowing"), *[purchase("slowing", d) for d in (300, 280, 260, 240, 180, 120)],
               interaction("slowing", 2)]
    events += [created("gone"), *[purchase("gone", d) for d in (200, 170, 140)], interaction("gone", 4)]
    events += [created("complaint"), *[purchase("complaint", d) for d in (70, 40, 10)],
               interaction("complaint", 9, "open", iid="k1", kind="complaint")]
    events += [created("unhappy"), *[purchase("unhappy", d) for d in (70, 40, 10)],
               *[interaction("unhappy", d, satisfaction=s) for d, s in ((60, 5), (50, 5), (40, 4), (30, 3), (20, 2),
                                                                       (10, 2))]]
    events += [created("streak"), *[purchase("streak", d) for d in (70, 40, 10)], interaction("streak", 9),
               *[interaction("streak", d, "no_answer") for d in (8, 6, 4)]]
    events += [created("tier_a", tier="A"), *[purchase("tier_a", d, amount="40000") for d in (90, 60, 30)],
               interaction("tier_a", 22), task_missed("tier_a", 5, "ta1")]
    return events


def expected_by_customer(store, as_of, cfg):
    """What the domain says of each judged customer, judged alone: (score, band, rules to raise with signals)."""
    expected = {}
    with store.session_factory() as session:
        for row in session.execute(select(models.customer_signals).where(
                models.customer_signals.c.known.is_(True), models.customer_signals.c.archived.is_(False))):
            alerts = session.execute(select(models.alerts).where(models.alerts.c.customer_id == row.customer_id)).all()
            open_rules = {a.rule for a in alerts if a.open_key is not None}
            resolved = {a.rule: a.resolved_at.replace(tzinfo=as_of.tzinfo) for a in alerts if a.resolved_at}
            verdict = domain.judge(domain.signals_from_dict(row.signals), as_of, cfg, open_rules, resolved)
            expected[row.customer_id] = (verdict.breakdown.score, verdict.band,
                                         sorted((f.rule, json.dumps(f.signal_dicts())) for f in verdict.to_raise))
    return expected


def test_the_paged_sweep_gives_what_judging_each_customer_alone_gives(tmp_path):
    clock = FixedClock(NOW)
    svc, store = make_service(tmp_path / "alerts.db", clock, AlertsSettings(sweep_batch_size=3))
    deliver(svc, rep("mgr-north", role="manager"), rep("rep-n1", manager_id="mgr-north"), *population())
    svc.sweep(NOW - timedelta(days=40))                              # very_quiet is silent already
    [old] = [a for a in rows(store, models.alerts) if a.customer_id == "very_quiet"]
    svc.resolve(request(ADMIN, "POST", {"outcome": "false_alarm"}), old.alert_id)   # in its cooldown now
    cfg = AlertsSettings().config()
    expected = expected_by_customer(store, NOW, cfg)
    before = {a.alert_id for a in rows(store, models.alerts)}

    result = svc.sweep(NOW)

    assert result["batches"] >= 3
    health = {r.customer_id: (r.score, r.band, r.scored_at) for r in rows(store, models.customer_health)}
    judged = {cid for cid, h in health.items() if h[2] is not None and h[2].replace(tzinfo=NOW.tzinfo) == NOW}
    assert len(judged) == result["customers"] and 0 < len(expected) - len(judged) < len(expected) / 2
    for cid, (score, band, to_raise) in expected.items():
        if cid in judged:
            assert health[cid][:2] == (score, band), cid
        else:  # not due: judging it would change neither its band nor its alerts
            assert (health[cid][1], to_raise) == (band, []), cid
    raised = {}
    for a in rows(store, models.alerts):
        if a.alert_id not in before:
            raised.setdefault(a.customer_id, []).append((a.rule, json.dumps(a.signals)))
            assert (a.raised_at.replace(tzinfo=NOW.tzinfo), a.trigger) == (NOW, "sweep")
    assert {cid: sorted(r) for cid, r in raised.items()} == {cid: e[2] for cid, e in expected.items() if e[2]}
    assert {"silence", "open_complaint", "low_satisfaction"} <= {rule for r in raised.values() for rule, _ in r}
    assert {a.rule for a in rows(store, models.alerts)} == set(domain.RULE_NAMES)
    assert "very_quiet" not in raised and "churned" not in raised
    assert svc.sweep(NOW)["alerts_raised"] == 0                   # the same day again: nothing new


# ---------------------------------------------------------------- skipping customers whose verdict cannot change

def drifting_population(rng: random.Random):
    """Customers whose score slides, whose purchases leave the 12-month window, whose complaints age, whose
    missed tasks expire, who fall silent, or who have facts dated later than today."""
    events = []
    for i in range(24):
        cid = f"c{i:02d}"
        tier = "ABC"[i % 3]
        events.append(created(cid, days_ago=rng.randint(380, 500), tier=tier))
        cycle, last = rng.randint(12, 60), rng.randint(1, 120)
        first = last + cycle * rng.randint(1, 8)
        events += [purchase(cid, d, amount=str(rng.choice((800, 5000, 30000)))) for d in range(first, last - 1, -cycle)]
        if i % 5 != 4:
            events.append(interaction(cid, rng.randint(0, 50)))
        if i % 4 == 0:
            events.append(interaction(cid, rng.randint(1, 6), "open", iid=f"k{i}", kind="complaint"))
        if i % 3 == 0:
            events.append(task_missed(cid, rng.randint(1, 25), f"t{i}"))
        if i % 6 == 1:
            events += [interaction(cid, d, satisfaction=s) for d, s in ((40, 5), (30, 4), (20, 4))]
        if i % 7 == 3:
            events.append(purchase(cid, -rng.randint(3, 20), pid=f"{cid}-future"))   # dated later than today
    return events


def band_events(store):
    return sorted((e.data["customer_id"], e.data["old_band"] or "", e.data["new_band"], e.data["as_of"].date())
                  for e in store.events("health.score_changed"))


@pytest.mark.parametrize("seed", [7, 11])
def test_the_daily_sweep_that_skips_customers_raises_what_judging_everyone_every_day_raises(tmp_path, seed):
    clock = FixedClock(NOW)
    (skipping, skipping_store), (full, full_store) = two_services(tmp_path, clock)
    population = drifting_population(random.Random(seed))
    settings = AlertsSettings()
    judged = {"skipping": 0, "full": 0}
    for svc in (skipping, full):
        deliver(svc, *population)
    for day in range(60):
        as_of = NOW + timedelta(days=day, hours=1)
        clock.at = as_of
        if day == 20:   # a fact arriving, and alerts resolved (their cooldown ends on day 34), in both
            for svc, store in ((skipping, skipping_store), (full, full_store)):
                deliver(svc, interaction("c05", 0, "reached", iid="late-contact"))
                for alert in sorted(rows(store, models.alerts), key=lambda a: (a.customer_id, a.rule))[:6]:
                    if alert.open_key is not None:
                        svc.resolve(request(ADMIN, "POST", {"outcome": "false_alarm"}), alert.alert_id)
        judged["skipping"] += skipping.sweep(as_of)["customers"]
        judged["full"] += jobs.run_sweep(full_store, settings, as_of, as_of, only_due=False)["customers"]
        assert alerts_seen(skipping_store) == alerts_seen(full_store), f"day {day}"
        assert band_events(skipping_store) == band_events(full_store), f"day {day}"
    assert {r.customer_id: r.band for r in rows(skipping_store, models.customer_health)} == \
        {r.customer_id: r.band for r in rows(full_store, models.customer_health)}
    assert len(alerts_seen(full_store)) >= 10 and len(band_events(full_store)) >= 30
    assert judged["skipping"] < judged["full"] / 3
