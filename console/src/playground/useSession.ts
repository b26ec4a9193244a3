/** React's view of a PlaygroundSession (or of none yet). */
import { useEffect, useState, useSyncExternalStore } from "react";
import { EMPTY_VIEW, type SessionView } from "./model";
import type { PlaygroundSession } from "./session";
import type { LevelReading } from "./audio";

const noSubscription = () => () => undefined;
const emptyView = () => EMPTY_VIEW;

export function useSessionView(session: PlaygroundSession | null): SessionView {
  return useSyncExternalStore(session?.subscribe ?? noSubscription, session?.getView ?? emptyView);
}

/** A level read a few times a second: only the meter re-renders, never the page. */
export function useLevel(read: (() => LevelReading | null) | null, everyMs = 100): LevelReading | null {
  const [reading, setReading] = useState<LevelReading | null>(null);
  useEffect(() => {
    if (!read) return;
    const timer = window.setInterval(() => setReading(read()), everyMs);
    return () => window.clearInterval(timer);
  }, [read, everyMs]);
  return reading;
}
