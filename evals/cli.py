"""`python -m evals run [--agent X] [--version N] [--junit FILE] [--repeat N]`, and `python -m
evals serve`, the run service that runs the runs queued through the admin API (evals/service.py).

Reads the suites from MongoDB (`eval_suites`; `scripts/setup_agents.py` seeds the built-in
ones), runs each through the stack the environment names (MONGO_URI, MONGO_DB, LIVEKIT_URL,
LIVEKIT_API_KEY/SECRET, and AGENT_NAME: the worker's agent name), stores each suite's run in
`eval_runs` with an `eval.completed` event, and prints one line per scenario.

Exit codes: 0 every scenario reached its required pass rate (skipped expectations, such as a
rubric without a judge, count for neither side); 1 one did not; 2 nothing to run or the
database unreachable.
"""

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from rich.console import Console

from agent_configs.database import open_client
from agent_configs.errors import AgentNotFound
from agent_configs.evals import EVAL_SUITES, Suite
from evals.execution import run_and_store, version_under_test
from evals.junit import write_junit
from evals.runner import Stack
from evals.service import RunService
from evals.settings import EvalServiceSettings, EvalSettings

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
app = typer.Typer(add_completion=False, no_args_is_help=True)


async def load_suites(database: AsyncDatabase, agent: str | None) -> list[Suite]:
    query = {"_id": agent} if agent else {}
    return [Suite.from_document(d) async for d in database[EVAL_SUITES].find(query).sort("_id", 1)]


async def run_evals(
    database: AsyncDatabase,
    stack: Stack,
    *,
    agent: str | None = None,
    version: int | None = None,
    repeat: int | None = None,
    junit: Path | None = None,
    tokens_wait_s: float = 10.0,
    console: Console | None = None,
) -> int:
    """Run the suites, store the runs; returns the exit code."""
    console = console or Console()
    if version is not None and agent is None:
        console.print("[red]error:[/red] --version needs --agent (the type to pin)")
        return EXIT_UNUSABLE
    suites = await load_suites(database, agent)
    if not suites:
        console.print(f"[red]error:[/red] no eval suite stored for {agent or 'any agent type'}")
        return EXIT_UNUSABLE
    runs: list[dict[str, Any]] = []
    for suite in suites:
        try:
            config, pin = await version_under_test(database, suite.agent_id, version)
        except AgentNotFound as exc:
            console.print(f"[red]error:[/red] {exc}")
            return EXIT_UNUSABLE
        run = await run_and_store(
            database, stack, suite, config, pin, repeat=repeat, tokens_wait_s=tokens_wait_s
        )
        runs.append(run)
        _print_run(console, run)
    if junit is not None:
        write_junit(junit, runs)
    return EXIT_OK if all(run["passed"] for run in runs) else EXIT_FAILED


def _print_run(console: Console, run: dict[str, Any]) -> None:
    verdict = "passed" if run["passed"] else "FAILED"
    console.print(
        f"{run['agent_id']} version {run['version']}: {verdict} "
        f"({run['wall_time_s']:.1f} s, run {run['_id']})",
        markup=False,
        soft_wrap=True,
    )
    for scenario in run["scenarios"]:
        mark = "ok  " if scenario["passed"] else "FAIL"
        console.print(
            f"  {mark} {scenario['name']}: pass rate {scenario['pass_rate']:.2f} "
            f"(required {scenario['required_pass_rate']:.2f})"
            + (f", skipped: {', '.join(scenario['skipped'])}" if scenario["skipped"] else ""),
            markup=False,
            soft_wrap=True,
        )
        for failure in scenario["failures"]:
            console.print(
                f"       attempt {failure['attempt']}: {failure['expectation']}: "
                f"{failure['detail']}",
                markup=False,
                soft_wrap=True,
            )


@app.callback()
def main() -> None:
    """Eval suites of the agent types, run through the real stack."""


@app.command()
def run(
    agent: Annotated[str | None, typer.Option(help="Only this agent type's suite.")] = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="Pin this stored version (needs --agent).")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    repeat: Annotated[
        int | None, typer.Option(min=1, max=50, help="Runs per scenario (default: its own).")
    ] = None,
    turn_timeout: Annotated[float, typer.Option(help="Seconds to wait for a turn.")] = 120.0,
) -> None:
    settings = EvalSettings()
    console = Console()
    if not settings.mongo_uri or not settings.livekit_url:
        console.print("[red]error:[/red] set MONGO_URI and LIVEKIT_URL (or run `make dev`)")
        raise typer.Exit(EXIT_UNUSABLE)
    stack = Stack(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
        settings.agent_name,
        turn_timeout_s=turn_timeout,
    )

    async def go() -> int:
        client = open_client(settings.mongo_uri or "", settings.mongo_timeout_ms)
        try:
            return await run_evals(
                client[settings.mongo_db],
                stack,
                agent=agent,
                version=version,
                repeat=repeat,
                junit=junit,
                console=console,
            )
        except PyMongoError as exc:
            console.print(f"[red]error:[/red] the database: {exc}")
            return EXIT_UNUSABLE
        finally:
            await client.close()

    raise typer.Exit(asyncio.run(go()))


@app.command()
def serve() -> None:
    """Run the eval runs queued through the admin API (POST /api/v1/agents/{id}/eval-runs),
    one at a time, until SIGTERM. Reads the same environment as `run`, plus EVALS_*."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = EvalServiceSettings()
    except ValidationError as exc:  # one line per bad variable, not a traceback
        Console(stderr=True).print(f"error: invalid settings:\n{exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from None
    if not settings.mongo_uri or not settings.livekit_url:
        Console(stderr=True).print("error: set MONGO_URI and LIVEKIT_URL (or run `make dev`)")
        raise typer.Exit(EXIT_UNUSABLE)
    asyncio.run(RunService(settings).run())
