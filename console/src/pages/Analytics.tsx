/** `#/analytics?a=&b=&since=&until=`: two variants of a routing A/B split, or two versions of
 * one agent type, compared on their ended sessions (GET /api/v1/analytics/compare). Every
 * number shows its sample size and 95% interval; whether two intervals are apart is written
 * out, never shown by colour alone. The comparison lives in the URL, so a link shares it. */
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { usePageTitle } from "../a11y";
import { ApiError } from "../api";
import { href, navigate } from "../router";
import type { AgentConfig } from "../types";
import { compareGroups, listSplits, listVersions, type Split, type VersionEntry } from "../analytics/api";
import { compareIntervals, formatInterval, formatNumber, fromMean, fromRate, type Measure, type Unit } from "../analytics/format";
import { isMeanField, type Comparison, type Group } from "../analytics/types";
import { listAllAgents } from "../sessions/api";
import { isoFromLocalInput, localInputValue } from "../sessions/filters";
import { humanize } from "../sessions/format";
import "./Analytics.css";

interface Selection {
  a: string;
  b: string;
  since: string;
  until: string;
}

type Loaded = { key: string; comparison: Comparison } | { key: string; error: ApiError };

const selectionFromQuery = (query: URLSearchParams): Selection => ({
  a: query.get("a") ?? "",
  b: query.get("b") ?? "",
  since: query.get("since") ?? "",
  until: query.get("until") ?? "",
});

function queryFromSelection(selection: Selection): string {
  const params = new URLSearchParams();
  for (const key of ["a", "b", "since", "until"] as const) if (selection[key]) params.set(key, selection[key]);
  return params.toString();
}

export function AnalyticsPage({ query }: { query: URLSearchParams }) {
  usePageTitle("Analytics");
  const selection = selectionFromQuery(query);
  const key = queryFromSelection(selection);
  const [loaded, setLoaded] = useState<Loaded | null>(null);

  useEffect(() => {
    if (!selection.a || !selection.b) return;
    let cancelled = false;
    compareGroups(selection.a, selection.b, selection.since || undefined, selection.until || undefined).then(
      (comparison) => !cancelled && setLoaded({ key, comparison }),
      (e: unknown) => !cancelled && setLoaded({ key, error: toApiError(e) }),
    );
    return () => {
      cancelled = true;
    };
  }, [key]); // the key is the selection, written out

  const current = loaded && loaded.key === key ? loaded : null;
  const error = current && "error" in current ? current.error : null;
  const state = !selection.a || !selection.b ? "idle" : !current ? "loading" : error ? "error" : "shown";
  return (
    <div className="analytics-page" data-testid="analytics" data-state={state}>
      <div className="page-head">
        <div>
          <h1>Analytics</h1>
          <p className="sub">
            Two variants of an A/B split, or two versions of one agent type, compared on their ended sessions. Each number shows its sample size and
            95% interval.
          </p>
        </div>
      </div>
      <Picker key={key} initial={selection} error={error} onCompare={(next) => navigate(`${href("analytics")}?${queryFromSelection(next)}`)} />
      {error && !isPickerError(error) && (
        <div className="error" role="alert" data-testid="analytics-error">
          {error.status === 0 ? "The admin API cannot be reached: is it running?" : `Could not compare: ${error.message}`}
        </div>
      )}
      {state === "loading" && <div className="empty">Comparing…</div>}
      {current && "comparison" in current && <ComparisonView comparison={current.comparison} />}
    </div>
  );
}

// --- picking the two groups ------------------------------------------------------------

type Mode = "split" | "versions";

function splitSpec(spec: string): { agentId: string; version: number | null } {
  const [agentId, version] = spec.split("@", 2);
  return { agentId, version: version && /^\d+$/.test(version) ? Number(version) : null };
}

