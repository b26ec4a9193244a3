/** The agent types the playground offers, their versions and which model each runs on. */
import { get } from "../api";
import type { AgentConfig, AgentPage, ModelSpec } from "../types";

export interface VersionEntry {
  version: number;
  status: string;
  saved_at: string;
}

const path = (agentId: string, ...rest: (string | number)[]) =>
  ["agents", encodeURIComponent(agentId), ...rest.map(String)].join("/");

/** Every agent type, all pages (ordered by agent_id). */
export async function listAgentTypes(): Promise<AgentConfig[]> {
  const all: AgentConfig[] = [];
  let cursor: string | null = null;
  do {
    const page: AgentPage = await get<AgentPage>("agents", { limit: 200, cursor });
    all.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

export const listVersions = (agentId: string) =>
  get<{ agent_id: string; items: VersionEntry[] }>(path(agentId, "versions")).then((r) => r.items);

export const agentType = (agentId: string) => get<AgentConfig>(path(agentId));

export const agentVersion = (agentId: string, version: number) =>
  get<AgentConfig>(path(agentId, "versions", version));

export const supportsVoice = (config: AgentConfig | null | undefined) =>
  !config || (config.modalities ?? []).includes("voice");

/** The model a type's replies come from, in words. `local` is the operator's endpoint
 * (`LOCAL_LLM_URL` / `LOCAL_LLM_MODEL`): the embedded SmolLM2-135M unless they pointed it
 * elsewhere, which the console cannot see, so the notice says both. */
export interface ModelDescription {
  provider: string;
  model: string;
  embedded: boolean;
  baseUrl: string | null;
  fallbacks: string[];
}

export function describeModel(llm: ModelSpec | null | undefined): ModelDescription | null {
  if (!llm) return null;
  const provider = String(llm.provider ?? "unknown");
  const model = llm.model ? String(llm.model) : provider === "local" ? "smollm2-135m-instruct" : "(provider default)";
  const fallbacks = Array.isArray(llm.fallback)
    ? (llm.fallback as ModelSpec[]).map((f) => `${f.provider}${f.model ? ` / ${f.model}` : ""}`)
    : [];
  const baseUrl = llm.base_url ? String(llm.base_url) : null;
  return { provider, model, embedded: provider === "local" && !baseUrl, baseUrl, fallbacks };
}
