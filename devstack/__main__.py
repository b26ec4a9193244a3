"""`python -m devstack build|up`: build the local services, or run them until Ctrl-C."""

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent_configs.egress import DEFAULT_SECRETS
from agent_configs.settings import get_settings
from devstack import DEFAULT_ROOT, REPO_ROOT, Devstack, Endpoints
from devstack.chat import chat
from devstack.errors import DevstackError, Interrupted
from devstack.rabbitmq_server import RabbitMQNode
from devstack.trace_backend import TraceBackend
from scripts.setup_agents import redact_uri, run_seed

DEV_ADMIN_KEY = (
    "dev-admin-key"  # `make dev` only: the admin API's bootstrap key on a fresh database
)
AMQP_URL_ENV = "AMQP_URL"
"""The variable `make dev AMQP=1` prints the broker's URL as (what a dev amqp binding names)."""
# The console's build the admin API serves: `make dev` builds it first (make console).
CONSOLE_DIR = Path(os.environ.get("ADMIN_API_CONSOLE_DIR", REPO_ROOT / "console" / "dist"))

DEV_PORTS = {
    "DEVSTACK_MONGO_PORT": 27017,
    "DEVSTACK_LIVEKIT_PORT": 7880,
    "DEVSTACK_LLM_PORT": 8088,
    "DEVSTACK_WORKER_PORT": 8081,
    "DEVSTACK_METRICS_PORT": 9100,
    "DEVSTACK_ADMIN_API_PORT": 8000,
    "DEVSTACK_DISPATCHER_PORT": 9102,
    "DEVSTACK_OTLP_PORT": 4318,  # Jaeger, with `make dev TRACES=1`: OTLP/HTTP in
    "DEVSTACK_TRACE_QUERY_PORT": 16686,  # and its query API
    "DEVSTACK_AMQP_PORT": 5672,  # RabbitMQ, with `make dev AMQP=1`
    "DEVSTACK_CHANNELS_PORT": 8090,  # python -m channels serve: webhooks, HTTP chat API
}
"""Every port `make dev` listens on by default, by the variable that moves it (0: any free
port). The tests set each of them to 0, so a stack they start takes no fixed port."""

app = typer.Typer(add_completion=False, no_args_is_help=True)
console = Console(stderr=True)


class StopSignals:
    """SIGINT and SIGTERM stop `devstack up`, whatever it inherited. Started from a background
    shell (CI, `make dev &`) a process gets SIGINT ignored, and Python then installs no
    KeyboardInterrupt: Ctrl-C (or a test's SIGINT) did nothing and the stack ran on.

    The handlers only take note; the stack checks between steps. Raising from a handler
    could land between a child's fork and its bookkeeping, and leave that child running."""

    def __init__(self) -> None:
        self.received: int | None = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._note)

    def _note(self, signum: int, _frame: object) -> None:
        self.received = signum

    def __call__(self) -> bool:
        return self.received is not None

    def check(self, step: str) -> None:
        if self.received is not None:
            raise Interrupted(step)

    def wait(self) -> None:
        while self.received is None:
            time.sleep(0.2)  # the handler runs at once; its note is seen within 0.2 s


def _port_from_env(name: str) -> int:
    value = os.environ.get(name, str(DEV_PORTS[name]))
    if not value.isdigit() or int(value) > 65535:
        console.print(f"[red]error:[/red] {name}={value!r} is not a port number (0-65535)")
        raise typer.Exit(2)
    return int(value)


