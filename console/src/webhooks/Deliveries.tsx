/** One subscription's deliveries, newest first: status chip, attempts, last HTTP status, error and
 * response time; redeliver one, or every failed one. Refreshed every few seconds while shown, so
 * a test event is seen arriving. */
import { useCallback, useEffect, useState } from "react";
import { ApiError } from "../api";
import { ago, exactTime } from "../agents/format";
import { listDeliveries, redeliver, redeliverFailed, type Delivery, type DeliveryStatus } from "./api";
import { DeliveryChip } from "./chips";

const PAGE_SIZE = 50;
const REFRESH_EVERY_MS = 3000;
const FILTERS: (DeliveryStatus | "")[] = ["", "pending", "delivered", "failed"];

/** "in 40 s", "in 12 min", "in 2 h": when a retry is due. */
function untilText(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.round((new Date(iso).getTime() - now) / 1000));
  if (seconds < 60) return seconds ? `in ${seconds} s` : "now";
  if (seconds < 3600) return `in ${Math.round(seconds / 60)} min`;
  return `in ${Math.round(seconds / 3600)} h`;
}

export function Deliveries({ subscriptionId, refreshKey, onProblem }: { subscriptionId: string; refreshKey: number; onProblem: (e: ApiError | null) => void }) {
  const [filter, setFilter] = useState<DeliveryStatus | "">("");
  const [items, setItems] = useState<Delivery[] | null>(null);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [shown, setShown] = useState(PAGE_SIZE);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const page = await listDeliveries(subscriptionId, filter, shown);
      setItems(page.items);
      setNextCursor(page.next_cursor);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [subscriptionId, filter, shown]);

  useEffect(() => {
    void load();
    const timer = window.setInterval(() => document.visibilityState === "visible" && void load(), REFRESH_EVERY_MS);
    return () => window.clearInterval(timer);
  }, [load, refreshKey]);

  async function act(action: () => Promise<string>) {
    onProblem(null);
    setNotice(null);
    try {
      setNotice(await action());
      await load();
    } catch (e) {
      onProblem(e instanceof ApiError ? e : new ApiError({ type: "about:blank", title: (e as Error).message, status: 0 }));
    }
  }

  const failedShown = (items ?? []).some((d) => d.status === "failed");

  return (
    <section className="card table-card deliveries" data-testid="deliveries">
      <header className="deliveries-head">
        <h2>Deliveries</h2>
        <div className="actions">
          <select value={filter} onChange={(e) => setFilter(e.target.value as DeliveryStatus | "")} aria-label="Delivery status" data-testid="deliveries-filter">
            {FILTERS.map((f) => (
              <option key={f} value={f}>
                {f ? f[0].toUpperCase() + f.slice(1) : "All statuses"}
              </option>
            ))}
          </select>
          <button type="button" onClick={() => void load()} data-testid="deliveries-refresh">
            Refresh
          </button>
          <button
            type="button"
            onClick={() => act(async () => `${(await redeliverFailed(subscriptionId)).redelivered} failed deliveries queued again.`)}
            title={failedShown ? undefined : "Makes every failed (dead-lettered) delivery pending again"}
            data-testid="deliveries-redeliver-failed"
          >
            Redeliver all failed
          </button>
        </div>
      </header>
      {notice && (
        <p className="success slim" data-testid="deliveries-notice">
          {notice}
        </p>
      )}
      {error && <p className="error slim">{error}</p>}
      {items && !items.length && (
        <div className="empty slim" data-testid="deliveries-empty">
          No deliveries{filter ? ` with status ${filter}` : ""} yet. Send a test event to see one.
        </div>
      )}
      {items && items.length > 0 && (
        <table className="list deliveries-table">
          <thead>
            <tr>
              <th>Event</th>
              <th>Status</th>
              <th className="num">Attempts</th>
              <th>Last response</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.id} data-testid="delivery-row" data-delivery-id={d.id} data-status={d.status} data-event-id={d.event_id}>
                <td>
                  <code>{d.event_type ?? "?"}</code>
                  <div className="mono muted small">{d.event_id}</div>
                </td>
                <td>
                  <DeliveryChip status={d.status} />
                  {d.status === "pending" && d.attempts > 0 && d.next_attempt_at && (
                    <div className="hint" title={exactTime(d.next_attempt_at)}>
                      next try {untilText(d.next_attempt_at)}
                    </div>
                  )}
                  {d.delivered_at && <div className="hint" title={exactTime(d.delivered_at)}>{ago(d.delivered_at)}</div>}
                </td>
                <td className="num" data-testid="delivery-attempts">{d.attempts}</td>
                <td data-testid="delivery-response">
                  {d.last_status !== null && <span className={d.last_status < 300 ? "chip ok" : "chip bad"}>HTTP {d.last_status}</span>}
                  {d.last_response_ms !== null && <span className="muted"> {d.last_response_ms} ms</span>}
                  {d.last_error && (
                    <div className="delivery-error" data-testid="delivery-error">
                      {d.last_error}
                    </div>
                  )}
                  {d.last_status === null && !d.last_error && <span className="muted">—</span>}
                </td>
                <td title={exactTime(d.created_at)}>{ago(d.created_at)}</td>
                <td className="row-actions">
                  {d.status !== "pending" && (
                    <button type="button" onClick={() => act(async () => (await redeliver(subscriptionId, d.id), `Delivery of ${d.event_id} queued again.`))} data-testid="delivery-redeliver">
                      Redeliver
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {nextCursor && (
        <div className="list-foot slim">
          <button type="button" className="linkish" onClick={() => setShown((n) => Math.min(n + PAGE_SIZE, 200))} disabled={shown >= 200} data-testid="deliveries-more">
            Show more
          </button>
        </div>
      )}
    </section>
  );
}
