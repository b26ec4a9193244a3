/** Which agent type the routing would pick for this metadata, and why: every strategy
 * consulted, in order, with its outcome and reason (`POST /api/v1/routing/resolve`). */
import type { Resolution } from "../types";

const OUTCOME_CHIP: Record<string, string> = { chosen: "ok", skipped: "warn", no_proposal: "neutral", error: "bad" };

export function ResolvePreview({ resolution, stale }: { resolution: Resolution; stale: boolean }) {
  return (
    <div className={`pg-resolve${stale ? " stale" : ""}`} data-testid="resolve-result" data-agent-id={resolution.agent_id ?? ""}>
      <div className="pg-resolve-head">
        {resolution.agent_id ? (
          <>
            <span className="muted">You would get</span> <strong>{resolution.agent_id}</strong>
            <span className="muted"> via </span><span className="chip">{resolution.strategy}</span>
          </>
        ) : (
          <strong className="pg-bad">No agent type available for this metadata</strong>
        )}
        {stale && <span className="chip neutral" title="The metadata or the pick changed since this preview">outdated</span>}
      </div>
      <ol className="pg-trail" data-testid="resolve-trail">
        {resolution.trail.map((entry, i) => (
          <li key={i} className={entry.outcome}>
            <span className="pg-trail-strategy">{entry.strategy}</span>
            <span className={`chip ${OUTCOME_CHIP[entry.outcome ?? ""] ?? "neutral"}`}>{(entry.outcome ?? "").replace("_", " ")}</span>
            {entry.agent_id && <code>{entry.agent_id}</code>}
            {entry.reason && <span className="pg-trail-reason">{entry.reason}</span>}
          </li>
        ))}
      </ol>
      {resolution.warnings.length > 0 && (
        <ul className="pg-warnings">
          {resolution.warnings.map((w, i) => <li key={i}>{w}</li>)}
        </ul>
      )}
    </div>
  );
}
