"""deploy/k8s: the kustomize base, the KEDA component and the overlays, checked without a cluster.

The kustomizations are rendered here in Python (resources, components, strategic-merge patches,
namespace, images: the subset these files use, refused otherwise); where kubectl is installed,
the rendering is compared with `kubectl kustomize`. Then:

- every manifest is valid against the Kubernetes JSON schemas (PyPI kubernetes-validate, strict:
  unknown fields fail), KEDA's ScaledObject/TriggerAuthentication against the schemas vendored in
  tests/deploy/schemas/;
- every service has a Deployment running `serve <service>` (what the distributed test mode runs)
  with probes, resources, a non-root security context and a grace period, a Service, a
  PodDisruptionBudget, an autoscaler (CPU; plus queue depth with KEDA), and a migration Job
  running `migrate <service>`;
- the KEDA triggers cover the queues the service's code consumes;
- the Ingress routes every path of the API to the service that serves it.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

from crm.runner import SERVICES
from crm_common.config import DEFAULT_PORTS
from crm_common.ops import openapi_document

K8S = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "deploy", "k8s")
KUSTOMIZATIONS = {"base": "base", "production": "overlays/production", "dev": "overlays/dev"}
# oldest and newest Kubernetes minor versions the manifests must be valid for
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version() + ".0")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "ClusterTriggerAuthentication", "PriorityClass", "StorageClass"}
KEDA_SCHEMAS = {"ScaledObject": "keda-scaledobject.json", "TriggerAuthentication": "keda-triggerauthentication.json"}


# ------------------------------------------------------------- the renderer

class KustomizeError(Exception):
    pass


def _load_documents(path: str) -> list[dict]:
    with open(path) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def _kustomization(directory: str) -> dict:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            with open(path) as handle:
                return yaml.safe_load(handle)
    raise KustomizeError(f"no kustomization in {directory}")


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _merge(target, patch, merge_by_name: bool):
    """Strategic merge, the part these files need: maps merge, `null` deletes a key, lists of
    named items (containers, env, volumes, ports) merge by name on built-in kinds, other lists
    are replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = _merge(merged[key], value, merge_by_name)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if (merge_by_name and isinstance(target, list) and isinstance(patch, list)
            and all(isinstance(i, dict) and "name" in i for i in target + patch)):
        merged = [copy.deepcopy(i) for i in target]
        index = {item["name"]: n for n, item in enumerate(merged)}
        for item in patch:
            if item["name"] in index:
                merged[index[item["name"]]] = _merge(merged[index[item["name"]]], item, merge_by_name)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _matches(resource: dict, target: dict) -> bool:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace", "labelSelector"}
    if unknown:
        raise KustomizeError(f"patch target fields not supported here: {sorted(unknown)}")
    meta = resource["metadata"]
    if "kind" in target and resource["kind"] != target["kind"]:
        return False
    if "group" in target and _group(resource["apiVersion"]) != target["group"]:
        return False
    if "name" in target and not re.fullmatch(target["name"], meta["name"]):
        return False
    if "namespace" in target and meta.get("namespace") != target["namespace"]:
        return False
    if "labelSelector" in target:
        labels = meta.get("labels") or {}
        for term in target["labelSelector"].split(","):
            key, _, value = term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def _apply_patch(resources: list[dict], entry: dict, directory: str) -> list[dict]:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise KustomizeError(f"patch fields not supported here: {sorted(unknown)}")
    if "path" in entry:
        documents = _load_documents(os.path.join(directory, entry["path"]))
    else:
        documents = [doc for doc in yaml.safe_load_all(entry["patch"]) if doc]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise KustomizeError(f"one strategic-merge patch per entry, got {entry}")
    patch = copy.deepcopy(documents[0])
    if "target" in entry:
        selected = [r for r in resources if _matches(r, entry["target"])]
    else:
        selected = [r for r in resources
                    if r["kind"] == patch["kind"] and r["metadata"]["name"] == patch["metadata"]["name"]
                    and _group(r["apiVersion"]) == _group(patch["apiVersion"])]
    if not selected:
        raise KustomizeError(f"patch matches no resource: {entry}")
    delete = patch.pop("$patch", None) == "delete"
    for key in ("apiVersion", "kind"):
        patch.pop(key, None)
    patch.get("metadata", {}).pop("name", None)
    result = []
    for resource in resources:
        if not any(resource is s for s in selected):
            result.append(resource)
        elif not delete:
            group = _group(resource["apiVersion"])
            builtin = "." not in group or group.endswith(".k8s.io")  # CRDs: lists are replaced
            result.append(_merge(resource, patch, merge_by_name=builtin))
    return result


