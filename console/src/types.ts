/** Shapes of the admin API's resources the console reads (see /openapi.json for all fields). */

export type AgentStatus = "active" | "paused" | "archived";

export interface ModelSpec {
  provider: string;
  model?: string | null;
  base_url?: string | null;
  api_key_env?: string | null;
  [key: string]: unknown;
}

export interface TurnField {
  name: string;
  type: "string" | "int" | "number" | "bool" | "enum" | "list";
  description: string;
  required?: boolean;
  enum?: string[] | null;
  min?: number | null;
  max?: number | null;
  max_items?: number | null;
}

export interface AgentConfig {
  agent_id: string;
  name: string;
  description: string;
  purposes: string[];
  status: AgentStatus;
  instructions: string;
  greeting: string | null;
  modalities: ("voice" | "text")[];
  llm: ModelSpec;
  stt: ModelSpec | null;
  tts: ModelSpec | null;
  turn_schema: { schema_id?: string; fields: TurnField[]; [key: string]: unknown };
  version: number;
  created_at: string | null;
  updated_at: string | null;
  [key: string]: unknown;
}

export interface AgentPage {
  items: AgentConfig[];
  next_cursor: string | null;
}

export interface TrailEntry {
  strategy: string;
  outcome?: string;
  agent_id?: string | null;
  reason?: string | null;
  [key: string]: unknown;
}

export interface Resolution {
  agent_id: string | null;
  strategy: string | null;
  trail: TrailEntry[];
  warnings: string[];
  rules_version: number;
  decided_at: string;
  agent_name: string;
}

export interface RoomToken {
  server_url: string;
  token: string;
  room: string;
  identity: string;
  agent_name: string;
  expires_at: string;
}
