/** `#/webhooks`: the webhook subscriptions (URL, filters, status, last delivery) and
 * `#/webhooks/<id>`: one subscription with its actions (edit, pause / resume, rotate the secret,
 * send a test event, delete) and its deliveries. A generated secret is shown once, right after
 * create or rotate. Viewers see everything; the API refuses their writes and the page shows why. */
import { useCallback, useEffect, useState } from "react";
import { usePageTitle } from "../a11y";
import { ApiError, asApiError } from "../api";
import { ReadOnlyNote } from "../components/ReadOnlyNote";
import { href, navigate } from "../router";
import { ago, exactTime } from "../agents/format";
import { ConfirmDialog, type Confirmation } from "../agents/ConfirmDialog";
import {
  ALL_EVENTS,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  rotateSecret,
  sendTestEvent,
  updateSubscription,
  type SigningSecret,
  type Subscription,
  type SubscriptionWithSecret,
} from "../webhooks/api";
import { DeliveryChip, SubscriptionChip } from "../webhooks/chips";
import { Deliveries } from "../webhooks/Deliveries";
import { SecretReveal } from "../webhooks/SecretReveal";
import { SubscriptionForm } from "../webhooks/SubscriptionForm";
import "./Webhooks.css";

const DAY_S = 86_400;

export function WebhooksPage({ subscriptionId }: { subscriptionId?: string }) {
  return subscriptionId ? <WebhookDetail subscriptionId={subscriptionId} /> : <WebhookList />;
}

