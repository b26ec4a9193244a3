/** What the session used: the usage record's numbers (tokens today; any other counter the
 * worker adds, audio seconds say, appears as it is), plus the turn and transcript counts. */
import "./sessions.css";
import { formatCount, humanize } from "./format";
import type { SessionDetail } from "./types";

const KNOWN = ["prompt_tokens", "completion_tokens"];

export function UsagePanel({ session }: { session: SessionDetail }) {
  const usage = session.usage ?? {};
  const prompt = typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : null;
  const completion = typeof usage.completion_tokens === "number" ? usage.completion_tokens : null;
  const others = Object.entries(usage).filter(([name, value]) => !KNOWN.includes(name) && (typeof value === "number" || typeof value === "string"));
  const failed = session.turns.filter((t) => t.status === "failed").length;
  return (
    <div data-testid="session-usage" className="usage">
      {!session.usage && <p className="hint">Usage is recorded when the session ends{session.status === "active" ? ": this one is still active" : ""}.</p>}
      <div className="usage-grid">
        <UsageStat label="Prompt tokens" value={prompt} name="prompt_tokens" />
        <UsageStat label="Completion tokens" value={completion} name="completion_tokens" />
        <UsageStat label="Total tokens" value={prompt !== null || completion !== null ? (prompt ?? 0) + (completion ?? 0) : null} name="total_tokens" />
        {others.map(([name, value]) => (
          <div key={name} className="stat" data-usage={name}>
            <span className="label">{humanize(name)}</span>
            <span className="value">{typeof value === "number" ? formatCount(Math.round(value * 100) / 100) : String(value)}</span>
          </div>
        ))}
        <UsageStat label="Turns" value={session.turns.length} name="turns" detail={failed ? `${failed} failed` : undefined} />
        <UsageStat label="Messages" value={session.transcript.length + (session.transcript_dropped ?? 0)} name="messages" />
      </div>
    </div>
  );
}

function UsageStat({ label, value, name, detail }: { label: string; value: number | null; name: string; detail?: string }) {
  return (
    <div className="stat" data-usage={name}>
      <span className="label">{label}</span>
      <span className="value">{formatCount(value)}</span>
      {detail && <span className="hint bad-text">{detail}</span>}
    </div>
  );
}
