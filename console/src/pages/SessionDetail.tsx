/** `#/sessions/<id>`: one recorded session: who and when, how it was routed, the conversation,
 * its structured turns with their latency, the summary, usage and the session's events.
 * An active session is reloaded every few seconds, so it can be watched as it goes. */
import { useEffect, useState } from "react";
import { ApiError, get } from "../api";
import { href } from "../router";
import { usePageTitle } from "../a11y";
import type { AgentConfig } from "../types";
import { getSession } from "../sessions/api";
import { formatDateTime, formatDuration, formatMs, humanize, sessionSeconds } from "../sessions/format";
import { latencyLabel, summarizeLatency } from "../sessions/latency";
import { RoutingTrail } from "../sessions/RoutingTrail";
import { SessionEvents } from "../sessions/SessionEvents";
import { SessionStatusChip } from "../sessions/StatusChip";
import { Transcript } from "../sessions/Transcript";
import { TurnList } from "../sessions/TurnList";
import type { SchemaField, SessionDetail as Session } from "../sessions/types";
import { UsagePanel } from "../sessions/UsagePanel";
import { CostPanel } from "../sessions/CostPanel";
import { ChannelLabel } from "../sessions/ChannelLabel";
import { TraceView } from "../sessions/TraceView";
import "./SessionDetail.css";

const ACTIVE_REFRESH_MS = 3000;

export function SessionDetail({ sessionId }: { sessionId: string }) {
  const [session, setSession] = useState<Session | null>(null);
  const [agent, setAgent] = useState<AgentConfig | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loadedAt, setLoadedAt] = useState(0);
  usePageTitle(
    session ? `Session ${session.agent_id ?? "without agent"} ${formatDateTime(session.started_at)}` : error ? "Session not found" : null,
  );

  useEffect(() => {
    let cancelled = false;
    let timer: number | undefined;
    setSession(null);
    setError(null);
    const load = async () => {
      try {
        const found = await getSession(sessionId);
        if (cancelled) return;
        setSession(found);
        setError(null);
        setLoadedAt(Date.now());
        if (found.status === "active") timer = window.setTimeout(load, ACTIVE_REFRESH_MS);
      } catch (e) {
        if (!cancelled) setError(e instanceof ApiError ? e : new ApiError({ type: "client", title: String(e), status: 0 }));
      }
    };
    void load();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [sessionId]);

  const agentId = session?.agent_id ?? null;
  useEffect(() => {
    if (!agentId) return;
    // the type's schema says which fields are enums and what a number's bounds are
    get<AgentConfig>(`agents/${encodeURIComponent(agentId)}`).then(setAgent, () => setAgent(null));
  }, [agentId]);

  if (error && !session) return <LoadError error={error} sessionId={sessionId} />;
  if (!session) return <div className="empty">Loading session…</div>;
  // the config fetched for an earlier session (another type) must not describe this one
  const ownAgent = agent?.agent_id === session.agent_id ? agent : null;
  const schema = (ownAgent?.turn_schema?.fields ?? []) as unknown as SchemaField[];
  const refused = session.status === "refused";
  // The main column for a refused session (it has nothing else), the side column otherwise.
  const routingCard = (
    <section className="card">
      <h2>Routing</h2>
      <RoutingTrail
        routing={session.routing}
        handoffs={session.handoffs}
        refusal={session.reason}
        escalations={session.escalations}
        agentEnded={session.end_reason === "agent_ended" ? session.end_detail ?? "" : null}
      />
    </section>
  );
  return (
    <div className="session-detail" data-testid="session-detail" data-session-id={session.session_id} data-status={session.status ?? ""}>
      <Header session={session} agent={ownAgent} now={loadedAt} />
      {error && <p className="error">Reloading failed: {error.message}. Showing what was loaded at {formatDateTime(new Date(loadedAt).toISOString())}.</p>}
      {refused && (
        <p className="notice" data-testid="session-refused">
          This room was refused{session.reason ? `: ${session.reason}` : ""}. No agent spoke in it; the routing trail says what each strategy
          proposed and why it was passed over.
        </p>
      )}
      <div className="session-layout">
        <div className="session-main">
          {!refused && (
            <section className="card">
              <h2>Summary</h2>
              <div data-testid="session-summary" className="summary">
                {session.summary ? <p>{session.summary}</p> : <p className="hint">{summaryMissing(session, ownAgent)}</p>}
              </div>
            </section>
          )}
          {refused && routingCard}
          {!refused && (
            <section className="card">
              <div className="card-head">
                <h2>Transcript</h2>
                <span className="hint">{session.transcript.length} messages</span>
              </div>
              <Transcript lines={session.transcript} dropped={session.transcript_dropped ?? 0} />
            </section>
          )}
          {!refused && (
            <section className="card">
              <div className="card-head">
                <h2>Turns</h2>
                <span className="hint">the structured fields of each reply{ownAgent?.turn_schema?.schema_id ? ` (schema ${ownAgent.turn_schema.schema_id})` : ""}</span>
              </div>
              <TurnList turns={session.turns} schema={schema} />
            </section>
          )}
          {!refused && (
            <section className="card">
              <div className="card-head">
                <h2>Trace</h2>
                <span className="hint">routing, config, turns, tools, records and deliveries, from the trace backend</span>
              </div>
              <TraceView sessionId={session.session_id} active={session.status === "active"} endedAt={session.ended_at} />
            </section>
          )}
        </div>
        <aside className="session-side">
          {!refused && routingCard}
          {!refused && (
            <section className="card">
              <h2>Latency</h2>
              <LatencySummary session={session} />
            </section>
          )}
          {!refused && (
            <section className="card">
              <h2>Usage</h2>
              <UsagePanel session={session} />
            </section>
          )}
          {!refused && (
            <section className="card">
              <h2>Cost</h2>
              <CostPanel session={session} />
            </section>
          )}
          <section className="card">
            <h2>Events</h2>
            <SessionEvents sessionId={session.session_id} refreshKey={session.status} />
          </section>
        </aside>
      </div>
    </div>
  );
}

