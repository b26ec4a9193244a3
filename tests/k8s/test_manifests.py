"""Every kustomize overlay builds, validates strictly against the Kubernetes schemas, and
keeps the promises operators rely on: drain fits the grace period, probes, limits,
non-root, no secret values in ConfigMaps, one agent name per worker pool."""

import base64
import json
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agent_configs.egress import EgressPolicy
from agent_configs.secret_guard import secret_kind
from devstack import DEFAULT_ROOT, REPO_ROOT

# The overlays are built by the kustomize binary `make build` builds.
pytestmark = pytest.mark.services

K8S = REPO_ROOT / "k8s"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ["dev", "production", "pools"]
SECRET_NAMES = ("KEY", "SECRET", "PASSWORD", "TOKEN", "MONGO_URI")
# Settings whose names contain such a word but hold no secret: the egress policy lists which
# variables may be sent where (names of variables, never their values).
NOT_SECRET_NAMES = {"EGRESS_SECRETS"}
# Workloads that run without probes, and why (their manifests say so too): each listens on
# nothing and no Service routes to it, so readiness would gate nothing.
WITHOUT_PROBES = {
    "switchboard-evals": "the eval run service has no health endpoint (no HTTP server at all)",
}


@cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    kustomize = DEFAULT_ROOT / "bin" / "kustomize"
    assert kustomize.exists(), "run `make test` (or `python -m devstack build --tools`) first"
    output = subprocess.run(
        [str(kustomize), "build", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(output) if doc)


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in build(overlay) if doc["kind"] == kind]


def workloads(overlay: str) -> list[dict[str, Any]]:
    return of_kind(overlay, "Deployment") + of_kind(overlay, "StatefulSet")


def config(overlay: str) -> dict[str, str]:
    (config_map,) = [
        c for c in of_kind(overlay, "ConfigMap") if c["metadata"]["name"] == "switchboard-config"
    ]
    return config_map["data"]


def worker_deployments(overlay: str) -> list[dict[str, Any]]:
    return [
        d
        for d in of_kind(overlay, "Deployment")
        if d["metadata"]["name"].startswith("switchboard-worker")
    ]


def container_of(overlay: str, kind: str, name: str) -> dict[str, Any]:
    (workload,) = [w for w in of_kind(overlay, kind) if w["metadata"]["name"] == name]
    return workload["spec"]["template"]["spec"]["containers"][0]


def secret_data(overlay: str, name: str) -> dict[str, str]:
    (secret,) = [s for s in of_kind(overlay, "Secret") if s["metadata"]["name"] == name]
    return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}


def looks_secret(env_name: str) -> bool:
    return env_name not in NOT_SECRET_NAMES and any(
        word in env_name.upper() for word in SECRET_NAMES
    )


@cache
def package_source(package: str) -> str:
    return "\n".join(path.read_text() for path in sorted((REPO_ROOT / package).rglob("*.py")))


def package_reads(package: str, env_name: str) -> bool:
    """An environment variable a process uses is a settings field its package's code reads
    (`settings.mongo_uri`): OPENAI_API_KEY, say, is a field the admin API inherits and never
    reads."""
    return re.search(rf"\.{env_name.lower()}\b", package_source(package)) is not None


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


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
            if name in WITHOUT_PROBES:
                # nothing to route to it (else readiness gates something), and no stale entry
                assert not container.get("ports"), name
                assert "readinessProbe" not in container and "livenessProbe" not in container
                continue
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
        assert (
            annotations["prometheus.io/scrape"] == "true"
            and annotations["prometheus.io/port"] == "9100"
        )


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
            assert not looks_secret(key), f"{key} belongs in a Secret"
            assert secret_kind(value) is None, f"{key} looks like a secret value"


def test_production_uses_external_database_and_secret() -> None:
    assert of_kind("production", "StatefulSet") == []
    assert of_kind("production", "Secret") == [], "production secrets are created outside the repo"
    for worker in worker_deployments("production"):
        container = worker["spec"]["template"]["spec"]["containers"][0]
        assert {"secretRef": {"name": "switchboard-secrets"}} in container["envFrom"]
    for name in ("switchboard-admin-api", "switchboard-evals", "switchboard-channels"):
        env = container_of("production", "Deployment", name)["env"]
        assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e} == {
            "switchboard-secrets"
        }, name


