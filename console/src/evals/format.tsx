/** How a run reads: its state in words (never by colour alone), pass rates, time and tokens. */
import { runStatus, type EvalRun } from "./api";

export const passRate = (rate: number | null | undefined) => (rate == null ? "—" : `${Math.round(rate * 100)} %`);

export const wallTime = (seconds: number | null | undefined) => (seconds == null ? "—" : `${seconds.toFixed(1)} s`);

export function tokensText(tokens: EvalRun["tokens"]): string {
  if (!tokens) return "—";
  return `${tokens.input.toLocaleString()} / ${tokens.output.toLocaleString()}`;
}

/** "passed" / "failed" once completed, else where it is: queued, running 2/4, error. */
export function runState(run: EvalRun): { label: string; tone: "ok" | "bad" | "warn" | "neutral" } {
  const status = runStatus(run);
  if (status === "completed") return run.passed ? { label: "passed", tone: "ok" } : { label: "failed", tone: "bad" };
  if (status === "error") return { label: "error", tone: "bad" };
  if (status === "running" && run.progress) return { label: `running ${run.progress.attempts_done}/${run.progress.attempts_total}`, tone: "warn" };
  return { label: status, tone: "neutral" };
}

export function RunStatusChip({ run }: { run: EvalRun }) {
  const state = runState(run);
  const mark = state.tone === "ok" ? "✓ " : state.tone === "bad" ? "✗ " : "";
  return (
    <span className={`chip ${state.tone}`} data-testid="eval-run-state" data-state={state.label.split(" ")[0]}>
      <span aria-hidden="true">{mark}</span>
      {state.label}
    </span>
  );
}

export const roleLabel = (role: string) => (role === "user" ? "User" : role === "agent" || role === "assistant" ? "Agent" : role);
