"""The audit trail: collection `events`, written by the admin API and by the worker.

One document per event, never updated:

    {
      "_id":        str,       admin: "evt_<32 hex>"; worker: "<session_id>:started" / ":ended"
      "type":       str,       see EventType
      "at":         datetime,  UTC
      "actor":      str,       the API key's name for admin actions; "worker" for sessions;
                               "cli" for keys made with `python -m admin_api.keys`
      "agent_id":   str|None,  the agent type concerned
      "session_id": str|None,  session events only
      "room":       str|None,  session events and token.minted
      "version":    int|None,  agent events: the agent version the action produced;
                               routing.updated: the rules version saved
      "details":    object,    free-form extras, e.g. {"restored_version": 3} for a
                               rollback, {"end_reason": "...", "turns": 4} for session.ended;
                               agent.activated: {"run_id", "activated_version"};
                               agent.gate_overridden: {"reason", "action"};
                               suite.updated: {"scenarios", "suite_digest"} (a suite write
                               makes no agent version: `version` is null);
                               token.minted: see admin_api/routes/tokens.py (never a
                               metadata value); webhook.*: {"subscription_id", "host"}
                               and, for an update, "changed" (field names; never a URL
                               path or query, never a secret); channel.*:
                               {"binding_id", "kind", "enabled", "agent_id",
                               "purpose"} and, for an update, "changed" (field names)
    }

The worker writes its two session events through its buffered record writer (an upsert on
`_id`, so a replay never duplicates one). Admin events are written after the change they
describe has been committed: FerretDB has no transactions, so if the database goes away in
between, the change stands and the event is logged as lost rather than failing the request
(a retried request would only meet a 412). A token.minted event is the exception: it is
written with `must_persist=True` before the token is handed out, because a token that was
minted but not recorded is exactly what an audit trail exists to rule out; the mint is a 503
instead.
"""

import logging
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from admin_api.storage import newest_first_page, newest_first_query
from agent_configs.database import bson_now, database_errors

EVENTS = "events"
logger = logging.getLogger("switchboard.admin_api.events")


class EventType(StrEnum):
    AGENT_CREATED = "agent.created"
    AGENT_UPDATED = "agent.updated"
    AGENT_PAUSED = "agent.paused"
    AGENT_RESUMED = "agent.resumed"
    AGENT_ARCHIVED = "agent.archived"
    AGENT_ROLLED_BACK = "agent.rolled_back"
    AGENT_ACTIVATED = "agent.activated"
    AGENT_GATE_OVERRIDDEN = "agent.gate_overridden"
    ROUTING_UPDATED = "routing.updated"
    SUITE_UPDATED = "suite.updated"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    TOKEN_MINTED = "token.minted"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    CHANNEL_CREATED = "channel.created"
    CHANNEL_UPDATED = "channel.updated"
    CHANNEL_DELETED = "channel.deleted"
    SESSION_STARTED = "session.started"
    SESSION_ENDED = "session.ended"


class Event(BaseModel):
    """One audit event as the API serves it (`_id` is shown as `id`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    at: datetime
    actor: str
    agent_id: str | None = None
    session_id: str | None = None
    room: str | None = None
    version: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "Event":
        return cls.model_validate(
            {**document, "id": str(document["_id"]), "details": document.get("details") or {}}
        )


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = None


class EventLog:
    def __init__(self, database: AsyncDatabase) -> None:
        self._events = database[EVENTS]

    async def ensure_indexes(self) -> None:
        with database_errors():
            await self._events.create_index([("at", DESCENDING), ("_id", DESCENDING)])
            await self._events.create_index([("agent_id", DESCENDING), ("at", DESCENDING)])

    async def record(
        self,
        kind: EventType,
        actor: str,
        *,
        agent_id: str | None = None,
        version: int | None = None,
        room: str | None = None,
        details: dict[str, Any] | None = None,
        must_persist: bool = False,
    ) -> None:
        """Write one admin event; a failure is logged, never raised (see the module docstring),
        unless `must_persist`: then an unreachable database raises DatabaseUnavailable (503)
        and any other database error propagates (500)."""
        document = {
            "_id": f"evt_{uuid.uuid4().hex}",
            "type": str(kind),
            "at": bson_now(),
            "actor": actor,
            "agent_id": agent_id,
            "session_id": None,
            "room": room,
            "version": version,
            "details": details or {},
        }
        if must_persist:
            with database_errors():
                await self._events.insert_one(document)
            return
        try:
            await self._events.insert_one(document)
        except PyMongoError as exc:
            logger.error(
                "audit event %s for %s by %s lost: %s", kind, agent_id, actor, type(exc).__name__
            )

    async def page(
        self,
        *,
        kind: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        actor: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        base = {
            name: value
            for name, value in (
                ("type", kind),
                ("agent_id", agent_id),
                ("session_id", session_id),
                ("actor", actor),
            )
            if value is not None
        }
        query = newest_first_query(base, "at", start, end, cursor)
        with database_errors():
            documents, next_cursor = await newest_first_page(self._events, query, "at", limit)
        return EventPage(items=[Event.from_document(d) for d in documents], next_cursor=next_cursor)