function Picker({ initial, error, onCompare }: { initial: Selection; error: ApiError | null; onCompare: (selection: Selection) => void }) {
  const a0 = splitSpec(initial.a);
  const b0 = splitSpec(initial.b);
  const sameType = Boolean(initial.a) && a0.agentId === b0.agentId;
  const [mode, setMode] = useState<Mode>(sameType ? "versions" : "split");
  const [splits, setSplits] = useState<Split[] | null>(null);
  const [agents, setAgents] = useState<AgentConfig[] | null>(null);
  const [splitAt, setSplitAt] = useState<number | null>(null);
  const [variantA, setVariantA] = useState(sameType ? "" : a0.agentId);
  const [variantB, setVariantB] = useState(sameType ? "" : b0.agentId);
  const [agentId, setAgentId] = useState(sameType ? a0.agentId : "");
  const [versions, setVersions] = useState<VersionEntry[] | null>(null);
  const [versionA, setVersionA] = useState(sameType && a0.version !== null ? String(a0.version) : "");
  const [versionB, setVersionB] = useState(sameType && b0.version !== null ? String(b0.version) : "");
  const [since, setSince] = useState(initial.since);
  const [until, setUntil] = useState(initial.until);

  useEffect(() => {
    listSplits().then(
      (found) => {
        setSplits(found);
        // the split holding the variants in the URL, else the first
        const holding = found.find((s) => s.variants.some((v) => v.agent_id === a0.agentId)) ?? found[0];
        if (!holding) return;
        setSplitAt(holding.position);
        setVariantA((v) => v || holding.variants[0]?.agent_id || "");
        setVariantB((v) => v || holding.variants[1]?.agent_id || "");
      },
      () => setSplits([]),
    );
    listAllAgents().then(setAgents, () => setAgents([]));
  }, []); // once: a new selection in the URL mounts a new picker (it is keyed on it)

  useEffect(() => {
    if (!agentId) {
      setVersions(null);
      return;
    }
    let cancelled = false;
    listVersions(agentId).then(
      (items) => {
        if (cancelled) return;
        setVersions(items);
        // newest against the one before it, unless the URL said otherwise
        setVersionB((v) => (v && items.some((i) => String(i.version) === v) ? v : String(items[0]?.version ?? "")));
        setVersionA((v) => (v && items.some((i) => String(i.version) === v) ? v : String(items[1]?.version ?? items[0]?.version ?? "")));
      },
      () => !cancelled && setVersions([]),
    );
    return () => {
      cancelled = true;
    };
  }, [agentId]);

  const split = splits?.find((s) => s.position === splitAt) ?? null;
  const chooseSplit = (position: number) => {
    const chosen = splits?.find((s) => s.position === position);
    setSplitAt(position);
    setVariantA(chosen?.variants[0]?.agent_id ?? "");
    setVariantB(chosen?.variants[1]?.agent_id ?? "");
  };
  const total = split ? split.variants.reduce((sum, v) => sum + v.weight, 0) : 0;
  const a = mode === "split" ? variantA : agentId && versionA ? `${agentId}@${versionA}` : "";
  const b = mode === "split" ? variantB : agentId && versionB ? `${agentId}@${versionB}` : "";
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (a && b) onCompare({ a, b, since, until });
  };
  const fieldError = (name: string) => error?.fieldError(name);

  return (
    <form className="card analytics-picker" aria-label="What to compare" onSubmit={submit}>
      <fieldset className="analytics-mode">
        <legend>Compare</legend>
        <label>
          <input type="radio" name="analytics-mode" checked={mode === "split"} onChange={() => setMode("split")} data-testid="analytics-mode-split" />
          Variants of an A/B split
        </label>
        <label>
          <input type="radio" name="analytics-mode" checked={mode === "versions"} onChange={() => setMode("versions")} data-testid="analytics-mode-versions" />
          Two versions of one agent type
        </label>
      </fieldset>

      {mode === "split" ? (
        <div className="analytics-choices">
          {splits !== null && splits.length === 0 ? (
            <p className="hint" data-testid="analytics-no-split">
              The routing rules have no A/B split (<code>ab_split</code>). Add one on the <a href={href("routing")}>Routing</a> page, or compare two
              versions of one agent type.
            </p>
          ) : (
            <>
              <label className="field">
                <span>A/B split</span>
                <select value={splitAt ?? ""} onChange={(e) => chooseSplit(Number(e.target.value))} data-testid="analytics-split">
                  {(splits ?? []).map((s) => (
                    <option key={s.position} value={s.position}>
                      Step {s.position + 1} of the chain: {s.variants.map((v) => v.agent_id).join(" / ")}
                      {s.enabled ? "" : " (switched off)"}
                    </option>
                  ))}
                </select>
              </label>
              <VariantSelect label="Variant A" value={variantA} onChange={setVariantA} split={split} total={total} error={fieldError("a")} group="a" />
              <VariantSelect label="Variant B" value={variantB} onChange={setVariantB} split={split} total={total} error={fieldError("b")} group="b" />
            </>
          )}
        </div>
      ) : (
        <div className="analytics-choices">
          <label className="field">
            <span>Agent type</span>
            <select value={agentId} onChange={(e) => setAgentId(e.target.value)} data-testid="analytics-agent">
              <option value="">Pick an agent type</option>
              {(agents ?? []).map((agent) => (
                <option key={agent.agent_id} value={agent.agent_id}>
                  {agent.name || agent.agent_id}
                </option>
              ))}
            </select>
          </label>
          <VersionSelect label="Version A" value={versionA} onChange={setVersionA} versions={versions} error={fieldError("a")} group="a" />
          <VersionSelect label="Version B" value={versionB} onChange={setVersionB} versions={versions} error={fieldError("b")} group="b" />
        </div>
      )}

      <div className="analytics-choices">
        <label className={`field${fieldError("since") ? " invalid" : ""}`}>
          <span>Sessions started from (optional)</span>
          <input type="datetime-local" value={localInputValue(since)} onChange={(e) => setSince(isoFromLocalInput(e.target.value))} data-testid="analytics-since" />
          {fieldError("since") && <FieldError name="since" message={fieldError("since")} />}
        </label>
        <label className={`field${fieldError("until") ? " invalid" : ""}`}>
          <span>Started before (optional)</span>
          <input type="datetime-local" value={localInputValue(until)} onChange={(e) => setUntil(isoFromLocalInput(e.target.value))} data-testid="analytics-until" />
          {fieldError("until") && <FieldError name="until" message={fieldError("until")} />}
        </label>
        <div className="analytics-submit">
          <button type="submit" className="primary" disabled={!a || !b} data-testid="analytics-compare">
            Compare
          </button>
        </div>
      </div>
    </form>
  );
}

