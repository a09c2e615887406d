"""Reports service entrypoints: thin - parse, call a use case, answer.

Read models come from events only (projections.py: the table of consumed events,
applied in batches); every figure is read from maintained counters (queries.py).
docs/reports.md describes the API, docs/reports-definitions.md every figure.
"""
import eventlet
from nameko.rpc import RpcProxy
from werkzeug.wrappers import Response

from crm_common.audit import audit_page
from crm_common.consumer import consume
from crm_common.dependencies import Clock, Settings, Store
from crm_common.http import api
from crm_common.ops import Operations
from services.reports import commands, domain, models, projections, queries, schemas


class ReportsService(Operations):
    name = "reports"

    store = Store(models.metadata, models.infrastructure, directory=(models.rep_directory, "rep_id"))
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
        board = self.store.run(queries.dashboard, request.principal, params, self._today(), self.settings)
        if params["format"] == "csv":
            return _csv([queries.dashboard_row(board)], queries.DASHBOARD_CSV_COLUMNS,
                        f"dashboard-{board['period']['label']}.csv")
        return board

    @api("GET", "/v1/reports/distribution")
    def distribution(self, request):
        params = schemas.DistributionQuery().load(request.args.to_dict())
        result = self.store.run(queries.distribution, request.principal, params, self._today())
        if params["format"] == "csv":
            return _csv(result["values"], ("value", "customers"),
                        f"distribution-{result['dimension']}-{result['as_of']}.csv")
        return result

    @api("GET", "/v1/reports/customers")
    def customers_behind(self, request):
        params = schemas.BehindQuery().load(request.args.to_dict())
        return self.store.run(queries.customers_behind, request.principal, params, self._today(), self.settings)

    @api("GET", "/v1/reports/charts/<name>.svg")
    def chart(self, request, name):
        params = schemas.ChartQuery().load(request.args.to_dict())
        svg = self.store.run(queries.chart, request.principal, name, params, self._today(), self.settings)
        return Response(svg, mimetype="image/svg+xml")

    @api("GET", "/v1/reports/<figure>")
    def figure(self, request, figure):
        params = schemas.TableQuery().load(request.args.to_dict())
        table = self.store.run(queries.figure_table, request.principal, figure, params, self._today(), self.settings)
        if params["format"] == "csv":
            return _csv(table["rows"], table["columns"],
                        f"{figure}-{table['period_kind']}-{table['from']}-{table['to']}.csv")
        return table

    # ------------------------------------------------------------ HTTP: operations

    @api("GET", "/v1/reports/status")
    def status(self, request):
        request.principal.require("admin")
        return self.store.run(queries.status)

    @api("POST", "/v1/reports/rebuild")
    def rebuild(self, request):
        """Wipe the read models, then have every producer replay its history to our queues."""
        request.principal.require("admin")
        wiped = self.store.run(commands.wipe, request.principal)
        proxies = {"customers": self.customers_rpc, "followups": self.followups_rpc, "alerts": self.alerts_rpc}
        replies, replayed, errors = {}, {}, {}
        for producer, keys in projections.CONSUMES.replay_plan().items():
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

    # ------------------------------------------------------------ its audit log

    @api("GET", "/v1/audit/reports")
    def audit_log(self, request):
        return self.store.run(audit_page, request.principal, models.infrastructure["audit_log"], request.args.to_dict())

    # ------------------------------------------------------------ facts from other services

    @consume(projections.CONSUMES)
    def apply_events(self, events):
        return self.store.apply_batch(events, projections.CONSUMES,
                                      projections.Context(self.clock.now(), self.settings))


def _csv(rows, columns, filename: str) -> Response:
    return Response(domain.to_csv(rows, columns), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
