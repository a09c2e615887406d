"""Prometheus metrics shared by every service; the ``service`` label tells them apart."""
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter("crm_http_requests_total", "HTTP requests answered",
                        ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("crm_http_request_duration_seconds", "HTTP request latency",
                         ["service", "method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
EVENTS_PUBLISHED = Counter("crm_events_published_total", "Events published from the outbox (confirmed)",
                           ["service", "routing_key"])
EVENTS_CONSUMED = Counter("crm_events_consumed_total", "Events consumed, by outcome "
                          "(applied, duplicate, retried, failed)", ["service", "routing_key", "outcome"])
EVENTS_DEAD_LETTERED = Counter("crm_events_dead_lettered_total", "Events sent to the dead-letter queue",
                               ["service", "routing_key"])
PARTITIONS_HELD = Gauge("crm_event_partitions_held", "Event partition queues this replica consumes", ["service"],
                        multiprocess_mode="livesum")
OUTBOX_BACKLOG = Gauge("crm_outbox_backlog", "Events committed but not yet published", ["service"])
AUTH_REFUSED = Counter("crm_auth_refused_total", "Requests refused 401, by reason (missing, malformed, forged, "
                       "expired, wrong_issuer, unknown_user, deactivated, revoked)", ["service", "reason"])
LOGINS = Counter("crm_logins_total", "Sign-ins at POST /v1/auth/login, by outcome (ok, failed, locked)", ["outcome"])
JOB_DURATION = Histogram("crm_job_duration_seconds", "Periodic job (sweep) duration", ["service", "job"],
                         buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
