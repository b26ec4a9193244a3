/** The right column: the summary (once the session ends) and every turn and hand-off, in the
 * order they happened. */
import { useEffect, useRef } from "react";
import { latencyOf } from "./latency";
import type { HandoffPayload, SessionView } from "./model";
import type { TurnSchemas } from "./schemas";
import { followNewest } from "./Transcript";
import { TurnCard } from "./TurnCard";

export function Timeline({ view, schemas }: { view: SessionView; schemas: TurnSchemas }) {
  const box = useRef<HTMLElement>(null);
  useEffect(() => followNewest(box.current), [view.timeline.length]);
  const voice = view.modality === "voice";
  const handedOff = view.timeline.some((i) => i.kind === "handoff");
  return (
    <section className="card pg-timeline" aria-label="Turns" ref={box}>
      <div className="pg-column-head">
        <h2>Turns</h2>
        <span className="muted">{countTurns(view)} structured {countTurns(view) === 1 ? "turn" : "turns"}</span>
      </div>
      {view.timeline.length === 0 ? (
        <p className="pg-placeholder">
          Each reply's structured fields appear here as the agent fills them (<code>agent-turn</code>), with the
          latency you felt.
        </p>
      ) : (
        <div className="pg-timeline-items">
          {view.timeline.map((item) =>
            item.kind === "turn" ? (
              <TurnCard key={item.key} turn={item.turn} latency={latencyOf(view.exchanges, item.turn.turn_index, voice)} schemas={schemas} voice={voice} showAgent={handedOff} />
            ) : (
              <HandoffMarker key={item.key} handoff={item.handoff} />
            ),
          )}
        </div>
      )}
    </section>
  );
}

const countTurns = (view: SessionView) => view.timeline.filter((i) => i.kind === "turn").length;

export function HandoffMarker({ handoff }: { handoff: HandoffPayload }) {
  const intent = typeof handoff.match?.intent === "string" ? handoff.match.intent : null;
  return (
    <div className="pg-handoff" data-testid="handoff" data-from={handoff.from_agent_id} data-to={handoff.to_agent_id}>
      <span className="pg-handoff-line" aria-hidden="true" />
      <span className="pg-handoff-text">
        Handed off <code>{handoff.from_agent_id}</code> → <code>{handoff.to_agent_id}</code>
        {intent && <> on intent <span className="chip">{intent}</span></>}
      </span>
      <span className="pg-handoff-line" aria-hidden="true" />
    </div>
  );
}

export function SummaryCard({ view }: { view: SessionView }) {
  const summary = view.summary;
  if (summary.status === "none") return null;
  return (
    <section className="card pg-summary" aria-label="Summary">
      <div className="pg-column-head">
        <h2>Summary</h2>
        {summary.status === "shown" && (
          <span className="muted" title={summary.from === "room" ? "conversation-summary, received in the room" : "read back from the session record"}>
            {summary.from === "room" ? "from the room" : "from the session record"}
          </span>
        )}
      </div>
      {summary.status === "shown" && <p className="pg-summary-text" data-testid="summary">{summary.text}</p>}
      {summary.status === "waiting" && (
        <p className="pg-placeholder pg-pending"><span className="pg-spinner" aria-hidden="true" />{summary.note}</p>
      )}
      {summary.status === "missing" && <p className="notice">{summary.note}</p>}
      {view.sessionId && (
        <p className="hint">
          Session <a href={`#/sessions/${encodeURIComponent(view.sessionId)}`}><code>{view.sessionId}</code></a>
        </p>
      )}
    </section>
  );
}
