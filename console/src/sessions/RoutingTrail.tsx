/** How the session was routed: each strategy the chain consulted, what it proposed, what came
 * of it and why; then any hand-off to another agent type during the session (a keyword intent,
 * or the model's transfer tool with its reason and context), each escalation to a human, and
 * an end the agent chose (end_session). */
import "./sessions.css";
import "../components/toolCalls.css";
import { CONTEXT_EXPLAINED, THEN_EXPLAINED } from "../components/toolCalls";
import { href } from "../router";
import { formatDateTime, humanize } from "./format";
import type { Handoff, SessionEscalation, SessionRouting } from "./types";

const OUTCOME_CHIPS: Record<string, string> = { chosen: "chip ok", skipped: "chip warn", no_proposal: "chip neutral", error: "chip bad" };

export function RoutingTrail({
  routing,
  handoffs,
  refusal,
  escalations = [],
  agentEnded = null,
}: {
  routing: SessionRouting | null;
  handoffs: Handoff[];
  refusal: string | null;
  escalations?: SessionEscalation[] | null;
  /** With `end_reason: agent_ended`: the reason the agent gave (`end_detail`), or "" for none. */
  agentEnded?: string | null;
}) {
  const trail = routing?.trail ?? [];
  return (
    <div data-testid="session-trail" className="trail">
      {!routing && <p className="hint">No routing decision was recorded{refusal ? `: ${refusal}` : ""}.</p>}
      {routing && (
        <p className="trail-outcome">
          {routing.agent_id ? (
            <>
              Chose <a className="mono" href={href("agents", routing.agent_id)}>{routing.agent_id}</a> by <strong>{routing.strategy}</strong>
            </>
          ) : (
            <strong>No agent type was available</strong>
          )}
          <span className="hint">
            {" "}
            · rules v{routing.rules_version ?? "?"}
            {routing.metadata_source ? ` · metadata from ${humanize(routing.metadata_source)}` : ""}
            {routing.decided_at ? ` · ${formatDateTime(routing.decided_at)}` : ""}
          </span>
        </p>
      )}
      {trail.length > 0 && (
        <ol className="trail-steps">
          {trail.map((step, i) => (
            <li key={i} className="trail-step" data-testid="trail-step" data-strategy={step.strategy} data-outcome={step.outcome ?? ""}>
              <span className="step-number">{i + 1}</span>
              <div>
                <div className="step-head">
                  <strong className="mono">{step.strategy}</strong>
                  <span className={OUTCOME_CHIPS[step.outcome ?? ""] ?? "chip neutral"}>{humanize(step.outcome ?? "unknown")}</span>
                  {step.agent_id && <a className="mono hint" href={href("agents", step.agent_id)}>{step.agent_id}</a>}
                </div>
                {step.reason && <div className="hint">{step.reason}</div>}
              </div>
            </li>
          ))}
        </ol>
      )}
      {(routing?.warnings ?? []).map((warning, i) => (
        <p key={i} className="notice">{warning}</p>
      ))}
      {handoffs.length > 0 && (
        <div className="handoffs">
          <h3>Hand-offs</h3>
          {handoffs.map((handoff, i) => (
            <HandoffLine key={i} handoff={handoff} />
          ))}
        </div>
      )}
      {(escalations ?? []).length > 0 && (
        <div className="escalations">
          <h3>Escalations</h3>
          {(escalations ?? []).map((escalation, i) => (
            <p key={i} className="escalation" data-testid="escalation" data-agent-id={escalation.agent_id ?? undefined} data-then={escalation.then ?? "continue"}>
              <span aria-hidden="true">⚑ </span>
              <span className="mono">{escalation.agent_id ?? "the agent"}</span> asked for a human{" "}
              <span className="chip warn" title={`Then the agent ${THEN_EXPLAINED[escalation.then ?? "continue"] ?? escalation.then}`}>then: {escalation.then ?? "continue"}</span>
              {escalation.reason && <span className="marker-reason"> “{escalation.reason}”</span>}
              {escalation.at && <span className="hint"> · {formatDateTime(escalation.at)}</span>}
            </p>
          ))}
        </div>
      )}
      {agentEnded !== null && (
        <p className="agent-ended" data-testid="session-agent-ended">
          The agent ended the session (end_session){agentEnded ? <>: <span className="marker-reason">“{agentEnded}”</span></> : "."}
        </p>
      )}
    </div>
  );
}

function HandoffLine({ handoff }: { handoff: Handoff }) {
  const transfer = handoff.strategy === "transfer_to_agent";
  const context = handoff.context ?? null;
  return (
    <p className="handoff" data-testid="session-handoff" data-strategy={handoff.strategy ?? "intent"} data-context={context ?? undefined}>
      <span className="mono">{handoff.from_agent_id}</span> → <a className="mono" href={href("agents", handoff.to_agent_id ?? "")}>{handoff.to_agent_id}</a>{" "}
      <span className="hint">
        {transfer ? "transferred by the model" : `by ${handoff.strategy ?? "intent"}`}
        {typeof handoff.match?.intent === "string" ? ` (intent ${handoff.match.intent})` : ""}
        {handoff.at ? ` · ${formatDateTime(handoff.at)}` : ""}
      </span>
      {transfer && context && (
        <>
          {" "}
          <span className="chip neutral" title={`The new agent type was given ${CONTEXT_EXPLAINED[context] ?? context}`}>context: {context}</span>
        </>
      )}
      {handoff.reason && (
        <>
          <br />
          <span className="marker-reason">“{handoff.reason}”</span>
        </>
      )}
    </p>
  );
}
