/** Audio levels measured with WebAudio: the agent's voice (played through hidden <audio>
 * elements, as livekit-client's `track.attach()` makes them) and the user's microphone.
 *
 * Chrome delivers a remote WebRTC track's samples to WebAudio only while the track also plays
 * in a media element, so every agent track is attached first and analysed second. Levels are
 * sampled on a timer rather than requestAnimationFrame, which stops in a background tab. */
import type { RemoteAudioTrack } from "livekit-client";

const SAMPLE_EVERY_MS = 40;
/** Peak amplitude (0..1) above which audio counts as voice: WebRTC silence is ~0, espeak and
 * speech peak at 0.2-0.9, a quiet room into a laptop microphone at ~0.01-0.03. */
export const VOICE_THRESHOLD = 0.05;
/** Silence this long before a level above the threshold makes a new onset (a reply starting),
 * longer than the pauses between words. */
const ONSET_AFTER_SILENCE_MS = 400;

/** One MediaStreamTrack's level: `level` now (smoothed), `peak` the highest seen, and the last
 * moment it was above the voice threshold. */
class TrackLevel {
  level = 0;
  peak = 0;
  lastVoiceAt: number | null = null;
  private readonly source: MediaStreamAudioSourceNode;
  private readonly analyser: AnalyserNode;
  private readonly samples: Float32Array<ArrayBuffer>;

  constructor(context: AudioContext, track: MediaStreamTrack) {
    this.source = context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser); // not to the destination: the <audio> element plays it
  }

  /** Returns this frame's peak amplitude. */
  sample(now: number): number {
    this.analyser.getFloatTimeDomainData(this.samples);
    let peak = 0;
    for (const value of this.samples) peak = Math.max(peak, Math.abs(value));
    peak = Math.min(peak, 1);
    this.level = Math.max(peak, this.level * 0.8); // falls smoothly, rises at once
    this.peak = Math.max(this.peak, peak);
    if (peak >= VOICE_THRESHOLD) this.lastVoiceAt = now;
    return peak;
  }

  dispose() {
    this.source.disconnect();
  }
}

export interface LevelReading {
  level: number;
  peak: number;
}

/** Everything the agent says, from however many audio tracks it publishes (a hand-off keeps
 * the participant; a republished track is a new one). */
export class AgentAudio {
  peak = 0;
  private readonly tracks = new Map<RemoteAudioTrack, { level: TrackLevel | null; element: HTMLMediaElement }>();
  private timer: number | null = null;
  private lastVoiceAt = -Infinity;

  constructor(
    private readonly context: AudioContext | null,
    private readonly container: () => HTMLElement | null,
    private readonly onOnset: (at: number) => void,
  ) {}

  attach(track: RemoteAudioTrack) {
    if (this.tracks.has(track)) return;
    const element = track.attach();
    element.hidden = true;
    (this.container() ?? document.body).appendChild(element);
    let level: TrackLevel | null = null;
    if (this.context && track.mediaStreamTrack) {
      try {
        level = new TrackLevel(this.context, track.mediaStreamTrack);
      } catch {
        level = null; // plays without a meter
      }
    }
    this.tracks.set(track, { level, element });
    this.start();
  }

  detach(track: RemoteAudioTrack) {
    const entry = this.tracks.get(track);
    if (!entry) return;
    entry.level?.dispose();
    track.detach(entry.element);
    entry.element.remove();
    this.tracks.delete(track);
  }

  /** Current level and highest peak, 0..1, over every track. */
  reading(): LevelReading {
    let level = 0;
    for (const { level: l } of this.tracks.values()) level = Math.max(level, l?.level ?? 0);
    return { level, peak: this.peak };
  }

  get measuring(): boolean {
    return [...this.tracks.values()].some((t) => t.level !== null);
  }

  dispose() {
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
    for (const track of [...this.tracks.keys()]) this.detach(track);
  }

  private start() {
    if (this.timer !== null) return;
    this.timer = window.setInterval(() => this.sample(), SAMPLE_EVERY_MS);
  }

  private sample() {
    const now = performance.now();
    let peak = 0;
    for (const { level } of this.tracks.values()) if (level) peak = Math.max(peak, level.sample(now));
    this.peak = Math.max(this.peak, peak);
    if (peak >= VOICE_THRESHOLD) {
      if (now - this.lastVoiceAt > ONSET_AFTER_SILENCE_MS) this.onOnset(now);
      this.lastVoiceAt = now;
    }
  }
}

/** The user's microphone: its level for the meter, and when they last spoke (end of speech). */
export class MicrophoneLevel {
  private readonly level: TrackLevel;
  private readonly timer: number;

  constructor(context: AudioContext, track: MediaStreamTrack) {
    this.level = new TrackLevel(context, track);
    this.timer = window.setInterval(() => this.level.sample(performance.now()), SAMPLE_EVERY_MS);
  }

  reading(): LevelReading {
    return { level: this.level.level, peak: this.level.peak };
  }

  /** The last moment the microphone carried voice, if it did within `withinMs`. */
  lastVoiceAt(withinMs: number): number | null {
    const at = this.level.lastVoiceAt;
    return at !== null && performance.now() - at <= withinMs ? at : null;
  }

  dispose() {
    window.clearInterval(this.timer);
    this.level.dispose();
  }
}
