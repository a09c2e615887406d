"""docker-compose.yml, its files under deploy/compose/ and the Dockerfile, checked without Docker.

- docker-compose.yml is valid against the Compose Specification's JSON schema (vendored in
  tests/deploy/schemas/, see the README there) and runs with no .env file;
- every service container runs exactly what the distributed test mode runs
  (`python -m crm serve <service>`, `python -m crm migrate <service>`), and crm's own parser
  accepts it;
- every service can be scaled (no container_name, no host port), waits for its migration and
  for healthy infrastructure, stops gracefully;
- the nginx front door routes every path of the API to the service that serves it;
- Prometheus scrapes every replica of every service; alerts and the Grafana dashboard use
  metrics that exist.
"""
from __future__ import annotations

import copy
import json
import os
import re
from urllib.parse import urlsplit

import jsonschema
import pytest
from prometheus_client.metrics import MetricWrapperBase

from crm.runner import SERVICES
from crm_common import metrics
from crm_common.config import DEFAULT_PORTS
from crm_common.ops import openapi_document

INFRA = ("rabbitmq", "postgres")
# containers that may publish a host port: one of each, never scaled
SINGLETONS = ("gateway", "rabbitmq", "prometheus", "grafana")


@pytest.fixture(scope="module")
def compose(deploy):
    return deploy.load_yaml("docker-compose.yml")


@pytest.fixture(scope="module")
def compose_schema(deploy):
    return deploy.load_schema("compose-spec.json")


def interpolate(value, env=None):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and ${VAR:?message} with an empty environment."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match):
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if op in (":-", "-"):
            return env.get(name) or arg if op == ":-" else env.get(name, arg)
        if name not in env:
            raise KeyError(f"${{{name}}} has no default: `docker compose up` would need an .env file")
        return env[name]

    return re.sub(r"\$\{(\w+)(?:(:-|-|:\?|\?)([^}]*))?\}", substitute, value.replace("$$", "\0")).replace("\0", "$")


def environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in interpolate(env).items()}


# ------------------------------------------------------------------ schema

def test_compose_file_is_valid_against_the_compose_specification(compose, compose_schema):
    validator = jsonschema.Draft202012Validator(compose_schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("breakage", [
    ("typo in a service key", lambda c: c["services"]["customers"].update(comand=["serve", "customers"])),
    ("depends_on condition unknown", lambda c: c["services"]["customers"]["depends_on"]["rabbitmq"].update(
        condition="service_ready")),
    ("unknown top-level key", lambda c: c.update(service={})),
])
def test_the_schema_catches_mistakes(compose, compose_schema, breakage):
    """A control: the vendored schema is strict enough to reject typical mistakes."""
    _, breaking = breakage
    broken = copy.deepcopy(compose)
    breaking(broken)
    assert list(jsonschema.Draft202012Validator(compose_schema).iter_errors(broken))


def test_compose_runs_without_an_env_file(compose):
    """Every ${VARIABLE} has a default, so a bare `docker compose up` works."""
    interpolate(compose)


# -------------------------------------------------- what each container runs

def test_image_entrypoint_is_python_m_crm(deploy):
    with open(deploy.root_path("Dockerfile")) as handle:
        dockerfile = handle.read()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.M).group(1))
    assert entrypoint == ["python", "-m", "crm"]
    assert cmd == ["serve", "customers"]


def test_the_test_harness_runs_the_same_subcommands(deploy):
    """tests/integration starts `python -m crm serve <service>` and `... migrate <service>`:
    the containers run the same two subcommands, so what CI runs is what ships."""
    assert {("serve",), ("migrate",)} <= deploy.harness_commands()


@pytest.mark.parametrize("name", SERVICES)
def test_service_container_runs_serve(compose, deploy, monkeypatch, name):
    service = compose["services"][name]
    assert service["command"] == ["serve", name]
    assert ("serve",) in deploy.harness_commands()
    args = deploy.parse_cli(service["command"], monkeypatch)
    assert args == {"command": "serve", "service": name, "migrate": False}


