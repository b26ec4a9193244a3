/** One playground session: a LiveKit room joined with a token from the admin API, and the
 * view its events build (transcript, agent state, turns, hand-offs, summary, latency).
 *
 * The protocol is the one README's "What the frontend gets" documents: `lk.chat` text in;
 * `lk.transcription` text streams out (the agent's words, and in a voice session the user's
 * own speech, sent with the user's identity); data topics `agent-turn`, `agent-handoff`,
 * `agent-escalation`, `conversation-summary`, `switchboard.waiting`; the agent participant's attributes
 * `lk.agent.state`, `switchboard.agent_id`, `switchboard.strategy`.
 *
 * How it ends: "End session" sends `switchboard.end` and stays in the room, so the worker
 * publishes `conversation-summary` to us before its agent leaves (as on its idle timeout). If
 * the agent does not leave within END_WAIT_MS, or there is no agent, the console leaves, and
 * the summary is read back from the session record (recordedSummary.ts), where the worker
 * always stores it. */
import {
  ConnectionState as LkConnectionState,
  DisconnectReason,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  RemoteAudioTrack,
  Room,
  RoomEvent,
  Track,
  type TextStreamReader,
} from "livekit-client";
import { ApiError } from "../api";
import { AgentAudio, MicrophoneLevel } from "./audio";
import { mintRoomToken, type AgentPin } from "./join";
import { agentAudio, agentText, fieldsComplete, userInput } from "./latency";
import { ATTR, TOPIC } from "./protocol";
import type { Metadata } from "./metadata";
import {
  EMPTY_VIEW,
  upsertLine,
  type AgentPresence,
  type ConnectionState,
  type EscalationPayload,
  type HandoffPayload,
  type Modality,
  type SessionView,
  type TurnPayload,
  type WaitingPayload,
} from "./model";
import { waitForRecordedSummary } from "./recordedSummary";

/** How long "End session" waits for the agent to finish the reply in progress, complete the
 * turn fields, publish the summary and leave, before the console leaves by itself. */
const END_WAIT_MS = 45_000;

/** The end of the user's speech counts only if it is this recent when their transcript lands
 * (the STT takes ~0.3-2 s on the local stack). */
const SPEECH_END_WITHIN_MS = 15_000;
/** After the agent leaves, how long a summary packet still in flight may take. */
const SUMMARY_GRACE_MS = 1500;

type Listener = () => void;

export class PlaygroundSession {
  private view: SessionView = EMPTY_VIEW;
  private readonly listeners = new Set<Listener>();
  private readonly room = new Room({ adaptiveStream: false, dynacast: false });
  private readonly agentAudio: AgentAudio;
  private microphone: MicrophoneLevel | null = null;
  private readonly closing = new AbortController();
  private typedCount = 0;
  private leaving = false;
  private ending = false;

  constructor(
    private readonly audioContext: AudioContext | null,
    audioContainer: () => HTMLElement | null,
  ) {
    this.agentAudio = new AgentAudio(audioContext, audioContainer, (at) =>
      this.update((v) => ({ ...v, exchanges: agentAudio(v.exchanges, at) })),
    );
  }

  // -- the store React reads (useSyncExternalStore) --------------------------------------

  getView = (): SessionView => this.view;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private update(change: (view: SessionView) => SessionView) {
    this.view = change(this.view);
    for (const listener of this.listeners) listener();
  }

  /** Agent audio level for the meter (0..1) and the highest peak played so far. */
  agentLevel = () => this.agentAudio.reading();
  microphoneLevel = () => this.microphone?.reading() ?? null;

  // -- actions ---------------------------------------------------------------------------

