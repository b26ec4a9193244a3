/** What the worker records of each tool call that led to a reply (issue #12: the `agent-turn`
 * payload's and the turn record's `tool_calls`, worker/tools ToolCallRecord.as_dict), and what
 * the built-in session tools publish besides it. */

export interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
  ok: boolean;
  duration_ms: number;
  /** At most 200 characters of what went back to the model. */
  result_preview: string;
  /** "timeout after 5.0s", "HTTP 503", "refused by the egress policy: ...". */
  error?: string | null;
}

/** What a model-driven transfer carried over to the new agent type. */
export type ContextCarry = "full" | "summary" | "none";

export const CONTEXT_EXPLAINED: Record<ContextCarry, string> = {
  full: "the whole conversation",
  summary: "a summary of the conversation",
  none: "no context",
};

/** What the agent does after escalating to a human (escalate_to_human's `then`). */
export const THEN_EXPLAINED: Record<string, string> = {
  continue: "kept talking",
  hold: "stopped answering until a human takes over",
  end: "ended the session",
};

/** `agent-escalation` (room topic) and the session record's `escalations` entries. */
export interface Escalation {
  session_id?: string;
  agent_id?: string;
  reason?: string;
  then?: string;
  at?: string;
  [key: string]: unknown;
}

/** Only records with a name count: the worker may add fields, never drop these. */
export function toolCallsOf(value: unknown): ToolCall[] {
  return Array.isArray(value) ? value.filter((c): c is ToolCall => !!c && typeof c === "object" && typeof c.name === "string") : [];
}

/** One line of JSON for a row; the full, indented form when expanded. */
export function compactJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "null";
  } catch {
    return String(value);
  }
}
