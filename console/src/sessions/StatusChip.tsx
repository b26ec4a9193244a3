/** A session's or a turn's status as a coloured chip. */
import { humanize } from "./format";
import { chipClass, sessionTone, turnTone } from "./status";

export function SessionStatusChip({ status }: { status: string | null }) {
  return <span className={`${chipClass(sessionTone(status))} status-chip`} data-status={status ?? "unknown"}>{status ? humanize(status) : "unknown"}</span>;
}

export function TurnStatusChip({ status }: { status: string | null }) {
  const label = status === "replied" ? "filling fields" : status ?? "unknown";
  return <span className={chipClass(turnTone(status))} data-status={status ?? "unknown"}>{label}</span>;
}