@pytest.mark.parametrize("name", SERVICES)
def test_migration_container_runs_migrate(compose, deploy, monkeypatch, name):
    migration = compose["services"][f"migrate-{name}"]
    assert migration["command"] == ["migrate", name]
    assert ("migrate",) in deploy.harness_commands()
    assert deploy.parse_cli(migration["command"], monkeypatch) == {"command": "migrate", "service": name}
    assert migration.get("restart") == "no", "a one-shot container must not be restarted"
    assert migration["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert environment(migration) == {
        f"{name.upper()}_DATABASE_URL": environment(compose["services"][name])[f"{name.upper()}_DATABASE_URL"]}


def test_every_crm_container_uses_the_one_image(compose):
    images = {compose["services"][n]["image"] for n in SERVICES}
    images |= {compose["services"][f"migrate-{n}"]["image"] for n in SERVICES}
    assert len(images) == 1
    for name in SERVICES:
        assert compose["services"][name]["build"]["context"] == "."


# -------------------------------------------------------------- each service

@pytest.mark.parametrize("name", SERVICES)
def test_service_can_be_scaled(compose, name):
    service = compose["services"][name]
    assert "container_name" not in service, "a fixed container name forbids --scale"
    assert "ports" not in service, "a published host port clashes between replicas; the gateway publishes"
    assert service.get("expose") == [str(DEFAULT_PORTS[name])]


@pytest.mark.parametrize("name", SERVICES)
def test_service_starts_after_its_migration_and_healthy_infrastructure(compose, name):
    depends = compose["services"][name]["depends_on"]
    assert depends[f"migrate-{name}"] == {"condition": "service_completed_successfully"}
    for infra in INFRA:
        assert depends[infra] == {"condition": "service_healthy"}
        assert "healthcheck" in compose["services"][infra]


