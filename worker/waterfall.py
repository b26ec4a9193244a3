"""A turn's latency waterfall: where the time between the user's message and the turn's
fields went, stage by stage (ms from the turn's origin, `latency_from`).

Where each stage comes from:

| stage | source | from |
|---|---|---|
| `user_speech_end` / `message_received` | livekit / ours | the origin (worker/latency.py): the user message's `metrics.stopped_speaking_at` (VAD), or our stamp when `lk.chat` arrived |
| `end_of_utterance` | livekit | `ChatMessage.metrics.end_of_turn_delay`, the number livekit's `EOUMetrics.end_of_utterance_delay` carries |
| `transcript_final` | livekit | `ChatMessage.metrics.transcription_delay` (`EOUMetrics.transcription_delay`); a point at 0 when livekit had no end of speech and the transcript is the origin |
| `llm` | livekit | each `LLMMetrics` (`metrics_collected`) of the turn: start = `timestamp - duration`, end = start + `ttft`; detail = its model |
| `first_text` | ours | the reply's first words leaving our `llm_node` |
| `tts` | livekit | the turn's first `TTSMetrics`: start = `timestamp - duration`, end = start + `ttfb`; detail = model / label |
| `first_audio` | livekit | the reply's `metrics.started_speaking_at` (voice only) |
| `tool` | ours | each call's start and `duration_ms` (worker/tools/context.py); detail = its name |
| `fields` | ours | the reply's end (its chat item added) -> the fields validated |

Where ours differ from livekit's, and why:

- `first_text` is not livekit's `llm_node_ttft`. With the fields filled alongside the reply
  the model writes `{"system_response":"` (4 tokens, about 80 ms at 50 tok/s) before the reply's
  first character: livekit's first token is the JSON's, ours is the first word the user gets.
  The gap between the end of `llm` and `first_text` is that prefix (bench/README.md).
- `llm` counts from the request livekit's LLM stream made, after our `llm_node` cut the
  context window; a retry of ours (`llm_unavailable`) is a request of its own. The fields'
  extraction call and the summary go straight to the endpoint (worker/turns.py), not through
  livekit: they have no `llm` stage; the `fields` stage covers the extraction call.
- `tool` is measured around the tool's body by us: livekit's function-tool spans are not
  metrics, and ours include the argument validation and the egress check the user waits for.
- `fields` ends when the fields validated, which livekit knows nothing of.

Stages are ordered by start; a point has start == end. Values are never negative: the origin
of a spoken turn is livekit's clock reading and the others ours (the same wall clock, read in
other places), so a mark a few ms before it is shown at 0.
"""

from dataclasses import dataclass
from typing import Any, Literal

from livekit.agents.metrics import LLMMetrics, TTSMetrics

from worker.latency import LatencyMarks, SpeechMarks
from worker.tools import ToolCallRecord

Source = Literal["livekit", "switchboard"]
ORIGIN_STAGES = {"typed": "message_received", "end_of_speech": "user_speech_end"}
STAGES = (
    "user_speech_end",
    "message_received",
    "end_of_utterance",
    "transcript_final",
    "llm",
    "first_text",
    "tts",
    "first_audio",
    "tool",
    "fields",
)


@dataclass(frozen=True)
class Stage:
    stage: str
    start_ms: float
    end_ms: float
    source: Source
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "source": self.source,
            "detail": self.detail,
        }

    @property
    def seconds(self) -> float:
        """From the turn's origin to the stage's end: what the user had waited by then."""
        return self.end_ms / 1000


def _ms(seconds: float) -> float:
    return max(0.0, round(seconds * 1000, 1))


def waterfall(
    marks: LatencyMarks,
    speech: SpeechMarks | None,
    llm_requests: list[LLMMetrics],
    tts_requests: list[TTSMetrics],
    tool_calls: list[ToolCallRecord],
) -> list[Stage]:
    """A turn's stages (worker/turn.py `Turn.waterfall`), from its parts."""
    origin = marks.started_at
    stages: list[Stage] = []

    def span(
        name: str, start: float, end: float, source: Source, detail: str | None = None
    ) -> None:
        begin = _ms(start - origin)
        stages.append(Stage(name, begin, max(begin, _ms(end - origin)), source, detail))

    def point(name: str, at: float | None, source: Source) -> None:
        if at is not None:
            span(name, at, at, source)

    if marks.origin == "transcript":
        point("transcript_final", origin, "livekit")
    else:
        ours = marks.origin == "typed"  # our stamp; the end of speech is livekit's VAD
        point(ORIGIN_STAGES[marks.origin], origin, "switchboard" if ours else "livekit")
    if marks.origin == "end_of_speech" and speech is not None:
        if speech.end_of_turn_delay is not None:
            span("end_of_utterance", origin, origin + speech.end_of_turn_delay, "livekit")
        if speech.transcription_delay is not None:
            span("transcript_final", origin, origin + speech.transcription_delay, "livekit")
    for request in llm_requests:
        start = request.timestamp - request.duration
        end = start + request.ttft if request.ttft >= 0 else start + request.duration
        model = request.metadata.model_name if request.metadata else None
        span("llm", start, end, "livekit", model or request.label)
    point("first_text", marks.first_text_at, "switchboard")
    if tts_requests:
        first = min(tts_requests, key=lambda m: m.timestamp - m.duration)
        start = first.timestamp - first.duration
        end = start + first.ttfb if first.ttfb >= 0 else start + first.duration
        model = first.metadata.model_name if first.metadata else None
        span("tts", start, end, "livekit", model or first.label)
    point("first_audio", marks.first_audio_at, "livekit")
    for call in tool_calls:
        if call.started_at:
            end = call.started_at + call.duration_ms / 1000
            span("tool", call.started_at, end, "switchboard", call.name)
    if marks.fields_at is not None:
        reply_end = marks.reply_ended_at if marks.reply_ended_at is not None else marks.fields_at
        span("fields", min(reply_end, marks.fields_at), marks.fields_at, "switchboard")
    return sorted(stages, key=lambda s: (s.start_ms, s.end_ms))