function ActionError({ error }: { error: ApiError | null }) {
  if (!error) return null;
  return (
    <div className="error" role="alert" data-testid="webhook-action-error" data-status={error.status}>
      <strong>{error.problem.title}</strong>
      {error.problem.detail && <span>: {error.problem.detail}</span>}
      {error.problem.errors?.length ? (
        <ul>
          {error.problem.errors.map((p, i) => (
            <li key={i}>
              <code>{p.field}</code> {p.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function Filters({ subscription }: { subscription: Subscription }) {
  const all = subscription.event_types.includes(ALL_EVENTS);
  return (
    <div className="chips">
      {all ? <span className="chip neutral">every event</span> : subscription.event_types.map((t) => <span key={t} className="chip">{t}</span>)}
      {subscription.agent_ids ? (
        subscription.agent_ids.map((a) => (
          <span key={a} className="chip neutral mono">
            {a}
          </span>
        ))
      ) : (
        <span className="chip neutral">all agent types</span>
      )}
    </div>
  );
}

function SigningLabel({ secret }: { secret: SigningSecret }) {
  return secret.kind === "env" ? (
    <span>
      env <code>{secret.env}</code>
    </span>
  ) : (
    <code>{secret.prefix}…</code>
  );
}

// -- the list ------------------------------------------------------------------------------

function WebhookList() {
  const [subscriptions, setSubscriptions] = useState<Subscription[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [creating, setCreating] = useState(false);
  const [revealed, setRevealed] = useState<SubscriptionWithSecret | null>(null);
  usePageTitle("Webhooks");

  const load = useCallback(() => listSubscriptions().then(setSubscriptions, (e) => setError(asApiError(e))), []);
  useEffect(() => void load(), [load]);

  function created(saved: Subscription | SubscriptionWithSecret) {
    setCreating(false);
    void load(); // the new row is there behind the secret dialog
    const withSecret = saved as SubscriptionWithSecret;
    if (withSecret.secret) setRevealed(withSecret);
    else navigate(href("webhooks", saved.id));
  }

  return (
    <div className="webhooks">
      <header className="page-head">
        <div>
          <h1>Webhooks</h1>
          <p className="sub">Signed CloudEvents to your systems: end-of-call reports, turns, hand-offs, agent changes. Delivered at least once, retried for hours.</p>
        </div>
        <div className="actions">
          <button type="button" className="primary" onClick={() => setCreating(true)} data-testid="webhooks-new">
            + New subscription
          </button>
        </div>
      </header>
      <ReadOnlyNote testId="webhooks-read-only-note" />
      {error && !creating && <ActionError error={error} />}
      {!subscriptions && !error && <div className="empty">Loading subscriptions…</div>}
      {subscriptions && !subscriptions.length && (
        <div className="empty" data-testid="webhooks-empty">
          No subscriptions yet. Create one to receive events at your URL.
        </div>
      )}
      {subscriptions && subscriptions.length > 0 && (
        <div className="card table-card">
          <table className="list webhooks-table">
            <thead>
              <tr>
                <th>Endpoint</th>
                <th>Status</th>
                <th>Events and agents</th>
                <th>Secret</th>
                <th>Last delivery</th>
              </tr>
            </thead>
            <tbody>
              {subscriptions.map((s) => (
                <tr
                  key={s.id}
                  className="clickable"
                  tabIndex={0}
                  data-testid="webhook-row"
                  data-subscription-id={s.id}
                  data-status={s.status}
                  onClick={() => navigate(href("webhooks", s.id))}
                  onKeyDown={(e) => e.key === "Enter" && navigate(href("webhooks", s.id))}
                >
                  <td>
                    <a className="mono endpoint" href={href("webhooks", s.id)} onClick={(e) => e.stopPropagation()}>
                      {s.url}
                    </a>
                    {s.description && <div className="muted">{s.description}</div>}
                  </td>
                  <td>
                    <SubscriptionChip status={s.status} />
                  </td>
                  <td>
                    <Filters subscription={s} />
                  </td>
                  <td>
                    <SigningLabel secret={s.signing_secret} />
                  </td>
                  <td data-testid="webhook-last-delivery" data-status={s.last_delivery?.status ?? "none"}>
                    {s.last_delivery ? (
                      <>
                        <DeliveryChip status={s.last_delivery.status} />
                        <div className="hint" title={exactTime(s.last_delivery.created_at)}>
                          <code>{s.last_delivery.event_type}</code> {ago(s.last_delivery.created_at)}
                        </div>
                      </>
                    ) : (
                      <span className="muted">none yet</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <SubscriptionForm existing={null} onSaved={created} onClose={() => setCreating(false)} />
      )}
      {revealed?.secret && (
        <SecretReveal secret={revealed.secret} rotated={false} onDone={() => navigate(href("webhooks", revealed.id))} />
      )}
    </div>
  );
}

// -- one subscription ----------------------------------------------------------------------

function WebhookDetail({ subscriptionId }: { subscriptionId: string }) {
  const [subscription, setSubscription] = useState<Subscription | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState(false);
  const [rotating, setRotating] = useState(false);
  const [graceHours, setGraceHours] = useState(24);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [testEvent, setTestEvent] = useState<string | null>(null);
  const [refreshKey, setRefreshKey] = useState(0);
  usePageTitle(subscription ? `Webhook ${hostOf(subscription.url)}` : loadError ? "Webhook not found" : null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(
    () => getSubscription(subscriptionId).then(setSubscription, (e) => setLoadError(asApiError(e))),
    [subscriptionId],
  );
  useEffect(() => void load(), [load]);

  async function act(action: () => Promise<void>) {
    setBusy(true);
    setActionError(null);
    try {
      await action();
    } catch (e) {
      const error = asApiError(e);
      setActionError(error);
      if (error.status === 412) void load(); // someone changed it: show the current version
    } finally {
      setBusy(false);
    }
  }

  if (loadError) {
    return (
      <div className="webhooks">
        <a href={href("webhooks")}>← Webhooks</a>
        <div data-testid="webhook-error">
          <ActionError error={loadError} />
        </div>
      </div>
    );
  }
  if (!subscription) return <div className="empty">Loading subscription…</div>;
  const s = subscription;

  const rotate = () =>
    act(async () => {
      const rotated = await rotateSecret(s.id, Math.round(graceHours * 3600));
      setRotating(false);
      setSubscription(rotated);
      setSecret(rotated.secret);
    });

  return (
    <div className="webhooks" data-testid="webhook-detail" data-subscription-id={s.id} data-status={s.status} data-version={s.version}>
      <a href={href("webhooks")}>← Webhooks</a>
      <header className="page-head">
        <div>
          <h1 className="mono endpoint-title">{s.url}</h1>
          <p className="sub">
            {s.description || "No description"} · <code>{s.id}</code> · v{s.version}
          </p>
        </div>
        <div className="actions">
          <SubscriptionChip status={s.status} />
          <button type="button" disabled={busy} onClick={() => act(async () => setTestEvent((await sendTestEvent(s.id)).event_id))} data-testid="webhook-test">
            Send test event
          </button>
          <button type="button" disabled={busy} onClick={() => setEditing(true)} data-testid="webhook-edit">
            Edit
          </button>
          {s.status === "enabled" ? (
            <button type="button" disabled={busy} onClick={() => act(async () => setSubscription(await updateSubscription(s, { status: "paused" })))} data-testid="webhook-pause">
              Pause
            </button>
          ) : (
            <button type="button" disabled={busy} onClick={() => act(async () => setSubscription(await updateSubscription(s, { status: "enabled" })))} data-testid="webhook-resume">
              Resume
            </button>
          )}
          <button type="button" disabled={busy} onClick={() => setRotating(true)} data-testid="webhook-rotate">
            Rotate secret
          </button>
          <button
            type="button"
            className="danger"
            disabled={busy}
            data-testid="webhook-delete"
            onClick={() =>
              setConfirmation({
                title: "Delete this subscription?",
                body: <p>Nothing more is sent to {s.url}; deliveries still pending are dropped (marked failed).</p>,
                action: "Delete",
                danger: true,
                onConfirm: () =>
                  act(async () => {
                    await deleteSubscription(s.id);
                    navigate(href("webhooks"));
                  }),
              })
            }
          >
            Delete
          </button>
        </div>
      </header>
      <ReadOnlyNote testId="webhooks-read-only-note" />
      <ActionError error={actionError} />
      {testEvent && (
        <p className="success" data-testid="webhook-test-sent" data-event-id={testEvent}>
          Test event <code>{testEvent}</code> queued: it shows in the deliveries below once the dispatcher has sent it.
        </p>
      )}
      {s.status === "paused" && (
        <p className="notice">Paused: new events wait, in order, and are delivered when it is resumed. Test events are still sent.</p>
      )}

      <div className="grid two">
        <section className="card">
          <h2>Filters</h2>
          <Filters subscription={s} />
        </section>
        <section className="card" data-testid="webhook-signing">
          <h2>Signing</h2>
          <dl className="props">
            <dt>Secret</dt>
            <dd data-testid="webhook-signing-current" data-kind={s.signing_secret.kind}>
              <SigningLabel secret={s.signing_secret} />
            </dd>
            {s.previous_signing_secret && (
              <>
                <dt>Previous</dt>
                <dd data-testid="webhook-signing-previous">
                  <SigningLabel secret={s.previous_signing_secret} /> valid until{" "}
                  <span title={exactTime(s.previous_signing_secret.valid_until)}>{exactTime(s.previous_signing_secret.valid_until)}</span> (both signatures are sent)
                </dd>
              </>
            )}
            <dt>Updated</dt>
            <dd title={exactTime(s.updated_at)}>{ago(s.updated_at)}</dd>
          </dl>
        </section>
      </div>

      <Deliveries subscriptionId={s.id} refreshKey={refreshKey} onProblem={setActionError} />

      {editing && (
        <SubscriptionForm
          existing={s}
          onClose={() => setEditing(false)}
          onSaved={(saved) => {
            setEditing(false);
            setSubscription(saved);
            setRefreshKey((k) => k + 1);
          }}
        />
      )}
      {rotating && (
        <div className="modal-backdrop" onClick={() => setRotating(false)}>
          <div className="card modal" role="dialog" aria-modal="true" aria-labelledby="rotate-title" data-testid="webhook-rotate-dialog" onClick={(e) => e.stopPropagation()}>
            <h2 id="rotate-title">Rotate the signing secret</h2>
            <div className="modal-body">
              <p>A new secret is generated and shown once. The current one keeps working for the grace period, so receivers can switch without missing a delivery.</p>
              <label className="field">
                <span>Grace period (hours)</span>
                <input type="number" min={0} max={(7 * DAY_S) / 3600} step={1} value={graceHours} onChange={(e) => setGraceHours(Number(e.target.value))} data-testid="webhook-rotate-grace" />
              </label>
            </div>
            <ActionError error={actionError} />
            <div className="actions end">
              <button type="button" onClick={() => setRotating(false)}>
                Cancel
              </button>
              <button type="button" className="primary" disabled={busy} onClick={rotate} data-testid="webhook-rotate-ok">
                Rotate
              </button>
            </div>
          </div>
        </div>
      )}
      {secret && <SecretReveal secret={secret} rotated onDone={() => setSecret(null)} />}
      <ConfirmDialog confirmation={confirmation} onClose={() => setConfirmation(null)} />
    </div>
  );
}

/** A subscription's host, for the page title (its URL's path may carry a token). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
