/** A small live level meter. The agent's (`agent-audio`) carries `data-peak`: the highest
 * level of the agent's audio played so far, 0..1, so a test can tell audio was not silent. */
import type { RefObject } from "react";
import type { LevelReading } from "./audio";
import { useLevel } from "./useSession";

const BARS = 12;

export function LevelMeter({ read, label, testId, containerRef }: {
  read: (() => LevelReading | null) | null;
  label: string;
  testId?: string;
  /** Where the agent's hidden <audio> elements go (inside the meter, outside React's children). */
  containerRef?: RefObject<HTMLDivElement | null>;
}) {
  const reading = useLevel(read);
  const level = reading?.level ?? 0;
  const lit = Math.round(Math.min(1, level * 1.6) * BARS); // speech rarely peaks at 1: scale up
  return (
    <div className="pg-meter" data-testid={testId} data-peak={(reading?.peak ?? 0).toFixed(3)} title={`${label}: peak ${(reading?.peak ?? 0).toFixed(2)}`}>
      <span className="pg-meter-label">{label}</span>
      <span className="pg-meter-bars" aria-hidden="true">
        {Array.from({ length: BARS }, (_, i) => (
          <span key={i} className={i < lit ? "on" : ""} />
        ))}
      </span>
      {containerRef && <div ref={containerRef} className="pg-audio-sink" />}
    </div>
  );
}
