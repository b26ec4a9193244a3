/** Create or edit a subscription: URL, description, which events, which agent types, and (on
 * create) how it is signed. The API checks everything (egress policy on the URL and the env var,
 * known event types) and its 422 paths show next to the fields. */
import { useState, type FormEvent } from "react";
import { ApiError, type FieldProblem } from "../api";
import { FieldErrors, ProblemsProvider, ProblemSummary } from "../agents/problems";
import {
  ALL_EVENTS,
  EVENT_TYPES,
  createSubscription,
  updateSubscription,
  type Subscription,
  type SubscriptionDraft,
  type SubscriptionWithSecret,
} from "./api";

interface Props {
  existing: Subscription | null;
  onSaved: (saved: Subscription | SubscriptionWithSecret) => void;
  onClose: () => void;
}

/** `support-agent-v1, sales-agent-v1` -> ids; blank -> null (every agent type). */
function agentIdsFrom(text: string): string[] | null {
  const ids = text.split(/[\s,]+/).filter(Boolean);
  return ids.length ? ids : null;
}

export function SubscriptionForm({ existing, onSaved, onClose }: Props) {
  const [url, setUrl] = useState(existing?.url ?? "");
  const [description, setDescription] = useState(existing?.description ?? "");
  const [allEvents, setAllEvents] = useState(!existing || existing.event_types.includes(ALL_EVENTS));
  const [types, setTypes] = useState<string[]>(existing && !existing.event_types.includes(ALL_EVENTS) ? existing.event_types : []);
  const [agents, setAgents] = useState((existing?.agent_ids ?? []).join(", "));
  const [secretKind, setSecretKind] = useState<"generated" | "env">("generated");
  const [secretEnv, setSecretEnv] = useState("");
  const [startPaused, setStartPaused] = useState(false);
  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const toggle = (type: string) => setTypes((now) => (now.includes(type) ? now.filter((t) => t !== type) : [...now, type]));

  async function save(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setProblems([]);
    setError(null);
    const draft: SubscriptionDraft = {
      url: url.trim(),
      description: description.trim(),
      // An empty selection is sent as is: the API answers which field is wrong.
      event_types: allEvents ? [ALL_EVENTS] : types,
      agent_ids: agentIdsFrom(agents),
    };
    try {
      if (existing) {
        onSaved(await updateSubscription(existing, draft));
      } else {
        const secret = secretKind === "env" ? { secret_env: secretEnv.trim() } : {};
        onSaved(await createSubscription({ ...draft, ...secret, status: startPaused ? "paused" : "enabled" }));
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 422 && e.problem.errors?.length) setProblems(e.problem.errors);
      else setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="modal-backdrop" onClick={onClose}>
      <form className="card modal wide webhook-form" role="dialog" aria-modal="true" aria-labelledby="webhook-form-title" onSubmit={save} onClick={(e) => e.stopPropagation()} data-testid="webhook-form">
        <h2 id="webhook-form-title">{existing ? "Edit subscription" : "New webhook subscription"}</h2>
        <ProblemsProvider problems={problems}>
          <label className="field">
            <span>Endpoint URL</span>
            <input className="mono" autoFocus value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://crm.example.com/hooks/switchboard" data-testid="webhook-url" />
            <span className="hint">The operator's egress policy (EGRESS_HOSTS) decides which hosts are allowed.</span>
            <FieldErrors path="url" />
          </label>
          <label className="field">
            <span>Description</span>
            <input value={description} onChange={(e) => setDescription(e.target.value)} placeholder="CRM: end-of-call reports" data-testid="webhook-description" />
            <FieldErrors path="description" />
          </label>
          <fieldset className="field event-types" data-testid="webhook-event-types">
            <legend>Events</legend>
            <label className="toggle">
              <input type="checkbox" checked={allEvents} onChange={(e) => setAllEvents(e.target.checked)} data-testid="webhook-event-all" />
              Every event type
            </label>
            {!allEvents && (
              <div className="event-grid">
                {EVENT_TYPES.map((type) => (
                  <label key={type} className="toggle">
                    <input type="checkbox" checked={types.includes(type)} onChange={() => toggle(type)} data-testid={`webhook-event-${type}`} />
                    <code>{type}</code>
                  </label>
                ))}
              </div>
            )}
            <FieldErrors path="event_types" nested />
          </fieldset>
          <label className="field">
            <span>Agent types</span>
            <input className="mono" value={agents} onChange={(e) => setAgents(e.target.value)} placeholder="all agent types" data-testid="webhook-agents" />
            <span className="hint">Comma-separated agent ids; blank sends the events of every agent type (and routing).</span>
            <FieldErrors path="agent_ids" nested />
          </label>
          {!existing && (
            <>
              <fieldset className="field">
                <legend>Signing secret</legend>
                <label className="toggle">
                  <input type="radio" name="secret-kind" checked={secretKind === "generated"} onChange={() => setSecretKind("generated")} data-testid="webhook-secret-kind-generated" />
                  Generate one (shown once, stored encrypted)
                </label>
                <label className="toggle">
                  <input type="radio" name="secret-kind" checked={secretKind === "env"} onChange={() => setSecretKind("env")} data-testid="webhook-secret-kind-env" />
                  Read it from an environment variable of the dispatcher
                </label>
                {secretKind === "env" && (
                  <input className="mono" value={secretEnv} onChange={(e) => setSecretEnv(e.target.value)} placeholder="CRM_WEBHOOK_SECRET" aria-label="Environment variable" data-testid="webhook-secret-env" />
                )}
                <FieldErrors path="secret_env" />
              </fieldset>
              <label className="toggle">
                <input type="checkbox" checked={startPaused} onChange={(e) => setStartPaused(e.target.checked)} data-testid="webhook-start-paused" />
                Start paused (events wait until it is resumed; a test event is still sent)
              </label>
            </>
          )}
          <ProblemSummary title="The API did not accept it" problems={problems} />
        </ProblemsProvider>
        {error && (
          <p className="error" role="alert" data-testid="webhook-form-error">
            {error}
          </p>
        )}
        <div className="actions end">
          <button type="button" onClick={onClose} data-testid="webhook-cancel">
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy} data-testid="webhook-save">
            {existing ? "Save" : "Create subscription"}
          </button>
        </div>
      </form>
    </div>
  );
}
