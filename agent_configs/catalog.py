"""The catalog: agent configs and routing rules in memory, as current as the change stamp says.

One object answers every "what is the config of X / what are the rules / can X take a room"
in a process, for the worker and the admin API alike. Every write through `ConfigStore` and
`RulesStore` moves one small document, the change stamp (changes.py); `refresh()` reads it,
and while it is unchanged every config already checked and the rules are served from memory.
When it moved, each config is checked again by its version on next use (a tiny query; only
changed ones are fetched) and the rules are read again once. An admin edit is therefore seen
at the very next refresh, with no restart and no TTL to wait out.

Two knobs say how fresh "current" is:
- `check_every_s`: the stamp is read at most this often (0: at every `refresh()`). The worker
  refreshes once per room with 0, so an edit reaches the very next session. The admin API
  refreshes per request with ADMIN_API_CONFIG_CACHE_TTL_S, so a burst of GETs or token mints
  costs one stamp read a second; `refresh(force=True)` (dry runs) and `invalidate()` (after a
  write through this process) read it regardless.
- `max_age_s`: a safety net for writes that bypass the stores (a hand edit in mongosh that
  also bumps `version`): after it, everything is checked again even if the stamp did not move.

Unknown agent ids are remembered too (a room that names a missing type costs no query while
the stamp holds), but only the `max_unknown` most recently asked: the ids come from room
metadata, which anyone who can start a room chooses, and an unbounded map of them grew to
32 MB after 100k distinct unknown ids. Known ids need no bound: they are the stored configs.

With a `CatalogSnapshot`, every config and rules version read is also written there,
labelled with the stamp it was read under. The worker's job processes live for one session,
so each starts with an empty catalog: a file labelled with the stamp just read is current,
and is used instead of a database read (a cold room: 4 round trips before, the stamp read
alone when the snapshot matches). When the database is unreachable the catalog serves the
snapshot whatever its label (`offline`): a room that arrives during an outage is served from
the last-known good catalog rather than crashing on the change-stamp read. Offline, nothing
reads the database: each read would cost the full MONGO_TIMEOUT_MS before failing again.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from pydantic import ValidationError

from agent_configs.changes import ChangeStamp
from agent_configs.egress import EgressPolicy
from agent_configs.errors import AgentNotFound, DatabaseUnavailable
from agent_configs.models import AgentConfig, AgentStatus
from agent_configs.routing.availability import ActiveSessionCounter, StoreAvailability
from agent_configs.routing.errors import InvalidRoutingRules
from agent_configs.routing.rules import RoutingRules, RulesStore
from agent_configs.snapshot import CatalogSnapshot
from agent_configs.store import ConfigStore

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 30.0
DEFAULT_MAX_UNKNOWN = 1024


class Catalog:
    """`get` makes it a routing `ConfigSource`, `current` a `RulesSource`."""

    def __init__(
        self,
        store: ConfigStore,
        rules_store: RulesStore,
        stamp: ChangeStamp,
        *,
        check_every_s: float = 0.0,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_unknown: int = DEFAULT_MAX_UNKNOWN,
        clock: Callable[[], float] = time.monotonic,
        snapshot: CatalogSnapshot | None = None,
    ) -> None:
        self._store = store
        self._rules_store = rules_store
        self._stamp = stamp
        self._snapshot = snapshot
        self._check_every_s = check_every_s
        self._max_age_s = max_age_s
        self._max_unknown = max_unknown
        self._clock = clock
        self.offline = False  # serving the snapshot: the database was unreachable at refresh
        self._configs: dict[str, AgentConfig] = {}  # every config read, checked or not
        self._checked: dict[str, AgentConfig] = {}  # current as of the last stamp read
        self._unknown: OrderedDict[str, None] = (
            OrderedDict()
        )  # absent as of the last stamp read; LRU
        self._rules: RoutingRules | None = None
        self._rules_checked = False  # self._rules is current as of the last stamp read
        self._rules_lock = asyncio.Lock()
        self._stamp_lock = (
            asyncio.Lock()
        )  # concurrent requests that find the stamp due read it once
        self._seen_stamp: str | None = None
        self._stamp_read_at = float("-inf")
        self._verified_at = float("-inf")  # when everything was last marked for re-checking

    # -- freshness ----------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> bool:
        """Read the change stamp if it is due (or `force`); True when what is held may have
        changed since the last refresh (the stamp moved, max age passed, or offline)."""
        if not force and not self._stamp_due():
            return False
        async with self._stamp_lock:
            if not force and not self._stamp_due():  # another request just read it
                return False
            return await self._read_stamp()

    def _stamp_due(self) -> bool:
        return self._clock() - self._stamp_read_at >= self._check_every_s

    async def _read_stamp(self) -> bool:
        now = self._clock()
        try:
            stamp = await self._stamp.read()
        except DatabaseUnavailable:
            if self._snapshot is None or not self._snapshot.seen_database:
                raise
            if not self.offline:
                logger.warning("database unreachable: serving the last-known good catalog")
            self.offline = True
            self._forget_checks()
            return True
        self.offline = False
        self._stamp_read_at = now
        changed = stamp != self._seen_stamp or now - self._verified_at >= self._max_age_s
        if changed:
            self._forget_checks()
            self._seen_stamp = stamp
            self._verified_at = now
        return changed

    def invalidate(self) -> None:
        """Something was written through this process: the next `refresh()` reads the stamp."""
        self._stamp_read_at = float("-inf")

    def remember(self, config: AgentConfig) -> None:
        """A config this process just wrote (the store's answer is the current version): served
        at once, before any stamp read (read-your-writes on one admin API replica)."""
        self._configs[config.agent_id] = config
        self._checked[config.agent_id] = config
        self._unknown.pop(config.agent_id, None)

    def forget(self, agent_id: str) -> None:
        """A write found this config changed elsewhere (a 412) or gone: check it on next use,
        and read the stamp at the next refresh (another replica wrote)."""
        self._checked.pop(agent_id, None)
        self._unknown.pop(agent_id, None)
        self.invalidate()

    def _forget_checks(self) -> None:
        self._checked.clear()
        self._unknown.clear()
        self._rules_checked = False

    # -- configs ------------------------------------------------------------------------

    async def get(self, agent_id: str) -> AgentConfig:
        """Raises AgentNotFound / DatabaseUnavailable like `ConfigStore.get`; offline, or when
        the database fails now, a config found in the snapshot is returned instead."""
        if self.offline:
            return self._config_from_snapshot(agent_id)
        checked = self._checked.get(agent_id)
        if checked is not None:
            return checked
        if agent_id in self._unknown:
            self._unknown.move_to_end(agent_id)
            raise AgentNotFound(agent_id)
        try:
            config = await self._current_config(agent_id)
        except AgentNotFound:
            self._remember_unknown(agent_id)
            raise
        except DatabaseUnavailable:
            if self._snapshot is None or self._snapshot.config(agent_id) is None:
                raise
            logger.warning(
                "database unreachable: %s served from the last-known good config", agent_id
            )
            return self._config_from_snapshot(agent_id)
        self._checked[agent_id] = config
        return config

    def availability(
        self,
        active_sessions: ActiveSessionCounter | None = None,
        egress: EgressPolicy | None = None,
    ) -> StoreAvailability:
        """What the router asks before accepting a proposal, answered from this catalog."""
        return StoreAvailability(self, active_sessions, egress)

    @property
    def held(self) -> int:
        """How many agent ids this catalog holds anything for (configs, found, unknown)."""
        return len(self._configs.keys() | self._checked.keys() | self._unknown.keys())

    def _remember_unknown(self, agent_id: str) -> None:
        self._configs.pop(agent_id, None)  # deleted by hand: do not keep its old config either
        if self._max_unknown <= 0:
            return
        self._unknown[agent_id] = None
        self._unknown.move_to_end(agent_id)
        while len(self._unknown) > self._max_unknown:
            self._unknown.popitem(last=False)

    async def _current_config(self, agent_id: str) -> AgentConfig:
        cached = self._configs.get(agent_id)
        shared = self._shared_config(agent_id)
        if shared is not None:
            config = cached if cached is not None and cached.version == shared.version else shared
        else:
            version = await self._store.current_version(agent_id)
            config = (
                cached
                if cached is not None and cached.version == version
                else await self._store.get(agent_id)
            )
            if self._snapshot is not None:  # labelled with this stamp: current for other jobs too
                self._snapshot.save_config(config, self._seen_stamp)
        self._configs[agent_id] = config
        return config

    def _shared_config(self, agent_id: str) -> AgentConfig | None:
        """The snapshot's copy if another job read it under the stamp this catalog just read."""
        if self._snapshot is None or self._seen_stamp is None:
            return None
        return self._snapshot.current_config(agent_id, self._seen_stamp, self._max_age_s)

    def _config_from_snapshot(self, agent_id: str) -> AgentConfig:
        """A type this process never read is unknown offline: the chain moves on."""
        config = self._configs.get(agent_id) or (
            self._snapshot.config(agent_id) if self._snapshot else None
        )
        if config is None:
            raise AgentNotFound(agent_id)
        return config

    # -- routing rules ------------------------------------------------------------------

    async def current(self) -> RoutingRules:
        """The current routing rules. While the stored version is unchanged the same object is
        returned, so the router keeps its compiled chain.

        If a re-read fails, the last rules read are kept (and the failure logged) rather than
        failing every room; with none read yet, the snapshot's are used, and without those the
        error is raised. Offline, the snapshot's rules (another job may have written newer ones
        than this process holds)."""
        if self.offline:
            return self._offline_rules()
        if self._rules is not None and self._rules_checked:
            return self._rules
        async with self._rules_lock:
            if self._rules is None or not self._rules_checked:
                await self._reload_rules()
        assert self._rules is not None
        return self._rules

    async def _reload_rules(self) -> None:
        shared = self._shared_rules()
        if shared is not None:
            if not _same_saved_rules(shared, self._rules):
                self._rules = shared
            self._rules_checked = True
            return
        try:
            fresh = await self._rules_store.current()
        except (DatabaseUnavailable, InvalidRoutingRules) as exc:
            # A hand-broken document stays broken until the next write: not re-read per room.
            # An unreachable database is tried again at the next call.
            self._rules_checked = isinstance(exc, InvalidRoutingRules)
            if self._rules is not None:
                logger.warning(
                    "routing rules: re-read failed, keeping version %s",
                    self._rules.version,
                    exc_info=True,
                )
                return
            self._rules = self._snapshot_rules()
            if self._rules is None:
                raise
            logger.warning(
                "routing rules: re-read failed, serving the snapshot's version %s",
                self._rules.version,
            )
            return
        if not _same_saved_rules(fresh, self._rules):
            self._rules = fresh
        if self._snapshot is not None:  # labelled with this stamp: current for other jobs too
            self._snapshot.save_rules(fresh.model_dump(mode="json"), self._seen_stamp)
        self._rules_checked = True

    def _shared_rules(self) -> RoutingRules | None:
        if self._snapshot is None or self._seen_stamp is None:
            return None
        return _parsed_rules(self._snapshot.current_rules(self._seen_stamp, self._max_age_s))

    def _offline_rules(self) -> RoutingRules:
        rules = self._snapshot_rules()
        if rules is not None and not _same_saved_rules(rules, self._rules):
            self._rules = rules
        if self._rules is None:
            raise DatabaseUnavailable("no readable routing rules in the catalog snapshot")
        return self._rules

    def _snapshot_rules(self) -> RoutingRules | None:
        return _parsed_rules(self._snapshot.rules() if self._snapshot is not None else None)

    # -- the snapshot for other processes -------------------------------------------------

    async def snapshot_active(self, every_s: float) -> None:
        """Every active agent type into the snapshot, not only those this process read: a
        worker that served only support rooms can still route a sales room during an outage.
        One list query, at most every `every_s` per worker (the snapshot says when any job
        last did it); the configs a job reads are written at every read anyway."""
        snapshot = self._snapshot
        if snapshot is None or self.offline or not snapshot.due("all_active", every_s):
            return
        page = await self._store.list_agents(status=AgentStatus.ACTIVE, limit=200)
        for config in page.items:  # read after the stamp: at least as new as it says
            snapshot.save_config(config, self._seen_stamp)
        snapshot.mark("all_active")


def _parsed_rules(document: dict | None) -> RoutingRules | None:
    if document is None:
        return None
    try:
        return RoutingRules.model_validate(document)
    except ValidationError as exc:
        logger.warning("routing rules snapshot unreadable: %s", exc)
        return None


def _same_saved_rules(fresh: RoutingRules, known: RoutingRules | None) -> bool:
    return known is not None and (fresh.version, fresh.updated_at) == (
        known.version,
        known.updated_at,
    )
