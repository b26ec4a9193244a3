/** The latency the user felt, per turn, measured in this browser (performance.now() ms).
 *
 * An exchange starts at the user's input and ends with the agent's reply:
 * - typed: the moment the message was sent;
 * - spoken: the end of the user's speech, i.e. the last moment their microphone level was above
 *   the speech threshold before their final transcript arrived (that transcript, or the agent
 *   going to `thinking`, both come later: after the VAD's silence window and the STT). Without
 *   a microphone level (no WebAudio), the final transcript's arrival is used, and said so.
 * It is answered by the first agent text (first chunk of the agent's next `lk.transcription`
 * stream) and, in a voice session, the first agent audio above the threshold; its fields are
 * complete when its `agent-turn` payload arrives.
 *
 * Exchanges are matched to `agent-turn` payloads by `turn_index`: the worker counts one turn per
 * user message answered, from 0, so the N-th exchange that got a reply is turn N. */

export type MarkSource = "sent" | "end-of-speech" | "transcript";

export interface Exchange {
  startedAt: number;
  source: MarkSource;
  turnIndex: number | null;
  firstTextAt: number | null;
  firstAudioAt: number | null;
  fieldsAt: number | null;
}

export interface TurnLatency {
  firstMs: number | null;
  firstTextMs: number | null;
  firstAudioMs: number | null;
  fieldsMs: number | null;
  source: MarkSource;
}

const open = (e: Exchange | undefined) => e !== undefined && e.turnIndex === null;

/** A user input: a new exchange, or, while the last one is still unanswered (a second message,
 * another spoken segment), the same one measured from this later input. */
export function userInput(exchanges: Exchange[], at: number, source: MarkSource): Exchange[] {
  const last = exchanges[exchanges.length - 1];
  if (open(last)) {
    return [...exchanges.slice(0, -1), { ...last, startedAt: Math.max(last.startedAt, at), source }];
  }
  const next: Exchange = { startedAt: at, source, turnIndex: null, firstTextAt: null, firstAudioAt: null, fieldsAt: null };
  return [...exchanges, next];
}

/** The first chunk of an agent text stream: answers the open exchange (the greeting and the
 * idle goodbye answer none). */
export function agentText(exchanges: Exchange[], at: number): Exchange[] {
  const last = exchanges[exchanges.length - 1];
  if (!open(last) || at < last.startedAt) return exchanges;
  const answered = exchanges.filter((e) => e.turnIndex !== null).length;
  return [...exchanges.slice(0, -1), { ...last, turnIndex: answered, firstTextAt: at }];
}

/** Agent audio rising above the threshold after silence: the first audio of the newest reply. */
export function agentAudio(exchanges: Exchange[], at: number): Exchange[] {
  const last = exchanges[exchanges.length - 1];
  if (!last || last.firstAudioAt !== null || at < last.startedAt) return exchanges;
  return [...exchanges.slice(0, -1), { ...last, firstAudioAt: at }];
}

export function fieldsComplete(exchanges: Exchange[], turnIndex: number, at: number): Exchange[] {
  return exchanges.map((e) => (e.turnIndex === turnIndex && e.fieldsAt === null ? { ...e, fieldsAt: at } : e));
}

export function latencyOf(exchanges: Exchange[], turnIndex: number, voice: boolean): TurnLatency | null {
  const e = exchanges.find((x) => x.turnIndex === turnIndex);
  if (!e) return null;
  const since = (t: number | null) => (t === null ? null : Math.max(0, Math.round(t - e.startedAt)));
  const firstTextMs = since(e.firstTextAt);
  const firstAudioMs = since(e.firstAudioAt);
  // In a voice session the user waits for the voice; in a text session for the words.
  const firstMs = voice && firstAudioMs !== null ? firstAudioMs : firstTextMs;
  return { firstMs, firstTextMs, firstAudioMs, fieldsMs: since(e.fieldsAt), source: e.source };
}

export const SOURCE_EXPLAINED: Record<MarkSource, string> = {
  sent: "from the moment you sent the message",
  "end-of-speech": "from the end of your speech (the last moment your microphone was above the speech threshold before your words were transcribed)",
  transcript: "from the arrival of your final transcript (no microphone level available, so the end of your speech is not known; the real wait was longer)",
};
