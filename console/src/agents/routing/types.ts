/** The routing rules as the API serves them (GET /routing) and a resolve's answer. */
import type { Json } from "../definition";

export interface ChainEntry {
  strategy: string;
  params?: { [key: string]: Json };
  enabled?: boolean;
}

export interface StoredRules {
  chain: ChainEntry[];
  version: number;
  updated_at: string | null;
}

export interface TrailStep {
  strategy: string;
  agent_id: string | null;
  outcome: "chosen" | "skipped" | "no_proposal" | "error";
  reason: string;
}

export interface Resolution {
  agent_id: string | null;
  strategy: string | null;
  trail: TrailStep[];
  warnings: string[];
  rules_version: number;
  agent_name: string;
  /** What the chosen strategy added for the type's {placeholders} (a webhook's answer); the
   * API withholds values that look like secrets. */
  variables: { [key: string]: Json };
}

export const OUTCOME_LABELS: Record<TrailStep["outcome"], string> = {
  chosen: "chosen",
  skipped: "skipped",
  no_proposal: "no proposal",
  error: "error",
};

export const OUTCOME_CHIPS: Record<TrailStep["outcome"], string> = {
  chosen: "chip ok",
  skipped: "chip warn",
  no_proposal: "chip neutral",
  error: "chip bad",
};