def _pod_specs(resource: dict):
    spec = resource.get("spec", {})
    if resource["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        yield spec["template"]["spec"]
    elif resource["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def _set_images(resources: list[dict], images: list[dict]) -> None:
    for resource in resources:
        for pod in _pod_specs(resource):
            for container in pod.get("initContainers", []) + pod.get("containers", []):
                name = re.split(r"[:@]", container["image"], maxsplit=1)[0]
                for image in images:
                    if image["name"] != name:
                        continue
                    unknown = set(image) - {"name", "newName", "newTag"}
                    if unknown:
                        raise KustomizeError(f"image fields not supported here: {sorted(unknown)}")
                    tag = image.get("newTag") or (container["image"][len(name) + 1:] or None)
                    container["image"] = image.get("newName", name) + (f":{tag}" if tag else "")


def render(directory: str, component: bool = False) -> list[dict]:
    """`kustomize build directory`, for the features used in deploy/k8s (anything else raises)."""
    directory = os.path.join(K8S, directory) if not os.path.isabs(directory) else directory
    kustomization = _kustomization(directory)
    expected_kind = "Component" if component else "Kustomization"
    if kustomization.get("kind", "Kustomization") != expected_kind:
        raise KustomizeError(f"{directory}: expected kind {expected_kind}")
    unknown = set(kustomization) - {"apiVersion", "kind", "resources", "components", "patches", "namespace",
                                    "images"}
    if unknown:
        raise KustomizeError(f"{directory}: fields not supported here: {sorted(unknown)}")
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = os.path.normpath(os.path.join(directory, entry))
        resources += render(path) if os.path.isdir(path) else _load_documents(path)
    for entry in kustomization.get("components", []):
        path = os.path.normpath(os.path.join(directory, entry))
        inner = _kustomization(path)
        resources += render(path, component=True) if inner.get("resources") else []
        for patch in inner.get("patches", []):
            resources = _apply_patch(resources, patch, path)
    if component:
        return resources  # its patches are applied by the including kustomization
    for patch in kustomization.get("patches", []):
        resources = _apply_patch(resources, patch, directory)
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    _set_images(resources, kustomization.get("images", []))
    keys = [(r["apiVersion"], r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]) for r in resources]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise KustomizeError(f"{directory}: resources defined twice: {duplicates}")
    return resources


def by_kind(resources, kind) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(path) for name, path in KUSTOMIZATIONS.items()}


def all_documents(rendered):
    for overlay, resources in rendered.items():
        for resource in resources:
            yield overlay, resource


# ----------------------------------------------------------------- renderer

@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_renderer_agrees_with_kubectl_kustomize(rendered, overlay):
    """The Python rendering is what kustomize itself builds (kubectl ships with this machine's image)."""
    assert shutil.which("kubectl"), "kubectl is needed to check the renderer against kustomize itself"
    output = subprocess.run(["kubectl", "kustomize", os.path.join(K8S, KUSTOMIZATIONS[overlay])],
                            capture_output=True, text=True, timeout=120)
    assert output.returncode == 0, output.stderr

    def key(r):
        return r["kind"], r["metadata"].get("namespace", ""), r["metadata"]["name"]

    theirs = sorted((d for d in yaml.safe_load_all(output.stdout) if d), key=key)
    ours = sorted(rendered[overlay], key=key)
    assert [key(r) for r in ours] == [key(r) for r in theirs]
    for mine, kustomize in zip(ours, theirs):
        assert mine == kustomize, key(mine)


