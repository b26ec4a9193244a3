"""`python -m admin_api.keys`: create, revoke and list API keys.

    python -m admin_api.keys create --name frontend --role token
    python -m admin_api.keys create --name backend --role token --scope token:room --scope token:identity
    python -m admin_api.keys revoke --name frontend
    python -m admin_api.keys list

A new key is printed once, on stdout alone (so `KEY=$(... create ...)` works); only its
SHA-256 is stored. Scopes (token keys only) let `POST /token` callers name the room
(`token:room`) or the identity (`token:identity`); see admin_api/auth.py. Exit codes: 0 done,
1 refused (name taken, no such key, a scope on a non-token key), 2 database down.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from admin_api.auth import ApiKey, KeyNameTaken, KeyNotFound, KeyRing, Role, Scope, ScopesNotForRole
from admin_api.events import EventLog, EventType
from admin_api.settings import get_admin_settings
from agent_configs.database import open_client
from agent_configs.errors import DatabaseUnavailable

EXIT_REFUSED, EXIT_UNREACHABLE = 1, 2
CLI_ACTOR = "cli"

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Manage admin API keys.")
console = Console(stderr=True)

Name = Annotated[str, typer.Option(help="Who or what uses the key, e.g. `frontend`.")]
Scopes = Annotated[
    list[Scope] | None,
    typer.Option(
        "--scope", help="Repeatable, token keys only: token:room, token:identity, token:agent."
    ),
]
T = TypeVar("T")
Action = Callable[[KeyRing, EventLog], Awaitable[T]]


async def _with_keyring(action: Action[T]) -> T:
    settings = get_admin_settings()
    if not settings.mongo_uri:
        console.print("[red]error:[/red] MONGO_URI is not set")
        raise typer.Exit(EXIT_UNREACHABLE)
    client = open_client(settings.mongo_uri, settings.mongo_timeout_ms)
    database = client[settings.mongo_db]
    keyring = KeyRing(database)
    try:
        await keyring.ensure_indexes()
        return await action(keyring, EventLog(database))
    finally:
        await client.close()


def _run(action: Action[T]) -> T:
    try:
        return asyncio.run(_with_keyring(action))
    except DatabaseUnavailable as exc:
        console.print(f"[red]error:[/red] cannot reach MongoDB: {exc.detail}", highlight=False)
        raise typer.Exit(EXIT_UNREACHABLE) from None
    except (KeyNameTaken, KeyNotFound, ScopesNotForRole) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_REFUSED) from None


@app.command()
def create(
    name: Name,
    role: Annotated[Role, typer.Option(help="admin, viewer or token")],
    scope: Scopes = None,
) -> None:
    """Create a key and print it once."""

    async def action(keyring: KeyRing, events: EventLog) -> str:
        key, token = await keyring.create(name, role, scopes=scope or ())
        scopes = sorted(str(s) for s in key.scopes)
        details = {"name": name, "role": str(role), "key_id": key.key_id, "scopes": scopes}
        await events.record(EventType.KEY_CREATED, CLI_ACTOR, details=details)
        with_scopes = f" with {', '.join(scopes)}" if scopes else ""
        console.print(
            f"created {role} key '{name}' ({key.prefix}...){with_scopes}; it is shown only now:",
            highlight=False,
        )
        return token

    token = _run(action)
    sys.stdout.write(f"{token}\n")


@app.command()
def revoke(name: Name) -> None:
    """Revoke the active key with this name (every replica refuses it within the key cache TTL)."""

    async def action(keyring: KeyRing, events: EventLog) -> None:
        await keyring.revoke(name)
        await events.record(EventType.KEY_REVOKED, CLI_ACTOR, details={"name": name})

    _run(action)
    console.print(f"revoked key '{name}'", highlight=False)


@app.command("list")
def list_keys() -> None:
    """Every key: name, role, scopes, prefix, created, revoked. Never the key itself."""

    async def action(keyring: KeyRing, events: EventLog) -> list[ApiKey]:
        return await keyring.list_keys()

    keys = _run(action)
    table = Table(title="API keys", title_justify="left")
    for column in ("name", "role", "scopes", "prefix", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
        table.add_row(
            key.name,
            str(key.role),
            "all" if key.role == Role.ADMIN else " ".join(sorted(key.scopes)),
            f"{key.prefix}...",
            f"{key.created_at:%Y-%m-%d %H:%M}",
            revoked,
        )
    Console().print(table)


if __name__ == "__main__":
    app()