function Header({ session, agent, now }: { session: Session; agent: AgentConfig | null; now: number }) {
  const seconds = sessionSeconds(session, now);
  const ending = session.end_reason ?? (session.status === "refused" ? session.reason : null);
  const modalities = Array.isArray(session.modalities) ? (session.modalities as string[]) : [];
  return (
    <>
      <nav className="crumbs" aria-label="Breadcrumb">
        <a href={href("sessions")}>Sessions</a> <span aria-hidden="true">/</span> <span className="mono">{session.session_id}</span>
      </nav>
      <div className="page-head">
        <div>
          <h1>
            {agent?.agent_id === session.agent_id && agent?.name ? agent.name : session.agent_id ?? "No agent type"} <SessionStatusChip status={session.status} />
          </h1>
          <p className="sub">
            {session.status === "active" && (
              <span className="live" data-testid="session-live" title={`Reloaded every ${ACTIVE_REFRESH_MS / 1000} s while the session is active`}>
                <span className="live-dot" aria-hidden="true" /> live ·{" "}
              </span>
            )}
            {session.user_id ? <>with <span className="mono">{session.user_id}</span></> : "anonymous user"} · {formatDateTime(session.started_at)}
            {modalities.length > 0 && <> · {modalities.join(" + ")}</>}
          </p>
        </div>
        {session.agent_id && (
          <div className="actions">
            <a className="button-link" href={`${href("sessions")}?agent=${encodeURIComponent(session.agent_id)}`}>Sessions of this type</a>
            <a className="button-link" href={href("agents", session.agent_id, "stats")}>Stats</a>
          </div>
        )}
      </div>
      <section className="card session-props">
        <dl className="props">
          <dt>Agent type</dt>
          <dd>
            {session.agent_id ? (
              <>
                <a className="mono" href={href("agents", session.agent_id)} data-testid="session-agent-link">{session.agent_id}</a>
                {session.agent_version != null && (
                  <> <a className="hint" href={`${href("agents", session.agent_id, "versions")}`} title="This session ran on this version">v{session.agent_version}</a></>
                )}
              </>
            ) : (
              <span className="muted">none</span>
            )}
          </dd>
          <dt>Status</dt>
          <dd><SessionStatusChip status={session.status} /></dd>
          <dt>User</dt>
          <dd>{session.user_id ? <span className="mono">{session.user_id}</span> : <span className="muted">anonymous</span>}</dd>
          <dt>Room</dt>
          <dd className="mono">{session.room ?? "—"}</dd>
          <dt>Channel</dt>
          <dd>{session.channel ? <ChannelLabel channel={session.channel} /> : <span className="muted">a LiveKit client</span>}</dd>
        </dl>
        <dl className="props">
          <dt>Started</dt>
          <dd>{formatDateTime(session.started_at)}</dd>
          <dt>Ended</dt>
          <dd>{session.ended_at ? formatDateTime(session.ended_at) : <span className="muted">{session.status === "active" ? "still active" : "—"}</span>}</dd>
          <dt>Duration</dt>
          <dd>{formatDuration(seconds)}{session.status === "active" && <span className="hint"> so far</span>}</dd>
          <dt>End reason</dt>
          <dd data-testid="session-end-reason" data-reason={ending ?? ""}>
            {ending ? <span className="end-reason">{humanize(ending)}</span> : <span className="muted">{session.status === "active" ? "not ended yet" : "not recorded"}</span>}
          </dd>
        </dl>
      </section>
    </>
  );
}