def test_dev_overlay_mongodb_requires_authentication_with_the_credentials_in_mongo_uri() -> None:
    mongodb = container_of("dev", "StatefulSet", "mongodb")
    assert "--auth" in mongodb["args"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in mongodb["env"] if "valueFrom" in e}
    assert set(refs) == {"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"}
    root = {name: secret_data("dev", ref["name"])[ref["key"]] for name, ref in refs.items()}
    assert all(root.values()), "an empty root user or password turns authentication off"
    uri = secret_data("dev", "switchboard-secrets")["MONGO_URI"]
    credentials = f"{root['MONGO_INITDB_ROOT_USERNAME']}:{root['MONGO_INITDB_ROOT_PASSWORD']}@"
    assert uri.startswith(f"mongodb://{credentials}mongodb:27017/") and "authSource=admin" in uri, (
        uri
    )


# (Deployment, its package, the whole Secrets it may read: never `switchboard-secrets`, which
# holds the worker's model keys). The eval run service's optional Secret holds only the keys its
# judge and caller name (EVALS_*_API_KEY_ENV); the channels service's only what its bindings
# name (bot tokens, webhook secrets, AMQP URLs).
ONLY_THEIR_SECRETS = [
    ("switchboard-admin-api", "admin_api", []),
    ("switchboard-evals", "evals", [{"name": "switchboard-evals-secrets", "optional": True}]),
    (
        "switchboard-channels",
        "channels",
        [{"name": "switchboard-channels-secrets", "optional": True}],
    ),
]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("deployment", "package", "whole_secrets"), ONLY_THEIR_SECRETS)
def test_the_admin_api_and_the_eval_and_channels_services_get_only_the_secrets_they_use(
    overlay: str, deployment: str, package: str, whole_secrets: list[dict[str, Any]]
) -> None:
    container = container_of(overlay, "Deployment", deployment)
    assert [s["secretRef"] for s in container.get("envFrom", []) if "secretRef" in s] == (
        whole_secrets
    ), "a whole switchboard-secrets hands it the model keys too"
    from_secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "valueFrom" in e
    }
    assert {"MONGO_URI", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} <= set(from_secrets), (
        "what it needs to run"
    )
    unused = sorted(name for name in from_secrets if not package_reads(package, name))
    assert unused == [], f"secrets {package} never reads: {unused}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dev_mode_is_set_exactly_where_the_livekit_dev_keys_are(overlay: str) -> None:
    secrets = {s["metadata"]["name"]: s for s in of_kind(overlay, "Secret")}
    dev_keys = (
        "switchboard-secrets" in secrets
        and secret_data(overlay, "switchboard-secrets").get("LIVEKIT_API_SECRET") == "secret"
    )
    assert (config(overlay).get("SWITCHBOARD_DEV_MODE") == "true") == dev_keys


def test_dev_runs_everything_in_cluster_on_single_replicas() -> None:
    names = {d["metadata"]["name"] for d in workloads("dev")}
    assert {
        "mongodb",
        "livekit-server",
        "local-llm",
        "switchboard-worker",
        "switchboard-admin-api",
        "switchboard-dispatcher",
        "switchboard-evals",
        "switchboard-channels",
    } <= names
    assert all(w["spec"]["replicas"] == 1 for w in workloads("dev"))
    assert config("dev")["SWITCHBOARD_MODEL_PROFILE"] == "local"
    # every process given the database may reach the in-cluster one
    (mongodb,) = [
        p for p in of_kind("dev", "NetworkPolicy") if p["metadata"]["name"] == "mongodb-ingress"
    ]
    allowed = [
        source["podSelector"]["matchLabels"] for source in mongodb["spec"]["ingress"][0]["from"]
    ]
    for deployment in of_kind("dev", "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if "MONGO_URI" in {e["name"] for e in container.get("env", [])} or {
            "secretRef": {"name": "switchboard-secrets"}
        } in container.get("envFrom", []):
            component = deployment["spec"]["template"]["metadata"]["labels"][
                "app.kubernetes.io/component"
            ]
            assert {"app.kubernetes.io/component": component} in allowed, deployment["metadata"]


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
    # the eval run service's test callers are dispatched to the general pool, which serves
    # every type (no WORKER_AGENT_TYPES)
    # and so are the channels service's rooms
    for name in ("switchboard-evals", "switchboard-channels"):
        container = container_of("pools", "Deployment", name)
        assert "AGENT_NAME" not in {e["name"] for e in container.get("env", [])}, name
    assert "WORKER_AGENT_TYPES" not in env_of(pools["switchboard-worker"])
    assert "AGENT_NAME" not in env_of(pools["switchboard-worker"]), "both read the shared config"
    selectors = [
        tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in pools.values()
    ]
    assert len(set(selectors)) == len(selectors), "pool selectors must not overlap"
    dispatch = json.loads(config("pools")["ADMIN_API_AGENT_NAMES"])
    assert dispatch == {
        "support-agent-v1": "switchboard-support",
        "sales-agent-v1": "switchboard-sales",
    }


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