def test_production_overlay_renders_the_whole_system(rendered):
    production = rendered["production"]
    kinds = {}
    for resource in production:
        kinds.setdefault(resource["kind"], set()).add(resource["metadata"]["name"])
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "crm"
    for name in SERVICES:
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "ScaledObject", "ConfigMap"):
            assert f"crm-{name}" in kinds[kind], (kind, name)
        assert f"crm-{name}-migrate" in kinds["Job"]
    assert "HorizontalPodAutoscaler" not in kinds, "KEDA owns the autoscalers in production"
    assert kinds["TriggerAuthentication"] == {"crm-rabbitmq"}
    assert kinds["Ingress"] == {"crm"}
    assert kinds["Namespace"] == {"crm"}


# ------------------------------------------------------------------ schemas

def test_every_manifest_is_valid_kubernetes(rendered):
    checked, errors = 0, []
    for overlay, resource in all_documents(rendered):
        if resource["kind"] in KEDA_SCHEMAS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(map(str, exc.absolute_path))
                errors.append(f"{overlay} {resource['kind']}/{resource['metadata']['name']} (k8s {version}) "
                              f"{path}: {exc.message}")
            checked += 1
    assert not errors, "\n".join(errors)
    assert checked >= 2 * 20


@pytest.mark.parametrize("kind", sorted(KEDA_SCHEMAS))
def test_keda_resources_are_valid(rendered, deploy, kind):
    validator = jsonschema.Draft202012Validator(deploy.load_schema(KEDA_SCHEMAS[kind]))
    found = 0
    for overlay, resource in all_documents(rendered):
        if resource["kind"] == kind:
            found += 1
            errors = list(validator.iter_errors(resource))
            assert not errors, f"{overlay} {resource['metadata']['name']}: " + "; ".join(
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    assert found


@pytest.mark.parametrize("broken", [
    ("number where KEDA wants a string", lambda so: so["spec"]["triggers"][0]["metadata"].update(value=200)),
    ("regex over AMQP", lambda so: so["spec"]["triggers"][0]["metadata"].update(protocol="amqp")),
    ("misspelt field", lambda so: so["spec"].update(maxReplicas=4)),
    ("cpu trigger without metricType", lambda so: so["spec"]["triggers"][1].pop("metricType")),
])
def test_keda_schema_catches_mistakes(rendered, deploy, broken):
    """A control: the vendored KEDA schema refuses what KEDA or the API server would refuse."""
    _, breaking = broken
    scaled = copy.deepcopy(by_kind(rendered["production"], "ScaledObject")["crm-followups"])
    breaking(scaled)
    assert list(jsonschema.Draft202012Validator(deploy.load_schema("keda-scaledobject.json")).iter_errors(scaled))


def test_kubernetes_schema_catches_mistakes(rendered):
    """A control: strict validation refuses an unknown field."""
    deployment = copy.deepcopy(by_kind(rendered["production"], "Deployment")["crm-customers"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


# -------------------------------------------------------- each service's pods

def main_container(deployment: dict, name: str) -> dict:
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return container


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
@pytest.mark.parametrize("name", SERVICES)
def test_deployment_runs_serve_like_the_test_harness(rendered, deploy, monkeypatch, overlay, name):
    deployment = by_kind(rendered[overlay], "Deployment")[f"crm-{name}"]
    container = main_container(deployment, name)
    assert "command" not in container, "keep the image's ENTRYPOINT: python -m crm"
    assert container["args"] == ["serve", name]
    assert ("serve",) in deploy.harness_commands()
    assert deploy.parse_cli(container["args"], monkeypatch) == {"command": "serve", "service": name,
                                                                "migrate": False}


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
@pytest.mark.parametrize("name", SERVICES)
def test_migration_job_runs_migrate_like_the_test_harness(rendered, deploy, monkeypatch, overlay, name):
    job = by_kind(rendered[overlay], "Job")[f"crm-{name}-migrate"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["migrate", name] and "command" not in container
    assert ("migrate",) in deploy.harness_commands()
    assert deploy.parse_cli(container["args"], monkeypatch) == {"command": "migrate", "service": name}
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert "envFrom" not in container, "applied alone before the rest (deploy/README.md): secrets only"
    env = {e["name"]: e for e in container["env"]}
    assert env[f"{name.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == f"crm-{name}-database"
    assert container["image"] == main_container(by_kind(rendered[overlay], "Deployment")[f"crm-{name}"],
                                                name)["image"], "the migration runs the image it prepares for"


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
@pytest.mark.parametrize("name", SERVICES)
def test_deployment_probes_resources_security(rendered, overlay, name):
    deployment = by_kind(rendered[overlay], "Deployment")[f"crm-{name}"]
    pod = deployment["spec"]["template"]["spec"]
    container = main_container(deployment, name)
    port = DEFAULT_PORTS[name]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    for probe in ("readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    # liveness asks only whether the process answers: a dependency outage must not restart replicas
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    for each in pod.get("initContainers", []) + pod["containers"]:
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(each["resources"][bound]), (each["name"], bound)
        security = each["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    # preStop sleep + in-flight work must fit in the grace period
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 30
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
@pytest.mark.parametrize("name", SERVICES)
def test_deployment_configuration(rendered, overlay, name):
    """Config from the ConfigMaps, secrets by reference; only variables the service accepts."""
    resources = rendered[overlay]
    deployment = by_kind(resources, "Deployment")[f"crm-{name}"]
    container = main_container(deployment, name)
    config_maps = by_kind(resources, "ConfigMap")
    variables = {}
    for source in container["envFrom"]:
        variables.update(config_maps[source["configMapRef"]["name"]]["data"])
    for entry in container["env"]:
        variables[entry["name"]] = entry.get("value") or entry["valueFrom"]["secretKeyRef"]
    prefix = name.upper() + "_"
    assert variables[f"{prefix}HTTP_ADDRESS"] == f"0.0.0.0:{DEFAULT_PORTS[name]}"
    assert variables[f"{prefix}DATABASE_URL"] == {"name": f"crm-{name}-database", "key": "url"}
    assert variables["CRM_AMQP_URI"] == {"name": "crm-rabbitmq", "key": "amqp-uri"}
    assert variables["CRM_AUTH_SECRET"] == {"name": "crm-auth", "key": "secret"}
    for key in variables:
        assert key.startswith("CRM_") or key in (f"{prefix}DATABASE_URL", f"{prefix}HTTP_ADDRESS"), \
            f"{key}: the services refuse unknown <SERVICE>_* settings; no service reads another's"


def test_broker_wait_init_container_is_python(rendered):
    for name in SERVICES:
        pod = by_kind(rendered["production"], "Deployment")[f"crm-{name}"]["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["command"][:2] == ["python", "-c"]
        compile(init["command"][2], f"{name} wait-for-broker", "exec")
        assert init["image"] == main_container({"spec": {"template": {"spec": pod}}}, name)["image"]


def test_secrets_are_referenced_and_documented(rendered, deploy):
    """No Secret is shipped; every one referenced is described in deploy/README.md."""
    with open(deploy.root_path("deploy", "README.md")) as handle:
        readme = handle.read()
    referenced = set()
    for _, resource in all_documents(rendered):
        assert resource["kind"] != "Secret", "secrets are created in the cluster, not kept in git"
        for pod in _pod_specs(resource):
            for container in pod.get("initContainers", []) + pod["containers"]:
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        referenced.add((ref["name"], ref["key"]))
        if resource["kind"] == "TriggerAuthentication":
            referenced |= {(r["name"], r["key"]) for r in resource["spec"]["secretTargetRef"]}
    assert {name for name, _ in referenced} == {"crm-auth", "crm-rabbitmq"} | {
        f"crm-{s}-database" for s in SERVICES}
    for name, key in referenced:
        assert name in readme and key in readme, f"deploy/README.md should explain secret {name} key {key}"


# ------------------------------------------------ services, budgets, scaling

@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
@pytest.mark.parametrize("name", SERVICES)
def test_service_and_disruption_budget_select_the_servers_only(rendered, overlay, name):
    resources = rendered[overlay]
    pod_labels = by_kind(resources, "Deployment")[f"crm-{name}"]["spec"]["template"]["metadata"]["labels"]
    job_labels = by_kind(resources, "Job")[f"crm-{name}-migrate"]["spec"]["template"]["metadata"]["labels"]
    service = by_kind(resources, "Service")[f"crm-{name}"]
    budget = by_kind(resources, "PodDisruptionBudget")[f"crm-{name}"]
    for selector in (service["spec"]["selector"], budget["spec"]["selector"]["matchLabels"],
                     by_kind(resources, "Deployment")[f"crm-{name}"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= job_labels.items(), "migration pods must not receive traffic"
    assert service["spec"]["ports"] == [{"name": "http", "port": DEFAULT_PORTS[name], "targetPort": "http",
                                         "protocol": "TCP"}]
    assert budget["spec"].get("maxUnavailable") == 1 or budget["spec"].get("minAvailable")


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
@pytest.mark.parametrize("name", SERVICES)
def test_every_service_autoscales_on_cpu(rendered, overlay, name):
    resources = rendered[overlay]
    hpas = [h for h in by_kind(resources, "HorizontalPodAutoscaler").values()
            if h["spec"]["scaleTargetRef"]["name"] == f"crm-{name}"]
    scaled = [s for s in by_kind(resources, "ScaledObject").values()
              if s["spec"]["scaleTargetRef"]["name"] == f"crm-{name}"]
    assert len(hpas) + len(scaled) == 1, "exactly one autoscaler per Deployment (two would fight)"
    if hpas:
        (hpa,) = hpas
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"crm-{name}"}
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    else:
        (so,) = scaled
        assert any(t["type"] == "cpu" for t in so["spec"]["triggers"])
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]


@pytest.mark.parametrize("name", SERVICES)
def test_keda_scales_on_the_queues_the_service_consumes(rendered, deploy, name):
    resources = rendered["production"]
    so = by_kind(resources, "ScaledObject")[f"crm-{name}"]
    (trigger,) = [t for t in so["spec"]["triggers"] if t["type"] == "rabbitmq"]
    meta = trigger["metadata"]
    assert meta["mode"] == "QueueLength" and meta["useRegex"] == "true" and meta["protocol"] == "http"
    pattern = re.compile(meta["queueName"])
    assert deploy.consumed_queues(name), f"{name} consumes no events?"
    for queue in deploy.consumed_queues(name):
        assert pattern.search(queue), f"{queue} (consumed by {name}) is not counted for scaling"
    for other in [f"{name}.dead-letter", f"rpc-{name}"] + [
            q for s in SERVICES if s != name for q in deploy.consumed_queues(s)]:
        assert not pattern.search(other), f"{other} is not {name}'s work"
    auth = by_kind(resources, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"host"}
    # production bounds come from the overlay
    assert so["spec"]["minReplicaCount"] >= 2


# ---------------------------------------------------------------- ingress

def ingress_routes(ingress: dict):
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
    routes = []
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "ImplementationSpecific", "regex paths"
            routes.append((path["path"], path["backend"]["service"]))
    return routes


def ingress_target(routes, url: str):
    """What ingress-nginx does with use-regex: longest path first, case-insensitive, anchored at
    the start of the URL; the first match wins."""
    for path, backend in sorted(routes, key=lambda r: len(r[0]), reverse=True):
        if re.match(path, url, re.I):
            return backend
    return None


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_ingress_routes_every_api_path_to_its_service(rendered, owners, deploy, overlay):
    resources = rendered[overlay]
    routes = ingress_routes(by_kind(resources, "Ingress")["crm"])
    services = by_kind(resources, "Service")
    wrong = []
    for path in sorted(set(openapi_document()["paths"]) | set(owners)):
        served_by = owners.get(path, set())
        assert served_by, f"{path} is documented but no service serves it"
        backend = ingress_target(routes, deploy.sample_url(path))
        if len(served_by) > 1:
            if path == "/openapi.json":
                assert backend and backend["name"] in {f"crm-{s}" for s in SERVICES}
            else:
                assert backend is None, f"{path} (every service's own) should not be published"
            continue
        (owner,) = served_by
        if backend is None or backend["name"] != f"crm-{owner}":
            wrong.append(f"{path}: served by {owner}, the Ingress sends it to {backend}")
    assert not wrong, "\n".join(wrong)
    for _, backend in routes:
        ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["name"] in ports
