/** The agent detail page's "stats" tab: GET /api/v1/agents/{id}/stats over a time range, as
 * counts, durations, and one chart per enum / bool / numeric turn field (in schema order). */
import { useEffect, useState } from "react";
import { ApiError, get } from "../api";
import { href } from "../router";
import type { AgentConfig } from "../types";
import { getAgentStats } from "./api";
import { BarChart, RangeGauge, type Bar, type BarTone } from "./BarChart";
import { formatCount, formatDuration, formatPercent, humanize } from "./format";
import { sessionTone, turnTone } from "./status";
import type { AgentStatsResponse, FieldStats, SchemaField } from "./types";
import "./charts.css";

const RANGES = [
  { id: "24h", label: "24 h", hours: 24 },
  { id: "7d", label: "7 days", hours: 24 * 7 },
  { id: "30d", label: "30 days", hours: 24 * 30 },
  { id: "all", label: "All time", hours: null },
] as const;
type RangeId = (typeof RANGES)[number]["id"];

type Loaded = { stats: AgentStatsResponse; schema: SchemaField[] };

export function AgentStats({ agentId }: { agentId: string }) {
  const [range, setRange] = useState<RangeId>("7d");
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    let cancelled = false;
    const hours = RANGES.find((r) => r.id === range)?.hours ?? null;
    const from = hours === null ? undefined : new Date(Date.now() - hours * 3600_000).toISOString();
    setError(null);
    Promise.all([
      getAgentStats(agentId, { from }),
      // the schema gives the charts their order, enum values never filled, and numeric bounds
      get<AgentConfig>(`agents/${encodeURIComponent(agentId)}`).then(
        (config) => (config.turn_schema?.fields ?? []) as unknown as SchemaField[],
        () => [] as SchemaField[],
      ),
    ])
      .then(([stats, schema]) => !cancelled && setLoaded({ stats, schema }))
      .catch((e: unknown) => !cancelled && setError(e instanceof ApiError ? e : new ApiError({ type: "client", title: String(e), status: 0 })));
    return () => {
      cancelled = true;
    };
  }, [agentId, range, reload]);

  return (
    <div className="agent-stats" data-testid="agent-stats" data-range={range}>
      <div className="stats-toolbar">
        <div>
          <h2>{range === "all" ? "All time" : `The last ${RANGES.find((r) => r.id === range)?.label}`}</h2>
          <p className="hint">Sessions started and turns taken in the range; field charts count the turns whose fields were filled.</p>
        </div>
        <div className="actions">
          <div className="segmented" role="group" aria-label="Time range" data-testid="stats-range">
            {RANGES.map((r) => (
              <button key={r.id} className={r.id === range ? "active" : ""} aria-pressed={r.id === range} onClick={() => setRange(r.id)}>
                {r.label}
              </button>
            ))}
          </div>
          <button onClick={() => setReload((n) => n + 1)} title="Fetch the stats again">Refresh</button>
        </div>
      </div>
      {error ? (
        <div className="error" role="alert" data-testid="stats-error">
          {error.status === 0 ? "The admin API cannot be reached: is it running?" : `Could not load the stats: ${error.message}`}
        </div>
      ) : !loaded ? (
        <div className="empty">Loading stats…</div>
      ) : (
        <StatsBody stats={loaded.stats} schema={loaded.schema} agentId={agentId} />
      )}
    </div>
  );
}

function StatsBody({ stats, schema, agentId }: { stats: AgentStatsResponse; schema: SchemaField[]; agentId: string }) {
  const failedTurns = stats.turns.by_status.failed ?? 0;
  const fieldNames = orderedFields(stats, schema);
  return (
    <>
      <div className="stat-strip">
        <Stat label="Sessions" value={formatCount(stats.sessions.total)} detail={`${formatCount(stats.sessions.by_status.active ?? 0)} active now`} />
        <Stat label="Ended" value={formatCount(stats.sessions.ended)} detail={refusedDetail(stats)} />
        <Stat label="Mean duration" value={formatDuration(stats.sessions.average_duration_s)} detail="of ended sessions" />
        <Stat label="Turns" value={formatCount(stats.turns.total)} detail={perSession(stats)} />
        <Stat
          label="Failed turns"
          value={formatPercent(stats.turns.total ? failedTurns / stats.turns.total : null)}
          detail={`${formatCount(failedTurns)} of ${formatCount(stats.turns.total)}`}
        />
      </div>
      {stats.sessions.total === 0 && (
        <div className="empty" data-testid="stats-empty">
          No sessions of this agent type in this range. <a href={`${href("playground")}?agent=${encodeURIComponent(agentId)}`}>Open the Playground</a>{" "}
          to talk to it, or pick a longer range.
        </div>
      )}
      {stats.sessions.total > 0 && (
        <div className="stats-grid">
          <section className="card stats-card" data-testid="stats-breakdown" data-kind="sessions">
            <header>
              <h3 className="plain">Sessions by status</h3>
              <a className="hint" href={`${href("sessions")}?agent=${encodeURIComponent(agentId)}`}>List them</a>
            </header>
            <BarChart title="Sessions by status" bars={countBars(stats.sessions.by_status, sessionTone)} />
          </section>
          <section className="card stats-card" data-testid="stats-breakdown" data-kind="turns">
            <header>
              <h3 className="plain">Turns by status</h3>
            </header>
            <BarChart title="Turns by status" bars={countBars(stats.turns.by_status, turnTone)} />
          </section>
        </div>
      )}
      <h3 className="stats-section-title">Turn fields</h3>
      <p className="hint stats-section-sub">
        The distribution of each enum and yes/no field, and the mean of each number, over the turns that were filled (status ok).
      </p>
      {fieldNames.length === 0 ? (
        <div className="empty">This agent type's turn schema has no enum, yes/no or number fields to chart.</div>
      ) : (
        <div className="stats-grid">
          {fieldNames.map((name) => (
            <FieldChart key={name} name={name} stats={stats.fields[name]} field={schema.find((f) => f.name === name)} />
          ))}
        </div>
      )}
    </>
  );
}

