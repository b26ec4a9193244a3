/** How the session was routed: each strategy the chain consulted, what it proposed, what came
 * of it and why; then any hand-off to another agent type during the session. */
import "./sessions.css";
import { href } from "../router";
import { formatDateTime, humanize } from "./format";
import type { Handoff, SessionRouting } from "./types";

const OUTCOME_CHIPS: Record<string, string> = { chosen: "chip ok", skipped: "chip warn", no_proposal: "chip neutral", error: "chip bad" };

export function RoutingTrail({ routing, handoffs, refusal }: { routing: SessionRouting | null; handoffs: Handoff[]; refusal: string | null }) {
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
            <p key={i} className="handoff" data-testid="session-handoff">
              <span className="mono">{handoff.from_agent_id}</span> → <a className="mono" href={href("agents", handoff.to_agent_id ?? "")}>{handoff.to_agent_id}</a>{" "}
              <span className="hint">
                by {handoff.strategy ?? "intent"}
                {typeof handoff.match?.intent === "string" ? ` (intent ${handoff.match.intent})` : ""}
                {handoff.at ? ` · ${formatDateTime(handoff.at)}` : ""}
              </span>
            </p>
          ))}
        </div>
      )}
    </div>
  );
}
