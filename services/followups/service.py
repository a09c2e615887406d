"""Followups service entrypoints: thin — parse, call a use case, answer."""
from __future__ import annotations

import eventlet
from nameko.rpc import RpcProxy, rpc
from nameko.timer import Timer

from crm_common.auth import Principal
from crm_common.audit import audit_page
from crm_common.consumer import consume
from crm_common.dependencies import Clock, Settings, Store
from crm_common.errors import CrmError
from crm_common.http import api, json_body
from crm_common.ops import Operations
from services.followups import cadence, commands, jobs, models, projections, queries, schemas
from services.followups.domain.settings import FollowupsSettings

RPC_TIMEOUT_SECONDS = 10
SWEEPS = {"reminders": jobs.run_reminders, "care": jobs.run_care, "cadence": jobs.run_cadence}


class Unavailable(CrmError):
    """A service this answer depends on did not reply in time."""
    status = 503
    code = "unavailable"


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

    store = Store(models.metadata, models.infrastructure, directory=(models.rep_view, "rep_id"))
    clock = Clock()
    settings = Settings(FollowupsSettings.from_settings)
    customers_rpc = RpcProxy("customers")

    # ------------------------------------------------------------ plumbing

    def _policy(self, uow):
        return cadence.current_policy(uow, self.settings)[0]

    def _fetch_brief(self, customer_id: str):
        """The customers service's answer for a customer our read model does not know yet."""
        try:
            with eventlet.Timeout(RPC_TIMEOUT_SECONDS):
                return self.customers_rpc.get_customer_brief(customer_id)
        except eventlet.Timeout:
            raise Unavailable("the customers service did not answer; try again", field="customer_id")

    @staticmethod
    def _query(schema, request) -> dict:
        return schema().load(request.args.to_dict())

    # ------------------------------------------------------------ interactions

    @api("POST", "/v1/interactions")
    def log_interaction(self, request):
        data = schemas.InteractionSchema().load(json_body(request))
        now = self.clock.now()
        return 201, self.store.run(lambda uow: commands.log_interaction(
            uow, request.principal, data, now, self.settings, self._policy(uow), self._fetch_brief))

    @rpc
    def import_interactions(self, actor, rows, dry_run):
        """Rows of a bulk import the customers service runs (customers and reps resolved): an answer per row."""
        principal = Principal(actor["user_id"], actor["role"], actor.get("team"))
        now = self.clock.now()
        return self.store.run(lambda uow: commands.import_interactions(
            uow, principal, rows, dry_run, schemas.InteractionSchema().load, now, self.settings, self._policy(uow),
            self._fetch_brief))

    @api("GET", "/v1/customers/<customer_id>/interactions")
    def customer_interactions(self, request, customer_id):
        params = self._query(schemas.TimelineQuery, request)
        now = self.clock.now()
        return self.store.run(lambda uow: queries.customer_timeline(
            uow, request.principal, customer_id, params["limit"], now, self._fetch_brief, self._policy(uow)))

    # ------------------------------------------------------------ tasks

    @api("GET", "/v1/tasks")
    def list_tasks(self, request):
        params = self._query(schemas.TaskListQuery, request)
        return self.store.run(queries.list_tasks, request.principal, params)

    @api("POST", "/v1/tasks")
    def create_task(self, request):
        data = schemas.TaskCreateSchema().load(json_body(request))
        now = self.clock.now()
        return 201, self.store.run(lambda uow: commands.create_manual_task(
            uow, request.principal, data, now, self.settings, self._policy(uow), self._fetch_brief))

    @api("GET", "/v1/tasks/<task_id>")
    def get_task(self, request, task_id):
        return self.store.run(queries.get_task, request.principal, task_id)

    @api("POST", "/v1/tasks/<task_id>/complete")
    def complete_task(self, request, task_id):
        data = schemas.TaskCompleteSchema().load(json_body(request))
        now = self.clock.now()
        return self.store.run(lambda uow: commands.complete_task(
            uow, request.principal, task_id, data["interaction_id"], now, self._policy(uow)))

    @api("POST", "/v1/tasks/<task_id>/skip")
    def skip_task(self, request, task_id):
        data = schemas.TaskSkipSchema().load(json_body(request))
        now = self.clock.now()
        return self.store.run(lambda uow: commands.skip_task(
            uow, request.principal, task_id, data["reason"], now, self._policy(uow)))

    @api("POST", "/v1/tasks/<task_id>/reassign")
    def reassign_task(self, request, task_id):
        data = schemas.TaskReassignSchema().load(json_body(request))
        return self.store.run(commands.reassign_task, request.principal, task_id, data["assignee_id"],
                              data["reason"], self.clock.now())

    @api("GET", "/v1/worklist")
    def worklist(self, request):
        params = self._query(schemas.WorklistQuery, request)
        return self.store.run(queries.worklist, request.principal, params, self.clock.now(), self.settings)

    # ------------------------------------------------------------ policy and measures

    @api("GET", "/v1/cadence-policy")
    def get_cadence_policy(self, request):
        return self.store.run(queries.get_policy, self.settings)

    @api("PUT", "/v1/cadence-policy")
    def put_cadence_policy(self, request):
        request.principal.require("admin")
        data = schemas.CadencePolicySchema().load(json_body(request))
        result = self.store.run(commands.put_policy, request.principal, data, self.settings, self.clock.now())
        return {**result, "note": "open cadence tasks follow the new policy at the next reminder tick "
                                  "(or POST /v1/sweeps/cadence)"}

    @api("GET", "/v1/stats/missed")
    def missed_stats(self, request):
        params = self._query(schemas.MissedQuery, request)
        return self.store.run(queries.missed_stats, request.principal, params)

    # ------------------------------------------------------------ periodic work

    @api("POST", "/v1/sweeps/<job>")
    def sweep_now(self, request, job):
        request.principal.require("admin")
        if job not in SWEEPS:
            raise CrmError(f"unknown job {job}; one of {', '.join(SWEEPS)}", field="job")
        raw = request.get_data(as_text=True).strip()
        data = schemas.SweepSchema().load(json_body(request)) if raw else {}
        return SWEEPS[job](self.store, data.get("as_of") or self.clock.now(), self.settings)

    @setting_timer("reminder_interval_seconds")
    def reminder_tick(self):
        """Every FOLLOWUPS_REMINDER_INTERVAL_SECONDS in every replica: rows are claimed SKIP LOCKED."""
        now = self.clock.now()
        self.run_reminders(now)
        version = self.store.run(cadence.policy_version)
        if version is not None:
            self.store.run_job("cadence-reconcile", version, lambda: self.run_cadence(now))

    @setting_timer("care_interval_seconds")
    def care_tick(self):
        """Hourly by default; the first replica to claim today's run does it, the others skip."""
        now = self.clock.now()
        day = now.astimezone(self.settings.timezone).date().isoformat()
        self.store.run_job("care-sweep", day, lambda: self.run_care(now))

    def run_reminders(self, now):
        return jobs.run_reminders(self.store, now, self.settings)

    def run_care(self, as_of):
        return jobs.run_care(self.store, as_of, self.settings)

    def run_cadence(self, now):
        return jobs.run_cadence(self.store, now, self.settings)

    # ------------------------------------------------------------ its audit log

    @api("GET", "/v1/audit/followups")
    def audit_log(self, request):
        return self.store.run(audit_page, request.principal, models.infrastructure["audit_log"],
                              request.args.to_dict())

    # ------------------------------------------------------------ facts from other services

    @consume(projections.CONSUMES)
    def apply_events(self, events):
        return self.store.apply_batch(events, projections.CONSUMES,
                                      projections.Context(self.clock.now(), self.settings))
