/** The conversation as it happens: the user's words (typed or transcribed) and the agent's,
 * apart; interim transcripts shown as such until their final version arrives; a hand-off as a
 * divider where it happened. */
import { Fragment, useEffect, useRef } from "react";
import type { HandoffPayload, SessionView, TranscriptLine } from "./model";

/** Keeps a scrolling box at its newest line (the box scrolls, never the page). */
export function followNewest(box: HTMLElement | null): void {
  if (box) box.scrollTop = box.scrollHeight;
}

export function Transcript({ view, emptyText }: { view: SessionView; emptyText: string }) {
  const box = useRef<HTMLDivElement>(null);
  const last = view.transcript[view.transcript.length - 1];
  useEffect(() => followNewest(box.current), [view.transcript.length, last?.text, view.transcriptMarkers.length]);
  const markersBefore = (index: number) =>
    view.transcriptMarkers
      .filter((m) => m.beforeLine === index || (index === view.transcript.length && m.beforeLine > index))
      .map((m, i) => <HandoffDivider key={`handoff-${index}-${i}`} handoff={m.handoff} />);
  return (
    <div className="pg-transcript" data-testid="transcript" aria-live="polite" ref={box}>
      {view.transcript.length === 0 && (
        <p className="pg-placeholder pg-transcript-empty">
          {view.connection === "connected" ? "The agent is joining; its greeting appears here." : emptyText}
        </p>
      )}
      {view.transcript.map((line, index) => (
        <Fragment key={line.key}>
          {markersBefore(index)}
          <Line line={line} />
        </Fragment>
      ))}
      {markersBefore(view.transcript.length)}
    </div>
  );
}

function Line({ line }: { line: TranscriptLine }) {
  return (
    <div
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
  );
}

function HandoffDivider({ handoff }: { handoff: HandoffPayload }) {
  return (
    <div className="pg-transcript-marker" role="separator">
      {handoff.from_agent_id} handed the conversation to <strong>{handoff.to_agent_id}</strong>
      {handoff.reason ? `: ${handoff.reason}` : ""}
    </div>
  );
}
