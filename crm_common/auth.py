"""Access tokens and the role rules every service applies.

A token is a standard JWT. Two issuers are accepted:

* the built-in one (``iss`` = CRM_TOKEN_ISSUER, default ``crm``): HS256 under CRM_AUTH_SECRET, made by
  ``POST /v1/auth/login`` (short-lived, CRM_TOKEN_TTL_SECONDS) and by ``python -m crm token`` for scripts;
* the organisation's OpenID Connect provider, when CRM_OIDC_ISSUER is set: RS/ES/PS-signed, its keys
  fetched from CRM_OIDC_JWKS_URL and cached (a token signed with a key id not seen yet refetches the set,
  which is how a provider's key rotation is followed), audience CRM_OIDC_AUDIENCE, the user's rep id in
  the claim CRM_OIDC_USER_CLAIM (default ``sub``).

Every service verifies tokens on its own, so no service calls another to authenticate a request; who the
holder is now (active, role, team) comes from the service's copy of the reps directory
(crm_common.directory), not from the token.

Roles: a rep sees the customers they own, a manager those of their team, an admin everything. Asking for
something outside one's scope answers 404, so a rep cannot even learn that another rep's customer exists.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import jwt

from crm_common.errors import Forbidden, Unauthorized

ROLES = ("rep", "manager", "admin")
BUILTIN_ISSUER = "crm"
AUDIENCE = "crm-api"
DEFAULT_TTL_SECONDS = 3600
OIDC_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384", "PS512"]
JWKS_CACHE_SECONDS = 300
# an unknown key id refetches the key set at most this often: forged kids cannot hammer the provider
JWKS_REFETCH_COOLDOWN_SECONDS = 30.0
CLOCK_SKEW_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str
    team: str | None = None
    issued_at: float | None = field(default=None, compare=False)  # the token's iat: sign-outs revoke older ones

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


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks_url: str
    user_claim: str = "sub"


_jwks_clients: dict[str, jwt.PyJWKClient] = {}


def _jwks_client(url: str) -> jwt.PyJWKClient:
    """One cached key set per provider and process, shared by every request. The set is cached, not each key
    (cache_keys): a key the provider withdraws stops working once the set is fetched again."""
    if url not in _jwks_clients:
        _jwks_clients[url] = jwt.PyJWKClient(url, cache_keys=False, lifespan=JWKS_CACHE_SECONDS, timeout=5,
                                             cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS)
    return _jwks_clients[url]


def issue_token(secret: str, user_id: str, role: str, team: str | None = None,
                ttl_seconds: int = DEFAULT_TTL_SECONDS, now: float | None = None,
                issuer: str = BUILTIN_ISSUER) -> str:
    """A built-in issuer's token. Role and team are informative: the directory decides at each request."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    # iat to the millisecond (a NumericDate may have a fraction): a token issued right after a sign-out survives it
    issued = round(now if now is not None else time.time(), 3)
    claims = {"iss": issuer, "aud": AUDIENCE, "sub": user_id, "role": role, "team": team,
              "iat": issued, "exp": int(issued + ttl_seconds), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256")


def _decode(token: str, key, algorithms: list[str], audience: str, issuer: str) -> dict:
    try:
        # expiry is checked below against our clock (tests pass `now`); everything else by PyJWT
        # leeway: an iat a little ahead of this machine's clock (another node's) is not "issued in the future"
        return jwt.decode(token, key, algorithms=algorithms, audience=audience, issuer=issuer, leeway=CLOCK_SKEW_SECONDS,
                          options={"require": ["iss", "aud", "sub", "iat", "exp"], "verify_exp": False})
    except jwt.InvalidSignatureError:
        raise Unauthorized("invalid token signature", reason="forged") from None
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise Unauthorized("token was issued for someone else (issuer or audience)", reason="wrong_issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"token lacks the claim {exc.claim}", reason="malformed") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"malformed token: {exc}", reason="malformed") from None


def verify_token(secret: str | None, token: str, now: float | None = None,
                 oidc: OidcSettings | None = None, issuer: str = BUILTIN_ISSUER) -> Principal:
    """The principal a token names, or Unauthorized with the reason (malformed, forged, expired, ...)."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthorized("malformed token (expected a JWT)", reason="malformed") from None
    if oidc is not None and unverified.get("iss") == oidc.issuer:
        if header.get("alg") not in OIDC_ALGORITHMS:
            raise Unauthorized("token of the identity provider with an unexpected algorithm", reason="forged")
        try:
            key = _jwks_client(oidc.jwks_url).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise Unauthorized(f"the identity provider's keys cannot be fetched: {exc}", reason="jwks_unavailable") from None
        except jwt.PyJWKClientError as exc:
            raise Unauthorized(f"token signed with a key the identity provider does not publish: {exc}",
                               reason="forged") from None
        claims = _decode(token, key, OIDC_ALGORITHMS, oidc.audience, oidc.issuer)
        user_id, role = claims.get(oidc.user_claim), "rep"  # the directory gives the role
    else:
        if not secret:
            raise Unauthorized("built-in sign-in is off (no CRM_AUTH_SECRET); use the identity provider",
                               reason="wrong_issuer")
        if header.get("alg") != "HS256":
            raise Unauthorized("token with an unexpected algorithm", reason="forged")
        claims = _decode(token, secret, ["HS256"], AUDIENCE, issuer)
        user_id, role = claims.get("sub"), claims.get("role")
    if not isinstance(claims["exp"], (int, float)) or claims["exp"] < (now if now is not None else time.time()):
        raise Unauthorized("token expired", reason="expired", subject=str(user_id))
    if not user_id or not isinstance(user_id, str) or role not in ROLES:
        raise Unauthorized("token names no user or no valid role", reason="malformed")
    team = claims.get("team") if isinstance(claims.get("team"), str) else None
    return Principal(user_id=user_id, role=role, team=team, issued_at=float(claims["iat"]))


def principal_from_header(secret: str | None, header: str | None, oidc: OidcSettings | None = None,
                          issuer: str = BUILTIN_ISSUER) -> Principal:
    if not header:
        raise Unauthorized("missing Authorization header (expected: Bearer <token>)", reason="missing")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization header must be: Bearer <token>", reason="malformed")
    return verify_token(secret, token.strip(), oidc=oidc, issuer=issuer)