def test_the_image_copies_every_package_the_project_installs() -> None:
    """`pip install .` in the image installs only what was copied in: a package left out
    (the dispatcher once was) is missing from the image while every test here passes."""
    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = [pattern.rstrip("*") for pattern in patterns]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    missing = [name for name in packages if f"COPY {name} ./{name}" not in dockerfile]
    assert missing == [], f"the Dockerfile does not copy {missing}"


def test_compose_file_wires_the_same_services() -> None:
    services = compose()["services"]
    assert {"mongodb", "livekit", "worker", "admin-api"} <= set(services)
    assert services["worker"]["command"] == ["worker", "start"]
    assert services["dispatcher"]["command"] == ["dispatcher"]
    assert services["evals"]["command"] == ["evals", "serve"]
    assert services["channels"]["command"] == ["channels", "serve"]
    assert "livekit/livekit-server:v1.13.5" == services["livekit"]["image"]
    for name in ("worker", "admin-api", "dispatcher", "evals", "channels"):
        assert "@mongodb:27017/" in services[name]["environment"]["MONGO_URI"]
        assert Path(services[name]["build"]["context"]) == Path(".")


def test_compose_publishes_nothing_on_all_interfaces() -> None:
    exposed = []
    for name, service in compose()["services"].items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            # Long syntax: {target, published, host_ip}; short: "[HOST_IP:]HOST:CONTAINER[/proto]".
            if isinstance(port, dict):
                host_ip = port.get("host_ip", "")
            else:
                host_ip = str(port).rpartition(":")[0].rpartition(":")[0]
            if host_ip not in ("127.0.0.1", "[::1]"):
                exposed.append(f"{name}: {port}")
    assert exposed == [], f"published on every interface: {exposed}"


def test_compose_mongodb_requires_a_password_that_every_mongo_uri_carries() -> None:
    services = compose()["services"]
    mongodb = services["mongodb"]["environment"]
    required_password = "${MONGO_PASSWORD:?"
    assert mongodb["MONGO_INITDB_ROOT_PASSWORD"].startswith(required_password), (
        "no default password"
    )
    assert mongodb["MONGO_INITDB_ROOT_USERNAME"]
    uris = {
        name: service["environment"]["MONGO_URI"]
        for name, service in services.items()
        if "MONGO_URI" in service.get("environment", {})
    }
    assert {"seed", "worker", "admin-api", "dispatcher", "evals", "channels"} <= set(uris)
    for name, uri in uris.items():
        user = mongodb["MONGO_INITDB_ROOT_USERNAME"]
        assert (
            uri.startswith(f"mongodb://{user}:{required_password}") and "authSource=admin" in uri
        ), name


@pytest.mark.parametrize(
    ("service", "package"),
    [("admin-api", "admin_api"), ("evals", "evals"), ("channels", "channels")],
)
def test_compose_admin_api_eval_and_channels_services_get_only_the_secrets_they_use(
    service: str, package: str
) -> None:
    environment = compose()["services"][service]["environment"]
    secrets = [name for name in environment if looks_secret(name)]
    assert {"MONGO_URI", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} <= set(secrets)
    assert [name for name in secrets if not package_reads(package, name)] == []
    assert not str(environment.get("ADMIN_API_BOOTSTRAP_KEY", "")).startswith(
        "${ADMIN_API_BOOTSTRAP_KEY:-"
    ), "a default admin key is a known admin key"


