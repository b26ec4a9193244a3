/** `#/channels`: the channel bindings (which agent type or purpose each way in reaches, its
 * status, the last day's traffic) and `#/channels/<id>`: one binding with its settings, the
 * widget's key and embed snippet, enable / disable / edit / delete, and its recent messages.
 * Viewers see everything; the API refuses their writes and the page shows why. */
import { useCallback, useEffect, useState } from "react";
import { usePageTitle } from "../a11y";
import { ApiError, asApiError } from "../api";
import { ReadOnlyNote } from "../components/ReadOnlyNote";
import { href, navigate } from "../router";
import { ago, exactTime } from "../agents/format";
import { ConfirmDialog, type Confirmation } from "../agents/ConfirmDialog";
import {
  KIND_LABELS,
  deleteChannel,
  draftOf,
  getChannel,
  getTraffic,
  listChannels,
  replaceChannel,
  targetOf,
  widgetSnippet,
  type ChannelBinding,
  type ChannelTraffic,
} from "../channels/api";
import { ChannelForm } from "../channels/ChannelForm";
import "./Channels.css";

export function ChannelsPage({ bindingId }: { bindingId?: string }) {
  return bindingId ? <ChannelDetail bindingId={bindingId} /> : <ChannelList />;
}

function ActionError({ error }: { error: ApiError | null }) {
  if (!error) return null;
  return (
    <div className="error" role="alert" data-testid="channel-action-error" data-status={error.status}>
      <strong>{error.problem.title}</strong>
      {error.problem.detail && <span>: {error.problem.detail}</span>}
    </div>
  );
}

export function StatusChip({ enabled }: { enabled: boolean }) {
  return (
    <span className={enabled ? "chip ok" : "chip warn"} data-testid="channel-status" data-enabled={String(enabled)}>
      {enabled ? "enabled" : "disabled"}
    </span>
  );
}

function Counts({ traffic }: { traffic: ChannelTraffic | null | undefined }) {
  if (traffic === undefined) return <span className="muted">…</span>;
  if (traffic === null) return <span className="muted">—</span>;
  const { processed, failed, refused } = traffic.counts;
  return (
    <span className="counts" data-testid="channel-counts" data-processed={processed} data-failed={failed} data-refused={refused}>
      <span>{processed} processed</span>
      <span className={failed ? "bad" : undefined}>{failed} failed</span>
      <span className={refused ? "warn" : undefined}>{refused} refused</span>
    </span>
  );
}

// -- the list ------------------------------------------------------------------------------

