/** One visitor's conversation: a LiveKit room joined with a token the admin API minted for
 * the page's publishable key, the agent's words and state as they arrive, typed messages out
 * (`lk.chat`), and in voice the microphone in and the agent's audio out.
 *
 * The chat starts as text (the worker then runs a text session: no speech to pay for, replies
 * at once). The microphone button moves it to voice: a voice token, a new room, the transcript
 * kept on screen; after that the button mutes and unmutes. */
import {
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  RemoteAudioTrack,
  Room,
  RoomEvent,
  Track,
  type TextStreamReader,
} from "livekit-client";
import { upsertLine, type TranscriptLine } from "../playground/model";
import { ATTR, TOPIC } from "../playground/protocol";
import type { WidgetConfig } from "./config";
import { fetchToken, TokenRefused, type Modality } from "./token";

export type Phase = "idle" | "connecting" | "connected" | "ended";

export interface ChatView {
  phase: Phase;
  modality: Modality;
  /** lk.agent.state of the agent participant, null before it joins. */
  agentState: string | null;
  transcript: TranscriptLine[];
  microphone: "off" | "on" | "muted";
  error: string | null;
}

const INITIAL: ChatView = { phase: "idle", modality: "text", agentState: null, transcript: [], microphone: "off", error: null };

export class WidgetChat {
  view: ChatView = INITIAL;
  private room: Room | null = null;
  private identity: string | null = null;
  private typed = 0;

  constructor(
    private readonly config: WidgetConfig,
    private readonly onChange: (view: ChatView) => void,
    private readonly audioContainer: () => Node,
  ) {}

  private update(change: Partial<ChatView> | ((view: ChatView) => Partial<ChatView>)) {
    const patch = typeof change === "function" ? change(this.view) : change;
    this.view = { ...this.view, ...patch };
    this.onChange(this.view);
  }

  /** Join once (opening the panel again keeps the conversation). */
  async start(modality: Modality): Promise<void> {
    if (this.view.phase === "connecting" || this.view.phase === "connected") return;
    this.update({ phase: "connecting", modality, error: null, agentState: null });
    const room = new Room({ adaptiveStream: false, dynacast: false });
    this.room = room;
    this.listen(room);
    try {
      const token = await fetchToken(this.config, modality);
      this.identity = token.identity;
      await room.connect(token.server_url, token.token);
      if (this.room !== room) return; // replaced meanwhile
      for (const participant of room.remoteParticipants.values()) this.participantChanged(participant);
      this.update({ phase: "connected" });
      await room.startAudio().catch(() => undefined);
      if (modality === "voice") {
        await room.localParticipant.setMicrophoneEnabled(true);
        this.update({ microphone: "on" });
      }
    } catch (error) {
      const message =
        error instanceof TokenRefused
          ? error.message
          : isMicrophoneRefusal(error)
            ? "The microphone is not available: allow it in the browser, or type instead."
            : "Could not connect to the chat. Try again in a moment.";
      if (this.room === room) this.room = null;
      await room.disconnect().catch(() => undefined);
      this.update({ phase: "idle", error: message, microphone: "off" });
    }
  }

  async send(text: string): Promise<void> {
    const room = this.room;
    if (!room || this.view.phase !== "connected") return;
    const key = `typed-${this.typed++}`;
    this.update((v) => ({ transcript: [...v.transcript, { key, role: "user", text, final: true, via: "typed" }], error: null }));
    try {
      await room.localParticipant.sendText(text, { topic: TOPIC.chat });
    } catch {
      this.update({ error: "The message was not sent. Try again." });
    }
  }

  /** Off -> a voice conversation (a new room); on <-> muted afterwards. */
  async toggleMicrophone(): Promise<void> {
    if (this.view.modality === "text" || !this.room) {
      await this.leave();
      await this.start("voice");
      return;
    }
    const enable = this.view.microphone !== "on";
    try {
      await this.room.localParticipant.setMicrophoneEnabled(enable);
      this.update({ microphone: enable ? "on" : "muted", error: null });
    } catch (error) {
      this.update({ error: isMicrophoneRefusal(error) ? "The microphone is not available: allow it in the browser." : "The microphone could not be changed." });
    }
  }

  async leave(): Promise<void> {
    const room = this.room;
    this.room = null;
    if (room) await room.disconnect().catch(() => undefined);
    this.update({ phase: "idle", agentState: null, microphone: "off" });
  }

  private listen(room: Room) {
    room.registerTextStreamHandler(TOPIC.transcription, (reader, from) => void this.readTranscription(room, reader, from.identity));
    room
      .on(RoomEvent.ParticipantConnected, (p) => this.participantChanged(p))
      .on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => this.participantChanged(p))
      .on(RoomEvent.ParticipantDisconnected, (p) => this.participantLeft(room, p))
      .on(RoomEvent.TrackSubscribed, (track) => this.trackSubscribed(track))
      .on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((element) => element.remove()))
      .on(RoomEvent.Disconnected, () => {
        if (this.room === room) {
          this.room = null;
          this.update({ phase: "ended", agentState: null, microphone: "off" });
        }
      });
  }

  /** An `lk.transcription` stream: the agent's words (chunks appended as they come), or in
   * voice the visitor's own transcribed speech (each stream the whole segment so far). */
  private async readTranscription(room: Room, reader: TextStreamReader, identity: string) {
    const key = (reader.info.attributes ?? {})[ATTR.segment] ?? reader.info.id;
    const role = identity === this.identity ? "user" : "agent";
    const via = role === "user" ? "spoken" : "agent";
    let text = "";
    try {
      if (role === "user") {
        text = await reader.readAll();
      } else {
        for await (const chunk of reader) {
          if (this.room !== room) return;
          text += chunk;
          this.upsert({ key, role, text, final: false, via });
        }
      }
    } catch {
      // an aborted stream (an interruption, the room gone): what arrived stands
    }
    if (this.room !== room || !text) return;
    const final = (reader.info.attributes ?? {})[ATTR.final] !== "false";
    this.upsert({ key, role, text, final, via });
  }

  private upsert(line: TranscriptLine) {
    this.update((v) => ({ transcript: upsertLine(v.transcript, line) }));
  }

  private participantChanged(participant: Participant) {
    if (!participant.isAgent || participant.identity === this.identity) return;
    this.update({ agentState: participant.attributes?.[ATTR.state] ?? "initializing" });
  }

  private participantLeft(room: Room, participant: RemoteParticipant) {
    if (!participant.isAgent || this.room !== room) return;
    // The agent ended the conversation (its idle timeout): the next message needs a new one.
    this.room = null;
    void room.disconnect();
    this.update({ phase: "ended", agentState: null, microphone: "off" });
  }

  private trackSubscribed(track: RemoteTrack) {
    if (track.kind !== Track.Kind.Audio || !(track instanceof RemoteAudioTrack)) return;
    const element = track.attach();
    element.hidden = true;
    this.audioContainer().appendChild(element);
  }
}

function isMicrophoneRefusal(error: unknown): boolean {
  return error instanceof DOMException && (error.name === "NotAllowedError" || error.name === "NotFoundError");
}
