"""Where a session's outputs go: the record writer, the outbox, the room's data channel.

One object per session, shared by the sinks (worker/sinks/) and by the hand-offs and
escalations, so that every outbox event of a session takes the next `seq` of one counter and
every write goes through the one no-loss writer (worker/records.py).
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from livekit import rtc

from agent_configs.cloudevents import EventType, session_event
from worker.records import EVENTS, Record, RecordWriter, outbox_record

logger = logging.getLogger("switchboard.conversation")


@dataclass
class SessionOutputs:
    session_id: str
    room: rtc.Room
    writer: RecordWriter
    agent_id: str
    """The current agent's id (a hand-off changes it): outbox events carry it unless told."""
    _event_seq: int = 0
    """The next outbox event's `seq` in this session (see agent_configs/cloudevents.py)."""

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(
            logger,
            {"session_id": self.session_id, "room": self.room.name, "agent_id": self.agent_id},
        )

    def submit(self, record: Record) -> None:
        self.writer.submit(record)

    def emit(
        self,
        kind: EventType,
        suffix: str,
        data: dict[str, Any],
        *,
        seq: int | None = None,
        at: datetime | None = None,
        agent_id: str | None = None,
    ) -> None:
        """One outbox event of this session, through the record writer: queued behind the
        records it describes, spooled and replayed with them when MongoDB is away. The
        event's `agent_id` (what subscriptions filter on) is the current agent's unless said."""
        if seq is None:
            seq, self._event_seq = self._event_seq, self._event_seq + 1
        event = session_event(
            kind, self.session_id, agent_id or self.agent_id, suffix, seq, data, at
        )
        self.writer.submit(outbox_record(event))

    def audit(self, kind: str, at: datetime, details: dict[str, Any] | None = None) -> None:
        """One entry of the audit trail the admin API shows (`events`)."""
        suffix = kind.split(".")[-1]
        self.writer.submit(
            Record(
                EVENTS,
                f"{self.session_id}:{suffix}",
                {
                    "type": kind,
                    "agent_id": self.agent_id,
                    "session_id": self.session_id,
                    "room": self.room.name,
                    "actor": "worker",
                    "at": at,
                    "details": details or {},
                },
            )
        )

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """To everyone in the room, reliably; a dropped publish never breaks the conversation."""
        if not self.room.isconnected():
            return
        try:
            await self.room.local_participant.publish_data(
                json.dumps(payload, default=str), reliable=True, topic=topic
            )
        except Exception as exc:
            self.log.warning("publishing on %s failed: %s", topic, exc)
