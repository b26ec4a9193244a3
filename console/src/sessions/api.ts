/** The admin API calls the Sessions pages make (all through src/api.ts: same key, same
 * problem handling). A viewer key may make every one of them. */
import { get } from "../api";
import type { AgentPage } from "../types";
import type { AgentStatsResponse, EventPage, SessionDetail, SessionPage, SessionTrace } from "./types";

export interface SessionFilter {
  agent_id?: string;
  status?: string;
  user_id?: string;
  /** The LiveKit room's name: a room's sessions, newest first. */
  room?: string;
  /** A channel binding's id: the sessions that came in by it. */
  channel?: string;
  /** ISO 8601, inclusive. */
  from?: string;
  /** ISO 8601, exclusive. */
  to?: string;
}

export const listSessions = (filter: SessionFilter, cursor?: string | null, limit = 50) =>
  get<SessionPage>("sessions", { ...filter, cursor, limit });

export const getSession = (sessionId: string) => get<SessionDetail>(`sessions/${encodeURIComponent(sessionId)}`);

/** 404: no such session, or its trace is not in the backend (yet); 503: no trace backend. */
export const getSessionTrace = (sessionId: string) => get<SessionTrace>(`sessions/${encodeURIComponent(sessionId)}/trace`);

export const listSessionEvents = (sessionId: string) =>
  get<EventPage>("events", { session_id: sessionId, limit: 200 });

export const getAgentStats = (agentId: string, range: { from?: string; to?: string } = {}) =>
  get<AgentStatsResponse>(`agents/${encodeURIComponent(agentId)}/stats`, range);

/** Every agent type, archived included (old sessions name them), for the filter's options. */
export async function listAllAgents(): Promise<AgentPage["items"]> {
  const agents: AgentPage["items"] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 20; page++) {
    // no `status` filter: every status, archived included
    const body: AgentPage = await get<AgentPage>("agents", { cursor, limit: 200 });
    agents.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return agents;
}
