"""Alerts service entrypoints: thin — parse, call a use case, answer (docs/alerts.md)."""
from datetime import datetime

from nameko.timer import timer

from crm_common import metrics
from crm_common.dependencies import Clock, Settings, Store
from crm_common.errors import CrmError
from crm_common.http import api, json_body
from crm_common.ops import Operations
from crm_common.subscriber import subscribe
from services.alerts import handlers, models, schemas
from services.alerts.domain import AlertsSettings

SWEEP_TICK_SECONDS = 3600        # each replica checks hourly whether today's sweep ran; one runs it
ESCALATION_TICK_SECONDS = 300    # unacknowledged alerts are checked for escalation every 5 minutes


class AlertsService(Operations):
    name = "alerts"

    store = Store(models.metadata, models.infrastructure)
    clock = Clock()
    settings = Settings(AlertsSettings.from_settings)

    # ------------------------------------------------------------ alerts

    @api("GET", "/v1/alerts")
    def list_alerts(self, request):
        params = schemas.AlertListQuerySchema().load(request.args.to_dict())
        return self.store.run(handlers.list_alerts, request.principal, params)

    @api("GET", "/v1/alerts/summary")
    def alerts_summary(self, request):
        return self.store.run(handlers.summary, request.principal)

    @api("GET", "/v1/alerts/<alert_id>")
    def get_alert(self, request, alert_id):
        return self.store.run(handlers.get_alert, request.principal, alert_id)

    @api("POST", "/v1/alerts/<alert_id>/acknowledge")
    def acknowledge(self, request, alert_id):
        raw = request.get_data(as_text=True).strip()
        data = schemas.AcknowledgeSchema().load(json_body(request)) if raw else {}
        return self.store.run(handlers.acknowledge, request.principal, alert_id, data.get("note"), self.clock.now())

    @api("POST", "/v1/alerts/<alert_id>/resolve")
    def resolve(self, request, alert_id):
        data = schemas.ResolveSchema().load(json_body(request))
        return self.store.run(handlers.resolve, request.principal, alert_id, data["outcome"], data.get("note"),
                         self.clock.now())

    @api("GET", "/v1/customers/<customer_id>/health")
    def customer_health(self, request, customer_id):
        params = schemas.HealthQuerySchema().load(request.args.to_dict())
        return self.store.run(handlers.customer_health, request.principal, customer_id, self.settings, self.clock.now(),
                         as_of=params.get("as_of"), history_limit=params["history_limit"])

    # ------------------------------------------------------------ rules

    @api("GET", "/v1/alert-rules")
    def get_rules(self, request):
        return self.store.run(handlers.get_rules, self.settings)

    @api("PUT", "/v1/alert-rules")
    def put_rules(self, request):
        request.principal.require("admin")
        return self.store.run(handlers.put_rules, request.principal, json_body(request), self.settings, self.clock.now())

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

    @timer(interval=SWEEP_TICK_SECONDS)
    def daily_sweep(self):
        """Hourly tick; the first replica to claim today's run does it, the others skip."""
        now = self.clock.now()
        self.store.run_job("alerts-sweep", now.date().isoformat(), lambda: self.sweep(now))

    @timer(interval=ESCALATION_TICK_SECONDS)
    def escalation_tick(self):
        now = self.clock.now()
        period = str(int(now.timestamp()) // ESCALATION_TICK_SECONDS)
        self.store.run_job("alerts-escalation", period, lambda: {"escalated": self.escalate(now)})

    def sweep(self, as_of: datetime) -> dict:
        """Every rule and the score for every live customer as of ``as_of``, in batches; then escalations."""
        started = datetime.now()
        with self.store() as uow:
            cfg = handlers.current_config(uow, self.settings)
        stats = {"customers": 0, "alerts_raised": 0, "scores_changed": 0}
        last_id, batches = None, 0
        while True:
            with self.store() as uow:
                last_id = handlers.sweep_batch(uow, last_id, as_of, cfg, self.settings.sweep_batch_size, stats)
                uow.commit()
            if last_id is None:
                break
            batches += 1
        stats["escalated"] = self.escalate(as_of, cfg)
        seconds = (datetime.now() - started).total_seconds()
        metrics.JOB_DURATION.labels(self.name, "alerts-sweep").observe(seconds)
        return {"as_of": as_of, "batches": batches, **stats, "seconds": round(seconds, 3)}

    def escalate(self, as_of: datetime, cfg=None) -> int:
        if cfg is None:
            with self.store() as uow:
                cfg = handlers.current_config(uow, self.settings)
        total = 0
        while True:
            with self.store() as uow:
                count = handlers.escalate_due(uow, as_of, cfg)
                uow.commit()
            total += count
            if count == 0:
                return total

    # ------------------------------------------------------------ facts from other services

    def _apply(self, event):
        return self.store.apply_once(event, handlers.apply_customer_event, event, self.settings, self.clock.now())

    def _apply_rep(self, event):
        return self.store.apply_once(event, handlers.apply_rep_event, event, self.clock.now())

    @subscribe("customer.created")
    def on_customer_created(self, event):
        return self._apply(event)

    @subscribe("customer.updated")
    def on_customer_updated(self, event):
        return self._apply(event)

    @subscribe("customer.archived")
    def on_customer_archived(self, event):
        return self._apply(event)

    @subscribe("customer.tier_changed")
    def on_tier_changed(self, event):
        return self._apply(event)

    @subscribe("customer.lifecycle_changed")
    def on_lifecycle_changed(self, event):
        return self._apply(event)

    @subscribe("customer.owner_changed")
    def on_owner_changed(self, event):
        return self._apply(event)

    @subscribe("purchase.recorded")
    def on_purchase_recorded(self, event):
        return self._apply(event)

    @subscribe("interaction.logged")
    def on_interaction_logged(self, event):
        return self._apply(event)

    @subscribe("task.missed")
    def on_task_missed(self, event):
        return self._apply(event)

    @subscribe("task.completed")
    def on_task_completed(self, event):
        return self._apply(event)

    @subscribe("rep.registered")
    def on_rep_registered(self, event):
        return self._apply_rep(event)

    @subscribe("rep.updated")
    def on_rep_updated(self, event):
        return self._apply_rep(event)