function ChannelList() {
  const [bindings, setBindings] = useState<ChannelBinding[] | null>(null);
  const [traffic, setTraffic] = useState<Record<string, ChannelTraffic | null>>({});
  const [error, setError] = useState<ApiError | null>(null);
  const [creating, setCreating] = useState(false);
  usePageTitle("Channels");

  const load = useCallback(async () => {
    try {
      const found = await listChannels();
      setBindings(found);
      const pairs = await Promise.all(found.map(async (b) => [b.binding_id, await getTraffic(b.binding_id).catch(() => null)] as const));
      setTraffic(Object.fromEntries(pairs));
    } catch (e) {
      setError(asApiError(e));
    }
  }, []);
  useEffect(() => void load(), [load]);

  return (
    <div className="channels">
      <header className="page-head">
        <div>
          <h1>Channels</h1>
          <p className="sub">Ways in besides a LiveKit client: a Telegram bot, the website widget, the HTTP chat API, an AMQP queue. Each routes to an agent type or a routing purpose, like any room's metadata.</p>
        </div>
        <div className="actions">
          <button type="button" className="primary" onClick={() => setCreating(true)} data-testid="channels-new">
            + New binding
          </button>
        </div>
      </header>
      <ReadOnlyNote testId="channels-read-only-note" />
      <ActionError error={error} />
      {!bindings && !error && <div className="empty">Loading channels…</div>}
      {bindings && !bindings.length && (
        <div className="empty" data-testid="channels-empty">
          No channel bindings yet. Create one to reach an agent from Telegram, a web page, a backend or a queue.
        </div>
      )}
      {bindings && bindings.length > 0 && (
        <div className="card table-card">
          <table className="list channels-table">
            <thead>
              <tr>
                <th>Binding</th>
                <th>Kind</th>
                <th>Routes to</th>
                <th>Status</th>
                <th>Last 24 hours</th>
              </tr>
            </thead>
            <tbody>
              {bindings.map((b) => (
                <tr
                  key={b.binding_id}
                  className="clickable"
                  data-testid="channel-row"
                  data-binding-id={b.binding_id}
                  data-kind={b.kind}
                  data-enabled={String(b.enabled)}
                  onClick={() => navigate(href("channels", b.binding_id))}
                >
                  <td>
                    <a className="mono" href={href("channels", b.binding_id)} onClick={(e) => e.stopPropagation()}>
                      {b.binding_id}
                    </a>
                  </td>
                  <td>{KIND_LABELS[b.kind] ?? b.kind}</td>
                  <td className="mono">{targetOf(b)}</td>
                  <td>
                    <StatusChip enabled={b.enabled} />
                  </td>
                  <td>
                    <Counts traffic={traffic[b.binding_id]} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <ChannelForm
          existing={null}
          onClose={() => setCreating(false)}
          onSaved={() => {
            setCreating(false);
            void load();
          }}
        />
      )}
    </div>
  );
}

// -- one binding ----------------------------------------------------------------------------

function ChannelDetail({ bindingId }: { bindingId: string }) {
  const [binding, setBinding] = useState<ChannelBinding | null>(null);
  const [traffic, setTraffic] = useState<ChannelTraffic | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState(false);
  const [busy, setBusy] = useState(false);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  usePageTitle(binding ? `Channel ${binding.binding_id}` : loadError ? "Channel not found" : null);

  const load = useCallback(() => {
    getChannel(bindingId).then(setBinding, (e) => setLoadError(asApiError(e)));
    getTraffic(bindingId).then(setTraffic, () => setTraffic(null));
  }, [bindingId]);
  useEffect(() => load(), [load]);

  async function act(action: () => Promise<void>) {
    setBusy(true);
    setActionError(null);
    try {
      await action();
    } catch (e) {
      const error = asApiError(e);
      setActionError(error);
      if (error.status === 412) load(); // someone changed it: show the current version
    } finally {
      setBusy(false);
    }
  }

  if (loadError) {
    return (
      <div className="channels">
        <a href={href("channels")}>← Channels</a>
        <h1 className="visually-hidden">Channel not found</h1>
        <div data-testid="channel-error">
          <ActionError error={loadError} />
        </div>
      </div>
    );
  }
  if (!binding) return <div className="empty">Loading binding…</div>;
  const b = binding;
  const toggle = () => act(async () => setBinding(await replaceChannel(b, { ...draftOf(b), enabled: !b.enabled })));

  return (
    <div className="channels" data-testid="channel-detail" data-binding-id={b.binding_id} data-enabled={String(b.enabled)} data-version={b.version}>
      <a href={href("channels")}>← Channels</a>
      <header className="page-head">
        <div>
          <h1 className="mono binding-title">{b.binding_id}</h1>
          <p className="sub">
            {KIND_LABELS[b.kind] ?? b.kind} → <span className="mono">{targetOf(b)}</span> · v{b.version} · updated{" "}
            <span title={exactTime(b.updated_at)}>{ago(b.updated_at)}</span>
          </p>
        </div>
        <div className="actions">
          <StatusChip enabled={b.enabled} />
          <button type="button" disabled={busy} onClick={toggle} data-testid="channel-toggle">
            {b.enabled ? "Disable" : "Enable"}
          </button>
          <button type="button" disabled={busy} onClick={() => setEditing(true)} data-testid="channel-edit">
            Edit
          </button>
          <button
            type="button"
            className="danger"
            disabled={busy}
            data-testid="channel-delete"
            onClick={() =>
              setConfirmation({
                title: `Delete ${b.binding_id}?`,
                body: <p>The channels process stops it at its next reload; its users get no answer from then on. Its traffic records stay.</p>,
                action: "Delete",
                danger: true,
                onConfirm: () =>
                  act(async () => {
                    await deleteChannel(b.binding_id);
                    navigate(href("channels"));
                  }),
              })
            }
          >
            Delete
          </button>
        </div>
      </header>
      <ReadOnlyNote testId="channels-read-only-note" />
      <ActionError error={actionError} />
      {!b.enabled && <p className="notice">Disabled: messages to this binding are refused (recorded as "disabled").</p>}
      {!b.widget && <Runner traffic={traffic} />}

      <div className="grid two">
        <section className="card" aria-labelledby="channel-settings-title">
          <h2 id="channel-settings-title">Settings</h2>
          <Settings binding={b} />
        </section>
        {b.widget ? <WidgetEmbed publishableKey={b.widget.publishable_key ?? ""} /> : <Limits binding={b} />}
      </div>

      <Traffic traffic={traffic} bindingId={b.binding_id} />

      {editing && (
        <ChannelForm
          existing={b}
          onClose={() => setEditing(false)}
          onSaved={(saved) => {
            setEditing(false);
            setBinding(saved);
          }}
        />
      )}
      <ConfirmDialog confirmation={confirmation} onClose={() => setConfirmation(null)} />
    </div>
  );
}

function Settings({ binding: b }: { binding: ChannelBinding }) {
  return (
    <dl className="props">
      {b.telegram && (
        <>
          <dt>Bot token</dt>
          <dd>
            env <code>{b.telegram.token_env}</code>
          </dd>
          <dt>Bot API</dt>
          <dd className="mono">{b.telegram.api_base_url}</dd>
          <dt>Updates by</dt>
          <dd>
            {b.telegram.mode === "webhook" ? (
              <>
                webhook (secret in env <code>{b.telegram.webhook_secret_env}</code>)
              </>
            ) : (
              "long polling"
            )}
          </dd>
        </>
      )}
      {b.widget && (
        <>
          <dt>Origins</dt>
          <dd className="mono">{b.widget.origins.join(", ")}</dd>
          <dt>May also ask for</dt>
          <dd className="mono">{[...b.widget.purposes.map((p) => `purpose: ${p}`), ...b.widget.agent_ids].join(", ") || "nothing else"}</dd>
        </>
      )}
      {b.http && (
        <>
          <dt>API keys</dt>
          <dd className="mono">{b.http.keys.join(", ")}</dd>
        </>
      )}
      {b.amqp && (
        <>
          <dt>Broker URL</dt>
          <dd>
            env <code>{b.amqp.url_env}</code>
          </dd>
          <dt>Queue</dt>
          <dd className="mono">
            {b.amqp.queue} (dead letters: {b.amqp.queue}.dead), prefetch {b.amqp.prefetch}
          </dd>
        </>
      )}
      <dt>User ids</dt>
      {b.widget ? (
        <dd>none: a visitor is anonymous (a browser asserts no identity), so no per-user memory</dd>
      ) : (
        <dd className="mono">{b.user_id_prefix ?? `${b.kind}:${b.binding_id}:`}…</dd>
      )}
    </dl>
  );
}

function Limits({ binding: b }: { binding: ChannelBinding }) {
  return (
    <section className="card channel-limits" aria-labelledby="channel-limits-title">
      <h2 id="channel-limits-title">Limits</h2>
      <dl className="props">
        <dt>Idle conversation</dt>
        <dd>closes after {b.idle_ttl_s} s</dd>
        <dt>Per user</dt>
        <dd>
          {b.rate_limit.messages} messages per {b.rate_limit.window_s} s
        </dd>
        <dt>Longest message</dt>
        <dd>{b.max_message_chars} characters</dd>
      </dl>
    </section>
  );
}

function WidgetEmbed({ publishableKey }: { publishableKey: string }) {
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);
  const snippet = widgetSnippet(publishableKey);
  async function copy() {
    try {
      await navigator.clipboard.writeText(snippet);
      setCopied("yes");
    } catch {
      setCopied("failed"); // no clipboard permission (e.g. plain http): the text is selectable
    }
  }
  return (
    <section className="card widget-embed" aria-labelledby="channel-embed-title">
      <h2 id="channel-embed-title">Embed on a page</h2>
      <label className="field">
        <span>Publishable key (not a secret; read-only)</span>
        <input className="mono" readOnly value={publishableKey} data-testid="channel-publishable-key" />
      </label>
      <label className="field">
        <span>Script tag</span>
        <textarea className="mono" readOnly rows={3} value={snippet} data-testid="channel-snippet" />
      </label>
      <button type="button" onClick={copy} data-testid="channel-copy-snippet">
        Copy the tag
      </button>
      {copied === "yes" && <span className="hint" role="status"> Copied.</span>}
      {copied === "failed" && <span className="hint" role="status"> The browser refused the clipboard: select the tag and copy it.</span>}
    </section>
  );
}

/** The channels service's view: a bad token or an unreachable broker shows here, with why. */
function Runner({ traffic }: { traffic: ChannelTraffic | null }) {
  if (!traffic) return null;
  const runner = traffic.runner;
  if (!runner) {
    return (
      <p className="notice" role="status" data-testid="channel-runner" data-state="unknown">
        No channels service has picked this binding up yet (is <span className="mono">python -m channels serve</span> running?).
      </p>
    );
  }
  return (
    <p className={runner.state === "error" ? "notice" : "sub"} role="status" data-testid="channel-runner" data-state={runner.state}>
      Channels service: <strong>{runner.state}</strong>
      {runner.error ? <>: {runner.error}</> : null} · <span title={exactTime(runner.at)}>{ago(runner.at)}</span>
    </p>
  );
}

function Traffic({ traffic, bindingId }: { traffic: ChannelTraffic | null; bindingId: string }) {
  return (
    <section className="card table-card channel-traffic" aria-labelledby="channel-traffic-title" data-testid="channel-traffic">
      <div className="traffic-head">
        <h2 id="channel-traffic-title">Recent traffic</h2>
        {traffic && (
          <p className="sub">
            Last 24 hours: <Counts traffic={traffic} /> ·{" "}
            <a href={`${href("sessions")}?channel=${encodeURIComponent(bindingId)}`} data-testid="channel-sessions-link">
              {traffic.sessions_24h} sessions
            </a>
          </p>
        )}
      </div>
      {!traffic || !traffic.recent.length ? (
        <div className="empty slim" data-testid="channel-traffic-empty">
          No messages yet.
        </div>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th>When</th>
              <th>Status</th>
              <th>User</th>
              <th>Conversation</th>
              <th className="num">Reply (ms)</th>
              <th>Session</th>
            </tr>
          </thead>
          <tbody>
            {traffic.recent.map((m) => (
              <tr key={m.id} data-testid="channel-message-row" data-status={m.status}>
                <td title={exactTime(m.at)}>{ago(m.at)}</td>
                <td>
                  <span className={m.status === "processed" ? "chip ok" : m.status === "failed" ? "chip bad" : "chip warn"}>{m.status}</span>
                  {m.error && (
                    <div className="hint">
                      <code>{m.error.code}</code> {m.error.message}
                    </div>
                  )}
                </td>
                <td className="mono">{m.user_id ?? "—"}</td>
                <td className="mono">{m.conversation_id ?? "—"}</td>
                <td className="num">{m.reply_ms != null ? Math.round(m.reply_ms) : "—"}</td>
                <td>{m.session_id ? <a href={href("sessions", m.session_id)}>{m.session_id}</a> : <span className="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
