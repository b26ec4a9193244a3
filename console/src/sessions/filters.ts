/** The session list's filters as they live in the URL (`#/sessions?agent=…&status=…&user=…
 * &room=…&channel=…&from=…&to=…`): a reload or a shared link shows the same list. Times are stored as ISO 8601
 * in UTC, shown in the browser's local time. */
import type { SessionFilter } from "./api";

export interface ListFilters {
  agent: string;
  status: string;
  user: string;
  /** The LiveKit room's exact name: who knows a room finds its session at once. */
  room: string;
  /** A channel binding's id: the sessions that came in by it. */
  channel: string;
  from: string;
  to: string;
}

const KEYS: (keyof ListFilters)[] = ["agent", "status", "user", "room", "channel", "from", "to"];

export function filtersFromQuery(query: URLSearchParams): ListFilters {
  const value = (key: keyof ListFilters) => query.get(key) ?? "";
  return { agent: value("agent"), status: value("status"), user: value("user"), room: value("room"), channel: value("channel"), from: value("from"), to: value("to") };
}

export function queryFromFilters(filters: ListFilters): string {
  const params = new URLSearchParams();
  for (const key of KEYS) if (filters[key]) params.set(key, filters[key]);
  const text = params.toString();
  return text ? `?${text}` : "";
}

export const hasFilters = (filters: ListFilters) => KEYS.some((key) => filters[key] !== "");

export function apiFilter(filters: ListFilters): SessionFilter {
  return {
    agent_id: filters.agent || undefined,
    status: filters.status || undefined,
    user_id: filters.user.trim() || undefined,
    room: filters.room.trim() || undefined,
    channel: filters.channel.trim() || undefined,
    from: filters.from || undefined,
    to: filters.to || undefined,
  };
}

/** `<input type="datetime-local">` value (local time, minutes) for an ISO instant. */
export function localInputValue(iso: string): string {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return "";
  const local = new Date(moment.getTime() - moment.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

/** The ISO instant (UTC) for a `datetime-local` value, read as the browser's local time. */
export function isoFromLocalInput(value: string): string {
  if (!value) return "";
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? "" : moment.toISOString();
}
