/** The admin API's session, turn, stats and event shapes, as the Sessions pages read them
 * (admin_api/session_records.py, admin_api/stats.py, admin_api/events.py). The worker may add
 * fields at any time: every record keeps an index signature so they pass through. */
import type { ContextCarry, Escalation, ToolCall } from "../components/toolCalls";
import type { TrailEntry } from "../types";
import type { WaterfallStage } from "../components/TurnWaterfall";

export interface SessionUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  [key: string]: unknown;
}

export interface SessionRouting {
  agent_id?: string | null;
  strategy?: string | null;
  trail?: TrailEntry[];
  warnings?: string[];
  rules_version?: number;
  decided_at?: string;
  metadata_source?: string | null;
  [key: string]: unknown;
}

export interface SessionSummary {
  session_id: string;
  status: string | null;
  room: string | null;
  agent_id: string | null;
  agent_version: number | null;
  user_id: string | null;
  started_at: string | null;
  ended_at: string | null;
  end_reason: string | null;
  /** With `end_reason: agent_ended`: the reason the agent's end_session tool gave. */
  end_detail?: string | null;
  /** Why a refused session was refused. */
  reason: string | null;
  turn_count: number | null;
  routing: SessionRouting | null;
  summary: string | null;
  usage: SessionUsage | null;
  /** The channel binding the session came in by (Telegram, widget, HTTP, AMQP); null for a
   * LiveKit client of its own. */
  channel?: SessionChannel | null;
  [key: string]: unknown;
}

export interface SessionChannel {
  kind: string;
  binding_id: string;
  conversation_id: string | null;
}

export interface TranscriptLine {
  role: "user" | "assistant" | string;
  text: string;
  [key: string]: unknown;
}

/** Server-side latency marks of one turn, in ms from the user's message / end of speech. */
export interface TurnLatency {
  first_text?: number | null;
  first_audio?: number | null;
  fields?: number | null;
  [key: string]: unknown;
}

export interface SessionTurn {
  turn_index: number;
  /** `replied` (fields still being filled), `ok`, or `failed`. */
  status: string | null;
  fields: Record<string, unknown> | null;
  user_text: string | null;
  reply?: string | null;
  schema_id: string | null;
  agent_id: string | null;
  error: string | null;
  error_kind?: string | null;
  attempts: number | null;
  created_at: string | null;
  filled_at?: string | null;
  user_text_truncated?: boolean;
  user_text_original_chars?: number | null;
  latency_ms?: TurnLatency | null;
  /** Where the latency clock started (worker/latency.py). */
  latency_from?: "typed" | "end_of_speech" | "transcript" | string | null;
  /** The tool calls that led to the reply, in order (absent on turns recorded before tools). */
  tool_calls?: ToolCall[] | null;
  /** Every stage of the turn, ms from its origin (components/TurnWaterfall.tsx). */
  waterfall?: WaterfallStage[] | null;
  [key: string]: unknown;
}

/** A hand-off during the session: `strategy` is `intent` (a keyword intent, `match` says which)
 * or `transfer_to_agent` (the model's transfer tool, with its `reason` and `context`). */
export interface Handoff {
  from_agent_id?: string;
  to_agent_id?: string;
  strategy?: string;
  match?: Record<string, unknown>;
  reason?: string | null;
  context?: ContextCarry | null;
  at?: string;
  [key: string]: unknown;
}

export type SessionEscalation = Escalation;

/** What the session used (the worker's count, README "Sessions"): per model, and the speech and
 * tool counters. */
export interface SessionCost {
  llm?: { model: string; input_tokens: number; output_tokens: number; requests: number }[];
  stt_audio_s?: number;
  tts_characters?: number;
  tool_calls?: number;
  [key: string]: unknown;
}

/** GET /sessions/{id}/trace: the session's spans, from the trace backend. */
export interface TraceSpan {
  span_id: string;
  parent_span_id: string | null;
  name: string;
  service: string;
  /** From the trace's first span. */
  start_ms: number;
  duration_ms: number;
  attributes: Record<string, string | number | boolean>;
  error: boolean;
}

export interface SessionTrace {
  trace_id: string;
  spans: TraceSpan[];
}

export interface SessionDetail extends SessionSummary {
  transcript: TranscriptLine[];
  transcript_dropped?: number;
  handoffs: Handoff[];
  /** Each time an agent asked for a human (escalate_to_human), oldest first. */
  escalations?: SessionEscalation[] | null;
  turns: SessionTurn[];
  cost?: SessionCost | null;
  /** The session's OpenTelemetry trace (set by the worker at the start, when tracing is on). */
  trace_id?: string | null;
}

export interface SessionPage {
  items: SessionSummary[];
  next_cursor: string | null;
}

export interface EnumFieldStats {
  type: "enum";
  counts: Record<string, number>;
  count: number;
}

export interface BoolFieldStats {
  type: "bool";
  counts: Record<string, number>;
  count: number;
  true_rate: number | null;
}

export interface NumericFieldStats {
  type: "int" | "number";
  mean: number | null;
  count: number;
}

export type FieldStats = EnumFieldStats | BoolFieldStats | NumericFieldStats;

export interface AgentStatsResponse {
  agent_id: string;
  from: string | null;
  to: string | null;
  sessions: { total: number; by_status: Record<string, number>; ended: number; average_duration_s: number | null };
  turns: { total: number; by_status: Record<string, number> };
  fields: Record<string, FieldStats>;
}

export interface AuditEvent {
  id: string;
  type: string;
  at: string;
  actor: string;
  agent_id: string | null;
  session_id: string | null;
  room: string | null;
  version: number | null;
  details: Record<string, unknown>;
}

export interface EventPage {
  items: AuditEvent[];
  next_cursor: string | null;
}

/** A turn schema field as agent_configs/models.py's TurnField defines it (what the stats and
 * turn views need: its type, allowed values and bounds). */
export interface SchemaField {
  name: string;
  type: "string" | "int" | "number" | "bool" | "enum" | "list" | string;
  description?: string;
  enum?: string[] | null;
  min?: number | null;
  max?: number | null;
}