function Stat({ label, value, detail }: { label: string; value: string; detail?: string }) {
  return (
    <div className="card stat">
      <span className="label">{label}</span>
      <span className="value">{value}</span>
      {detail && <span className="detail">{detail}</span>}
    </div>
  );
}

function FieldChart({ name, stats, field }: { name: string; stats: FieldStats; field?: SchemaField }) {
  return (
    <section className="card stats-card" data-testid="stats-chart" data-field={name} data-type={stats.type}>
      <header>
        <h3>{name}</h3>
        <span className="chip neutral">{stats.type === "bool" ? "yes/no" : stats.type}</span>
      </header>
      {field?.description && <p className="hint description">{field.description}</p>}
      {stats.type === "enum" && <BarChart title={`${name}: values`} bars={enumBars(stats.counts, field?.enum ?? [])} />}
      {stats.type === "bool" && (
        <BarChart
          title={`${name}: yes / no`}
          bars={[
            { label: "true", value: stats.counts.true ?? 0, tone: "accent" },
            { label: "false", value: stats.counts.false ?? 0, tone: "user" },
            ...((stats.counts.null ?? 0) > 0 ? [{ label: "not given", value: stats.counts.null, tone: "neutral" as BarTone }] : []),
          ]}
        />
      )}
      {(stats.type === "int" || stats.type === "number") && (
        <div>
          <div className="big" data-testid="stats-mean">{stats.mean === null ? "—" : stats.mean.toFixed(stats.type === "int" ? 1 : 2)}</div>
          <div className="hint">mean</div>
          {stats.mean !== null && field?.min != null && field?.max != null && (
            <RangeGauge value={stats.mean} min={field.min} max={field.max} label={name} />
          )}
        </div>
      )}
      <footer>
        {formatCount(stats.count)} turn{stats.count === 1 ? "" : "s"} gave a value
        {stats.type === "bool" && stats.true_rate !== null && <> · true in {formatPercent(stats.true_rate)}</>}
      </footer>
    </section>
  );
}

/** Schema order first (what the author wrote), then any field the stats have that the current
 * schema no longer lists. */
function orderedFields(stats: AgentStatsResponse, schema: SchemaField[]): string[] {
  const inSchema = schema.map((f) => f.name).filter((name) => name in stats.fields);
  return [...inSchema, ...Object.keys(stats.fields).filter((name) => !inSchema.includes(name))];
}

/** Every allowed value, the unused ones as zero bars (that a value never comes up is news too),
 * then values no longer in the schema, then "not given". */
function enumBars(counts: Record<string, number>, allowed: string[]): Bar[] {
  const seen = Object.keys(counts).filter((value) => value !== "null" && !allowed.includes(value));
  const bars: Bar[] = [...allowed, ...seen].map((value) => ({ label: value, value: counts[value] ?? 0 }));
  if ((counts.null ?? 0) > 0) bars.push({ label: "not given", value: counts.null, tone: "neutral" });
  return bars;
}

function countBars(counts: Record<string, number>, tone: (status: string) => BarTone): Bar[] {
  return Object.entries(counts)
    .sort(([, a], [, b]) => b - a)
    .map(([status, value]) => ({ label: status === "null" ? "unknown" : humanize(status), value, tone: tone(status) }));
}

function refusedDetail(stats: AgentStatsResponse): string {
  const refused = stats.sessions.by_status.refused ?? 0;
  const aborted = stats.sessions.by_status.aborted ?? 0;
  return [refused && `${refused} refused`, aborted && `${aborted} aborted`].filter(Boolean).join(", ") || "none refused or aborted";
}

function perSession(stats: AgentStatsResponse): string {
  return stats.sessions.total ? `${(stats.turns.total / stats.sessions.total).toFixed(1)} per session` : "";
}
