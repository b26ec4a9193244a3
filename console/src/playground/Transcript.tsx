/** The conversation as it happens: the user's words (typed or transcribed) and the agent's,
 * apart; interim transcripts shown as such until their final version arrives. */
import { useEffect, useRef } from "react";
import type { SessionView } from "./model";

export function Transcript({ view }: { view: SessionView }) {
  const end = useRef<HTMLDivElement>(null);
  const last = view.transcript[view.transcript.length - 1];
  useEffect(() => end.current?.scrollIntoView({ block: "nearest" }), [view.transcript.length, last?.text]);
  return (
    <div className="pg-transcript" data-testid="transcript" aria-live="polite">
      {view.transcript.length === 0 && (
        <p className="pg-placeholder pg-transcript-empty">
          {view.connection === "connected" ? "The agent is joining; its greeting appears here." : "The conversation appears here."}
        </p>
      )}
      {view.transcript.map((line) => (
        <div
          key={line.key}
          className={`pg-line ${line.role}${line.final ? "" : " interim"}`}
          data-testid="transcript-line"
          data-role={line.role}
          data-final={line.final ? "true" : "false"}
        >
          <span className="pg-line-who">
            {line.role === "agent" ? "Agent" : "You"}
            {line.via === "spoken" && <span className="pg-line-via" title="Your speech, as the agent transcribed it"> · spoken</span>}
          </span>
          <span className="pg-line-text">{line.text || "…"}</span>
        </div>
      ))}
      <div ref={end} />
    </div>
  );
}
