"""Built-in sign-in: passwords (argon2id), login with lockout, sign-out everywhere, who am I.

Password hashing takes tens of milliseconds of CPU on purpose; it runs in an OS thread (eventlet's tpool) and
outside any transaction, so neither the service's other requests nor a database connection wait for it.
Token instants use the wall clock, never the service clock (CRM_FROZEN_TIME freezes business time, not tokens).
"""
from __future__ import annotations

from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from sqlalchemy import delete, func, insert, select, update

from crm_common import metrics
from crm_common.auth import SYSTEM, Principal, issue_token
from crm_common.db import utc
from crm_common.errors import Forbidden, InvalidCredentials, NotFound, TooManyRequests, Unauthorized
from services.customers.domain.signin import Attempts, after_failure, check_new_password, seconds_locked
from services.customers.models import credentials, login_attempts, reps
from services.customers.views import load_rep, rep_event, rep_view

HASHER = PasswordHasher()  # argon2id with RFC 9106's low-memory parameters (argon2-cffi's defaults)
_UNKNOWN_USER_HASH = HASHER.hash("a password nobody has")  # checked for unknown users: same time to answer
WRONG = "wrong user or password"


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


# ------------------------------------------------------------------ login

def login(store, user: str, password: str, remote: str | None, secret: str | None, ttl_seconds: int,
          issuer: str) -> dict:
    if not secret:
        raise NotFound("built-in sign-in is off (no CRM_AUTH_SECRET): sign in through the identity provider")
    now = wall_clock()
    found = store.run(_find_login, user, remote, now)
    if found["locked"]:
        metrics.LOGINS.labels("locked").inc()
        store.run(_audit_failure, user, remote, "locked", now)
        raise TooManyRequests(f"too many failed sign-ins; try again in {found['locked']} seconds",
                              retry_after=found["locked"])
    rep = found["rep"]
    stored_hash = found["hash"] or _UNKNOWN_USER_HASH
    if not tpool.execute(_verifies, stored_hash, password) or rep is None or not rep["active"] or not found["hash"]:
        metrics.LOGINS.labels("failed").inc()
        store.run(_record_failure, user, rep["id"] if rep else None, remote, now)
        raise InvalidCredentials(WRONG, reason="bad_password", subject=rep["id"] if rep else None)
    if tpool.execute(HASHER.check_needs_rehash, stored_hash):
        new_hash = tpool.execute(HASHER.hash, password)
        store.run(_store_hash, rep["id"], new_hash, rep["id"], now)
    store.run(_record_success, rep, remote, now)
    metrics.LOGINS.labels("ok").inc()
    token = issue_token(secret, rep["id"], rep["role"], rep["team"], ttl_seconds=ttl_seconds,
                        now=now.timestamp(), issuer=issuer)
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl_seconds, "user": _me(rep)}


