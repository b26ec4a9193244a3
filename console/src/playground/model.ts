/** What the playground shows of one session: the view the room's events build up. Pure
 * data, no LiveKit objects, so it survives the room (the transcript, turns and summary stay on
 * screen after the session ends). */
import type { ContextCarry, Escalation, ToolCall } from "../components/toolCalls";
import type { Exchange } from "./latency";
import type { WaterfallStage } from "../components/TurnWaterfall";

export type ConnectionState = "disconnected" | "connecting" | "connected";
export type Modality = "text" | "voice";
export type Role = "user" | "agent";

export interface TranscriptLine {
  key: string;
  role: Role;
  text: string;
  final: boolean;
  /** typed: an `lk.chat` message sent from here; spoken: the user's transcribed speech. */
  via: "typed" | "spoken" | "agent";
}

/** `agent-turn`: one per answered user message, after its reply (README "What the frontend gets"). */
export interface TurnPayload {
  session_id?: string;
  agent_id?: string;
  turn_index: number;
  fields: Record<string, unknown>;
  status?: "ok" | "failed";
  error_kind?: string;
  user_text_truncated?: boolean;
  /** Server-side latency marks, when the worker sends them. */
  latency_ms?: Record<string, unknown>;
  /** Where the worker's clock started: typed | end_of_speech | transcript. */
  latency_from?: string;
  /** The tool calls that led to this reply, in order (empty when none). */
  tool_calls?: ToolCall[];
  /** Every stage of the turn, ms from its origin (components/TurnWaterfall.tsx). */
  waterfall?: WaterfallStage[];
}

/** `agent-handoff`: the session went to another type, by a keyword intent (`strategy:
 * "intent"`, with `match`) or by the model calling its transfer tool (`strategy:
 * "transfer_to_agent"`, with its `reason` and what `context` carried over). */
export interface HandoffPayload {
  session_id?: string;
  from_agent_id: string;
  to_agent_id: string;
  strategy?: string;
  match?: Record<string, unknown>;
  reason?: string;
  context?: ContextCarry;
  at?: string;
}

/** `agent-escalation`: the agent asked for a human (escalate_to_human), and what it does next. */
export type EscalationPayload = Escalation;

/** `switchboard.waiting`: the admin API re-dispatches a room no worker took. */
export interface WaitingPayload {
  state: string;
  waited_s?: number;
  attempt?: number;
  next_attempt_in_s?: number;
}

export type TimelineItem =
  | { kind: "turn"; key: string; turn: TurnPayload }
  | { kind: "handoff"; key: string; handoff: HandoffPayload }
  | { kind: "escalation"; key: string; escalation: EscalationPayload };

export interface AgentPresence {
  identity: string;
  /** `lk.agent.state`: initializing | listening | thinking | speaking. */
  state: string;
  agentId: string | null;
  strategy: string | null;
  /** `switchboard.catalog: last-known`: served from the snapshot while MongoDB is down. */
  catalog: string | null;
  /** `switchboard.unavailable`: the worker could not take the room, and why. */
  unavailable: string | null;
}

export type SummaryState =
  | { status: "none" }
  | { status: "waiting"; note: string }
  | { status: "shown"; text: string; from: "room" | "record" }
  | { status: "missing"; note: string };

export interface SessionView {
  connection: ConnectionState;
  modality: Modality | null;
  room: string | null;
  identity: string | null;
  /** The token carried the `agent` pin (exact type and version). */
  pinned: boolean;
  agent: AgentPresence | null;
  /** How the session ended, once it has: kept on screen with everything it showed. */
  ended: string | null;
  transcript: TranscriptLine[];
  /** Hand-offs as dividers in the transcript: before the line at `beforeLine`. */
  transcriptMarkers: { beforeLine: number; handoff: HandoffPayload }[];
  timeline: TimelineItem[];
  exchanges: Exchange[];
  sessionId: string | null;
  summary: SummaryState;
  waiting: WaitingPayload | null;
  muted: boolean;
  error: string | null;
}

export const EMPTY_VIEW: SessionView = {
  connection: "disconnected",
  modality: null,
  room: null,
  identity: null,
  pinned: false,
  agent: null,
  ended: null,
  transcript: [],
  transcriptMarkers: [],
  timeline: [],
  exchanges: [],
  sessionId: null,
  summary: { status: "none" },
  waiting: null,
  muted: false,
  error: null,
};

/** Adds or updates the line of one transcript segment (interim versions share `key`). */
export function upsertLine(lines: TranscriptLine[], line: TranscriptLine): TranscriptLine[] {
  const index = lines.findIndex((l) => l.key === line.key);
  if (index < 0) return [...lines, line];
  const copy = lines.slice();
  copy[index] = line;
  return copy;
}