def _print_endpoints(
    endpoints: Endpoints, stack: Devstack, rabbitmq: RabbitMQNode | None = None
) -> None:
    table = Table(title="Switchboard local stack", title_justify="left")
    table.add_column("service")
    table.add_column("listening on", no_wrap=True)  # URLs whole, to copy; the notes wrap
    table.add_column("")
    mongo_note = (
        "started (FerretDB, SQLite)" if "ferretdb" in endpoints.started else "from MONGO_URI"
    )
    table.add_row("MongoDB wire", redact_uri(endpoints.mongo_uri), mongo_note)
    livekit_note = (
        "started (dev mode)" if "livekit-server" in endpoints.started else "from LIVEKIT_URL"
    )
    table.add_row("LiveKit", endpoints.livekit_url, livekit_note)
    if endpoints.local_llm_url:
        llm_note = (
            "started (SmolLM2-135M)" if "local-llm" in endpoints.started else "from LOCAL_LLM_URL"
        )
        table.add_row("Local LLM", endpoints.local_llm_url, llm_note)
    if stack.worker_health_port is not None:
        table.add_row(
            "Worker",
            f"http://127.0.0.1:{stack.worker_health_port}/",
            "health; agent name `switchboard`",
        )
        table.add_row(
            "Metrics", f"http://127.0.0.1:{stack.worker_metrics_port}/metrics", "Prometheus"
        )
    console_url = None
    if stack.admin_api_port is not None:
        key = os.environ.get("ADMIN_API_BOOTSTRAP_KEY", DEV_ADMIN_KEY)
        console_url = f"http://127.0.0.1:{stack.admin_api_port}/console/"
        built = (CONSOLE_DIR / "index.html").is_file()
        table.add_row(
            "Console",
            console_url,
            f"log in with `{key}`" if built else "not built: run `make console`",
        )
        table.add_row(
            "Admin API",
            f"http://127.0.0.1:{stack.admin_api_port}/docs",
            f"API key `{key}` (fresh database)",
        )
    if stack.dispatcher_port is not None:
        table.add_row(
            "Webhooks",
            f"http://127.0.0.1:{stack.dispatcher_port}/metrics",
            "dispatcher: outbox -> subscriptions",
        )
    if rabbitmq is not None:
        table.add_row(
            "RabbitMQ",
            rabbitmq.url,
            f"AMQP 0-9-1, loopback only; an amqp binding's url_env names {AMQP_URL_ENV}",
        )
    if stack.channels_port is not None:
        table.add_row(
            "Channels",
            f"http://127.0.0.1:{stack.channels_port}/",
            "Telegram webhooks, HTTP chat API (/v1/channels/...), AMQP consumers",
        )
    if stack.eval_service_log is not None:
        table.add_row(
            "Eval runs",
            "(no port)",
            f"python -m evals serve: runs the console's Run and POST .../eval-runs; log "
            f"{stack.eval_service_log}",
        )
    Console().print(table)
    if console_url:
        print(f"Open the console: {console_url}")
    print("In another shell:")
    for name, value in endpoints.as_env().items():
        shown = (
            "***"
            if name == "LIVEKIT_API_SECRET" and "livekit-server" not in endpoints.started
            else value
        )
        print(f"  export {name}={redact_uri(shown)}")
    if rabbitmq is not None:  # guest's password is no secret: loopback only
        print(f"  export {AMQP_URL_ENV}={rabbitmq.url}")
    if stack.worker_health_port is not None:
        print("Talk to an agent:  .venv/bin/python -m devstack chat --purpose support")


@app.command()
def build(
    tools: Annotated[
        bool, typer.Option(help="Also build kustomize (for the manifest tests).")
    ] = False,
    redis: Annotated[
        bool,
        typer.Option(help="Also unpack Debian's redis-server (LiveKit multi-node, make scale)."),
    ] = False,
    rabbitmq: Annotated[
        bool,
        typer.Option(
            help="Also unpack Debian's rabbitmq-server (the AMQP channel, make rabbitmq)."
        ),
    ] = False,
) -> None:
    """Build the Go services (cached: a no-op when up to date)."""
    try:
        Devstack(DEFAULT_ROOT, console=console).build(tools=tools, redis=redis, rabbitmq=rabbitmq)
    except DevstackError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def up(
    seed: Annotated[
        bool, typer.Option(help="Seed the built-in agent types and routing rules.")
    ] = True,
    worker: Annotated[bool, typer.Option(help="Run the Switchboard worker too.")] = True,
    admin_api: Annotated[bool, typer.Option(help="Run the admin API (uvicorn) too.")] = True,
    dispatcher: Annotated[bool, typer.Option(help="Run the webhook dispatcher too.")] = True,
    evals: Annotated[
        bool, typer.Option(help="Run the eval run service (python -m evals serve) too.")
    ] = True,
    channels: Annotated[
        bool,
        typer.Option(help="Run the channels service (python -m channels serve) too."),
    ] = True,
    traces: Annotated[
        bool,
        typer.Option(
            help="Run Jaeger and export every process's traces to it (`make dev TRACES=1`)."
        ),
    ] = False,
    amqp: Annotated[
        bool,
        typer.Option(help="Run RabbitMQ for the AMQP channel (`make dev AMQP=1`)."),
    ] = False,
) -> None:
    """Run the local stack in the foreground until Ctrl-C (SIGINT) or SIGTERM."""
    stop = StopSignals()
    run_dir = os.environ.get("DEVSTACK_RUN_DIR")
    stack = Devstack(
        DEFAULT_ROOT,
        run_dir=Path(run_dir) if run_dir else None,
        mongo_port=_port_from_env("DEVSTACK_MONGO_PORT"),
        livekit_port=_port_from_env("DEVSTACK_LIVEKIT_PORT"),
        llm_port=_port_from_env("DEVSTACK_LLM_PORT"),
        console=console,
        stop_requested=stop,
    )
    try:
        with stack as endpoints:
            settings = get_settings()
            broker: RabbitMQNode | None = None
            if amqp:  # first, so that it stops last: consumers go before their broker
                stop.check("RabbitMQ")
                console.print("starting RabbitMQ (AMQP)...")
                broker = stack.start_rabbitmq(_port_from_env("DEVSTACK_AMQP_PORT"))
            traced: TraceBackend | None = None
            if traces:
                stop.check("Jaeger")
                console.print("starting Jaeger (traces)...")
                traced = stack.start_jaeger(
                    _port_from_env("DEVSTACK_OTLP_PORT"),
                    _port_from_env("DEVSTACK_TRACE_QUERY_PORT"),
                )
            if seed:
                stop.check("seeding")
                code = asyncio.run(run_seed(endpoints.mongo_uri, settings.mongo_db))
                if code != 0:
                    console.print("[yellow]seeding reported problems (see above)[/yellow]")
            if worker:
                stop.check("the worker")
                console.print("starting the worker...")
                stack.start_worker(
                    endpoints,
                    {"MONGO_DB": settings.mongo_db} | _otel_env(traced, "switchboard-worker"),
                    _port_from_env("DEVSTACK_WORKER_PORT"),
                    _port_from_env("DEVSTACK_METRICS_PORT"),
                )
            if admin_api:
                stop.check("the admin API")
                console.print("starting the admin API...")
                api_env = (
                    {
                        "MONGO_DB": settings.mongo_db,
                        "ADMIN_API_BOOTSTRAP_KEY": os.environ.get(
                            "ADMIN_API_BOOTSTRAP_KEY", DEV_ADMIN_KEY
                        ),
                        "ADMIN_API_CONSOLE_DIR": str(CONSOLE_DIR),
                    }
                    | _otel_env(traced, "switchboard-admin-api")
                    | _amqp_env(broker, url=False)
                )
                if traced is not None:  # the console's session page reads traces through it
                    api_env["ADMIN_TRACE_QUERY_URL"] = traced.query_url
                stack.start_admin_api(endpoints, api_env, _port_from_env("DEVSTACK_ADMIN_API_PORT"))
            if dispatcher:
                stop.check("the webhook dispatcher")
                console.print("starting the webhook dispatcher...")
                stack.start_dispatcher(
                    endpoints,
                    {"MONGO_DB": settings.mongo_db} | _otel_env(traced, "switchboard-dispatcher"),
                    _port_from_env("DEVSTACK_DISPATCHER_PORT"),
                )
            if evals:
                stop.check("the eval run service")
                console.print("starting the eval run service...")
                stack.start_eval_service(endpoints, {"MONGO_DB": settings.mongo_db})
            if channels:
                stop.check("the channels service")
                console.print("starting the channels service...")
                stack.start_channels(
                    endpoints,
                    {"MONGO_DB": settings.mongo_db}
                    | _otel_env(traced, "switchboard-channels")
                    | _amqp_env(broker, url=True),
                    _port_from_env("DEVSTACK_CHANNELS_PORT"),
                )
            _print_endpoints(endpoints, stack, broker)
            if traced is not None:
                print(
                    f"Traces: Jaeger's query API {traced.query_url}/api/traces/<trace id>, OTLP "
                    f"in at {traced.otlp_endpoint}; a session's trace is on its console page"
                )
            console.print("Running. Ctrl-C stops everything.")
            stop.wait()
            console.print("stopping...")
    except Interrupted as exc:
        console.print(f"{exc}; stopping...", highlight=False)
    except DevstackError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print("stopped.")


