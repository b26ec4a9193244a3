/** "New agent type": a name, an id (derived from the name until typed), a template; POST
 * /agents creates version 1 and the editor opens on it. The API decides who may (403 for a
 * viewer) and whether it is valid (422 next to the field). */
import "./agents.css";
import { useMemo, useState, type FormEvent } from "react";
import { ApiError, request, type FieldProblem } from "../api";
import { href, navigate } from "../router";
import type { AgentConfig } from "../types";
import { FieldErrors, ProblemsProvider, ProblemSummary } from "./problems";
import { BUILT_IN_TEMPLATES, copyOf, slugOf } from "./templates";

export function NewAgentDialog({ existing, onClose }: { existing: AgentConfig[]; onClose: () => void }) {
  const templates = useMemo(() => [...BUILT_IN_TEMPLATES, ...existing.filter((a) => a.status !== "archived").map(copyOf)], [existing]);
  const [name, setName] = useState("");
  const [agentId, setAgentId] = useState("");
  const [idTouched, setIdTouched] = useState(false);
  const [templateId, setTemplateId] = useState(templates[0].id);
  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = idTouched ? agentId : slugOf(name);
  const template = templates.find((t) => t.id === templateId) ?? templates[0];

  async function create(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setProblems([]);
    try {
      const created = await request<AgentConfig>("POST", "agents", { body: template.definition(id, name.trim()) });
      onClose();
      navigate(href("agents", created.body.agent_id));
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) setProblems(e.problem.errors ?? []);
      else setError(e instanceof ApiError && e.status === 409 ? `An agent type "${id}" already exists: pick another id.` : (e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="modal-backdrop" onClick={onClose}>
      <form className="card modal wide" role="dialog" aria-modal="true" aria-labelledby="new-agent-title" onSubmit={create} onClick={(e) => e.stopPropagation()} data-testid="new-agent-dialog">
        <h2 id="new-agent-title">New agent type</h2>
        <ProblemsProvider problems={problems}>
          <div className="grid two">
            <label className="field">
              <span>Name</span>
              <input autoFocus value={name} onChange={(e) => setName(e.target.value)} placeholder="Billing helper" data-testid="new-agent-name" />
              <FieldErrors path="name" />
            </label>
            <label className="field">
              <span>Agent id</span>
              <input
                className="mono"
                value={id}
                onChange={(e) => {
                  setIdTouched(true);
                  setAgentId(e.target.value);
                }}
                placeholder="billing-helper"
                data-testid="new-agent-id"
              />
              <FieldErrors path="agent_id" />
            </label>
          </div>
          <fieldset className="templates">
            <legend>Start from</legend>
            {templates.map((t) => (
              <label key={t.id} className={t.id === templateId ? "template selected" : "template"}>
                <input type="radio" name="template" value={t.id} checked={t.id === templateId} onChange={() => setTemplateId(t.id)} data-testid={`template-${t.id}`} />
                <span>
                  <strong>{t.label}</strong>
                  <span className="hint">{t.description}</span>
                </span>
              </label>
            ))}
          </fieldset>
          <ProblemSummary title="The API did not accept it" problems={problems} />
        </ProblemsProvider>
        {error && <p className="error" role="alert" data-testid="new-agent-error">{error}</p>}
        <div className="actions end">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy || !name.trim() || !id} data-testid="new-agent-create">
            {busy ? "Creating…" : "Create"}
          </button>
        </div>
      </form>
    </div>
  );
}
