"""What a session cost: LLM tokens in and out and requests per model, STT audio
seconds, TTS characters, tool calls. Stored in the session record at its end (`cost`).

From livekit's own per-request metrics (`metrics_collected`: `LLMMetrics`, `STTMetrics`,
`TTSMetrics`; livekit builds its `session_usage_updated` totals from the same events,
agent_activity.py `_on_metrics_collected`, but those totals do not count requests), plus the
calls we make straight to the endpoint, which livekit never sees: the fields' extraction call,
the summary and a transfer's hand-over note (`StructuredCaller`, worker/turns.py).
"""

from dataclasses import dataclass, field
from typing import Any

from livekit.agents.metrics import LLMMetrics, STTMetrics, TTSMetrics


@dataclass
class ModelCost:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


@dataclass
class SessionCost:
    llm: dict[str, ModelCost] = field(default_factory=dict)
    stt_audio_s: float = 0.0
    tts_characters: int = 0
    tool_calls: int = 0

    def add_llm(self, model: str, input_tokens: int, output_tokens: int) -> None:
        entry = self.llm.setdefault(model, ModelCost(model))
        entry.input_tokens += input_tokens
        entry.output_tokens += output_tokens
        entry.requests += 1

    def collect(self, metrics: Any) -> None:
        """One `metrics_collected` event's metrics (other kinds are not a cost)."""
        if isinstance(metrics, LLMMetrics):
            model = (metrics.metadata.model_name if metrics.metadata else None) or metrics.label
            self.add_llm(model, metrics.prompt_tokens, metrics.completion_tokens)
        elif isinstance(metrics, STTMetrics):
            self.stt_audio_s += metrics.audio_duration
        elif isinstance(metrics, TTSMetrics):
            self.tts_characters += metrics.characters_count

    def as_dict(self) -> dict[str, Any]:
        return {
            "llm": [
                {
                    "model": c.model,
                    "input_tokens": c.input_tokens,
                    "output_tokens": c.output_tokens,
                    "requests": c.requests,
                }
                for c in self.llm.values()
            ],
            "stt_audio_s": round(self.stt_audio_s, 3),
            "tts_characters": self.tts_characters,
            "tool_calls": self.tool_calls,
        }
