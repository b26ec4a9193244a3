/** The session's OpenTelemetry trace as a span waterfall (GET /sessions/{id}/trace, read from
 * the trace backend through the admin API): each span under its parent, indented by depth,
 * its bar on the trace's time scale, its service and attributes one click away.
 *
 * A 503 means no trace backend is configured; a 404 that this session's trace is not there
 * (tracing was off when it ran, or the backend has not received it yet). Spans leave the
 * worker in batches (OpenTelemetry's batch processor: every 5 s, the last ones at the
 * session's end), so while the session is active and for SETTLE_MS after it ended the trace
 * is asked for again every few seconds. */
import { useEffect, useState } from "react";
import { ApiError } from "../api";
import { formatWaterfallMs, WaterfallTable, type WaterfallRow } from "../components/WaterfallTable";
import { getSessionTrace } from "./api";
import type { SessionTrace, TraceSpan } from "./types";

const RETRY_MS = 3000;
/** After the session's end: the worker's last batch of spans, then the backend's own. */
export const TRACE_SETTLE_MS = 30_000;
/** Drawn at most: a table of thousands of rows helps nobody; the rest is counted. */
const MAX_ROWS = 400;

type TraceState =
  | { state: "loading" }
  | { state: "shown"; trace: SessionTrace }
  | { state: "not-configured" }
  | { state: "not-found" }
  | { state: "error"; message: string };

export function TraceView({ sessionId, active, endedAt }: { sessionId: string; active: boolean; endedAt: string | null }) {
  const [trace, setTrace] = useState<TraceState>({ state: "loading" });

  useEffect(() => {
    let cancelled = false;
    let timer: number | undefined;
    const ended = endedAt ? new Date(endedAt).getTime() : NaN;
    const settling = () => active || (Number.isFinite(ended) && Date.now() - ended < TRACE_SETTLE_MS);
    const load = async () => {
      try {
        const found = await getSessionTrace(sessionId);
        if (cancelled) return;
        setTrace({ state: "shown", trace: found });
        if (settling()) timer = window.setTimeout(load, RETRY_MS); // spans keep coming
      } catch (e) {
        if (cancelled) return;
        const status = e instanceof ApiError ? e.status : 0;
        if (status === 503) setTrace({ state: "not-configured" });
        else if (status === 404) {
          setTrace({ state: "not-found" });
          if (settling()) timer = window.setTimeout(load, RETRY_MS);
        } else setTrace({ state: "error", message: (e as Error).message });
      }
    };
    void load();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [sessionId, active, endedAt]);

  if (trace.state === "loading") return <p className="hint" data-testid="session-trace" data-state="loading">Loading the trace…</p>;
  if (trace.state === "not-configured") {
    return (
      <p className="hint" data-testid="session-trace" data-state="not-configured">
        Tracing is not configured: the admin API has no trace backend to read from (set <code>OTEL_EXPORTER_OTLP_ENDPOINT</code> for the
        processes and the admin API's trace query URL; <code>make dev</code> runs Jaeger behind a flag).
      </p>
    );
  }
  if (trace.state === "not-found") {
    return (
      <p className="hint" data-testid="session-trace" data-state="not-found">
        No trace recorded for this session{active ? " yet" : ""}: tracing was off when it ran, or the trace backend has not received its spans.
      </p>
    );
  }
  if (trace.state === "error") {
    return (
      <p className="error" data-testid="session-trace" data-state="error">
        Could not read the trace: {trace.message}
      </p>
    );
  }
  return <SpanWaterfall trace={trace.trace} />;
}

/** Depth-first from the roots, children by start: the order a trace is read in. A span whose
 * parent is not in the trace (dropped, or from a caller outside it) is a root. */
export function spanTree(spans: TraceSpan[]): { span: TraceSpan; depth: number }[] {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map<string | null, TraceSpan[]>();
  for (const span of spans) {
    const parent = span.parent_span_id && ids.has(span.parent_span_id) ? span.parent_span_id : null;
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  for (const list of children.values()) list.sort((a, b) => a.start_ms - b.start_ms);
  const ordered: { span: TraceSpan; depth: number }[] = [];
  const seen = new Set<string>();
  const visit = (parent: string | null, depth: number) => {
    for (const span of children.get(parent) ?? []) {
      if (seen.has(span.span_id)) continue; // a cycle in bad data must not hang the page
      seen.add(span.span_id);
      ordered.push({ span, depth });
      visit(span.span_id, depth + 1);
    }
  };
  visit(null, 0);
  return ordered;
}

function SpanWaterfall({ trace }: { trace: SessionTrace }) {
  const ordered = spanTree(trace.spans);
  const shown = ordered.slice(0, MAX_ROWS);
  const end = Math.max(0, ...trace.spans.map((s) => s.start_ms + s.duration_ms));
  const services = [...new Set(trace.spans.map((s) => s.service))].sort();
  const errors = trace.spans.filter((s) => s.error).length;
  const rows: WaterfallRow[] = shown.map(({ span, depth }) => ({
    key: span.span_id,
    name: span.name,
    detail: <SpanDetail span={span} />,
    depth,
    startMs: span.start_ms,
    endMs: span.start_ms + span.duration_ms,
    kind: span.service.includes("livekit") ? "span-livekit" : "span",
    error: span.error,
    data: {
      testid: "trace-span",
      "span-id": span.span_id,
      "parent-span-id": span.parent_span_id ?? undefined,
      depth,
      name: span.name,
      service: span.service,
      error: span.error,
    },
  }));
  return (
    <div className="trace" data-testid="session-trace" data-state="shown" data-trace-id={trace.trace_id} data-spans={trace.spans.length}>
      <p className="hint trace-meta">
        Trace <code>{trace.trace_id}</code> · {trace.spans.length} spans over {formatWaterfallMs(end)} · {services.join(", ")}
        {errors > 0 && <span className="bad-text"> · {errors} with errors</span>}
      </p>
      <WaterfallTable
        rows={rows}
        testId="trace-waterfall"
        nameHeader="span"
        caption="Each span under its parent (indented), from the trace's first span"
      />
      {ordered.length > shown.length && <p className="hint">{ordered.length - shown.length} more spans not drawn.</p>}
    </div>
  );
}

function SpanDetail({ span }: { span: TraceSpan }) {
  const attributes = Object.entries(span.attributes ?? {});
  if (attributes.length === 0) return <>{span.service}</>;
  return (
    <details className="span-attributes">
      <summary>
        {span.service} · {attributes.length} {attributes.length === 1 ? "attribute" : "attributes"}
      </summary>
      <dl>
        {attributes.map(([name, value]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd>{String(value)}</dd>
          </div>
        ))}
      </dl>
    </details>
  );
}
