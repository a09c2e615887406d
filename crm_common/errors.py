"""Errors the HTTP layer turns into 4xx answers naming what was wrong."""


class CrmError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        body = {"error": self.code, "message": self.message}
        if self.field:
            body["fields"] = {self.field: [self.message]}
        return body


class DomainError(CrmError):
    """A business rule refused the request (e.g. an illegal stage move)."""
    status = 422
    code = "rule_violated"


class NotFound(CrmError):
    status = 404
    code = "not_found"


class Conflict(CrmError):
    status = 409
    code = "conflict"


class Unauthorized(CrmError):
    """No valid identity. ``reason`` is a short code for metrics and the audit log (expired, forged, ...)."""
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, reason: str = "invalid", subject: str | None = None):
        super().__init__(message)
        self.reason, self.subject = reason, subject


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class TooManyRequests(CrmError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(CrmError):
    status = 403
    code = "forbidden"


class EventRejected(Exception):
    """An event that can never be applied (refers to nothing, breaks a rule): dead-lettered, not retried."""
