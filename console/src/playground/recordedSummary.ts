/** The summary of a session the user left, read back from its session record.
 *
 * Why: the worker ends a session on its idle timeout (180-600 s for the built-ins) or when the
 * user leaves (worker/session.py: `close_on_disconnect`); nothing else ends it, and there is no
 * topic a frontend can send to ask for the end. The summary is made at that end (livekit's
 * `on_session_end`, worker/conversation.py `conclude`) and published on `conversation-summary`
 * only to whoever is still in the room, then stored in the session record either way. So a user
 * who stays until the idle timeout receives the packet, and a user who leaves gets nothing over
 * LiveKit: for them the console reads `GET /api/v1/sessions/{id}` until the record says `ended`
 * (the same summary, written by the worker's `finish` right after). */
import { ApiError, get } from "../api";

interface SessionRecord {
  session_id: string;
  room?: string | null;
  status?: string | null;
  summary?: string | null;
  end_reason?: string | null;
}

export type RecordedSummary =
  | { found: true; summary: string | null; endReason: string | null }
  | { found: false; reason: string };

const POLL_EVERY_MS = 1500;
/** The worker finishes structured turns (<= 30 s) and makes the summary (<= 30 s) before it
 * writes the record: wait a little longer than both. */
const GIVE_UP_AFTER_MS = 75_000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (window.clearTimeout(timer), resolve()), { once: true });
  });

/** Finds the session by id (from its `agent-turn` payloads) or, before any turn, by its room
 * among the agent type's newest sessions. */
async function findRecord(sessionId: string | null, room: string, agentId: string | null): Promise<SessionRecord | null> {
  if (sessionId) return get<SessionRecord>(`sessions/${encodeURIComponent(sessionId)}`);
  const page = await get<{ items: SessionRecord[] }>("sessions", { agent_id: agentId ?? undefined, limit: 50 });
  return page.items.find((s) => s.room === room) ?? null;
}

export async function waitForRecordedSummary(
  where: { sessionId: string | null; room: string; agentId: string | null },
  signal: AbortSignal,
): Promise<RecordedSummary> {
  const deadline = performance.now() + GIVE_UP_AFTER_MS;
  while (!signal.aborted && performance.now() < deadline) {
    try {
      const record = await findRecord(where.sessionId, where.room, where.agentId);
      if (record?.status === "ended" || record?.status === "aborted") {
        return { found: true, summary: record.summary ?? null, endReason: record.end_reason ?? null };
      }
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        return { found: false, reason: "This key's role cannot read session records, so the summary of a session you leave cannot be shown here. Stay in the room until the agent ends the session (its idle timeout) to receive it live." };
      }
      if (!(error instanceof ApiError && error.status === 404)) {
        return { found: false, reason: `Reading the session record failed: ${(error as Error).message}` };
      }
    }
    await sleep(POLL_EVERY_MS, signal);
  }
  return { found: false, reason: "The session record did not say `ended` in time; open it under Sessions later." };
}
