"""Customers service entrypoints: thin — parse, call a use case, answer."""
import logging

from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer
from werkzeug.wrappers import Response

from crm_common.audit import audit_page
from crm_common.consumer import consume
from crm_common.dependencies import Clock, Store
from crm_common.config import env
from crm_common.http import api, client_address, json_body
from crm_common.ops import Operations
from services.customers import commands, imports, jobs, models, policy_store, projections, queries, schemas
from services.customers.commands import signin
from services.customers.domain import ClassificationPolicy
from services.customers.policy_store import EffectivePolicy

log = logging.getLogger(__name__)
IMPORT_MAX_BYTES = int(env("CRM_IMPORT_MAX_BYTES", str(1024 ** 3)))  # the upload's own limit (1 GiB)


class CustomersService(Operations):
    name = "customers"

    store = Store(models.metadata, models.infrastructure, directory=(models.reps, "id"))
    clock = Clock()
    policy = EffectivePolicy()  # the environment's classification policy with what an admin stored over it
    followups = RpcProxy("followups")  # imported interactions are followups' facts: it applies them

    # ------------------------------------------------------------ sign-in

    @api("POST", "/v1/auth/login", auth=False)
    def login(self, request):
        data = schemas.LoginSchema().load(json_body(request))
        return signin.login(self.store, data["user"], data["password"], client_address(request),
                            self.config.get("AUTH_SECRET"), self.config.get("TOKEN_TTL_SECONDS", 3600),
                            self.config.get("TOKEN_ISSUER", "crm"))

    @api("GET", "/v1/auth/me")
    def me(self, request):
        return self.store.run(signin.me, request.principal)

    @api("PUT", "/v1/reps/<rep_id>/password")
    def set_password(self, request, rep_id):
        data = schemas.PasswordSchema().load(json_body(request))
        return signin.set_password(self.store, request.principal, rep_id, data["password"],
                                   data["current_password"], self.clock.now())

    @api("POST", "/v1/reps/<rep_id>/sign-out")
    def sign_out_everywhere(self, request, rep_id):
        return self.store.run(signin.sign_out_everywhere, request.principal, rep_id, self.clock.now())

    # ------------------------------------------------------------ reps

    @api("POST", "/v1/reps")
    def register_rep(self, request):
        data = schemas.RepSchema().load(json_body(request))
        return 201, self.store.run(commands.register_rep, request.principal, data, self.clock.now())

    @api("GET", "/v1/reps")
    def list_reps(self, request):
        return {"items": self.store.run(queries.list_reps, request.principal, request.args.get("team"))}

    @api("PATCH", "/v1/reps/<rep_id>")
    def update_rep(self, request, rep_id):
        data = schemas.RepUpdateSchema().load(json_body(request))
        return self.store.run(commands.update_rep, request.principal, rep_id, data, self.clock.now())

    @api("POST", "/v1/reps/<rep_id>/handover")
    def handover(self, request, rep_id):
        data = schemas.HandoverSchema().load(json_body(request))
        if data["dry_run"]:
            with self.store() as uow:  # never committed: a preview changes nothing
                return commands.handover(uow, request.principal, rep_id, data, self.clock.now())
        return self.store.run(commands.handover, request.principal, rep_id, data, self.clock.now())

    # ------------------------------------------------------------ customers

    @api("POST", "/v1/customers")
    def create_customer(self, request):
        data = schemas.CustomerCreateSchema().load(json_body(request))
        return 201, self.store.run(commands.create_customer, request.principal, data, self.clock.now(), self.policy)

    @api("POST", "/v1/customers/import")
    def import_customer(self, request):
        data = schemas.ImportSchema().load(json_body(request))
        return 201, self.store.run(commands.import_customer, request.principal, data, self.clock.now(), self.policy)

    @api("GET", "/v1/customers")
    def list_customers(self, request):
        params = schemas.ListQuerySchema().load(request.args.to_dict())
        return self.store.run(queries.list_customers, request.principal, params)

    @api("GET", "/v1/customers/<customer_id>")
    def get_customer(self, request, customer_id):
        return self.store.run(queries.get_customer, request.principal, customer_id)

    @api("PATCH", "/v1/customers/<customer_id>")
    def update_customer(self, request, customer_id):
        data = schemas.CustomerUpdateSchema().load(json_body(request))
        return self.store.run(commands.update_customer, request.principal, customer_id, data, self.clock.now())

    @api("POST", "/v1/customers/<customer_id>/archive")
    def archive_customer(self, request, customer_id):
        return self.store.run(commands.archive_customer, request.principal, customer_id, self.clock.now())

    @api("POST", "/v1/customers/<customer_id>/purchases")
    def record_purchase(self, request, customer_id):
        data = schemas.PurchaseSchema().load(json_body(request))
        return 201, self.store.run(commands.record_purchase, request.principal, customer_id, data, self.clock.now(),
                                   self.policy)

    @api("GET", "/v1/customers/<customer_id>/purchases")
    def list_purchases(self, request, customer_id):
        return {"items": self.store.run(queries.list_purchases, request.principal, customer_id)}

    @api("POST", "/v1/customers/<customer_id>/stage")
    def move_stage(self, request, customer_id):
        data = schemas.StageMoveSchema().load(json_body(request))
        return self.store.run(commands.move_stage, request.principal, customer_id, data["stage"],
                              data.get("changed_at"), self.clock.now())

    @api("POST", "/v1/customers/<customer_id>/transfer")
    def transfer_customer(self, request, customer_id):
        data = schemas.TransferSchema().load(json_body(request))
        return self.store.run(commands.transfer_customer, request.principal, customer_id, data["to_owner_id"],
                              data["reason"], self.clock.now())

    @api("GET", "/v1/customers/<customer_id>/history")
    def customer_history(self, request, customer_id):
        return self.store.run(queries.customer_history, request.principal, customer_id)

    # ------------------------------------------------------------ bulk imports

    @api("POST", "/v1/imports")
    def create_import(self, request):
        data = schemas.ImportJobSchema().load(json_body(request))
        return 201, self.store.run(imports.create_job, request.principal, data, self.clock.now())

    @api("PUT", "/v1/imports/<job_id>/file", max_body_bytes=IMPORT_MAX_BYTES)
    def upload_import_file(self, request, job_id):
        return 202, imports.store_file(self.store, request.principal, job_id, request.stream, self.clock.now())

    @api("GET", "/v1/imports")
    def list_imports(self, request):
        params = schemas.ImportListQuery().load(request.args.to_dict())
        return self.store.run(imports.list_jobs, request.principal, params["limit"])

    @api("GET", "/v1/imports/<job_id>")
    def get_import(self, request, job_id):
        return self.store.run(imports.get_job, request.principal, job_id)

    @api("GET", "/v1/imports/<job_id>/rejections")
    def import_rejections(self, request, job_id):
        first = self.store.run(imports.rejections_page, request.principal, job_id, 0)

        def pages():
            page = first
            while page:
                yield page
                page = self.store.run(imports.rejections_page, request.principal, job_id, page[-1].id)
        return Response(imports.rejections_csv(pages()), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{job_id}-rejected.csv"'})

    @timer(interval=1)
    def run_imports(self):
        """Take a queued import (or one whose replica stopped) and run it to its end."""
        job = imports.claim_next(self.store)
        if job is not None:
            try:
                imports.run(self.store, job, self.clock, self.policy, self.followups)
            except Exception:  # the lease runs out and a replica tries again: a database away is not fatal
                log.exception("import %s stopped; it resumes when its lease runs out", job.id)

    # ------------------------------------------------------------ classification sweep

    @api("GET", "/v1/classification/settings")
    def classification_settings(self, request):
        return self.store.run(policy_store.settings_view, request.principal, self._environment_policy())

    @api("PUT", "/v1/classification/settings")
    def put_classification_settings(self, request):
        data = schemas.ClassificationSettingsSchema().load(json_body(request))
        return self.store.run(policy_store.put_settings, request.principal, data, self._environment_policy(),
                              self.clock.now())

    def _environment_policy(self):
        return ClassificationPolicy.from_settings(self.config.get("SERVICE_SETTINGS", {}))

    @api("POST", "/v1/classification/sweep")
    def sweep_now(self, request):
        request.principal.require("admin")
        raw = request.get_data(as_text=True).strip()
        data = schemas.SweepSchema().load(json_body(request) if raw else {})
        return jobs.sweep(self.store, data.get("as_of") or self.clock.now(), self.policy, data["review_all"])

    @timer(interval=3600)
    def daily_sweep(self):
        """Hourly tick; the first replica to claim today's run does it, the others skip."""
        now = self.clock.now()
        self.store.run_job(jobs.SWEEP_JOB, now.date().isoformat(), lambda: jobs.sweep(self.store, now, self.policy))

    # ------------------------------------------------------------ its audit log

    @api("GET", "/v1/audit/customers")
    def audit_log(self, request):
        return self.store.run(audit_page, request.principal, models.infrastructure["audit_log"],
                              request.args.to_dict())

    # ------------------------------------------------------------ facts from other services

    @consume(projections.CONSUMES)
    def apply_events(self, events):
        return self.store.apply_batch(events, projections.CONSUMES, projections.Context(self.clock.now(), self.policy))

    # ------------------------------------------------------------ answers other services need now

    @rpc
    def get_customer_brief(self, customer_id):
        """Owner, team and class of a customer, or None: for callers validating input synchronously."""
        return self.store.run(queries.customer_brief, customer_id)
