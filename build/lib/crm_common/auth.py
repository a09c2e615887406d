"""API tokens and the role rules every service applies.

A token is ``crm1.<payload>.<signature>``: base64url JSON claims (sub, role, team,
exp) signed with HMAC-SHA256 under CRM_AUTH_SECRET. Every service verifies tokens
on its own, so no service has to call another to authenticate a request.

Roles: a rep sees the customers they own, a manager those of their team, an
admin everything. Asking for something outside one's scope answers 404, so a
rep cannot even learn that another rep's customer exists.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from crm_common.errors import Forbidden, Unauthorized

ROLES = ("rep", "manager", "admin")
PREFIX = "crm1"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str
    team: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_see(self, owner_id: str | None, team: str | None) -> bool:
        if self.role == "admin":
            return True
        if self.role == "manager":
            return team is not None and team == self.team
        return owner_id is not None and owner_id == self.user_id

    def scope(self) -> dict:
        """Filters that restrict a listing to what this principal may see."""
        if self.role == "admin":
            return {}
        if self.role == "manager":
            return {"team": self.team}
        return {"owner_id": self.user_id}

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"this action needs role {' or '.join(roles)}; you are {self.role}")


SYSTEM = Principal(user_id="system", role="admin")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest())


def issue_token(secret: str, user_id: str, role: str, team: str | None = None,
                ttl_seconds: int = 90 * 24 * 3600, now: float | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    issued = int(now if now is not None else time.time())
    claims = {"sub": user_id, "role": role, "team": team, "iat": issued, "exp": issued + ttl_seconds}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{PREFIX}.{payload}.{_sign(secret, payload)}"


def verify_token(secret: str, token: str, now: float | None = None) -> Principal:
    try:
        prefix, payload, signature = token.split(".")
    except ValueError:
        raise Unauthorized("malformed token") from None
    if prefix != PREFIX or not hmac.compare_digest(signature, _sign(secret, payload)):
        raise Unauthorized("invalid token")
    try:
        claims = json.loads(_unb64(payload))
    except ValueError:
        raise Unauthorized("malformed token") from None
    if claims.get("exp", 0) < (now if now is not None else time.time()):
        raise Unauthorized("token expired")
    if claims.get("role") not in ROLES or not claims.get("sub"):
        raise Unauthorized("token carries no valid role")
    return Principal(user_id=claims["sub"], role=claims["role"], team=claims.get("team"))


def principal_from_header(secret: str, header: str | None) -> Principal:
    if not header:
        raise Unauthorized("missing Authorization header (expected: Bearer <token>)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization header must be: Bearer <token>")
    return verify_token(secret, token.strip())