function VariantSelect({ label, value, onChange, split, total, error, group }: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  split: Split | null;
  total: number;
  error: string | undefined;
  group: "a" | "b";
}) {
  const variants = split?.variants ?? [];
  const listed = variants.some((v) => v.agent_id === value);
  return (
    <label className={`field${error ? " invalid" : ""}`}>
      <span>{label}</span>
      <select value={value} onChange={(e) => onChange(e.target.value)} data-testid={`analytics-variant-${group}`}>
        {!listed && <option value={value}>{value || "Pick a variant"}</option>}
        {variants.map((v) => (
          <option key={v.agent_id} value={v.agent_id}>
            {v.agent_id} ({total ? Math.round((v.weight / total) * 100) : 0}% of callers)
          </option>
        ))}
      </select>
      {error && <FieldError name={group} message={error} />}
    </label>
  );
}

function VersionSelect({ label, value, onChange, versions, error, group }: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  versions: VersionEntry[] | null;
  error: string | undefined;
  group: "a" | "b";
}) {
  return (
    <label className={`field${error ? " invalid" : ""}`}>
      <span>{label}</span>
      <select value={value} onChange={(e) => onChange(e.target.value)} disabled={!versions} data-testid={`analytics-version-${group}`}>
        {!versions && <option value="">Pick an agent type first</option>}
        {(versions ?? []).map((v, index) => (
          <option key={v.version} value={String(v.version)}>
            Version {v.version}
            {index === 0 ? " (newest)" : ""}
            {v.candidate ? " (candidate)" : ""}
          </option>
        ))}
      </select>
      {error && <FieldError name={group} message={error} />}
    </label>
  );
}

function FieldError({ name, message }: { name: string; message: string | undefined }) {
  return (
    <span className="field-error" data-testid="field-error" data-field={name}>
      {message}
    </span>
  );
}

// --- the comparison --------------------------------------------------------------------

const groupName = (group: Group) => (group.version !== null ? `${group.agent_id} v${group.version}` : `${group.agent_id} (every version)`);

interface Row {
  metric: string;
  label: string;
  unit: Unit;
  a: Measure | null;
  b: Measure | null;
  /** Why a group has no number here (the field is not in its type's schema). */
  missing?: string;
  /** B's reason, when it differs from A's. */
  missingB?: string;
}

