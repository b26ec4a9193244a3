/** The right column: the summary (once the session ends) and every turn, hand-off and
 * escalation, in the order they happened. */
import { useEffect, useRef } from "react";
import "../components/toolCalls.css";
import { CONTEXT_EXPLAINED, THEN_EXPLAINED } from "../components/toolCalls";
import { waterfallScale } from "../components/TurnWaterfall";
import { latencyOf } from "./latency";
import type { EscalationPayload, HandoffPayload, SessionView } from "./model";
import type { TurnSchemas } from "./schemas";
import { followNewest } from "./Transcript";
import { TurnCard } from "./TurnCard";

export function Timeline({ view, schemas }: { view: SessionView; schemas: TurnSchemas }) {
  const box = useRef<HTMLElement>(null);
  useEffect(() => followNewest(box.current), [view.timeline.length]);
  const voice = view.modality === "voice";
  const handedOff = view.timeline.some((i) => i.kind === "handoff");
  // every turn's waterfall on one scale (the slowest so far), so turns compare at a glance
  const scale = waterfallScale(view.timeline.flatMap((i) => (i.kind === "turn" ? [i.turn] : [])));
  return (
    <section className="card pg-timeline" aria-label="Turns" ref={box}>
      <div className="pg-column-head">
        <h2>Turns</h2>
        <span className="muted">{countTurns(view)} structured {countTurns(view) === 1 ? "turn" : "turns"}</span>
      </div>
      {view.timeline.length === 0 ? (
        <p className="pg-placeholder">
          Each reply's structured fields appear here as the agent fills them (<code>agent-turn</code>), with the
          tools it called and the latency you felt.
        </p>
      ) : (
        <div className="pg-timeline-items">
          {view.timeline.map((item) =>
            item.kind === "turn" ? (
              <TurnCard key={item.key} turn={item.turn} latency={latencyOf(view.exchanges, item.turn.turn_index, voice)} schemas={schemas} voice={voice} showAgent={handedOff} waterfallScaleMs={scale} />
            ) : item.kind === "handoff" ? (
              <HandoffMarker key={item.key} handoff={item.handoff} />
            ) : (
              <EscalationMarker key={item.key} escalation={item.escalation} />
            ),
          )}
        </div>
      )}
    </section>
  );
}

const countTurns = (view: SessionView) => view.timeline.filter((i) => i.kind === "turn").length;

/** A hand-off: by a keyword intent, or by the model's transfer tool with its reason and what
 * the new type was given of the conversation. */
export function HandoffMarker({ handoff }: { handoff: HandoffPayload }) {
  const intent = typeof handoff.match?.intent === "string" ? handoff.match.intent : null;
  const transfer = handoff.strategy === "transfer_to_agent";
  return (
    <div
      className="pg-handoff"
      data-testid="handoff"
      data-from={handoff.from_agent_id}
      data-to={handoff.to_agent_id}
      data-strategy={handoff.strategy ?? "intent"}
      data-context={handoff.context ?? undefined}
    >
      <span className="pg-handoff-line" aria-hidden="true" />
      <span className="pg-handoff-text">
        {transfer ? "Transferred" : "Handed off"} <code>{handoff.from_agent_id}</code> → <code>{handoff.to_agent_id}</code>
        {intent && <> on intent <span className="chip">{intent}</span></>}
        {transfer && handoff.context && (
          <span className="chip neutral" title={`The new agent type was given ${CONTEXT_EXPLAINED[handoff.context] ?? handoff.context}`}>
            context: {handoff.context}
          </span>
        )}
        {handoff.reason && <span className="marker-reason">“{handoff.reason}”</span>}
      </span>
      <span className="pg-handoff-line" aria-hidden="true" />
    </div>
  );
}

/** The agent asked for a human: marked apart from hand-offs (no agent type took over). */
export function EscalationMarker({ escalation }: { escalation: EscalationPayload }) {
  const then = escalation.then ?? "continue";
  return (
    <div className="escalation-marker" role="note" data-testid="escalation" data-agent-id={escalation.agent_id ?? undefined} data-then={then}>
      <span className="marker-line" aria-hidden="true" />
      <span className="marker-text">
        <span aria-hidden="true">⚑</span> Escalated to a human
        {escalation.agent_id && <> by <code>{escalation.agent_id}</code></>}
        <span className="chip warn" title={`After escalating, the agent ${THEN_EXPLAINED[then] ?? then}`}>then: {then}</span>
        {escalation.reason && <span className="marker-reason">“{escalation.reason}”</span>}
      </span>
      <span className="marker-line" aria-hidden="true" />
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
          Session <a href={`#/sessions/${encodeURIComponent(view.sessionId)}`} data-testid="summary-session-link"><code>{view.sessionId}</code></a>
        </p>
      )}
    </section>
  );
}
