/** GET /api/v1/analytics/compare's answer (admin_api/ab_records.py, ab_statistics.py). */

/** `successes` of `n` with its Wilson 95% interval (null at n = 0). */
export interface Rate {
  value: number | null;
  successes: number;
  n: number;
  ci95: [number, number] | null;
}

/** The mean of `n` values with its Student's t 95% interval (null below 2 values). */
export interface Mean {
  mean: number | null;
  n: number;
  ci95: [number, number] | null;
}

export interface FieldValues {
  values: { value: string | boolean | null; rate: Rate }[];
  more_values?: number;
}

export interface FieldMean {
  mean: Mean;
}

export interface Group {
  agent_id: string;
  version: number | null;
  sessions: number;
  truncated: boolean;
  turns_per_session: Mean;
  escalation_rate: Rate;
  handoff_rate: Rate;
  end_reasons: { reason: string | null; rate: Rate }[];
  fields: Record<string, FieldValues | FieldMean>;
  latency_ms: Record<string, Mean>;
  tokens_per_session: { input: Mean; output: Mean };
}

export interface Comparison {
  a: Group;
  b: Group;
  since: string | null;
  until: string | null;
}

export const isMeanField = (field: FieldValues | FieldMean): field is FieldMean => "mean" in field;