function ComparisonView({ comparison }: { comparison: Comparison }) {
  const { a, b } = comparison;
  const sections = useMemo(() => buildSections(a, b), [a, b]);
  return (
    <section className="analytics-result" data-testid="analytics-result" data-a={specOf(a)} data-b={specOf(b)} aria-labelledby="analytics-result-title">
      <h2 id="analytics-result-title">
        A: {groupName(a)} · B: {groupName(b)}
      </h2>
      <p className="hint">
        Ended sessions by the agent type routing chose for them (hand-offs stay with it); sessions pinned to a type (the playground) and eval runs' sessions
        are left out. Rates carry Wilson intervals, means Student's t intervals. “Apart” means the two 95% intervals do not overlap.
        {comparison.since || comparison.until ? ` Window: ${comparison.since ?? "the start"} to ${comparison.until ?? "now"}.` : ""}
      </p>
      <div className="card table-card">
        <table className="list analytics-table">
          <caption>Sample size</caption>
          <thead>
            <tr>
              <th scope="col">Group</th>
              <th scope="col" className="num">
                Ended sessions
              </th>
              <th scope="col">Note</th>
            </tr>
          </thead>
          <tbody>
            {(["a", "b"] as const).map((name) => {
              const group = comparison[name];
              return (
                <tr key={name}>
                  <th scope="row">
                    {name.toUpperCase()}: <span className="mono">{specOf(group)}</span>
                  </th>
                  <td className="num" data-testid="analytics-sessions" data-group={name} data-n={group.sessions}>
                    {group.sessions.toLocaleString()}
                  </td>
                  <td>{group.truncated ? "Only the newest sessions were read (the cap was hit)." : group.sessions === 0 ? "No ended sessions in this window." : ""}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {sections.map((section) => (
        <MetricTable key={section.title} title={section.title} rows={section.rows} a={a} b={b} />
      ))}
    </section>
  );
}

function MetricTable({ title, rows, a, b }: { title: string; rows: Row[]; a: Group; b: Group }) {
  if (rows.length === 0) return null;
  return (
    <div className="card table-card">
      <table className="list analytics-table">
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col">
              A: <span className="mono">{specOf(a)}</span>
            </th>
            <th scope="col">
              B: <span className="mono">{specOf(b)}</span>
            </th>
            <th scope="col">Intervals</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const verdict = compareIntervals(row.a, row.b);
            return (
              <tr key={row.metric} data-testid="analytics-row" data-metric={row.metric}>
                <th scope="row">{row.label}</th>
                <MeasureCell measure={row.a} unit={row.unit} group="a" missing={row.missing} />
                <MeasureCell measure={row.b} unit={row.unit} group="b" missing={row.missingB ?? row.missing} />
                <td data-testid="analytics-verdict" data-kind={verdict.kind}>
                  {verdict.kind === "apart" ? <strong>{verdict.text}</strong> : <span className="muted">{verdict.text}</span>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function MeasureCell({ measure, unit, group, missing }: { measure: Measure | null; unit: Unit; group: "a" | "b"; missing?: string }) {
  if (!measure) {
    return (
      <td data-testid="analytics-cell" data-group={group} data-n="0">
        <span className="muted">{missing ?? "—"}</span>
      </td>
    );
  }
  return (
    <td
      data-testid="analytics-cell"
      data-group={group}
      data-value={measure.value ?? ""}
      data-n={measure.n}
      data-low={measure.ci95?.[0] ?? ""}
      data-high={measure.ci95?.[1] ?? ""}
    >
      <span className="analytics-value">{formatNumber(measure.value, unit)}</span> <span className="hint">{measure.sample}</span>
      <div className="hint">{formatInterval(measure.ci95, unit, measure.n)}</div>
    </td>
  );
}

const specOf = (group: Group) => (group.version !== null ? `${group.agent_id}@${group.version}` : group.agent_id);

function buildSections(a: Group, b: Group): { title: string; rows: Row[] }[] {
  const sessions: Row[] = [
    { metric: "turns_per_session", label: "Turns per session", unit: "amount", a: fromMean(a.turns_per_session), b: fromMean(b.turns_per_session) },
    { metric: "escalation_rate", label: "Escalated sessions", unit: "percent", a: fromRate(a.escalation_rate), b: fromRate(b.escalation_rate) },
    { metric: "handoff_rate", label: "Handed-off sessions", unit: "percent", a: fromRate(a.handoff_rate), b: fromRate(b.handoff_rate) },
    {
      metric: "tokens_input",
      label: "LLM tokens in per session",
      unit: "amount",
      a: fromMean(a.tokens_per_session.input),
      b: fromMean(b.tokens_per_session.input),
    },
    {
      metric: "tokens_output",
      label: "LLM tokens out per session",
      unit: "amount",
      a: fromMean(a.tokens_per_session.output),
      b: fromMean(b.tokens_per_session.output),
    },
  ];
  const reasons = union(a.end_reasons.map((r) => r.reason ?? ""), b.end_reasons.map((r) => r.reason ?? ""));
  const reasonRate = (group: Group, reason: string) => {
    const found = group.end_reasons.find((r) => (r.reason ?? "") === reason);
    return found ? fromRate(found.rate) : null;
  };
  const endReasons: Row[] = reasons.map((reason) => ({
    metric: `end_reason:${reason}`,
    label: reason ? humanize(reason) : "no reason recorded",
    unit: "percent",
    a: reasonRate(a, reason),
    b: reasonRate(b, reason),
  }));
  const marks = union(Object.keys(a.latency_ms), Object.keys(b.latency_ms));
  const latency: Row[] = marks.map((mark) => ({
    metric: `latency:${mark}`,
    label: `${humanize(mark)} (ms after the user's turn)`,
    unit: "ms",
    a: a.latency_ms[mark] ? fromMean(a.latency_ms[mark]) : null,
    b: b.latency_ms[mark] ? fromMean(b.latency_ms[mark]) : null,
  }));
  return [
    { title: "Sessions", rows: sessions },
    { title: "End reasons (share of sessions)", rows: endReasons },
    { title: "Latency per turn", rows: latency },
    { title: "Turn fields (share of the type's answered turns, or mean)", rows: fieldRows(a, b) },
  ];
}

function fieldRows(a: Group, b: Group): Row[] {
  const rows: Row[] = [];
  for (const name of union(Object.keys(a.fields), Object.keys(b.fields))) {
    const fa = a.fields[name];
    const fb = b.fields[name];
    const missing = "not in this type's schema";
    if ((fa && isMeanField(fa)) || (fb && isMeanField(fb))) {
      rows.push({
        metric: `field:${name}`,
        label: `${name} (mean)`,
        unit: "number",
        a: fa && isMeanField(fa) ? fromMean(fa.mean) : null,
        b: fb && isMeanField(fb) ? fromMean(fb.mean) : null,
        missing,
      });
      continue;
    }
    const valueKey = (v: string | boolean | null) => (v === null ? "(no value)" : String(v));
    const values = union(
      fa && !isMeanField(fa) ? fa.values.map((v) => valueKey(v.value)) : [],
      fb && !isMeanField(fb) ? fb.values.map((v) => valueKey(v.value)) : [],
    );
    if (values.length === 0) {
      // neither group has an answered turn of its type: say so rather than drop the field
      const none = (field: typeof fa) => (field ? "no answered turns" : missing);
      rows.push({ metric: `field:${name}`, label: name, unit: "percent", a: null, b: null, missing: none(fa), missingB: none(fb) });
      continue;
    }
    for (const value of values) {
      const rateOf = (field: typeof fa) => {
        if (!field || isMeanField(field)) return null;
        const found = field.values.find((v) => valueKey(v.value) === value);
        return found ? fromRate(found.rate) : null;
      };
      rows.push({ metric: `field:${name}=${value}`, label: `${name} = ${value}`, unit: "percent", a: rateOf(fa), b: rateOf(fb), missing });
    }
  }
  return rows;
}

/** The values of both lists, in first-seen order. */
function union(first: string[], second: string[]): string[] {
  return [...new Set([...first, ...second])];
}

const isPickerError = (error: ApiError) => ["a", "b", "since", "until"].some((name) => Boolean(error.fieldError(name)));

function toApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError({ type: "client", title: String(e), status: 0 });
}
