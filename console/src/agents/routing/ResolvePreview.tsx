/** "Which agent type would a room with this metadata get?": POST /routing/resolve with the
 * rules draft (not the saved rules), re-run as the metadata or the draft changes (debounced).
 * The draft's hooks (webhook strategies) are passed over, the trail says so, unless an admin
 * ticks "Call the hooks" (`call_hooks`: real calls with the operator's secrets, rate-limited). */
import { useEffect, useState } from "react";
import { ApiError, post, type FieldProblem } from "../../api";
import { href } from "../../router";
import { useMe } from "../../session";
import type { ChainEntry, Resolution } from "./types";
import { OUTCOME_CHIPS, OUTCOME_LABELS } from "./types";

const DEBOUNCE_MS = 350;

export const SAMPLE_METADATA = JSON.stringify({ purpose: "support", user_id: "u-1", user_details: { tier: "premium" } }, null, 2);

type Preview = { kind: "result"; resolution: Resolution } | { kind: "problems"; message: string; problems: FieldProblem[] } | { kind: "pending" };

export function ResolvePreview({
  chain,
  metadata,
  onMetadata,
  onResolved,
}: {
  chain: ChainEntry[] | null;
  metadata: string;
  onMetadata: (text: string) => void;
  onResolved: (resolution: Resolution | null) => void;
}) {
  const me = useMe();
  const [preview, setPreview] = useState<Preview>({ kind: "pending" });
  const [callHooks, setCallHooks] = useState(false);
  const rulesKey = JSON.stringify(chain);

  useEffect(() => {
    let parsed: unknown;
    try {
      parsed = metadata.trim() ? JSON.parse(metadata) : null;
    } catch (e) {
      setPreview({ kind: "problems", message: `The metadata is not JSON yet: ${(e as Error).message}`, problems: [] });
      onResolved(null);
      return;
    }
    if (chain === null) {
      setPreview({ kind: "problems", message: "The rules draft is not valid JSON: fix it to preview.", problems: [] });
      onResolved(null);
      return;
    }
    let live = true;
    const timer = window.setTimeout(() => {
      post<Resolution>("routing/resolve", { metadata: parsed, rules: { chain }, ...(callHooks ? { call_hooks: true } : {}) }).then(
        (resolution) => {
          if (!live) return;
          setPreview({ kind: "result", resolution });
          onResolved(resolution);
        },
        (error: Error) => {
          if (!live) return;
          const problems = error instanceof ApiError ? (error.problem.errors ?? []) : [];
          setPreview({ kind: "problems", message: error.message, problems });
          onResolved(null);
        },
      );
    }, DEBOUNCE_MS);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [metadata, rulesKey, callHooks]); // `rulesKey` stands for `chain`: a new array per keystroke, often the same rules

  return (
    <section className="card preview">
      <h2>Try it</h2>
      <p className="hint">A room's metadata, resolved with the rules as drafted (not yet saved).</p>
      <label className="field">
        <span>Metadata</span>
        <textarea className="mono" rows={7} value={metadata} onChange={(e) => onMetadata(e.target.value)} spellCheck={false} data-testid="preview-metadata" />
      </label>
      {me.can.write && (
        <label className="call-hooks">
          <input type="checkbox" checked={callHooks} onChange={(e) => setCallHooks(e.target.checked)} data-testid="preview-call-hooks" />
          Call the hooks: the draft's webhook strategies really ask your services, with their header secrets
        </label>
      )}
      <div className="preview-outcome" aria-live="polite">
        {preview.kind === "pending" && <p className="muted">Resolving…</p>}
        {preview.kind === "problems" && (
          <div className="error" data-testid="preview-error">
            {preview.message}
            {preview.problems.length > 0 && (
              <ul>
                {preview.problems.map((p, i) => (
                  <li key={i}>
                    <code>{p.field}</code> {p.message}
                  </li>
                ))}
              </ul>
            )}
          </div>
        )}
        {preview.kind === "result" && <ResolutionView resolution={preview.resolution} />}
      </div>
    </section>
  );
}

function ResolutionView({ resolution }: { resolution: Resolution }) {
  return (
    <>
      <div className={resolution.agent_id ? "resolution found" : "resolution none"} data-testid="preview-result" data-agent-id={resolution.agent_id ?? ""}>
        {resolution.agent_id ? (
          <>
            <span className="muted">Routes to</span>{" "}
            <a className="mono big" href={href("agents", resolution.agent_id)}>
              {resolution.agent_id}
            </a>{" "}
            <span className="muted">by</span> <strong>{resolution.strategy}</strong>
          </>
        ) : (
          <strong>No agent type: nothing in the chain proposed an available one.</strong>
        )}
      </div>
      <ol className="preview-steps" data-testid="preview-trail">
        {resolution.trail.map((step, i) => (
          <li key={i} data-testid="preview-step" data-strategy={step.strategy} data-outcome={step.outcome}>
            <span className="chain-num">{i + 1}</span>
            <div>
              <div className="preview-step-head">
                <strong className="mono">{step.strategy}</strong>
                <span className={OUTCOME_CHIPS[step.outcome]}>{OUTCOME_LABELS[step.outcome]}</span>
                {step.agent_id && <span className="mono muted">{step.agent_id}</span>}
              </div>
              <div className="hint">{step.reason}</div>
            </div>
          </li>
        ))}
      </ol>
      {Object.keys(resolution.variables ?? {}).length > 0 && (
        <div className="preview-variables">
          <span className="muted">Variables for the type's placeholders</span>
          <table className="variables" data-testid="preview-variables">
            <tbody>
              {Object.entries(resolution.variables).map(([name, value]) => (
                <tr key={name} data-testid="preview-variable" data-name={name}>
                  <td className="mono">{`{{variables.${name}}}`}</td>
                  <td className="mono">{typeof value === "string" ? value : JSON.stringify(value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {resolution.warnings.map((w, i) => (
        <p key={i} className="notice">{w}</p>
      ))}
    </>
  );
}
