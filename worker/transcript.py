"""A session's transcript, bounded: the newest messages within `max_transcript_chars`.

What it keeps is bounded by the agent type's config: the transcript keeps the newest messages
within `max_transcript_chars`, counting the ones it let go, so a session that runs for days
still writes a record far below MongoDB's 16 MB document limit. The summary, the structured
turns and a hand-off read it, so they see the newest part of a long session: its memory in
the job process stays bounded too.
"""

from dataclasses import dataclass, field
from typing import Any

from worker.turns import Message


@dataclass
class Transcript:
    messages: list[Message] = field(default_factory=list)
    dropped: int = 0
    """How many of the oldest messages were let go to stay within the cap."""
    turn_count: int = 0
    """Turns answered so far (each user message that got a reply, failed ones included)."""
    awaiting_reply: bool = False
    """The newest message is the user's and its reply has not come yet: a sink may wait for
    the reply before it writes (worker/sinks/records.py)."""
    _chars: int = 0

    def remember(self, message: Message, cap: int) -> None:
        """Append, then let go of the oldest messages until within `cap` characters again.
        The newest message is always kept (cut to the cap if it alone is longer)."""
        if len(message.text) > cap:
            message = Message(message.role, message.text[:cap])
        self.messages.append(message)
        self._chars += len(message.text)
        while self._chars > cap:
            self._chars -= len(self.messages.pop(0).text)
            self.dropped += 1

    def as_record(self) -> dict[str, Any]:
        """The session record's fields that hold it."""
        return {
            "transcript": [{"role": m.role, "text": m.text} for m in self.messages],
            "transcript_dropped": self.dropped,
            "turn_count": self.turn_count,
        }
