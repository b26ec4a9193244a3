/** Intervals on one time scale, as a table: a row per interval (its name, its bar, when it
 * started, how long it took). A turn's latency waterfall and a session's span waterfall are
 * both drawn with it.
 *
 * For screen readers and keyboard users the table is the content: every row says its name,
 * start and duration in words and numbers; the bars are drawn beside them for the eye
 * (`aria-hidden`). Colour only groups kinds (model, speech, tools); the name says the kind. */
import type { ReactNode } from "react";
import "./waterfall.css";

export interface WaterfallRow {
  key: string;
  name: ReactNode;
  /** Under the name: the model, the tool's name, the service. */
  detail?: ReactNode;
  /** Nesting (a span's depth under its parent): the name is indented by it. */
  depth?: number;
  startMs: number;
  endMs: number;
  /** A CSS class for the bar's colour group (`wf-kind-<kind>`). */
  kind: string;
  error?: boolean;
  /** `data-*` attributes (and `data-testid`) for the row. */
  data: Record<string, string | number | boolean | undefined>;
}

export function formatWaterfallMs(ms: number): string {
  if (ms < 10) return `${Math.round(ms * 10) / 10} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

const percent = (ms: number, scale: number) => `${Math.min(100, Math.max(0, (ms / scale) * 100)).toFixed(2)}%`;

export function WaterfallTable({ rows, scaleMs, caption, nameHeader, testId, data, compact = false }: {
  rows: WaterfallRow[];
  /** The time the whole width stands for (shared by the tables to compare); at least the last end. */
  scaleMs?: number;
  caption: ReactNode;
  nameHeader: string;
  testId: string;
  data?: Record<string, string | number | undefined>;
  /** A narrow column (the playground's): start and duration share one cell, the bars get the room. */
  compact?: boolean;
}) {
  const scale = Math.max(scaleMs ?? 0, ...rows.map((r) => r.endMs), 1);
  const dataAttributes = Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [`data-${k}`, v]));
  return (
    <table className={compact ? "wf compact" : "wf"} data-testid={testId} data-scale-ms={Math.round(scale)} {...dataAttributes}>
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">{nameHeader}</th>
          <th scope="col" className="wf-axis">
            <span className="visually-hidden">Timeline, </span>0 <span aria-hidden="true">→</span> {formatWaterfallMs(scale)}
          </th>
          {compact ? (
            <th scope="col" className="num">start, took</th>
          ) : (
            <>
              <th scope="col" className="num">start</th>
              <th scope="col" className="num">took</th>
            </>
          )}
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => {
          const point = row.endMs <= row.startMs;
          const attributes = Object.fromEntries(Object.entries(row.data).map(([k, v]) => [k === "testid" ? "data-testid" : `data-${k}`, v]));
          return (
            <tr key={row.key} className={row.error ? "wf-row wf-error" : "wf-row"} {...attributes}>
              <th scope="row" className="wf-name" style={row.depth ? { paddingLeft: `${8 + row.depth * 14}px` } : undefined}>
                <span className="wf-label">{row.name}</span>
                {row.error && <span className="chip bad wf-error-chip">error</span>}
                {row.detail && <span className="wf-detail" title={typeof row.detail === "string" ? row.detail : undefined}>{row.detail}</span>}
              </th>
              <td className="wf-track" aria-hidden="true">
                {point ? (
                  <span className={`wf-point wf-kind-${row.kind}`} style={{ left: percent(row.startMs, scale) }} data-testid="waterfall-point" />
                ) : (
                  <span
                    className={`wf-bar wf-kind-${row.kind}`}
                    style={{ left: percent(row.startMs, scale), width: `max(2px, ${percent(row.endMs - row.startMs, scale)})` }}
                    data-testid="waterfall-bar"
                  />
                )}
              </td>
              {compact ? (
                <td className="num">
                  {point ? <>at {formatWaterfallMs(row.startMs)}</> : formatWaterfallMs(row.startMs)}
                  {!point && <span className="wf-took">took {formatWaterfallMs(row.endMs - row.startMs)}</span>}
                </td>
              ) : (
                <>
                  <td className="num">{point ? <>at {formatWaterfallMs(row.startMs)}</> : formatWaterfallMs(row.startMs)}</td>
                  <td className="num">{point ? <span className="visually-hidden">a point in time</span> : formatWaterfallMs(row.endMs - row.startMs)}</td>
                </>
              )}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
