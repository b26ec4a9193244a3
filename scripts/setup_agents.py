"""Seed agent types into MongoDB: the four built-ins, or your own `--dir` of YAML/JSON files.

The built-in routing chain (explicit -> purpose -> user_attributes -> default) is stored too,
the first time only: routing rules edited since are never overwritten. So are the built-in
types' eval suites (agent_configs/defaults/suites/, into `eval_suites`; `--force` updates them).

    python scripts/setup_agents.py [--dir DIR] [--force] [--dry-run]

Every file is validated before anything is written (the model, then what the store checks:
the egress policy, the tool list, transfer targets, installed plugins); an invalid file is
reported with its field paths and skipped, the others are written. The examples that are not
seeded by default (agent_configs/examples/) are seeded with `--dir agent_configs/examples`. Running it twice creates nothing the second time. `--force` saves a
changed definition as a new version (the old one stays in the history); the agent's status
(paused, archived) is an operator decision and is kept.

Exit codes: 0 done, 1 some file or write failed, 2 database unreachable.
"""

import asyncio
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pymongo.asynchronous.database import AsyncDatabase
from rich.console import Console

from agent_configs.capacity import CapacityGuard
from agent_configs.database import open_client
from agent_configs.errors import AgentNotFound, ConfigStoreError, DatabaseUnavailable
from agent_configs.evals import EVAL_SUITES, Suite, load_suite_dir
from agent_configs.files import DEFAULTS_DIR, ConfigFileError, load_config_dir
from agent_configs.models import AgentConfig
from agent_configs.routing.rules import DEFAULT_RULES, RulesStore
from agent_configs.settings import get_settings
from agent_configs.store import ConfigStore
from agent_configs.tools import transfer_targets

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2


class Outcome(StrEnum):
    CREATED = "created"
    EXISTED = "already existed"
    UPDATED = "updated"
    FAILED = "failed"


@dataclass(frozen=True)
class SeedLine:
    agent_id: str
    schema_id: str
    field_count: int
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class SeedReport:
    lines: list[SeedLine]
    file_errors: list[ConfigFileError]

    def count(self, outcome: Outcome) -> int:
        return sum(line.outcome == outcome for line in self.lines)

    @property
    def failed(self) -> int:
        return self.count(Outcome.FAILED) + len(self.file_errors)

    def summary(self) -> str:
        total = len(self.lines) + len(self.file_errors)
        return (
            f"Created: {self.count(Outcome.CREATED)}   "
            f"Already existed: {self.count(Outcome.EXISTED)}   "
            f"Updated: {self.count(Outcome.UPDATED)}   "
            f"Failed: {self.failed}   Total: {total}"
        )


def _same_definition(stored: AgentConfig, wanted: AgentConfig) -> bool:
    ignore = ("status",)
    return {k: v for k, v in stored.definition().items() if k not in ignore} == {
        k: v for k, v in wanted.definition().items() if k not in ignore
    }


async def _seed_one(
    store: ConfigStore, config: AgentConfig, force: bool, dry_run: bool, seeded: set[str]
) -> SeedLine:
    def line(outcome: Outcome, detail: str = "") -> SeedLine:
        schema = config.turn_schema
        return SeedLine(config.agent_id, schema.schema_id, len(schema.fields), outcome, detail)

    # Before any write, so a dry run tells as well; in a dry run nothing was stored, so the
    # types this run has seeded so far count as transfer targets.
    refused = await store.definition_problems(config, assume_existing=seeded if dry_run else ())
    if refused:
        return line(Outcome.FAILED, "; ".join(str(problem) for problem in refused))
    try:
        existing = await store.get(config.agent_id)
    except AgentNotFound:
        if not dry_run:
            await store.create(config)
        return line(Outcome.CREATED, "version 1")
    if _same_definition(existing, config):
        return line(Outcome.EXISTED, f"version {existing.version}, unchanged")
    if not force:
        return line(
            Outcome.EXISTED, f"version {existing.version}, differs from file: --force to update"
        )
    if not dry_run:
        wanted = config.model_copy(update={"status": existing.status})
        await store.update(wanted, expected_version=existing.version)
    return line(Outcome.UPDATED, f"version {existing.version} -> {existing.version + 1}")


async def seed(
    store: ConfigStore, configs: list[AgentConfig], *, force: bool = False, dry_run: bool = False
) -> list[SeedLine]:
    """Write valid configs; raises DatabaseUnavailable if the database cannot be reached.

    Configs without transfer tools go first, so a file handing over to another file's type
    finds it stored (the order among the rest is the files' own)."""
    if not dry_run:
        await store.ensure_indexes()
    lines = []
    seeded: set[str] = set()
    for config in sorted(configs, key=lambda c: bool(transfer_targets(c.tools))):
        try:
            line = await _seed_one(store, config, force, dry_run, seeded)
            lines.append(line)
            if line.outcome != Outcome.FAILED:
                seeded.add(config.agent_id)
        except DatabaseUnavailable:
            raise
        except ConfigStoreError as exc:
            schema = config.turn_schema
            lines.append(
                SeedLine(
                    config.agent_id, schema.schema_id, len(schema.fields), Outcome.FAILED, str(exc)
                )
            )
    return lines


