/** `#/sessions`: every recorded session, newest first, filtered by agent type, status, user and
 * start time (the filters live in the URL), paged by `next_cursor`, optionally auto-refreshed. */
import { useCallback, useEffect, useRef, useState } from "react";
import { usePageTitle } from "../a11y";
import { ApiError } from "../api";
import { href, navigate } from "../router";
import type { AgentConfig } from "../types";
import { listAllAgents, listSessions } from "../sessions/api";
import {
  apiFilter,
  filtersFromQuery,
  hasFilters,
  isoFromLocalInput,
  localInputValue,
  queryFromFilters,
  type ListFilters,
} from "../sessions/filters";
import { formatDateTime, formatDuration, formatRelative, humanize, sessionSeconds } from "../sessions/format";
import { SESSION_STATUSES } from "../sessions/status";
import { SessionStatusChip } from "../sessions/StatusChip";
import type { SessionSummary } from "../sessions/types";
import { ChannelLabel } from "../sessions/ChannelLabel";
import "./SessionList.css";

const PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 200; // the API's limit
const REFRESH_EVERY_MS = 5000;
const USER_FILTER_DELAY_MS = 400;

interface Listing {
  items: SessionSummary[];
  nextCursor: string | null;
  loadedAt: number;
  /** The filters (as in the URL) these rows answer: until the next filter's rows arrive, the
   * page shows the last ones, and a test (or a script) can tell which they are. */
  filterKey: string;
}

