"""What each consumed event adds to its customer's book: timeline changes and fact records.

One function per kind of event; the service's table of consumed events (projections.py)
names which one each event goes through, so that table is the only list of events.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .book import (
    ALERT, ARCHIVED, EXISTS, INTERACTION, PURCHASE, RANK_ARCHIVED, RANK_CHANGE, RANK_CREATED, STAGE, TASK,
    Change, Record, iso, to_utc,
)

Entries = tuple[list[Change], list[Record]]

# customer.updated snapshot fields that are dimensions (owner and team move through owner_changed)
_UPDATED_FIELDS = {"industry": "industry", "team": "team", "owner_id": "rep", "tier": "tier", "lifecycle": "lifecycle"}
_ALERT_HAPPENED = {"raised": "raised_at", "acknowledged": "acknowledged_at", "escalated": "escalated_at",
                   "resolved": "resolved_at"}


@dataclass(frozen=True)
class Origin:
    """The event an entry comes from: its name, id and time, and where it stands in its producer's stream."""
    name: str
    id: str
    time: datetime
    source: str = ""
    sequence: int = 0

    @property
    def position(self) -> tuple[str, int]:
        return (self.source, self.sequence)

    def change(self, at: datetime, rank: int, sets: dict) -> Change:
        return Change(self.id, to_utc(at), rank, sets, position=self.position)

    def record(self, kind: str, at: datetime | None, entity: str | None, data: dict, suffix: str = "") -> Record:
        return Record(self.id + suffix, kind, to_utc(at), entity, data, position=self.position)


def customer_created(origin: Origin, data: dict) -> Entries:
    sets = {EXISTS: True, "team": data.get("team"), "rep": data.get("owner_id"), "tier": data["tier"],
            "lifecycle": data["lifecycle"], "industry": data.get("industry")}
    records = []
    if data.get("pipeline_stage"):  # being created in a stage is entering it
        records.append(origin.record(STAGE, data["created_at"], None,
                                     {"old_stage": None, "new_stage": data["pipeline_stage"]}, suffix=":stage"))
    return [origin.change(data["created_at"], RANK_CREATED, sets)], records


def customer_updated(origin: Origin, data: dict) -> Entries:
    sets = {attr: data.get(key) for key, attr in _UPDATED_FIELDS.items() if key in data.get("changed_fields", ())}
    return ([origin.change(origin.time, RANK_CHANGE, sets)] if sets else []), []


def customer_archived(origin: Origin, data: dict) -> Entries:
    return [origin.change(data["archived_at"], RANK_ARCHIVED, {ARCHIVED: True})], []


def tier_changed(origin: Origin, data: dict) -> Entries:
    return [origin.change(data["as_of"], RANK_CHANGE, {"tier": data["new_tier"]})], []


def lifecycle_changed(origin: Origin, data: dict) -> Entries:
    return [origin.change(data["as_of"], RANK_CHANGE, {"lifecycle": data["new_lifecycle"]})], []


def owner_changed(origin: Origin, data: dict) -> Entries:
    return [origin.change(origin.time, RANK_CHANGE, {"rep": data["new_owner_id"], "team": data.get("new_team")})], []


def health_score_changed(origin: Origin, data: dict) -> Entries:
    return [origin.change(data["as_of"], RANK_CHANGE, {"score": data["new_score"]})], []


def purchase_recorded(origin: Origin, data: dict) -> Entries:
    return [], [origin.record(PURCHASE, data["purchased_at"], data["purchase_id"],
                              {"amount_base": str(Decimal(data["amount_base"]))})]


def interaction_logged(origin: Origin, data: dict) -> Entries:
    return [], [origin.record(INTERACTION, data["occurred_at"], data["interaction_id"], {
        "rep": data["rep_id"], "team": data.get("team"), "kind": data["kind"], "phase": data["phase"],
        "satisfaction": data.get("satisfaction")})]


def task_settled(origin: Origin, data: dict) -> Entries:
    """task.overdue, .completed, .skipped, .missed: counted in the bucket of the task's due time."""
    return [], [origin.record(TASK, data["due_at"], data["task_id"], {
        "event": origin.name.split(".", 1)[1], "assignee": data.get("assignee_id"), "team": data.get("team"),
        "on_time": bool(data.get("on_time", False))})]


def stage_changed(origin: Origin, data: dict) -> Entries:
    return [], [origin.record(STAGE, data["changed_at"], None,
                              {"old_stage": data.get("old_stage"), "new_stage": data["new_stage"]})]


def alert_event(origin: Origin, data: dict) -> Entries:
    """alert.raised, .acknowledged, .escalated, .resolved: dated by the raise, which raised and resolved carry."""
    event = origin.name.split(".", 1)[1]
    raised_at = to_utc(data.get("raised_at"))
    return [], [origin.record(ALERT, raised_at, data["alert_id"], {
        "event": event, "happened_at": iso(data[_ALERT_HAPPENED[event]]), "raised_at": iso(raised_at),
        "outcome": data.get("outcome")})]