async def seed_routing_rules(database: AsyncDatabase, *, dry_run: bool = False) -> str:
    """Store the built-in routing chain unless rules were saved before (never overwritten)."""
    rules = RulesStore(database)
    current = await rules.current()
    if current.version > 0:
        return f"Routing rules: already existed (version {current.version})"
    if not dry_run:
        await rules.save(DEFAULT_RULES, expected_version=0)
    chain = " -> ".join(e.strategy for e in DEFAULT_RULES.chain if e.enabled)
    return f"Routing rules: created (version 1): {chain}"


async def seed_suites(
    database: AsyncDatabase, suites: list[Suite], *, force: bool = False, dry_run: bool = False
) -> str:
    """Store each built-in type's eval suite (`eval_suites`, keyed by agent id) unless one is
    stored already; `--force` replaces a stored suite that differs from its file."""
    created = replaced = kept = 0
    for suite in suites:
        stored = await database[EVAL_SUITES].find_one({"_id": suite.agent_id})
        if stored is None:
            created += 1
            if not dry_run:
                await database[EVAL_SUITES].insert_one(suite.document())
        elif force and Suite.from_document(stored).model_dump() != suite.model_dump():
            replaced += 1
            if not dry_run:
                await database[EVAL_SUITES].replace_one({"_id": suite.agent_id}, suite.document())
        else:
            kept += 1
    return f"Eval suites: created {created}, updated {replaced}, already existed {kept}"


def redact_uri(uri: str) -> str:
    """Hide the password of a connection string before it is printed."""
    return re.sub(r"://([^:/@]+):[^@/]+@", r"://\1:***@", uri)


async def run_seed(
    mongo_uri: str,
    database: str,
    *,
    directory: Path = DEFAULTS_DIR,
    force: bool = False,
    dry_run: bool = False,
    timeout_ms: int = 3000,
    console: Console | None = None,
) -> int:
    """Load, validate, seed and print the report; returns the process exit code."""
    console = console or Console()
    configs, file_errors = load_config_dir(directory)
    for error in file_errors:
        console.print(f"[red]invalid[/red] {error.path}:")
        for problem in error.problems:
            console.print(f"    {problem}", markup=False)
    # The built-in suites go with the built-in types only (another --dir has its own types).
    suites, suite_errors = load_suite_dir() if directory == DEFAULTS_DIR else ([], [])
    for suite_error in suite_errors:
        console.print(f"[red]invalid[/red] {suite_error.path}:")
        for problem in suite_error.problems:
            console.print(f"    {problem}", markup=False)

    client = open_client(mongo_uri, timeout_ms)
    try:
        store = ConfigStore(client[database], get_settings().egress)
        try:
            await store.ping()
            lines = await seed(store, configs, force=force, dry_run=dry_run)
            rules_line = await seed_routing_rules(client[database], dry_run=dry_run)
            suites_line = await seed_suites(client[database], suites, force=force, dry_run=dry_run)
            if not dry_run:
                await CapacityGuard(client[database]).ensure_indexes()
        except DatabaseUnavailable as exc:
            console.print(
                f"[red]error:[/red] cannot reach MongoDB at {redact_uri(mongo_uri)} "
                f"({exc.detail}): start it (`make dev`) or set MONGO_URI",
                soft_wrap=True,
            )
            return EXIT_UNREACHABLE
    finally:
        await client.close()

    report = SeedReport(lines, file_errors)
    for entry in report.lines:
        console.print(
            f"{entry.agent_id:<28} {entry.schema_id:<22} fields: {entry.field_count:<3} "
            f"{entry.outcome.value}" + (f" ({entry.detail})" if entry.detail else ""),
            markup=False,
            soft_wrap=True,
        )
    console.print(report.summary())
    console.print(rules_line)
    console.print(suites_line)
    if dry_run:
        console.print("Dry run: nothing was written.")
    return EXIT_FAILED if report.failed or suite_errors else EXIT_OK


def main(
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory of agent config files (YAML or JSON).")
    ] = DEFAULTS_DIR,
    force: Annotated[bool, typer.Option(help="Save changed definitions as new versions.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would change; write nothing.")] = False,
) -> None:
    settings = get_settings()
    console = Console()
    if not settings.mongo_uri:
        console.print("[red]error:[/red] MONGO_URI is not set: run `make dev` or export MONGO_URI")
        raise typer.Exit(EXIT_UNREACHABLE)
    if not directory.is_dir():
        console.print(f"[red]error:[/red] --dir {directory} is not a directory")
        raise typer.Exit(EXIT_FAILED)
    console.print(
        f"Seeding agent types from {directory} into {redact_uri(settings.mongo_uri)}"
        f" (database {settings.mongo_db})"
    )
    code = asyncio.run(
        run_seed(
            settings.mongo_uri,
            settings.mongo_db,
            directory=directory,
            force=force,
            dry_run=dry_run,
            timeout_ms=settings.mongo_timeout_ms,
            console=console,
        )
    )
    raise typer.Exit(code)


if __name__ == "__main__":
    typer.run(main)