export function SessionList({ query }: { query: URLSearchParams }) {
  const filters = filtersFromQuery(query);
  const filterKey = queryFromFilters(filters);
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [autoRefresh, setAutoRefresh] = useState(false);
  usePageTitle("Sessions");
  const shown = useRef(PAGE_SIZE); // how many rows "Load more" brought in: a refresh keeps them

  const setFilters = useCallback(
    (change: Partial<ListFilters>) => navigate(`${href("sessions")}${queryFromFilters({ ...filtersFromQuery(query), ...change })}`),
    [query],
  );

  const load = useCallback(
    async (limit: number) => {
      try {
        const page = await listSessions(apiFilter(filtersFromQuery(new URLSearchParams(filterKey))), null, limit);
        setListing({ items: page.items, nextCursor: page.next_cursor, loadedAt: Date.now(), filterKey });
        setError(null);
      } catch (e) {
        setError(toApiError(e));
      }
    },
    [filterKey],
  );

  useEffect(() => {
    shown.current = PAGE_SIZE;
    setListing(null);
    void load(PAGE_SIZE);
  }, [load]);

  useEffect(() => {
    if (!autoRefresh) return;
    const timer = window.setInterval(() => void load(Math.min(shown.current, MAX_PAGE_SIZE)), REFRESH_EVERY_MS);
    return () => window.clearInterval(timer);
  }, [autoRefresh, load]);

  const loadMore = async () => {
    if (!listing?.nextCursor) return;
    setLoadingMore(true);
    try {
      const page = await listSessions(apiFilter(filters), listing.nextCursor, PAGE_SIZE);
      shown.current = listing.items.length + page.items.length;
      setListing({ ...listing, items: [...listing.items, ...page.items], nextCursor: page.next_cursor });
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <div className="session-list" data-testid="sessions" data-shown-filters={listing?.filterKey}>
      <div className="page-head">
        <div>
          <h1>Sessions</h1>
          <p className="sub">Every conversation the worker recorded: who, which agent type, how it was routed and how it ended.</p>
        </div>
        <div className="actions">
          <label className="toggle" title={`Reload the list every ${REFRESH_EVERY_MS / 1000} s`}>
            <input type="checkbox" checked={autoRefresh} onChange={(e) => setAutoRefresh(e.target.checked)} data-testid="sessions-auto-refresh" />
            <span>Auto-refresh</span>
            {autoRefresh && <span className="live-dot" aria-hidden="true" />}
          </label>
          <button onClick={() => void load(Math.min(shown.current, MAX_PAGE_SIZE))} data-testid="sessions-refresh">Refresh</button>
        </div>
      </div>
      <Filters filters={filters} onChange={setFilters} error={error} />
      {error && !isFilterError(error) && <ListError error={error} />}
      {!listing && !error && <div className="empty">Loading sessions…</div>}
      {listing && listing.items.length === 0 && <EmptyList filtered={hasFilters(filters)} onClear={() => navigate(href("sessions"))} />}
      {listing && listing.items.length > 0 && (
        <>
          <div className="card table-card">
            <table className="list sessions-table">
              <thead>
                <tr>
                  <th>Started</th>
                  <th>Agent type</th>
                  <th>Status</th>
                  <th>User</th>
                  <th className="num">Duration</th>
                  <th className="num">Turns</th>
                  <th>End reason</th>
                </tr>
              </thead>
              <tbody>
                {listing.items.map((session) => (
                  <SessionRow key={session.session_id} session={session} now={listing.loadedAt} />
                ))}
              </tbody>
            </table>
          </div>
          <div className="list-foot">
            <span className="hint" data-testid="sessions-count">
              {listing.items.length} session{listing.items.length === 1 ? "" : "s"} shown{listing.nextCursor ? ", more older ones" : ""}
            </span>
            {listing.nextCursor && (
              <button onClick={() => void loadMore()} disabled={loadingMore} data-testid="sessions-more">
                {loadingMore ? "Loading…" : "Load older sessions"}
              </button>
            )}
          </div>
        </>
      )}
    </div>
  );
}

function SessionRow({ session, now }: { session: SessionSummary; now: number }) {
  const link = href("sessions", session.session_id);
  const seconds = sessionSeconds(session, now);
  const ending = session.end_reason ?? (session.status === "refused" ? session.reason : null);
  return (
    <tr className="clickable" data-testid="session-row" data-session-id={session.session_id} data-status={session.status ?? ""} onClick={() => navigate(link)}>
      <td>
        <a href={link} className="started" onClick={(e) => e.stopPropagation()}>
          {formatDateTime(session.started_at)}
        </a>
        <div className="hint">{formatRelative(session.started_at, now)}</div>
      </td>
      <td>
        {session.agent_id ? <span className="mono">{session.agent_id}</span> : <span className="muted">no agent</span>}
        {session.agent_version != null && <span className="hint"> v{session.agent_version}</span>}
      </td>
      <td>
        <SessionStatusChip status={session.status} />
      </td>
      <td>
        {session.user_id ? <span className="mono">{session.user_id}</span> : <span className="muted">anonymous</span>}
        {session.channel && (
          <div>
            <ChannelLabel channel={session.channel} />
          </div>
        )}
      </td>
      <td className="num">
        {formatDuration(seconds)}
        {session.status === "active" && <div className="hint">so far</div>}
      </td>
      <td className="num">{session.turn_count ?? "—"}</td>
      <td className="end-reason">{ending ? humanize(ending) : <span className="muted">—</span>}</td>
    </tr>
  );
}

function Filters({ filters, onChange, error }: { filters: ListFilters; onChange: (change: Partial<ListFilters>) => void; error: ApiError | null }) {
  const [agents, setAgents] = useState<AgentConfig[] | null>(null);

  useEffect(() => {
    listAllAgents().then(setAgents, () => setAgents([]));
  }, []);

  const agentIds = (agents ?? []).map((a) => a.agent_id);
  if (filters.agent && !agentIds.includes(filters.agent)) agentIds.push(filters.agent);
  const fieldError = (name: string) => error?.fieldError(name);

  return (
    <div className="card filters" role="search" aria-label="Filter sessions">
      <label className="field">
        <span>Agent type</span>
        <select value={filters.agent} onChange={(e) => onChange({ agent: e.target.value })} data-testid="filter-agent">
          <option value="">All agent types</option>
          {agentIds.map((id) => (
            <option key={id} value={id}>
              {agents?.find((a) => a.agent_id === id)?.name ?? id}
            </option>
          ))}
        </select>
      </label>
      <label className="field">
        <span>Status</span>
        <select value={filters.status} onChange={(e) => onChange({ status: e.target.value })} data-testid="filter-status">
          <option value="">Any status</option>
          {SESSION_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <TextFilter label="User" placeholder="user_id, exact" value={filters.user} onChange={(user) => onChange({ user })} testId="filter-user" />
      <TextFilter label="Room" placeholder="room name, exact" value={filters.room} onChange={(room) => onChange({ room })} testId="filter-room" />
      <TextFilter label="Channel" placeholder="binding id, exact" value={filters.channel} onChange={(channel) => onChange({ channel })} testId="filter-channel" />
      <label className={`field${fieldError("from") ? " invalid" : ""}`}>
        <span>Started from</span>
        <input type="datetime-local" value={localInputValue(filters.from)} onChange={(e) => onChange({ from: isoFromLocalInput(e.target.value) })} data-testid="filter-from" />
        {fieldError("from") && <span className="field-error" data-testid="field-error" data-field="from">{fieldError("from")}</span>}
      </label>
      <label className={`field${fieldError("to") ? " invalid" : ""}`}>
        <span>Started before</span>
        <input type="datetime-local" value={localInputValue(filters.to)} onChange={(e) => onChange({ to: isoFromLocalInput(e.target.value) })} data-testid="filter-to" />
        {fieldError("to") && <span className="field-error" data-testid="field-error" data-field="to">{fieldError("to")}</span>}
      </label>
      <div className="filters-clear">
        <button className="ghost" disabled={!hasFilters(filters)} onClick={() => onChange({ agent: "", status: "", user: "", room: "", channel: "", from: "", to: "" })}>
          Clear
        </button>
      </div>
    </div>
  );
}

function EmptyList({ filtered, onClear }: { filtered: boolean; onClear: () => void }) {
  if (filtered) {
    return (
      <div className="empty" data-testid="sessions-empty">
        No sessions match these filters. <button className="linkish" onClick={onClear}>Clear the filters</button> or widen the time range.
      </div>
    );
  }
  return (
    <div className="empty" data-testid="sessions-empty">
      <strong>No sessions yet.</strong> <a href={href("playground")}>Open the Playground</a> and talk to an agent type: every conversation is recorded
      here with its transcript, turns and summary.
    </div>
  );
}

function ListError({ error }: { error: ApiError }) {
  const advice =
    error.status === 0
      ? "The admin API cannot be reached. Is it running (make dev)?"
      : error.status === 503
        ? "The database is not answering. The list will load once it is back: press Refresh."
        : error.status === 403
          ? "This key may not read sessions. Log in with a viewer or admin key."
          : null;
  return (
    <div className="error" role="alert" data-testid="sessions-error">
      {advice ?? `Could not load the sessions: ${error.message}`}
    </div>
  );
}

/** A 422 naming a filter (`to` before `from`): shown next to that filter instead. */
const isFilterError = (error: ApiError) => Boolean(error.fieldError("from") || error.fieldError("to"));

function toApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError({ type: "client", title: String(e), status: 0 });
}

/** A typed filter: applied after a pause in typing (or on Enter), so each key is not a query. */
function TextFilter({ label, placeholder, value, onChange, testId }: {
  label: string;
  placeholder: string;
  value: string;
  onChange: (value: string) => void;
  testId: string;
}) {
  const [text, setText] = useState(value);
  useEffect(() => {
    setText(value); // the URL changed (back button, a shared link): show its value
  }, [value]);
  useEffect(() => {
    if (text === value) return;
    const timer = window.setTimeout(() => onChange(text.trim()), USER_FILTER_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [text, value, onChange]);
  return (
    <label className="field">
      <span>{label}</span>
      <input type="search" placeholder={placeholder} value={text} onChange={(e) => setText(e.target.value)} onKeyDown={(e) => e.key === "Enter" && onChange(text.trim())} data-testid={testId} />
    </label>
  );
}