def test_compose_sets_dev_mode_exactly_where_it_uses_the_livekit_dev_keys() -> None:
    for name, service in compose()["services"].items():
        environment = service.get("environment", {})
        dev_keys = environment.get("LIVEKIT_API_SECRET") == "secret"
        assert (environment.get("SWITCHBOARD_DEV_MODE") == "true") == dev_keys, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_and_admin_api_read_one_egress_policy_that_never_sends_livekit_keys(
    overlay: str,
) -> None:
    data = config(overlay)
    policy = EgressPolicy(
        secrets=json.loads(data["EGRESS_SECRETS"]), hosts=json.loads(data["EGRESS_HOSTS"])
    )
    policy.check("https://api.openai.com/v1", "OPENAI_API_KEY", field="llm.base_url")
    assert not any(name.startswith(("LIVEKIT_", "MONGO_", "ADMIN_")) for name in policy.secrets)
    for name in (
        "switchboard-admin-api",
        "switchboard-evals",  # its judge and caller ask the same policy
        "switchboard-channels",  # so do its bindings' bot tokens and AMQP URLs
        *(d["metadata"]["name"] for d in worker_deployments(overlay)),
    ):
        refs = [
            e["configMapRef"]["name"]
            for e in container_of(overlay, "Deployment", name)["envFrom"]
            if "configMapRef" in e
        ]
        assert "switchboard-config" in refs, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dispatcher_runs_with_probes_metrics_a_grace_that_fits_and_only_its_secrets(
    overlay: str,
) -> None:
    (dispatcher,) = [
        d
        for d in of_kind(overlay, "Deployment")
        if d["metadata"]["name"] == "switchboard-dispatcher"
    ]
    assert dispatcher["spec"]["replicas"] >= 1
    pod = dispatcher["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["dispatcher"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DISPATCHER_METRICS_HOST"]["value"] == "0.0.0.0", (
        "probes and scrapes come from outside the pod"
    )
    port = int(env["DISPATCHER_METRICS_PORT"]["value"])
    assert {"name": "metrics", "containerPort": port} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    annotations = dispatcher["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations[
        "prometheus.io/port"
    ] == str(port)
    # SIGTERM: in-flight requests finish within the grace, then leases are released.
    assert pod["terminationGracePeriodSeconds"] > int(env["DISPATCHER_SHUTDOWN_GRACE_S"]["value"])
    from_secrets = {name for name, e in env.items() if "valueFrom" in e}
    assert from_secrets == {"MONGO_URI", "WEBHOOK_ENCRYPTION_KEY"}
    whole_secrets = [s["secretRef"] for s in container["envFrom"] if "secretRef" in s]
    assert whole_secrets == [{"name": "switchboard-webhook-secrets", "optional": True}], (
        "never the model keys"
    )
    assert "switchboard-config" in [
        s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s
    ]
    if overlay == "dev":
        assert "WEBHOOK_ENCRYPTION_KEY" in secret_data(overlay, "switchboard-secrets")
        mongodb = {p["metadata"]["name"]: p for p in of_kind(overlay, "NetworkPolicy")}[
            "mongodb-ingress"
        ]
        allowed = [
            source["podSelector"]["matchLabels"] for source in mongodb["spec"]["ingress"][0]["from"]
        ]
        assert {"app.kubernetes.io/component": "dispatcher"} in allowed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_admin_api_encrypts_webhook_secrets_under_the_key_the_dispatcher_decrypts_with(
    overlay: str,
) -> None:
    def key_ref(name: str) -> dict[str, str]:
        env = {e["name"]: e for e in container_of(overlay, "Deployment", name)["env"]}
        return env["WEBHOOK_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]

    assert key_ref("switchboard-admin-api") == key_ref("switchboard-dispatcher")
    if overlay == "dev":
        ref = key_ref("switchboard-admin-api")
        assert secret_data(overlay, ref["name"])[ref["key"]], "the generated Secret carries the key"


def test_compose_admin_api_and_dispatcher_share_a_webhook_encryption_key_with_no_default() -> None:
    services = compose()["services"]
    keys = {
        name: services[name]["environment"]["WEBHOOK_ENCRYPTION_KEY"]
        for name in ("admin-api", "dispatcher")
    }
    assert keys["admin-api"] == keys["dispatcher"]
    assert keys["admin-api"].startswith("${WEBHOOK_ENCRYPTION_KEY:?"), (
        "a default key is a published key"
    )


# -- spools survive rollouts and scale-downs (issue 17) --------------------------------------

SPOOL_SETTINGS = {
    "switchboard-worker": "SPOOL_DIR",
    "switchboard-admin-api": "ADMIN_API_SPOOL_DIR",
    "switchboard-channels": "CHANNELS_SPOOL_DIR",
}


def spooling(overlay: str) -> list[tuple[dict[str, Any], str]]:
    """(Deployment, the spool directory its processes write) for every Deployment that spools:
    each worker pool (records and their events), the admin API (its outbox events) and the
    channels service (message records and their events)."""
    found = []
    for deployment in of_kind(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        setting = next((s for prefix, s in SPOOL_SETTINGS.items() if name.startswith(prefix)), None)
        if setting is None:
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        own = {e["name"]: e.get("value") for e in container.get("env", [])}
        directory = own.get(setting) or config(overlay).get(setting)
        assert directory, f"{name} spools to the image's default {setting} (in /tmp)"
        found.append((deployment, directory))
    return found


def volume_holding(pod: dict[str, Any], directory: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume (and its mount) a path lands on: the deepest mount above it."""
    mounts = [
        m
        for m in pod["containers"][0].get("volumeMounts", [])
        if directory == m["mountPath"] or directory.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mounts, f"{directory} is on the container's read-only root filesystem"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume, mount


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_spool_is_on_a_volume_the_replicas_share_and_none_on_an_empty_dir(
    overlay: str,
) -> None:
    claims = {c["metadata"]["name"]: c for c in of_kind(overlay, "PersistentVolumeClaim")}
    found = spooling(overlay)
    assert {d["metadata"]["name"] for d, _ in found} == {
        "switchboard-admin-api",
        "switchboard-channels",
        *(d["metadata"]["name"] for d in worker_deployments(overlay)),
    }
    for deployment, directory in found:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        volume, mount = volume_holding(pod, directory)
        assert "emptyDir" not in volume, f"{name}: {directory} would vanish with the pod"
        assert not mount.get("readOnly"), name
        claim = claims[volume["persistentVolumeClaim"]["claimName"]]
        # every replica (of every pool) mounts it at once, on any node; a local cluster has one
        expected = ["ReadWriteOnce"] if overlay == "dev" else ["ReadWriteMany"]
        assert claim["spec"]["accessModes"] == expected, name
        assert pod["securityContext"].get("fsGroup") == pod["securityContext"]["runAsGroup"], (
            f"{name}: the volume must be writable by the pod's user"
        )
    directories = [directory for _, directory in found]
    assert len({d for d in directories if "admin" in d}) == 1, "the admin API's spool is its own"
    assert len({d for d in directories if "channels" in d}) == 1, "so is the channels service's"
    assert not any(a != b and a.startswith(b + "/") for a in directories for b in directories)
    snapshot = config(overlay).get("CATALOG_SNAPSHOT_DIR", "")
    assert snapshot.startswith("/tmp/"), "the catalog snapshot is a process's cache, kept local"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_and_their_job_processes_end_within_the_grace_period(overlay: str) -> None:
    from worker.server import SHUTDOWN_PROCESS_TIMEOUT_S

    drain_s = int(config(overlay)["WORKER_DRAIN_TIMEOUT_S"])
    for worker in worker_deployments(overlay):
        grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        # after the drain, job processes get SHUTDOWN_PROCESS_TIMEOUT_S to end their sessions
        # and flush or spool their records: a SIGKILL before that loses what is in memory
        assert grace >= drain_s + SHUTDOWN_PROCESS_TIMEOUT_S, worker["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_admin_api_flushes_or_spools_its_outbox_within_its_grace_period(overlay: str) -> None:
    from admin_api.__main__ import GRACEFUL_SHUTDOWN_S
    from admin_api.outbox import CLOSE_DEADLINE_S

    (api,) = [
        d
        for d in of_kind(overlay, "Deployment")
        if d["metadata"]["name"] == "switchboard-admin-api"
    ]
    grace = api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= GRACEFUL_SHUTDOWN_S + CLOSE_DEADLINE_S + 5


def test_compose_keeps_spools_on_a_named_volume_and_lets_the_admin_api_close() -> None:
    from admin_api.__main__ import GRACEFUL_SHUTDOWN_S
    from admin_api.outbox import CLOSE_DEADLINE_S

    document = compose()
    services = document["services"]
    for name, setting in (
        ("worker", "SPOOL_DIR"),
        ("admin-api", "ADMIN_API_SPOOL_DIR"),
        ("channels", "CHANNELS_SPOOL_DIR"),
    ):
        directory = services[name]["environment"][setting]
        volumes = [v.split(":") for v in services[name].get("volumes", [])]
        assert any(
            source in document.get("volumes", {}) and directory.startswith(target + "/")
            for source, target, *_ in volumes
        ), f"{name}: {directory} is not on a named volume (recreating the container loses it)"
    grace = services["admin-api"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= GRACEFUL_SHUTDOWN_S + CLOSE_DEADLINE_S + 5
    dockerfile = (REPO_ROOT / "Dockerfile").read_text().split("AS runtime", 1)[1]
    assert "/var/lib/switchboard/spool" in dockerfile, (
        "a named volume copies its owner from the image"
    )


# -- the channels service (issue 21) ---------------------------------------------------------

CHANNELS = "switchboard-channels"


def channels_shutdown_s() -> float:
    """How long a SIGTERM'd `python -m channels serve` may take: the runners stop together (messages already taken get their grace: a Telegram
    binding's, an AMQP binding's), then uvicorn lets requests in flight finish for at most
    SHUTDOWN_GRACE_S, then the rooms close and the no-loss writer writes or spools what it
    holds. A SIGKILL before the end loses the records still in memory."""
    import inspect

    from agent_configs.writer import NoLossWriter
    from channels import amqp, telegram
    from channels.service import SHUTDOWN_GRACE_S

    flush_s = inspect.signature(NoLossWriter.close).parameters["deadline_s"].default
    return max(telegram.STOP_GRACE_S, amqp.STOP_GRACE_S) + SHUTDOWN_GRACE_S + flush_s


def channels_env(overlay: str) -> dict[str, str]:
    (deployment,) = [d for d in of_kind(overlay, "Deployment") if d["metadata"]["name"] == CHANNELS]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    own = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return {**config(overlay), **own}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_channels_service_listens_for_outside_callers_behind_probes_and_a_service(
    overlay: str,
) -> None:
    (deployment,) = [d for d in of_kind(overlay, "Deployment") if d["metadata"]["name"] == CHANNELS]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["channels", "serve"]
    env = channels_env(overlay)
    assert env["CHANNELS_HOST"] == "0.0.0.0", (
        "webhooks, chat API calls and probes come from outside"
    )
    port = int(env.get("CHANNELS_PORT", 8090))
    assert {"name": "http", "containerPort": port} in container["ports"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    (service,) = [s for s in of_kind(overlay, "Service") if s["metadata"]["name"] == CHANNELS]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
    # one Telegram poller per bot token (Telegram answers a second getUpdates with 409 Conflict
    # and the two may answer one update twice): one replica, never two during a rollout
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["terminationGracePeriodSeconds"] >= channels_shutdown_s() + 5, (
        "conversations close and records are flushed or spooled before the SIGKILL"
    )
    assert env["AGENT_NAME"], "its rooms are dispatched to the workers' agent name"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_channels_service_is_reached_on_its_port_only_and_reaches_only_what_it_needs(
    overlay: str,
) -> None:
    selector = {"matchLabels": {"app.kubernetes.io/component": "channels"}}
    policies = [
        p for p in of_kind(overlay, "NetworkPolicy") if p["spec"]["podSelector"] == selector
    ]
    (ingress,) = [p for p in policies if p["spec"]["policyTypes"] == ["Ingress"]]
    port = int(channels_env(overlay).get("CHANNELS_PORT", 8090))
    for rule in ingress["spec"]["ingress"]:
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        assert rule["from"], "from the operator's Ingress, never from anywhere"
    (egress,) = [p for p in policies if p["spec"]["policyTypes"] == ["Egress"]]
    rules = egress["spec"]["egress"]
    allowed = {
        (p["port"], p["protocol"])
        for rule in rules
        if any("ipBlock" in peer for peer in rule["to"])
        for p in rule["ports"]
    }
    assert {
        (443, "TCP"),  # the Telegram Bot API (and LiveKit over TLS)
        (5671, "TCP"),  # AMQP over TLS
        (7880, "TCP"),
        (7881, "TCP"),
        (3478, "UDP"),  # LiveKit: a voice note goes into the room as the user's microphone
    } <= allowed
    # plain AMQP: the egress policy sends an AMQP URL's password in the clear to loopback only
    assert (5672, "TCP") not in allowed
    dns = [r for r in rules if any("kube-dns" in str(peer) for peer in r["to"])]
    assert dns and {(p["port"], p["protocol"]) for p in dns[0]["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
    }
    if overlay != "production":  # the in-cluster MongoDB
        mongodb = [r for r in rules if any("mongodb" in str(peer) for peer in r["to"])]
        assert mongodb and mongodb[0]["ports"] == [{"port": 27017, "protocol": "TCP"}]


def test_compose_runs_the_channels_service_on_loopback_with_time_to_close() -> None:
    channels = compose()["services"]["channels"]
    environment = {k: str(v) for k, v in channels["environment"].items()}
    assert environment["CHANNELS_HOST"] == "0.0.0.0", "published ports come from outside"
    port = environment.get("CHANNELS_PORT", "8090")
    assert channels["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert environment["LIVEKIT_URL"] == "ws://livekit:7880"
    grace = channels["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= channels_shutdown_s() + 5
