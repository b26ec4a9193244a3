/** The admin API calls the Analytics page makes (through src/api.ts: same key, same problems).
 * A viewer key may make every one of them. */
import { get } from "../api";
import type { StoredRules } from "../agents/routing/types";
import type { Comparison } from "./types";

/** `agent_id` or `agent_id@version`; `since` / `until` ISO 8601 (start time of the sessions). */
export const compareGroups = (a: string, b: string, since?: string, until?: string) =>
  get<Comparison>("analytics/compare", { a, b, since, until });

export interface Split {
  /** The strategy's place in the chain (0-based): a chain may hold more than one split. */
  position: number;
  /** A split switched off still has the sessions it routed while it was on. */
  enabled: boolean;
  variants: { agent_id: string; weight: number }[];
}

/** The A/B splits (`ab_split` strategies) of the current routing rules that name variants, in
 * chain order (the default rules carry an empty, disabled one). */
export async function listSplits(): Promise<Split[]> {
  const rules = await get<StoredRules>("routing");
  const splits: Split[] = [];
  rules.chain.forEach((entry, position) => {
    if (entry.strategy !== "ab_split") return;
    const raw = entry.params?.variants;
    const variants = (Array.isArray(raw) ? raw : [])
      .map((v) => v as { agent_id?: unknown; weight?: unknown })
      .filter((v) => typeof v.agent_id === "string")
      .map((v) => ({ agent_id: v.agent_id as string, weight: typeof v.weight === "number" ? v.weight : 1 }));
    if (variants.length > 0) splits.push({ position, enabled: entry.enabled !== false, variants });
  });
  return splits;
}

export interface VersionEntry {
  version: number;
  status: string;
  saved_at: string;
  candidate?: boolean;
}

export const listVersions = (agentId: string) =>
  get<{ items: VersionEntry[] }>(`agents/${encodeURIComponent(agentId)}/versions`).then((list) => list.items);
