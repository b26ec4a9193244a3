/** A turn's server-side latency marks (`latency_ms` on the turn record, written by the worker:
 * ms from the user's message or end of speech to the first agent text, the first agent audio,
 * and the fields complete), and their p50 / max over a session. Marks the worker does not
 * record yet are simply absent. */
import { percentile } from "./format";
import type { SessionTurn } from "./types";

export const LATENCY_LABELS: Record<string, string> = {
  first_text: "first text",
  first_audio: "first audio",
  fields: "fields complete",
};

/** The marks of one turn that are numbers, in a stable order (known ones first). */
export function latencyMarks(turn: SessionTurn): [string, number][] {
  const marks = turn.latency_ms;
  if (!marks || typeof marks !== "object") return [];
  const known = Object.keys(LATENCY_LABELS);
  const names = [...known.filter((k) => k in marks), ...Object.keys(marks).filter((k) => !known.includes(k)).sort()];
  return names.flatMap((name) => (typeof marks[name] === "number" ? [[name, marks[name] as number] as [string, number]] : []));
}

/** What the user felt first: audio when there was audio, else text. */
export function firstResponseMs(turn: SessionTurn): number | null {
  const marks = turn.latency_ms;
  if (!marks) return null;
  const audio = marks.first_audio, text = marks.first_text;
  return typeof audio === "number" ? audio : typeof text === "number" ? text : null;
}

export interface LatencySummary {
  mark: string;
  p50: number;
  max: number;
  turns: number;
}

export function summarizeLatency(turns: SessionTurn[]): LatencySummary[] {
  const byMark = new Map<string, number[]>();
  for (const turn of turns) for (const [mark, ms] of latencyMarks(turn)) byMark.set(mark, [...(byMark.get(mark) ?? []), ms]);
  return [...byMark.entries()].map(([mark, values]) => ({
    mark,
    p50: percentile(values, 50) ?? 0,
    max: Math.max(...values),
    turns: values.length,
  }));
}

const ORIGINS: Record<string, string> = {
  typed: "from the typed message reaching the worker",
  end_of_speech: "from the end of the user's speech",
  transcript: "from the user's transcript (speech end unknown: silence and STT time left out)",
};

/** Where a turn's clock started, in words. */
export const latencyOrigin = (origin: string | null | undefined) => (origin ? ORIGINS[origin] ?? `from ${origin.replace(/_/g, " ")}` : null);

export const latencyLabel = (mark: string) => LATENCY_LABELS[mark] ?? mark.replace(/_/g, " ");
