/** Turn schemas by agent type, from the agent types the page loaded (a hand-off brings another
 * type's schema, so each turn is read with the schema of the type that produced it). */
import type { AgentConfig } from "../types";
import type { SchemaField } from "./FieldValue";

export const SYSTEM_RESPONSE_FIELD = "system_response";

export type TurnSchemas = (agentId: string | undefined) => SchemaField[];

export function turnSchemas(configs: AgentConfig[]): TurnSchemas {
  const byId = new Map(configs.map((c) => [c.agent_id, (c.turn_schema?.fields ?? []) as SchemaField[]]));
  return (agentId) => (agentId ? byId.get(agentId) ?? [] : []);
}
