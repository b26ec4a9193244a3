/** The edit tab: the draft as a form or as schema-checked JSON (switching keeps it), saved as a
 * whole with If-Match. Problems from the API appear next to the fields they name and in a
 * summary; for a viewer the form is read-only but Save still asks the API, whose refusal is
 * what the viewer sees (roles are the API's to enforce). */
import "./agents.css";
import { useEffect, useState } from "react";
import { useMe } from "../session";
import { AgentForm } from "./AgentForm";
import { DraftProvider } from "./formControls";
import { LazyJsonEditor } from "./LazyJsonEditor";
import { ProblemsProvider, ProblemSummary } from "./problems";
import { agentDefinitionSchema, type EditorSchema } from "./schema";
import type { AgentEditorState } from "./useAgentEditor";

export function AgentEditor({ editor }: { editor: AgentEditorState }) {
  const me = useMe();
  const readOnly = !me.can.write;
  const [schema, setSchema] = useState<EditorSchema | null>(null);
  const [schemaError, setSchemaError] = useState<string | null>(null);

  useEffect(() => {
    if (editor.mode !== "json" || schema) return;
    agentDefinitionSchema().then(setSchema, (e: Error) => setSchemaError(e.message));
  }, [editor.mode, schema]);

  // An unsaved draft is not lost to a closed tab by accident.
  useEffect(() => {
    if (!editor.dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [editor.dirty]);

  return (
    <div className="agent-editor">
      <div className="editor-bar card">
        <div className="segmented" role="group" aria-label="Editor mode">
          <button type="button" className={editor.mode === "form" ? "active" : ""} aria-pressed={editor.mode === "form"} onClick={() => editor.switchMode("form")} data-testid="editor-mode-form">
            Form
          </button>
          <button type="button" className={editor.mode === "json" ? "active" : ""} aria-pressed={editor.mode === "json"} onClick={() => editor.switchMode("json")} data-testid="editor-mode-json">
            JSON
          </button>
        </div>
        <span className="editor-state">
          {editor.dirty && editor.outcome?.kind === "candidate" ? (
            // A gated save keeps the draft: it is filed, just not live.
            <span className="chip warn" data-testid="dirty">Saved as candidate v{editor.outcome.version}, not live</span>
          ) : editor.dirty ? (
            <span className="chip warn" data-testid="dirty">Unsaved changes</span>
          ) : (
            <span className="muted">No changes</span>
          )}
          {editor.base && <span className="muted">based on v{editor.base.config.version}</span>}
        </span>
        <div className="actions">
          {editor.dirty && (
            <button type="button" className="ghost" onClick={() => void editor.reload()} data-testid="discard">
              Discard
            </button>
          )}
          <button type="button" onClick={() => void editor.validate()} disabled={editor.busy !== null} data-testid="validate">
            {editor.busy === "validate" ? "Checking…" : "Check"}
          </button>
          <button type="button" className="primary" onClick={() => void editor.save()} disabled={editor.busy !== null} data-testid="save">
            {editor.busy === "save" ? "Saving…" : "Save"}
          </button>
        </div>
      </div>

      {readOnly && (
        <p className="notice" data-testid="read-only-note">
          Your key has the <strong>{me.role}</strong> role: you can read this agent type, not change it. Save still asks the API,
          which decides.
        </p>
      )}

      <ProblemSummary title="The API did not accept this definition" problems={editor.problems} testId="problem-list" />

      {editor.mode === "form" ? (
        <ProblemsProvider problems={editor.problems}>
          <DraftProvider draft={editor.draft} update={editor.update} readOnly={readOnly}>
            <AgentForm />
          </DraftProvider>
        </ProblemsProvider>
      ) : (
        <div className="card json-card">
          <p className="hint">
            The whole definition, checked against the API's schema as you type (Ctrl-Space completes, hover explains).
            {schemaError && <span className="field-error"> Schema not loaded ({schemaError}): editing without hints.</span>}
          </p>
          {editor.jsonInvalid && <p className="field-error">Not valid JSON yet: {editor.jsonInvalid}</p>}
          <LazyJsonEditor
            value={editor.jsonText}
            onChange={editor.editJson}
            schema={schema}
            problems={editor.problems}
            readOnly={readOnly}
            testId="json-editor"
            label="Agent definition (JSON)"
          />
        </div>
      )}
    </div>
  );
}
