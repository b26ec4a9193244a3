"""ConfigStore: agent types in MongoDB, with optimistic concurrency and full version history.

Layout (only features FerretDB v1 also has: no transactions, TTL or partial indexes):
- `agent_config_versions`: every filed version, unique on (`agent_id`, `version`). A version
  filed as a candidate (`candidate: true`: a release-gated type's change that has no passing
  eval run yet, admin_api/release_gate.py) waits there, not current, until it is activated
  (`candidate: false`, `activated_at`).
- `agent_configs`: the current config of each agent type, unique on `agent_id`.
- `routing_rules` (used by the routing chain) lives in the same database.

The unique insert into the history is the commit point of every write. FerretDB v1 does not
make a filtered replace atomic (five concurrent compare-and-set replaces all "matched" in our
tests), but its unique indexes are enforced: exactly one writer can file the next version
(one past the newest filed, candidates included). The winner then copies it to the current
document, unless it filed a candidate. If a process dies between the two steps, the next
write of that agent rolls the current document forward to the newest filed version that is
not a candidate, so a committed version is never lost and never applied twice, and a
candidate never goes live by accident.

Activating candidate N marks it activated in the history first, then replaces the current
document. It does so in place only when N is above every activated version (the usual case:
filed, tested, activated), so a death between the two steps is repaired by the same roll
forward: N is then the newest version that is not a candidate. Any other version (an earlier
one, or a candidate a later save has overtaken) is activated as rollback does it, by filing
its definition again as the next version: the current version number only ever grows, which
is what lets the roll forward tell the current version by its number. Limit: an in-place
activation claims no number of its own, so a save racing it from the same version is not
refused: both may answer 200 and the save's version, the higher number, ends current (an
activation whose replace no longer matched answers VersionConflict instead). On FerretDB,
whose filtered replace is not atomic, the current document may show the activation's version
until the next write of that agent rolls it forward to the save's.
"""

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from agent_configs.changes import ChangeStamp
from agent_configs.database import bson_now, database_errors
from agent_configs.egress import EgressPolicy
from agent_configs.errors import (
    AgentAlreadyExists,
    AgentNotFound,
    ConfigProblem,
    ConfigRefused,
    VersionConflict,
)
from agent_configs.models import AgentConfig, AgentStatus
from agent_configs.tool_plugins import plugin_problems
from agent_configs.tools import tool_problems, transfer_targets

CONFIGS = "agent_configs"
VERSIONS = "agent_config_versions"
ROUTING_RULES = "routing_rules"

MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class ConfigPage:
    items: list[AgentConfig]
    next_cursor: str | None


@dataclass(frozen=True)
class VersionInfo:
    version: int
    status: AgentStatus
    saved_at: datetime
    candidate: bool = False
    """Filed as a candidate and never activated: it has never been current."""


def _to_document(config: AgentConfig) -> dict[str, Any]:
    return config.model_dump(mode="python")


HISTORY_ONLY = ("_id", "saved_at", "write_id", "candidate", "activated_at")
ACTIVATED = {"candidate": {"$ne": True}}
"""History documents that are not waiting candidates (those filed before candidates existed
have no `candidate` field)."""


def _from_document(document: dict[str, Any]) -> AgentConfig:
    document = {k: v for k, v in document.items() if k not in HISTORY_ONLY}
    return AgentConfig.model_validate(document)


