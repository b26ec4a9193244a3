/** What the last save, check or action came to: saved (the new version), valid, refused (the
 * API's problem, e.g. a viewer's 403), a conflict, or the release gate's answers (a candidate
 * filed, a version activated, a refusal naming the failing scenarios). */
import "./agents.css";
import { ConflictPanel } from "./ConflictPanel";
import { CandidateBanner, GateRefusedPanel } from "./GatePanels";
import type { AgentEditorState } from "./useAgentEditor";

export function OutcomeBanner({ editor }: { editor: AgentEditorState }) {
  const outcome = editor.outcome;
  if (!outcome) return null;
  switch (outcome.kind) {
    case "saved":
      return (
        <p className="success banner" role="status" data-testid="save-ok" data-version={outcome.version}>
          <span>
            Saved as <strong>version {outcome.version}</strong>. The next session of this type uses it.
          </span>
          <button type="button" className="ghost close" aria-label="Dismiss" onClick={editor.dismiss}>×</button>
        </p>
      );
    case "candidate":
      return <CandidateBanner editor={editor} version={outcome.version} />;
    case "activated":
      return (
        <p className="success banner" role="status" data-testid="activate-ok" data-version={outcome.version}>
          <span>
            <strong>Version {outcome.version} is live</strong>
            {outcome.overridden ? ", by an override of the release gate (audited)" : ""}. The next session of this type uses it.
          </span>
          <button type="button" className="ghost close" aria-label="Dismiss" onClick={editor.dismiss}>×</button>
        </p>
      );
    case "gate":
      return <GateRefusedPanel editor={editor} refusal={outcome.refusal} action={outcome.action} />;
    case "valid":
      return (
        <p className="success banner" role="status" data-testid="validate-ok">
          <span>The API accepts this definition (nothing saved yet).</span>
          <button type="button" className="ghost close" aria-label="Dismiss" onClick={editor.dismiss}>×</button>
        </p>
      );
    case "error":
      return (
        <p className="error banner" role="alert" data-testid={outcome.during === "save" ? "save-error" : "action-error"} data-status={outcome.status}>
          <span>{outcome.message}</span>
          <button type="button" className="ghost close" aria-label="Dismiss" onClick={editor.dismiss}>×</button>
        </p>
      );
    case "conflict":
      return (
        <ConflictPanel
          conflict={outcome.conflict}
          draft={editor.draft}
          onReload={() => void editor.reload()}
          onKeepDraft={editor.keepDraftOn}
        />
      );
  }
}