def _verifies(stored_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _keys(user: str, rep_id: str | None, remote: str | None) -> dict[str, str]:
    keys = {"user": f"user:{(rep_id or user).strip().lower()[:190]}"}
    if remote:
        keys["address"] = f"addr:{remote[:190]}"
    return keys


def _attempts(uow, key: str, lock: bool = False) -> Attempts | None:
    query = select(login_attempts).where(login_attempts.c.key == key)
    row = uow.session.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    return Attempts(row.failures, utc(row.window_started_at), utc(row.locked_until))


def _find_login(uow, user: str, remote: str | None, now: datetime) -> dict:
    """The rep a sign-in names (by id, else by a unique email), its hash, and whether it is locked out."""
    row = uow.session.execute(select(reps).where(reps.c.id == user)).first()
    if row is None and "@" in user:
        rows = uow.session.execute(select(reps).where(func.lower(reps.c.email) == user.strip().lower())
                                   .limit(2)).all()
        row = rows[0] if len(rows) == 1 else None
    rep = rep_view(row) if row is not None else None
    stored = uow.session.execute(select(credentials.c.password_hash)
                                 .where(credentials.c.rep_id == rep["id"])).scalar() if rep else None
    locked = max((seconds_locked(_attempts(uow, key), now) for key in _keys(user, rep and rep["id"], remote).values()),
                 default=0)
    return {"rep": rep, "hash": stored, "locked": locked}


def _record_failure(uow, user: str, rep_id: str | None, remote: str | None, now: datetime) -> None:
    for kind, key in _keys(user, rep_id, remote).items():
        before = _attempts(uow, key, lock=True)
        after = after_failure(before, kind, now)
        values = {"failures": after.failures, "window_started_at": after.window_started_at,
                  "locked_until": after.locked_until}
        if before is None:
            uow.session.execute(insert(login_attempts).values(key=key, **values))
        else:
            uow.session.execute(update(login_attempts).where(login_attempts.c.key == key).values(**values))
    _audit_failure(uow, user, remote, "wrong user or password", now)


def _audit_failure(uow, user: str, remote: str | None, reason: str, now: datetime) -> None:
    anonymous = Principal(user_id="anonymous", role="none")
    uow.audit(anonymous, "auth.login_failed", "rep", user[:64], {"reason": reason, "remote": remote})


def _record_success(uow, rep: dict, remote: str | None, now: datetime) -> None:
    uow.session.execute(delete(login_attempts).where(login_attempts.c.key == _keys(rep["id"], rep["id"], None)["user"]))
    uow.audit(Principal(rep["id"], rep["role"], rep["team"]), "auth.login", "rep", rep["id"], {"remote": remote})


# ------------------------------------------------------------------ passwords and sign-out

def set_password(store, actor: Principal, rep_id: str, password: str, current_password: str | None,
                 now: datetime) -> dict:
    """An admin sets or resets anyone's password; a user changes their own, giving the current one. A changed
    password signs the user out everywhere (their older tokens are refused)."""
    if actor.user_id != rep_id:
        actor.require("admin")
    check_new_password(password, rep_id)
    stored = store.run(_stored_hash, actor, rep_id)
    if actor.user_id == rep_id and not actor.is_admin:
        if current_password is None or stored is None or not tpool.execute(_verifies, stored, current_password):
            raise Forbidden("give your current password (current_password) to change it")
    new_hash = tpool.execute(HASHER.hash, password)
    return store.run(_store_hash, rep_id, new_hash, actor.user_id, now, revoke=stored is not None, actor=actor)


def _stored_hash(uow, actor: Principal, rep_id: str) -> str | None:
    load_rep(uow, rep_id)
    return uow.session.execute(select(credentials.c.password_hash).where(credentials.c.rep_id == rep_id)).scalar()


def _store_hash(uow, rep_id: str, new_hash: str, changed_by: str, now: datetime, revoke: bool = False,
                actor: Principal | None = None) -> dict:
    values = {"password_hash": new_hash, "changed_at": now, "changed_by": changed_by}
    if uow.session.execute(update(credentials).where(credentials.c.rep_id == rep_id).values(**values)).rowcount == 0:
        uow.session.execute(insert(credentials).values(rep_id=rep_id, **values))
    if actor is not None:
        uow.audit(actor, "rep.password_set", "rep", rep_id, {"signed_out_everywhere": revoke})
    if revoke:
        _revoke(uow, actor or SYSTEM, rep_id, now, audit=False)
    return {"rep_id": rep_id, "password_set": True, "signed_out_everywhere": revoke}


def store_password(uow, rep_id: str, password: str, changed_by: str, now: datetime) -> None:
    """A password set from the command line (the first admin), in the caller's transaction."""
    check_new_password(password, rep_id)
    _store_hash(uow, rep_id, HASHER.hash(password), changed_by, now)


def sign_out_everywhere(uow, actor: Principal, rep_id: str, now: datetime) -> dict:
    """Every token of this user issued until now is refused, in every service once rep.updated reaches it."""
    if actor.user_id != rep_id:
        actor.require("admin")
    load_rep(uow, rep_id)
    return _revoke(uow, actor, rep_id, now)


def _revoke(uow, actor: Principal, rep_id: str, now: datetime, audit: bool = True) -> dict:
    """``now`` is the service clock (the event's time, which orders rep versions); the cutoff is wall time."""
    cutoff = wall_clock()
    uow.session.execute(update(reps).where(reps.c.id == rep_id).values(tokens_valid_after=cutoff))
    rep = rep_view(load_rep(uow, rep_id))
    uow.emit("rep.updated", rep_id, rep_event(rep), time=now)
    if audit:
        uow.audit(actor, "rep.signed_out", "rep", rep_id, {"tokens_valid_after": cutoff})
    return {"rep_id": rep_id, "tokens_valid_after": cutoff}


# ------------------------------------------------------------------ who am I

def me(uow, principal: Principal) -> dict:
    row = uow.session.execute(select(reps).where(reps.c.id == principal.user_id)).first()
    if row is None:  # a service account known to the directory check but not here cannot happen: same table
        raise Unauthorized(f"{principal.user_id} is not in the reps directory", reason="unknown_user")
    return _me(rep_view(row))


def _me(rep: dict) -> dict:
    return {k: rep[k] for k in ("id", "name", "email", "role", "team")}
