"""Alerts service entrypoints: thin — parse, call a use case, answer (docs/alerts.md)."""
from datetime import datetime

from nameko.timer import timer

from crm_common.audit import audit_page
from crm_common.consumer import consume
from crm_common.dependencies import Clock, Settings, Store
from crm_common.errors import CrmError
from crm_common.http import api, json_body
from crm_common.ops import Operations
from services.alerts import commands, jobs, models, projections, queries, schemas
from services.alerts.domain import AlertsSettings

SWEEP_TICK_SECONDS = 3600        # each replica checks hourly whether today's sweep ran; one runs it
ESCALATION_TICK_SECONDS = 300    # unacknowledged alerts are checked for escalation every 5 minutes


class AlertsService(Operations):
    name = "alerts"

    store = Store(models.metadata, models.infrastructure, directory=(models.reps, "rep_id"))
    clock = Clock()
    settings = Settings(AlertsSettings.from_settings)

    # ------------------------------------------------------------ alerts

    @api("GET", "/v1/alerts")
    def list_alerts(self, request):
        params = schemas.AlertListQuerySchema().load(request.args.to_dict())
        return self.store.run(queries.list_alerts, request.principal, params)

    @api("GET", "/v1/alert-queue")
    def alert_queue(self, request):
        params = schemas.AlertQueueQuerySchema().load(request.args.to_dict())
        return self.store.run(queries.alert_queue, request.principal, params)

    @api("GET", "/v1/alerts/summary")
    def alerts_summary(self, request):
        return self.store.run(queries.summary, request.principal)

    @api("GET", "/v1/alerts/<alert_id>")
    def get_alert(self, request, alert_id):
        return self.store.run(queries.get_alert, request.principal, alert_id)

    @api("POST", "/v1/alerts/<alert_id>/acknowledge")
    def acknowledge(self, request, alert_id):
        raw = request.get_data(as_text=True).strip()
        data = schemas.AcknowledgeSchema().load(json_body(request)) if raw else {}
        return self.store.run(commands.acknowledge, request.principal, alert_id, data.get("note"), self.clock.now())

    @api("POST", "/v1/alerts/<alert_id>/resolve")
    def resolve(self, request, alert_id):
        data = schemas.ResolveSchema().load(json_body(request))
        return self.store.run(commands.resolve, request.principal, alert_id, data["outcome"], data.get("note"),
                              self.clock.now(), self.settings)

    @api("GET", "/v1/customers/<customer_id>/health")
    def customer_health(self, request, customer_id):
        params = schemas.HealthQuerySchema().load(request.args.to_dict())
        return self.store.run(queries.customer_health, request.principal, customer_id, self.settings, self.clock.now(),
                         as_of=params.get("as_of"), history_limit=params["history_limit"])

    # ------------------------------------------------------------ rules

    @api("GET", "/v1/alert-rules")
    def get_rules(self, request):
        return self.store.run(queries.get_rules, self.settings)

    @api("PUT", "/v1/alert-rules")
    def put_rules(self, request):
        request.principal.require("admin")
        return self.store.run(commands.put_rules, request.principal, json_body(request), self.settings,
                              self.clock.now())

    # ------------------------------------------------------------ sweep and escalation

    @api("POST", "/v1/alerts/sweep")
    def sweep_now(self, request):
        request.principal.require("admin")
        raw = request.get_data(as_text=True).strip()
        data = schemas.SweepSchema().load(json_body(request)) if raw else {}
        now = self.clock.now()
        as_of = data.get("as_of") or now
        if as_of > now:
            raise CrmError("as_of cannot be in the future", field="as_of")
        return self.sweep(as_of)

    @api("POST", "/v1/alerts/digest")
    def digest_now(self, request):
        """Send each rep's and manager's alert.digest now (admin); the daily tick sends them after the sweep."""
        request.principal.require("admin")
        return jobs.send_digests(self.store, self.clock.now())

    @timer(interval=SWEEP_TICK_SECONDS)
    def daily_sweep(self):
        """Hourly tick; the first replica to claim today's run does it, the others skip. The digests go out
        in the same run, so they rank what this sweep judged."""
        now = self.clock.now()
        self.store.run_job("alerts-sweep", now.date().isoformat(),
                           lambda: {**self.sweep(now), **jobs.send_digests(self.store, now)})

    @timer(interval=ESCALATION_TICK_SECONDS)
    def escalation_tick(self):
        now = self.clock.now()
        period = str(int(now.timestamp()) // ESCALATION_TICK_SECONDS)
        self.store.run_job("alerts-escalation", period, lambda: {"escalated": self.escalate(now)})

    def sweep(self, as_of: datetime) -> dict:
        """Judge every customer due by ``as_of`` (every one when the rules changed), then escalations."""
        return jobs.run_sweep(self.store, self.settings, as_of, self.clock.now())

    def escalate(self, as_of: datetime) -> int:
        return jobs.run_escalation(self.store, self.settings, as_of)

    # ------------------------------------------------------------ its audit log

    @api("GET", "/v1/audit/alerts")
    def audit_log(self, request):
        return self.store.run(audit_page, request.principal, models.infrastructure["audit_log"], request.args.to_dict())

    # ------------------------------------------------------------ facts from other services

    @consume(projections.CONSUMES)
    def apply_events(self, events):
        return self.store.apply_batch(events, projections.CONSUMES,
                                      projections.Context(self.clock.now(), self.settings))
