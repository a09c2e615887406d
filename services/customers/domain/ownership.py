"""Who may own, take over and hand over customers, and the round-robin of a team hand-over.

A rep here is anything with ``id``, ``team``, ``role`` and ``active`` (a row of the reps directory).
"""
from __future__ import annotations

from crm_common.auth import Principal
from crm_common.errors import Conflict, CrmError, DomainError, Forbidden, NotFound


def requested_owner(actor: Principal, owner_id: str | None) -> str | None:
    """The rep a new customer goes to: the one asked for, else a rep creating it owns it."""
    if owner_id is None and actor.role == "rep":
        return actor.user_id
    return owner_id


def team_of_unowned(actor: Principal, requested: str | None = None) -> str | None:
    """A customer created without owner stays in its manager's team; an admin's in the team asked for, or none."""
    if actor.role == "manager":
        if requested not in (None, actor.team):
            raise Forbidden(f"team {requested} is not your team", field="team")
        return actor.team
    return requested


def check_owner_team(rep, requested: str | None) -> None:
    """A customer is in its owner's team: a team asked for beside an owner must be that one."""
    if requested is not None and requested != rep.team:
        raise CrmError(f"owner {rep.id} is in team {rep.team or '(none)'}, not {requested}", field="team")


def check_can_assign(actor: Principal, rep, field: str) -> None:
    """Customers go to active reps only, and a manager assigns within their own team."""
    if not rep.active:
        raise CrmError(f"rep {rep.id} is no longer active", field=field)
    if actor.role == "manager" and rep.team != actor.team:
        raise Forbidden(f"rep {rep.id} is not in your team", field=field)


def check_can_own(actor: Principal, rep) -> None:
    """Who may own a customer: a rep only themselves, a manager their team, an admin anyone active."""
    check_can_assign(actor, rep, "owner_id")
    if actor.role == "rep" and rep.id != actor.user_id:
        raise Forbidden("a rep can only own customers themselves", field="owner_id")


def check_transfer(actor: Principal, owner_id: str | None, to_rep) -> None:
    check_can_assign(actor, to_rep, "to_owner_id")
    if owner_id == to_rep.id:
        raise Conflict(f"customer is already owned by {to_rep.id}", field="to_owner_id")


def check_can_hand_over(actor: Principal, from_rep) -> None:
    """A manager hands over their own team's reps; others' are not even visible to them."""
    if actor.role == "manager" and from_rep.team != actor.team:
        raise NotFound(f"rep {from_rep.id} not found")


def check_handover_to_rep(actor: Principal, from_rep_id: str, to_rep) -> None:
    check_can_assign(actor, to_rep, "to_owner_id")
    if to_rep.id == from_rep_id:
        raise CrmError("cannot hand over to the same rep", field="to_owner_id")


def check_handover_to_team(actor: Principal, team: str) -> None:
    if actor.role == "manager" and team != actor.team:
        raise Forbidden("managers hand over within their own team", field="to_team")


def takes_handover(rep, from_rep_id: str) -> bool:
    """Who shares a team hand-over: the team's active reps (not managers), but not the one leaving."""
    return rep.active and rep.role == "rep" and rep.id != from_rep_id


def round_robin(rep_ids: list[str], last_assigned: str | None, count: int) -> list[str]:
    """Next `count` assignees, in stable id order, continuing after `last_assigned`."""
    if not rep_ids:
        raise DomainError("the team has no active rep to take over", field="to_team")
    ordered = sorted(rep_ids)
    start = 0
    if last_assigned is not None:
        start = next((i for i, rep in enumerate(ordered) if rep > last_assigned), 0)
    return [ordered[(start + i) % len(ordered)] for i in range(count)]
