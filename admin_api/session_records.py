"""Reading the session and turn records the worker writes (collections `sessions`, `turns`).

The worker owns their shape (worker/conversation.py); these models name the fields the API
relies on and pass any others through, so a new worker field shows up without an API change.
A session's detail joins its turns here, in Python: FerretDB v1 has no `$lookup`.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.storage import newest_first_page, newest_first_query
from agent_configs.database import database_errors

SESSIONS = "sessions"
TURNS = "turns"
MAX_TURNS_SHOWN = 1000
_SUMMARY_PROJECTION = {"transcript": 0, "handoffs": 0}


class ChannelMark(BaseModel):
    """The channel a session came in by (a channel room's job mark, copied by the worker)."""

    model_config = ConfigDict(extra="allow")

    kind: str
    binding_id: str
    conversation_id: str | None = None


class SessionSummary(BaseModel):
    """A session as listed: who, which agent, how it was routed, when, how it ended."""

    model_config = ConfigDict(extra="allow")

    session_id: str
    status: str | None = None
    room: str | None = None
    agent_id: str | None = None
    agent_version: int | None = None
    user_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    reason: str | None = Field(default=None, description="Why a refused session was refused.")
    turn_count: int | None = None
    routing: dict[str, Any] | None = None
    summary: str | None = None
    usage: dict[str, Any] | None = None
    channel: ChannelMark | None = Field(
        default=None, description="The channel binding it came in by; null for a room's client."
    )


class TranscriptLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    text: str


class WaterfallStage(BaseModel):
    """One stage of a turn's latency waterfall (worker/waterfall.py), in ms from the turn's
    origin (`latency_from`); a point has `start_ms == end_ms`."""

    stage: str
    start_ms: float
    end_ms: float
    source: Literal["livekit", "switchboard"]
    detail: str | None = None


class ModelCost(BaseModel):
    model: str
    input_tokens: int
    output_tokens: int
    requests: int


class SessionCost(BaseModel):
    """What the session cost (worker/cost.py), written at its end."""

    llm: list[ModelCost] = Field(default_factory=list)
    stt_audio_s: float = 0.0
    tts_characters: int = 0
    tool_calls: int = 0


class Turn(BaseModel):
    """One structured turn: the filled schema fields, `ok` or `failed` after one retry."""

    model_config = ConfigDict(extra="allow")

    turn_index: int
    status: str | None = None
    fields: dict[str, Any] | None = None
    user_text: str | None = None
    schema_id: str | None = None
    agent_id: str | None = None
    error: str | None = None
    attempts: int | None = None
    created_at: datetime | None = None
    latency_ms: dict[str, int] | None = None
    latency_from: str | None = None
    waterfall: list[WaterfallStage] | None = None
    """None for turns stored before the waterfall existed."""


class SessionDetail(SessionSummary):
    cost: SessionCost | None = None
    """None until the session has ended (and for sessions recorded before costs were)."""
    transcript: list[TranscriptLine] = Field(default_factory=list)
    handoffs: list[dict[str, Any]] = Field(default_factory=list)
    turns: list[Turn] = Field(default_factory=list)


class SessionPage(BaseModel):
    items: list[SessionSummary]
    next_cursor: str | None = None


def _session_fields(document: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in document.items() if k != "_id"}
    fields["session_id"] = str(document.get("session_id") or document["_id"])
    return fields


def _turn_fields(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("_id", "session_id", "user_id")}


class SessionRecords:
    def __init__(self, database: AsyncDatabase) -> None:
        self._sessions = database[SESSIONS]
        self._turns = database[TURNS]

    async def page(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        room: str | None = None,
        status: str | None = None,
        channel: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """Newest first by `started_at`; the time range applies to `started_at`; `channel` is
        a binding id."""
        base: dict[str, Any] = {
            name: value
            for name, value in (
                ("agent_id", agent_id),
                ("user_id", user_id),
                ("room", room),
                ("status", status),
                ("channel.binding_id", channel),
            )
            if value is not None
        }
        base["started_at"] = {"$exists": True}  # a record without it cannot be paged in time order
        query = newest_first_query(base, "started_at", start, end, cursor)
        with database_errors():
            documents, next_cursor = await newest_first_page(
                self._sessions, query, "started_at", limit, _SUMMARY_PROJECTION
            )
        items = [SessionSummary.model_validate(_session_fields(d)) for d in documents]
        return SessionPage(items=items, next_cursor=next_cursor)

    async def detail(self, session_id: str) -> SessionDetail | None:
        with database_errors():
            document = await self._sessions.find_one({"_id": session_id})
            if document is None:
                return None
            found = self._turns.find({"session_id": session_id}).sort("turn_index", ASCENDING)
            turns = await found.to_list(length=MAX_TURNS_SHOWN)
        return SessionDetail.model_validate(
            _session_fields(document) | {"turns": [_turn_fields(t) for t in turns]}
        )
