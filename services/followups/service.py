"""Followups service entrypoints: thin — parse, call a use case, answer."""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import eventlet
from nameko.rpc import RpcProxy
from nameko.timer import Timer
from prometheus_client import Counter as PromCounter

from crm_common import metrics
from crm_common.dependencies import Clock, Settings, Store
from crm_common.errors import CrmError
from crm_common.http import api, json_body
from crm_common.ops import Operations
from crm_common.subscriber import subscribe
from services.followups import handlers, models, schemas
from services.followups.domain.settings import FollowupsSettings

REMINDERS = PromCounter("crm_followups_reminders_total", "Task reminders emitted by the sweep", ["event"])
RPC_TIMEOUT_SECONDS = 10
SWEEP_JOBS = ("reminders", "care", "cadence")


class SettingTimer(Timer):
    """A timer whose interval is one of the service's settings (FOLLOWUPS_* environment)."""

    def __init__(self, setting: str, **kwargs):
        self.setting = setting
        super().__init__(interval=60, **kwargs)

    def setup(self):
        settings = FollowupsSettings.from_settings(self.container.config.get("SERVICE_SETTINGS", {}))
        self.interval = getattr(settings, self.setting)


setting_timer = SettingTimer.decorator


class FollowupsService(Operations):
    name = "followups"

    store = Store(models.metadata, models.infrastructure)
    clock = Clock()
    settings = Settings(FollowupsSettings.from_settings)
    customers_rpc = RpcProxy("customers")

    # ------------------------------------------------------------ plumbing

    def _policy(self, uow):
        return handlers.current_policy(uow, self.settings)[0]

    def _fetch_brief(self, customer_id: str):
        """The customers service's answer for a customer our read model does not know yet."""
        try:
            with eventlet.Timeout(RPC_TIMEOUT_SECONDS):
                return self.customers_rpc.get_customer_brief(customer_id)
        except eventlet.Timeout:
            raise handlers.Unavailable("the customers service did not answer; try again", field="customer_id")

    @staticmethod
    def _query(schema, request) -> dict:
        return schema().load(request.args.to_dict())

    # ------------------------------------------------------------ interactions

    @api("POST", "/v1/interactions")
    def log_interaction(self, request):
        data = schemas.InteractionSchema().load(json_body(request))
        now = self.clock.now()
        return 201, self.store.run(lambda uow: handlers.log_interaction(
            uow, request.principal, data, now, self.settings, self._policy(uow), self._fetch_brief))

    @api("GET", "/v1/customers/<customer_id>/interactions")
    def customer_interactions(self, request, customer_id):
        params = self._query(schemas.TimelineQuery, request)
        now = self.clock.now()
        return self.store.run(lambda uow: handlers.customer_timeline(
            uow, request.principal, customer_id, params["limit"], now, self._fetch_brief, self._policy(uow),
            self.settings))

    # ------------------------------------------------------------ tasks

    @api("GET", "/v1/tasks")
    def list_tasks(self, request):
        params = self._query(schemas.TaskListQuery, request)
        return self.store.run(handlers.list_tasks, request.principal, params)

    @api("POST", "/v1/tasks")
    def create_task(self, request):
        data = schemas.TaskCreateSchema().load(json_body(request))
        now = self.clock.now()
        return 201, self.store.run(lambda uow: handlers.create_manual_task(
            uow, request.principal, data, now, self.settings, self._policy(uow), self._fetch_brief))

    @api("GET", "/v1/tasks/<task_id>")
    def get_task(self, request, task_id):
        def use_case(uow):
            return handlers.task_view(handlers._visible_task(uow, request.principal, task_id))
        return self.store.run(use_case)

    @api("POST", "/v1/tasks/<task_id>/complete")
    def complete_task(self, request, task_id):
        data = schemas.TaskCompleteSchema().load(json_body(request))
        now = self.clock.now()
        return self.store.run(lambda uow: handlers.complete_task(
            uow, request.principal, task_id, data["interaction_id"], now, self._policy(uow)))

    @api("POST", "/v1/tasks/<task_id>/skip")
    def skip_task(self, request, task_id):
        data = schemas.TaskSkipSchema().load(json_body(request))
        now = self.clock.now()
        return self.store.run(lambda uow: handlers.skip_task(
            uow, request.principal, task_id, data["reason"], now, self._policy(uow)))

    @api("POST", "/v1/tasks/<task_id>/reassign")
    def reassign_task(self, request, task_id):
        data = schemas.TaskReassignSchema().load(json_body(request))
        return self.store.run(handlers.reassign_task, request.principal, task_id, data["assignee_id"], data["reason"],
                         self.clock.now())

    @api("GET", "/v1/worklist")
    def worklist(self, request):
        params = self._query(schemas.WorklistQuery, request)
        return self.store.run(handlers.worklist, request.principal, params, self.clock.now(), self.settings)

    # ------------------------------------------------------------ policy and measures

    @api("GET", "/v1/cadence-policy")
    def get_cadence_policy(self, request):
        return self.store.run(handlers.get_policy, self.settings)

    @api("PUT", "/v1/cadence-policy")
    def put_cadence_policy(self, request):
        request.principal.require("admin")
        data = schemas.CadencePolicySchema().load(json_body(request))
        result = self.store.run(handlers.put_policy, request.principal, data, self.settings, self.clock.now())
        return {**result, "note": "open cadence tasks follow the new policy at the next reminder tick "
                                  "(or POST /v1/sweeps/cadence)"}

    @api("GET", "/v1/stats/missed")
    def missed_stats(self, request):
        params = self._query(schemas.MissedQuery, request)
        return self.store.run(handlers.missed_stats, request.principal, params)

    # ------------------------------------------------------------ periodic work

    @api("POST", "/v1/sweeps/<job>")
    def sweep_now(self, request, job):
        request.principal.require("admin")
        if job not in SWEEP_JOBS:
            raise CrmError(f"unknown job {job}; one of {', '.join(SWEEP_JOBS)}", field="job")
        raw = request.get_data(as_text=True).strip()
        data = schemas.SweepSchema().load(json_body(request)) if raw else {}
        as_of = data.get("as_of") or self.clock.now()
        if job == "reminders":
            return self.run_reminders(as_of)
        if job == "care":
            return self.run_care(as_of)
        return self.run_cadence(as_of)

    @setting_timer("reminder_interval_seconds")
    def reminder_tick(self):
        """Every FOLLOWUPS_REMINDER_INTERVAL_SECONDS in every replica: rows are claimed SKIP LOCKED."""
        now = self.clock.now()
        self.run_reminders(now)
        with self.store() as uow:
            version = handlers.policy_version(uow)
        if version is not None:
            self.store.run_job("cadence-reconcile", version, lambda: self.run_cadence(now))

    @setting_timer("care_interval_seconds")
    def care_tick(self):
        """Hourly by default; the first replica to claim today's run does it, the others skip."""
        now = self.clock.now()
        day = now.astimezone(self.settings.timezone).date().isoformat()
        self.store.run_job("care-sweep", day, lambda: self.run_care(now))

    def run_reminders(self, now: datetime) -> dict:
        started = time.perf_counter()
        emitted: Counter = Counter()
        batches = 0
        while True:
            with self.store() as uow:
                batch = handlers.reminder_batch(uow, now, self.settings)
                uow.commit()
            if not batch:
                break
            batches += 1
            emitted.update(batch)
        for step, count in emitted.items():
            REMINDERS.labels(step).inc(count)
        seconds = time.perf_counter() - started
        metrics.JOB_DURATION.labels(self.name, "reminder-sweep").observe(seconds)
        return {"job": "reminders", "as_of": now, "batches": batches,
                "emitted": {step: emitted.get(step, 0) for step in ("due", "overdue", "missed")},
                "seconds": round(seconds, 3)}

    def run_care(self, as_of: datetime) -> dict:
        started = time.perf_counter()
        last_id, created, batches = None, 0, 0
        while True:
            with self.store() as uow:
                last_id, count = handlers.care_batch(uow, last_id, as_of, self.settings,
                                                     self.settings.sweep_batch_size)
                uow.commit()
            created += count
            if last_id is None:
                break
            batches += 1
        seconds = time.perf_counter() - started
        metrics.JOB_DURATION.labels(self.name, "care-sweep").observe(seconds)
        return {"job": "care", "as_of": as_of, "batches": batches, "created": created, "seconds": round(seconds, 3)}

    def run_cadence(self, now: datetime) -> dict:
        started = time.perf_counter()
        last_id, batches = None, 0
        while True:
            with self.store() as uow:
                last_id = handlers.reconcile_cadence_batch(uow, last_id, now, self._policy(uow))
                uow.commit()
            if last_id is None:
                break
            batches += 1
        seconds = time.perf_counter() - started
        metrics.JOB_DURATION.labels(self.name, "cadence-reconcile").observe(seconds)
        return {"job": "cadence", "as_of": now, "batches": batches, "seconds": round(seconds, 3)}

    # ------------------------------------------------------------ read models from events

    @subscribe("customer.created")
    def on_customer_created(self, event):
        now = self.clock.now()
        return self.store.apply_once(event, lambda uow: handlers.apply_snapshot(
            uow, event.data, event.data["created_at"], now, self._policy(uow), self.settings))

    @subscribe("customer.updated")
    def on_customer_updated(self, event):
        now = self.clock.now()
        return self.store.apply_once(event, lambda uow: handlers.apply_snapshot(
            uow, event.data, event.time, now, self._policy(uow), self.settings))

    @subscribe("customer.archived")
    def on_customer_archived(self, event):
        d = event.data
        return self.store.apply_once(event, lambda uow: handlers.archive_customer(
            uow, d["customer_id"], d["archived_at"], self.clock.now(), d.get("owner_id"), d.get("team")))

    @subscribe("customer.tier_changed")
    def on_tier_changed(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_tier(uow, event.data, self.clock.now(),
                                                                  self._policy(uow)))

    @subscribe("customer.lifecycle_changed")
    def on_lifecycle_changed(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_lifecycle(uow, event.data, self.clock.now(),
                                                                       self._policy(uow)))

    @subscribe("customer.stage_changed")
    def on_stage_changed(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_stage(uow, event.data, self.clock.now(),
                                                                   self.settings))

    @subscribe("customer.owner_changed")
    def on_owner_changed(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_owner_change(uow, event.data, event.time,
                                                                          self.clock.now()))

    @subscribe("purchase.recorded")
    def on_purchase_recorded(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_purchase(uow, event.data, self.clock.now()))

    @subscribe("rep.registered")
    def on_rep_registered(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_rep(uow, event.data, self.clock.now()))

    @subscribe("rep.updated")
    def on_rep_updated(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_rep(uow, event.data, self.clock.now()))

    @subscribe("alert.raised")
    def on_alert_raised(self, event):
        return self.store.apply_once(event, lambda uow: handlers.apply_alert(uow, event.data, self.clock.now(),
                                                                   self.settings))
