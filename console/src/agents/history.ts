/** Who changed an agent type, from the audit trail (`GET /api/v1/events?agent_id=`): the
 * actor and event behind each version, for the versions list and the conflict panel. */
import { get } from "../api";

export interface AuditEvent {
  id: string;
  type: string;
  at: string;
  actor: string;
  agent_id?: string | null;
  version?: number | null;
  details: Record<string, unknown>;
}

/** The newest 200 agent events (the API's page limit): enough for the versions in view. */
export async function agentEvents(agentId: string): Promise<AuditEvent[]> {
  const page = await get<{ items: AuditEvent[] }>("events", { agent_id: agentId, limit: 200 });
  return page.items.filter((e) => e.type.startsWith("agent."));
}

/** version -> the event that produced it. */
export function eventsByVersion(events: AuditEvent[]): Map<number, AuditEvent> {
  const byVersion = new Map<number, AuditEvent>();
  for (const event of events) {
    if (event.version != null && !byVersion.has(event.version)) byVersion.set(event.version, event);
  }
  return byVersion;
}

const VERBS: Record<string, string> = {
  "agent.created": "created",
  "agent.updated": "saved",
  "agent.paused": "paused",
  "agent.resumed": "resumed",
  "agent.archived": "archived",
  "agent.rolled_back": "rolled back",
  "agent.activated": "activated",
  "agent.gate_overridden": "release gate overridden",
};

export function describeEvent(event: AuditEvent): string {
  const verb = VERBS[event.type] ?? event.type;
  const restored = event.details?.restored_version;
  return restored != null ? `${verb} to v${restored}` : verb;
}
