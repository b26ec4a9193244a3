"""`python -m devstack build|up`: build the local services, or run them until Ctrl-C."""

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent_configs.settings import get_settings
from devstack import DEFAULT_ROOT, Devstack, Endpoints
from devstack.errors import DevstackError
from scripts.setup_agents import redact_uri, run_seed

app = typer.Typer(add_completion=False, no_args_is_help=True)
console = Console(stderr=True)


def _port_from_env(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or int(value) > 65535:
        console.print(f"[red]error:[/red] {name}={value!r} is not a port number (0-65535)")
        raise typer.Exit(2)
    return int(value)


def _print_endpoints(endpoints: Endpoints) -> None:
    table = Table(title="Switchboard local stack", title_justify="left")
    table.add_column("service")
    table.add_column("listening on")
    table.add_column("")
    mongo_note = "started (FerretDB, SQLite)" if "ferretdb" in endpoints.started else "from MONGO_URI"
    table.add_row("MongoDB wire", redact_uri(endpoints.mongo_uri), mongo_note)
    livekit_note = "started (dev mode)" if "livekit-server" in endpoints.started else "from LIVEKIT_URL"
    table.add_row("LiveKit", endpoints.livekit_url, livekit_note)
    Console().print(table)
    print("In another shell:")
    for name, value in endpoints.as_env().items():
        shown = "***" if name == "LIVEKIT_API_SECRET" and "livekit-server" not in endpoints.started else value
        print(f"  export {name}={redact_uri(shown)}")


@app.command()
def build() -> None:
    """Build the Go services (cached: a no-op when up to date)."""
    try:
        Devstack(DEFAULT_ROOT, console=console).build()
    except DevstackError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def up(
    seed: Annotated[bool, typer.Option(help="Seed the built-in agent types.")] = True,
) -> None:
    """Run the local stack in the foreground until Ctrl-C."""
    run_dir = os.environ.get("DEVSTACK_RUN_DIR")
    stack = Devstack(
        DEFAULT_ROOT,
        run_dir=Path(run_dir) if run_dir else None,
        mongo_port=_port_from_env("DEVSTACK_MONGO_PORT", 27017),
        livekit_port=_port_from_env("DEVSTACK_LIVEKIT_PORT", 7880),
        console=console,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        with stack as endpoints:
            _print_endpoints(endpoints)
            if seed:
                settings = get_settings()
                code = asyncio.run(run_seed(endpoints.mongo_uri, settings.mongo_db))
                if code != 0:
                    console.print("[yellow]seeding reported problems (see above)[/yellow]")
            console.print("Running. Ctrl-C stops everything.")
            stopping.wait()
    except KeyboardInterrupt:
        pass
    except DevstackError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print("stopped.")


if __name__ == "__main__":
    app()
