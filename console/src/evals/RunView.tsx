/** One run, followed live until it ends (queued -> running with its attempts -> completed or
 * error), then its results: each scenario's pass rate against the rate it needed, and each
 * failed expectation beside the transcript up to its turn, grouped by attempt and turn. */
import { useEffect, useState } from "react";
import { ApiError } from "../api";
import { ago, exactTime } from "../agents/format";
import { followRun, isFinished, runStatus, type EvalRun, type FailedExpectation, type ScenarioResult } from "./api";
import { passRate, roleLabel, RunStatusChip, tokensText, wallTime } from "./format";

/** After this long queued, the page says what usually keeps a run queued. */
const QUEUED_HINT_MS = 15_000;

export function describeRun(run: EvalRun): string {
  const status = runStatus(run);
  const p = run.progress;
  if (status === "queued") return `Run on v${run.version} queued.`;
  if (status === "running")
    return `Running the suite on v${run.version}: ${p?.attempts_done ?? 0} of ${p?.attempts_total ?? "?"} attempts done${p?.scenario ? `, now “${p.scenario}”` : ""}.`;
  if (status === "error") return `The run on v${run.version} stopped with an error: ${run.error ?? "unknown"}.`;
  const failed = run.scenarios.filter((s) => !s.passed).map((s) => s.name);
  return run.passed
    ? `The run on v${run.version} passed: every scenario reached its pass rate.`
    : `The run on v${run.version} failed: ${failed.length} of ${run.scenarios.length} scenarios below their pass rate (${failed.join(", ")}).`;
}

export function RunView({
  agentId,
  runId,
  announce,
  onFinished,
}: {
  agentId: string;
  runId: string;
  announce: (text: string) => void;
  onFinished: () => void;
}) {
  const [run, setRun] = useState<EvalRun | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [queuedLong, setQueuedLong] = useState(false);

  useEffect(() => {
    const stop = new AbortController();
    let said = "";
    let wasFinished: boolean | null = null;
    followRun(
      runId,
      (read) => {
        setRun(read);
        const text = describeRun(read);
        if (text !== said) announce((said = text));
        const finished = isFinished(read);
        // The list learns of a run that ended while watched (not of one that was already over).
        if (finished && wasFinished === false) onFinished();
        wasFinished = finished;
      },
      stop.signal,
    ).catch((e: unknown) => !stop.signal.aborted && setError(e instanceof ApiError ? e.message : String(e)));
    const hint = setTimeout(() => setQueuedLong(true), QUEUED_HINT_MS);
    return () => {
      stop.abort();
      clearTimeout(hint);
    };
  }, [runId, announce, onFinished]);

  if (error) {
    return (
      <p className="error" role="alert" data-testid="eval-run-error">
        {error}
      </p>
    );
  }
  if (!run) return <div className="empty">Loading the run…</div>;
  const status = runStatus(run);
  const finished = isFinished(run);
  if (run.agent_id !== agentId) {
    return <p className="error">This run is of another agent type ({run.agent_id}).</p>;
  }

  return (
    <section
      className="card run-view"
      data-testid="eval-run-view"
      data-run-id={run.run_id}
      data-status={status}
      data-passed={finished && status === "completed" ? String(run.passed) : ""}
      aria-labelledby="run-view-title"
    >
      <header className="run-view-head">
        <h2 id="run-view-title">
          Run on v{run.version} <RunStatusChip run={run} />
        </h2>
        <p className="muted">
          <code>{run.run_id}</code> · started <span title={exactTime(run.started_at)}>{ago(run.started_at)}</span>
          {run.requested_by ? ` by ${run.requested_by}` : ""} · {run.pinned ? "pinned version" : "through routing"} · time{" "}
          {wallTime(run.wall_time_s)} · tokens {tokensText(run.tokens)}
          {run.models?.llm?.length ? ` · ${run.models.llm[0]}` : ""}
        </p>
      </header>

      {!finished && (
        <div className="run-progress">
          <progress
            max={run.progress?.attempts_total || 1}
            value={status === "queued" ? undefined : run.progress?.attempts_done ?? 0}
            aria-label="Attempts done"
            data-testid="eval-progress"
            data-done={run.progress?.attempts_done ?? 0}
            data-total={run.progress?.attempts_total ?? ""}
          />
          <p data-testid="eval-progress-text">{describeRun(run)}</p>
          {status === "queued" && queuedLong && (
            <p className="hint">Still queued: the run service (<code>python -m evals serve</code>, started by make dev) takes queued runs.</p>
          )}
        </div>
      )}
      {finished && (
        <p className={status === "completed" && run.passed ? "success" : "error"} data-testid="eval-result">
          {describeRun(run)}
        </p>
      )}

      {run.scenarios.map((scenario) => (
        <ScenarioBlock key={scenario.name} scenario={scenario} />
      ))}
    </section>
  );
}

