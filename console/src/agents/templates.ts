/** Starting points for a new agent type: a minimal text agent, a voice agent on the local
 * models, or a copy of an existing type (its whole definition under a new id and name). */
import type { AgentConfig } from "../types";
import { definitionOf, type Definition } from "./definition";

export interface Template {
  id: string;
  label: string;
  description: string;
  definition: (agentId: string, name: string) => Definition;
}

const REPLY_FIELD = { name: "system_response", type: "string", description: "What the agent says to the user in this turn." };

const base = (agentId: string, name: string): Definition => ({
  agent_id: agentId,
  name,
  description: "",
  purposes: [],
  instructions:
    "You are a helpful assistant. Keep every reply short: two or three sentences in plain words. " +
    "If you do not know something, say so.",
  greeting: "Hi! How can I help you today?",
  llm: { provider: "local", model: "smollm2-135m-instruct", temperature: 0.4, max_tokens: 256 },
  turn_schema: {
    schema_id: `${agentId.replace(/[^a-z0-9]+/g, "_")}_turn_v1`,
    fields: [
      REPLY_FIELD,
      { name: "sentiment", type: "enum", enum: ["positive", "neutral", "negative"], description: "The user's mood in their last message." },
    ],
  },
  summary: { enabled: true },
});

export const BUILT_IN_TEMPLATES: Template[] = [
  {
    id: "text",
    label: "Text agent",
    description: "Chat only, on the local model, with a reply and a sentiment field.",
    definition: (agentId, name) => ({ ...base(agentId, name), modalities: ["text"] }),
  },
  {
    id: "voice",
    label: "Voice and text agent",
    description: "Local speech-to-text (whisper tiny.en) and text-to-speech (espeak-ng).",
    definition: (agentId, name) => ({
      ...base(agentId, name),
      modalities: ["voice", "text"],
      stt: { provider: "local", model: "tiny.en", language: "en" },
      tts: { provider: "local", model: "espeak-ng", voice: "en-us", language: "en" },
    }),
  },
];

export function copyOf(config: AgentConfig): Template {
  return {
    id: `copy:${config.agent_id}`,
    label: `Copy of ${config.name}`,
    description: `Everything ${config.agent_id} has: instructions, models, turn schema, limits.`,
    definition: (agentId, name) => ({ ...definitionOf(config), agent_id: agentId, name }),
  };
}

/** `Billing helper` -> `billing-helper`: a valid agent id (lowercase, digits, - or _). */
export function slugOf(name: string): string {
  return name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
}
