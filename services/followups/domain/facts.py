"""How the read model of a customer takes in the customers service's facts.

A fact applied in its producer's order (its event carries a sequence; the pipeline drops repeated and
stale events before a handler sees them) is the latest word on its customer, whatever date it carries:
a classification sweep run for a past day, or a stage change dated back on purpose, still came after
what the stream said before. A fact without that order (an event from before events were numbered,
or the customers service's RPC answer) is weighed by its date instead: the later fact wins, so an
older one arriving late never overwrites a newer one.

``current`` below is anything with the read model's attributes (``tier``, ``tier_as_of``, ...), its
times aware.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from services.followups.domain.base import require_aware


def supersedes(stored_at: datetime | None, incoming_at: datetime, *, in_stream_order: bool = False) -> bool:
    """Does a fact dated ``incoming_at`` replace the one the read model holds (dated ``stored_at``)?"""
    if in_stream_order:
        return True
    return stored_at is None or require_aware(incoming_at, "as_of") >= stored_at


def snapshot_changes(current: Any, snapshot: Mapping, at: datetime, *, in_stream_order: bool = False) -> dict:
    """The row values a full record as of ``at`` changes (customer.created / .updated, or the RPC answer).

    Company and important dates carry no date of their own and are always taken; owner, tier,
    lifecycle and stage only when they supersede what is held. The first move to ``won`` is kept.
    """
    require_aware(at, "at")
    values = {"company": snapshot.get("company"), "important_dates": snapshot.get("important_dates") or [],
              "snapshot_at": at if current.snapshot_at is None or at > current.snapshot_at else current.snapshot_at}
    if snapshot.get("created_at") is not None:
        values["created_at"] = snapshot["created_at"]
    if supersedes(current.owner_as_of, at, in_stream_order=in_stream_order):
        values.update(owner_id=snapshot.get("owner_id"), team=snapshot.get("team"), owner_as_of=at)
    if snapshot.get("tier") and supersedes(current.tier_as_of, at, in_stream_order=in_stream_order):
        values.update(tier=snapshot["tier"], tier_as_of=at)
    if snapshot.get("lifecycle") and supersedes(current.lifecycle_as_of, at, in_stream_order=in_stream_order):
        values.update(lifecycle=snapshot["lifecycle"], lifecycle_as_of=at)
    if supersedes(current.stage_as_of, at, in_stream_order=in_stream_order):
        values.update(pipeline_stage=snapshot.get("pipeline_stage"), stage_as_of=at)
        if snapshot.get("pipeline_stage") == "won" and current.won_at is None:
            values["won_at"] = at
    return values


def class_change(current: Any, attribute: str, value: str, as_of: datetime, *,
                 in_stream_order: bool = False) -> dict:
    """customer.tier_changed / .lifecycle_changed: the new ``tier`` or ``lifecycle`` when it supersedes."""
    if supersedes(getattr(current, f"{attribute}_as_of"), as_of, in_stream_order=in_stream_order):
        return {attribute: value, f"{attribute}_as_of": as_of}
    return {}


def stage_change(current: Any, new_stage: str, changed_at: datetime, *, in_stream_order: bool = False) -> dict:
    """customer.stage_changed: the stage when it supersedes; ``won_at`` is the earliest move to won."""
    values = {}
    if supersedes(current.stage_as_of, changed_at, in_stream_order=in_stream_order):
        values.update(pipeline_stage=new_stage, stage_as_of=changed_at)
    if new_stage == "won" and (current.won_at is None or changed_at < current.won_at):
        values["won_at"] = changed_at
    return values


def owner_change(current: Any, new_owner_id: str, new_team: str | None, at: datetime, *,
                 in_stream_order: bool = False) -> dict:
    if supersedes(current.owner_as_of, at, in_stream_order=in_stream_order):
        return {"owner_id": new_owner_id, "team": new_team, "owner_as_of": at}
    return {}


def purchase_change(current: Any, purchased_at: datetime) -> dict:
    """purchase.recorded (possibly backdated): the first and last purchase times widen to include it."""
    require_aware(purchased_at, "purchased_at")
    values: dict = {"has_purchased": True}
    if current.first_purchase_at is None or purchased_at < current.first_purchase_at:
        values["first_purchase_at"] = purchased_at
    if current.last_purchase_at is None or purchased_at > current.last_purchase_at:
        values["last_purchase_at"] = purchased_at
    return values
