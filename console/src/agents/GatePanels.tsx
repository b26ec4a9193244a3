/** The release gate in the editor: a gated save filed as a candidate (202), the gate refusing
 * to make a version live (409, naming the failing scenarios and the run that failed them), and
 * an admin's override, which needs a reason and is confirmed before it is sent. */
import "./agents.css";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { ApiError } from "../api";
import { overrideProblem, startRun, type GateRefusal } from "../evals/api";
import { href, navigate } from "../router";
import { useMe } from "../session";
import type { AgentEditorState, GatedAction } from "./useAgentEditor";

export const runLink = (agentId: string, runId: string) => `${href("agents", agentId, "evals")}?run=${encodeURIComponent(runId)}`;

/** Queues a run of the suite on `version` and opens the Evals tab on it (its live progress). */
export function useRunSuite(agentId: string) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (version: number | null) => {
    setBusy(true);
    setError(null);
    try {
      const queued = await startRun(agentId, version);
      navigate(runLink(agentId, queued.run_id));
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error };
}

export function CandidateBanner({ editor, version }: { editor: AgentEditorState; version: number }) {
  const suite = useRunSuite(editor.agentId);
  const live = editor.server?.config.version;
  return (
    <div className="notice banner gate-banner" role="status" data-testid="candidate" data-version={version}>
      <div>
        <p>
          <strong>Saved as candidate version {version}</strong>; it goes live after a passing run. Until then every session
          still gets version {live}, the live one.
        </p>
        {suite.error && (
          <p className="error" role="alert" data-testid="candidate-run-error">
            {suite.error}
          </p>
        )}
        <div className="actions">
          <button type="button" className="primary" onClick={() => void suite.run(version)} disabled={suite.busy} data-testid="candidate-run">
            {suite.busy ? "Queuing…" : `Run suite on v${version}`}
          </button>
          <button type="button" onClick={() => void editor.activate(version)} disabled={editor.busy !== null} data-testid="candidate-activate">
            Activate v{version}
          </button>
        </div>
      </div>
      <button type="button" className="ghost close" aria-label="Dismiss" onClick={editor.dismiss}>×</button>
    </div>
  );
}

const actionWords = (action: GatedAction) => (action.kind === "activate" ? `activate v${action.version}` : "resume this type");

export function GateRefusedPanel({ editor, refusal, action }: { editor: AgentEditorState; refusal: GateRefusal; action: GatedAction }) {
  const me = useMe();
  const [overriding, setOverriding] = useState(false);
  const opener = useRef<HTMLButtonElement>(null);
  const version = refusal.version ?? (action.kind === "activate" ? action.version : null);
  return (
    <>
    <div className="error banner gate-banner" role="alert" data-testid="gate-refused" data-action={action.kind} data-version={version ?? ""} data-run-id={refusal.runId ?? ""}>
      <div>
        <p>
          <strong>The release gate refused to {actionWords(action)}</strong>: {version != null ? `version ${version}` : "this version"} has no
          passing run of the suite.
        </p>
        {refusal.failingScenarios.length > 0 ? (
          <div>
            <p>Failing scenarios:</p>
            <ul className="failing-scenarios">
              {refusal.failingScenarios.map((name) => (
                <li key={name} data-testid="gate-failing-scenario" data-scenario={name}>
                  {name}
                </li>
              ))}
            </ul>
          </div>
        ) : (
          <p>{refusal.detail}</p>
        )}
        <div className="actions">
          {refusal.runId && (
            <a className="button" href={runLink(editor.agentId, refusal.runId)} data-testid="gate-run-link">
              See the run
            </a>
          )}
          {me.can.write && (
            <button type="button" className="danger" ref={opener} onClick={() => setOverriding(true)} data-testid="gate-override">
              Override…
            </button>
          )}
        </div>
      </div>
      <button type="button" className="ghost close" aria-label="Dismiss" onClick={editor.dismiss}>×</button>
    </div>
      {overriding && (
        <OverrideDialog
          what={actionWords(action)}
          onCancel={() => {
            setOverriding(false);
            opener.current?.focus(); // back where the user was, not to the page's start
          }}
          onSend={(reason) => {
            setOverriding(false);
            void editor.overrideGate(action, reason);
          }}
        />
      )}
    </>
  );
}

/** The override is sent only from here: a reason is required (it goes to the audit trail with
 * the key's name) and the button says exactly what happens. Escape or Cancel sends nothing. */
export function OverrideDialog({ what, onCancel, onSend }: { what: string; onCancel: () => void; onSend: (reason: string) => void }) {
  const [reason, setReason] = useState("");
  const [touched, setTouched] = useState(false);
  const input = useRef<HTMLTextAreaElement>(null);
  const problem = overrideProblem(reason);
  useEffect(() => {
    input.current?.focus();
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onCancel();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onCancel]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    if (!problem) onSend(reason.trim());
  };
  return (
    <div className="modal-backdrop" onClick={onCancel}>
      <form
        className="card modal"
        role="dialog"
        aria-modal="true"
        aria-labelledby="override-title"
        aria-describedby="override-body"
        data-testid="override-dialog"
        onClick={(e) => e.stopPropagation()}
        onSubmit={submit}
        noValidate // the reason's problem is shown beside it, in words, not in a browser bubble
      >
        <h2 id="override-title">Override the release gate?</h2>
        <p id="override-body" className="modal-body">
          This will {what} without a passing run. The override and your reason are recorded in the audit trail
          (<code>agent.gate_overridden</code>) with your key's name.
        </p>
        <div className={`field ${touched && problem ? "invalid" : ""}`}>
          <label htmlFor="override-reason">Reason (required)</label>
          <textarea
            id="override-reason"
            ref={input}
            rows={3}
            maxLength={500}
            value={reason}
            aria-required="true"
            aria-invalid={touched && problem ? true : undefined}
            aria-describedby={touched && problem ? "override-reason-error" : undefined}
            onChange={(e) => setReason(e.target.value)}
            data-testid="override-reason"
          />
          {touched && problem && (
            <span className="field-error" id="override-reason-error" role="alert" data-testid="field-error" data-field="override-reason">
              {problem}
            </span>
          )}
        </div>
        <div className="actions end">
          <button type="button" onClick={onCancel} data-testid="override-cancel">
            Cancel
          </button>
          <button type="submit" className="primary danger-fill" data-testid="override-send">
            Override and {what}
          </button>
        </div>
      </form>
    </div>
  );
}