def _amqp_env(broker: RabbitMQNode | None, *, url: bool) -> dict[str, str]:
    """With `AMQP=1`: an amqp binding may name AMQP_URL (the egress policy lets it go to
    loopback, besides the default secrets), and the channels service has its value. Nothing
    when the operator set EGRESS_SECRETS: theirs is the policy."""
    if broker is None:
        return {}
    env = {AMQP_URL_ENV: broker.url} if url else {}
    if "EGRESS_SECRETS" not in os.environ:
        env["EGRESS_SECRETS"] = json.dumps(DEFAULT_SECRETS | {AMQP_URL_ENV: ["loopback"]})
    return env


def _otel_env(traced: TraceBackend | None, service_name: str) -> dict[str, str]:
    """The OTEL_* variables that point one process at Jaeger (none without `--traces`)."""
    return traced.otel_env(service_name) if traced is not None else {}


@app.command("chat")
def chat_command(
    purpose: Annotated[
        str | None, typer.Option(help="e.g. support, sales, onboarding, interview")
    ] = None,
    agent_id: Annotated[str | None, typer.Option(help="Ask for one agent type explicitly.")] = None,
    user_id: Annotated[str, typer.Option(help="Who you are (memory is per user).")] = "dev-user",
    details: Annotated[
        str, typer.Option(help='user_details as JSON, e.g. \'{"tier": "premium"}\'')
    ] = "{}",
) -> None:
    """Chat with an agent in a new room, through the running worker."""
    settings = get_settings()
    try:
        user_details = json.loads(details)
    except ValueError as exc:
        console.print(f"[red]error:[/red] --details is not JSON: {exc}")
        raise typer.Exit(2) from None
    metadata = {"user_id": user_id, "user_details": user_details, "modality": "text"}
    metadata |= {k: v for k, v in (("purpose", purpose), ("agent_id", agent_id)) if v}
    url = settings.livekit_url or "ws://127.0.0.1:7880"
    agent_name = os.environ.get("AGENT_NAME", "switchboard")
    try:
        asyncio.run(
            chat(
                url,
                settings.livekit_api_key,
                settings.livekit_api_secret.get_secret_value(),
                agent_name,
                metadata,
            )
        )
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    app()