function LatencySummary({ session }: { session: Session }) {
  const rows = summarizeLatency(session.turns);
  if (rows.length === 0) {
    return <p className="hint">No turn of this session has latency marks (the worker records them per turn; older sessions have none).</p>;
  }
  return (
    <table className="list latency-table" data-testid="session-latency-summary">
      <thead>
        <tr>
          <th>From the user to</th>
          <th className="num">p50</th>
          <th className="num">max</th>
          <th className="num">turns</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.mark} data-mark={row.mark} data-p50-ms={row.p50} data-max-ms={row.max}>
            <td>{latencyLabel(row.mark)}</td>
            <td className="num">{formatMs(row.p50)}</td>
            <td className="num">{formatMs(row.max)}</td>
            <td className="num">{row.turns}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function summaryMissing(session: Session, agent: AgentConfig | null): string {
  if (session.status === "active") return "The summary is written when the session ends.";
  if (session.status === "refused") return "Refused sessions have no conversation to summarize.";
  const summary = agent?.summary as { enabled?: boolean } | undefined;
  if (summary && summary.enabled === false) return "This agent type has summaries turned off (summary.enabled).";
  return "No summary was recorded (the model did not answer in time, or the worker stopped first).";
}

function LoadError({ error, sessionId }: { error: ApiError; sessionId: string }) {
  const message =
    error.status === 404
      ? `No session “${sessionId}”. A session that just started may take a moment to be written: reload in a few seconds.`
      : error.status === 0
        ? "The admin API cannot be reached. Is it running (make dev)?"
        : error.status === 503
          ? "The database is not answering. Reload once it is back."
          : `Could not load the session: ${error.message}`;
  return (
    <div className="session-detail">
      <nav className="crumbs" aria-label="Breadcrumb">
        <a href={href("sessions")}>Sessions</a> <span aria-hidden="true">/</span> <span className="mono">{sessionId}</span>
      </nav>
      <div className="error" role="alert" data-testid="session-error">{message}</div>
      <a href={href("sessions")}>Back to all sessions</a>
    </div>
  );
}
