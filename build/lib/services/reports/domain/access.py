"""Who may see which slice: a rep their own figures, a manager their team's, an admin all."""
from __future__ import annotations

from crm_common.errors import Forbidden

from .counters import Dimension, Slice


class ReportAccessDenied(Forbidden):
    pass


def scope_for(role: str, user_id: str, team: str | None) -> tuple[Dimension, str] | None:
    """The filter every report of this user is held to; None means no filter (admin)."""
    if role == "admin":
        return None
    if role == "manager":
        if team is None:
            raise ReportAccessDenied("a manager without a team has no reports to see")
        return (Dimension.TEAM, team)
    if role == "rep":
        return (Dimension.REP, user_id)
    raise ReportAccessDenied(f"unknown role {role!r}")


def default_slice(role: str, user_id: str, team: str | None) -> Slice:
    scope = scope_for(role, user_id, team)
    return Slice() if scope is None else Slice(**{scope[0].value: scope[1]})


def check_access(role: str, user_id: str, team: str | None, requested: Slice,
                 breakdown: Dimension | str | None = None, requested_rep_team: str | None = None) -> None:
    """Raise ReportAccessDenied unless the user may see `requested`, split by `breakdown`.

    breakdown is the dimension a table or chart lists values of (e.g. "rep" for
    figures per rep); requested_rep_team is the current team of requested.rep,
    which the caller looks up in the rep directory.
    """
    scope = scope_for(role, user_id, team)
    if scope is None:
        return
    breakdown = None if breakdown is None else Dimension(breakdown)
    if breakdown is Dimension.TEAM:
        raise ReportAccessDenied("only an admin may compare teams")
    if scope[0] is Dimension.REP:
        if breakdown is Dimension.REP:
            raise ReportAccessDenied("a rep may not compare reps")
        if requested.rep != user_id:
            raise ReportAccessDenied("a rep sees only their own figures")
        return
    own_team = requested.team == team
    own_rep = requested.rep is not None and requested_rep_team == team
    if not (own_team or own_rep) or (breakdown is Dimension.REP and not own_team):
        raise ReportAccessDenied("a manager sees only their own team")