  async join(metadata: Metadata, pin: AgentPin | null, modality: Modality): Promise<void> {
    this.update((v) => ({ ...v, connection: "connecting", modality, error: null }));
    this.listen();
    try {
      const { token, pinned } = await mintRoomToken(metadata, pin);
      this.update((v) => ({ ...v, room: token.room, identity: token.identity, pinned }));
      await this.room.connect(token.server_url, token.token);
      for (const participant of this.room.remoteParticipants.values()) this.participantArrived(participant);
      await this.room.startAudio().catch(() => undefined); // the Join click was the user gesture
      if (modality === "voice") await this.enableMicrophone();
    } catch (error) {
      const message =
        error instanceof ApiError ? describeApiError(error) : `Could not join the room: ${(error as Error).message}`;
      this.leaving = true; // not an ended session: it never started
      this.stopMedia();
      await this.room.disconnect().catch(() => undefined);
      this.update((v) => ({ ...v, connection: "disconnected", error: message }));
    }
  }

  async sendChat(text: string): Promise<void> {
    const at = performance.now();
    const key = `typed-${this.typedCount++}`;
    this.update((v) => ({
      ...v,
      transcript: [...v.transcript, { key, role: "user", text, final: true, via: "typed" }],
      exchanges: userInput(v.exchanges, at, "sent"),
    }));
    try {
      await this.room.localParticipant.sendText(text, { topic: TOPIC.chat });
    } catch (error) {
      this.update((v) => ({ ...v, error: `The message was not sent: ${(error as Error).message}` }));
    }
  }

  async setMuted(muted: boolean): Promise<void> {
    await this.room.localParticipant.setMicrophoneEnabled(!muted);
    this.update((v) => ({ ...v, muted }));
  }

  /** Ask the agent to end the session while we stay: the summary then arrives over the room
   * and participantLeft() finishes. Falls back to leave() without an agent or an answer. */
  async end(): Promise<void> {
    if (this.leaving || this.ending) return;
    const agentHere = [...this.room.remoteParticipants.values()].some((p) => p.isAgent);
    if (!agentHere) return this.leave();
    this.ending = true;
    this.update((v) => ({
      ...v,
      summary: v.summary.status === "none" ? { status: "waiting", note: "Asked the agent to end the session; waiting for its summary…" } : v.summary,
    }));
    try {
      await this.room.localParticipant.publishData(new TextEncoder().encode("{}"), { reliable: true, topic: TOPIC.end });
    } catch {
      return this.leave();
    }
    await sleep(END_WAIT_MS);
    if (!this.leaving) await this.leave();
  }

  /** Leave the room; the worker then ends the session and records its summary, which is read
   * back from the session record unless it already arrived over the room. */
  async leave(): Promise<void> {
    if (this.leaving) return;
    this.leaving = true;
    const needsSummary = this.view.summary.status === "none";
    if (needsSummary) {
      this.update((v) => ({
        ...v,
        summary: { status: "waiting", note: "The worker summarizes the conversation once the session ends; reading it from the session record…" },
      }));
    }
    this.stopMedia();
    await this.room.disconnect();
    this.markEnded("You left the session.");
    if (needsSummary) await this.fetchRecordedSummary();
  }

  /** The page goes away: stop everything, keep nothing running. */
  dispose() {
    this.closing.abort();
    this.stopMedia();
    void this.room.disconnect();
    this.listeners.clear();
  }

  // -- room events -----------------------------------------------------------------------

