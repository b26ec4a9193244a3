"""The objects that flow through a session's pipeline: its start, each turn, its end.

A turn is the user's message, the tool calls that led to the reply and the reply with its
fields. `worker/conversation.py` makes one `Turn` when the reply ends, fills its fields
(`worker/turns.py`) and hands the same object to every sink (`worker/sinks/`): the records,
the room's `agent-turn`, the CloudEvents, the Prometheus metrics and the spans all read it, and
nothing downstream asks the conversation for more.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from livekit.agents.metrics import LLMMetrics, TTSMetrics

from agent_configs.models import AgentConfig
from worker.cost import SessionCost
from worker.latency import LatencyMarks, SpeechMarks
from worker.session import ConfiguredAgent, ReplyFailure
from worker.tools import ToolCallRecord
from worker.transcript import Transcript
from worker.turns import Message, StreamedTurn, Usage
from worker.waterfall import Stage, waterfall

TurnStatus = Literal["replied", "ok", "failed"]


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Turn:
    """One turn, from the user's message to its fields."""

    index: int
    session_id: str
    user_id: str | None
    agent: ConfiguredAgent
    """The agent that replied: after a transfer the conversation's current one is another."""
    history: list[Message]
    """The transcript up to and with the reply (the fields' extraction call reads it)."""
    user_text: str | None
    user_text_cut_from: int | None
    """The user message's length before it was cut to `max_user_message_chars`, if it was."""
    reply: str
    latency: LatencyMarks
    """When the user's message came and the reply's text, audio and fields followed."""
    tool_calls: list[ToolCallRecord]
    """The tool calls that led to the reply."""
    streamed: asyncio.Future[StreamedTurn] | None = None
    """The fields that came with the reply, when they do (resolves once they are written)."""
    failure: ReplyFailure | None = None
    """No model answered, or only whitespace: the turn is `failed` and has no fields."""
    speech: SpeechMarks | None = None
    llm_node_ttft: float | None = None
    """livekit's `llm_node_ttft` of the reply's chat item (`switchboard_llm_time_to_first_token`)."""
    llm_requests: list[LLMMetrics] = field(default_factory=list)
    """livekit's metrics of each LLM request of this turn (tool rounds included)."""
    tts_requests: list[TTSMetrics] = field(default_factory=list)
    replied_at: datetime = field(default_factory=now)
    # -- the outcome, set once the fields are filled --
    status: TurnStatus = "replied"
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None
    attempts: int | None = None
    filled_at: datetime | None = None
    _waterfall: list[Stage] | None = field(default=None, repr=False)

    @property
    def config(self) -> AgentConfig:
        return self.agent.config

    @property
    def model(self) -> str:
        """The agent's primary model (what the LLM metrics are labelled with)."""
        return self.agent.models.endpoints[0].model

    @property
    def finished(self) -> bool:
        return self.status != "replied"

    def tool_call_dicts(self) -> list[dict[str, Any]]:
        return [call.as_dict() for call in self.tool_calls]

    def latency_fields(self) -> dict[str, Any]:
        """`latency_ms`, `latency_from` and `waterfall` (README: the `agent-turn` payload), as stored and published."""
        return {
            "latency_ms": self.latency.as_ms(),
            "latency_from": self.latency.origin,
            "waterfall": [stage.as_dict() for stage in self.waterfall()],
        }

    def waterfall(self) -> list[Stage]:
        """Built once the turn is finished (every sink reads the same list)."""
        if self._waterfall is not None:
            return self._waterfall
        stages = waterfall(
            self.latency, self.speech, self.llm_requests, self.tts_requests, self.tool_calls
        )
        if self.finished:
            self._waterfall = stages
        return stages


@dataclass(frozen=True)
class SessionStart:
    session_id: str
    room: str
    config: AgentConfig
    routing: dict[str, Any]
    user_id: str | None
    started_at: datetime
    extra: dict[str, Any]
    """More fields of the session record (job and worker ids, modalities, trace id...)."""


@dataclass(frozen=True)
class SessionEnd:
    session_id: str
    room: str
    config: AgentConfig
    """The agent type that had the conversation last (after hand-offs)."""
    routing: dict[str, Any]
    user_id: str | None
    started_at: datetime | None
    ended_at: datetime
    reason: str
    detail: str | None
    summary: str | None
    transcript: Transcript
    handoffs: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    usage: Usage
    cost: SessionCost
