/** Create or edit a channel binding: its id and kind (fixed once created), what it routes to
 * (an agent type or a routing purpose), whether it is enabled, the kind's settings (env var
 * NAMES, never a secret) and its limits. The API checks everything (the model, the egress
 * policy for the env vars) and its 422 paths show next to the fields they name. */
import { useState, type FormEvent, type ReactNode } from "react";
import { ApiError, type FieldProblem } from "../api";
import { FieldErrors, ProblemsProvider, ProblemSummary } from "../agents/problems";
import {
  KINDS,
  KIND_LABELS,
  createChannel,
  draftOf,
  replaceChannel,
  type BindingDraft,
  type ChannelBinding,
  type ChannelKind,
} from "./api";

interface Props {
  existing: ChannelBinding | null;
  onSaved: (saved: ChannelBinding) => void;
  onClose: () => void;
}

/** `a, b` or one per line -> ["a", "b"]. */
const listFrom = (text: string) => text.split(/[\s,]+/).filter(Boolean);
const textOf = (values: string[] | undefined | null) => (values ?? []).join(", ");
const numberOr = (text: string, fallback: number) => (text.trim() === "" ? fallback : Number(text));

function Field({ label, path, hint, nested, children }: { label: string; path: string; hint?: ReactNode; nested?: boolean; children: ReactNode }) {
  return (
    <label className="field">
      <span>{label}</span>
      {children}
      {hint && <span className="hint">{hint}</span>}
      <FieldErrors path={path} nested={nested} />
    </label>
  );
}

