/** A small horizontal bar chart in plain SVG: every label and value is text (readable without
 * hovering, and by screen readers through the title and description), each bar has a `<title>`
 * tooltip. Bars are sized in percent of the chart's width, so it fills any card. Hand-written
 * rather than a chart library: bars are all the stats need, and it costs no dependency. */
import { useId } from "react";
import { formatCount, formatPercent } from "./format";
import "./charts.css";

export type BarTone = "accent" | "ok" | "bad" | "warn" | "neutral" | "user";

export interface Bar {
  label: string;
  value: number;
  tone?: BarTone;
}

// Each row: the label on the left and the value on the right on one line, the bar under them
// across the whole width, so a long enum value never runs into its bar in a narrow card.
const ROW_HEIGHT = 38;
const TEXT_Y = 9;
const BAR_Y = 21;
const BAR_HEIGHT = 8;
const LABEL_CHARS = 40;

export function BarChart({ title, bars }: { title: string; bars: Bar[] }) {
  const titleId = useId();
  const descId = useId();
  const total = bars.reduce((sum, bar) => sum + bar.value, 0);
  const largest = Math.max(...bars.map((bar) => bar.value), 0);
  const describe = (bar: Bar) => `${bar.label}: ${formatCount(bar.value)} (${formatPercent(total ? bar.value / total : 0)})`;
  if (bars.length === 0) return <p className="hint chart-empty">No values recorded yet.</p>;
  return (
    <svg
      className="bar-chart"
      width="100%"
      height={bars.length * ROW_HEIGHT}
      role="img"
      aria-labelledby={titleId}
      aria-describedby={descId}
    >
      <title id={titleId}>{title}</title>
      <desc id={descId}>{bars.map(describe).join("; ")}</desc>
      {bars.map((bar, row) => {
        const y = row * ROW_HEIGHT;
        const share = largest ? bar.value / largest : 0;
        const label = bar.label.length > LABEL_CHARS ? `${bar.label.slice(0, LABEL_CHARS - 1)}…` : bar.label;
        return (
          <g key={bar.label} className="bar-row" data-label={bar.label} data-value={bar.value}>
            <title>{describe(bar)}</title>
            <text className="bar-label" x="0" y={y + TEXT_Y} dominantBaseline="middle">
              {label}
            </text>
            <text className="bar-value" x="100%" y={y + TEXT_Y} dominantBaseline="middle" textAnchor="end">
              {formatCount(bar.value)}
              <tspan className="bar-share"> · {formatPercent(total ? bar.value / total : 0)}</tspan>
            </text>
            <rect className="bar-track" x="0" y={y + BAR_Y} width="100%" height={BAR_HEIGHT} rx={BAR_HEIGHT / 2} />
            {bar.value > 0 && (
              <rect
                className={`bar bar-${bar.tone ?? "accent"}`}
                x="0"
                y={y + BAR_Y}
                width={`${Math.max(100 * share, 1)}%`}
                height={BAR_HEIGHT}
                rx={BAR_HEIGHT / 2}
              />
            )}
          </g>
        );
      })}
    </svg>
  );
}

/** Where a mean sits between a numeric field's bounds (from its schema). */
export function RangeGauge({ value, min, max, label }: { value: number; min: number; max: number; label: string }) {
  const span = max - min || 1;
  const at = Math.min(Math.max((value - min) / span, 0), 1) * 100;
  return (
    <svg className="range-gauge" width="100%" height="34" role="img" aria-label={`${label}: ${value.toFixed(2)} on ${min} to ${max}`}>
      <title>{`${label}: mean ${value.toFixed(2)} (range ${min} to ${max})`}</title>
      <rect className="bar-track" x="0" y="6" width="100%" height="10" rx="5" />
      <rect className="bar bar-accent" x="0" y="6" width={`${at}%`} height="10" rx="5" />
      <text className="bar-label" x="0" y="30">{min}</text>
      <text className="bar-label" x="100%" y="30" textAnchor="end">{max}</text>
    </svg>
  );
}
