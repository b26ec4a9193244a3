/** The room protocol a Switchboard agent speaks (README "What the frontend gets"): the text
 * stream and data topics, and the agent participant's attributes. Shared by the console's
 * playground and the website widget (src/widget), so both read the agent the same way. */

export const TOPIC = {
  chat: "lk.chat",
  transcription: "lk.transcription",
  turn: "agent-turn",
  handoff: "agent-handoff",
  escalation: "agent-escalation",
  summary: "conversation-summary",
  waiting: "switchboard.waiting",
  end: "switchboard.end",
} as const;

export const ATTR = {
  state: "lk.agent.state",
  segment: "lk.segment_id",
  final: "lk.transcription_final",
  agentId: "switchboard.agent_id",
  strategy: "switchboard.strategy",
  catalog: "switchboard.catalog",
  unavailable: "switchboard.unavailable",
} as const;