export function ChannelForm({ existing, onSaved, onClose }: Props) {
  const [bindingId, setBindingId] = useState(existing?.binding_id ?? "");
  const [kind, setKind] = useState<ChannelKind>(existing?.kind ?? "telegram");
  const [targetBy, setTargetBy] = useState<"agent" | "purpose">(existing?.purpose ? "purpose" : "agent");
  const [agentId, setAgentId] = useState(existing?.agent_id ?? "");
  const [purpose, setPurpose] = useState(existing?.purpose ?? "");
  const [enabled, setEnabled] = useState(existing?.enabled ?? true);
  // Telegram
  const [tokenEnv, setTokenEnv] = useState(existing?.telegram?.token_env ?? "");
  const [apiBaseUrl, setApiBaseUrl] = useState(existing?.telegram?.api_base_url ?? "https://api.telegram.org");
  const [mode, setMode] = useState<"polling" | "webhook">(existing?.telegram?.mode ?? "polling");
  const [webhookSecretEnv, setWebhookSecretEnv] = useState(existing?.telegram?.webhook_secret_env ?? "");
  // Widget
  const [origins, setOrigins] = useState(textOf(existing?.widget?.origins));
  const [widgetPurposes, setWidgetPurposes] = useState(textOf(existing?.widget?.purposes));
  const [widgetAgents, setWidgetAgents] = useState(textOf(existing?.widget?.agent_ids));
  // HTTP chat API
  const [httpKeys, setHttpKeys] = useState(textOf(existing?.http?.keys));
  // AMQP
  const [urlEnv, setUrlEnv] = useState(existing?.amqp?.url_env ?? "");
  const [queue, setQueue] = useState(existing?.amqp?.queue ?? "");
  const [prefetch, setPrefetch] = useState(String(existing?.amqp?.prefetch ?? 4));
  // Limits
  const [idleTtl, setIdleTtl] = useState(String(existing?.idle_ttl_s ?? 300));
  const [rateMessages, setRateMessages] = useState(String(existing?.rate_limit.messages ?? 20));
  const [rateWindow, setRateWindow] = useState(String(existing?.rate_limit.window_s ?? 60));
  const [maxChars, setMaxChars] = useState(String(existing?.max_message_chars ?? 4000));
  const [prefix, setPrefix] = useState(existing?.user_id_prefix ?? "");

  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  function draft(): BindingDraft {
    const base = existing ? draftOf(existing) : null;
    return {
      binding_id: bindingId.trim(),
      kind,
      enabled,
      agent_id: targetBy === "agent" ? agentId.trim() || null : null,
      purpose: targetBy === "purpose" ? purpose.trim() || null : null,
      user_details: base?.user_details ?? {},
      user_id_prefix: prefix.trim() === "" ? null : prefix,
      idle_ttl_s: numberOr(idleTtl, 300),
      rate_limit: { messages: numberOr(rateMessages, 20), window_s: numberOr(rateWindow, 60) },
      max_message_chars: numberOr(maxChars, 4000),
      telegram:
        kind === "telegram"
          ? { token_env: tokenEnv.trim(), api_base_url: apiBaseUrl.trim(), mode, webhook_secret_env: webhookSecretEnv.trim() || null }
          : null,
      widget: kind === "widget" ? { origins: listFrom(origins), purposes: listFrom(widgetPurposes), agent_ids: listFrom(widgetAgents) } : null,
      http: kind === "http" ? { keys: listFrom(httpKeys) } : null,
      amqp: kind === "amqp" ? { url_env: urlEnv.trim(), queue: queue.trim(), prefetch: numberOr(prefetch, 4) } : null,
    };
  }

  async function save(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setProblems([]);
    setError(null);
    try {
      onSaved(existing ? await replaceChannel(existing, draft()) : await createChannel(draft()));
    } catch (e) {
      if (e instanceof ApiError && e.status === 422 && e.problem.errors?.length) setProblems(e.problem.errors);
      else setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="modal-backdrop" onClick={onClose}>
      <form className="card modal wide channel-form" role="dialog" aria-modal="true" aria-labelledby="channel-form-title" onSubmit={save} onClick={(e) => e.stopPropagation()} data-testid="channel-form">
        <h2 id="channel-form-title">{existing ? `Edit ${existing.binding_id}` : "New channel binding"}</h2>
        <ProblemsProvider problems={problems}>
          <div className="grid two">
            <Field label="Binding id" path="binding_id" hint={existing ? "Fixed once created." : "Lower case, digits, - or _."}>
              <input className="mono" autoFocus={!existing} disabled={!!existing} value={bindingId} onChange={(e) => setBindingId(e.target.value)} placeholder="shop-telegram" data-testid="channel-id" />
            </Field>
            <Field label="Kind" path="kind">
              <select value={kind} disabled={!!existing} onChange={(e) => setKind(e.target.value as ChannelKind)} data-testid="channel-kind">
                {KINDS.map((k) => (
                  <option key={k} value={k}>
                    {KIND_LABELS[k]}
                  </option>
                ))}
              </select>
            </Field>
          </div>

          <fieldset className="field">
            <legend>Routes to</legend>
            <label className="toggle">
              <input type="radio" name="channel-target" checked={targetBy === "agent"} onChange={() => setTargetBy("agent")} data-testid="channel-target-agent" />
              An agent type
            </label>
            <label className="toggle">
              <input type="radio" name="channel-target" checked={targetBy === "purpose"} onChange={() => setTargetBy("purpose")} data-testid="channel-target-purpose" />
              A routing purpose (the routing rules pick the type)
            </label>
            {targetBy === "agent" ? (
              <Field label="Agent type id" path="agent_id">
                <input className="mono" value={agentId} onChange={(e) => setAgentId(e.target.value)} placeholder="support-agent-v1" data-testid="channel-agent-id" />
              </Field>
            ) : (
              <Field label="Purpose" path="purpose">
                <input value={purpose} onChange={(e) => setPurpose(e.target.value)} placeholder="sales" data-testid="channel-purpose" />
              </Field>
            )}
          </fieldset>

          <label className="toggle">
            <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} data-testid="channel-enabled" />
            Enabled (a disabled binding answers nothing)
          </label>

          <fieldset className="field kind-settings" data-testid="channel-settings" data-kind={kind}>
            <legend>{KIND_LABELS[kind]} settings</legend>
            <FieldErrors path={kind} />
            {kind === "telegram" && (
              <>
                <Field label="Bot token env var" path="telegram.token_env" hint="The NAME of the variable holding the token; the egress policy (EGRESS_SECRETS) must let it go to the Bot API's host.">
                  <input className="mono" value={tokenEnv} onChange={(e) => setTokenEnv(e.target.value)} placeholder="SHOP_TELEGRAM_TOKEN" data-testid="channel-telegram-token-env" />
                </Field>
                <Field label="Bot API base URL" path="telegram.api_base_url">
                  <input className="mono" value={apiBaseUrl} onChange={(e) => setApiBaseUrl(e.target.value)} data-testid="channel-telegram-base-url" />
                </Field>
                <Field label="Updates by" path="telegram.mode">
                  <select value={mode} onChange={(e) => setMode(e.target.value as "polling" | "webhook")} data-testid="channel-telegram-mode">
                    <option value="polling">Long polling</option>
                    <option value="webhook">Webhook</option>
                  </select>
                </Field>
                {mode === "webhook" && (
                  <Field label="Webhook secret env var" path="telegram.webhook_secret_env" hint="Telegram sends its value in X-Telegram-Bot-Api-Secret-Token; updates without it are refused.">
                    <input className="mono" value={webhookSecretEnv} onChange={(e) => setWebhookSecretEnv(e.target.value)} placeholder="SHOP_TELEGRAM_WEBHOOK_SECRET" data-testid="channel-telegram-secret-env" />
                  </Field>
                )}
              </>
            )}
            {kind === "widget" && (
              <>
                <Field label="Allowed origins" path="widget.origins" nested hint="Exact origins of the pages that embed it, e.g. https://shop.example (comma-separated).">
                  <input className="mono" value={origins} onChange={(e) => setOrigins(e.target.value)} placeholder="https://shop.example" data-testid="channel-widget-origins" />
                </Field>
                <Field label="Other purposes the page may ask for" path="widget.purposes" nested>
                  <input value={widgetPurposes} onChange={(e) => setWidgetPurposes(e.target.value)} placeholder="none" data-testid="channel-widget-purposes" />
                </Field>
                <Field label="Other agent types the page may ask for" path="widget.agent_ids" nested>
                  <input className="mono" value={widgetAgents} onChange={(e) => setWidgetAgents(e.target.value)} placeholder="none" data-testid="channel-widget-agent-ids" />
                </Field>
                <p className="hint">The publishable key is generated when the binding is created (it is not a secret: it sits in the page).</p>
              </>
            )}
            {kind === "http" && (
              <Field label="API keys that may call it" path="http.keys" nested hint="Names of the admin API's keys (role token), comma-separated.">
                <input className="mono" value={httpKeys} onChange={(e) => setHttpKeys(e.target.value)} placeholder="shop-backend" data-testid="channel-http-keys" />
              </Field>
            )}
            {kind === "amqp" && (
              <>
                <Field label="Broker URL env var" path="amqp.url_env" hint="The NAME of the variable holding amqp://user:pass@host:port/vhost; listed in EGRESS_SECRETS.">
                  <input className="mono" value={urlEnv} onChange={(e) => setUrlEnv(e.target.value)} placeholder="ORDERS_AMQP_URL" data-testid="channel-amqp-url-env" />
                </Field>
                <Field label="Queue" path="amqp.queue" hint="Declared durable; poison messages go to <queue>.dead.">
                  <input className="mono" value={queue} onChange={(e) => setQueue(e.target.value)} placeholder="orders.questions" data-testid="channel-amqp-queue" />
                </Field>
                <Field label="Prefetch" path="amqp.prefetch">
                  <input type="number" min={1} max={100} value={prefetch} onChange={(e) => setPrefetch(e.target.value)} data-testid="channel-amqp-prefetch" />
                </Field>
              </>
            )}
          </fieldset>

          <details className="channel-limits">
            <summary>Limits and user ids</summary>
            <div className="grid two">
              <Field label="Idle conversation closes after (s)" path="idle_ttl_s">
                <input type="number" min={5} max={86400} value={idleTtl} onChange={(e) => setIdleTtl(e.target.value)} data-testid="channel-idle-ttl" />
              </Field>
              <Field label="Longest message (characters)" path="max_message_chars">
                <input type="number" min={1} max={32000} value={maxChars} onChange={(e) => setMaxChars(e.target.value)} data-testid="channel-max-chars" />
              </Field>
              <Field label="Messages per user" path="rate_limit.messages">
                <input type="number" min={1} value={rateMessages} onChange={(e) => setRateMessages(e.target.value)} data-testid="channel-rate-messages" />
              </Field>
              <Field label="…per window (s)" path="rate_limit.window_s">
                <input type="number" min={1} value={rateWindow} onChange={(e) => setRateWindow(e.target.value)} data-testid="channel-rate-window" />
              </Field>
            </div>
            <Field label="User id prefix" path="user_id_prefix" hint={`Blank: ${kind}:${bindingId || "<binding>"}: before the channel's own user id.`}>
              <input className="mono" value={prefix} onChange={(e) => setPrefix(e.target.value)} data-testid="channel-user-prefix" />
            </Field>
          </details>

          <ProblemSummary title="The API did not accept it" problems={problems} testId="channel-problems" />
        </ProblemsProvider>
        {error && (
          <p className="error" role="alert" data-testid="channel-form-error">
            {error}
          </p>
        )}
        <div className="actions end">
          <button type="button" onClick={onClose} data-testid="channel-cancel">
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy} data-testid="channel-save">
            {existing ? "Save" : "Create binding"}
          </button>
        </div>
      </form>
    </div>
  );
}
