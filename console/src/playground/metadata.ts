/** The room metadata the user types: a JSON object (`purpose`, `user_id`, `user_details`, ...),
 * as a frontend's backend would put it in the token. */

export const SAMPLE_METADATA = `{
  "purpose": "support",
  "user_details": { "tier": "premium" }
}`;

export type Metadata = Record<string, unknown>;

export type ParsedMetadata = { ok: true; value: Metadata } | { ok: false; error: string };

/** An empty box is `{}`; anything but a JSON object is an error saying what is wrong and where. */
export function parseMetadata(text: string): ParsedMetadata {
  if (!text.trim()) return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `Not valid JSON: ${(error as Error).message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    return { ok: false, error: `Metadata must be a JSON object ({...}), not ${kind}.` };
  }
  return { ok: true, value: value as Metadata };
}

/** What the room will carry: the typed metadata, plus the picked type as `agent_id` (the
 * `explicit` strategy reads it) and, for a text session, `"modality": "text"` (a voice-capable
 * type then runs the session as text: no STT/TTS, replies at once). */
export function roomMetadata(typed: Metadata, agentId: string, modality?: "text" | "voice"): Metadata {
  const metadata: Metadata = { ...typed };
  if (agentId) metadata.agent_id = agentId;
  if (modality === "text") metadata.modality = "text";
  return metadata;
}
