/** A turn's latency waterfall (the `waterfall` of an `agent-turn` payload and of a stored turn,
 * README "What the frontend gets"): every stage from the user's end of speech (or the message
 * received) to the fields, ms from that origin. Intervals are bars (LLM request -> first token,
 * TTS request -> first byte, each tool call, ...), moments are markers (first text, first
 * audio). The playground and the session page show the same view. */
import { formatWaterfallMs, WaterfallTable, type WaterfallRow } from "./WaterfallTable";

export interface WaterfallStage {
  stage: string;
  start_ms: number;
  end_ms: number;
  source?: "livekit" | "switchboard" | string;
  detail?: string | null;
}

const STAGES: Record<string, { label: string; kind: string }> = {
  user_speech_end: { label: "end of speech", kind: "speech" },
  message_received: { label: "message received", kind: "speech" },
  end_of_utterance: { label: "end-of-utterance decision", kind: "speech" },
  transcript_final: { label: "final transcript", kind: "speech" },
  llm: { label: "LLM: request → first token", kind: "llm" },
  first_text: { label: "first text out", kind: "llm" },
  tts: { label: "TTS: request → first byte", kind: "tts" },
  first_audio: { label: "first audio out", kind: "tts" },
  tool: { label: "tool call", kind: "tool" },
  fields: { label: "fields complete", kind: "fields" },
};

const SOURCES: Record<string, string> = {
  livekit: "livekit-agents metrics",
  switchboard: "Switchboard",
};

/** The stages of a payload or record that have the contract's shape, by start (a stage that
 * is not a number pair is left out rather than drawn wrong). */
export function waterfallOf(value: unknown): WaterfallStage[] {
  if (!Array.isArray(value)) return [];
  const stages = value.filter(
    (s): s is WaterfallStage =>
      !!s && typeof s === "object" && typeof s.stage === "string" && Number.isFinite(s.start_ms) && Number.isFinite(s.end_ms),
  );
  return [...stages].sort((a, b) => a.start_ms - b.start_ms || a.end_ms - b.end_ms);
}

/** The latest end over many turns: the session page draws every turn on this one scale. */
export const waterfallScale = (turns: { waterfall?: unknown }[]) =>
  Math.max(0, ...turns.flatMap((t) => waterfallOf(t.waterfall).map((s) => s.end_ms)));

export function TurnWaterfall({ stages, scaleMs, origin, compact = false }: {
  stages: WaterfallStage[];
  scaleMs?: number;
  /** Where the clock started, in words ("from the end of the user's speech"). */
  origin?: string | null;
  compact?: boolean;
}) {
  if (stages.length === 0) return null;
  const rows: WaterfallRow[] = stages.map((s, index) => {
    const known = STAGES[s.stage];
    const source = s.source ? SOURCES[s.source] ?? s.source : null;
    return {
      key: `${index}-${s.stage}`,
      name: known?.label ?? s.stage.replace(/_/g, " "),
      detail: [s.detail, source].filter(Boolean).join(" · ") || undefined,
      startMs: s.start_ms,
      endMs: s.end_ms,
      kind: known?.kind ?? "other",
      data: {
        testid: "waterfall-stage",
        stage: s.stage,
        "start-ms": Math.round(s.start_ms),
        "end-ms": Math.round(s.end_ms),
        source: s.source,
        detail: s.detail ?? undefined,
        kind: s.end_ms > s.start_ms ? "bar" : "point",
      },
    };
  });
  const last = Math.max(...stages.map((s) => s.end_ms));
  return (
    <WaterfallTable
      rows={rows}
      scaleMs={scaleMs}
      testId="waterfall"
      compact={compact}
      nameHeader="stage"
      data={{ stages: stages.length }}
      caption={<>Where the turn's time went, {origin ?? "from the user's message or end of speech"}: {formatWaterfallMs(last)} to the last stage</>}
    />
  );
}