function ScenarioBlock({ scenario }: { scenario: ScenarioResult }) {
  const groups = failureGroups(scenario.failures ?? []);
  return (
    <article className="scenario" data-testid="eval-scenario" data-scenario={scenario.name} data-passed={String(scenario.passed)} data-pass-rate={scenario.pass_rate}>
      <h3>
        <span className={`chip ${scenario.passed ? "ok" : "bad"}`}>
          <span aria-hidden="true">{scenario.passed ? "✓ " : "✗ "}</span>
          {scenario.passed ? "passed" : "failed"}
        </span>{" "}
        {scenario.name}
      </h3>
      <p className="muted">
        pass rate <strong>{passRate(scenario.pass_rate)}</strong>
        {scenario.required_pass_rate != null && ` (needs ${passRate(scenario.required_pass_rate)})`}
        {scenario.repeat ? ` over ${scenario.repeat} attempt${scenario.repeat === 1 ? "" : "s"}` : ""} · {wallTime(scenario.wall_time_s)}
        {scenario.skipped?.length ? ` · skipped (no judge): ${scenario.skipped.join(", ")}` : ""}
      </p>
      {groups.map((group) => (
        <div className="failure-group" key={group.key} data-testid="eval-failure-group" data-attempt={group.attempt} data-turn={group.turn ?? ""}>
          <div className="failure-transcript">
            <h4>
              Attempt {group.attempt + 1}, {group.turn == null ? "greeting and routing" : `up to turn ${group.turn + 1}`}
            </h4>
            {group.transcript.length ? (
              <ol className="transcript-lines" data-testid="eval-transcript">
                {group.transcript.map((line, i) => (
                  <li key={i} data-testid="eval-transcript-line" data-role={line.role} className={`line ${line.role}`}>
                    <span className="who">{roleLabel(line.role)}</span>
                    <span className="said">{line.text || <em className="muted">(nothing)</em>}</span>
                  </li>
                ))}
              </ol>
            ) : (
              <p className="muted">No transcript: nothing was said before this.</p>
            )}
          </div>
          <ul className="failure-list" aria-label={`What failed in attempt ${group.attempt + 1}`}>
            {group.failures.map((failure, i) => (
              <li key={i} data-testid="eval-failure" data-expectation={failure.expectation}>
                <span className="chip bad">
                  <span aria-hidden="true">✗ </span>failed
                </span>{" "}
                <code>{failure.expectation}</code>
                <p>{failure.detail}</p>
              </li>
            ))}
          </ul>
        </div>
      ))}
    </article>
  );
}

interface FailureGroup {
  key: string;
  attempt: number;
  turn: number | null;
  transcript: FailedExpectation["transcript"];
  failures: FailedExpectation[];
}

/** The failures of one attempt's turn share its transcript: shown once, its failures beside it. */
function failureGroups(failures: FailedExpectation[]): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const failure of failures) {
    const key = `${failure.attempt}:${failure.turn ?? "-"}`;
    const group = groups.get(key) ?? { key, attempt: failure.attempt, turn: failure.turn, transcript: [], failures: [] };
    if (failure.transcript.length > group.transcript.length) group.transcript = failure.transcript;
    group.failures.push(failure);
    groups.set(key, group);
  }
  return [...groups.values()];
}