@pytest.mark.parametrize("name", SERVICES)
def test_service_stops_gracefully_and_restarts(compose, name):
    service = compose["services"][name]
    assert service["init"] is True, "an init process forwards SIGTERM and reaps children"
    seconds = int(re.fullmatch(r"(\d+)s", service["stop_grace_period"]).group(1))
    assert seconds >= 20, "in-flight requests and events need time to finish before SIGKILL"
    assert service["restart"] in ("unless-stopped", "always", "on-failure")


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment(compose, name):
    env = environment(compose["services"][name])
    prefix = name.upper() + "_"
    port = DEFAULT_PORTS[name]
    assert env[f"{prefix}HTTP_ADDRESS"] == f"0.0.0.0:{port}"
    assert env["CRM_HEALTH_PORT"] == str(port), "the image's HEALTHCHECK reads the port from CRM_HEALTH_PORT"
    assert urlsplit(env["CRM_AMQP_URI"]).hostname == "rabbitmq"
    url = urlsplit(env[f"{prefix}DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg2" and url.hostname == "postgres"
    assert url.username == url.path.lstrip("/") == f"crm_{name}", "one role and one database per service"
    assert env["CRM_AUTH_SECRET"]
    for key in env:
        # the services refuse unknown <SERVICE>_* settings; and no service reads another's
        assert key.startswith("CRM_") or key in (f"{prefix}DATABASE_URL", f"{prefix}HTTP_ADDRESS"), key


def test_one_database_and_role_per_service(compose, deploy):
    with open(deploy.root_path("deploy", "compose", "postgres-init.sh")) as handle:
        script = handle.read()
    loop = re.search(r"for crm_service in ([a-z ]+); do", script).group(1).split()
    assert tuple(loop) == tuple(SERVICES)
    postgres = compose["services"]["postgres"]
    mounts = [v.split(":") for v in postgres["volumes"]]
    assert ["./deploy/compose/postgres-init.sh", "/docker-entrypoint-initdb.d/10-crm-databases.sh", "ro"] in mounts
    pg_env = environment(postgres)
    for name in SERVICES:
        url = urlsplit(environment(compose["services"][name])[f"{name.upper()}_DATABASE_URL"])
        assert url.password == pg_env[f"{name.upper()}_DB_PASSWORD"]
    assert os.access(deploy.root_path("deploy", "compose", "postgres-init.sh"), os.X_OK)


def test_only_singletons_publish_host_ports(compose):
    published = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert name in SINGLETONS, f"{name} publishes {port}: it could not be scaled"
            host_port = interpolate(port).rsplit(":", 2)[-2]
            assert host_port not in published, f"{name} and {published.get(host_port)} both publish {host_port}"
            published[host_port] = name
        assert "container_name" not in service
    assert published["8080"] == "gateway", "the gateway publishes the API"


def test_long_running_containers_have_init_and_grace_period(compose):
    for name, service in compose["services"].items():
        if name.startswith("migrate-"):
            continue
        assert "stop_grace_period" in service, name
        if name not in INFRA:
            assert service.get("init") is True, name


def test_image_healthcheck_reads_the_port_from_the_environment(deploy):
    with open(deploy.root_path("Dockerfile")) as handle:
        dockerfile = handle.read()
    joined = dockerfile.replace("\\\n", " ")  # continuation lines
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", joined, re.M).group(1)
    command = json.loads(healthcheck)
    assert command[0] == "python" and "curl" not in healthcheck
    assert "CRM_HEALTH_PORT" in command[-1] and "/health" in command[-1]
    compile(command[-1], "HEALTHCHECK", "exec")
    assert re.search(r"^FROM python:3\.11-slim", dockerfile.replace("${PYTHON_IMAGE}", "python:3.11-slim"), re.M)
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)[-1]
    assert user not in ("root", "0") and not user.startswith("0:")


# ------------------------------------------------------- nginx front door

def nginx_locations(text: str):
    """[(modifier, pattern, body)] of the server's location blocks, in order."""
    text = re.sub(r"#[^\n]*", "", text)
    return [(m.group(1) or "", m.group(2), m.group(3))
            for m in re.finditer(r"location\s+(=|~\*|~|\^~)?\s*(\S+)\s*\{([^}]*)\}", text)]


def nginx_route(locations, url: str):
    """The location nginx picks for url: exact, then the longest prefix (^~ stops there),
    then the first matching regex in order, else that longest prefix."""
    for modifier, pattern, body in locations:
        if modifier == "=" and pattern == url:
            return pattern, body
    prefixes = [(p, m, b) for m, p, b in locations if m in ("", "^~") and url.startswith(p)]
    longest = max(prefixes, key=lambda item: len(item[0]), default=None)
    if longest and longest[1] == "^~":
        return longest[0], longest[2]
    for modifier, pattern, body in locations:
        if modifier in ("~", "~*") and re.search(pattern, url, re.I if modifier == "~*" else 0):
            return pattern, body
    return (longest[0], longest[2]) if longest else (None, "")


@pytest.fixture(scope="module")
def nginx(deploy):
    with open(deploy.root_path("deploy", "compose", "nginx.conf")) as handle:
        text = handle.read()
    upstreams = dict(re.findall(r"set \$(\w+) ([\w.-]+:\d+);", text))
    return nginx_locations(text), upstreams


def nginx_target(nginx, url):
    """The compose service (and port) nginx forwards url to, or None."""
    locations, upstreams = nginx
    _, body = nginx_route(locations, url)
    proxy = re.search(r"proxy_pass\s+http://\$(\w+)\s*;", body)
    if not proxy:
        return None
    host, port = upstreams[proxy.group(1)].split(":")
    return host, int(port)


def all_paths(owners):
    return sorted(set(openapi_document()["paths"]) | set(owners))


def test_nginx_routes_every_api_path_to_its_service(nginx, owners, deploy):
    wrong = []
    for path in all_paths(owners):
        served_by = owners.get(path, set())
        assert served_by, f"{path} is documented but no service serves it"
        if len(served_by) > 1:
            continue  # the operational endpoints every service has: next test
        (owner,) = served_by
        target = nginx_target(nginx, deploy.sample_url(path))
        if target != (owner, DEFAULT_PORTS[owner]):
            wrong.append(f"{path}: served by {owner}, nginx sends it to {target}")
    assert not wrong, "\n".join(wrong)


def test_nginx_operational_paths(nginx, owners):
    shared = {p for p, s in owners.items() if len(s) > 1}
    assert all(owners[p] == set(SERVICES) for p in shared), "a path served by two services but not all"
    assert {"/health", "/metrics", "/openapi.json"} <= shared
    assert nginx_target(nginx, "/openapi.json") in {(s, DEFAULT_PORTS[s]) for s in SERVICES}
    assert nginx_target(nginx, "/metrics") is None, "metrics stay inside"
    assert nginx_target(nginx, "/nowhere") is None


def test_nginx_resolves_services_at_request_time(deploy, nginx):
    """proxy_pass through variables + Docker's resolver: every replica of a scaled service gets
    traffic, and the gateway starts before the services."""
    with open(deploy.root_path("deploy", "compose", "nginx.conf")) as handle:
        text = handle.read()
    assert re.search(r"^\s*resolver 127\.0\.0\.11\b", text, re.M)
    assert not re.search(r"^\s*upstream\s", text, re.M), "an upstream block resolves names once, at start"
    _, upstreams = nginx
    assert upstreams == {s: f"{s}:{DEFAULT_PORTS[s]}" for s in SERVICES}


def test_gateway_publishes_the_api(compose):
    gateway = compose["services"]["gateway"]
    assert interpolate(gateway["ports"]) == ["8080:8080"]
    assert "./deploy/compose/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]


# -------------------------------------------------------- observability

def metric_names() -> set[str]:
    """Every sample name crm_common.metrics exposes (counter _total, histogram _bucket/_sum/_count)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",)}
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + s for s in suffixes[family.type])
    return names


def expression_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(crm_[a-z_]+)\b", expr))


def test_prometheus_scrapes_every_replica_of_every_service(compose, deploy):
    config = deploy.load_yaml("deploy", "compose", "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in SERVICES:
        job = jobs[f"crm-{name}"]
        (sd,) = job["dns_sd_configs"]
        assert sd == {**sd, "names": [name], "type": "A", "port": DEFAULT_PORTS[name]}, \
            "DNS service discovery: one target per replica with --scale"
        assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "rabbitmq-queues" in jobs, "queue depth (what KEDA scales on) is scraped too"
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/compose/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    for rule_file in config["rule_files"]:
        assert any(m.split(":")[1] == rule_file for m in mounts), rule_file


def test_alert_rules_use_existing_metrics(deploy):
    rules = deploy.load_yaml("deploy", "compose", "prometheus-alerts.yml")
    known = metric_names()
    names = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert expression_metrics(rule["expr"]) <= known, rule["alert"]
    for expected in ("CrmOutboxBacklogGrowing", "CrmEventsDeadLettered", "CrmHttp5xxRate", "CrmHttpLatencyP95",
                     "CrmQueueBacklog"):
        assert expected in names


def test_grafana_is_provisioned_with_the_dashboard(compose, deploy):
    grafana = compose["services"]["grafana"]
    mounts = dict(m.rsplit(":", 2)[:2] for m in grafana["volumes"] if m.startswith("./"))
    datasources = deploy.load_yaml("deploy", "compose", "grafana", "provisioning", "datasources", "prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = deploy.load_yaml("deploy", "compose", "grafana", "provisioning", "dashboards", "crm.yml")
    (provider,) = providers["providers"]
    assert mounts["./deploy/compose/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/compose/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/crm-overview.json"
    assert os.path.exists(deploy.root_path("deploy", "compose", "grafana", "dashboards", "crm-overview.json"))


def test_dashboard_panels_cover_the_service_metrics(deploy):
    with open(deploy.root_path("deploy", "compose", "grafana", "dashboards", "crm-overview.json")) as handle:
        dashboard = json.load(handle)
    source = deploy.load_yaml("deploy", "compose", "grafana", "provisioning", "datasources",
                              "prometheus.yml")["datasources"][0]
    known = metric_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == source["uid"]
            assert expression_metrics(target["expr"]) <= known, (panel["title"], target["expr"])
            used |= expression_metrics(target["expr"])
    for family in ("crm_http_requests_total", "crm_http_request_duration_seconds_bucket",
                   "crm_events_published_total", "crm_events_consumed_total", "crm_events_dead_lettered_total",
                   "crm_outbox_backlog", "crm_job_duration_seconds_sum"):
        assert family in used, f"no panel shows {family}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_no_shell_form_commands(compose):
    """Exec form only: the process gets SIGTERM itself, not a shell in front of it."""
    for name, service in compose["services"].items():
        for key in ("command", "entrypoint"):
            if key in service:
                assert isinstance(service[key], list), f"{name}.{key} should be a list"
