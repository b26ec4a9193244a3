"""The latency a user felt in one turn: from their message to the reply's first text, its
first audio, and the turn's fields.

Every mark is a wall-clock time in seconds (`time.time()`, the clock livekit-agents stamps
its own metrics with), taken in the worker, so the numbers leave out the network between the
browser and LiveKit (a frontend can add what it measures itself). Where each one is taken:

- the start. Typed: when the `lk.chat` message reached the worker (`on_text_input`, once
  livekit has read the whole text stream). Spoken: the end of the user's speech as
  livekit-agents 1.8 reports it, the user message's `metrics.stopped_speaking_at`: the last
  moment voice activity detection heard speech. The end-of-utterance wait (the VAD silence,
  `end_of_utterance_delay` in livekit's EOU metrics) and the transcription are inside the
  latency, as the user lives them; a final `user_input_transcribed` would start the clock
  after them. livekit's EOU metrics (`metrics_collected`: `end_of_utterance_delay`,
  `transcription_delay`) are measured from this same mark. When livekit has no
  consistent anchor it leaves `stopped_speaking_at` out (audio_recognition.py,
  `_compute_end_of_turn_metrics`); then the clock starts when the transcript became a
  message (its `created_at`), which leaves the silence and STT time out. `latency_from`
  says which start a turn used: `typed`, `end_of_speech` or `transcript`.
- `first_text`: the reply's first words leaving our `llm_node` (to `lk.transcription` and,
  in a voice session, the TTS). With fields filled alongside the reply, that is the first
  characters of `system_response`, not the JSON around it. The `llm_unavailable` message
  counts too: it is what the user got.
- `first_audio` (voice sessions only): livekit's `started_speaking_at` for the reply, the
  moment the agent's audio output captured its first frame into the room (when the agent
  state becomes `speaking`). In a text session livekit sets that mark on the first text out,
  so it is left out there.
- `fields`: the turn's fields validated, whether they came with the reply or from the
  extraction call.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from livekit.agents import llm

RECEIVED_AT = "switchboard.received_at"
"""`ChatMessage.extra` key: when a typed message reached the worker (wall clock, seconds)."""

LatencyFrom = Literal["typed", "end_of_speech", "transcript"]


def mark_received(message: llm.ChatMessage, received_at: float) -> llm.ChatMessage:
    message.extra[RECEIVED_AT] = received_at
    return message


def turn_start(message: llm.ChatMessage) -> tuple[float, LatencyFrom]:
    """Where the clock of the turn this user message opens starts (see the module docstring)."""
    received = message.extra.get(RECEIVED_AT)
    if isinstance(received, (int, float)):
        return float(received), "typed"
    stopped = (message.metrics or {}).get("stopped_speaking_at")
    if stopped:
        return float(stopped), "end_of_speech"
    return float(message.created_at), "transcript"


@dataclass
class LatencyMarks:
    started_at: float
    origin: LatencyFrom
    first_text_at: float | None = None
    first_audio_at: float | None = None
    fields_at: float | None = None
    reply_ended_at: float | None = None
    """When the reply's chat item was added (the reply over for the user): where the
    waterfall's `fields` stage starts. Not a `latency_ms` mark."""

    def fields_done(self) -> None:
        self.fields_at = time.time()

    def as_ms(self) -> dict[str, int]:
        """Milliseconds from the start, for the marks taken so far (never negative: the start
        of a spoken turn is livekit's clock reading, the others ours)."""
        marks = {
            "first_text": self.first_text_at,
            "first_audio": self.first_audio_at,
            "fields": self.fields_at,
        }
        return {
            name: max(0, round((at - self.started_at) * 1000))
            for name, at in marks.items()
            if at is not None
        }


@dataclass
class SpeechMarks:
    """livekit's own marks of a spoken user message (`ChatMessage.metrics`, 1.8), in seconds:
    the same numbers its `EOUMetrics` carry (agent_activity.py builds one from the other)."""

    end_of_turn_delay: float | None = None
    """End of speech (VAD) -> the decision that the user's turn ended."""
    transcription_delay: float | None = None
    """End of speech -> the final transcript."""

    @classmethod
    def of(cls, report: Mapping[str, Any] | None) -> "SpeechMarks | None":
        report = report or {}
        if not report.get("stopped_speaking_at"):
            return None  # livekit had no end of speech: its delays are 0.0 placeholders
        return cls(report.get("end_of_turn_delay"), report.get("transcription_delay"))
