"""Every kustomize overlay builds, validates strictly against the Kubernetes schemas, and
keeps the promises operators rely on: drain fits the grace period, probes, limits,
non-root, no secret values in ConfigMaps, one agent name per worker pool."""

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agent_configs.secret_guard import secret_kind
from devstack import DEFAULT_ROOT, REPO_ROOT

K8S = REPO_ROOT / "k8s"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ["dev", "production", "pools"]
SECRET_NAMES = ("KEY", "SECRET", "PASSWORD", "TOKEN", "MONGO_URI")


@cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    kustomize = DEFAULT_ROOT / "bin" / "kustomize"
    assert kustomize.exists(), "run `make test` (or `python -m devstack build --tools`) first"
    output = subprocess.run(
        [str(kustomize), "build", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(output) if doc)


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in build(overlay) if doc["kind"] == kind]


def workloads(overlay: str) -> list[dict[str, Any]]:
    return of_kind(overlay, "Deployment") + of_kind(overlay, "StatefulSet")


def config(overlay: str) -> dict[str, str]:
    (config_map,) = [c for c in of_kind(overlay, "ConfigMap") if c["metadata"]["name"] == "switchboard-config"]
    return config_map["data"]


def worker_deployments(overlay: str) -> list[dict[str, Any]]:
    return [d for d in of_kind(overlay, "Deployment") if d["metadata"]["name"].startswith("switchboard-worker")]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_valid_kubernetes(overlay: str) -> None:
    for doc in build(overlay):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_run_locked_down_with_probes_and_limits(overlay: str) -> None:
    for workload in workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "readinessProbe" in container and "livenessProbe" in container, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_drain_within_their_grace_period(overlay: str) -> None:
    drain_s = int(config(overlay)["WORKER_DRAIN_TIMEOUT_S"])
    for worker in worker_deployments(overlay):
        pod = worker["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= drain_s, worker["metadata"]["name"]
        container = pod["containers"][0]
        assert container["readinessProbe"]["httpGet"]["port"] == "health"
        assert {"name": "health", "containerPort": 8081} in container["ports"]
        assert worker["spec"]["minReadySeconds"] >= 10, "time to register before old pods drain"
        assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        annotations = worker["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9100"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_scales_down_slowly_and_disruption_is_bounded(overlay: str) -> None:
    autoscalers = of_kind(overlay, "HorizontalPodAutoscaler")
    assert {a["spec"]["scaleTargetRef"]["name"] for a in autoscalers} == {
        d["metadata"]["name"] for d in worker_deployments(overlay)
    }
    for autoscaler in autoscalers:
        assert autoscaler["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600
    budgets = {b["metadata"]["name"] for b in of_kind(overlay, "PodDisruptionBudget")}
    assert {d["metadata"]["name"] for d in worker_deployments(overlay)} <= budgets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_maps_hold_no_secret_values(overlay: str) -> None:
    for config_map in of_kind(overlay, "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            assert not any(word in key.upper() for word in SECRET_NAMES), f"{key} belongs in a Secret"
            assert secret_kind(value) is None, f"{key} looks like a secret value"


def test_production_uses_external_database_and_secret() -> None:
    assert of_kind("production", "StatefulSet") == []
    assert of_kind("production", "Secret") == [], "production secrets are created outside the repo"
    assert all(
        {"secretRef": {"name": "switchboard-secrets"}} in w["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        for w in of_kind("production", "Deployment")
    )


def test_dev_runs_everything_in_cluster_on_single_replicas() -> None:
    names = {d["metadata"]["name"] for d in workloads("dev")}
    assert {"mongodb", "livekit-server", "local-llm", "switchboard-worker", "switchboard-admin-api"} <= names
    assert all(w["spec"]["replicas"] == 1 for w in workloads("dev"))
    assert config("dev")["SWITCHBOARD_MODEL_PROFILE"] == "local"


def test_pools_have_their_own_agent_names_and_the_token_endpoint_knows_them() -> None:
    pools = {d["metadata"]["name"]: d for d in worker_deployments("pools")}
    assert {name: d["spec"]["replicas"] for name, d in pools.items()} == {
        "switchboard-worker": 3,
        "switchboard-worker-support": 3,
        "switchboard-worker-sales": 5,
    }
    assert env_of(pools["switchboard-worker-support"]) == {
        "AGENT_NAME": "switchboard-support",
        "WORKER_AGENT_TYPES": "support-agent-v1",
    }
    assert env_of(pools["switchboard-worker-sales"])["AGENT_NAME"] == "switchboard-sales"
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in pools.values()]
    assert len(set(selectors)) == len(selectors), "pool selectors must not overlap"
    dispatch = json.loads(config("pools")["ADMIN_API_AGENT_NAMES"])
    assert dispatch == {"support-agent-v1": "switchboard-support", "sales-agent-v1": "switchboard-sales"}


def test_admin_api_accepts_traffic_only_from_frontend_namespaces() -> None:
    policies = {p["metadata"]["name"]: p for p in of_kind("production", "NetworkPolicy")}
    assert "default-deny-ingress" in policies
    sources = policies["admin-api-ingress"]["spec"]["ingress"][0]["from"]
    assert sources == [{"namespaceSelector": {"matchLabels": {"switchboard.io/frontend": "true"}}}]


def test_dockerfile_runs_as_non_root_without_test_tools() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "USER 10001" in runtime
    assert "[dev" not in dockerfile and "pytest" not in dockerfile
    assert "AS local" in dockerfile, "the offline model stack is an optional target"


def test_compose_file_wires_the_same_services() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"mongodb", "livekit", "worker", "admin-api"} <= set(services)
    assert services["worker"]["command"] == ["worker", "start"]
    assert "livekit/livekit-server:v1.13.5" == services["livekit"]["image"]
    for name in ("worker", "admin-api"):
        assert services[name]["environment"]["MONGO_URI"].startswith("mongodb://mongodb:27017")
        assert Path(services[name]["build"]["context"]) == Path(".")
