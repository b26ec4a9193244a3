/** The audit events about this session (GET /api/v1/events?session_id=): started, ended, … */
import "./sessions.css";
import { useEffect, useState } from "react";
import { ApiError } from "../api";
import { listSessionEvents } from "./api";
import { formatDateTime } from "./format";
import type { AuditEvent } from "./types";

export function SessionEvents({ sessionId, refreshKey }: { sessionId: string; refreshKey: unknown }) {
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    listSessionEvents(sessionId).then(
      (page) => !cancelled && (setEvents(page.items), setError(null)),
      (e: unknown) => !cancelled && setError(e instanceof ApiError ? e.message : String(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [sessionId, refreshKey]);
  if (error) return <p className="error">Could not load the events: {error}</p>;
  if (!events) return <p className="hint">Loading events…</p>;
  if (events.length === 0) return <p className="hint">No events recorded for this session yet.</p>;
  return (
    <ol className="events" data-testid="session-events">
      {[...events].reverse().map((event) => (
        <li key={event.id} className="event" data-testid="session-event" data-type={event.type}>
          <span className="event-dot" aria-hidden="true" />
          <div>
            <div>
              <strong className="mono">{event.type}</strong> <span className="hint">by {event.actor}</span>
            </div>
            <div className="hint">{formatDateTime(event.at)}</div>
            {Object.keys(event.details).length > 0 && (
              <div className="event-details">
                {Object.entries(event.details).map(([key, value]) => (
                  <span key={key} className="chip neutral">
                    {key}: {typeof value === "object" ? JSON.stringify(value) : String(value)}
                  </span>
                ))}
              </div>
            )}
          </div>
        </li>
      ))}
    </ol>
  );
}