  private listen() {
    const room = this.room;
    room.registerTextStreamHandler(TOPIC.transcription, (reader, from) => void this.readTranscription(reader, from.identity));
    room
      .on(RoomEvent.ConnectionStateChanged, (state) => this.update((v) => ({ ...v, connection: connectionState(state) })))
      .on(RoomEvent.Disconnected, (reason) => this.roomDisconnected(reason))
      .on(RoomEvent.ParticipantConnected, (p) => this.participantArrived(p))
      .on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => this.participantChanged(p))
      .on(RoomEvent.ParticipantDisconnected, (p) => void this.participantLeft(p))
      .on(RoomEvent.TrackSubscribed, (track) => this.trackSubscribed(track))
      .on(RoomEvent.TrackUnsubscribed, (track) => track instanceof RemoteAudioTrack && this.agentAudio.detach(track))
      .on(RoomEvent.DataReceived, (payload, _p, _kind, topic) => this.dataReceived(payload, topic));
  }

  /** One `lk.transcription` stream: a segment of the agent's words (chunks appended as they
   * come: its first chunk is the "first agent text" of the latency), or a version of the user's
   * transcribed speech (each stream the whole segment so far; interim ones replaced by the
   * final one, matched by `lk.segment_id`). */
  private async readTranscription(reader: TextStreamReader, identity: string) {
    const attributes = reader.info.attributes ?? {};
    const key = attributes[ATTR.segment] ?? reader.info.id;
    const role = identity === this.view.identity ? "user" : "agent";
    if (role === "user") {
      let text: string;
      try {
        text = await reader.readAll();
      } catch {
        return; // the room went away mid-stream: an interim version lost, nothing else
      }
      const final = (reader.info.attributes ?? {})[ATTR.final] === "true";
      this.update((v) => ({
        ...v,
        transcript: upsertLine(v.transcript, { key, role, text, final, via: "spoken" }),
        exchanges: final ? userInput(v.exchanges, this.endOfSpeech(), this.microphoneHeard() ? "end-of-speech" : "transcript") : v.exchanges,
      }));
      return;
    }
    const previous = this.view.transcript.find((l) => l.key === key);
    let text = "";
    let first = true;
    try {
      for await (const chunk of reader) {
        if (!chunk) continue;
        text += chunk;
        const at = performance.now();
        const answered = first && !previous;
        first = false;
        this.update((v) => ({
          ...v,
          transcript: upsertLine(v.transcript, { key, role, text, final: false, via: "agent" }),
          exchanges: answered ? agentText(v.exchanges, at) : v.exchanges,
        }));
      }
    } catch {
      // an aborted stream (the agent was interrupted): what arrived stands
    }
    // The closing trailer carries `lk.transcription_final`; a stream that ended without it is
    // complete all the same.
    const final = (reader.info.attributes ?? {})[ATTR.final] !== "false";
    this.update((v) => ({ ...v, transcript: upsertLine(v.transcript, { key, role, text, final, via: "agent" }) }));
  }

  private dataReceived(payload: Uint8Array, topic: string | undefined) {
    let message: unknown;
    try {
      message = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return; // not ours: every Switchboard topic is JSON
    }
    if (!message || typeof message !== "object") return;
    const at = performance.now();
    switch (topic) {
      case TOPIC.turn: {
        const turn = message as TurnPayload;
        this.update((v) => ({
          ...v,
          sessionId: v.sessionId ?? turn.session_id ?? null,
          timeline: [...v.timeline, { kind: "turn", key: `turn-${turn.turn_index}-${v.timeline.length}`, turn }],
          exchanges: fieldsComplete(v.exchanges, turn.turn_index, at),
        }));
        break;
      }
      case TOPIC.handoff: {
        const handoff = message as HandoffPayload;
        this.update((v) => ({
          ...v,
          sessionId: v.sessionId ?? handoff.session_id ?? null,
          timeline: [...v.timeline, { kind: "handoff", key: `handoff-${v.timeline.length}`, handoff }],
          transcriptMarkers: [...v.transcriptMarkers, { beforeLine: v.transcript.length, handoff }],
        }));
        break;
      }
      case TOPIC.escalation: {
        const escalation = message as EscalationPayload;
        this.update((v) => ({
          ...v,
          sessionId: v.sessionId ?? escalation.session_id ?? null,
          timeline: [...v.timeline, { kind: "escalation", key: `escalation-${v.timeline.length}`, escalation }],
        }));
        break;
      }
      case TOPIC.summary: {
        const { summary, session_id } = message as { summary?: string; session_id?: string };
        if (typeof summary === "string") {
          this.update((v) => ({
            ...v,
            sessionId: v.sessionId ?? session_id ?? null,
            summary: { status: "shown", text: summary, from: "room" },
          }));
        }
        break;
      }
      case TOPIC.waiting:
        this.update((v) => ({ ...v, waiting: v.agent ? null : (message as WaitingPayload) }));
        break;
    }
  }

  private participantArrived(participant: RemoteParticipant) {
    if (!participant.isAgent) return;
    this.update((v) => ({ ...v, agent: presence(participant), waiting: null }));
  }

  private participantChanged(participant: Participant) {
    if (!participant.isAgent || participant === this.room.localParticipant) return;
    this.update((v) => ({ ...v, agent: presence(participant) }));
  }

  /** The agent left: its idle timeout ended the session (after publishing the summary), or it
   * was lost (worker/conversation.py: ~23 s after a crash). Nothing more can happen in this
   * room, so the console leaves it too and keeps what it showed. */
  private async participantLeft(participant: RemoteParticipant) {
    if (!participant.isAgent || this.leaving) return;
    this.leaving = true;
    await sleep(SUMMARY_GRACE_MS);
    const gotSummary = this.view.summary.status === "shown";
    if (!gotSummary) {
      this.update((v) => ({ ...v, summary: { status: "waiting", note: "The agent left without a summary in the room; reading the session record…" } }));
    }
    this.stopMedia();
    await this.room.disconnect();
    this.markEnded("The agent ended the session.");
    if (!gotSummary) await this.fetchRecordedSummary();
  }

  private roomDisconnected(reason?: DisconnectReason) {
    this.stopMedia();
    if (!this.leaving) {
      const why = reason === undefined ? "" : ` (${DisconnectReason[reason] ?? reason})`;
      this.markEnded(`Disconnected from the room${why}.`);
    }
  }

  private trackSubscribed(track: RemoteTrack) {
    if (track.kind === Track.Kind.Audio && track instanceof RemoteAudioTrack) this.agentAudio.attach(track);
  }

  // -- helpers ---------------------------------------------------------------------------

  private async enableMicrophone() {
    const publication = await this.room.localParticipant.setMicrophoneEnabled(true);
    const track = publication?.track?.mediaStreamTrack;
    if (track && this.audioContext) {
      try {
        this.microphone = new MicrophoneLevel(this.audioContext, track);
      } catch {
        this.microphone = null; // latency falls back to the transcript's arrival
      }
    }
  }

  private microphoneHeard(): boolean {
    return this.microphone?.lastVoiceAt(SPEECH_END_WITHIN_MS) != null;
  }

  private endOfSpeech(): number {
    return this.microphone?.lastVoiceAt(SPEECH_END_WITHIN_MS) ?? performance.now();
  }

  private async fetchRecordedSummary() {
    const { sessionId, room, agent } = this.view;
    if (!room) return;
    const result = await waitForRecordedSummary({ sessionId, room, agentId: agent?.agentId ?? null }, this.closing.signal);
    if (this.closing.signal.aborted) return;
    this.update((v) => {
      if (v.summary.status === "shown") return v;
      if (!result.found) return { ...v, summary: { status: "missing", note: result.reason } };
      if (result.summary === null) {
        return { ...v, summary: { status: "missing", note: "The session ended without a summary (this type has summary.enabled: false, or the summary call failed)." } };
      }
      return { ...v, summary: { status: "shown", text: result.summary, from: "record" } };
    });
  }

  private markEnded(reason: string) {
    this.update((v) => ({ ...v, ended: v.ended ?? reason, connection: "disconnected" }));
  }

  private stopMedia() {
    this.microphone?.dispose();
    this.microphone = null;
    this.agentAudio.dispose();
  }
}

function presence(participant: Participant): AgentPresence {
  const a = participant.attributes ?? {};
  return {
    identity: participant.identity,
    state: a[ATTR.state] ?? "initializing",
    agentId: a[ATTR.agentId] ?? null,
    strategy: a[ATTR.strategy] ?? null,
    catalog: a[ATTR.catalog] ?? null,
    unavailable: a[ATTR.unavailable] ?? null,
  };
}

function connectionState(state: LkConnectionState): ConnectionState {
  switch (state) {
    case LkConnectionState.Connected:
      return "connected";
    case LkConnectionState.Disconnected:
      return "disconnected";
    default:
      return "connecting"; // connecting, reconnecting, signal reconnecting
  }
}

function describeApiError(error: ApiError): string {
  const fields = (error.problem.errors ?? []).map((e) => `${e.field}: ${e.message}`);
  return [error.message, ...fields].join(" · ");
}

const sleep = (ms: number) => new Promise((resolve) => window.setTimeout(resolve, ms));
