"""Reports service entrypoints: thin - parse, call a use case, answer.

Read models come from events only (one subscriber per event type below); every
figure is read from maintained counters. docs/reports.md describes the API,
docs/reports-definitions.md every figure.
"""
import eventlet
from nameko.rpc import RpcProxy
from werkzeug.wrappers import Response

from crm_common.dependencies import Clock, Settings, Store
from crm_common.http import api
from crm_common.ops import Operations
from crm_common.subscriber import subscribe
from services.reports import domain, handlers, models, schemas


class ReportsService(Operations):
    name = "reports"

    store = Store(models.metadata, models.infrastructure)
    clock = Clock()
    settings = Settings(domain.ReportSettings.from_settings)
    # producers replay their history to this service's queues on a rebuild
    customers_rpc = RpcProxy("customers")
    followups_rpc = RpcProxy("followups")
    alerts_rpc = RpcProxy("alerts")

    def _today(self):
        return self.clock.now().date()

    # ------------------------------------------------------------ HTTP: figures

    @api("GET", "/v1/reports/dashboard")
    def dashboard(self, request):
        params = schemas.DashboardQuery().load(request.args.to_dict())
        board = self.store.run(handlers.dashboard, request.principal, params, self._today())
        if params["format"] == "csv":
            return _csv([handlers.dashboard_row(board)], handlers.DASHBOARD_CSV_COLUMNS,
                        f"dashboard-{board['period']['label']}.csv")
        return board

    @api("GET", "/v1/reports/distribution")
    def distribution(self, request):
        params = schemas.DistributionQuery().load(request.args.to_dict())
        result = self.store.run(handlers.distribution, request.principal, params, self._today())
        if params["format"] == "csv":
            return _csv(result["values"], ("value", "customers"),
                        f"distribution-{result['dimension']}-{result['as_of']}.csv")
        return result

    @api("GET", "/v1/reports/charts/<name>.svg")
    def chart(self, request, name):
        params = schemas.ChartQuery().load(request.args.to_dict())
        svg = self.store.run(handlers.chart, request.principal, name, params, self._today(), self.settings)
        return Response(svg, mimetype="image/svg+xml")

    @api("GET", "/v1/reports/<figure>")
    def figure(self, request, figure):
        params = schemas.TableQuery().load(request.args.to_dict())
        table = self.store.run(handlers.figure_table, request.principal, figure, params, self._today(), self.settings)
        if params["format"] == "csv":
            return _csv(table["rows"], table["columns"],
                        f"{figure}-{table['period_kind']}-{table['from']}-{table['to']}.csv")
        return table

    # ------------------------------------------------------------ HTTP: operations

    @api("GET", "/v1/reports/status")
    def status(self, request):
        request.principal.require("admin")
        return self.store.run(handlers.status)

    @api("POST", "/v1/reports/rebuild")
    def rebuild(self, request):
        """Wipe the read models, then have every producer replay its history to our queues."""
        request.principal.require("admin")
        wiped = self.store.run(handlers.wipe, request.principal)
        proxies = {"customers": self.customers_rpc, "followups": self.followups_rpc, "alerts": self.alerts_rpc}
        replies, replayed, errors = {}, {}, {}
        for producer, keys in handlers.replay_plan().items():
            try:
                replies[producer] = proxies[producer].replay_events.call_async(self.name, keys)
            except Exception as exc:  # e.g. the producer is not running
                errors[producer] = f"{type(exc).__name__}: {exc}"
        with eventlet.Timeout(self.settings.rebuild_wait_seconds, False):
            for producer, reply in replies.items():
                try:
                    replayed[producer] = reply.result()
                except Exception as exc:
                    errors[producer] = f"{type(exc).__name__}: {exc}"
        pending = sorted(set(replies) - set(replayed) - set(errors))
        body = {"wiped": wiped, "replayed": replayed, "still_replaying": pending, "errors": errors}
        return (502 if errors else 202 if pending else 200), body

    # ------------------------------------------------------------ events: one subscriber per type

    def _apply(self, event):
        # False: a redelivery (counted as a duplicate), nothing changed
        return self.store.apply_once(event, handlers.apply_event, event, self.settings, self.clock.now())

    @subscribe("customer.created")
    def on_customer_created(self, event):
        return self._apply(event)

    @subscribe("customer.updated")
    def on_customer_updated(self, event):
        return self._apply(event)

    @subscribe("customer.archived")
    def on_customer_archived(self, event):
        return self._apply(event)

    @subscribe("purchase.recorded")
    def on_purchase_recorded(self, event):
        return self._apply(event)

    @subscribe("customer.tier_changed")
    def on_tier_changed(self, event):
        return self._apply(event)

    @subscribe("customer.lifecycle_changed")
    def on_lifecycle_changed(self, event):
        return self._apply(event)

    @subscribe("customer.stage_changed")
    def on_stage_changed(self, event):
        return self._apply(event)

    @subscribe("customer.owner_changed")
    def on_owner_changed(self, event):
        return self._apply(event)

    @subscribe("rep.registered")
    def on_rep_registered(self, event):
        return self._apply(event)

    @subscribe("rep.updated")
    def on_rep_updated(self, event):
        return self._apply(event)

    @subscribe("interaction.logged")
    def on_interaction_logged(self, event):
        return self._apply(event)

    @subscribe("task.scheduled")
    def on_task_scheduled(self, event):
        return self._apply(event)

    @subscribe("task.due")
    def on_task_due(self, event):
        return self._apply(event)

    @subscribe("task.overdue")
    def on_task_overdue(self, event):
        return self._apply(event)

    @subscribe("task.completed")
    def on_task_completed(self, event):
        return self._apply(event)

    @subscribe("task.skipped")
    def on_task_skipped(self, event):
        return self._apply(event)

    @subscribe("task.missed")
    def on_task_missed(self, event):
        return self._apply(event)

    @subscribe("task.rescheduled")
    def on_task_rescheduled(self, event):
        return self._apply(event)

    @subscribe("task.reassigned")
    def on_task_reassigned(self, event):
        return self._apply(event)

    @subscribe("alert.raised")
    def on_alert_raised(self, event):
        return self._apply(event)

    @subscribe("alert.acknowledged")
    def on_alert_acknowledged(self, event):
        return self._apply(event)

    @subscribe("alert.escalated")
    def on_alert_escalated(self, event):
        return self._apply(event)

    @subscribe("alert.resolved")
    def on_alert_resolved(self, event):
        return self._apply(event)

    @subscribe("health.score_changed")
    def on_health_score_changed(self, event):
        return self._apply(event)


def _csv(rows, columns, filename: str) -> Response:
    return Response(domain.to_csv(rows, columns), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