class ConfigStore:
    """Every definition written (create, update, rollback) must pass `definition_problems`:
    the egress policy (the operator's from the environment unless one is given), the tool
    list as a whole, installed plugins, transfer targets in this store. A status change
    writes no new definition, so a config the policy has since narrowed (or whose transfer
    target has since been archived) can still be paused or archived."""

    def __init__(self, database: AsyncDatabase, egress: EgressPolicy | None = None) -> None:
        self._db = database
        self._configs = database[CONFIGS]
        self._versions = database[VERSIONS]
        self._stamp = ChangeStamp(database)
        self._egress = egress

    async def definition_problems(
        self, config: AgentConfig, *, assume_existing: Collection[str] = ()
    ) -> list[ConfigProblem]:
        """What keeps `config` from being written, each with its field path (empty: nothing);
        for dry runs too. `assume_existing`: agent types to count as transfer targets although
        not stored yet (a seeding dry run of a directory whose files refer to each other)."""
        if self._egress is None:
            self._egress = EgressPolicy()
        problems = [
            ConfigProblem(*problem) for problem in tool_problems(config.tools, config.agent_id)
        ]
        problems += plugin_problems(config.tools)
        problems += [
            ConfigProblem(p.field, p.message) for p in self._egress.config_problems(config)
        ]
        problems += await self._target_problems(config, assume_existing)
        return problems

    async def _target_problems(
        self, config: AgentConfig, assume_existing: Collection[str]
    ) -> list[ConfigProblem]:
        """A transfer target must be an agent type of this store that is not archived (a paused
        one is fine: pausing is temporary). Checked when a definition is written only:
        archiving a target later leaves the configs that name it as they are."""
        # A transfer to itself is tool_problems' to report, once.
        targets = [(f, t) for f, t in transfer_targets(config.tools) if t != config.agent_id]
        wanted = sorted({t for _, t in targets} - set(assume_existing))
        if not wanted:
            return []
        with database_errors():
            cursor = self._configs.find(
                {"agent_id": {"$in": wanted}}, {"agent_id": 1, "status": 1, "_id": 0}
            )
            statuses = {d["agent_id"]: d["status"] for d in await cursor.to_list(length=None)}
        problems = []
        for field, target in targets:
            if target in assume_existing:
                continue
            if target not in statuses:
                problems.append(ConfigProblem(field, f"no agent type '{target}'"))
            elif statuses[target] == AgentStatus.ARCHIVED:
                problems.append(ConfigProblem(field, f"agent type '{target}' is archived"))
        return problems

    async def _check_definition(self, config: AgentConfig) -> None:
        """Raise ConfigRefused listing every problem; nothing is written then."""
        problems = await self.definition_problems(config)
        if problems:
            raise ConfigRefused(config.agent_id, problems)

    async def ensure_indexes(self) -> None:
        with database_errors():
            await self._configs.create_index([("agent_id", ASCENDING)], unique=True)
            await self._configs.create_index([("status", ASCENDING)])
            await self._versions.create_index(
                [("agent_id", ASCENDING), ("version", ASCENDING)], unique=True
            )

    async def ping(self) -> None:
        with database_errors():
            await self._db.command("ping")

    # -- reads -------------------------------------------------------------------------

    async def get(self, agent_id: str) -> AgentConfig:
        with database_errors():
            document = await self._configs.find_one({"agent_id": agent_id})
        if document is None:
            raise AgentNotFound(agent_id)
        return _from_document(document)

    async def current_version(self, agent_id: str) -> int:
        """Just the version number: a cheap way to tell whether a cached copy is current."""
        with database_errors():
            document = await self._configs.find_one(
                {"agent_id": agent_id}, {"version": 1, "_id": 0}
            )
        if document is None:
            raise AgentNotFound(agent_id)
        return int(document["version"])

    async def list_agents(
        self,
        *,
        status: AgentStatus | str | None = None,
        purpose: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> ConfigPage:
        """Agent types ordered by agent_id; pass `next_cursor` back as `after` for the next page."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = str(status)
        if purpose is not None:
            query["purposes"] = purpose
        if tag is not None:
            query["tags"] = tag
        if after is not None:
            query["agent_id"] = {"$gt": after}
        with database_errors():
            cursor = self._configs.find(query).sort("agent_id", ASCENDING).limit(limit + 1)
            documents = await cursor.to_list(length=limit + 1)
        items = [_from_document(d) for d in documents[:limit]]
        more = len(documents) > limit
        return ConfigPage(items=items, next_cursor=items[-1].agent_id if more else None)

    async def versions(self, agent_id: str) -> list[VersionInfo]:
        with database_errors():
            cursor = self._versions.find(
                {"agent_id": agent_id}, {"version": 1, "status": 1, "saved_at": 1, "candidate": 1}
            ).sort("version", DESCENDING)
            documents = await cursor.to_list(length=None)
        if not documents:
            raise AgentNotFound(agent_id)
        return [
            VersionInfo(
                version=d["version"],
                status=AgentStatus(d["status"]),
                saved_at=d["saved_at"],
                candidate=bool(d.get("candidate")),
            )
            for d in documents
        ]

    async def get_version(self, agent_id: str, version: int) -> AgentConfig:
        with database_errors():
            document = await self._versions.find_one({"agent_id": agent_id, "version": version})
        if document is None:
            raise AgentNotFound(agent_id, version)
        return _from_document(document)

    # -- writes ------------------------------------------------------------------------

    async def create(self, config: AgentConfig) -> AgentConfig:
        await self._check_definition(config)
        now = bson_now()
        stored = config.model_copy(update={"version": 1, "created_at": now, "updated_at": now})
        write_id = await self._file_version(stored)
        if write_id is None:
            await self._roll_forward(config.agent_id)
            raise AgentAlreadyExists(config.agent_id)
        try:
            with database_errors():
                await self._configs.insert_one(_to_document(stored))
        except DuplicateKeyError as exc:
            # A current document without history (written by hand or by another tool):
            # take back our version 1 so the history describes what is really stored.
            with database_errors():
                await self._versions.delete_one({"write_id": write_id})
            raise AgentAlreadyExists(config.agent_id) from exc
        await self._stamp.bump()
        return stored

    async def update(self, config: AgentConfig, expected_version: int) -> AgentConfig:
        """Replace an agent type's definition if nobody saved since `expected_version`."""
        await self._check_definition(config)
        return await self._save_version(config, expected_version)

    async def file_candidate(self, config: AgentConfig, expected_version: int) -> AgentConfig:
        """File `config` in the history as a candidate, checked as `update` checks it: the
        next version number, not current (the current document, and so the worker and the
        router, stay on what they serve). `activate` makes it current."""
        await self._check_definition(config)
        current = await self.get(config.agent_id)
        if current.version != expected_version:
            raise VersionConflict(config.agent_id, expected_version, current.version)
        stored = config.model_copy(
            update={
                "version": await self._next_version(current),
                "created_at": current.created_at,
                "updated_at": bson_now(),
            }
        )
        if await self._file_version(stored, candidate=True) is None:
            latest = await self._roll_forward(config.agent_id)
            raise VersionConflict(config.agent_id, expected_version, latest.version)
        return stored

    async def activate(
        self, agent_id: str, version: int, expected_version: int | None = None
    ) -> AgentConfig:
        """Make filed `version` current (see the module docstring for how): in place for a
        candidate above every activated version, else by filing its definition again with
        the current status, as rollback does. The current version itself: nothing changes."""
        current = await self.get(agent_id)
        if expected_version is not None and current.version != expected_version:
            raise VersionConflict(agent_id, expected_version, current.version)
        with database_errors():
            document = await self._versions.find_one({"agent_id": agent_id, "version": version})
        if document is None:
            raise AgentNotFound(agent_id, version)
        if version == current.version:
            return current
        target = _from_document(document)
        await self._check_definition(target)
        newest_activated = await self._newest_activated(agent_id)
        if newest_activated > current.version:
            latest = await self._roll_forward(agent_id)
            raise VersionConflict(agent_id, current.version, latest.version)
        if not document.get("candidate") or version < current.version:
            return await self._save_version(
                target.model_copy(update={"status": current.status}), current.version
            )
        activated = target.model_copy(update={"status": current.status, "updated_at": bson_now()})
        with database_errors():
            await self._versions.update_one(
                {"agent_id": agent_id, "version": version},
                {
                    "$set": {
                        "candidate": False,
                        "activated_at": activated.updated_at,
                        "status": str(activated.status),
                        "updated_at": activated.updated_at,
                    }
                },
            )
            replaced = await self._configs.replace_one(
                {"agent_id": agent_id, "version": current.version}, _to_document(activated)
            )
        if replaced.matched_count == 0:
            latest = await self._roll_forward(agent_id)
            if latest.version != version:
                raise VersionConflict(agent_id, current.version, latest.version)
            return latest
        await self._stamp.bump()
        return activated

    async def _save_version(self, config: AgentConfig, expected_version: int) -> AgentConfig:
        current = await self.get(config.agent_id)
        if current.version != expected_version:
            raise VersionConflict(config.agent_id, expected_version, current.version)
        stored = config.model_copy(
            update={
                "version": await self._next_version(current),
                "created_at": current.created_at,
                "updated_at": bson_now(),
            }
        )
        if await self._file_version(stored) is None:
            latest = await self._roll_forward(config.agent_id)
            raise VersionConflict(config.agent_id, expected_version, latest.version)
        with database_errors():
            replaced = await self._configs.replace_one(
                {"agent_id": stored.agent_id, "version": expected_version}, _to_document(stored)
            )
        if replaced.matched_count == 0:
            # An in-place activation got there first: ours, the higher number, goes current.
            latest = await self._roll_forward(config.agent_id)
            if latest.version != stored.version:
                raise VersionConflict(config.agent_id, expected_version, latest.version)
        await self._stamp.bump()
        return stored

    async def _next_version(self, current: AgentConfig) -> int:
        """One past the newest filed version, candidates included. A version filed after
        `current` and not a candidate means a writer died before making it current (or is
        about to): roll forward and refuse, as a lost race for the number is refused."""
        with database_errors():
            newest = await self._versions.find_one(
                {"agent_id": current.agent_id}, {"version": 1}, sort=[("version", DESCENDING)]
            )
        if await self._newest_activated(current.agent_id) > current.version:
            latest = await self._roll_forward(current.agent_id)
            raise VersionConflict(current.agent_id, current.version, latest.version)
        return max(current.version, int(newest["version"]) if newest else 0) + 1

    async def _newest_activated(self, agent_id: str) -> int:
        with database_errors():
            newest = await self._versions.find_one(
                {"agent_id": agent_id, **ACTIVATED}, {"version": 1}, sort=[("version", DESCENDING)]
            )
        return int(newest["version"]) if newest else 0

    async def set_status(
        self, agent_id: str, status: AgentStatus, expected_version: int | None = None
    ) -> AgentConfig:
        """Pause, resume or archive. Without `expected_version` it applies to the current one."""
        current = await self.get(agent_id)
        if current.status == status:
            return current
        base = current.version if expected_version is None else expected_version
        return await self._save_version(current.model_copy(update={"status": status}), base)

    async def archive(self, agent_id: str, expected_version: int | None = None) -> AgentConfig:
        return await self.set_status(agent_id, AgentStatus.ARCHIVED, expected_version)

    async def rollback(
        self, agent_id: str, to_version: int, expected_version: int | None = None
    ) -> AgentConfig:
        """Save the definition of `to_version` as a new version; the status stays as it is now.

        History is never rewritten: rolling back from v5 to v2 files v6 with v2's definition.
        The status is an operator decision (a paused agent stays paused), as with `--force` seeding.
        The old definition is checked as a new write is (ConfigRefused), against today's policy
        and store: a version whose transfer target has since been archived is not restored.
        """
        current = await self.get(agent_id)
        restored = await self.get_version(agent_id, to_version)
        base = current.version if expected_version is None else expected_version
        return await self.update(restored.model_copy(update={"status": current.status}), base)

    async def _file_version(self, config: AgentConfig, *, candidate: bool = False) -> str | None:
        """Claim (agent_id, version) in the history; None when another writer holds it."""
        write_id = uuid.uuid4().hex
        document = _to_document(config) | {"saved_at": config.updated_at, "write_id": write_id}
        if candidate:
            document["candidate"] = True
        try:
            with database_errors():
                await self._versions.insert_one(document)
        except DuplicateKeyError:
            return None
        return write_id

    async def _roll_forward(self, agent_id: str) -> AgentConfig:
        """Make the current document the newest filed version that is not a candidate (after
        a writer died midway): a candidate goes current only through `activate`."""
        with database_errors():
            newest = await self._versions.find_one(
                {"agent_id": agent_id, **ACTIVATED}, sort=[("version", DESCENDING)]
            )
            current = await self._configs.find_one({"agent_id": agent_id})
        if newest is None:
            raise AgentNotFound(agent_id)
        latest = _from_document(newest)
        if current is not None and current["version"] >= latest.version:
            return _from_document(current)
        with database_errors():
            if current is None:
                try:
                    await self._configs.insert_one(_to_document(latest))
                except DuplicateKeyError:
                    pass  # another writer rolled it forward first; same content
            else:
                await self._configs.replace_one(
                    {"agent_id": agent_id, "version": current["version"]}, _to_document(latest)
                )
        await self._stamp.bump()
        return latest
