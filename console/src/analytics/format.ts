/** How the Analytics page writes a rate or a mean with its sample size and interval, and how
 * it says in words whether two intervals overlap (never by colour alone). */
import { formatMs } from "../sessions/format";
import type { Mean, Rate } from "./types";

/** `amount`: never negative (turns, tokens), so an interval's bound below 0 is shown as 0; a
 * `number` field's mean may be anything. */
export type Unit = "percent" | "ms" | "amount" | "number";

export function formatNumber(value: number | null, unit: Unit): string {
  if (value === null || Number.isNaN(value)) return "—";
  if (unit === "percent") return `${(value * 100).toFixed(value > 0 && value < 0.1 ? 1 : 0)}%`;
  if (unit === "ms") return formatMs(value);
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** "95% CI 21%–49%", or why there is none. */
export function formatInterval(ci: [number, number] | null, unit: Unit, n: number): string {
  if (ci === null) return n === 0 ? "no data" : "too few for an interval";
  // a t interval is symmetric and may reach below 0 for a skewed, non-negative quantity
  const clamp = (x: number) => (unit === "ms" || unit === "amount" ? Math.max(0, x) : x);
  return `95% CI ${formatNumber(clamp(ci[0]), unit)} – ${formatNumber(clamp(ci[1]), unit)}`;
}

export interface Measure {
  value: number | null;
  n: number;
  ci95: [number, number] | null;
  /** "12 of 35" for a rate; "n = 35" for a mean. */
  sample: string;
}

export const fromRate = (rate: Rate): Measure => ({
  value: rate.value,
  n: rate.n,
  ci95: rate.ci95,
  sample: `${rate.successes.toLocaleString()} of ${rate.n.toLocaleString()}`,
});

export const fromMean = (mean: Mean): Measure => ({
  value: mean.mean,
  n: mean.n,
  ci95: mean.ci95,
  sample: `n = ${mean.n.toLocaleString()}`,
});

/** The two 95% intervals side by side: apart (a conservative sign of a real difference) or
 * overlapping; null when either has none. */
export function compareIntervals(a: Measure | null, b: Measure | null): { kind: "apart" | "overlap" | "unknown"; text: string } {
  if (!a?.ci95 || !b?.ci95) return { kind: "unknown", text: "not enough data" };
  const [aLow, aHigh] = a.ci95;
  const [bLow, bHigh] = b.ci95;
  if (aHigh < bLow) return { kind: "apart", text: "apart: B higher" };
  if (bHigh < aLow) return { kind: "apart", text: "apart: A higher" };
  return { kind: "overlap", text: "overlap" };
}
