"""Everything a request may need, built once per app: the database and what sits on it.

Opening does not touch the database, so the API starts (and `/healthz` answers) while
MongoDB is down; indexes and the bootstrap key are set up by `prepare()`, which the app runs
at start and `/readyz` retries until it has succeeded once.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from admin_api.auth import KeyRing
from admin_api.config_reads import ConfigReads
from admin_api.eval_records import EvalRecords
from admin_api.events import EventLog
from admin_api.metrics import ApiMetrics
from admin_api.outbox import AdminOutbox
from admin_api.ratelimit import TokenBuckets
from admin_api.resolver import Resolver
from admin_api.session_records import SESSIONS, TURNS, SessionRecords
from admin_api.settings import AdminSettings
from agent_configs.capacity import CapacityGuard
from agent_configs.catalog import Catalog
from agent_configs.changes import ChangeStamp
from agent_configs.channels import ensure_channel_indexes
from agent_configs.database import database_errors, open_client
from agent_configs.errors import DatabaseUnavailable
from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore

logger = logging.getLogger("switchboard.admin_api")
PING_TIMEOUT_S = 2.0


@dataclass
class Services:
    settings: AdminSettings
    client: AsyncMongoClient
    database: AsyncDatabase
    store: ConfigStore
    catalog: Catalog
    config_reads: ConfigReads
    rules_store: RulesStore
    resolver: Resolver
    keys: KeyRing
    events: EventLog
    outbox: AdminOutbox
    sessions: SessionRecords
    token_buckets: TokenBuckets
    hook_dry_run_buckets: TokenBuckets
    widget_buckets: TokenBuckets
    """POST /widget/token per client address: the publishable key is public, so no per-key bucket."""
    metrics: ApiMetrics
    prepared: bool = False
    _prepare_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def open(cls, settings: AdminSettings, metrics: ApiMetrics) -> "Services":
        if not settings.mongo_uri:
            raise RuntimeError(
                "MONGO_URI is not set: start the local stack with `make dev` or set it"
            )
        client = open_client(settings.mongo_uri, settings.mongo_timeout_ms)
        database = client[settings.mongo_db]
        store = ConfigStore(database, settings.egress)
        rules_store = RulesStore(database)
        # One catalog for every read here: GET /agents/{id}, dry runs, token routes. Unknown
        # ids are not remembered (a token's metadata names them), so they cost a query each.
        catalog = Catalog(
            store,
            rules_store,
            ChangeStamp(database),
            check_every_s=settings.admin_api_config_cache_ttl_s,
            max_age_s=settings.routing_rules_ttl_s,
            max_unknown=0,
        )
        resolver = Resolver(
            catalog,
            CapacityGuard(database, stale_after_s=settings.capacity_slot_stale_s).in_use,
            agent_names=settings.admin_api_agent_names,
            default_agent_name=settings.agent_name,
            egress=settings.egress,
        )
        return cls(
            settings=settings,
            client=client,
            database=database,
            store=store,
            catalog=catalog,
            config_reads=ConfigReads(catalog),
            rules_store=rules_store,
            resolver=resolver,
            keys=KeyRing(database, settings.admin_api_key_cache_ttl_s),
            events=EventLog(database),
            outbox=AdminOutbox(database, settings.admin_api_spool_dir, metrics.outbox),
            sessions=SessionRecords(database),
            token_buckets=TokenBuckets(
                settings.admin_api_token_rate_per_s, settings.admin_api_token_burst
            ),
            hook_dry_run_buckets=TokenBuckets(
                settings.admin_api_hook_dry_run_rate_per_min / 60.0,
                settings.admin_api_hook_dry_run_burst,
            ),
            widget_buckets=TokenBuckets(
                settings.admin_api_token_rate_per_s, settings.admin_api_token_burst
            ),
            metrics=metrics,
        )

    async def prepare(self) -> None:
        """Indexes and the bootstrap key; idempotent, and a no-op once it has succeeded."""
        async with self._prepare_lock:
            if self.prepared:
                return
            await self.store.ensure_indexes()
            await self.rules_store.ensure_indexes()
            await self.keys.ensure_indexes()
            await self.events.ensure_indexes()
            await EvalRecords(self.database).ensure_indexes()
            await self.outbox.prepare()
            await self._ensure_record_indexes()
            with database_errors():
                await ensure_channel_indexes(self.database)
            await self._bootstrap_key()
            self.prepared = True

    async def prepare_quietly(self) -> None:
        try:
            await self.prepare()
        except DatabaseUnavailable as exc:
            logger.warning("database not reachable at start (%s); /readyz will retry", exc.detail)

    async def ping(self) -> None:
        """Raises DatabaseUnavailable within PING_TIMEOUT_S when the database does not answer."""
        try:
            await asyncio.wait_for(self.store.ping(), PING_TIMEOUT_S)
        except TimeoutError:
            raise DatabaseUnavailable(f"no answer to ping within {PING_TIMEOUT_S:.0f}s") from None

    async def close(self) -> None:
        """The outbox first: its queued events are written, or spooled, before the client goes."""
        await self.outbox.close()
        await self.client.close()

    async def _ensure_record_indexes(self) -> None:
        """The worker writes these collections; the API's lists and joins need these indexes.

        Plain, non-unique indexes: creating one the worker also creates is a no-op.
        """
        with database_errors():
            try:
                await self.database[SESSIONS].create_index([("started_at", -1), ("_id", -1)])
                await self.database[SESSIONS].create_index([("agent_id", 1), ("started_at", -1)])
                # A channel's sessions: the list's `?channel=` and its traffic's 24-hour count.
                await self.database[SESSIONS].create_index(
                    [("channel.binding_id", 1), ("started_at", -1)]
                )
                await self.database[TURNS].create_index([("session_id", 1), ("turn_index", 1)])
                await self.database[TURNS].create_index([("agent_id", 1), ("created_at", -1)])
            except OperationFailure as exc:  # e.g. the same keys under another name
                logger.warning("record indexes not created: %s", exc)

    async def _bootstrap_key(self) -> None:
        secret = self.settings.admin_api_bootstrap_key
        if secret is None or not secret.get_secret_value():
            return
        created = await self.keys.bootstrap(secret.get_secret_value())
        if created is not None:
            logger.warning(
                "no API key existed: created admin key '%s' from ADMIN_API_BOOTSTRAP_KEY; "
                "create named keys with `python -m admin_api.keys create` and revoke it",
                created.name,
            )
